"""An all-sky camera: where each pixel looks, what blocks its view, and how light becomes the file on disk.

Lens: an equidistant (r ~ theta), equisolid (r ~ sin(theta/2)) or stereographic (r ~ tan(theta/2)) fisheye
with a field of view (the image circle's full angle; above 180 deg the ground shows below the horizon), the
circle's size relative to the sensor (above 1 it is cropped by the frame), an off-centre position and a
rotation. Horizon obstructions (a tree line, buildings, a mast, a dome slit's walls) are drawn once per camera
(a camera always sees the same trees). Optics: vignetting, dew (blur and lost contrast), a lens-flare ghost of
a bright moon mirrored through the centre. Sensor and software: mono, RGB or a Bayer mosaic with a white
balance, 8 or 16 bits, then either the linear readout (FITS, PNG, TIFF; optionally float with NaN outside the
circle, as some FITS cameras write) or the camera program's auto-stretch with gamma (JPEG/PNG), JPEG
compression, and a text overlay burned into a corner. Exposure: fixed (a bright sky saturates) or automatic
(scaled to keep the sky at a set level, so daylight does not saturate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

BAYER_OFFSETS = {
    "RGGB": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "BGGR": ((1, 1), (0, 1), (1, 0), (0, 0)),
    "GRBG": ((0, 1), (0, 0), (1, 1), (1, 0)),
    "GBRG": ((1, 0), (0, 0), (1, 1), (0, 1)),
}


@dataclass(frozen=True)
class CameraModel:
    """One camera's fixed properties (a profile); ranges are drawn per frame where a tuple is given."""

    width: int = 128
    height: int = 128
    projection: str = "equidistant"  # equidistant | equisolid | stereographic
    fov_deg: float = 180.0  # full angle of the image circle
    circle: float = 0.94  # image-circle diameter / frame height (> 1: cropped top and bottom)
    centre_offset: tuple[float, float] = (0.0, 0.0)  # circle centre offset, fraction of (width, height)
    rotation_deg: float = 0.0  # image angle of north, counter-clockwise from up
    vignetting: tuple[float, float] = (0.1, 0.45)  # fractional loss at the horizon
    sensor: str = "mono"  # mono | rgb | RGGB | BGGR | GRBG | GBRG
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    bit_depth: int = 16
    encoding: str = "linear"  # linear | auto_stretch (the camera program stretches and applies gamma)
    # fixed: one exposure night and day (a bright sky saturates); auto: the camera program scales the exposure to
    # keep the sky at a set level (what auto-stretching cameras and many FITS capture programs do).
    exposure: str = "fixed"
    gamma: float = 2.2
    jpeg_quality: int | None = None  # compress (and decode) as the camera's JPEG would
    float_nan_outside: bool = False  # float32 with NaN outside the image circle (some FITS cameras)
    night_exposure_s: float = 30.0  # the nominal exposure, as written to the file; auto exposure scales it
    gain: tuple[float, float] = (0.5, 3.0)  # electrons per ADU
    read_noise: tuple[float, float] = (2.0, 8.0)
    full_well: float = 60000.0
    # Photosites per rendered pixel along each axis: frames are rendered at model-like sizes, but a real camera's
    # 1-4 k pixels average into each of them, so the noise is ``binning`` times lower than one photosite's.
    binning: int = 8
    bias: float = 100.0
    obstructions: tuple[str, ...] = ()  # trees | buildings | mast | slit
    overlay: str | None = None  # text overlay corner: top-left | bottom-left | top-right | bottom-right
    dew_probability: float = 0.0
    flare: bool = False
    # The camera program "enhances" its stretched frames, as indi-allsky, AllSkyAI and many observatory pipelines
    # do: local contrast (CLAHE), saturation and a colour tint, drawn per frame.
    enhance: bool = False
    seed: int = 0  # fixes the obstruction shapes

    @property
    def channels(self) -> int:
        """Channels of the stored frame (a Bayer mosaic is one channel)."""
        return 3 if self.sensor == "rgb" else 1

    @property
    def colour(self) -> bool:
        """Whether the sensor sees colour (RGB or Bayer)."""
        return self.sensor != "mono"


