"""Star visibility: the bright stars that should be seen in a frame against those that are, per sky sector.

A star is *expected* when it is above ``MIN_ALT_DEG``, on a sky pixel (mask, horizon, frame), outside the moon's
glare, and brighter than the camera's limiting magnitude for its ring of zenith angle; it is *seen* when the
frame's matched-filtered image peaks above ``SEEN_SIGMA`` local noise within ``MATCH_DEG`` of where the lens puts
it (forced measurement: knowing where to look affords a lower threshold than the blind search's 5; detections
without that image fall back to a detection within ``MATCH_DEG``).

* **Limiting magnitudes are the camera's own**, one per ring of the cloudynight layout
  (:mod:`skyedge.sky_sectors`): the faintest catalogue magnitude to which ``COMPLETENESS`` of the
  stars are seen on its clear frames (:func:`limiting_magnitudes`). Measured per ring, they fold in extinction
  by airmass, vignetting and the horizon's haze and light; a ring where even bright stars are not reliably seen
  gets no limit, and expects no stars.
* **Expected stars keep a margin**: ``EXPECT_MARGIN_MAG`` brighter than the limit, and brighter again under the
  moon (:func:`moonlight_mag`) and in twilight (:func:`twilight_mag`).
* **Chance matches are subtracted.** A detection of noise or cloud texture can sit next to an expected star.
  The same stars moved a few degrees along their circle of zenith angle (where no star is) measure that rate
  ``c`` in the frame itself, and the visible fraction is ``(seen/expected - c) / (1 - c)``, clipped to 0-1.

* **Seen stars can still be dimmed.** Thin cloud lets the bright stars through, fainter: a frame's *zero point*
  is the median over the stars down to the camera's limits of ``2.5 log10(peak significance) + magnitude`` (a
  star's brightness against the noise, in the camera's own units), and its *extinction* is how much lower it lies
  than the camera's clear frames' (learnt by :class:`~skyedge.stars.depth.DepthPool`). Dark skies only: under the
  moon or in twilight stars are counted, not weighed. On the real development camera the cross-check failed 0.671
  of its overcast frames instead of 0.647 with it, and no more of its clear ones: most thin cloud whose stars are
  seen does not dim them much either (docs/results.md).

A sector (or the zenith rings) with fewer than ``MIN_EXPECTED`` expected stars has no fraction (None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyedge.sky_sectors import RING_EDGES_DEG, SECTORS, sector_of
from skyedge.stars.catalogue import StarsAt
from skyedge.stars.detection import Detections
from skyedge.stars.lens import Lens

MIN_ALT_DEG = 15.0  # lower, refraction and haze vary too much night to night
MATCH_DEG = 1.0
# On the real development camera, forced measurement at 3.5 against matching 5-sigma detections: clear sectors
# 0.77-0.85 -> 0.83-0.91 visible, clear frames under half their zenith stars 11% -> 6% (docs/results.md).
SEEN_SIGMA = 3.5
SEEN_RULE = f"forced: peak above {SEEN_SIGMA:g} local noise within {MATCH_DEG:g} deg"  # recorded with learnt limits
MIN_EXPECTED = 3
COMPLETENESS = 0.9
# Expected stars stop this much brighter than the limit: clear nights differ in transparency (on the real
# development camera, a limit learnt on its best nights left hazier clear nights seeing 40% of the stars).
EXPECT_MARGIN_MAG = 0.5
WINDOW_COMPLETENESS = 0.8
CLEAR_BRIGHT_MAG = 3.0
CLEAR_BRIGHT_SHARE = 0.9
BINS = np.arange(-1.5, 6.51, 0.5)
# A star not seen still counts, as this significance: the median then falls as stars vanish, not only as they dim.
ZERO_POINT_FLOOR_SIGMA = 0.3
MIN_ZERO_POINT_STARS = 8
# Stars are weighed only on a dark sky: on the real development camera moonlit clear skies read 0.8 mag of
# extinction at the median (moonlight_mag's allowance is an order of magnitude, not a photometric model), and
# weighing them under the moon would have turned 6 of its 41 moonlit frames unsafe (docs/results.md).
MAX_ZERO_POINT_ALLOWANCE_MAG = 0.5
RINGS = len(RING_EDGES_DEG)  # the zenith disc and four rings
ZENITH_RINGS_DEG = RING_EDGES_DEG[1]  # the zenith disc and the first ring: where the cross-check looks
CHANCE_SHIFTS_DEG = (-9.0, -6.0, 6.0, 9.0)  # azimuth shifts, scaled by 1/sin(zenith angle) (at least 1.5 deg on the sky)


def ring_of_zenith(zenith_deg: np.ndarray) -> np.ndarray:
    """Ring index (0: the zenith disc, 1-4) of zenith angles; 5 below the horizon."""
    return np.searchsorted(np.asarray(RING_EDGES_DEG), np.asarray(zenith_deg), side="right")


def moon_glare_deg(moon_illumination: float) -> float:
    """Radius around the moon where its glare hides stars: 8 deg for a crescent, 25 deg when full."""
    return 8.0 + 17.0 * float(np.clip(moon_illumination, 0.0, 1.0))


def _near(lens: Lens, alt: np.ndarray, az: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, radius in px) where the lens puts each direction, the radius ``MATCH_DEG`` (at least 1.5 px)."""
    x, y = lens.project(alt, az)
    return x, y, np.maximum(MATCH_DEG / lens.degrees_per_px(np.clip(alt, 1.0, 89.9)), 1.5)


