"""Difference imaging for a telescope field: alignment, a reference, PSF matching, and residual detection.

What a survey pipeline does to find what is new in a frame, in array
operations (numpy and OpenCV), sized for a 4k x 4k frame every minute on a
Jetson's CPU:

* :func:`measure_shift`: the frame's drift against the reference, found from
  the stars (:func:`stars`) by voting on the offsets between star pairs (a few
  pixels of pointing drift between epochs is normal; a hot column or a
  satellite trail does not vote);
* :func:`shift_image`: a frame moved onto the reference's pixel grid;
* :class:`Reference`: the template, a median of the first epochs (or a
  configured frame), with its seeing and zero point;
* :func:`difference`: frame minus reference, the sharper of the two blurred to
  the other's seeing (Gaussian kernel, widths from the headers' FWHM) and the
  reference scaled to the frame's zero point;
* :func:`detect_residuals`: significant positive and negative residuals after
  a filter matched to the PSF; the threshold is in sigma of the filtered image
  (measured robustly), which for background-dominated noise is the S/N of a PSF
  fit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FWHM_TO_SIGMA = 1.0 / 2.3548


def sky_level(image: np.ndarray) -> float:
    """The frame's background, the median of a 1-in-16 pixel sample (robust to stars, cheap on 16 Mpx)."""
    sample = image[::4, ::4]
    return float(np.nanmedian(sample))


def robust_sigma(image: np.ndarray) -> float:
    """Noise from the median absolute deviation of a pixel sample."""
    sample = image[::3, ::3]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 1.0
    return float(1.4826 * np.median(np.abs(sample - np.median(sample)))) or 1.0


MAX_DRIFT_PX = 25.0  # largest pointing drift between an epoch and the reference that alignment looks for
ALIGN_STARS = 300  # brightest round sources used to align


def stars(image: np.ndarray, fwhm: float, limit: int = ALIGN_STARS) -> np.ndarray:
    """(N, 2) centroids of the brightest round point sources of a background-free image (lines and hot columns,
    which would drag an alignment along themselves, fail the roundness test)."""
    import cv2

    data = np.nan_to_num(image).astype(np.float32)
    filtered = cv2.GaussianBlur(data, (0, 0), max(fwhm * FWHM_TO_SIGMA, 0.5))
    sigma = robust_sigma(filtered)
    peaks = (filtered >= cv2.dilate(filtered, np.ones((7, 7), np.uint8))) & (filtered > 10.0 * sigma)
    peaks[:3, :] = peaks[-3:, :] = peaks[:, :3] = peaks[:, -3:] = False
    y, x = np.nonzero(peaks)
    order = np.argsort(-filtered[y, x])[: 4 * limit]
    y, x = y[order], x[order]
    # Sub-pixel position from the three pixels through the peak in x and in y, on a log scale: exact for a
    # Gaussian profile, which the PSF-filtered image is near its peak. Roundness from the second moments.
    def log_at(dy, dx):
        return np.log(np.clip(filtered[y + dy, x + dx], 1e-6, None))

    centre = log_at(0, 0)
    left, right, down, up = log_at(0, -1), log_at(0, 1), log_at(-1, 0), log_at(1, 0)
    curve_x, curve_y = left - 2 * centre + right, down - 2 * centre + up
    cx = np.clip(0.5 * (left - right) / np.where(curve_x < 0, curve_x, -1e9), -0.5, 0.5)
    cy = np.clip(0.5 * (down - up) / np.where(curve_y < 0, curve_y, -1e9), -0.5, 0.5)
    offsets = np.arange(-2, 3)
    patch = np.clip(filtered[(y[:, None] + offsets)[:, :, None], (x[:, None] + offsets)[:, None, :]], 0, None)
    total = patch.sum(axis=(1, 2)) + 1e-9
    my = (patch.sum(axis=2) * offsets).sum(axis=1) / total
    mx = (patch.sum(axis=1) * offsets).sum(axis=1) / total
    vy = (patch.sum(axis=2) * offsets**2).sum(axis=1) / total - my**2
    vx = (patch.sum(axis=1) * offsets**2).sum(axis=1) / total - mx**2
    round_ = np.abs(vx - vy) < 0.35 * (vx + vy)
    keep = np.flatnonzero(round_)[:limit]
    return np.stack([x[keep] + cx[keep], y[keep] + cy[keep]], axis=1)