def _radius_of(theta: np.ndarray, projection: str, half_fov: float) -> np.ndarray:
    """Normalised image radius (1 at half the field of view) for zenith angles ``theta``."""
    if projection == "equidistant":
        return theta / half_fov
    if projection == "equisolid":
        return np.sin(theta / 2) / math.sin(half_fov / 2)
    if projection == "stereographic":
        return np.tan(theta / 2) / math.tan(half_fov / 2)
    raise ValueError(f"unknown projection {projection!r}")


def _theta_of(r: np.ndarray, projection: str, half_fov: float) -> np.ndarray:
    if projection == "equidistant":
        return r * half_fov
    if projection == "equisolid":
        return 2 * np.arcsin(np.clip(r * math.sin(half_fov / 2), -1, 1))
    return 2 * np.arctan(r * math.tan(half_fov / 2))


@dataclass
class Geometry:
    """Per-pixel view of one camera: zenith angle, azimuth, inside the lens circle, above the horizon."""

    zenith: np.ndarray
    azimuth: np.ndarray
    in_circle: np.ndarray
    sky: np.ndarray  # in the circle, above the horizon, not behind an obstruction
    obstruction: np.ndarray  # in the circle and blocked (trees, buildings, ...)
    centre: tuple[float, float]
    radius_px: float
    camera: CameraModel
    _cache: dict = field(default_factory=dict)

    def project(self, zenith: np.ndarray, azimuth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel (x, y) of sky directions."""
        cam = self.camera
        r = _radius_of(zenith, cam.projection, math.radians(cam.fov_deg / 2)) * self.radius_px
        angle = azimuth + math.radians(cam.rotation_deg)
        return self.centre[0] - r * np.sin(angle), self.centre[1] - r * np.cos(angle)


def geometry(cam: CameraModel) -> Geometry:
    """Where each pixel of ``cam`` looks (cached per camera: the obstructions are drawn once)."""
    key = cam
    if key in _GEOMETRY:
        return _GEOMETRY[key]
    h, w = cam.height, cam.width
    cx = (w - 1) / 2 + cam.centre_offset[0] * w
    cy = (h - 1) / 2 + cam.centre_offset[1] * h
    radius = cam.circle * h / 2
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dx, dy = xx - cx, yy - cy
    r = np.hypot(dx, dy) / radius
    in_circle = r <= 1.0
    zenith = _theta_of(np.minimum(r, 1.0), cam.projection, math.radians(cam.fov_deg / 2))
    # East to the left of north for a camera looking up; north at rotation_deg from up.
    azimuth = (np.arctan2(-dx, -dy) - math.radians(cam.rotation_deg)) % (2 * math.pi)
    above = zenith < math.pi / 2
    blocked = _obstructions(cam, zenith, azimuth, in_circle)
    sky = in_circle & above & ~blocked
    geo = Geometry(zenith, azimuth, in_circle, sky, in_circle & (blocked | ~above), (cx, cy), radius, cam)
    if len(_GEOMETRY) > 64:
        _GEOMETRY.clear()
    _GEOMETRY[key] = geo
    return geo


_GEOMETRY: dict = {}


def _obstructions(cam: CameraModel, zenith: np.ndarray, azimuth: np.ndarray, in_circle: np.ndarray) -> np.ndarray:
    """Sky directions hidden by the camera's surroundings (its own seed: the same trees in every frame)."""
    rng = np.random.default_rng(cam.seed)
    alt = np.degrees(math.pi / 2 - zenith)
    az = azimuth
    blocked = np.zeros(zenith.shape, dtype=bool)
    for kind in cam.obstructions:
        if kind == "trees":
            # A tree line: a ragged skyline up to 8-25 deg along part of the horizon.
            start, span = rng.uniform(0, 2 * math.pi), rng.uniform(1.5, 4.5)
            k = np.arange(1, 12)
            phases, amps = rng.uniform(0, 2 * math.pi, k.size), rng.uniform(0.5, 3.0, k.size) / k**0.6
            crowns = sum(a * np.sin(kk * 9 * az + p) for kk, a, p in zip(k, amps, phases, strict=True))
            height = rng.uniform(8, 25) + crowns
            inside = (az - start) % (2 * math.pi) < span
            blocked |= inside & (alt < height)
        elif kind == "buildings":
            for _ in range(rng.integers(1, 4)):
                a0, width, top = rng.uniform(0, 2 * math.pi), rng.uniform(0.15, 0.6), rng.uniform(6, 20)
                blocked |= ((az - a0) % (2 * math.pi) < width) & (alt < top)
        elif kind == "mast":
            a0 = rng.uniform(0, 2 * math.pi)
            blocked |= (np.abs(np.angle(np.exp(1j * (az - a0)))) < 0.03) & (alt < rng.uniform(35, 60))
        elif kind == "slit":
            # Inside a dome: only a slit of sky through the zenith is open.
            a0, half = rng.uniform(0, math.pi), math.radians(rng.uniform(12, 25))
            across = np.sin(zenith) * np.sin(az - a0)
            blocked |= np.abs(across) > math.sin(half)
        else:
            raise ValueError(f"unknown obstruction {kind!r}")
    return blocked & in_circle


def vignetting_map(geo: Geometry, loss: float) -> np.ndarray:
    """Relative throughput: 1 at the centre, ``1 - loss`` at the circle's edge."""
    r = _radius_of(geo.zenith, geo.camera.projection, math.radians(geo.camera.fov_deg / 2))
    return 1.0 - loss * np.clip(r, 0, 1) ** 2


def dew(expected: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Dew or frost on the dome: light spread over a wide blur, contrast lost."""
    sigma = strength * max(expected.shape[:2]) * 0.05
    blurred = cv2.GaussianBlur(expected.astype(np.float32), (0, 0), sigma)
    return (1 - strength) * expected + strength * blurred


def dust(geo: Geometry, rng: np.random.Generator, light: np.ndarray) -> tuple[np.ndarray, float]:
    """Dust and water spots on the dome, lit by ``light`` (what reaches them, e.g. the moon's): the light (H, W)
    they add, and its level. Each speck, far out of focus, is a soft disc; together they mottle the whole sky with
    overlapping blobs, as a real camera's dusty dome does on moonlit nights (blobs a model may take for cloud)."""
    level = float(rng.uniform(0.5, 2.0))
    h, w = geo.zenith.shape
    radius = max(geo.radius_px, 1.0)
    cx, cy = geo.centre
    n = int(rng.integers(150, 800))
    r = radius * np.sqrt(rng.uniform(0, 1, n))  # uniform over the dome
    a = rng.uniform(0, 2 * math.pi, n)
    xs, ys = cx + r * np.cos(a), cy + r * np.sin(a)
    sizes = radius * rng.uniform(0.01, 0.04, n)
    amps = rng.uniform(0.05, 0.3, n)
    specks = np.zeros((h, w), np.float32)
    for x, y, size, amp in zip(xs, ys, sizes, amps, strict=True):
        x0, x1 = max(int(x - 2 * size), 0), min(int(x + 2 * size) + 1, w)
        y0, y1 = max(int(y - 2 * size), 0), min(int(y + 2 * size) + 1, h)
        if x0 >= x1 or y0 >= y1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1]
        d = np.hypot(xx - x, yy - y) / size
        specks[y0:y1, x0:x1] += amp / (1.0 + np.exp((d - 1.0) * 6.0))  # a disc with a soft edge (bokeh)
    # Each speck scatters the light that reaches its patch of the dome, not the light of its own pixel.
    reaching = cv2.GaussianBlur(np.asarray(light, np.float32), (0, 0), 0.05 * radius)
    return level * reaching * specks * geo.in_circle, level


def flare(expected: np.ndarray, geo: Geometry, moon_xy: tuple[float, float], brightness: float) -> np.ndarray:
    """A lens-flare ghost of the moon, mirrored through the image centre, and a faint streak."""
    cx, cy = geo.centre
    gx, gy = 2 * cx - moon_xy[0], 2 * cy - moon_xy[1]
    h, w = expected.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    ghost = np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * (0.04 * h) ** 2))
    out = expected + (brightness * ghost)[..., None] if expected.ndim == 3 else expected + brightness * ghost
    return out