def _seen(lens: Lens, det: Detections, alt: np.ndarray, az: np.ndarray) -> np.ndarray:
    """Whether the star in each direction is seen: its peak above SEEN_SIGMA within MATCH_DEG (or, without a
    significance image, a detection that near)."""
    from scipy.spatial import cKDTree

    x, y, radius_px = _near(lens, alt, az)
    if det.significance is not None:
        return det.peak_significance(x, y, radius_px) >= SEEN_SIGMA
    if len(det) == 0:
        return np.zeros(len(alt), bool)
    dist, _ = cKDTree(np.stack([det.x, det.y], axis=1)).query(np.stack([x, y], axis=1))
    return dist <= radius_px


def _usable(lens: Lens, alt, az, shape, mask, moon) -> np.ndarray:
    h, w = shape
    x, y = lens.project(alt, az)
    ok = (alt >= MIN_ALT_DEG) & (x >= 0) & (x <= w - 1) & (y >= 0) & (y <= h - 1)
    if mask is not None:
        xi, yi = np.clip(np.round(x).astype(int), 0, w - 1), np.clip(np.round(y).astype(int), 0, h - 1)
        ok &= np.asarray(mask, bool)[yi, xi]
    if moon is not None and moon[0] > -1.0:
        alt1, az1 = np.radians(alt), np.radians(az)
        alt2, az2 = np.radians(moon[0]), np.radians(moon[1])
        cos_d = np.sin(alt1) * np.sin(alt2) + np.cos(alt1) * np.cos(alt2) * np.cos(az1 - az2)
        ok &= np.degrees(np.arccos(np.clip(cos_d, -1, 1))) > moon_glare_deg(moon[2])
    return ok


