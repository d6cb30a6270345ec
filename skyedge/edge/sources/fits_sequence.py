"""Telescope frames of one field over time, in order of observation time (``MJD-OBS``, ``DATE-OBS``, ...,
the file's time last).

Each frame yields a :class:`RawFrame` with its header as written; the epoch's observing conditions are the
field's business (:mod:`skyedge.edge.field.conditions`), as is what is in the field
(:mod:`skyedge.edge.field.tracker`). An optional catalogue CSV (``id,x,y``; other
columns such as ``class`` are kept for audits) names objects to follow from
the start. After a restart the source first replays the last epochs already
reported (``replay``), so the objects' histories continue; the reference is the
tracker's own business (:mod:`skyedge.edge.field.tracker` rebuilds it).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skyedge.edge.sources import Ack, RawFrame, Rejected
from skyedge.edge.sources.folder import FolderSource
from skyedge.edge.sources.frame_type import calibration_reason
from skyedge.edge.sources.observation_time import observation_time
from skyedge.edge.sources.state import FileKey
from skyedge.errors import SkyedgeError
from skyedge.imageio import FrameGone, FrameReadError, read_frame

log = logging.getLogger(__name__)


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


class FitsSequenceSource(FolderSource):
    """Epoch frames in time order; a restart re-reads the reference's frames and the last ``history`` epochs."""

    def __init__(self, spec, once: bool, stop_event, history: int = 0):
        super().__init__(spec, once, stop_event)
        self.history = history

    def _sort_key(self, path: Path, st) -> tuple:
        from astropy.io import fits

        try:
            mjd, _ = observation_time(dict(fits.getheader(path)), str(path))
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
        return [read_epoch(path, self.spec.max_pixels, ack)]


def read_epoch(path: Path, max_pixels: int | None = None, ack: Ack | None = None) -> RawFrame | Rejected:
    """One epoch's frame as the camera wrote it, or why it cannot be one (raises FrameGone if it vanished).

    No keyword is required: conditions a raw frame lacks (seeing, sky, zero point, airmass) are measured when
    it is prepared (:mod:`skyedge.edge.field.conditions`)."""
    try:
        image, header = read_frame(path, max_pixels)
    except FrameGone:
        raise
    except FrameReadError as exc:
        return Rejected(path.name, str(path), str(exc), ack)
    calibration = calibration_reason(path, header)
    if calibration:
        return Rejected(path.name, str(path), calibration, ack)
    if image.ndim != 2:
        return Rejected(path.name, str(path), f"{path}: expected a 2-D frame, got shape {image.shape}", ack)
    return RawFrame(path.stem, str(path), image, dict(header), ack=ack)
