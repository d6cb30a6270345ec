"""How much of the sky is clear, and where: the model's cloud map reduced to sectors and a cloud cover.

The frame model's ``cloud_map`` output is a coarse grid (stride 16 of the model
input) of cloud probabilities. This module maps every point of it back to the
frame, and from the frame to the sky (zenith angle, azimuth) through the
camera's geometry, then averages over the visible sky:

* ``cloud_cover``: the percentage of the visible sky that is cloudy (0-100),
  horizon, obstructions and masked pixels left out;
* sectors on the cloudynight layout (Mommert 2020, AJ 159:178), 33 in all:
  sector 0 is the zenith disc (zenith angle below 18 deg); then four rings
  from the zenith outwards, 18-36, 36-54, 54-72 and 72-90 deg, each of eight
  45-deg azimuth segments from north through east (segment k covers azimuth
  45k to 45(k+1) deg). Ring r (1-4), segment k (0-7) is sector 1 + 8(r-1) + k.
  A sector the camera does not see (obstructed, cropped) is None.

The geometry is the pipeline's ``orientation`` when configured (zenith pixel,
horizon radius, north, projection, east) and otherwise the frame's centre, the
model card's horizon circle, north up and an equidistant lens: the message says
which (``geometry``: ``configured``, ``stars`` for a geometry solved from the sky, or ``default``). Cached per frame shape;
inference thread only.

Where the pipeline watches the stars (:mod:`skyedge.stars`), :func:`with_stars` refines the sectors with star
visibility, the second source (``source``: ``both``): in each sector where stars are expected, the model's cloud
fraction and the stars' (1 - visible fraction) are averaged, the stars weighted by how many are expected there
against ``MODEL_WEIGHT_STARS`` for the model; the cover follows the refined sectors. Directions (``around``) are
still answered from the model's map points.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from skyedge.sky_sectors import LAYOUT, RING_EDGES_DEG, SECTORS, SEGMENTS, sector_of
from skyedge.stars.lens import Lens

UPSAMPLE = 4  # map points per cell along each axis: sectors smaller than a cell still get their share
CLOUDY_AT = 0.5  # a sector (or map point) at least this cloudy counts as cloudy
# The model's sector fraction counts as much as this many expected stars: a zenith sector with 5-15 bright stars
# is decided mostly by them, a ring segment with one or two half by the model. On the real development camera
# (docs/results.md), a model that never saw it agreed with the polygons on 0.71 of the sectors with stars, the
# stars alone on 0.83, the two at weight 2 on 0.84; a model trained on that camera lost 2 points (0.89 -> 0.87).
MODEL_WEIGHT_STARS = 2.0


@dataclass(frozen=True)
class CloudReport:
    """One frame's cloud map, reduced."""

    cloud_cover: float  # percent of the visible sky
    sectors: tuple[float | None, ...]  # cloud fraction per sector, None where no sky is seen
    geometry: str  # 'configured' or 'default'
    source: str = "model"
    sector_weights: tuple[float, ...] | None = field(default=None, repr=False, compare=False)  # sky seen per sector
    # Every map point's (zenith deg, azimuth deg, cloud probability, sky weight), for questions about a direction.
    points: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = field(default=None, repr=False, compare=False)

    def message(self) -> dict:
        """The classification message's ``cloud_map`` object."""
        return {
            "layout": LAYOUT,
            "sectors": [None if v is None else round(v, 3) for v in self.sectors],
            "source": self.source,
            "geometry": self.geometry,
        }

    def around(self, alt_deg: float, az_deg: float, radius_deg: float) -> tuple[float | None, float]:
        """(cloud fraction of the sky seen within ``radius_deg`` of a direction, or None when the camera sees none of
        it; the share of that circle the camera sees)."""
        if self.points is None:
            return None, 0.0
        zen, az, cloud, weight = self.points
        a1, a2 = np.radians(90.0 - zen), math.radians(alt_deg)
        cos_d = np.sin(a1) * math.sin(a2) + np.cos(a1) * math.cos(a2) * np.cos(np.radians(az - az_deg))
        near = np.degrees(np.arccos(np.clip(cos_d, -1, 1))) <= radius_deg
        seen = float(weight[near].sum())
        if seen < 1.0:
            return None, 0.0
        # The share of the circle seen: its map points with sky against all its map points above the horizon.
        return float((cloud[near] * weight[near]).sum() / seen), float((weight[near] > 0).mean())

    def clear_within(self, zenith_max_deg: float) -> float | None:
        """Cloud fraction of the sectors whose rings lie within ``zenith_max_deg`` of the zenith (None: unseen)."""
        rings = sum(1 for edge in RING_EDGES_DEG if edge <= zenith_max_deg + 1e-9)
        wanted = [v for i, v in enumerate(self.sectors[: 1 + SEGMENTS * max(rings - 1, 0)]) if v is not None]
        return float(np.mean(wanted)) if wanted else None


def mapped_lens(preprocess, orientation, frame_shape: tuple[int, int]) -> Lens:
    """The lens the map's sectors are drawn with: the configured (or solved) ``orientation``; without one, an
    equidistant lens looking straight up at the frame's centre, north at the top and east to the left, as a camera
    looking up sees it, its horizon where ``preprocess`` puts it."""
    h, w = frame_shape
    if orientation is not None:
        return Lens.from_orientation(orientation, frame_shape)
    return Lens((w - 1) / 2, (h - 1) / 2, preprocess.horizon_radius * min(h, w), 0.0)


