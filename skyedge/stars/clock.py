"""The camera's clock checked against the sky: with the lens known, when do the frame's stars match?

A capture time off by an hour (a time zone set wrong, a daylight-saving change the camera made and the pipeline did
not) turns the predicted sky 15 deg about the celestial pole. The stars then miss their predicted places, which
reads as cloud, and a blind solve at the stated time either fails or, worse, fits a lens shifted and turned to make
up for it: a simulated frame taken 30 or 60 minutes after its stated time solved to a zenith 15-31 px and north 5-10
deg from the truth, matching enough stars to be believed (tests/test_stars.py). The sky says which: the saved lens
matches the frame's stars at the right time and at no other.

:func:`clock_check` turns the sky through +-``SPAN_S`` in ``COARSE_S`` steps (matching within 3 deg, which the step
cannot jump), then minute by minute around the best (within 1 deg). An offset is believed when it matches as many
stars as a solve needs, twice what the stated time matches, and twice what an hour either side of it matches
(chance alone in this frame). A shifted and turned camera can mimic a turned sky, so the star watch also weighs it
against a blind solve at the stated time (:mod:`skyedge.stars.watch`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyedge.stars.catalogue import StarCatalogue, rotation_about
from skyedge.stars.detection import Detections
from skyedge.stars.lens import Lens
from skyedge.stars.solve import (
    CHANCE_RATIO,
    FIT_MIN_ALT_DEG,
    MIN_MATCHED,
    MIN_MATCHED_SHARE,
    NoGeometry,
    Solution,
    fit_to_pairs,
    matched_count,
    refine,
    stars_to_match,
)

SPAN_S = 12 * 3600.0  # a clock off by up to half a day (a time zone's worth either way)
COARSE_S = 600.0  # the sky turns 2.5 deg in ten minutes: within the coarse pass's 3 deg
FINE_S = 60.0
# Closer than this, a camera turned a few degrees about its zenith (nudged) matches as well as a clock off (on the
# real development camera, lenses of a pose next door matched 6-7 minutes off); the slips that matter, a time zone or
# daylight saving, are 30 minutes or more.
MIN_OFFSET_S = 900.0
OTHER_TIME_STEP_S = 1800.0  # time zones and daylight saving move by whole or half hours
OTHER_TIME_GAIN = 1.25
SIDEREAL_DEG_PER_S = 360.0 / 86164.0905


@dataclass(frozen=True)
class ClockCheck:
    """When the frame's stars match the lens: the best offset from the stated time and how many matched."""

    offset_s: float
    matched: int  # at the best offset
    matched_stated: int  # at the stated time
    matched_aside: int  # the most an hour either side of the best matches: chance alone
    detected: int

    @property
    def believed(self) -> bool:
        """Whether the sky clearly says the stated time is off by ``offset_s``."""
        need = max(MIN_MATCHED, MIN_MATCHED_SHARE * self.detected)
        return (
            abs(self.offset_s) >= MIN_OFFSET_S
            and self.matched >= need
            and self.matched >= CHANCE_RATIO * max(self.matched_stated, self.matched_aside, 1)
        )

    def describe(self) -> str:
        """E.g. '+1 h 00 min (64 stars matched there, 5 at the stated time)'."""
        sign = "+" if self.offset_s >= 0 else "-"
        minutes = int(round(abs(self.offset_s) / 60.0))
        return f"{sign}{minutes // 60} h {minutes % 60:02d} min ({self.matched} stars matched there, {self.matched_stated} at the stated time)"


def clock_check(
    det: Detections, lens: Lens, catalogue: StarCatalogue, site: tuple[float, float, float], posix: float, span_s: float = SPAN_S
) -> ClockCheck:
    """The offset from ``posix`` at which ``lens`` puts the catalogue's stars on the frame's detections."""

    def count(offset: float, radius_deg: float) -> int:
        return matched_count(lens, det, stars_to_match(catalogue, site, posix + offset, len(det)), radius_deg)

    coarse = np.arange(-span_s, span_s + COARSE_S / 2, COARSE_S)
    best = float(coarse[int(np.argmax([count(o, 3.0) for o in coarse]))])
    fine = np.arange(best - COARSE_S, best + COARSE_S + FINE_S / 2, FINE_S)
    counts = np.array([count(o, 1.0) for o in fine])
    best = float(np.median(fine[counts == counts.max()]))  # a star sits within 1 deg for several minutes: the middle
    return ClockCheck(
        offset_s=best,
        matched=int(counts.max()),
        matched_stated=count(0.0, 1.0),
        matched_aside=max(count(best - 3600.0, 1.0), count(best + 3600.0, 1.0)),
        detected=len(det),
    )


