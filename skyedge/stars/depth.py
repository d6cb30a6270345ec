"""How deep one camera sees: the completeness of its clear frames, pooled with forgetting, and the limiting
magnitudes per ring that it gives (:func:`~skyedge.stars.visibility.limiting_magnitudes`).

A camera's depth is its own and its site's, and it drifts over months: a dome that dirties, a camera replaced by a
less sensitive one, a hazy season. Limits learnt once, from a camera's first clear frames, then expect stars the
camera no longer sees, and clear skies read as cloud (on the real development camera, limits learnt in 2021 left
2023-24's clear zenith reading 0.14-0.29 lower: docs/results.md). So every clear frame teaches, and the pool
forgets: a new frame's counts add to what came before weighed ``1 - 1/MEMORY_FRAMES``, a memory of about
``MEMORY_FRAMES`` clear frames. The star watch offers it one frame per ``solve_every_s`` of capture time, so one
clear night's frames a minute apart do not outweigh the nights before.

Only clear frames teach (:func:`~skyedge.stars.visibility.clear_enough`, on the bright stars alone, whatever the
limits are). Under the moon or in twilight each star counts as fainter by as much as the limit is brighter there
(:func:`~skyedge.stars.visibility.moonlight_mag`, :func:`~skyedge.stars.visibility.twilight_mag`, the model that
expects fewer stars there); frames where that exceeds ``MAX_SHIFT_MAG`` teach nothing.

Clear frames also teach how bright the camera's stars are (:func:`~skyedge.stars.visibility.star_zero_point`):
the median of the last ``ZERO_POINT_FRAMES`` clear frames' zero points is the reference a frame's extinction is read
against. Short, so that it follows a season's haze and an exposure changed by hand within hours.

The pool is kept in the geometry file (``completeness``) so a restart carries on where it stopped, with the
deepest limits it gave once settled (``SETTLED_FRAMES``): a camera that has come to see ``DIMMED_BY_MAG`` less
deep in ``DIMMED_RINGS`` of its inner rings than it once did is worth a look (:meth:`DepthPool.dimmed_by`; the watch says so in
its log, and every message's ``stars.dimmed_mag`` carries it while it lasts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from skyedge.stars.visibility import (
    BINS,
    RINGS,
    clear_enough,
    completeness_counts,
    limiting_magnitudes,
    sky_allowance_mag,
)

LEARN_FRAMES = 3  # clear frames before a camera's limits are trusted
MEMORY_FRAMES = 200
MAX_SHIFT_MAG = 1.0
DIMMED_BY_MAG = 1.0
# Limits remembered as the deepest only from a pool of this many clear frames: on the real development camera the
# first few frames' limits reached Hp 5.5 at the zenith, a magnitude past what its settled pool gives.
SETTLED_FRAMES = 20
ZERO_POINT_FRAMES = 20
INNER_RINGS = 3  # the zenith disc and the rings to 54 deg: the horizon's rings vary with haze and lights
# A dome that dirties or dews, a lens out of focus, haze dim the whole sky, so a camera counts as dimmed only when
# this many inner rings see less deep. One ring alone is the limits' own noise: its deepest is the most a noisy
# estimate once touched (on the real development camera the 36-54 deg ring's touched Hp 5.0 once, its usual 4.0-4.5,
# and one ring alone called an ordinary camera dimmed on its last 17 test frames).
DIMMED_RINGS = 2
BINS_KEY = (float(BINS[0]), float(BINS[-1]), float(BINS[1] - BINS[0]))  # first, last, step: a pool's bins in its file


def dark_sky_counts(det, stars, lens, shape, mask=None, moon=None, sun_alt_deg: float | None = None):
    """One frame's completeness counts as a dark sky would give them (each star made fainter by the moon's and
    twilight's allowance), or None where the sky is more than ``MAX_SHIFT_MAG`` brighter: too bright to teach."""
    shift = sky_allowance_mag(moon, sun_alt_deg)
    if shift > MAX_SHIFT_MAG:
        return None
    return completeness_counts(det, stars, lens, shape, mask, moon, fainter_by=shift)


