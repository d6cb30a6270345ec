"""Following a telescope field epoch by epoch: which objects exist, which are new, which are retired.

The :class:`FieldTracker` turns each epoch frame into an :class:`EpochView`:
the frame aligned to the reference grid and freed of its background, the
objects followed in it, the ones found new (with the recent frames they also
appear in, so their histories start before detection), and the ones retired.

* Objects present in the reference (or listed in a catalogue) are followed from
  the first epoch, for as long as the field is observed.
* Every epoch is differenced against the reference (:mod:`skyedge.edge.field.difference`);
  a residual within ``match_radius_px`` of an object confirms it, any other
  residual becomes a new object (residuals closer than the radius to each
  other, such as a dipole's two lobes, make one). Moving objects therefore
  appear once, where they were.
* An object found by differencing and not detected again for
  ``forget_after_epochs`` is retired; its row is reused.

Objects live in rows of arrays (the row is also the slot of the object's
recurrent state in :class:`skyedge.edge.field.sequences.StateStore`), so per-epoch
work is array work. Only the source thread calls the tracker.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skyedge.edge.field.difference import (
    Reference,
    detect_residuals,
    detect_sources,
    difference,
    measure_shift,
    shift_image,
    sky_level,
    stars,
)
from skyedge.errors import InputError

log = logging.getLogger(__name__)

MIN_SHIFT_PX = 0.25  # below this a measured drift is noise (on a small or sparse frame) or harmless: no resampling


@dataclass
class EpochView:
    """One epoch as the field sees it, after reference subtraction and association."""

    frame: object  # the RawFrame
    epoch: int  # 1, 2, ... in the order processed
    image: np.ndarray  # background-free, as taken (stamps are cut here, at each position minus ``shift``)
    conditions: dict
    shift: tuple[float, float]  # what moves this frame onto the reference grid
    detections: int  # residuals beyond the threshold
    followed: np.ndarray  # rows followed this epoch (new ones included)
    new: np.ndarray  # rows created this epoch
    history: list  # (image, conditions, shift) of the recent epochs before this one, oldest first
    retired: list[tuple[str, int]] = field(default_factory=list)  # (object id, row) retired after this epoch
    refused: int = 0  # new residuals not followed because max_objects was reached
    sigma: float = 0.0  # noise of the filtered difference image


class ObjectTable:
    """Rows of the field's objects: id, position, whether static, when last detected, how many epochs seen."""

    def __init__(self, capacity: int = 1024):
        self.ids = np.empty(capacity, dtype=object)
        self.x = np.zeros(capacity)
        self.y = np.zeros(capacity)
        self.static = np.zeros(capacity, dtype=bool)
        self.active = np.zeros(capacity, dtype=bool)
        self.last_detected = np.zeros(capacity, dtype=np.int64)
        self.n_epochs = np.zeros(capacity, dtype=np.int64)
        self.last_mjd = np.zeros(capacity)
        self.first_snr = np.zeros(capacity)

    def __len__(self) -> int:
        return int(self.active.sum())

    def add(self, ids: list[str], x: np.ndarray, y: np.ndarray, static: bool, epoch: int, snr=None) -> np.ndarray:
        """Rows for new objects (freed rows first, growing the arrays when full)."""
        free = np.flatnonzero(~self.active)
        if len(free) < len(ids):
            self._grow(len(self.active) + len(ids) - len(free))
            free = np.flatnonzero(~self.active)
        rows = free[: len(ids)]
        self.ids[rows] = ids
        self.x[rows], self.y[rows] = x, y
        self.static[rows] = static
        self.active[rows] = True
        self.last_detected[rows] = epoch
        self.n_epochs[rows] = 0
        self.last_mjd[rows] = np.nan
        self.first_snr[rows] = 0.0 if snr is None else snr
        return rows

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * len(self.active))
        for name in ("ids", "x", "y", "static", "active", "last_detected", "n_epochs", "last_mjd", "first_snr"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype) if old.dtype != object else np.empty(size, dtype=object)
            new[: len(old)] = old
            setattr(self, name, new)

    def rows(self) -> np.ndarray:
        """Active rows, in row order."""
        return np.flatnonzero(self.active)


def _background_free(frame) -> np.ndarray:
    """The frame's pixels minus its sky level, float32."""
    image = frame.image.astype(np.float32)
    return image - np.float32(sky_level(image))


