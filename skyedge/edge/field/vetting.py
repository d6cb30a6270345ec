"""Real or bogus: which residuals away from every known object may become new objects.

A raw frame's difference holds more than new sources: cosmic rays and hot or flickering pixels (sharper than any
star: the atmosphere blurs everything from the sky to the seeing), and what misregistration leaves (a positive
lobe beside a negative one). Survey pipelines put a real/bogus filter before their classifiers; this one judges
each candidate by physics measured on the same frame rather than by a model trained elsewhere, so it carries to
other cameras without retraining:

* ``sharp``: on the frame as taken (not resampled), the candidate's brightest pixel holds more of its 3x3 flux than
  the frame's own stars allow (their 95th percentile), by more than ``SHARP_Z`` times the noise of that test;
* ``dipole``: a residual of the opposite sign, at least ``DIPOLE_SHARE`` of its size, within two seeing FWHMs of
  a template star far brighter than either (what misregistration leaves; a slow asteroid's lobes are as bright
  as the template there);
* ``warm_pixel``: the same detector pixel gave a candidate before while pointing elsewhere on the sky (a source
  moves on the detector with the drift; a flickering pixel stays). On a perfectly guided field nothing moves and
  this test says nothing.

Source thread only (owned by the field's tracker).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

SHARP_Z = 3.0
DIPOLE_SHARE = 0.5
DIPOLE_STAR = 3.0  # ... next to a template source this many times brighter than the residual (misregistration)
DIPOLE_SIGMA = 3.5  # ... and beyond this many sigma (the noise of a box this size reaches 3 now and then)
MOVED_PX = 2.0  # a sky position this far from the earlier hit's is elsewhere on the sky
MAX_HITS = 100_000  # detector pixels remembered (oldest forgotten first)
REASONS = ("sharp", "dipole", "warm_pixel")


@dataclass
class Vetted:
    """Which candidates are real, and how many were bogus for each reason."""

    real: np.ndarray
    bogus: dict[str, int] = field(default_factory=dict)


def central_share(image: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(brightest pixel, 3x3 sum) around each pixel, on a background-free image; NaN off the frame."""
    h, w = image.shape
    inside = (ix >= 1) & (iy >= 1) & (ix < w - 1) & (iy < h - 1)
    peak = np.full(len(ix), np.nan)
    total = np.full(len(ix), np.nan)
    if inside.any():
        offsets = np.arange(-1, 2)
        rows = iy[inside, None, None] + offsets[None, :, None]
        cols = ix[inside, None, None] + offsets[None, None, :]
        box = image[rows, cols].reshape(int(inside.sum()), 9).astype(np.float64)
        peak[inside], total[inside] = box.max(axis=1), box.sum(axis=1)
    return peak, total