@dataclass(frozen=True, eq=False)
class DepthPool:
    """Pooled (seen, present) star counts per ring and magnitude bin; ``frames``: clear frames pooled, ever.
    Immutable: :meth:`added` returns a new pool."""

    seen: np.ndarray
    present: np.ndarray
    frames: int = 0
    deepest: tuple[float | None, ...] | None = None  # per ring, the faintest limit the pool gave once settled
    zero_points: tuple[float, ...] = ()  # the last ZERO_POINT_FRAMES clear frames' star zero points, oldest first

    @classmethod
    def empty(cls) -> DepthPool:
        """A camera that has taught nothing yet."""
        z = np.zeros((RINGS, len(BINS) - 1))
        return cls(z, z.copy())

    def added(self, counts: tuple[np.ndarray, np.ndarray] | None, zero_point: float | None = None) -> DepthPool:
        """This pool with one frame's counts (:func:`dark_sky_counts`) and star zero point added, or this pool
        itself when the frame was not clear (or too bright: None)."""
        if counts is None or not clear_enough(*counts):
            return self
        keep = 1.0 - 1.0 / MEMORY_FRAMES
        zps = self.zero_points if zero_point is None else (*self.zero_points, float(zero_point))[-ZERO_POINT_FRAMES:]
        return dataclasses.replace(
            self, seen=self.seen * keep + counts[0], present=self.present * keep + counts[1], frames=self.frames + 1, zero_points=zps
        )

    @property
    def reference_zero_point(self) -> float | None:
        """The clear frames' median star zero point, once ``LEARN_FRAMES`` of them gave one; else None."""
        return float(np.median(self.zero_points)) if len(self.zero_points) >= LEARN_FRAMES else None

    def limits(self, min_frames: int = LEARN_FRAMES) -> tuple[float | None, ...] | None:
        """Limiting magnitude per ring, or None before ``min_frames`` clear frames."""
        return limiting_magnitudes(self.seen, self.present) if self.frames >= min_frames else None

    def remembering(self, limits: tuple[float | None, ...]) -> DepthPool:
        """This pool, its deepest limits updated with ``limits`` once it holds ``SETTLED_FRAMES``."""
        if self.frames < SETTLED_FRAMES:
            return self
        old = self.deepest or (None,) * len(limits)
        deepest = tuple(a if b is None else b if a is None else max(a, b) for a, b in zip(old, limits, strict=True))
        return dataclasses.replace(self, deepest=deepest)

    def dimmed(self, limits: tuple[float | None, ...]) -> list[tuple[int, float | None, float]]:
        """(ring, limit now, deepest before) for the inner rings whose ``limits`` are ``DIMMED_BY_MAG`` or more
        shallower than the deepest this pool gave (a ring left with no limit at all counts)."""
        out = []
        for ring, (now, best) in enumerate(zip(limits[:INNER_RINGS], (self.deepest or ())[:INNER_RINGS], strict=False)):
            if best is not None and (now is None or now <= best - DIMMED_BY_MAG):
                out.append((ring, now, best))
        return out

    def dimmed_by(self, limits: tuple[float | None, ...] | None) -> float | None:
        """How many magnitudes less deep than the deepest they gave ``DIMMED_RINGS`` of the inner rings at least
        see now, when that is ``DIMMED_BY_MAG`` or more; else None. A ring left with no limit counts from the
        catalogue's brightest bin (the least it has lost)."""
        lost = sorted((best - (BINS[0] if now is None else now) for _, now, best in self.dimmed(limits or ())), reverse=True)
        return round(float(lost[DIMMED_RINGS - 1]), 2) if len(lost) >= DIMMED_RINGS else None

    def to_dict(self) -> dict:
        """The geometry file's ``completeness`` entry."""
        return {
            "frames": self.frames,
            "deepest_limits": None if self.deepest is None else [None if v is None else round(v, 2) for v in self.deepest],
            "memory_frames": MEMORY_FRAMES,
            "magnitude_bins": list(BINS_KEY),
            "seen": np.round(self.seen, 2).tolist(),
            "present": np.round(self.present, 2).tolist(),
            "zero_points": [round(v, 3) for v in self.zero_points],
        }

    @classmethod
    def from_dict(cls, doc: dict) -> DepthPool | None:
        """A pool read back from :meth:`to_dict`; None for one counted in other magnitude bins (relearnt).
        Raises ValueError naming the key."""
        if not isinstance(doc, dict):
            raise ValueError("completeness must be a mapping")
        bins = doc.get("magnitude_bins")
        if not isinstance(bins, list) or tuple(bins) != BINS_KEY:
            return None
        arrays = []
        for key in ("seen", "present"):
            try:
                a = np.asarray(doc[key], float)
            except KeyError:
                raise ValueError(f"completeness.{key} is missing") from None
            except (TypeError, ValueError):
                raise ValueError(f"completeness.{key} must be a table of numbers") from None
            if a.shape != (RINGS, len(BINS) - 1) or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"completeness.{key} must be {RINGS} rows of {len(BINS) - 1} counts >= 0")
            arrays.append(a)
        if np.any(arrays[0] > arrays[1] + 0.01):
            raise ValueError("completeness.seen exceeds completeness.present")
        try:
            frames = int(doc.get("frames", 0))
        except (TypeError, ValueError):
            raise ValueError("completeness.frames must be a whole number") from None
        deepest = doc.get("deepest_limits")
        try:
            deepest = None if deepest is None else tuple(None if v is None else float(v) for v in deepest)
        except (TypeError, ValueError):
            raise ValueError("completeness.deepest_limits must be a list of magnitudes or nulls") from None
        try:  # absent in files written before the zero point was learnt: it is learnt afresh
            zps = tuple(float(v) for v in doc.get("zero_points") or ())
        except (TypeError, ValueError):
            raise ValueError("completeness.zero_points must be a list of numbers") from None
        if not all(np.isfinite(zps)):
            raise ValueError("completeness.zero_points must be finite numbers")
        return cls(arrays[0], arrays[1], frames, deepest, zps[-ZERO_POINT_FRAMES:])