def to_sensor(rgb: np.ndarray, cam: CameraModel) -> np.ndarray:
    """Expected electrons per colour (H, W, 3) -> what the sensor records: mono (H, W), RGB or a Bayer mosaic."""
    wb = np.asarray(cam.white_balance, dtype=np.float64)
    if cam.sensor == "mono":
        return rgb.mean(axis=2)
    balanced = rgb * wb[None, None, :]
    if cam.sensor == "rgb":
        return balanced
    (ry, rx), (g1y, g1x), (g2y, g2x), (by, bx) = BAYER_OFFSETS[cam.sensor]
    mosaic = np.zeros(rgb.shape[:2])
    mosaic[ry::2, rx::2] = balanced[ry::2, rx::2, 0]
    mosaic[g1y::2, g1x::2] = balanced[g1y::2, g1x::2, 1]
    mosaic[g2y::2, g2x::2] = balanced[g2y::2, g2x::2, 1]
    mosaic[by::2, bx::2] = balanced[by::2, bx::2, 2]
    return mosaic


def encode(adu: np.ndarray, cam: CameraModel, geo: Geometry, rng: np.random.Generator, overlay_text: str) -> np.ndarray:
    """Digitised readout (uint) -> what the camera program writes: linear, or stretched, compressed, annotated."""
    if cam.encoding == "auto_stretch":
        x = adu.astype(np.float32)
        inside = geo.in_circle if x.ndim == 2 else np.repeat(geo.in_circle[..., None], 3, axis=2)
        lo, hi = np.percentile(x[inside], [rng.uniform(0.5, 5), rng.uniform(99.5, 99.99)])
        x = np.clip((x - lo) / max(hi - lo, 1e-6), 0, 1) ** (1 / cam.gamma)
        image = (x * 255).astype(np.uint8)
        if cam.enhance:
            image = enhance(image, geo.in_circle, rng)
    elif cam.bit_depth == 8 and adu.dtype != np.uint8:
        image = (adu >> 8).astype(np.uint8)
    else:
        image = adu
    if cam.jpeg_quality:
        if image.dtype != np.uint8:
            image = (image >> 8).astype(np.uint8)
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 else image
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(cam.jpeg_quality)])
        decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        image = cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB) if decoded.ndim == 3 else decoded
    if cam.overlay:
        image = _burn_text(image, cam.overlay, overlay_text)
    if cam.float_nan_outside:
        image = image.astype(np.float32)
        outside = ~geo.in_circle
        image[outside if image.ndim == 2 else np.repeat(outside[..., None], 3, axis=2)] = np.nan
    return image