def turned(alt_deg: np.ndarray, az_deg: np.ndarray, latitude_deg: float, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the stars at (alt, az) stand ``dt_s`` later: the sky turned about the celestial pole (refraction and the
    stars' own motions left out: arcminutes)."""
    a, z = np.radians(alt_deg), np.radians(az_deg)
    v = np.stack([np.cos(a) * np.sin(z), np.cos(a) * np.cos(z), np.sin(a)], axis=1)  # east, north, up
    lat = np.radians(latitude_deg)
    pole = np.array([0.0, np.cos(lat), np.sin(lat)])  # the Earth's axis, towards the north celestial pole
    # The sky turns clockwise about the north pole, seen from inside.
    v = v @ rotation_about(pole, -math.radians(SIDEREAL_DEG_PER_S * dt_s)).T
    return np.degrees(np.arcsin(np.clip(v[:, 2], -1.0, 1.0))), np.degrees(np.arctan2(v[:, 0], v[:, 1])) % 360.0


def solved_at_another_time(
    det: Detections, catalogue: StarCatalogue, site: tuple[float, float, float], posix: float, stated: Solution
) -> tuple[Solution, ClockCheck] | None:
    """With no lens yet to check the clock against: is the frame's sky a better fit at another time? For every half
    hour within +-``SPAN_S``, the stars the stated time's solution matched are turned with the sky, and the lens is
    refitted to them; when one matches ``OTHER_TIME_GAIN`` times the stars the stated time's solution does (a lens
    shifted and turned to make up for a wrong time fits the sky worse than the right lens at the right time), that
    solution and its clock check (to the minute), else None. 0.2-0.8 s: the pairs are known, nothing is voted.

    Half an hour of the sky's turn is nearly absorbed by the lens (a zenith 13 px and north 7 deg away matches as many
    real stars): on the real development camera, frames stamped an hour early were flagged 9 times in 10, 7 of them
    at the right hour and lens, 2 at half an hour with a lens 13-14 px off; frames stamped 30 minutes off are not
    told; no frame at its right time (111) was flagged (docs/results.md)."""
    dx, dy, alt0, az0, _ = stated.pairs
    lens0 = stated.lens
    seen_at = np.arctan2(-(dx - lens0.cx), -(dy - lens0.cy))
    best: Solution | None = None
    for offset in np.arange(-SPAN_S, SPAN_S + 1.0, OTHER_TIME_STEP_S):
        if offset == 0.0:
            continue
        alt, az = turned(alt0, az0, site[0], float(offset))
        up = alt >= FIT_MIN_ALT_DEG
        if up.sum() < MIN_MATCHED:
            continue
        px, py = lens0.project(alt[up], az[up])
        # The turn about the zenith that best carries the turned stars onto their detections starts the fit.
        d = seen_at[up] - np.arctan2(-(px - lens0.cx), -(py - lens0.cy))
        start = lens0.with_(north_deg=float(lens0.north_deg + np.degrees(np.arctan2(np.sin(d).mean(), np.cos(d).mean()))) % 360.0)
        try:  # matched afresh within 3 deg, then 1: the stated solution's pairs are partly wrong stars
            sol = refine(fit_to_pairs(start, dx[up], dy[up], alt[up], az[up]), [(det, stars_to_match(catalogue, site, posix + float(offset), len(det)))], (lens0.projection,))
        except NoGeometry:
            continue
        if best is None or sol.matched > best.matched:
            best = sol
    if best is None or best.matched < OTHER_TIME_GAIN * stated.matched:
        return None
    check = clock_check(det, best.lens, catalogue, site, posix)
    return (best, check) if check.believed else None
