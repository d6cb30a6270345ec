"""What travels between the edge's stages: model inputs on their way to the backend, and records for the publisher.

An :class:`Item` goes source thread -> batcher -> backend; a :class:`Batch` is
what one backend call sees. Each task adds what its kind of input needs
(:mod:`skyedge.edge.allsky.records`, :mod:`skyedge.edge.field.records`).
Everything that becomes a message reaches the publisher as a typed record: a
task's answers, :class:`BatchFailed`, :class:`Observed`. Every record is
frozen and built by keyword, so a record is what its producer made it, on
every thread that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from skyedge.edge.sources import Ack, Observation

if TYPE_CHECKING:
    from skyedge.edge.protocols import PipelineView


@dataclass(frozen=True, kw_only=True)
class Item:
    """One model input on its way to the backend."""

    pipeline: PipelineView
    frame_id: str
    source: str
    inputs: Mapping[str, np.ndarray]
    arrived: float  # perf_counter when its frame was read
    preprocess_ms: float
    ack: Ack | None = None
    batch_key: tuple | None = None  # items batch together only with the same key (None: any item)


@dataclass(frozen=True, kw_only=True)
class Batch:
    """Items for one backend call: ``inputs`` stacks those at ``rows`` (None: all of them; items answered without
    the model are not stacked)."""

    items: Sequence[Item]
    inputs: Mapping[str, np.ndarray]
    rows: Sequence[int] | None = None


@dataclass(frozen=True, kw_only=True)
class BatchFailed:
    """The backend raised on a batch: its items are counted as failed and acknowledged as such."""

    items: Sequence[Item]
    reason: str


@dataclass(frozen=True, kw_only=True)
class Observed:
    """Something a source reported about itself or one input (not a frame)."""

    pipeline: PipelineView
    what: Observation
