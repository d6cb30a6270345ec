"""What travels between the edge's stages: model inputs on their way to the backend, and typed records for the publisher.

An :class:`Item` goes source thread -> batcher -> backend; a :class:`Batch` is
what one backend call sees. Everything that becomes a message goes to the
publisher as one of the record types below, and only the publisher turns it
into messages (see :mod:`skyedge.edge.runtime.publisher`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from skyedge.edge.sources import Ack, Rejected, SourceFailed, SourceRecovered

if TYPE_CHECKING:
    from skyedge.edge.allsky.site import Observation
    from skyedge.edge.runtime.pipeline import Pipeline
    from skyedge.sanity import FrameProblem


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
    extra: dict = field(default_factory=dict)  # message fields of the task (object id, epochs, position, ephemeris)
    ack: Ack | None = None
    site: Observation | None = None  # what the site says about the frame (capture time, ephemeris, day)
    invalid: FrameProblem | None = None  # the frame failed the input-sanity checks: no night sky to classify
    batch_key: tuple | None = None  # items batch together only with the same key (None: any item)

    @property
    def gated(self) -> bool:
        """Answered without the model (a daytime frame, or one that is not a night sky at all)."""
        return self.invalid is not None or (self.site is not None and self.site.day)


@dataclass
class Batch:
    """Items for one backend call: ``inputs`` stacks those at ``rows`` (gated items are not in it);
    ``answer_epoch`` is each stacked item's epoch to read (sequences), else None."""

    items: list[Item]
    inputs: dict[str, np.ndarray]
    answer_epoch: np.ndarray | None = None
    rows: list[int] | None = None  # indices into items of what ``inputs`` holds; None: all of them


@dataclass(frozen=True)
class Decision:
    """The model's answer for one item."""

    item: Item
    label: str  # the verdict: a class, 'unrecognised' (open set, input sanity or a failed cross-check), or 'day'
    top_class: str
    confidence: float  # in the verdict (see skyedge.edge.allsky.task.Decoder), not the top class's probability
    probabilities: dict[str, float]
    unknown: bool  # the open-set check rejected it (the message's 'unknown' flag)
    distance: float | None
    inference_ms: float
    checks: tuple[str, ...] = ()  # physical cross-checks the answer failed
    top_probability: float | None = None  # the model's probability of top_class


@dataclass(frozen=True)
class FieldDecisions:
    """The model's answers for a batch of a field's objects at one epoch: ``probabilities`` (N, C) in the order of
    the items' concatenated ``rows``."""

    items: list[Item]
    probabilities: np.ndarray
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


Record = Decision | FieldDecisions | BatchFailed | Observed