class FieldTracker:
    """Reference, alignment, detection and association for one field (see the module docstring)."""

    def __init__(
        self, spec, max_epochs: int, catalog=None, reference: Reference | None = None, memory: Path | None = None
    ):
        self.spec = spec
        self.catalog = catalog
        self.reference = reference
        self.memory = memory  # where the frames the reference was built from are listed, for a restart
        self.objects = ObjectTable()
        self.ring: deque = deque(maxlen=max(0, min(spec.ring_epochs, max_epochs - 1)))
        self.pending: list = []  # (frame, background-free image, shift) waiting for the reference to be built
        self.epoch = 0
        self.grid_stars = None  # the stars of the reference grid, which each epoch is aligned to
        if reference is not None:
            self.grid_stars = stars(reference.image, reference.fwhm)
            self._seed_objects()
        else:
            self._rebuild()

    def _rebuild(self) -> None:
        """After a restart: the reference again from the frames it was built from (those still on disk; a gone
        one is replaced by a later epoch)."""
        if self.memory is None or not self.memory.exists():
            return
        from skyedge.edge.sources import RawFrame
        from skyedge.edge.sources.fits_sequence import read_epoch
        from skyedge.imageio import FrameGone

        try:
            names = json.loads(self.memory.read_text())["frames"]
        except (OSError, ValueError, KeyError) as exc:
            log.warning("%s: unreadable (%s); the reference is built from the next epochs", self.memory, exc)
            return
        for name in names:
            try:
                frame = read_epoch(Path(name))
            except (FrameGone, OSError):
                frame = None
            if not isinstance(frame, RawFrame):
                log.warning(
                    "%s: a reference frame is gone or unusable; the reference is rebuilt from later epochs", name
                )
                continue
            frame.replay = True  # reported before the restart: should it become an epoch again, it says nothing
            self.add_reference_frame(frame)

    # ------------------------------------------------------------------ reference

    def _seed_objects(self) -> None:
        """The objects followed from the start: the catalogue's, else the reference's sources."""
        if self.catalog is not None:
            ids = [e.id for e in self.catalog]
            x = np.array([e.x for e in self.catalog])
            y = np.array([e.y for e in self.catalog])
        else:
            found = detect_sources(self.reference.image, self.reference.fwhm, self.spec.detect_threshold_sigma)
            ids = [f"src-{i:05d}" for i in range(len(found.x))]
            x, y = found.x, found.y
            log.info("reference: %d sources above %.1f sigma", len(ids), self.spec.detect_threshold_sigma)
        self.objects.add(ids, x, y, static=True, epoch=0)

    def add_reference_frame(self, frame) -> None:
        """Use ``frame`` only to build the reference (after a restart: the frames it was built from)."""
        self._pending(frame)
        if len(self.pending) >= self.spec.reference_epochs:
            self._build_reference()
            self.pending.clear()

    def _pending(self, frame) -> None:
        image = _background_free(frame)
        if self.pending:
            shift = self._shift(image, frame)
        else:  # the first epoch sets the grid
            shift = (0.0, 0.0)
            if self.spec.align:
                self.grid_stars = stars(image, frame.header["conditions"]["fwhm"])
        self.pending.append((frame, image, shift))

    def _shift(self, image: np.ndarray, frame) -> tuple[float, float]:
        if not self.spec.align:
            return (0.0, 0.0)
        found = measure_shift(self.grid_stars, stars(image, frame.header["conditions"]["fwhm"]))
        if found is None:
            log.warning("%s: too few stars agree on a drift; the frame is taken as aligned", frame.frame_id)
            return (0.0, 0.0)
        return found if np.hypot(*found) >= MIN_SHIFT_PX else (0.0, 0.0)

    @staticmethod
    def _on_grid(image: np.ndarray, shift: tuple[float, float]) -> np.ndarray:
        return shift_image(image, *shift) if shift != (0.0, 0.0) else image

    def _build_reference(self) -> None:
        frames = [f for f, _, _ in self.pending]
        if self.memory is not None:
            try:
                tmp = self.memory.with_name(f".{self.memory.name}.tmp")
                tmp.write_text(json.dumps({"frames": [f.source for f in frames]}))
                os.replace(tmp, self.memory)
            except OSError as exc:  # the field goes on; a restart then builds its reference anew
                log.warning("%s: cannot remember the reference's frames (%s)", self.memory, exc)
        conditions = [f.header["conditions"] for f in frames]
        self.reference = Reference.stack(
            [self._on_grid(im, s) for _, im, s in self.pending],
            [c["fwhm"] for c in conditions],
            [c["zero_point"] for c in conditions],
        )
        log.info("reference built from %d epochs (FWHM %.2f px)", len(frames), self.reference.fwhm)
        self._seed_objects()

    # ------------------------------------------------------------------ epochs

    def observe(self, frame) -> list[EpochView]:
        """The epochs ready after ``frame``: none while the reference is being built, then each waiting one."""
        if self.reference is None:
            self._pending(frame)
            if len(self.pending) < self.spec.reference_epochs:
                return []
            self._build_reference()
            waiting, self.pending = self.pending, []
            return [self._epoch(f, image, shift) for f, image, shift in waiting]
        if frame.image.shape != self.reference.image.shape:
            # Reported by the runtime as a rejected input naming the file; the field carries on.
            raise InputError(
                f"frame shape {frame.image.shape} differs from the reference's {self.reference.image.shape} "
                "(binning or window changed?): not differenced"
            )
        image = _background_free(frame)
        return [self._epoch(frame, image, self._shift(image, frame))]

    def _epoch(self, frame, image: np.ndarray, shift: tuple[float, float]) -> EpochView:
        """Difference, detect, associate, retire; ``image`` is background-free, ``shift`` moves it onto the grid.
        Stamps are cut from ``image`` itself (the model never saw resampled pixels); only the difference image is
        made on the reference grid."""
        self.epoch += 1
        cond = frame.header["conditions"]
        diff, fwhm = difference(self._on_grid(image, shift), cond["fwhm"], cond["zero_point"], self.reference)
        found = detect_residuals(diff, fwhm, self.spec.detect_threshold_sigma)
        rows = self.objects.rows()
        new, refused = self._associate(found, rows, frame.frame_id)
        retired = self._retire()
        view = EpochView(
            frame=frame,
            epoch=self.epoch,
            image=image,
            conditions=cond,
            shift=shift,
            detections=len(found.x),
            followed=self.objects.rows(),
            new=new,
            history=list(self.ring),
            retired=retired,
            refused=refused,
            sigma=found.sigma,
        )
        if self.ring.maxlen:
            self.ring.append((image, cond, shift))
        return view

    def _associate(self, found, rows: np.ndarray, frame_id: str) -> tuple[np.ndarray, int]:
        """Mark objects with a residual within the radius as detected; return rows of new objects and how many
        residuals were refused for lack of room."""
        from scipy.spatial import cKDTree

        radius = self.spec.match_radius_px
        points = np.stack([found.x, found.y], axis=1)
        unmatched = np.ones(len(points), dtype=bool)
        if len(rows) and len(points):
            tree = cKDTree(np.stack([self.objects.x[rows], self.objects.y[rows]], axis=1))
            dist, idx = tree.query(points, distance_upper_bound=radius)
            hit = np.isfinite(dist)
            self.objects.last_detected[rows[idx[hit]]] = self.epoch
            unmatched = ~hit
        if not self.spec.detect_new or not unmatched.any():
            return np.zeros(0, dtype=np.int64), 0
        candidates = np.flatnonzero(unmatched)
        candidates = candidates[np.argsort(-np.abs(found.snr[candidates]))]  # strongest first
        keep: list[int] = []
        if len(candidates) > 1:
            taken = np.zeros(len(points), dtype=bool)
            neighbours = cKDTree(points[candidates]).query_ball_point(points[candidates], radius)
            for j, near in zip(candidates, neighbours, strict=True):
                if not taken[j]:
                    keep.append(int(j))
                    taken[candidates[near]] = True
        else:
            keep = [int(j) for j in candidates]
        room = max(self.spec.max_objects - len(self.objects), 0)
        refused = max(len(keep) - room, 0)
        keep = keep[:room]
        if refused:
            log.warning(
                "%s: %d new residuals not followed (max_objects %d reached)", frame_id, refused, self.spec.max_objects
            )
        if not keep:
            return np.zeros(0, dtype=np.int64), refused
        ids = [f"{frame_id}-n{k:04d}" for k in range(len(keep))]
        new = self.objects.add(ids, found.x[keep], found.y[keep], static=False, epoch=self.epoch, snr=found.snr[keep])
        return new, refused

    def _retire(self) -> list[tuple[str, int]]:
        o = self.objects
        gone = np.flatnonzero(o.active & ~o.static & (self.epoch - o.last_detected >= self.spec.forget_after_epochs))
        o.active[gone] = False
        return [(str(o.ids[r]), int(r)) for r in gone]
