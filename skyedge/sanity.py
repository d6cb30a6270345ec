"""Is this a night-sky frame at all? Cheap physical checks on the raw frame, before any model sees it.

A frame that fails is never given a sky class: the edge reports it as ``unrecognised`` with the reason in the
message's ``invalid`` field and counts it. The checks, on the pixels that are sky (finite, unmasked), as mono:

* ``constant``: no spread at all (a stuck sensor, a blank file);
* ``saturated``: most of the middle of the frame at its maximum value, the converter's top or the full well
  (daylight or a bright moon on a fixed exposure, a light in the dome);
* ``structureless``: nothing but pixel noise: the means of 8x8 blocks vary no more than the noise itself allows
  (a capped lens, a noise frame). Any real sky has structure on that scale: vignetting, the horizon, gradients
  of airglow and light pollution, clouds, stars.

Daylight on an auto-exposing camera and a defocused frame are left to the model's open-set distance and, with a
site location, to the ephemeris (docs/observatory-control.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SATURATED_FRACTION = 0.5
STRUCTURE_MIN = 5.0  # block-mean spread over the noise expected of 8x8 means (white noise: 1; JPEG artefacts on a
# capped lens reach 3.3; the lowest simulated sky 9.8, the lowest of 1,111 real frames 25)
BLOCK = 8
MAX_SIDE = 512  # larger frames are checked on a 2x2-binned copy (binning keeps both measures honest)


def _mono(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image.astype(np.float32)
    return sum(image[..., c].astype(np.float32) for c in range(image.shape[2])) / np.float32(image.shape[2])


@dataclass(frozen=True)
class FrameProblem:
    """Why a frame is not a usable night sky: a reason code (one of :data:`REASONS`) and a sentence for people."""

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"

    def message(self) -> dict:
        """The classification message's ``invalid`` field."""
        return {"reason": self.reason, "detail": self.detail}


REASONS = ("constant", "saturated", "structureless")


def frame_problem(image: np.ndarray, sky: np.ndarray | None = None) -> FrameProblem | None:
    """Why ``image`` is not a usable night-sky frame, or None. ``sky``: boolean (H, W) of pixels that are sky."""
    top = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else None
    x = _mono(image)
    valid = np.isfinite(x) if sky is None else np.isfinite(x) & sky
    while max(x.shape) > MAX_SIDE:
        x, valid = _bin2(x, valid)
    values = x[valid]
    if values.size < 64:
        return FrameProblem("constant", "almost no sky pixels")
    lo, hi = np.percentile(_thinned(values), [0.1, 99.9])
    if hi - lo <= max(1e-6 * max(abs(hi), 1.0), 0.5 if top else 0.0):
        return FrameProblem("constant", f"every sky pixel is {float(np.median(values)):g}")
    saturated = _saturated_fraction(x, valid, top)
    if saturated > SATURATED_FRACTION:
        return FrameProblem("saturated", f"{100 * saturated:.0f}% of the middle of the frame at its maximum value")
    structure = _structure(x, valid)
    if structure is not None and structure < STRUCTURE_MIN:
        return FrameProblem("structureless", f"no structure beyond pixel noise (block spread {structure:.1f} x noise)")
    return None


def _bin2(x: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 binning by strided sums (a reshape-mean over two axes is several times slower)."""
    h, w = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    quads = [(slice(i, h, 2), slice(j, w, 2)) for i in (0, 1) for j in (0, 1)]
    binned = sum(x[q] for q in quads) * np.float32(0.25)
    return binned, np.logical_and.reduce([valid[q] for q in quads])


def _thinned(values: np.ndarray, keep: int = 65536) -> np.ndarray:
    """An even subsample for order statistics: quantiles of 65k values are as good and far cheaper."""
    return values[:: max(1, values.size // keep)]


def _saturated_fraction(x: np.ndarray, valid: np.ndarray, top: float | None) -> float:
    """Fraction of the middle of the frame that is saturated.

    Measured on the middle half of both axes, which is sky on every all-sky camera (the corners outside the lens
    circle stay dark even when the whole sky is saturated). Saturated pixels sit at the converter's top, or on
    a plateau at the full well (a camera whose full well is below its converter's range, a float FITS): either
    way at one value, the frame's maximum.
    """
    h, w = x.shape
    middle = (slice(h // 4, h - h // 4), slice(w // 4, w - w // 4))
    centre = x[middle][valid[middle]]
    if centre.size == 0:
        return 0.0
    peak = float(centre.max())
    if peak <= float(np.min(x[valid])):
        return 0.0
    level = min(0.98 * top, peak) if top is not None else peak - 1e-6 * abs(peak)
    return float((centre >= level).mean())


def _structure(x: np.ndarray, valid: np.ndarray) -> float | None:
    """Spread of 8x8 block means in units of the spread pixel noise alone would give them."""
    # Pixel noise from neighbour differences: robust to stars and gradients. The median absolute deviation alone
    # collapses to 0 on 8-bit frames a JPEG encoder has smoothed (most neighbours then differ by nothing), which
    # read a capped lens as infinitely structured (6 of 40 capped colour JPEGs passed as skies): the mean absolute
    # deviation, which sees the few differences of one or two levels, floors it.
    diffs = np.diff(x, axis=1)[valid[:, 1:] & valid[:, :-1]]
    if diffs.size < 32:
        return None
    diffs = _thinned(diffs)
    deviations = np.abs(diffs - np.median(diffs))
    noise = max(1.4826 * float(np.median(deviations)), 1.2533 * float(np.mean(deviations))) / np.sqrt(2.0)
    h, w = (x.shape[0] // BLOCK) * BLOCK, (x.shape[1] // BLOCK) * BLOCK
    blocks = x[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    full = valid[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK).all(axis=(1, 3))
    means = blocks.sum(axis=3).sum(axis=1)[full] / (BLOCK * BLOCK)
    if means.size < 8:
        return None
    spread = 1.4826 * float(np.median(np.abs(means - np.median(means))))
    spread = max(spread, float(np.std(means)) * 0.5)  # a sky that is mostly flat with a horizon still counts
    if noise <= 0:
        return float("inf") if spread > 0 else 0.0
    return spread / (noise / BLOCK)
