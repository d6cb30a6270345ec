"""Labels from the stars: a night frame's class and its cloud painted, from which of its expected stars are seen.

A camera at a known site with known capture times has a labeller that needs no person. Where the stars its lens
should show are seen across the sky, the sky is clear; where they are gone, something is in the way. One frame's
:class:`~skyedge.stars.visibility.Visibility` becomes

* a **class**: ``clear`` when the whole sky and the zenith each see at least ``CLEAR_AT`` of their expected stars
  and no sector with a verdict sees under ``SECTOR_FLOOR``; ``moon`` for such a sky under a moon at least
  ``MOON_MIN_ALT_DEG`` up and ``MOON_MIN_ILLUMINATION`` lit (the rule the development data's frame labels follow);
  ``cloudy`` when both see at most ``CLOUDY_AT``; anything between gets no label (partly cloudy is left to a person);
* a **painted mask** in the format of :mod:`skyedge.painted_cloud`: each sector seeing at least ``PAINT_CLEAR_AT``
  of its stars painted clear, at most ``PAINT_CLOUD_AT`` cloud, the rest, the sectors without enough expected stars
  (the horizon ring, the moon's glare), everything below the horizon and outside the site's mask not judged. A
  cloudy frame's few starry sectors are not trusted as clear.

What the stars cannot tell: thin cloud that the stars shine through reads clear, as it does to the cross-checks
(docs/stars.md). On the real development camera a person's polygons call a third to two fifths of the frames
labelled clear this way cloudy or partly cloudy, while 93-95% of the pixels painted clear are clear in the polygons
(docs/results.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from skyedge.painted_cloud import CLEAR_AT_MOST, CLOUD_AT_LEAST
from skyedge.sky_sectors import sector_of
from skyedge.stars.lens import Lens
from skyedge.stars.visibility import Visibility

CLEAR_AT = 0.85
SECTOR_FLOOR = 0.5
CLOUDY_AT = 0.2
PAINT_CLEAR_AT = 0.7
PAINT_CLOUD_AT = 0.2
MOON_MIN_ALT_DEG = 15.0
MOON_MIN_ILLUMINATION = 0.5
PAINT_CLEAR, PAINT_CLOUD, PAINT_UNJUDGED = 0, 255, (CLEAR_AT_MOST + CLOUD_AT_LEAST) // 2


@dataclass(frozen=True)
class StarLabel:
    """A frame's label from its stars: its class and its painted cloud (uint8, the frame's size)."""

    label: str  # clear, moon or cloudy
    paint: np.ndarray


def star_class(vis: Visibility, moon: tuple[float, float, float] | None) -> str | None:
    """``clear``, ``moon`` or ``cloudy`` from a frame's star visibility; None where the stars do not decide."""
    whole, zenith = vis.visible_fraction, vis.check_fraction
    if whole is None or zenith is None:
        return None
    judged = [v for v in vis.sectors if v is not None]
    if whole >= CLEAR_AT and zenith >= CLEAR_AT and min(judged, default=1.0) >= SECTOR_FLOOR:
        moonlit = moon is not None and moon[0] >= MOON_MIN_ALT_DEG and moon[2] >= MOON_MIN_ILLUMINATION
        return "moon" if moonlit else "clear"
    if whole <= CLOUDY_AT and zenith <= CLOUDY_AT:
        return "cloudy"
    return None


@lru_cache(maxsize=2)
def _pixel_sectors(lens: Lens, shape: tuple[int, int]) -> np.ndarray:
    """Each pixel's sector (-1 below the horizon; int8: 4 MB at 2k): a camera's lens changes seldom, and at 2k this
    map costs ten times what painting with it does."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    alt, az = lens.sky(xx.astype(np.float64), yy.astype(np.float64))
    sector = sector_of(90.0 - np.asarray(alt), np.asarray(az)).astype(np.int8)
    sector.flags.writeable = False
    return sector


def sector_paint(vis: Visibility, lens: Lens, shape: tuple[int, int], starry_is_clear: bool = True,
                 mask: np.ndarray | None = None) -> np.ndarray:
    """The frame's cloud painted sector by sector from its stars (0 clear, 255 cloud, grey not judged); ``mask``:
    the site's sky (True), outside which nothing is judged (a sector's stars say nothing of the roof in it)."""
    sector = _pixel_sectors(lens, tuple(shape))
    verdict = np.array([np.nan if v is None else v for v in vis.sectors] + [np.nan])  # last: below the horizon
    seen = verdict[np.where(sector < 0, len(verdict) - 1, sector)]
    paint = np.full(shape, PAINT_UNJUDGED, np.uint8)
    with np.errstate(invalid="ignore"):
        if starry_is_clear:
            paint[seen >= PAINT_CLEAR_AT] = PAINT_CLEAR
        paint[seen <= PAINT_CLOUD_AT] = PAINT_CLOUD
    if mask is not None:
        paint[~np.asarray(mask, bool)] = PAINT_UNJUDGED
    return paint


def star_label(vis: Visibility | None, lens: Lens | None, shape: tuple[int, int], moon: tuple[float, float, float] | None,
               mask: np.ndarray | None = None) -> StarLabel | None:
    """A night frame's label and painted cloud from its stars; None where they do not decide (no geometry, no
    limits yet, too few expected stars, or a sky between clear and cloudy). ``moon``: (altitude, azimuth,
    illuminated fraction); ``mask``: the site's sky (True)."""
    if vis is None or lens is None:
        return None
    label = star_class(vis, moon)
    if label is None:
        return None
    paint = sector_paint(vis, lens, shape, starry_is_clear=label != "cloudy", mask=mask)
    return StarLabel(label, paint)