@dataclass(frozen=True)
class Visibility:
    """One frame's expected and seen stars."""

    expected: int
    seen: int
    chance: float  # the frame's rate of chance matches
    sectors: tuple[float | None, ...]  # chance-corrected visible fraction per cloudynight sector
    sector_expected: tuple[int, ...]  # expected stars per sector: how much each fraction can be trusted
    zenith_expected: int
    zenith_seen: int
    limiting_mag: float | None  # at the zenith
    zero_point: float | None = None  # the frame's star brightness (:func:`star_zero_point`)
    reference_zero_point: float | None = None  # the camera's clear frames' (DepthPool.reference_zero_point)

    @staticmethod
    def _fraction(seen: float, expected: float, chance: float) -> float | None:
        if expected < MIN_EXPECTED:
            return None
        return float(np.clip((seen / expected - chance) / max(1.0 - chance, 1e-6), 0.0, 1.0))

    @property
    def visible_fraction(self) -> float | None:
        """Seen over expected, chance-corrected, the whole visible sky (None: too few stars expected)."""
        return self._fraction(self.seen, self.expected, self.chance)

    @property
    def zenith_fraction(self) -> float | None:
        """The same within ``ZENITH_RINGS_DEG`` of the zenith."""
        return self._fraction(self.zenith_seen, self.zenith_expected, self.chance)

    @property
    def extinction_mag(self) -> float | None:
        """How many magnitudes fainter this frame's stars are than on the camera's clear frames (negative: brighter);
        None before the camera has a reference or with too few stars."""
        if self.zero_point is None or self.reference_zero_point is None:
            return None
        return self.reference_zero_point - self.zero_point

    @property
    def check_fraction(self) -> float | None:
        """What the cross-checks read: the zenith's fraction, or the whole sky's where too few stars are expected
        near the zenith (a high moon's glare and sky brightening, a mask). On the real development camera the
        fallback gave 22 more overcast frames a verdict and turned no clear or moonlit answer (docs/results.md)."""
        zenith = self.zenith_fraction
        return zenith if zenith is not None else self.visible_fraction

    def message(self) -> dict:
        """The classification message's ``stars`` object."""
        frac, zen, ext = self.visible_fraction, self.zenith_fraction, self.extinction_mag
        return {
            "expected": self.expected,
            "seen": self.seen,
            "chance": round(self.chance, 3),
            "visible_fraction": None if frac is None else round(frac, 3),
            "zenith_visible_fraction": None if zen is None else round(zen, 3),
            "limiting_mag": None if self.limiting_mag is None else round(self.limiting_mag, 2),
            "sectors": [None if v is None else round(v, 3) for v in self.sectors],
            "extinction_mag": None if ext is None else round(ext, 2),
        }


def moonlight_mag(moon: tuple[float, float, float] | None) -> float:
    """How much brighter the limiting magnitude is under the moon: for a background-limited camera 1.25
    log10 of the sky's brightening, taken as 1 + 10 f sin(altitude) (f the illuminated fraction: a full moon at
    30 deg brightens a dark sky about 6 times, Krisciunas & Schaefer's order of magnitude away from the moon)."""
    if moon is None or moon[0] <= 0:
        return 0.0
    return 1.25 * float(np.log10(1.0 + 10.0 * float(np.clip(moon[2], 0, 1)) * np.sin(np.radians(moon[0]))))


def twilight_mag(sun_alt_deg: float | None) -> float:
    """How much brighter the limiting magnitude is in twilight, the sun above -18 deg: scattered sunlight falls
    about 0.47 mag per degree of solar depression (horizontal illuminance 0.008 lux at -12 deg, 6e-4 lux at -18,
    the AMS glossary's figures), and at -18 deg no longer adds to the night sky; a background-limited camera loses
    half of the sky's brightening in magnitudes: 0.24 mag per degree above -18, 1.4 mag at -12."""
    if sun_alt_deg is None:
        return 0.0
    return 0.5 * 0.47 * float(np.clip(sun_alt_deg + 18.0, 0.0, 18.0))


def sky_allowance_mag(moon: tuple[float, float, float] | None, sun_alt_deg: float | None) -> float:
    """How much brighter the limit is on this sky than on a dark one: the moon's and the twilight's allowance."""
    return moonlight_mag(moon) + twilight_mag(sun_alt_deg)


def _expected(stars: StarsAt, limits, shift: float = 0.0) -> np.ndarray:
    return _within_limits(stars.alt_deg, stars.mag, limits, shift)


def _within_limits(alt_deg: np.ndarray, mag: np.ndarray, limits, shift: float = 0.0) -> np.ndarray:
    ring = ring_of_zenith(90.0 - alt_deg)
    lim = np.array([np.nan if v is None else v - shift for v in limits] + [np.nan])
    with np.errstate(invalid="ignore"):
        return mag <= lim[np.minimum(ring, RINGS)]