class Vetter:
    """Real/bogus judgement of a field's new residuals, remembering which detector pixels misbehave."""

    def __init__(self):
        self.hits: OrderedDict[tuple[int, int], tuple[float, float]] = OrderedDict()

    def vet(self, found, keep: np.ndarray, prepared, fwhm: float) -> Vetted:
        """Judge the residuals ``found.*[keep]`` (reference-grid positions, signed S/N) of the frame ``prepared``."""
        x, y, snr = found.x[keep], found.y[keep], found.snr[keep]
        if len(x) == 0:
            return Vetted(np.zeros(0, bool), dict.fromkeys(REASONS, 0))
        fx, fy = prepared.alignment.to_frame(np.asarray(x, float), np.asarray(y, float))
        ix, iy = _peak_pixel(prepared.image, np.rint(fx).astype(np.int64), np.rint(fy).astype(np.int64), snr)
        sharp = self._sharp(prepared, ix, iy, snr)
        dipole = _dipoles(found, np.asarray(x), np.asarray(y), snr, fwhm)
        warm = self._warm(ix, iy, np.asarray(x), np.asarray(y), snr)
        bogus = {"sharp": sharp, "dipole": dipole & ~sharp, "warm_pixel": warm & ~sharp & ~dipole}
        real = ~(sharp | dipole | warm)
        return Vetted(real, {k: int(v.sum()) for k, v in bogus.items()})

    def _sharp(self, prepared, ix, iy, snr) -> np.ndarray:
        image = prepared.image
        noise = float(prepared.conditions.get("noise", 1.0)) or 1.0
        stars = prepared.stars[:60]
        s_peak, s_total = central_share(image, np.rint(stars[:, 0]).astype(np.int64), np.rint(stars[:, 1]).astype(np.int64))
        good = np.isfinite(s_total) & (s_total > 20 * noise)
        if good.sum() < 5:
            return np.zeros(len(ix), bool)  # too few stars to know the PSF: nothing is called sharp
        share = float(np.percentile(s_peak[good] / s_total[good], 95))
        peak, total = central_share(image, ix, iy)
        # peak - share * total = (1 - share) * centre - share * (the other eight): its noise
        spread = noise * np.sqrt((1 - share) ** 2 + 8 * share**2)
        z = (peak - share * total) / spread
        # Only what brightened is looked at in the frame; a faded residual's cause is in the reference (a median
        # of frames, where a cosmic ray does not survive).
        return (np.asarray(snr) > 0) & np.isfinite(z) & (z > SHARP_Z)

    def _warm(self, ix, iy, x, y, snr) -> np.ndarray:
        warm = np.zeros(len(ix), bool)
        for k in range(len(ix)):
            if snr[k] <= 0:
                continue  # a pixel that misbehaves brightens
            here = (int(iy[k]), int(ix[k]))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    seen = self.hits.get((here[0] + dy, here[1] + dx))
                    if seen is not None and np.hypot(seen[0] - x[k], seen[1] - y[k]) > MOVED_PX:
                        warm[k] = True
            self.hits[here] = (float(x[k]), float(y[k]))
            self.hits.move_to_end(here)
        while len(self.hits) > MAX_HITS:
            self.hits.popitem(last=False)
        return warm


def _peak_pixel(image: np.ndarray, ix: np.ndarray, iy: np.ndarray, snr) -> tuple[np.ndarray, np.ndarray]:
    """The brightest (faintest, for a negative residual) pixel within one pixel of each position: resampling and
    filtering move a residual's peak by up to a pixel from where it lies in the frame."""
    h, w = image.shape
    best_x, best_y = ix.copy(), iy.copy()
    best = np.full(len(ix), -np.inf)
    sign = np.sign(snr)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx, cy = ix + dx, iy + dy
            ok = (cx >= 0) & (cy >= 0) & (cx < w) & (cy < h)
            value = np.full(len(ix), -np.inf)
            value[ok] = sign[ok] * image[cy[ok], cx[ok]]
            better = value > best
            best[better], best_x[better], best_y[better] = value[better], cx[better], cy[better]
    return best_x, best_y


def _dipoles(found, x: np.ndarray, y: np.ndarray, snr, fwhm: float) -> np.ndarray:
    """Candidates with a significant opposite residual of comparable size within two FWHMs of the filtered
    difference (misregistration's signature)."""
    filtered = found.filtered
    if filtered is None:
        return np.zeros(len(x), bool)
    h, w = filtered.shape
    r = max(2, int(np.ceil(2 * fwhm)))
    low = np.zeros((len(x), 2), np.int64)  # the deepest opposite pixel about each candidate
    depth, height, star = np.zeros(len(x)), np.zeros(len(x)), np.zeros(len(x), bool)
    for k in range(len(x)):
        ix, iy = int(round(x[k])), int(round(y[k]))
        rows, cols = slice(max(iy - r, 0), min(iy + r + 1, h)), slice(max(ix - r, 0), min(ix + r + 1, w))
        box = filtered[rows, cols] if snr[k] > 0 else -filtered[rows, cols]
        j = np.unravel_index(np.argmin(box), box.shape)
        low[k] = rows.start + j[0], cols.start + j[1]
        depth[k], height[k] = -box[j], box.max()
        # Misregistration leaves a small share of a star that the template holds; an object that moved (a slow
        # asteroid still in the reference) leaves lobes as bright as the template is there.
        star[k] = found.template is None or found.template[rows, cols].max() > DIPOLE_STAR * height[k]
    sigma = found.noise.at(low[:, 0], low[:, 1]) if found.noise is not None else found.sigma
    return (depth > np.maximum(DIPOLE_SHARE * height, DIPOLE_SIGMA * sigma)) & star
