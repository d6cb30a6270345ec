"""A watched folder where all-sky camera software drops FITS/JPEG/PNG/TIFF frames, read in order of arrival.

Decoded frames are checked before they go further: NaN/inf, a frame too small,
or a shape/bit depth other than this camera's (learned from three agreeing
frames) is rejected with the file name and the reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.edge.sources import Ack, RawFrame, Rejected
from skyedge.edge.sources.folder import FolderSource
from skyedge.edge.sources.state import FileKey
from skyedge.imageio import FrameReadError, read_frame

# Inputs that read but are not usable frames.
MAX_NONFINITE_FRACTION = 0.01


def check_frame(image: np.ndarray, expected: tuple | None) -> str | None:
    """Why a decoded frame is unusable (NaN/inf, wrong size or bit depth), or None."""
    if image.size == 0 or min(image.shape[:2]) < 8:
        return f"image too small: {image.shape}"
    if np.issubdtype(image.dtype, np.floating):
        bad = float((~np.isfinite(image)).mean())
        if bad > MAX_NONFINITE_FRACTION:
            return f"{100 * bad:.1f}% of pixels are NaN or infinite"
    if expected is not None and (image.shape, image.dtype.str) != expected:
        return (
            f"shape/bit depth {image.shape} {image.dtype} differs from this camera's "
            f"{expected[0]} {np.dtype(expected[1])} (wrong camera or mode?)"
        )
    return None


class DirectorySource(FolderSource):
    """Camera frames in order of modification time."""

    def __init__(self, spec, once: bool, stop_event):
        super().__init__(spec, once, stop_event)
        self.recursive = spec.recursive
        self.expected: tuple | None = None
        self._agree: list[tuple] = []

    def _sort_key(self, path: Path, st) -> tuple:
        return (st.st_mtime, path.name)

    def _decode(self, path: Path, key: FileKey, ack: Ack) -> RawFrame | Rejected:
        try:
            image, header = read_frame(path)
        except FrameReadError as exc:
            return Rejected(path.name, str(path), str(exc), ack)
        reason = check_frame(image, self.expected)
        if reason:
            return Rejected(path.name, str(path), f"{path}: {reason}", ack)
        if self.expected is None:
            # Learn the camera's frame format from three agreeing frames, not one that may itself be odd.
            form = (image.shape, image.dtype.str)
            self._agree = self._agree + [form] if self._agree and self._agree[-1] == form else [form]
            if len(self._agree) >= 3:
                self.expected = form
        return RawFrame(path.name, str(path), image, header, captured=key[2] / 1e9, ack=ack)
