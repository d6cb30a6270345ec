"""An all-sky camera's geometry: where a sky direction lands in the frame, and back.

The model is the pipeline's ``orientation`` (docs/configuration.md): the zenith pixel, the horizon radius in
pixels, a radial projection (equidistant r ~ z, equisolid r ~ sin(z/2), stereographic r ~ tan(z/2), z the zenith
angle), the image angle of north counter-clockwise from up, and whether east lies left of north (a camera looking
up) or right (a mirrored frame). A real lens follows its projection only roughly: an optional radial
``distortion`` (d1, d2) bends it, g(z) = f(z) (1 + d1 (f^2 - 1) + d2 (f^4 - 1)) with f the projection's normalised
radius, which keeps the horizon where the horizon radius says and changes how the radius grows on the way there.
A camera is rarely level: ``tilt`` (degrees the optical axis leans toward east, and toward north) turns the sky
before it is projected, and the centre pixel is then the optical axis's, not the zenith's (a zenith pixel alone
leaves a 1-degree tilt 2 px of residual on a 2k frame; the real development camera leans 2-4.5 deg).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache

import numpy as np

PROJECTIONS = ("equidistant", "equisolid", "stereographic")


NO_DISTORTION = (0.0, 0.0)
NO_TILT = (0.0, 0.0)
# A tilt and a wrong clock turn the sky alike (an hour off is the sky turned 15 deg about the pole, a tilt of
# 15 cos(latitude) deg): a camera leans a few degrees, so a lean up to this is the camera's and more is the clock's.
MAX_TILT_DEG = 6.0
DISTORTION_CHECKED_TO_DEG = 100.0  # a distortion must keep the radius growing this far past the zenith


def _projected(zenith_rad: np.ndarray, projection: str) -> np.ndarray:
    if projection == "equidistant":
        return zenith_rad / (math.pi / 2)
    if projection == "equisolid":
        return np.sin(zenith_rad / 2) / math.sin(math.pi / 4)
    if projection == "stereographic":
        return np.tan(zenith_rad / 2) / math.tan(math.pi / 4)
    raise ValueError(f"unknown projection {projection!r}; expected one of {', '.join(PROJECTIONS)}")


def radius_of(zenith_rad: np.ndarray, projection: str, distortion: tuple[float, float] = NO_DISTORTION) -> np.ndarray:
    """Normalised radius (1 at the horizon) of zenith angles for the projection, bent by ``distortion``."""
    f = _projected(zenith_rad, projection)
    d1, d2 = distortion
    if d1 == 0.0 and d2 == 0.0:
        return f
    f2 = f * f
    return f * (1.0 + d1 * (f2 - 1.0) + d2 * (f2 * f2 - 1.0))


@lru_cache(maxsize=32)
def _inverse_table(projection: str, distortion: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(radius, zenith) samples of a distorted projection, for inverting it by interpolation."""
    z = np.linspace(0.0, 0.95 * math.pi, 8192)
    return radius_of(z, projection, distortion), z


def check_distortion(projection: str, distortion) -> tuple[float, float]:
    """``distortion`` as a tuple, or ValueError when it would fold the sky (the radius not growing with the
    zenith angle up to ``DISTORTION_CHECKED_TO_DEG``)."""
    d = (float(distortion[0]), float(distortion[1]))
    if d != NO_DISTORTION:
        z = np.radians(np.linspace(0.0, DISTORTION_CHECKED_TO_DEG, 501))
        if not np.all(np.diff(radius_of(z, projection, d)) > 0):
            raise ValueError(
                f"distortion {list(d)} folds the {projection} projection (its radius must grow with the zenith angle "
                f"to {DISTORTION_CHECKED_TO_DEG:.0f} deg)"
            )
    return d


def check_tilt(tilt) -> tuple[float, float]:
    """``tilt`` (east, north, degrees) as a tuple, or ValueError when it leans more than ``MAX_TILT_DEG``."""
    t = (float(tilt[0]), float(tilt[1]))
    if math.hypot(*t) > MAX_TILT_DEG:
        raise ValueError(f"tilt_deg {list(t)} leans {math.hypot(*t):.1f} deg; an all-sky camera within {MAX_TILT_DEG:.0f} deg of level is modelled (more reads as a clock that is off)")
    return t


def zenith_of(r: np.ndarray, projection: str, distortion: tuple[float, float] = NO_DISTORTION) -> np.ndarray:
    """Zenith angle (rad) of normalised radii for the projection, bent by ``distortion``."""
    if tuple(distortion) != NO_DISTORTION:
        radii, zeniths = _inverse_table(projection, (float(distortion[0]), float(distortion[1])))
        return np.interp(r, radii, zeniths)
    if projection == "equidistant":
        return r * (math.pi / 2)
    if projection == "equisolid":
        return 2 * np.arcsin(np.clip(r * math.sin(math.pi / 4), -1, 1))
    if projection == "stereographic":
        return 2 * np.arctan(r * math.tan(math.pi / 4))
    raise ValueError(f"unknown projection {projection!r}; expected one of {', '.join(PROJECTIONS)}")


