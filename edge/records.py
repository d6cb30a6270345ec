"""What travels between the edge's stages: model inputs on their way to the backend, and typed records for the publisher.

An :class:`Item` goes source thread -> batcher -> backend; a :class:`Batch` is
what one backend call sees. Everything that becomes a message goes to the
publisher as one of the record types below, and only the publisher turns it
into messages (see :mod:`skyedge.edge.publisher`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from skyedge.edge.sources import Ack, Rejected, SourceFailed, SourceRecovered

if TYPE_CHECKING:
    from skyedge.edge.pipeline import Pipeline


@dataclass
class Item:
    """One model input: a frame, or one object's stamp history after one epoch."""

    pipeline: Pipeline
    frame_id: str
    source: str
    inputs: dict[str, np.ndarray]
    arrived: float  # perf_counter when its frame was read
    preprocess_ms: float
    captured: float | None = None  # POSIX time the frame was taken
    extra: dict = field(default_factory=dict)  # message fields of the task (object id, epochs, position)
    ack: Ack | None = None


@dataclass
class Batch:
    """Items stacked for one backend call; ``answer_epoch`` is each item's epoch to read (sequences), else None."""

    items: list[Item]
    inputs: dict[str, np.ndarray]
    answer_epoch: np.ndarray | None = None


@dataclass(frozen=True)
class Decision:
    """The model's answer for one item."""

    item: Item
    label: str  # the verdict: a class, or 'unknown' when the open-set check rejects it
    top_class: str
    confidence: float
    probabilities: dict[str, float]
    unknown: bool
    distance: float | None
    inference_ms: float


@dataclass(frozen=True)
class BatchFailed:
    """The backend raised on a batch: its items are counted as failed and acknowledged as such."""

    items: list[Item]
    reason: str


@dataclass(frozen=True)
class Observed:
    """Something a source reported about itself or one input (not a frame)."""

    pipeline: Pipeline
    what: Rejected | SourceFailed | SourceRecovered


Record = Decision | BatchFailed | Observed
