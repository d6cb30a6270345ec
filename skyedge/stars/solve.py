"""A camera's geometry from its own night frames: stars matched to the catalogue with no prior beyond "the camera
looks up".

For one frame (site and capture time known):

1. **Vote.** The brightest detected stars and the brightest catalogue stars above 15 deg are compared under
   every candidate zenith pixel (within 15% of the frame's shorter side of its centre), horizon radius (0.2-0.8
   of the shorter side) and mirror sense. Under the right zenith and radius, a detected star and its catalogue
   star share a zenith angle, and the difference of their image angle and azimuth is the rotation of north:
   pairs at equal zenith angle vote for a rotation, and the candidate with the tallest peak wins (a Hough
   transform; the true peak collects most of the bright stars, chance pairs spread over 360 deg). Coarse, then
   fine around the ``VOTE_FINE`` best candidates.
2. **Fit.** Catalogue stars are projected with the candidate lens, each detection takes its nearest star within
   a radius that shrinks from 3 to 1 degree, and the zenith pixel, horizon radius and north are fitted by
   least squares (robust loss), for each projection; the projection with the smallest residual wins.

Several frames are then fitted jointly (:func:`solve_frames`). A frame with too few matched stars (cloud, moon
glare, day) yields no geometry, and says why; so does one whose match is no better than chance (the same lens
turned a few degrees matching half as many: detections too dense, as a colour camera's hot pixels make them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from skyedge.stars.catalogue import StarCatalogue, StarsAt
from skyedge.stars.detection import Detections
from skyedge.stars.lens import MAX_TILT_DEG, NO_DISTORTION, PROJECTIONS, Lens, check_distortion, check_tilt, radius_of

MIN_MATCHED = 20  # matched stars a geometry needs before it is believed
# ... and the share of the detections they must be: a wrong lens still catches a few stars by chance (on the real
# development camera, wrong solutions matched 7-11% of the detections, right ones 60-95%).
MIN_MATCHED_SHARE = 0.3
# ... and this many times what the same lens turned 5-10 deg about the zenith matches (chance alone, in this frame):
# among 1,459 detections of a colour frame with 300 debayered hot pixels, a wrong lens matched 474, the turned ones
# 459-469; a right one on a clean frame 304 against 24-35.
CHANCE_RATIO = 2.0
VOTE_STARS = 60  # brightest detections and catalogue stars compared in the vote
VOTE_MIN_ALT_DEG = 15.0
# Best coarse candidates searched finely: on the real development camera the right one often ranks behind chance
# peaks (of its 170 clear frames the 6 best solved 100, the 40 best 111, the 100 best 118, the 200 best 120, none
# wrong; 0.15, 0.29 and 0.46 s a frame for 40, 100 and 200 with this vote on 2 cores).
VOTE_FINE = 100
FIT_MIN_ALT_DEG = 8.0
# A lens's shape beyond its projection (Lens.tilt and Lens.distortion) is fitted once this many stars are matched,
# reaching this far from the zenith (a tilt and a bend show towards the edge), and kept where it brings the residual
# to this share of what the level, unbent lens leaves, matching about as many stars; each bend term within the bound.
SHAPE_MIN_STARS = 40
SHAPE_MIN_ZENITH_DEG = 55.0
SHAPE_GAIN = 0.9
DISTORTION_BOUND = 0.3


class NoGeometry(ValueError):
    """A frame that cannot give a geometry, and why."""


@dataclass(frozen=True)
class Solution:
    """A fitted geometry and how well it holds."""

    lens: Lens
    matched: int
    detected: int
    rms_px: float
    rms_deg: float
    frames: int = 1
    # Matched pairs (detection x, y; catalogue alt, az, mag), for limiting magnitudes and plots.
    pairs: tuple[np.ndarray, ...] = field(default=(), repr=False, compare=False)

    def summary(self) -> dict:
        """Report fields."""
        return {
            "matched_stars": self.matched,
            "detected_stars": self.detected,
            "rms_px": round(self.rms_px, 3),
            "rms_deg": round(self.rms_deg, 4),
            "frames": self.frames,
        }


def _vote(det_xy: np.ndarray, cat_zen: np.ndarray, cat_az: np.ndarray, cands: np.ndarray, tol_deg: float, bin_deg: float):
    """Peak vote and rotation for each candidate (cx, cy, radius, sign) (rows of ``cands``)."""
    nbins = int(round(360.0 / bin_deg))
    # Only pairs at nearly equal zenith angle vote: with the catalogue sorted by zenith angle, each detection's
    # partners are one run of it, found by bisection (a few of the 60, not every one compared: 5-6x faster).
    order = np.argsort(cat_zen, kind="stable")
    zen_s, az_s = cat_zen[order], cat_az[order]
    scores = np.zeros(len(cands))
    north = np.zeros(len(cands))
    for start in range(0, len(cands), 256):
        c = cands[start : start + 256]
        dx = det_xy[None, :, 0] - c[:, 0:1]
        dy = det_xy[None, :, 1] - c[:, 1:2]
        zen_d = (np.hypot(dx, dy) / c[:, 2:3] * 90.0).ravel()  # equidistant for the vote: the projections differ little above 15 deg
        ang_d = np.degrees(np.arctan2(-dx, -dy)).ravel()
        lo = np.searchsorted(zen_s, zen_d - tol_deg - 1e-6, side="left")  # a little wide: the exact test follows
        hi = np.searchsorted(zen_s, zen_d + tol_deg + 1e-6, side="right")
        n = hi - lo
        pair = np.repeat(np.arange(len(zen_d)), n)  # (candidate, detection) flattened
        star = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        close = np.abs(zen_d[pair] - zen_s[star]) < tol_deg
        pair, star = pair[close], star[close]
        k = pair // det_xy.shape[0]
        # north = image angle - sign * azimuth
        rot = (ang_d[pair] - c[k, 3] * az_s[star]) % 360.0
        bins = (rot / bin_deg).astype(np.int64) % nbins
        hist = np.bincount(k * nbins + bins, minlength=len(c) * nbins).reshape(len(c), nbins)
        hist = hist + np.roll(hist, 1, axis=1)  # a peak on a bin edge is not split
        best = hist.argmax(axis=1)
        scores[start : start + len(c)] = hist[np.arange(len(c)), best]
        north[start : start + len(c)] = best * bin_deg
    return scores, north


def _candidates(centre: tuple[float, float], span: float, step: float, radii: np.ndarray) -> np.ndarray:
    offsets = np.arange(-span, span + 1e-9, step)
    cx, cy, r, s = np.meshgrid(centre[0] + offsets, centre[1] + offsets, radii, np.array([1.0, -1.0]), indexing="ij")
    return np.stack([cx.ravel(), cy.ravel(), r.ravel(), s.ravel()], axis=1)


def vote(det: Detections, stars: StarsAt, shape: tuple[int, int]) -> tuple[Lens, float]:
    """The best equidistant lens by voting (coarse, then fine), and its vote."""
    h, w = shape
    side = min(h, w)
    d = det.brightest(VOTE_STARS)
    det_xy = np.stack([d.x, d.y], axis=1)
    up = stars.subset(stars.alt_deg >= VOTE_MIN_ALT_DEG)
    order = np.argsort(up.mag, kind="stable")[:VOTE_STARS]
    cat_zen, cat_az = 90.0 - up.alt_deg[order], up.az_deg[order]
    coarse = _candidates(((w - 1) / 2, (h - 1) / 2), 0.15 * side, 0.025 * side, side * np.arange(0.2, 0.81, 0.03))
    scores, north = _vote(det_xy, cat_zen, cat_az, coarse, tol_deg=4.0, bin_deg=3.0)
    best = None
    for i in np.argsort(-scores)[:VOTE_FINE]:
        cx, cy, r, s = coarse[i]
        fine = _candidates((cx, cy), 0.0125 * side, 0.005 * side, r * np.arange(0.94, 1.061, 0.015))
        fine = fine[fine[:, 3] == s]
        fs, fn = _vote(det_xy, cat_zen, cat_az, fine, tol_deg=1.5, bin_deg=1.0)
        j = int(fs.argmax())
        if best is None or fs[j] > best[0]:
            best = (fs[j], fine[j], fn[j] + 1.0)  # the peak spans two bins: their shared edge
    score, (cx, cy, r, s), n = best
    return Lens(cx, cy, r, n % 360.0, "left" if s > 0 else "right"), float(score)


def _match(lens: Lens, det: Detections, stars: StarsAt, radius_deg: float):
    """Each detection's nearest projected catalogue star within ``radius_deg``, one detection per star."""
    from scipy.spatial import cKDTree

    x, y = lens.project(stars.alt_deg, stars.az_deg)
    tree = cKDTree(np.stack([x, y], axis=1))
    radius_px = radius_deg / max(float(lens.degrees_per_px(45.0)), 1e-9)
    dist, idx = tree.query(np.stack([det.x, det.y], axis=1), distance_upper_bound=radius_px)
    ok = np.isfinite(dist)
    di, si, dd = np.nonzero(ok)[0], idx[ok], dist[ok]
    # A star claimed by two detections keeps the nearer one.
    order = np.argsort(dd, kind="stable")
    _, first = np.unique(si[order], return_index=True)
    keep = order[first]
    return di[keep], si[keep]


