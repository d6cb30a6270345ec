"""An all-sky camera's geometry: where a sky direction lands in the frame, and back.

The model is the pipeline's ``orientation`` (docs/configuration.md): the zenith pixel, the horizon radius in
pixels, a radial projection (equidistant r ~ z, equisolid r ~ sin(z/2), stereographic r ~ tan(z/2), z the zenith
angle), the image angle of north counter-clockwise from up, and whether east lies left of north (a camera looking
up) or right (a mirrored frame). A small tilt of the camera is absorbed by the zenith pixel; what it leaves is in
the fit's residuals.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

PROJECTIONS = ("equidistant", "equisolid", "stereographic")


def radius_of(zenith_rad: np.ndarray, projection: str) -> np.ndarray:
    """Normalised radius (1 at the horizon) of zenith angles for the projection."""
    if projection == "equidistant":
        return zenith_rad / (math.pi / 2)
    if projection == "equisolid":
        return np.sin(zenith_rad / 2) / math.sin(math.pi / 4)
    if projection == "stereographic":
        return np.tan(zenith_rad / 2) / math.tan(math.pi / 4)
    raise ValueError(f"unknown projection {projection!r}; expected one of {', '.join(PROJECTIONS)}")


def zenith_of(r: np.ndarray, projection: str) -> np.ndarray:
    """Zenith angle (rad) of normalised radii for the projection."""
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

    @property
    def sign(self) -> float:
        return 1.0 if self.east == "left" else -1.0

    def project(self, alt_deg: np.ndarray, az_deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) of sky directions."""
        r = self.radius_px * radius_of(np.radians(90.0 - np.asarray(alt_deg, np.float64)), self.projection)
        angle = np.radians(self.north_deg + self.sign * np.asarray(az_deg, np.float64))
        return self.cx - r * np.sin(angle), self.cy - r * np.cos(angle)

    def sky(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(altitude, azimuth) in degrees of pixels."""
        dx, dy = np.asarray(x, np.float64) - self.cx, np.asarray(y, np.float64) - self.cy
        z = zenith_of(np.hypot(dx, dy) / self.radius_px, self.projection)
        angle = np.degrees(np.arctan2(-dx, -dy))
        return 90.0 - np.degrees(z), ((angle - self.north_deg) * self.sign) % 360.0

    def sky_mask(self, shape: tuple[int, int]) -> np.ndarray:
        """True on the pixels of frames of ``shape`` (h, w) within the horizon circle."""
        h, w = shape
        yy, xx = np.ogrid[:h, :w]
        return (xx - self.cx) ** 2 + (yy - self.cy) ** 2 <= self.radius_px**2

    def degrees_per_px(self, alt_deg):
        """The radial plate scale (degrees per pixel) at altitudes (a number or an array)."""
        z = np.radians(90.0 - np.asarray(alt_deg, np.float64))
        dz = 1e-4
        dr = self.radius_px * (radius_of(z + dz, self.projection) - radius_of(z, self.projection))
        return np.degrees(dz) / dr

    def orientation(self, shape: tuple[int, int]) -> dict:
        """The pipeline's ``orientation`` section for frames of ``shape`` (h, w)."""
        h, w = shape
        return {
            "projection": self.projection,
            "centre": [round(self.cx / (w - 1), 5), round(self.cy / (h - 1), 5)],
            "horizon_radius": round(self.radius_px / min(h, w), 5),
            "north_angle_deg": round(self.north_deg % 360.0, 3),
            "east": self.east,
        }

    @classmethod
    def from_orientation(cls, section, shape: tuple[int, int]) -> Lens:
        """The lens of a pipeline ``orientation`` (section object or dict) for frames of ``shape`` (h, w)."""
        get = section.get if isinstance(section, dict) else lambda k, d=None: getattr(section, k, d)
        h, w = shape
        centre = get("centre", [0.5, 0.5])
        return cls(
            centre[0] * (w - 1), centre[1] * (h - 1), get("horizon_radius", 0.47) * min(h, w),
            float(get("north_angle_deg", 0.0)), get("east", "left"), get("projection", "equidistant"),
        )

    def with_(self, **changes) -> Lens:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Plain fields (for reports)."""
        return asdict(self)
