"""Point sources in an all-sky frame: the stars a camera actually recorded.

A white top-hat (the frame minus its grey opening) removes everything broader than a star (sky gradients, the
Milky Way, cloud, glare); a small Gaussian then matches a star's profile, and local maxima above ``threshold``
times the robust noise of that image are stars. Positions are intensity-weighted centroids over 3x3 pixels. The
cost is a handful of OpenCV passes over the frame: tens of milliseconds for a 2k frame on one core.

Peaks of one pixel (hot pixels, cosmic rays) are first replaced by their neighbours' mean: an uncooled camera
has hundreds, and a hundred of them among the brightest detections kept a blind solve from matching at all.

The detections keep that image in noise units (``significance``): where a star is *expected*, its peak can be
read there at a lower threshold than a blind search can afford (:meth:`Detections.peak_significance`; star
visibility does so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 5.0  # robust noise units of the matched-filtered top-hat image
# A peak whose four neighbours hold, on average, under this share of its own top-hat value is one pixel: a hot
# pixel or a cosmic ray, not a star. Optics spread even a sharp star (FWHM 1 px: neighbours at 0.12 of the peak or
# more for 99% of simulated stars); a raw hot pixel's neighbours hold under 0.03, a JPEG's mostly under 0.08; on the
# real development camera 0.8% of detections fall under 0.1.
SPIKE_SHARE = 0.1
SPIKE_SIGMA = 5.0  # ... and stands this many noise units above them (fainter single pixels are left to noise)


@dataclass(frozen=True)
class Detections:
    """Stars found in one frame, brightest first: pixel centroids and top-hat fluxes (image units)."""

    x: np.ndarray
    y: np.ndarray
    flux: np.ndarray
    snr: np.ndarray
    noise: float
    significance: np.ndarray | None = None  # (H, W) matched-filtered frame in local noise units; 0 off the sky

    def __len__(self) -> int:
        return len(self.x)

    def brightest(self, n: int) -> Detections:
        """The ``n`` brightest detections."""
        return Detections(self.x[:n], self.y[:n], self.flux[:n], self.snr[:n], self.noise, self.significance)

    def peak_significance(self, x: np.ndarray, y: np.ndarray, radius_px) -> np.ndarray:
        """The highest significance within ``radius_px`` (scalar or one per point) of each pixel position:
        forced measurement where stars should be. -inf off the frame; needs ``significance``."""
        if self.significance is None:
            raise ValueError("these detections carry no significance image (made by detect_stars)")
        sig = self.significance
        h, w = sig.shape
        x, y = np.asarray(x, float), np.asarray(y, float)
        if x.size == 0:
            return np.zeros(0)
        r = np.broadcast_to(np.asarray(radius_px, float), x.shape)
        reach = int(np.ceil(r.max()))
        oy, ox = (o.ravel() for o in np.mgrid[-reach : reach + 1, -reach : reach + 1])
        xi = np.rint(np.nan_to_num(x, nan=-1e6)).astype(int)[:, None] + ox
        yi = np.rint(np.nan_to_num(y, nan=-1e6)).astype(int)[:, None] + oy
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h) & (np.hypot(ox, oy)[None, :] <= r[:, None])
        values = np.where(inside, sig[np.clip(yi, 0, h - 1), np.clip(xi, 0, w - 1)], -np.inf)
        return values.max(axis=1)


def grey(image: np.ndarray) -> np.ndarray:
    """A float32 single-channel view of a frame (colour channels averaged)."""
    a = np.asarray(image)
    if a.ndim == 3:
        a = a.astype(np.float32).mean(axis=2)
    return np.nan_to_num(a.astype(np.float32, copy=False), nan=0.0)


def _local_noise(residual: np.ndarray, inner: np.ndarray, fallback: float, block: int = 64) -> np.ndarray:
    """The robust noise around each pixel: the MAD of each ``block``-pixel tile (sky pixels only), smoothly
    interpolated. Cloud lit from below, moonlight and a camera's local contrast stretch make the noise differ
    across one frame; a single figure would miss stars in the dark half or find noise in the bright one."""
    import cv2

    h, w = residual.shape
    ty, tx = max(1, h // block), max(1, w // block)
    step = max(1, block // 16)  # at most 16 x 16 samples per tile: a median needs no more
    by, bx = max(step, (h // ty) // step * step), max(step, (w // tx) // step * step)
    a = np.where(inner, np.abs(residual), np.nan)[: ty * by : step, : tx * bx : step]
    sy, sx = by // step, bx // step
    tiles = a.reshape(ty, sy, tx, sx).transpose(0, 2, 1, 3).reshape(ty, tx, sy * sx)
    counts = np.count_nonzero(~np.isnan(tiles), axis=2)
    ordered = np.sort(tiles, axis=2)  # NaN (off the sky) sorts last
    middle = np.take_along_axis(ordered, np.maximum(counts - 1, 0)[..., None] // 2, axis=2)[..., 0]
    grid = (1.4826 * middle).astype(np.float32)
    grid[counts < 16] = np.nan
    grid = np.where(np.isfinite(grid) & (grid > 0), grid, fallback).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_LINEAR)


def _without_spikes(tophat: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``tophat`` with its single-pixel peaks (``SPIKE_SHARE``, and ``SPIKE_SIGMA`` above their neighbours)
    replaced in place by their neighbours' mean, before anything reads it: smoothed, a hot pixel thirty times a
    bright star's peak would still pass for a star three pixels away."""
    step = max(1, int(np.sqrt(tophat.size / 50_000)))  # some 50,000 pixels: the noise's spread, not its detail
    values = tophat[::step, ::step][inner[::step, ::step]]
    if values.size < 100:
        return tophat
    sigma = 1.4826 * float(np.median(np.abs(values - np.median(values)))) or float(values.std()) or 1e-6
    ys, xs = np.nonzero(tophat[1:-1, 1:-1] > SPIKE_SIGMA * sigma)  # only bright pixels can be spikes
    ys, xs = ys + 1, xs + 1
    centre = tophat[ys, xs]
    around = (tophat[ys - 1, xs] + tophat[ys + 1, xs] + tophat[ys, xs - 1] + tophat[ys, xs + 1]) / 4.0
    spike = (centre - around > SPIKE_SIGMA * sigma) & (around < SPIKE_SHARE * centre)
    tophat[ys[spike], xs[spike]] = around[spike]
    return tophat


