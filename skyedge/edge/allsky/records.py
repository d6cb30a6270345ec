"""An all-sky frame on its way through the stages, and the answer the publisher turns into messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from skyedge.edge.allsky.site import Observation
from skyedge.edge.cloud_map import CloudReport
from skyedge.edge.records import Item
from skyedge.sanity import FrameProblem
from skyedge.stars.watch import StarReport


@dataclass(frozen=True, kw_only=True)
class FrameItem(Item):
    """One camera frame as a model input, with what the site says about it."""

    captured: float | None = None  # POSIX time the frame was taken
    site: Observation | None = None  # capture time, ephemeris, day
    invalid: FrameProblem | None = None  # failed the input-sanity checks: no night sky to classify
    frame_shape: tuple[int, int] | None = None  # (height, width) of the frame as read
    sky: np.ndarray | None = None  # the model input's sky pixels (masks, letterbox, horizon circle)
    stars: StarReport | None = None  # star visibility (pipelines with a stars section, night frames)

    @property
    def gated(self) -> bool:
        """Answered without the model (a daytime frame, or one that is not a night sky at all)."""
        return self.invalid is not None or (self.site is not None and self.site.day)

    def message_fields(self) -> dict:
        """What the classification message says about the frame itself (capture time source, ephemeris, why it
        was not classified)."""
        fields = self.site.message_fields() if self.site is not None else {}
        if self.invalid is not None:
            fields["invalid"] = self.invalid.message()
        if self.stars is not None:
            fields["stars"] = self.stars.message()
        return fields


@dataclass(frozen=True, kw_only=True)
class Decision:
    """The answer for one frame."""

    item: FrameItem
    label: str  # the verdict: a class, 'unrecognised' (open set, input sanity or a failed cross-check), or 'day'
    top_class: str
    confidence: float  # in the verdict (see skyedge.edge.allsky.task.Decoder), not the top class's probability
    probabilities: Mapping[str, float]
    unknown: bool  # the open-set check rejected it (the message's 'unknown' flag)
    distance: float | None = None
    inference_ms: float = 0.0
    checks: tuple[str, ...] = ()  # physical cross-checks the answer failed
    top_probability: float | None = None  # the model's probability of top_class
    cloud: CloudReport | None = None  # the model's cloud map, reduced (models with a cloud_map output)
