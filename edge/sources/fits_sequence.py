"""Telescope frames of one field over time, plus a catalogue of object positions.

Frames are read in order of ``MJD-OBS``; each yields a :class:`RawFrame` whose
header carries the epoch's observing conditions. The catalogue comes from a
CSV (``id,x,y``; other columns such as ``class`` are kept for audits) or, when
none is configured, from peaks above ``detect_threshold_sigma`` on the first
frame; each frame carries the objects to follow. Stamps are cut by
:mod:`skyedge.edge.sequences`.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyedge.edge.sources import Ack, RawFrame, Rejected
from skyedge.edge.sources.folder import FolderSource
from skyedge.edge.sources.state import FileKey
from skyedge.errors import SkyedgeError
from skyedge.imageio import FrameGone, FrameReadError, read_frame

log = logging.getLogger(__name__)

HEADER_KEYS = {
    "mjd": "MJD-OBS",
    "fwhm": "FWHM",
    "sky": "SKYLEVEL",
    "zero_point": "MAGZP",
    "exptime": "EXPTIME",
    "airmass": "AIRMASS",
}


class CatalogError(SkyedgeError, ValueError):
    """A catalogue the source cannot use."""


@dataclass(frozen=True)
class CatalogEntry:
    """One object to follow."""

    id: str
    x: float
    y: float
    extra: dict


def read_catalog(path: Path) -> list[CatalogEntry]:
    """``id,x,y[,...]`` rows; errors name the file and row."""
    entries = []
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"id", "x", "y"} - set(reader.fieldnames or [])
        if missing:
            raise CatalogError(f"{path}: catalogue lacks column(s) {', '.join(sorted(missing))} (need id,x,y)")
        for n, row in enumerate(reader, start=2):
            try:
                entries.append(
                    CatalogEntry(
                        row["id"],
                        float(row["x"]),
                        float(row["y"]),
                        {k: v for k, v in row.items() if k not in ("id", "x", "y")},
                    )
                )
            except (TypeError, ValueError):
                raise CatalogError(
                    f"{path}, row {n}: x and y must be numbers, got {row.get('x')!r}, {row.get('y')!r}"
                ) from None
    if not entries:
        raise CatalogError(f"{path}: catalogue has no objects")
    return entries


def detect_sources(image: np.ndarray, threshold_sigma: float, min_separation: int = 10) -> list[CatalogEntry]:
    """Local maxima above median + threshold x robust sigma, at least ``min_separation`` px apart."""
    import cv2

    data = np.nan_to_num(image.astype(np.float32))
    median = float(np.median(data))
    sigma = 1.4826 * float(np.median(np.abs(data - median))) or 1.0
    smooth = cv2.GaussianBlur(data, (0, 0), 1.5)
    peaks = (smooth == cv2.dilate(smooth, np.ones((min_separation, min_separation), np.uint8))) & (
        smooth > median + threshold_sigma * sigma / 2.0
    )
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-smooth[ys, xs])
    return [CatalogEntry(f"det-{i:05d}", float(xs[j]), float(ys[j]), {}) for i, j in enumerate(order)]


class FitsSequenceSource(FolderSource):
    """Epoch frames in time order; each frame carries the objects to follow.

    A restart resumes where the last run stopped: the catalogue (given, or detected on the first frame and
    remembered in the state file) stays the same, and the last ``history`` epochs already reported are read
    again as replays, so each object's stamp history continues instead of starting over.
    """

    def __init__(self, spec, once: bool, stop_event, history: int = 0):
        super().__init__(spec, once, stop_event)
        self.history = history
        self.catalog: list[CatalogEntry] | None = read_catalog(Path(spec.catalog)) if spec.catalog else None
        if self.catalog is None:
            remembered = self.state.fact("catalog")
            if remembered:
                self.catalog = [CatalogEntry(i, x, y, {}) for i, x, y in remembered]

    def _sort_key(self, path: Path, st) -> tuple:
        from astropy.io import fits

        try:
            mjd = float(fits.getheader(path).get("MJD-OBS", np.nan))
        except Exception:  # noqa: BLE001 - unreadable files are reported when read
            mjd = np.nan
        return (bool(np.isnan(mjd)), 0.0 if np.isnan(mjd) else mjd, path.name)

    def _replay(self):
        if not self.history:
            return
        done = []
        for key in self.state.handled_ok():
            path = Path(key[0])
            try:
                st = path.stat()
            except OSError:
                continue  # rotated away: the history resumes shorter
            if (st.st_size, st.st_mtime_ns) == key[1:]:
                done.append((self._sort_key(path, st), path, key))
        done.sort(key=lambda r: r[0])
        for _, path, key in done[-self.history :]:
            try:
                observed = self._decode(path, key, None)
            except FrameGone:
                continue
            for frame in observed:
                if isinstance(frame, RawFrame):
                    frame.replay = True
                    yield frame

    def _decode(self, path: Path, key: FileKey, ack: Ack | None) -> list:
        try:
            image, header = read_frame(path, self.spec.max_pixels)
        except FrameGone:
            raise
        except FrameReadError as exc:
            return [Rejected(path.name, str(path), str(exc), ack)]
        missing = [v for v in HEADER_KEYS.values() if v not in header]
        if missing:
            return [Rejected(path.name, str(path), f"{path}: header lacks {', '.join(missing)}", ack)]
        if image.ndim != 2:
            return [Rejected(path.name, str(path), f"{path}: expected a 2-D frame, got shape {image.shape}", ack)]
        if self.catalog is None:
            self.catalog = detect_sources(image, self.spec.detect_threshold_sigma)
            self.state.remember("catalog", [[e.id, e.x, e.y] for e in self.catalog])
            log.info("detected %d sources on the reference frame %s", len(self.catalog), path.name)
        conditions = {k: float(header[v]) for k, v in HEADER_KEYS.items()}
        return [RawFrame(path.stem, str(path), image, {"conditions": conditions, **header}, ack=ack, objects=self.catalog)]