def detect_stars(
    image: np.ndarray,
    mask: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    star_size_px: int = 7,
    max_stars: int = 2000,
) -> Detections:
    """Stars in ``image`` (H, W) or (H, W, C); ``mask``: True where the sky is (others are ignored);
    ``star_size_px``: the widest star in pixels (sets the top-hat; larger for 2-4k frames with soft optics)."""
    import cv2

    g = grey(image)
    size = max(3, int(star_size_px) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    sky = np.ones(g.shape, bool) if mask is None else np.asarray(mask, bool)
    # Frame borders and the mask's edge make false peaks: keep a margin of a star's width.
    inner = cv2.erode(sky.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).astype(bool)
    tophat = _without_spikes(cv2.morphologyEx(g, cv2.MORPH_TOPHAT, kernel), inner)
    smooth = cv2.GaussianBlur(tophat, (0, 0), 1.0)
    values = smooth[inner]
    values = values[:: max(1, values.size // 250_000)]  # a quarter-million pixels fix a median well enough
    if values.size < 100:
        return Detections(*(np.zeros(0),) * 4, noise=float("nan"))
    med = float(np.median(values))
    noise = 1.4826 * float(np.median(np.abs(values - med)))
    if noise <= 0:  # quantised dark frames: the MAD can be 0, the standard deviation is honest
        noise = float(values.std()) or 1e-6
    local = _local_noise(smooth - med, inner, noise)
    significance = np.where(inner, (smooth - med) / local, 0.0).astype(np.float32)
    peaks = (smooth == cv2.dilate(smooth, np.ones((5, 5), np.uint8))) & (significance > threshold)
    ys, xs = np.nonzero(peaks)
    if len(xs) == 0:
        return Detections(*(np.zeros(0),) * 4, noise=noise, significance=significance)
    # Centroids and fluxes from the top-hat image, 3x3 and 5x5 around each peak.
    h, w = g.shape
    oy, ox = np.mgrid[-1:2, -1:2]
    yy = np.clip(ys[:, None, None] + oy, 0, h - 1)
    xx = np.clip(xs[:, None, None] + ox, 0, w - 1)
    wts = np.maximum(tophat[yy, xx], 0) + 1e-9
    cx = (wts * xx).sum(axis=(1, 2)) / wts.sum(axis=(1, 2))
    cy = (wts * yy).sum(axis=(1, 2)) / wts.sum(axis=(1, 2))
    oy5, ox5 = np.mgrid[-2:3, -2:3]
    flux = tophat[np.clip(ys[:, None, None] + oy5, 0, h - 1), np.clip(xs[:, None, None] + ox5, 0, w - 1)].sum(axis=(1, 2))
    snr = significance[ys, xs]
    order = np.argsort(-flux, kind="stable")[:max_stars]
    return Detections(cx[order], cy[order], flux[order], snr[order], noise, significance)
