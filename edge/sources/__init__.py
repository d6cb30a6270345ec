"""Frame sources, chosen by name in the deployment YAML: each is an iterator of :class:`RawFrame` or :class:`Rejected`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RawFrame:
    """A decoded frame and where it came from; ``ack`` marks it processed once its result is reported."""

    frame_id: str
    source: str
    image: np.ndarray
    header: dict = field(default_factory=dict)
    captured: float | None = None  # POSIX time
    ack: object = None


@dataclass
class Rejected:
    """An input that could not be used: counted, reported with its reason, skipped."""

    frame_id: str
    source: str
    reason: str
    ack: object = None


def create_source(spec, once: bool, stop_event):
    """The source for a pipeline's ``source`` block."""
    if spec.kind == "directory":
        from skyedge.edge.sources.directory import DirectorySource

        return DirectorySource(spec, once=once, stop_event=stop_event)
    if spec.kind == "camera":
        from skyedge.edge.sources.camera import CameraSource

        return CameraSource(spec, once=once, stop_event=stop_event)
    if spec.kind == "fits-sequence":
        from skyedge.edge.sources.fits_sequence import FitsSequenceSource

        return FitsSequenceSource(spec, once=once, stop_event=stop_event)
    raise ValueError(f"source.kind: unknown source {spec.kind!r}")