def measure_shift(reference_stars: np.ndarray, image_stars: np.ndarray) -> tuple[float, float] | None:
    """(dx, dy) that moves the image onto the reference's grid, by voting: every pair of a reference star and an
    image star within :data:`MAX_DRIFT_PX` votes for its offset; the offsets near the most voted one are
    averaged. None when too few stars agree (the frame keeps its grid; the caller says so)."""
    from scipy.spatial import cKDTree

    if len(reference_stars) < 3 or len(image_stars) < 3:
        return None
    pairs = cKDTree(image_stars).query_ball_point(reference_stars, MAX_DRIFT_PX)
    ref_i = np.repeat(np.arange(len(reference_stars)), [len(p) for p in pairs])
    img_i = np.fromiter((j for p in pairs for j in p), dtype=np.int64, count=len(ref_i))
    if len(ref_i) == 0:
        return None
    d = reference_stars[ref_i] - image_stars[img_i]
    bins = np.arange(-MAX_DRIFT_PX - 0.5, MAX_DRIFT_PX + 1.0, 1.0)
    votes, xe, ye = np.histogram2d(d[:, 0], d[:, 1], bins=(bins, bins))
    ix, iy = np.unravel_index(np.argmax(votes), votes.shape)
    if votes[ix, iy] < 3:
        return None
    centre = np.array([0.5 * (xe[ix] + xe[ix + 1]), 0.5 * (ye[iy] + ye[iy + 1])])
    near = np.all(np.abs(d - centre) <= 1.0, axis=1)
    dx, dy = np.median(d[near], axis=0)
    return float(dx), float(dy)


def shift_image(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """``image`` moved by (dx, dy) px (bilinear), NaN where no data came in."""
    import cv2

    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
    return cv2.warpAffine(
        image.astype(np.float32),
        matrix,
        image.shape[::-1],
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float("nan"),
    )


def blur_to(image: np.ndarray, fwhm_from: float, fwhm_to: float) -> np.ndarray:
    """``image`` convolved with the Gaussian that widens a PSF of ``fwhm_from`` to ``fwhm_to`` (no-op if narrower)."""
    import cv2

    extra = (fwhm_to**2 - fwhm_from**2) if fwhm_to > fwhm_from else 0.0
    if extra <= 1e-6:
        return image
    return cv2.GaussianBlur(image, (0, 0), float(np.sqrt(extra) * FWHM_TO_SIGMA))


@dataclass
class Reference:
    """The template: background-free pixels on the reference grid, its seeing FWHM (px) and zero point."""

    image: np.ndarray
    fwhm: float
    zero_point: float
    epochs: int

    @classmethod
    def stack(cls, frames: list[np.ndarray], fwhms: list[float], zero_points: list[float]) -> Reference:
        """Median of aligned, background-free frames after matching each to the broadest seeing and the first
        frame's zero point: the noise drops, a transient in one of them is voted out."""
        broadest, zp = max(fwhms), zero_points[0]
        matched = [
            blur_to(f, w, broadest) * np.float32(10.0 ** (0.4 * (zp - z)))
            for f, w, z in zip(frames, fwhms, zero_points, strict=True)
        ]
        image = matched[0] if len(matched) == 1 else np.nanmedian(np.stack(matched), axis=0)
        return cls(np.nan_to_num(image).astype(np.float32), broadest, zp, len(frames))


def difference(image: np.ndarray, fwhm: float, zero_point: float, reference: Reference) -> tuple[np.ndarray, float]:
    """Background-free frame minus the PSF- and flux-matched reference; and the seeing both now share."""
    ref = reference.image * np.float32(10.0 ** (0.4 * (zero_point - reference.zero_point)))
    common = max(fwhm, reference.fwhm)
    diff = blur_to(image, fwhm, common) - blur_to(ref, reference.fwhm, common)
    return diff, common


@dataclass
class Residuals:
    """Significant residuals: positions (reference grid), signed S/N, and the filtered image's noise."""

    x: np.ndarray
    y: np.ndarray
    snr: np.ndarray
    sigma: float


def detect_residuals(diff: np.ndarray, fwhm: float, threshold: float, min_separation: int = 5) -> Residuals:
    """Local extrema of the PSF-filtered difference beyond ``threshold`` sigma, positive (brightened, appeared)
    and negative (faded), at least ``min_separation`` px apart."""
    import cv2

    data = np.nan_to_num(diff).astype(np.float32)
    filtered = cv2.GaussianBlur(data, (0, 0), max(fwhm * FWHM_TO_SIGMA, 0.5))
    sigma = robust_sigma(filtered)
    kernel = np.ones((min_separation, min_separation), np.uint8)
    xs, ys, snr = [], [], []
    for sign in (1.0, -1.0):
        signed = sign * filtered
        peaks = (signed >= cv2.dilate(signed, kernel)) & (signed > threshold * sigma)
        y, x = np.nonzero(peaks)
        xs.append(x)
        ys.append(y)
        snr.append(filtered[y, x] / sigma)
    return Residuals(
        np.concatenate(xs).astype(np.float64), np.concatenate(ys).astype(np.float64), np.concatenate(snr), sigma
    )


def detect_sources(image: np.ndarray, fwhm: float, threshold: float, min_separation: int = 10) -> Residuals:
    """Sources in a background-free image (the reference): positive extrema only."""
    found = detect_residuals(image, fwhm, threshold, min_separation)
    keep = found.snr > 0
    order = np.argsort(-found.snr[keep])
    return Residuals(found.x[keep][order], found.y[keep][order], found.snr[keep][order], found.sigma)
