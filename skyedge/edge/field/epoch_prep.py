"""What a raw telescope frame becomes before it is differenced: background-free pixels, measured conditions, an
alignment onto the reference grid, and the pixels that must not be differenced.

* Conditions: the header's where it has them, measured where not (:mod:`skyedge.edge.field.conditions`); the
  zero point relative to the reference is filled in by the tracker, which holds the reference.
* Alignment: stars matched to the reference grid's stars (:mod:`skyedge.edge.field.align`); a frame that
  cannot be aligned is an :class:`~skyedge.errors.InputError` naming the file (reported, skipped: never
  differenced blindly).
* Defects repaired in detector coordinates (replaced by their neighbourhood's median, as IRAF's fixpix does):
  single-pixel spikes (hot pixels and cosmic-ray hits, far above neighbours that hold little of their excess,
  unlike a star's), pixels that spiked in most frames so far, bad columns and rows (a whole column off its
  neighbours). Saturated stars and their bleed trails cannot be repaired: they are masked; the tracker warps the
  mask onto the reference grid and leaves it, and the frame's edges after the warp, out of the difference.

Source thread only (owned by the field's tracker).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from skyedge.edge.field.align import MIN_MATCHED, Alignment, align
from skyedge.edge.field.arrays import finite32, median, pixels
from skyedge.edge.field.conditions import header_conditions, saturation_level, star_fwhm
from skyedge.edge.field.difference import background, robust_sigma, stars
from skyedge.errors import InputError

log = logging.getLogger(__name__)

CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.uint8)

DEFAULT_FWHM_PX = 3.0  # the first guess before anything is measured
HOT_SIGMA = 8.0  # a pixel this far above its 3x3 neighbourhood's median ...
SPIKE_SHARE = 0.15  # ... while its four neighbours hold less than this share of its excess is a spike (a star's
# neighbours hold about half, unless its FWHM is under 1.2 px)
HOT_FRACTION = 0.5  # a pixel that spiked in this share of the frames seen is hot, even when it spikes less
HOT_MIN_FRAMES = 3


@dataclass
class Prepared:
    """One frame ready to be differenced."""

    frame: object  # the RawFrame
    image: np.ndarray  # background-free, as taken (stamps are cut here: the model was trained on such pixels)
    clean: np.ndarray  # background-free, defects repaired (stars, alignment and the difference use these)
    conditions: dict  # mjd, exptime, airmass, fwhm, sky, noise, zero_point (zero point relative: set by the tracker)
    sources: dict  # where each condition came from: header:<KEY>, measured, assumed, file-mtime
    alignment: Alignment
    stars: np.ndarray  # (N, 2) in the frame, brightest first
    bad: np.ndarray  # (H, W) bool, detector coordinates: pixels not to difference (saturated stars, bleeds)


class FramePreparer:
    """Measures, aligns and masks the frames of one field."""

    def __init__(self, spec):
        self.spec = spec
        self.hot_counts: np.ndarray | None = None
        self.frames_seen = 0
        self.warned_sparse = False
        self.last_matrix: np.ndarray | None = None  # the previous epoch's alignment: the next one's first guess

    def prepare(self, frame, grid_stars: np.ndarray | None) -> Prepared:
        """``frame`` measured and (with ``grid_stars``, the reference grid's) aligned; the first frame sets the grid."""
        raw = frame.image.astype(np.float32)
        found, sources = header_conditions(frame.header, frame.source)
        saturated_at = saturation_level(raw, frame.header)
        saturated = raw >= saturated_at
        repaired = self._repair(raw, saturated)
        smooth = background(repaired)
        sky = float(median(smooth[::8, ::8].ravel()))  # a smooth map: a sample of it has the same median
        image = repaired - smooth
        noise = robust_sigma(image)
        guess = found.get("fwhm", DEFAULT_FWHM_PX)
        xy = stars(image, guess)
        measured_fwhm = star_fwhm(image, xy, saturated_at - sky)
        if "fwhm" not in found:
            found["fwhm"], sources["fwhm"] = (
                (measured_fwhm, "measured") if measured_fwhm else (DEFAULT_FWHM_PX, "assumed")
            )
            if measured_fwhm and abs(measured_fwhm - guess) > 0.5 * guess:
                xy = stars(image, measured_fwhm)  # the stars again, filtered at the seeing measured
        if "sky" not in found:
            found["sky"], sources["sky"] = sky, "measured"
        found["noise"], sources["noise"] = noise, "measured"
        found.setdefault("zero_point", np.nan)
        alignment = Alignment.identity(len(xy))
        if grid_stars is not None and self.spec.align and len(grid_stars) < MIN_MATCHED:
            if not self.warned_sparse:
                log.warning(
                    "%s: the reference grid has %d stars, too few to align on (%d needed): frames are taken as "
                    "registered",
                    frame.source,
                    len(grid_stars),
                    MIN_MATCHED,
                )
                self.warned_sparse = True
        elif grid_stars is not None and self.spec.align:
            got = align(xy, grid_stars, guess=self.last_matrix)
            if got is None:
                raise InputError(
                    f"{frame.source}: cannot be aligned to the reference ({len(xy)} stars found, fewer than {MIN_MATCHED} "
                    "agree on one transform): clouds, a wrong target or a lost guide star? Not differenced"
                )
            alignment, self.last_matrix = got, got.matrix
        taken = finite32(raw) - smooth
        return Prepared(frame, taken, image, found, sources, alignment, xy, _saturation_mask(saturated))

    def _repair(self, raw: np.ndarray, saturated: np.ndarray) -> np.ndarray:
        """The frame with its defects replaced by the median of their 5x5 neighbourhood: single-pixel spikes (hot
        pixels, cosmic-ray hits: far above their neighbours, whose own excess is small, unlike a star's), the pixels
        that spiked in most frames so far (hot at a lower level now and then), and bad columns and rows."""
        import cv2

        data = finite32(raw)
        local = cv2.medianBlur(data, 3)
        excess = data - local
        noise = robust_sigma(excess) or 1.0
        # The largest excess among the four neighbours (a dilation by a cross without its centre).
        cross = cv2.dilate(excess, CROSS, borderType=cv2.BORDER_REFLECT)
        spikes = (excess > HOT_SIGMA * noise) & (cross < SPIKE_SHARE * excess) & ~saturated
        if self.hot_counts is None or self.hot_counts.shape != spikes.shape:
            self.hot_counts, self.frames_seen = np.zeros(spikes.shape, np.int32), 0
        self.hot_counts += spikes
        self.frames_seen += 1
        defects = spikes | _bad_lines(data)
        if self.frames_seen >= HOT_MIN_FRAMES:
            defects |= self.hot_counts >= HOT_FRACTION * self.frames_seen
        if not defects.any():
            return data
        return _median_at(data, defects)


def _median_at(data: np.ndarray, where: np.ndarray) -> np.ndarray:
    """``data`` with the pixels ``where`` replaced by the median of their 5x5 neighbourhood (as cv2.medianBlur would
    give there), computed only at those pixels: defects are few."""
    ys, xs = pixels(where)
    if len(ys) > where.size // 20:
        import cv2

        return np.where(where, cv2.medianBlur(data, 5), data)
    padded = np.pad(data, 2, mode="edge")  # as cv2.medianBlur extends the border
    offsets = np.arange(5)
    windows = padded[ys[:, None, None] + offsets[:, None], xs[:, None, None] + offsets[None, :]]
    out = data.copy()
    out[ys, xs] = median(windows.reshape(len(ys), 25), axis=1)
    return out


def _saturation_mask(saturated: np.ndarray) -> np.ndarray:
    """A saturated star's core and halo, and the charge it bled along its column: never differenced."""
    import cv2

    if not saturated.any():
        return saturated
    grown = cv2.dilate(saturated.astype(np.uint8), np.ones((9, 9), np.uint8))
    bleed = cv2.dilate(saturated.astype(np.uint8), np.ones((41, 3), np.uint8))
    return (grown | bleed).astype(bool)


def _bad_lines(data: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    """Columns and rows whose median stands out from their neighbours' (a bad column, a hot row)."""
    bad = np.zeros(data.shape, bool)
    for axis in (0, 1):
        # About 128 lines across are enough to see a whole line stand out (a median per line of them; made
        # contiguous along the median, which numpy takes several times faster).
        step = max(4, data.shape[axis] // 128)
        lines = data[::step].T if axis == 0 else data[:, ::step]
        profile = median(np.ascontiguousarray(lines), axis=1)
        smooth = np.median(np.lib.stride_tricks.sliding_window_view(np.pad(profile, 4, mode="edge"), 9), axis=1)
        spread = 1.4826 * np.median(np.abs(profile - smooth)) or 1.0
        off = np.abs(profile - smooth) > sigma * spread
        if axis == 0:
            bad[:, off] = True
        else:
            bad[off, :] = True
    return bad