class CloudMapper:
    """Turns a model cloud map into a :class:`CloudReport` for frames of one pipeline."""

    def __init__(self, preprocess, orientation=None, geometry: str | None = None):
        self.pre, self.orientation = preprocess, orientation
        self.geometry = geometry or ("configured" if orientation is not None else "default")
        self._cache: dict[tuple, tuple[np.ndarray, ...]] = {}

    def _points(self, frame_shape: tuple[int, int], map_shape: tuple[int, int], valid: np.ndarray | None):
        """(sector per map point, sky weight per map point) on the upsampled map grid."""
        key = (frame_shape, map_shape, None if valid is None else hash(valid.tobytes()))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        H, W = self.pre.size  # model input
        mh, mw = map_shape[0] * UPSAMPLE, map_shape[1] * UPSAMPLE
        # Map point centres in model-input pixels, then in the letterboxed frame, then in the frame.
        u = (np.arange(mw) + 0.5) * W / mw - 0.5
        v = (np.arange(mh) + 0.5) * H / mh - 0.5
        h, w = frame_shape
        if self.pre.fit == "pad":
            aspect = W / H
            th, tw = max(h, int(round(w / aspect))), max(w, int(round(h * aspect)))
            top, left = (th - h) // 2, (tw - w) // 2
        else:
            th, tw, top, left = h, w, 0, 0
        fx = (u + 0.5) * tw / W - 0.5 - left
        fy = (v + 0.5) * th / H - 0.5 - top
        xx, yy = np.meshgrid(fx, fy)
        lens = mapped_lens(self.pre, self.orientation, frame_shape)
        r = np.hypot(xx - lens.cx, yy - lens.cy) / max(lens.radius_px, 1e-9)
        alt, azimuth = lens.sky(xx, yy)
        zenith = 90.0 - alt
        sector = np.where(r <= 1.0, sector_of(zenith, azimuth), -1)
        inside = sector >= 0
        weight = np.ones((mh, mw), np.float32)
        if valid is not None:  # the model input's sky pixels (masks, letterbox, horizon circle)
            import cv2

            weight = cv2.resize(valid.astype(np.float32), (mw, mh), interpolation=cv2.INTER_AREA)
        weight = np.where(sector >= 0, weight, 0.0).astype(np.float32)
        if len(self._cache) > 16:
            self._cache.clear()
        hit = (sector, weight, zenith[inside], azimuth[inside], inside)
        self._cache[key] = hit
        return hit

    def report(self, cloud_map: np.ndarray, frame_shape: tuple[int, int], valid: np.ndarray | None = None) -> CloudReport:
        """``cloud_map`` (1, h, w) or (h, w) probabilities for a frame of ``frame_shape``; ``valid``: the model
        input's sky pixels (H, W) where known."""
        import cv2

        grid = np.asarray(cloud_map, np.float32).reshape(cloud_map.shape[-2:])
        sector, weight, zenith, azimuth, inside = self._points(frame_shape, grid.shape, valid)
        fine = cv2.resize(grid, (weight.shape[1], weight.shape[0]), interpolation=cv2.INTER_LINEAR)
        total = float(weight.sum())
        cover = 100.0 * float((fine * weight).sum()) / total if total > 0 else 0.0
        sums = np.bincount(sector[sector >= 0], (fine * weight)[sector >= 0], minlength=SECTORS)
        weights = np.bincount(sector[sector >= 0], weight[sector >= 0], minlength=SECTORS)
        # A sector is seen when at least one map point's worth of it is sky.
        sectors = tuple(float(s / w) if w >= 1.0 else None for s, w in zip(sums, weights, strict=True))
        points = (zenith, azimuth, fine[inside], weight[inside])
        return CloudReport(
            round(cover, 2), sectors, self.geometry, sector_weights=tuple(float(w) for w in weights), points=points
        )


def sector_cover(sectors, weights) -> float | None:
    """Cloud cover in percent from sector fractions (None: unknown) weighted by the sky each sector shows; None
    when no sector with sky is known."""
    w = np.asarray(weights, dtype=np.float64)
    known = np.array([v is not None for v in sectors])
    if not known.any() or w[known].sum() <= 0:
        return None
    values = np.array([0.0 if v is None else v for v in sectors])
    return 100.0 * float((values * w)[known].sum() / w[known].sum())


def with_stars(report: CloudReport, visibility, model_weight: float = MODEL_WEIGHT_STARS) -> CloudReport:
    """``report`` refined by star visibility (a :class:`skyedge.stars.visibility.Visibility` on the same sectors),
    the model's fraction counting as ``model_weight`` expected stars: unchanged where no sector has stars to go by."""
    if visibility is None or report.sector_weights is None:
        return report
    sectors, used = list(report.sectors), False
    for k, (model, seen, n) in enumerate(zip(report.sectors, visibility.sectors, visibility.sector_expected, strict=True)):
        if model is None or seen is None:
            continue
        sectors[k] = (model_weight * model + n * (1.0 - seen)) / (model_weight + n)
        used = True
    if not used:
        return report
    cover = sector_cover(sectors, report.sector_weights)
    cover = report.cloud_cover if cover is None else cover
    return dataclasses.replace(report, cloud_cover=round(cover, 2), sectors=tuple(sectors), source="both")
