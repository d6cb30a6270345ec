"""Frame sources, chosen by name in the deployment YAML: each is an iterator of what it observed.

A source yields :class:`RawFrame` (a decoded frame), :class:`Rejected` (one
input that cannot be used: counted, reported, skipped), :class:`Vanished` (a
file gone before it was read: counted), :class:`FormatChanged` (the camera
switched mode), or a change of its own health, :class:`SourceFailed` /
:class:`SourceRecovered` (a camera that stopped delivering, a folder that
vanished). The runtime never inspects names or strings to tell these apart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

Ack = Callable[[str], None]


@dataclass
class RawFrame:
    """A decoded frame and where it came from; ``ack`` marks it processed once its result is reported."""

    frame_id: str
    source: str
    image: np.ndarray
    header: dict = field(default_factory=dict)
    captured: float | None = None  # POSIX time: the file's modification time, or the camera read's clock
    ack: Ack | None = None
    clock: str = "file-mtime"  # what ``captured`` is, when the frame itself carries no capture time
    replay: bool = False  # already reported before a restart: rebuilds the task's history, reports nothing


@dataclass
class Rejected:
    """An input that could not be used: counted, reported with its reason, skipped."""

    frame_id: str
    source: str
    reason: str
    ack: Ack | None = None


@dataclass
class Vanished:
    """A file deleted between the folder listing and the read: skipped and counted, not an error."""

    frame_id: str
    source: str
    reason: str


@dataclass
class FormatChanged:
    """The camera's frames changed shape or bit depth for good (a new mode): accepted from now on."""

    source: str
    previous: str
    current: str
    reason: str


@dataclass
class SourceFailed:
    """The source as a whole stopped delivering (camera gone, folder unreadable); it keeps retrying."""

    source: str
    reason: str


@dataclass
class SourceRecovered:
    """The source delivers again after a :class:`SourceFailed`."""

    source: str
    reason: str


Observation = RawFrame | Rejected | Vanished | FormatChanged | SourceFailed | SourceRecovered


def create_source(spec, once: bool, stop_event, history: int = 0):
    """The source for a pipeline's ``source`` block (its ``kind`` picks the class); ``history``: epochs a
    sequence task needs replayed after a restart."""
    if spec.kind == "directory":
        from skyedge.edge.sources.directory import DirectorySource

        return DirectorySource(spec, once=once, stop_event=stop_event)
    if spec.kind == "camera":
        from skyedge.edge.sources.camera import CameraSource

        return CameraSource(spec, once=once, stop_event=stop_event)
    if spec.kind == "fits-sequence":
        from skyedge.edge.sources.fits_sequence import FitsSequenceSource

        return FitsSequenceSource(spec, once=once, stop_event=stop_event, history=history)
    raise ValueError(f"source.kind: unknown source {spec.kind!r}")
