"""Following a telescope field epoch by epoch: which objects exist, which are new, which are retired.

The :class:`FieldTracker` turns each epoch frame into an :class:`EpochView`:
the frame aligned to the reference grid and freed of its background, the
objects followed in it, the ones found new (with the recent frames they also
appear in, so their histories start before detection), and the ones retired.

* Objects present in the reference (or listed in a catalogue) are followed from
  the first epoch, for as long as the field is observed.
* Every frame is measured, aligned and masked first (:mod:`skyedge.edge.field.epoch_prep`): conditions from
  the header or measured, a transform onto the reference grid (drift, rotation, a meridian flip), and the
  pixels that must not be differenced (saturation, hot pixels, bad lines, the edges after the warp).
* Every epoch is differenced against the reference (:mod:`skyedge.edge.field.difference`), on the pixels
  both have;
  a residual within ``match_radius_px`` of an object confirms it, any other
  residual becomes a new object (residuals closer than the radius to each
  other, such as a dipole's two lobes, make one) once the physics
  (:mod:`skyedge.edge.field.vetting`) and the learnt stage
  (:mod:`skyedge.edge.field.real_bogus`) call it real and its stamp lies on data
  both images have. Moving objects therefore appear once, where they were.
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

from skyedge.edge.field import real_bogus
from skyedge.edge.field.align import Alignment, warp
from skyedge.edge.field.conditions import relative_flux
from skyedge.edge.field.difference import Reference, detect_residuals, detect_sources, difference
from skyedge.edge.field.epoch_prep import FramePreparer, Prepared
from skyedge.edge.field.vetting import Vetter
from skyedge.errors import InputError

log = logging.getLogger(__name__)

MIN_SHIFT_PX = 0.25  # below this a pure drift is noise (on a small or sparse frame) or harmless: no resampling
EDGE_MARGIN_FWHM = 2.0  # pixels this close (in seeing FWHMs) to where either image has no data are not differenced


@dataclass
class EpochView:
    """One epoch as the field sees it, after reference subtraction and association."""

    frame: object  # the RawFrame
    epoch: int  # 1, 2, ... in the order processed
    image: np.ndarray  # background-free, as taken (stamps are cut here, where the alignment maps each position)
    conditions: dict
    alignment: Alignment  # frame pixels -> the reference grid
    detections: int  # residuals beyond the threshold
    followed: np.ndarray  # rows followed this epoch (new ones included)
    new: np.ndarray  # rows created this epoch
    history: list  # (image, conditions, alignment) of the recent epochs before this one, oldest first
    retired: list[tuple[str, int]] = field(default_factory=list)  # (object id, row) retired after this epoch
    refused: int = 0  # new residuals not followed because max_objects was reached
    bogus: dict = field(default_factory=dict)  # residuals judged bogus, by reason (skyedge.edge.field.vetting)
    sigma: float = 0.0  # noise of the filtered difference image
    sources: dict = field(default_factory=dict)  # where each condition came from (header, measured, assumed)


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
        self.detected_epochs = np.zeros(capacity, dtype=np.int64)  # epochs brighter than the reference (vetted)

    def __len__(self) -> int:
        return int(self.active.sum())

    def add(self, ids: list[str], x: np.ndarray, y: np.ndarray, static: bool, epoch: int) -> np.ndarray:
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
        self.detected_epochs[rows] = 0 if static else 1  # found by differencing: its first detection
        return rows

    def _grow(self, needed: int) -> None:
        size = max(needed, 2 * len(self.active))
        for name in ("ids", "x", "y", "static", "active", "last_detected", "n_epochs", "last_mjd", "detected_epochs"):
            old = getattr(self, name)
            new = np.zeros(size, dtype=old.dtype) if old.dtype != object else np.empty(size, dtype=object)
            new[: len(old)] = old
            setattr(self, name, new)

    def rows(self) -> np.ndarray:
        """Active rows, in row order."""
        return np.flatnonzero(self.active)


class FieldTracker:
    """Reference, alignment, detection and association for one field (see the module docstring)."""

    def __init__(
        self,
        spec,
        max_epochs: int,
        catalog=None,
        reference: Reference | None = None,
        memory: Path | None = None,
        stamp_size: int = 21,
    ):
        self.spec = spec
        self.stamp_half = stamp_size // 2  # a new object's stamp must lie on data both images have
        self.catalog = catalog
        self.reference = reference
        self.memory = memory  # where the frames the reference was built from are listed, for a restart
        self.objects = ObjectTable()
        # Recent frames serve only objects found by differencing (their histories start before detection).
        keep = min(spec.ring_epochs, max_epochs - 1) if spec.detect_new else 0
        self.ring: deque = deque(maxlen=max(0, keep))
        self.pending: list[Prepared] = []  # frames waiting for the reference to be built
        self.preparer = FramePreparer(spec)
        self.vetter = Vetter()
        # The learnt stage after the physics (checked at start: a missing model stops the field before any frame).
        self.learnt = real_bogus.load(spec.real_bogus_model) if spec.real_bogus else None
        self.harvest = None  # f(frame, x, y, snr, triplets, physics_real): every new residual, for training data
        self.reference_bad: np.ndarray | None = None  # the reference grid's pixels not to difference
        self.epoch = 0
        self.grid_stars = None  # the stars of the reference grid, which each epoch is aligned to
        if reference is not None:
            from skyedge.edge.field.difference import stars

            self.grid_stars = stars(reference.image, reference.fwhm)
            self.reference_bad = np.zeros(reference.image.shape, bool)
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

    def _prepare(self, frame) -> Prepared:
        """The frame prepared; a drift too small to matter is not undone (no resampling, stamps where they were)."""
        p = self.preparer.prepare(frame, self.grid_stars)
        a = p.alignment
        if a.is_translation and np.hypot(*a.shift) < MIN_SHIFT_PX:
            p.alignment = Alignment.identity(a.matched, a.residual_px)
        return p

    def _pending(self, frame) -> None:
        prepared = self._prepare(frame)
        if self.grid_stars is None:  # the first epoch sets the grid
            self.grid_stars = prepared.stars
        self.pending.append(prepared)

    def _on_grid(self, image: np.ndarray, alignment: Alignment) -> np.ndarray:
        """``image`` (frame pixels) on the reference grid."""
        if alignment.is_translation and alignment.shift == (0.0, 0.0):
            return image.astype(np.float32, copy=False)  # read, never written
        return warp(image, alignment, image.shape)

    def _bad_on_grid(self, p: Prepared) -> np.ndarray:
        """The frame's bad pixels on the reference grid: every grid pixel any of them reaches (a lone hot pixel
        moved by half a pixel touches four, none of them by more than half)."""
        return self._on_grid(p.bad.astype(np.float32), p.alignment) > 1e-3  # NaN (off the frame) is not bad

    def _build_reference(self) -> None:
        frames = [p.frame for p in self.pending]
        if self.memory is not None:
            try:
                tmp = self.memory.with_name(f".{self.memory.name}.tmp")
                tmp.write_text(json.dumps({"frames": [f.source for f in frames]}))
                os.replace(tmp, self.memory)
            except OSError as exc:  # the field goes on; a restart then builds its reference anew
                log.warning("%s: cannot remember the reference's frames (%s)", self.memory, exc)
        first = self.pending[0]
        base = first.conditions["zero_point"]
        if not np.isfinite(base):
            base = self.spec.zero_point
            first.conditions["zero_point"], first.sources["zero_point"] = base, "configured"
        on_grid = [self._on_grid(p.clean, p.alignment) for p in self.pending]
        for p, image in zip(self.pending[1:], on_grid[1:], strict=True):
            self._zero_point(p, image, on_grid[0], base, first.stars)
        self.reference = Reference.stack(
            on_grid,
            [p.conditions["fwhm"] for p in self.pending],
            [p.conditions["zero_point"] for p in self.pending],
            float(first.conditions["noise"]),
        )
        bad = [self._bad_on_grid(p) for p in self.pending]
        self.reference_bad = np.logical_or.reduce(bad)
        log.info("reference built from %d epochs (FWHM %.2f px)", len(frames), self.reference.fwhm)
        self._seed_objects()

    def _zero_point(self, p: Prepared, on_grid: np.ndarray, against: np.ndarray, base: float, xy: np.ndarray) -> None:
        """The frame's zero point relative to an image on the same grid whose zero point is ``base``, from the
        stars both show (header MAGZP, when given, stays)."""
        if np.isfinite(p.conditions.get("zero_point", np.nan)):
            return
        ratio = relative_flux(on_grid, against, xy[:50], radius=1.5 * p.conditions["fwhm"])
        if ratio is None:
            p.conditions["zero_point"], p.sources["zero_point"] = base, "assumed"
        else:
            p.conditions["zero_point"], p.sources["zero_point"] = base + 2.5 * np.log10(ratio), "measured"

    # ------------------------------------------------------------------ epochs

    def observe(self, frame) -> list[EpochView]:
        """The epochs ready after ``frame``: none while the reference is being built, then each waiting one."""
        if self.reference is not None and frame.image.shape != self.reference.image.shape:
            # Reported by the runtime as a rejected input naming the file; the field carries on.
            raise InputError(
                f"frame shape {frame.image.shape} differs from the reference's {self.reference.image.shape} "
                "(binning or window changed?): not differenced"
            )
        if self.reference is None:
            self._pending(frame)
            if len(self.pending) < self.spec.reference_epochs:
                return []
            self._build_reference()
            waiting, self.pending = self.pending, []
            return [self._epoch(p) for p in waiting]
        return [self._epoch(self._prepare(frame))]

    def _epoch(self, p: Prepared) -> EpochView:
        """Difference, detect, associate, retire. Stamps are cut from the frame as taken (the model never saw
        resampled pixels); only the difference image is made on the reference grid, from the pixels both have."""
        import cv2

        self.epoch += 1
        on_grid = self._on_grid(p.clean, p.alignment)
        ref_xy = np.stack(p.alignment.to_reference(p.stars[:, 0], p.stars[:, 1]), axis=1) if len(p.stars) else p.stars
        self._zero_point(p, on_grid, self.reference.image, self.reference.zero_point, ref_xy)
        cond = p.conditions
        if not np.isfinite(self.reference.noise):
            # A configured template (often a deep stack) is quieter than any frame: a noise-scaled model's flux unit
            # is one frame's noise, the first epoch's, brought to the template's zero point.
            self.reference.noise = float(cond["noise"] * 10.0 ** (0.4 * (self.reference.zero_point - cond["zero_point"])))
        diff, fwhm, template = difference(on_grid, cond["fwhm"], cond["zero_point"], self.reference)
        covered = np.isfinite(on_grid) & np.isfinite(self.reference.image)
        margin = max(3, int(round(EDGE_MARGIN_FWHM * fwhm)))
        square = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)

        def eroded(mask: np.ndarray) -> np.ndarray:
            # Outside the grid counts as no data: the frame's own edge is an edge too.
            return cv2.erode(mask.astype(np.uint8), square, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)

        usable = eroded(covered & ~self._bad_on_grid(p) & ~self.reference_bad)
        found = detect_residuals(diff, fwhm, self.spec.detect_threshold_sigma, usable=usable, template=template)
        rows = self.objects.rows()
        # A new object's stamp must lie on data both images have (eroded by the margin already; its remaining
        # half-width is checked per residual). Masked pixels (a saturated star's halo) are data the model can see
        # in the frame as taken: only detection leaves them out.
        images = (on_grid, template, diff)
        half = max(self.stamp_half - margin, 0)
        new, refused, bogus = self._associate(found, rows, p, fwhm, eroded(covered), half, images)
        retired = self._retire()
        view = EpochView(
            frame=p.frame,
            epoch=self.epoch,
            image=p.image,
            conditions=cond,
            alignment=p.alignment,
            detections=len(found.x),
            followed=self.objects.rows(),
            new=new,
            history=list(self.ring),
            retired=retired,
            refused=refused,
            bogus=bogus,
            sigma=found.sigma,
            sources=p.sources,
        )
        if self.ring.maxlen:
            self.ring.append((p.image, cond, p.alignment))
        return view

    def _associate(
        self, found, rows: np.ndarray, p: Prepared, fwhm: float, covered: np.ndarray, half: int, images: tuple
    ) -> tuple[np.ndarray, int, dict]:
        """Mark objects with a residual within the radius as detected; return rows of new objects, how many
        residuals were refused for lack of room, and how many were bogus (by reason; ``edge``: a new residual
        whose stamp, ``half`` px about it, leaves ``covered``, the data both images have). ``images``: frame on
        the grid, matched template, difference (the learnt stage's triplets)."""
        from scipy.spatial import cKDTree

        radius = self.spec.match_radius_px
        points = np.stack([found.x, found.y], axis=1)
        unmatched = np.ones(len(points), dtype=bool)
        if len(rows) and len(points):
            tree = cKDTree(np.stack([self.objects.x[rows], self.objects.y[rows]], axis=1))
            dist, idx = tree.query(points, distance_upper_bound=radius)
            hit = np.isfinite(dist)
            self.objects.last_detected[rows[idx[hit]]] = self.epoch
            # A detection counts towards an object being a candidate only when it brightened and is no artefact:
            # a bright star's misregistration dipole or a faded reference pixel is at the star, and would
            # otherwise make bright stars "transients".
            counted = np.flatnonzero(hit & (found.snr > 0))
            if self.spec.real_bogus and len(counted):
                counted = counted[self.vetter.vet(found, counted, p, fwhm).real]
            self.objects.detected_epochs[rows[np.unique(idx[counted])]] += 1
            unmatched = ~hit
        if not self.spec.detect_new or not unmatched.any():
            return np.zeros(0, dtype=np.int64), 0, {}
        candidates = np.flatnonzero(unmatched)
        bogus, real = {}, np.ones(len(candidates), bool)
        if self.spec.real_bogus:
            vetted = self.vetter.vet(found, candidates, p, fwhm)
            real, bogus = vetted.real, vetted.bogus
        if self.harvest is not None or (self.learnt is not None and real.any()):
            x, y = found.x[candidates], found.y[candidates]
            stamps = real_bogus.triplets(*images, x, y, float(p.conditions["noise"]))
            if self.harvest is not None:
                self.harvest(p.frame, x, y, found.snr[candidates], stamps, real.copy())
            if self.learnt is not None and real.any():
                passed = np.flatnonzero(real)
                refused_by_model = self.learnt.p_real(stamps[passed]) < self.learnt.threshold
                real[passed[refused_by_model]] = False
                bogus = {**bogus, "learnt": int(refused_by_model.sum())}
        candidates = candidates[real]
        # A residual becomes an object only if its whole stamp lies on data: a stamp cut off by the frame's
        # edge is what the model was never shown (on a real night, every SN candidate was one).
        on_data = np.array([_window_on(covered, found.x[j], found.y[j], half) for j in candidates], dtype=bool)
        bogus = {**bogus, "edge": int((~on_data).sum())}
        candidates = candidates[on_data]
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
        frame_id = p.frame.frame_id
        if refused:
            log.warning(
                "%s: %d new residuals not followed (max_objects %d reached)", frame_id, refused, self.spec.max_objects
            )
        if not keep:
            return np.zeros(0, dtype=np.int64), refused, bogus
        ids = [f"{frame_id}-n{k:04d}" for k in range(len(keep))]
        new = self.objects.add(ids, found.x[keep], found.y[keep], static=False, epoch=self.epoch)
        return new, refused, bogus

    def _retire(self) -> list[tuple[str, int]]:
        o = self.objects
        gone = np.flatnonzero(o.active & ~o.static & (self.epoch - o.last_detected >= self.spec.forget_after_epochs))
        o.active[gone] = False
        return [(str(o.ids[r]), int(r)) for r in gone]


def _window_on(usable: np.ndarray, x: float, y: float, half: int) -> bool:
    """Whether the (2 half + 1)-px square about (x, y) lies wholly on ``usable`` pixels (and on the grid)."""
    ix, iy = int(round(x)), int(round(y))
    if iy - half < 0 or ix - half < 0 or iy + half >= usable.shape[0] or ix + half >= usable.shape[1]:
        return False
    return bool(usable[iy - half : iy + half + 1, ix - half : ix + half + 1].all())
