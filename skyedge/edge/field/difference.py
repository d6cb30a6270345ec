"""Difference imaging for a telescope field: stars, a reference, PSF matching, and residual detection.

What a survey pipeline does to find what is new in a frame, in array
operations (numpy and OpenCV), sized for a 4k x 4k frame every minute on a
Jetson's CPU:

* :func:`stars`: isolated, round point sources, brightest first (what alignment,
  :mod:`skyedge.edge.field.align`, matches and seeing is measured on);
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

from skyedge.edge.field.arrays import finite32, median, pixels

FWHM_TO_SIGMA = 1.0 / 2.3548


def sky_level(image: np.ndarray) -> float:
    """The frame's background, the median of a 1-in-16 pixel sample (robust to stars, cheap on 16 Mpx)."""
    sample = image[::4, ::4]
    return float(np.nanmedian(sample))


BACKGROUND_BOX = 64  # px: the mesh of the background map (a sky gradient, vignetting, a moonlit corner)


def background(image: np.ndarray, box: int = BACKGROUND_BOX) -> np.ndarray:
    """The frame's smooth background: the median of each box of a coarse mesh (robust to the stars in it),
    median-filtered over 3x3 boxes (robust to a bright star filling one), interpolated to every pixel. A single
    level when the frame is smaller than two boxes."""
    import cv2

    h, w = image.shape
    ny, nx = max(h // box, 1), max(w // box, 1)
    if ny < 2 and nx < 2:
        return np.full(image.shape, sky_level(image), np.float32)
    sample = image[::2, ::2].astype(np.float32)  # a 1-in-4 sample is plenty for a median
    ch, cw = sample.shape[0] // ny, sample.shape[1] // nx
    whole = sample[: ny * ch, : nx * cw]
    if np.isfinite(whole).all():
        # One vectorised median per cell over its block of the sample (the last partial row/column left out).
        cells = median(whole.reshape(ny, ch, nx, cw).transpose(0, 2, 1, 3).reshape(ny, nx, -1), axis=2)
    else:
        cells = _cell_medians(sample, ny, nx, h, w)
    cells = np.where(np.isfinite(cells), cells, np.nanmedian(cells))
    if ny >= 3 and nx >= 3:
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(cells, 1, mode="edge"), (3, 3))
        cells = median(windows.reshape(ny, nx, 9)).astype(np.float32)
    return cv2.resize(cells, (w, h), interpolation=cv2.INTER_LINEAR)