def matched_count(lens: Lens, det: Detections, stars: StarsAt, radius_deg: float = 1.0) -> int:
    """How many detections sit within ``radius_deg`` of a distinct catalogue star where ``lens`` puts it."""
    if len(det) == 0:
        return 0
    return len(_match(lens, det, stars, radius_deg)[0])


def fit_to_pairs(lens: Lens, dx: np.ndarray, dy: np.ndarray, alt: np.ndarray, az: np.ndarray, shape: bool = False) -> Lens:
    """``lens`` (zenith pixel, horizon radius, north; with ``shape``, its tilt and bend too) fitted by robust least
    squares to detections (dx, dy) of the stars at (alt, az), starting where it is."""
    from scipy.optimize import least_squares

    def trial_of(p) -> Lens:
        trial = lens.with_(cx=float(p[0]), cy=float(p[1]), radius_px=float(p[2]), north_deg=float(p[3]))
        return trial.with_(tilt=(float(p[4]), float(p[5])), distortion=(float(p[6]), float(p[7]))) if shape else trial

    def residual(p):
        px, py = trial_of(p).project(alt, az)
        return np.concatenate([px - dx, py - dy])

    p0 = [lens.cx, lens.cy, lens.radius_px, lens.north_deg]
    scale, low, high = [1.0, 1.0, 1.0, 0.1], [-np.inf] * 4, [np.inf] * 4
    if shape:
        # Each way within MAX_TILT_DEG; a lean past it both ways together is refused after the fit.
        p0 += [float(np.clip(v, -MAX_TILT_DEG, MAX_TILT_DEG)) for v in lens.tilt]
        p0 += [float(np.clip(v, -DISTORTION_BOUND, DISTORTION_BOUND)) for v in lens.distortion]
        scale += [0.1, 0.1, 0.01, 0.01]
        low += [-MAX_TILT_DEG] * 2 + [-DISTORTION_BOUND] * 2
        high += [MAX_TILT_DEG] * 2 + [DISTORTION_BOUND] * 2
    fit = least_squares(residual, np.array(p0), loss="soft_l1", f_scale=1.0, x_scale=np.array(scale), bounds=(low, high))
    found = trial_of(fit.x)
    return found.with_(north_deg=found.north_deg % 360.0)