def star_visibility(
    det: Detections,
    stars: StarsAt,
    lens: Lens,
    shape: tuple[int, int],
    limits: tuple[float | None, ...],
    mask: np.ndarray | None = None,
    moon: tuple[float, float, float] | None = None,
    sun_alt_deg: float | None = None,
    reference_zero_point: float | None = None,
) -> Visibility:
    """Expected against seen stars for one frame; ``limits``: the limiting magnitude per ring (None: no stars
    expected there), less ``EXPECT_MARGIN_MAG``, the moon's :func:`moonlight_mag` and the twilight's
    :func:`twilight_mag`; ``moon``: (altitude, azimuth, illuminated fraction); ``reference_zero_point``: the
    camera's clear frames' :func:`star_zero_point`, against which the frame's extinction is read."""
    brighter_by = EXPECT_MARGIN_MAG + sky_allowance_mag(moon, sun_alt_deg)
    bright = stars.subset(_expected(stars, limits, brighter_by))
    ok = _usable(lens, bright.alt_deg, bright.az_deg, shape, mask, moon)
    alt, az = bright.alt_deg[ok], bright.az_deg[ok]
    seen = _seen(lens, det, alt, az)
    # Chance: the same stars slid along their circles of zenith angle, where (almost always) no star is.
    hits, tries = 0, 0
    stretch = 1.0 / np.maximum(np.cos(np.radians(alt)), 0.2)
    for shift in CHANCE_SHIFTS_DEG:
        az_s = (az + shift * stretch) % 360.0
        use = _usable(lens, alt, az_s, shape, mask, moon)
        hits += int(_seen(lens, det, alt[use], az_s[use]).sum())
        tries += int(use.sum())
    chance = hits / tries if tries else 0.0
    zen = 90.0 - alt
    sector = sector_of(zen, az)
    exp_n = np.bincount(sector[sector >= 0], minlength=SECTORS)
    seen_n = np.bincount(sector[sector >= 0], weights=seen[sector >= 0].astype(float), minlength=SECTORS)
    sectors = tuple(Visibility._fraction(s, e, chance) for s, e in zip(seen_n, exp_n, strict=True))
    near = zen <= ZENITH_RINGS_DEG
    expected = tuple(int(e) for e in exp_n)
    # Weighed only against a reference: a camera still learning its own has nothing to read the frame's against.
    zero_point = None if reference_zero_point is None else star_zero_point(det, stars, lens, shape, limits, mask, moon, sun_alt_deg)
    return Visibility(
        int(ok.sum()), int(seen.sum()), chance, sectors, expected, int(near.sum()), int(seen[near].sum()), limits[0], zero_point, reference_zero_point
    )


@dataclass(frozen=True)
class StarPeaks:
    """How bright one frame's usable stars are: altitude (deg), catalogue magnitude and peak significance per star,
    and the sky's allowance (mag) they were read under; weighed by :func:`zero_point_of` once limits are known."""

    alt_deg: np.ndarray
    mag: np.ndarray
    significance: np.ndarray
    allowance_mag: float


def star_peaks(
    det: Detections, stars: StarsAt, lens: Lens, shape, mask=None, moon=None, sun_alt_deg: float | None = None,
    limits: tuple[float | None, ...] | None = None,
) -> StarPeaks | None:
    """The usable stars' peak significances (down to ``limits`` less the sky's allowance, when given); None without
    a significance image, or where the moon and twilight brighten the sky by more than
    ``MAX_ZERO_POINT_ALLOWANCE_MAG``."""
    shift = sky_allowance_mag(moon, sun_alt_deg)
    if det.significance is None or shift > MAX_ZERO_POINT_ALLOWANCE_MAG:
        return None
    if limits is not None:
        stars = stars.subset(_expected(stars, limits, shift))
    used = stars.subset(_usable(lens, stars.alt_deg, stars.az_deg, shape, mask, moon))
    sig = det.peak_significance(*_near(lens, used.alt_deg, used.az_deg))
    return StarPeaks(used.alt_deg.astype(np.float32), used.mag.astype(np.float32), np.asarray(sig, np.float32), shift)


def zero_point_of(peaks: StarPeaks | None, limits: tuple[float | None, ...]) -> float | None:
    """The median over ``peaks``' stars down to ``limits`` (each ring's, less the allowance) of ``2.5 log10(peak
    significance) + magnitude + allowance``, a star not seen counted at ``ZERO_POINT_FLOOR_SIGMA``; None with fewer
    than ``MIN_ZERO_POINT_STARS``."""
    if peaks is None:
        return None
    keep = _within_limits(peaks.alt_deg, peaks.mag, limits, peaks.allowance_mag)
    if keep.sum() < MIN_ZERO_POINT_STARS:
        return None
    sig = np.maximum(peaks.significance[keep], ZERO_POINT_FLOOR_SIGMA)
    return float(np.median(2.5 * np.log10(sig) + peaks.mag[keep] + peaks.allowance_mag))


