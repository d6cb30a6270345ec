"""Frames of the real sky through a known fisheye lens, for tests of the star watch on the edge."""

from __future__ import annotations

import os

import numpy as np

from skyedge.stars.lens import Lens
from skyedge.training.simulate.starfield import render_star_field

SITE = (38.607, 93.896, 4200.0)
LOCATION = {"latitude_deg": SITE[0], "longitude_deg": SITE[1], "elevation_m": SITE[2]}
NIGHT = 1525712400.0  # 2018-05-07 17:00 UTC, deep night at the site
LENS = Lens(191.5, 191.5, 175.0, 33.0, "left", "equidistant")
SHAPE = (384, 384)


def star_frame(path, posix: float, cloudy: bool | str, seed: int, stamped: float | None = None, veil_mag: float = 0.0):
    """A FITS frame of the real sky through LENS: clear, overcast (``cloudy=True``) or ``"east"`` (an opaque cloud
    over azimuths 0-180), every star ``veil_mag`` fainter (thin cloud); its header says it was taken at ``stamped``
    (default: when it was)."""
    from astropy.io import fits

    cloud = np.ones(SHAPE, np.float32) if cloudy is True else None
    if cloudy == "east":
        yy, xx = np.mgrid[0 : SHAPE[0], 0 : SHAPE[1]]
        cloud = (LENS.sky(xx, yy)[1] < 180).astype(np.float32)
    img = render_star_field(LENS, SHAPE, SITE, posix, limiting_mag=4.5 - veil_mag, cloud=cloud, seed=seed)
    stamp = np.datetime_as_string(np.datetime64(int(posix if stamped is None else stamped), "s"))
    fits.PrimaryHDU(img, header=fits.Header({"DATE-OBS": stamp})).writeto(path)
    os.utime(path, (posix, posix))  # arrival order = capture order
    return path
