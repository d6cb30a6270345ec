"""A raw telescope frame's observing conditions: taken from the header where the camera wrote them, measured
where it did not, and said which.

Camera software (N.I.N.A., MaxIm DL, INDI/Ekos, ASCOM drivers) writes the time and the exposure, maybe the
pointing and altitude; survey pipelines' keywords (FWHM, SKYLEVEL, MAGZP, AIRMASS) are the edge's job to
measure:

* time: ``MJD-OBS``; else ``DATE-OBS`` (an offset such as ``-0700`` is honoured; none means UTC); else
  ``UT-OBS``; else the file's modification time (said so);
* exposure: ``EXPTIME`` or ``EXPOSURE`` (else 1 s, said so);
* sky level and noise: the frame's robust median and MAD;
* seeing (FWHM, px): second moments of isolated, unsaturated stars, the median;
* zero point: relative to the reference from matched stars (the median flux ratio), on the scale of the
  configured ``zero_point`` (or the header's MAGZP); clouds show as a drop;
* airmass: ``AIRMASS``; else from the altitude the header gives (``ALT``, ``TELALT``, ``ALTITUDE``,
  Kasten & Young 1989); else 1 (said so).

Header values, when present, are used and cross-checked against the measurement (a disagreement is logged).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from skyedge.edge.sources.observation_time import observation_time

log = logging.getLogger(__name__)

HEADER_PIPELINE_KEYS = {"fwhm": "FWHM", "sky": "SKYLEVEL", "zero_point": "MAGZP", "airmass": "AIRMASS"}
ALTITUDE_KEYS = ("ALT", "TELALT", "ALTITUDE", "OBJCTALT")


def airmass_from_altitude(alt_deg: float) -> float:
    """Kasten & Young (1989): good to the horizon, unlike sec(z)."""
    alt = max(alt_deg, 0.5)
    return 1.0 / (math.sin(math.radians(alt)) + 0.50572 * (alt + 6.07995) ** -1.6364)


def header_conditions(header: dict, path: str) -> tuple[dict, dict]:
    """(what the header says: mjd, exptime, airmass and any pipeline keywords; where each came from)."""
    found, source = {}, {}
    found["mjd"], source["mjd"] = observation_time(header, path)
    for key in ("EXPTIME", "EXPOSURE"):
        if key in header:
            found["exptime"], source["exptime"] = float(header[key]), f"header:{key}"
            break
    else:
        found["exptime"], source["exptime"] = 1.0, "assumed"
    for name, key in HEADER_PIPELINE_KEYS.items():
        if key in header:
            try:
                found[name], source[name] = float(header[key]), f"header:{key}"
            except (TypeError, ValueError):
                continue
    if "airmass" not in found:
        for key in ALTITUDE_KEYS:
            if key in header:
                try:
                    found["airmass"], source["airmass"] = airmass_from_altitude(float(header[key])), f"header:{key}"
                    break
                except (TypeError, ValueError):
                    continue
        else:
            found["airmass"], source["airmass"] = 1.0, "assumed"
    return found, source


def saturation_level(image: np.ndarray, header: dict) -> float:
    """The level from which a pixel is saturated: SATURATE when written, else just below the frame's maximum
    when that maximum is reached by a plateau of pixels (a converter's top), else infinity."""
    if "SATURATE" in header:
        try:
            return float(header["SATURATE"])
        except (TypeError, ValueError):
            pass
    top = float(np.nanmax(image))
    if np.count_nonzero(image >= top) >= 4:
        return 0.98 * top
    return float("inf")


def star_fwhm(image: np.ndarray, xy: np.ndarray, saturated: float, box: int = 7) -> float | None:
    """Median FWHM (px) of the isolated, unsaturated stars at ``xy`` in a background-free image, from their
    second moments (a Gaussian's FWHM is 2.3548 sigma)."""
    if len(xy) < 3:
        return None
    from scipy.spatial import cKDTree

    h, w = image.shape
    half = box // 2
    d, _ = cKDTree(xy).query(xy, k=2)
    ix, iy = np.rint(xy[:, 0]).astype(np.int64), np.rint(xy[:, 1]).astype(np.int64)
    ok = (d[:, 1] > 3 * box) & (ix >= half) & (iy >= half) & (ix < w - half) & (iy < h - half)
    ix, iy = ix[ok][:120], iy[ok][:120]  # the brightest isolated stars: enough for a median
    if len(ix) < 3:
        return None
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    patches = image[iy[:, None, None] + yy, ix[:, None, None] + xx].astype(np.float64)
    good = np.isfinite(patches).all(axis=(1, 2)) & (np.nan_to_num(patches).max(axis=(1, 2)) < saturated)
    patches = patches[good]
    border = np.ones((box, box), bool)
    border[1:-1, 1:-1] = False
    patches = np.clip(patches - np.median(patches[:, border], axis=1)[:, None, None], 0, None)
    total = patches.sum(axis=(1, 2))
    keep = total > 0
    patches, total = patches[keep], total[keep]
    mx = (patches * xx).sum(axis=(1, 2)) / total
    my = (patches * yy).sum(axis=(1, 2)) / total
    var = (
        (patches * (xx - mx[:, None, None]) ** 2).sum(axis=(1, 2)) + (patches * (yy - my[:, None, None]) ** 2).sum(axis=(1, 2))
    ) / (2 * total)
    widths = 2.3548 * np.sqrt(var[var > 0][:60])
    return float(np.median(widths)) if len(widths) >= 3 else None


def relative_flux(frame: np.ndarray, reference: np.ndarray, ref_xy: np.ndarray, radius: float) -> float | None:
    """Median ratio of aperture sums, frame over reference, at matched star positions on the reference grid (the
    frame already warped onto it and background-free)."""
    h, w = reference.shape
    r = int(math.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = xx**2 + yy**2 <= radius**2
    ratios = []
    for x, y in ref_xy:
        ix, iy = int(round(x)), int(round(y))
        if ix < r or iy < r or ix >= w - r or iy >= h - r:
            continue
        a = frame[iy - r : iy + r + 1, ix - r : ix + r + 1][disc]
        b = reference[iy - r : iy + r + 1, ix - r : ix + r + 1][disc]
        if np.isfinite(a).all() and np.isfinite(b).all() and b.sum() > 0:
            ratios.append(a.sum() / b.sum())
    ratios = np.array(ratios)
    ratios = ratios[np.isfinite(ratios) & (ratios > 0)]
    return float(np.median(ratios)) if len(ratios) >= 3 else None