@dataclass(frozen=True)
class Lens:
    """One camera's geometry in pixels of frames of one size."""

    cx: float
    cy: float
    radius_px: float  # the horizon's distance from the zenith pixel
    north_deg: float  # image angle of north, counter-clockwise from up
    east: str = "left"
    projection: str = "equidistant"
    distortion: tuple[float, float] = NO_DISTORTION  # (d1, d2): the module docstring
    tilt: tuple[float, float] = NO_TILT  # degrees the optical axis leans toward east, toward north

    def __post_init__(self):  # read back from JSON or YAML as lists: kept as tuples, so that a level lens is one
        object.__setattr__(self, "distortion", (float(self.distortion[0]), float(self.distortion[1])))
        object.__setattr__(self, "tilt", (float(self.tilt[0]), float(self.tilt[1])))

    @property
    def sign(self) -> float:
        return 1.0 if self.east == "left" else -1.0

    def _axes(self) -> np.ndarray:
        """Rows: the camera's east, north and optical axis in (east, north, up) coordinates."""
        east_deg, north_deg = self.tilt
        lean, toward = math.radians(math.hypot(east_deg, north_deg)), math.atan2(east_deg, north_deg)
        axis = np.array([math.sin(lean) * math.sin(toward), math.sin(lean) * math.cos(toward), math.cos(lean)])
        north = np.array([0.0, 1.0, 0.0]) - axis * axis[1]
        north /= np.linalg.norm(north)
        return np.stack([np.cross(north, axis), north, axis])

    def project(self, alt_deg: np.ndarray, az_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) of sky directions."""
        alt, az = np.asarray(alt_deg, np.float64), np.asarray(az_deg, np.float64)
        if self.tilt != NO_TILT:  # the sky as the tilted camera sees it
            a, A = np.radians(alt), np.radians(az)
            e, n, u = np.tensordot(self._axes(), np.stack([np.cos(a) * np.sin(A), np.cos(a) * np.cos(A), np.sin(a)]), axes=1)
            alt, az = np.degrees(np.arcsin(np.clip(u, -1, 1))), np.degrees(np.arctan2(e, n))
        r = self.radius_px * radius_of(np.radians(90.0 - alt), self.projection, self.distortion)
        angle = np.radians(self.north_deg + self.sign * az)
        return self.cx - r * np.sin(angle), self.cy - r * np.cos(angle)

    def sky(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(altitude, azimuth) in degrees of pixels."""
        dx, dy = np.asarray(x, np.float64) - self.cx, np.asarray(y, np.float64) - self.cy
        z = zenith_of(np.hypot(dx, dy) / self.radius_px, self.projection, self.distortion)
        angle = np.degrees(np.arctan2(-dx, -dy))
        az = ((angle - self.north_deg) * self.sign) % 360.0
        if self.tilt == NO_TILT:
            return 90.0 - np.degrees(z), az
        A = np.radians(az)
        camera = np.stack([np.sin(z) * np.sin(A), np.sin(z) * np.cos(A), np.cos(z)])
        e, n, u = np.tensordot(self._axes().T, camera, axes=1)  # back to the sky's own axes
        return np.degrees(np.arcsin(np.clip(u, -1, 1))), np.degrees(np.arctan2(e, n)) % 360.0

    def sky_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """True on the pixels of frames of ``shape`` (h, w) within the horizon circle."""
        h, w = shape
        yy, xx = np.ogrid[:h, :w]
        return (xx - self.cx) ** 2 + (yy - self.cy) ** 2 <= self.radius_px**2

    def degrees_per_px(self, alt_deg):
        """The radial plate scale (degrees per pixel) at altitudes (a number or an array)."""
        z = np.radians(90.0 - np.asarray(alt_deg, np.float64))
        dz = 1e-4
        dr = self.radius_px * (radius_of(z + dz, self.projection, self.distortion) - radius_of(z, self.projection, self.distortion))
        return np.degrees(dz) / dr

    def orientation(self, shape: tuple[int, int]) -> dict:
        """The pipeline's ``orientation`` section for frames of ``shape`` (h, w)."""
        h, w = shape
        out = {
            "projection": self.projection,
            "centre": [round(self.cx / (w - 1), 5), round(self.cy / (h - 1), 5)],
            "horizon_radius": round(self.radius_px / min(h, w), 5),
            "north_angle_deg": round(self.north_deg % 360.0, 3),
            "east": self.east,
        }
        if self.distortion != NO_DISTORTION:  # a level lens as its projection says keeps the section it always had
            out["distortion"] = [round(v, 5) for v in self.distortion]
        if self.tilt != NO_TILT:
            out["tilt_deg"] = [round(v, 4) for v in self.tilt]
        return out

    @classmethod
    def from_orientation(cls, section, shape: tuple[int, int]) -> Lens:
        """The lens of a pipeline ``orientation`` (section object or dict) for frames of ``shape`` (h, w)."""
        get = section.get if isinstance(section, dict) else lambda k, d=None: getattr(section, k, d)
        h, w = shape
        centre = get("centre", [0.5, 0.5])
        projection = get("projection", "equidistant")
        return cls(
            centre[0] * (w - 1), centre[1] * (h - 1), get("horizon_radius", 0.47) * min(h, w),
            float(get("north_angle_deg", 0.0)), get("east", "left"), projection,
            check_distortion(projection, get("distortion", None) or NO_DISTORTION),
            check_tilt(get("tilt_deg", None) or NO_TILT),
        )

    def with_(self, **changes) -> Lens:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Plain fields (for reports)."""
        return asdict(self)