def enhance(image: np.ndarray, circle: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a camera program does to make a stretched frame look good: CLAHE on the lightness, a saturation boost
    and a colour tint (8-bit, mono or RGB)."""
    clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(1.2, 2.5)), tileGridSize=(4, 4))
    if image.ndim == 2:
        return np.where(circle, clahe.apply(image), image).astype(np.uint8)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[..., 0] = clahe.apply(lab[..., 0])
    out = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB).astype(np.float32)
    grey = out.mean(axis=2, keepdims=True)
    out = grey + (out - grey) * rng.uniform(1.0, 2.2)
    out *= rng.uniform(0.8, 1.2, 3)[None, None, :]
    return np.where(circle[..., None], np.clip(out, 0, 255), image).astype(np.uint8)


def _burn_text(image: np.ndarray, corner: str, text: str) -> np.ndarray:
    h, w = image.shape[:2]
    scale = max(h / 400.0, 0.25)
    thickness = max(1, int(round(scale * 1.5)))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    x = 2 if "left" in corner else max(w - tw - 2, 0)
    y = th + 2 if "top" in corner else h - 3
    top = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else float(np.nanmax(image))
    # Drawn on an 8-bit mask (OpenCV draws text on 8-bit images only), then burned in at full scale.
    mask = np.zeros((h, w), np.uint8)
    cv2.putText(mask, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thickness, cv2.LINE_AA)
    out = image.copy()
    out[mask > 127] = top
    return out
