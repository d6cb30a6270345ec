"""Frames as a small telescope's camera software writes them, with nothing new in the field: the false-alarm test.

A star field seen night-long by a 16-bit camera (BZERO 32768), drifting by tens of pixels and turning slowly,
with a sky gradient, hot pixels and a bad column fixed to the detector, cosmic rays (one to three pixel hits and
short tracks), a saturated star with its bleed trail, and the header a camera writes: DATE-OBS in local time
with its offset, EXPTIME, TELALT; no MJD-OBS, FWHM, SKYLEVEL, MAGZP or AIRMASS.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np


def _stars(image: np.ndarray, xy: np.ndarray, flux: np.ndarray, fwhm: float) -> None:
    s = fwhm / 2.3548
    r = int(np.ceil(4 * s)) + 1
    h, w = image.shape
    for (x, y), f in zip(xy, flux, strict=True):
        ix, iy = int(round(x)), int(round(y))
        x0, x1, y0, y1 = max(ix - r, 0), min(ix + r + 1, w), max(iy - r, 0), min(iy + r + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        image[y0:y1, x0:x1] += f / (2 * np.pi * s * s) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * s * s))


def raw_camera_field(root: Path, seed: int = 0, epochs: int = 12, size: int = 256) -> Path:
    """Write ``epochs`` raw frames of one empty field to ``root``; return it."""
    from astropy.io import fits

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    n = 160
    sky_xy = rng.uniform(-60, size + 60, (n, 2))  # the sky beyond the first frame drifts in
    flux = 10 ** rng.uniform(2.6, 4.6, n)
    flux[0] = 4e6  # one star saturates
    sky_xy[0] = (0.3 * size, 0.6 * size)
    hot = rng.integers(5, size - 5, (25, 2))
    hot_level = rng.uniform(300, 3000, len(hot))
    bad_column = int(0.7 * size)
    start = datetime(2026, 12, 3, 19, 30, tzinfo=timezone(timedelta(hours=-7)))
    for e in range(epochs):
        drift = np.array([4.0 * e, -2.5 * e]) + rng.normal(0, 0.3, 2)
        turn = np.radians(0.04 * e)
        c, s_ = np.cos(turn), np.sin(turn)
        centre = np.array([size / 2, size / 2])
        # sky (first frame's grid) -> this frame: rotate about the centre, then drift
        xy = (sky_xy - centre) @ np.array([[c, -s_], [s_, c]]).T + centre + drift
        fwhm = rng.uniform(2.3, 3.0)
        image = np.zeros((size, size), np.float64)
        yy, xx = np.mgrid[:size, :size]
        image += 400.0 + 0.15 * xx + 0.08 * yy  # sky with a gradient
        _stars(image, xy, flux * rng.uniform(0.97, 1.03), fwhm)
        image = rng.poisson(np.clip(image, 0, None)).astype(np.float64) + rng.normal(0, 4.0, image.shape)
        image[hot[:, 1], hot[:, 0]] += hot_level
        image[:, bad_column] += 60.0
        for _ in range(rng.integers(4, 9)):  # cosmic rays: a hit, or a short track
            x, y = rng.integers(3, size - 3, 2)
            length = rng.integers(1, 4)
            dx, dy = rng.choice([-1, 0, 1], 2)
            for k in range(length):
                image[y + k * dy, x + k * dx] += rng.uniform(400, 3000)
        data = np.clip(np.rint(image), 0, 65535).astype(np.uint16)
        when = start + timedelta(minutes=10 * e)
        header = fits.Header()
        header["DATE-OBS"] = when.strftime("%Y-%m-%dT%H:%M:%S.000%z")
        header["EXPTIME"] = 60.0
        header["TELALT"] = 55.0 + 1.5 * e
        header["FILTER"] = "Clear"
        fits.PrimaryHDU(data, header).writeto(root / f"raw-{e:03d}.fits", overwrite=True)
    return root
