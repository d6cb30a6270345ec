"""A watched folder where all-sky camera software drops FITS/JPEG/PNG/TIFF frames, read in order of arrival.

Decoded frames are checked before they go further: NaN/inf, a frame too small,
or a shape/bit depth other than this camera's is rejected with the file name
and the reason. The camera's format is ``frame_shape`` when configured (then
nothing else is ever accepted); otherwise it is learned from three agreeing
frames and remembered in the state file (with any new format being agreed on), so
the same frame gets the same answer after a restart. A camera that switches mode for good (binning, a new
sensor readout) is followed: after three agreeing frames of the new format it
becomes the camera's format, announced as :class:`FormatChanged`; the frames
before that are rejected and reported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.edge.sources import Ack, FormatChanged, RawFrame, Rejected
from skyedge.edge.sources.folder import FolderSource
from skyedge.edge.sources.frame_type import calibration_reason
from skyedge.edge.sources.state import FileKey
from skyedge.imageio import FrameGone, FrameReadError, read_frame

MAX_NONFINITE_FRACTION = 0.01
AGREEING_FRAMES = 3  # frames of one format that make it the camera's (learned, or a mode change)


def frame_problem(image: np.ndarray) -> str | None:
    """Why a decoded frame is unusable whatever the camera (NaN/inf, too small), or None."""
    if image.size == 0 or min(image.shape[:2]) < 8:
        return f"image too small: {image.shape}"
    if np.issubdtype(image.dtype, np.floating):
        bad = float((~np.isfinite(image)).mean())
        if bad > MAX_NONFINITE_FRACTION:
            return f"{100 * bad:.1f}% of pixels are NaN or infinite"
    return None


def describe(form: tuple) -> str:
    """``((512, 512), '<u2')`` -> ``512x512 uint16``."""
    shape, dtype = form
    return f"{'x'.join(map(str, shape))} {np.dtype(dtype)}"


class DirectorySource(FolderSource):
    """Camera frames in order of modification time."""

    def __init__(self, spec, once: bool, stop_event):
        super().__init__(spec, once, stop_event)
        self.recursive = spec.recursive
        self.fixed_shape = tuple(spec.frame_shape) if spec.frame_shape else None
        remembered = self.state.fact("frame_format")
        self.expected: tuple | None = (tuple(remembered[0]), remembered[1]) if remembered else None
        # A new format seen but not yet agreed on: remembered too, so a restart never changes an answer.
        candidate = self.state.fact("format_candidate")
        self._candidate: tuple | None = (tuple(candidate[0]), candidate[1]) if candidate else None
        self._agreeing = candidate[2] if candidate else 0

    def _sort_key(self, path: Path, st) -> tuple:
        return (st.st_mtime, path.name)

    def _decode(self, path: Path, key: FileKey, ack: Ack):
        try:
            image, header = read_frame(path, self.spec.max_pixels)
        except FrameGone:
            raise
        except FrameReadError as exc:
            return [Rejected(path.name, str(path), str(exc), ack)]
        reason = calibration_reason(path, header)
        if reason is None and (problem := frame_problem(image)):
            reason = f"{path}: {problem}"
        if reason:
            return [Rejected(path.name, str(path), reason, ack)]
        form = (tuple(image.shape), image.dtype.str)
        changed = None
        if self.fixed_shape is not None:
            if form[0] != self.fixed_shape:
                wanted = "x".join(map(str, self.fixed_shape))
                return [Rejected(path.name, str(path), f"{path}: {describe(form)} frame, source.frame_shape is {wanted}", ack)]
        elif form != self.expected:
            self._agreeing = self._agreeing + 1 if form == self._candidate else 1
            self._candidate = form
            self.state.remember("format_candidate", [list(form[0]), form[1], self._agreeing])
            if self.expected is not None and self._agreeing < AGREEING_FRAMES:
                return [
                    Rejected(
                        path.name,
                        str(path),
                        f"{path}: {describe(form)} differs from this camera's {describe(self.expected)} (wrong camera, "
                        f"or a new mode: {AGREEING_FRAMES} agreeing frames switch to it; set source.frame_shape to pin it)",
                        ack,
                    )
                ]
            if self._agreeing >= AGREEING_FRAMES:
                if self.expected is not None:
                    changed = FormatChanged(
                        str(self.root),
                        describe(self.expected),
                        describe(form),
                        f"camera frames are now {describe(form)} (were {describe(self.expected)})",
                    )
                self.expected = form
                self.state.remember("frame_format", [list(form[0]), form[1]])
        frame = RawFrame(path.name, str(path), image, header, captured=key[2] / 1e9, ack=ack)
        return [changed, frame] if changed else [frame]