def _cell_medians(sample: np.ndarray, ny: int, nx: int, h: int, w: int) -> np.ndarray:
    """Median of the finite pixels of each of ny x nx cells of a 1-in-2 sample of an h x w frame (NaN: empty)."""
    ys = np.minimum(np.arange(0, h, 2) * ny // h, ny - 1)
    xs = np.minimum(np.arange(0, w, 2) * nx // w, nx - 1)
    cells = np.full((ny, nx), np.nan, np.float32)
    for j in range(ny):
        rows = sample[ys == j]
        for i in range(nx):
            values = rows[:, xs == i]
            values = values[np.isfinite(values)]
            if values.size:
                cells[j, i] = np.median(values)
    return cells


SIGMA_SAMPLE = 65536  # pixels a noise estimate reads at most (the MAD of 65k pixels is good to 0.5%)


def robust_sigma(image: np.ndarray, where: np.ndarray | None = None) -> float:
    """Noise from the median absolute deviation of a regular pixel sample (of the pixels ``where``, if given)."""
    step = max(3, int(np.ceil(np.sqrt(image.size / SIGMA_SAMPLE))))
    sample = image[::step, ::step]
    if where is not None:
        sample = sample[where[::step, ::step]]
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        return 1.0
    return float(1.4826 * median(np.abs(sample - median(sample)))) or 1.0


ALIGN_STARS = 300  # brightest round sources used to align


def stars(image: np.ndarray, fwhm: float, limit: int = ALIGN_STARS) -> np.ndarray:
    """(N, 2) centroids of the brightest round point sources of a background-free image (lines and hot columns,
    which would drag an alignment along themselves, fail the roundness test)."""
    import cv2

    filtered = cv2.GaussianBlur(finite32(image), (0, 0), max(fwhm * FWHM_TO_SIGMA, 0.5))
    sigma = robust_sigma(filtered)
    peaks = (filtered >= cv2.dilate(filtered, np.ones((7, 7), np.uint8))) & (filtered > 10.0 * sigma)
    peaks[:3, :] = peaks[-3:, :] = peaks[:, :3] = peaks[:, -3:] = False
    y, x = pixels(peaks)
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


def blur_to(image: np.ndarray, fwhm_from: float, fwhm_to: float) -> np.ndarray:
    """``image`` convolved with the Gaussian that widens a PSF of ``fwhm_from`` to ``fwhm_to`` (no-op if narrower)."""
    import cv2

    extra = (fwhm_to**2 - fwhm_from**2) if fwhm_to > fwhm_from else 0.0
    if extra <= 1e-6:
        return image
    return cv2.GaussianBlur(image, (0, 0), float(np.sqrt(extra) * FWHM_TO_SIGMA))


@dataclass
class Reference:
    """The template: background-free pixels on the reference grid, its seeing FWHM (px), zero point, and the
    pixel noise of one frame at that zero point (the unit of a noise-scaled model's stamps)."""

    image: np.ndarray
    fwhm: float
    zero_point: float
    epochs: int
    noise: float = float("nan")

    @classmethod
    def stack(
        cls, frames: list[np.ndarray], fwhms: list[float], zero_points: list[float], noise: float = float("nan")
    ) -> Reference:
        """Median of aligned, background-free frames after matching each to the broadest seeing and the first
        frame's zero point: the noise drops, a transient in one of them is voted out."""
        broadest, zp = max(fwhms), zero_points[0]
        matched = [
            blur_to(f, w, broadest) * np.float32(10.0 ** (0.4 * (zp - z)))
            for f, w, z in zip(frames, fwhms, zero_points, strict=True)
        ]
        image = matched[0] if len(matched) == 1 else np.nanmedian(np.stack(matched), axis=0)
        return cls(np.nan_to_num(image).astype(np.float32), broadest, zp, len(frames), noise)


def difference(
    image: np.ndarray, fwhm: float, zero_point: float, reference: Reference
) -> tuple[np.ndarray, float, np.ndarray]:
    """Background-free frame minus the PSF- and flux-matched reference; the seeing both now share; and that
    matched reference (what the difference's noise near sources is judged by)."""
    ref = reference.image * np.float32(10.0 ** (0.4 * (zero_point - reference.zero_point)))
    common = max(fwhm, reference.fwhm)
    template = blur_to(ref, reference.fwhm, common)
    return blur_to(image, fwhm, common) - template, common, template


@dataclass
class NoiseModel:
    """Noise of the PSF-filtered difference: ``sigma**2 + a*t + f2*t*t`` with ``t`` the brightest pixel of the
    filtered template within a seeing disc (what PSF matching leaves of a star lies around its peak, where the
    template is fainter). Evaluated only where asked (candidates, vetting): a frame-sized map costs
    more than the rest of the detection."""

    sigma: float
    a: float = 0.0
    f2: float = 0.0
    template: np.ndarray | None = None  # the filtered template, clipped at 0
    reach: int = 1  # the seeing disc's diameter, px (odd)

    def _disc(self) -> tuple[np.ndarray, np.ndarray]:
        """Offsets of the seeing disc's pixels (cv2's ellipse, as a dilation with it would reach)."""
        import cv2

        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (self.reach, self.reach))
        dy, dx = np.nonzero(disc)
        return dy - self.reach // 2, dx - self.reach // 2

    def _from_template(self, t: np.ndarray) -> np.ndarray:
        return np.sqrt(self.sigma**2 + self.a * t + self.f2 * t * t).astype(np.float32)

    def at(self, y: np.ndarray, x: np.ndarray, chunk: int = 16384) -> np.ndarray:
        """The noise at pixels (``y``, ``x``)."""
        if self.template is None or (self.a == 0.0 and self.f2 == 0.0):
            return np.full(len(y), self.sigma, np.float32)
        h, w = self.template.shape
        dy, dx = self._disc()
        brightest = np.zeros(len(y), np.float32)
        for start in range(0, len(y), chunk):  # bounded memory however many candidates a noisy frame has
            ys = y[start : start + chunk, None] + dy
            xs = x[start : start + chunk, None] + dx
            inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
            values = self.template[np.clip(ys, 0, h - 1), np.clip(xs, 0, w - 1)]
            brightest[start : start + chunk] = np.where(inside, values, 0.0).max(axis=1)
        return self._from_template(brightest)


@dataclass
class Residuals:
    """Significant residuals: positions (reference grid), signed S/N, and the filtered image's noise."""

    x: np.ndarray
    y: np.ndarray
    snr: np.ndarray
    sigma: float
    filtered: np.ndarray | None = None  # the PSF-filtered difference (what real/bogus judges lobes on)
    noise: NoiseModel | None = None  # its noise, raised near the template's stars
    template: np.ndarray | None = None  # the flux-matched reference, filtered alike


def detect_residuals(
    diff: np.ndarray,
    fwhm: float,
    threshold: float,
    min_separation: int = 5,
    usable: np.ndarray | None = None,
    template: np.ndarray | None = None,
) -> Residuals:
    """Local extrema of the PSF-filtered difference beyond ``threshold`` sigma, positive (brightened, appeared)
    and negative (faded), at least ``min_separation`` px apart; only where ``usable`` (the noise is measured
    there too: masked pixels neither detect nor set the threshold).

    ``template``: the flux-matched reference on the same grid. Near its stars the difference is noisier than the
    sky (their photon noise, and what PSF matching leaves of them); the noise there is measured on this very
    difference (:func:`noise_model`), so a bright star's residue is not a discovery while empty sky keeps the
    full sensitivity."""
    import cv2

    data = finite32(diff)
    if usable is not None:
        data = np.where(usable, data, np.float32(0.0))
    width = max(fwhm * FWHM_TO_SIGMA, 0.5)
    filtered = cv2.GaussianBlur(data, (0, 0), width)
    sigma = robust_sigma(filtered, where=usable)
    smooth = None
    noise = NoiseModel(sigma)
    if template is not None:
        smooth = cv2.GaussianBlur(finite32(template), (0, 0), width)
        noise = noise_model(filtered, smooth, sigma, usable, fwhm)
    kernel = np.ones((min_separation, min_separation), np.uint8)
    xs, ys, snr = [], [], []
    for sign in (1.0, -1.0):
        signed = sign * filtered
        # The noise is never below sigma: extrema beyond threshold * sigma are the only candidates, and the
        # model is evaluated at those alone.
        peaks = (signed >= cv2.dilate(signed, kernel)) & (signed > threshold * sigma)
        if usable is not None:
            peaks &= usable
        y, x = pixels(peaks)
        ratio = filtered[y, x] / noise.at(y, x)
        keep = sign * ratio > threshold
        xs.append(x[keep])
        ys.append(y[keep])
        snr.append(ratio[keep])
    return Residuals(
        np.concatenate(xs).astype(np.float64),
        np.concatenate(ys).astype(np.float64),
        np.concatenate(snr),
        sigma,
        filtered,
        noise,
        smooth,
    )


def noise_model(
    filtered: np.ndarray, smooth_template: np.ndarray, sigma: float, usable: np.ndarray | None, fwhm: float
) -> NoiseModel:
    """The filtered difference's :class:`NoiseModel`: ``a`` (photon noise) and ``f2`` (the square of the share of a
    star PSF matching leaves) fitted to the difference's scatter at the template's stars, binned by brightness:
    measured on each epoch, not promised by a header's gain."""
    import cv2

    t = smooth_template
    peaks = (t >= cv2.dilate(t, np.ones((5, 5), np.uint8))) & (t > 5.0 * robust_sigma(t))
    if usable is not None:
        peaks &= usable
    y, x = pixels(peaks)
    a = f2 = 0.0
    if len(x) >= 40:
        level, resid = t[y, x].astype(np.float64), filtered[y, x].astype(np.float64)
        edges = np.quantile(level, np.linspace(0, 1, min(10, len(x) // 20) + 1))
        rows, var = [], []
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            inside = (level >= lo) & (level <= hi)
            if inside.sum() >= 10:
                r = resid[inside]
                mid = float(np.median(level[inside]))
                rows.append([mid, mid * mid])
                var.append(max((1.4826 * np.median(np.abs(r - np.median(r)))) ** 2 - sigma**2, 0.0))
        if len(rows) >= 2:
            design, target = np.array(rows), np.array(var)
            scale = 1.0 / np.maximum(target, sigma**2)  # relative errors: faint and bright bins count alike
            a, f2 = nonnegative_fit(design * scale[:, None], target * scale)
    reach = 2 * int(np.ceil(2.0 * fwhm)) + 1
    return NoiseModel(sigma, float(a), float(f2), np.clip(t, 0.0, None), reach)


def nonnegative_fit(design: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """Least squares of two coefficients, both >= 0 (scipy's nnls for two columns: the best of the unconstrained
    fit, if it is non-negative, and each column alone)."""
    options = [np.zeros(2)]
    both = np.linalg.lstsq(design, target, rcond=None)[0]
    if (both >= 0).all():
        options.append(both)
    for j in (0, 1):
        column = design[:, j]
        norm = float(column @ column)
        if norm > 0:
            alone = np.zeros(2)
            alone[j] = max(float(column @ target) / norm, 0.0)
            options.append(alone)
    best = min(options, key=lambda c: float(np.sum((design @ c - target) ** 2)))
    return float(best[0]), float(best[1])


def detect_sources(image: np.ndarray, fwhm: float, threshold: float, min_separation: int = 10) -> Residuals:
    """Sources in a background-free image (the reference): positive extrema only."""
    found = detect_residuals(image, fwhm, threshold, min_separation)
    keep = found.snr > 0
    order = np.argsort(-found.snr[keep])
    return Residuals(found.x[keep][order], found.y[keep][order], found.snr[keep][order], found.sigma)