def _matched_pairs(lens: Lens, frames, radius_deg: float):
    """(dx, dy, alt, az, mag) of every frame's detections matched within ``radius_deg`` where ``lens`` puts the stars."""
    pairs = [(f, _match(lens, *f, radius_deg)) for f in frames]
    return tuple(
        np.concatenate(parts)
        for parts in zip(*[(d.x[di], d.y[di], s.alt_deg[si], s.az_deg[si], s.mag[si]) for (d, s), (di, si) in pairs], strict=True)
    )


def _solution(lens: Lens, frames, pairs) -> Solution:
    """``lens`` scored on its matched ``pairs``: residuals with the worst (over 3 medians) clipped."""
    dx, dy, alt, az, _ = pairs
    px, py = lens.project(alt, az)
    res = np.hypot(px - dx, py - dy)
    clipped = np.minimum(res, 3 * np.median(res) + 1e-9)
    rms = float(np.sqrt(np.mean(clipped**2)))
    rms_deg = float(np.sqrt(np.mean((clipped * lens.degrees_per_px(np.clip(alt, 1, 89))) ** 2)))
    return Solution(lens, len(dx), sum(len(d) for d, _ in frames), rms, rms_deg, len(frames), pairs)


def refine(lens: Lens, frames: list[tuple[Detections, StarsAt]], projections=PROJECTIONS) -> Solution:
    """Least-squares geometry over one or more frames' matches, starting from ``lens``; best projection wins, then
    tilted and bent (:func:`_shaped`) where the stars say the camera leans or the lens departs from it."""
    best: Solution | None = None
    for projection in projections:
        trial = lens.with_(projection=projection)
        if projection != lens.projection:  # keep the horizon radius that puts 45 deg where the start lens did
            trial = trial.with_(
                radius_px=lens.radius_px * float(radius_of(np.array(math.pi / 4), lens.projection, lens.distortion) / radius_of(np.array(math.pi / 4), projection)),
                distortion=NO_DISTORTION,  # a bend belongs to the projection it was fitted with
            )
        for radius_deg in (3.0, 2.0, 1.5, 1.0, 1.0):
            pairs = _matched_pairs(trial, frames, radius_deg)
            if len(pairs[0]) < 4:
                break
            trial = fit_to_pairs(trial, *pairs[:4])
        else:
            sol = _solution(trial, frames, pairs)
            if best is None or (sol.matched, -sol.rms_px) > (best.matched * 1.02, -best.rms_px):
                best = sol
    if best is None:
        raise NoGeometry("too few stars matched the catalogue")
    return _shaped(best, frames)