def star_zero_point(
    det: Detections, stars: StarsAt, lens: Lens, shape, limits: tuple[float | None, ...], mask=None, moon=None, sun_alt_deg: float | None = None
) -> float | None:
    """The frame's star brightness (:func:`zero_point_of` its :func:`star_peaks`). The whole visible sky is read:
    on the real development camera it separated cloud better than the zenith's stars alone (docs/results.md)."""
    return zero_point_of(star_peaks(det, stars, lens, shape, mask, moon, sun_alt_deg, limits), limits)


def completeness_counts(
    det: Detections, stars: StarsAt, lens: Lens, shape, mask=None, moon=None, bins: np.ndarray | None = None, fainter_by: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """(seen, present) counts per ring and magnitude bin for one clear frame, to pool over frames; ``fainter_by``:
    each star counted as that much fainter (a frame under the moon or in twilight, as a dark sky would see it)."""
    bins = BINS if bins is None else bins
    ok = _usable(lens, stars.alt_deg, stars.az_deg, shape, mask, moon)
    alt, az, mag = stars.alt_deg[ok], stars.az_deg[ok], stars.mag[ok] + fainter_by
    seen = _seen(lens, det, alt, az)
    ring = np.minimum(ring_of_zenith(90.0 - alt), RINGS - 1)
    b = np.clip(np.digitize(mag, bins) - 1, 0, len(bins) - 2)
    present = np.zeros((RINGS, len(bins) - 1))
    hit = np.zeros_like(present)
    np.add.at(present, (ring, b), 1)
    np.add.at(hit, (ring, b), seen.astype(float))
    return hit, present


def clear_enough(hit: np.ndarray, present: np.ndarray, bins: np.ndarray | None = None) -> bool:
    """Whether one frame's counts (:func:`completeness_counts`) come from a clear sky: at least ``CLEAR_BRIGHT_SHARE``
    of the stars brighter than ``CLEAR_BRIGHT_MAG`` within 54 deg of the zenith seen (at least 10 of them). Only
    such frames may teach limiting magnitudes: a partly cloudy frame still solves, and would teach a shallow sky."""
    bins = BINS if bins is None else bins
    bright = bins[1:] <= CLEAR_BRIGHT_MAG + 1e-9
    n = present[:3, bright].sum()
    return bool(n >= 10 and hit[:3, bright].sum() >= CLEAR_BRIGHT_SHARE * n)


def limiting_magnitudes(
    hit: np.ndarray, present: np.ndarray, bins: np.ndarray | None = None, completeness: float = COMPLETENESS, min_stars: int = 10
) -> tuple[float | None, ...]:
    """Per ring, the faintest magnitude m to which ``completeness`` of the stars (pooled counts from
    :func:`completeness_counts` over clear frames) are seen, with the stars of the last magnitude before m at least
    ``WINDOW_COMPLETENESS`` seen (the faint end dominates the counts: a cumulative figure alone would admit a last
    bin seen half the time; a window rather than single bins, so that a few missed bright stars, merged or
    saturated, do not stop the scan); None where no magnitude qualifies."""
    bins = BINS if bins is None else bins
    step = float(bins[1] - bins[0])
    width = max(1, round(1.0 / step))
    out = []
    for ring in range(RINGS):
        cum_hit, cum_present = np.cumsum(hit[ring]), np.cumsum(present[ring])
        limit = None
        for i in range(len(bins) - 1):
            lo = max(0, i - width + 1)
            w_hit, w_present = hit[ring, lo : i + 1].sum(), present[ring, lo : i + 1].sum()
            if w_present < min_stars or cum_present[i] < min_stars:
                continue
            if w_hit >= WINDOW_COMPLETENESS * w_present and cum_hit[i] >= completeness * cum_present[i]:
                limit = float(bins[i + 1])
        out.append(limit)
    return tuple(out)
