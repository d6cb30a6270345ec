"""Telescope frames of one field over time, plus a catalogue of object positions.

Frames are read in order of ``MJD-OBS``; each yields a :class:`RawFrame` whose
header carries the epoch's observing conditions. The catalogue comes from a
CSV (``id,x,y``; other columns such as ``class`` are kept for audits) or, when
none is configured, from peaks above ``detect_threshold_sigma`` on the first
frame. Stamps are cut by :mod:`skyedge.edge.sequences`.
"""

from __future__ import annotations

import csv
import logging
import threading
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from skyedge.edge.sources import RawFrame, Rejected
from skyedge.edge.sources.directory import ProcessedState, file_key
from skyedge.errors import SkyedgeError
from skyedge.imageio import FrameReadError, read_frame

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


class FitsSequenceSource:
    """Epoch frames in time order; ``catalog`` is available after construction (or the first frame)."""

    def __init__(self, spec, once: bool, stop_event: threading.Event):
        self.spec, self.once, self.stop = spec, once, stop_event
        self.root = Path(spec.path)
        if not self.root.is_dir():
            raise FileNotFoundError(f"source.path: {self.root} is not a directory")
        self.catalog: list[CatalogEntry] | None = read_catalog(Path(spec.catalog)) if spec.catalog else None
        self.state = ProcessedState(self.root / ".skyedge-state.sqlite")

    def _epochs(self) -> list[tuple[float, Path, tuple]]:
        from astropy.io import fits

        found = []
        for p in self.root.iterdir():
            if not p.is_file() or not any(fnmatch(p.name.lower(), pat) for pat in self.spec.patterns):
                continue
            st = p.stat()
            key = file_key(p, st)
            if self.state.handled(key):
                continue
            try:
                mjd = float(fits.getheader(p).get("MJD-OBS", np.nan))
            except Exception:  # noqa: BLE001 - unreadable files are reported when read
                mjd = np.nan
            found.append((mjd, p, key))
        found.sort(key=lambda r: (np.isnan(r[0]), r[0], r[1].name))
        return found

    def __iter__(self):
        while not self.stop.is_set():
            epochs = self._epochs()
            for _, path, key in epochs:
                if self.stop.is_set():
                    return
                yield self._read(path, key)
            if self.once:
                return
            if not epochs:
                self.stop.wait(1.0)

    def _read(self, path: Path, key: tuple):
        ack = self.state.claim(key)
        try:
            image, header = read_frame(path)
        except FrameReadError as exc:
            return Rejected(path.name, str(path), str(exc), ack)
        missing = [v for v in HEADER_KEYS.values() if v not in header]
        if missing:
            return Rejected(path.name, str(path), f"{path}: header lacks {', '.join(missing)}", ack)
        if image.ndim != 2:
            return Rejected(path.name, str(path), f"{path}: expected a 2-D frame, got shape {image.shape}", ack)
        if self.catalog is None:
            self.catalog = detect_sources(image, self.spec.detect_threshold_sigma)
            log.info("detected %d sources on the reference frame %s", len(self.catalog), path.name)
        conditions = {k: float(header[v]) for k, v in HEADER_KEYS.items()}
        return RawFrame(path.stem, str(path), image, {"conditions": conditions, **header}, ack=ack)

    def close(self) -> None:
        """Close the state file."""
        self.state.close()