def _shaped(best: Solution, frames) -> Solution:
    """``best``, or its lens with a fitted tilt and bend (Lens.tilt, Lens.distortion) where enough stars far enough
    out show them: kept only if it matches about as many stars and brings the residual to ``SHAPE_GAIN`` of ``best``'s."""
    alt = best.pairs[2]
    if best.matched < SHAPE_MIN_STARS or 90.0 - float(alt.min()) < SHAPE_MIN_ZENITH_DEG:
        return best
    trial = best.lens
    for radius_deg in (2.0, 1.5, 1.0, 1.0):  # wider first: the stars the unbent lens missed are the ones that tell
        pairs = _matched_pairs(trial, frames, radius_deg)
        if len(pairs[0]) < SHAPE_MIN_STARS:
            return best
        trial = fit_to_pairs(trial, *pairs[:4], shape=True)
    try:
        check_distortion(trial.projection, trial.distortion)
        check_tilt(trial.tilt)
    except ValueError:  # a bend that folds the sky, or a lean that is a clock off, is a poor fit, not a lens
        return best
    shaped = _solution(trial, frames, _matched_pairs(trial, frames, 1.0))
    if shaped.matched >= 0.98 * best.matched and shaped.rms_px < SHAPE_GAIN * best.rms_px:  # a star or two either way
        return shaped
    return best


def stars_to_match(catalogue: StarCatalogue, site: tuple[float, float, float], posix: float, detected: int) -> StarsAt:
    """The catalogue stars a frame of ``detected`` stars is matched against: above ``FIT_MIN_ALT_DEG``, and like with
    like, about twice as many as the detections (the brightest), so that a detection's nearest catalogue star is
    rarely a faint one the camera could not see. Only three times as many of the brightest are placed on the sky
    first: about half the sky is up, so they almost always hold enough, and they are the same stars placing all
    would give (a clock check places the sky 169 times); all of them otherwise."""
    want = max(2 * detected, 3 * VOTE_STARS)
    for brightest in (3 * want, None):
        stars = catalogue.at(*site, posix, mag_limit=6.5, brightest=brightest)
        stars = stars.subset(stars.alt_deg >= FIT_MIN_ALT_DEG)
        if len(stars) >= want or brightest is None or brightest >= len(catalogue):
            break
    return stars.subset(np.argsort(stars.mag, kind="stable")[:want])


def solve_frame(det: Detections, catalogue: StarCatalogue, site: tuple[float, float, float], posix: float, shape: tuple[int, int]) -> Solution:
    """The geometry of one night frame from its detected stars (site: latitude, longitude, elevation)."""
    if len(det) < MIN_MATCHED:
        raise NoGeometry(f"{len(det)} stars detected, {MIN_MATCHED} needed (cloud, moon glare, twilight or day?)")
    stars = stars_to_match(catalogue, site, posix, len(det))
    start, score = vote(det, stars, shape)
    sol = refine(start, [(det, stars)])
    if sol.matched < max(MIN_MATCHED, MIN_MATCHED_SHARE * len(det)):
        raise NoGeometry(f"only {sol.matched} of {len(det)} detected stars matched the catalogue (vote {score:.0f})")
    chance = chance_matches(sol.lens, det, stars)
    if sol.matched < CHANCE_RATIO * chance:
        raise NoGeometry(
            f"{sol.matched} of {len(det)} detected stars matched, but the same lens turned a few degrees matches "
            f"{chance:.0f}: too many detections to tell stars from chance (hot pixels? noise?)"
        )
    return sol


def chance_matches(lens: Lens, det: Detections, stars: StarsAt) -> float:
    """How many detections ``lens`` turned by 5-10 deg about the zenith matches: what chance alone gives here."""
    return float(np.mean([matched_count(lens.with_(north_deg=(lens.north_deg + d) % 360.0), det, stars) for d in (-10.0, -5.0, 5.0, 10.0)]))
