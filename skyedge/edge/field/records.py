"""A telescope field's epoch on its way through the stages: the objects of one batch, and their answers.

The source thread makes one :class:`FieldEpoch` per epoch and one
:class:`FieldItem` per batch of its objects (all keyed to the epoch, so no
backend call mixes epochs); the inference thread answers each batch with a
:class:`FieldDecisions`; the publisher thread's policy
(:class:`skyedge.edge.field.publishing.FieldPublishing`) counts an epoch's
batches back in and publishes. All frozen: what an object row held when the
epoch was cut is what the publisher reports, even after the row was reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from skyedge.edge.field.tracker import EpochView
from skyedge.edge.records import Item
from skyedge.edge.sources import Ack


@dataclass(frozen=True, kw_only=True)
class FieldEpoch:
    """One epoch of the field: what its summary reports, and how many batches its objects went out in."""

    view: EpochView
    frame_id: str
    source: str
    arrived: float  # perf_counter when its frame was read
    preprocess_ms: float
    replay: bool  # reported before a restart: rebuilds histories, publishes nothing
    ack: Ack | None
    batches: int


@dataclass(frozen=True, kw_only=True)
class ObjectRows:
    """Some of the field's objects at one epoch: their rows in the object table (and state store), copied facts."""

    rows: np.ndarray
    fresh: np.ndarray  # True where the object has no state yet (its history starts in this batch)
    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    n_epochs: np.ndarray
    detections: np.ndarray  # epochs in which each object showed in the difference image
    static: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls) -> ObjectRows:
        """No objects (an epoch with nothing followed still gets its summary)."""
        none = np.zeros(0)
        return cls(
            rows=np.zeros(0, dtype=np.int64),
            fresh=np.zeros(0, dtype=bool),
            ids=np.empty(0, dtype=object),
            x=none,
            y=none,
            n_epochs=np.zeros(0, dtype=np.int64),
            detections=np.zeros(0, dtype=np.int64),
            static=np.zeros(0, dtype=bool),
        )


@dataclass(frozen=True, kw_only=True)
class FieldItem(Item):
    """One batch of one epoch's objects."""

    epoch: FieldEpoch
    objects: ObjectRows


@dataclass(frozen=True, kw_only=True)
class FieldDecisions:
    """The model's answers for a batch of a field's objects at one epoch: ``probabilities`` (N, C) in the order of
    the items' objects."""

    items: Sequence[FieldItem]
    probabilities: np.ndarray
    inference_ms: float
