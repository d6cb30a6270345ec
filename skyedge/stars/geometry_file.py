"""The camera geometry file: what ``skyedge geometry`` (or a pipeline's star watch) solved, saved beside the
pipeline configuration so the next start does not need the sky to be clear.

YAML, one document::

    orientation: {projection, centre, horizon_radius, north_angle_deg, east}   # the pipeline's orientation keys
    frame_shape: [height, width]
    limiting_mag: [disc, ring 1, ring 2, ring 3, ring 4]   # per cloudynight ring; null: no stars expected there
    fit: {frames, matched_stars, rms_px, rms_deg, solved_utc, how, site, limits_from, limits_seen_as}
    completeness: {frames, deepest_limits, memory_frames, magnitude_bins, seen, present}   # what the limits come from

``completeness`` is the star watch's pool of its clear frames (:mod:`skyedge.stars.depth`): with it, the limits
go on following the camera after a restart; without it (limits typed in, or from an older skyedge) they are kept
as they are.

``limits_seen_as`` names the rule a star was counted seen by when the limits were learnt
(:data:`skyedge.stars.visibility.SEEN_RULE`): limits learnt by another rule expect too many or too few stars.

A pipeline rewrites the file as it learns (:func:`skyedge.durable.replace_file`: on the disk before it replaces the
old one). A file that is empty, holds NUL bytes or is no YAML at all is what a power cut can leave of one being
replaced on a system that does not order the two: :class:`GeometryFileGarbled`, which a pipeline that solves its
own geometry sets aside and solves afresh; every other fault names its key and stops the start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from skyedge.durable import replace_file
from skyedge.errors import SkyedgeError
from skyedge.stars.depth import DepthPool
from skyedge.stars.lens import PROJECTIONS, Lens


class GeometryFileError(SkyedgeError, ValueError):
    """A geometry file that cannot be read, naming the file and the key."""


class GeometryFileGarbled(GeometryFileError):
    """A geometry file that is no document at all: empty, NUL bytes, not YAML (what a power cut leaves)."""


@dataclass(frozen=True)
class CameraGeometry:
    """A solved camera: its lens for frames of one shape, its limiting magnitudes, and how the fit went."""

    lens: Lens
    frame_shape: tuple[int, int]
    limiting_mag: tuple[float | None, ...] | None = None
    fit: dict = field(default_factory=dict)
    depth: DepthPool | None = field(default=None, compare=False)

    def lens_for(self, shape: tuple[int, int]) -> Lens:
        """The lens scaled to frames of ``shape`` (a binned or resized stream of the same camera)."""
        h0, w0 = self.frame_shape
        h, w = shape
        if (h, w) == (h0, w0):
            return self.lens
        sx, sy = (w - 1) / max(w0 - 1, 1), (h - 1) / max(h0 - 1, 1)
        return self.lens.with_(cx=self.lens.cx * sx, cy=self.lens.cy * sy, radius_px=self.lens.radius_px * min(h / h0, w / w0))

    def to_dict(self) -> dict:
        """The file's document."""
        return {
            "orientation": self.lens.orientation(self.frame_shape),
            "frame_shape": list(self.frame_shape),
            "limiting_mag": None if self.limiting_mag is None else [None if v is None else round(v, 2) for v in self.limiting_mag],
            "fit": self.fit,
            **({"completeness": self.depth.to_dict()} if self.depth is not None else {}),
        }


def save_geometry(geometry: CameraGeometry, path: Path | str) -> None:
    """Write the file whole and durably (a crash or a power cut leaves the old one or the new one)."""
    text = "# Camera geometry solved from the stars by skyedge (docs/stars.md)\n" + yaml.safe_dump(geometry.to_dict(), sort_keys=False)
    replace_file(path, text.encode())


def load_geometry(path: Path | str) -> CameraGeometry:
    """Read a geometry file; errors name the file and the key."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GeometryFileError(f"{path}: cannot read the geometry file ({exc})") from None
    if not raw.strip() or b"\0" in raw:
        raise GeometryFileGarbled(f"{path}: the geometry file is {'empty' if not raw.strip() else 'NUL bytes, not text'}")
    try:
        doc = yaml.safe_load(raw.decode())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise GeometryFileGarbled(f"{path}: the geometry file is not YAML ({exc})") from None
    if not isinstance(doc, dict):
        raise GeometryFileError(f"{path}: not a geometry file (expected a mapping)")

    def need(key: str):
        if key not in doc:
            raise GeometryFileError(f"{path}: missing key '{key}'")
        return doc[key]

    o, shape = need("orientation"), need("frame_shape")
    try:
        h, w = (int(v) for v in shape)
        if o.get("projection", "equidistant") not in PROJECTIONS:
            raise ValueError(f"orientation.projection must be one of {', '.join(PROJECTIONS)}")
        if o.get("east", "left") not in ("left", "right"):
            raise ValueError("orientation.east must be left or right")
        lens = Lens.from_orientation(o, (h, w))
        lim = doc.get("limiting_mag")
        limits = None if lim is None else tuple(None if v is None else float(v) for v in lim)
        depth = DepthPool.from_dict(doc["completeness"]) if doc.get("completeness") is not None else None
    except (TypeError, ValueError, AttributeError) as exc:
        raise GeometryFileError(f"{path}: {exc}") from None
    return CameraGeometry(lens, (h, w), limits, doc.get("fit") or {}, depth)
