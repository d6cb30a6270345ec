"""All-sky camera frames: a physically lit night sky, seen through a particular camera.

The sky is built in sky coordinates (zenith angle, azimuth) in units of the dark-sky zenith brightness, from
the models in :mod:`skyedge.training.simulate.sky_light`: airglow, light pollution (skyglow and town domes),
scattered moonlight by phase and altitude, twilight and daylight, the Milky Way, aurorae, clouds that are lit
from below (city light, moonlight: brighter than the clear sky) or dark (blocking airglow and stars under a dark
sky), thin cirrus and haze (fewer faint stars, halos around bright stars and the moon), and stars with
catalogue-like counts. The camera (:mod:`skyedge.training.simulate.camera`, named presets in
:mod:`skyedge.training.simulate.profiles`) decides where each direction lands (lens projection, field of view,
circle size and position), what hides it (trees, buildings, a mast, a dome slit), and how light becomes the file
(vignetting, dew, lens flare, noise, saturation, mono/colour/Bayer, linear or auto-stretched with gamma, JPEG
compression, a text overlay, NaN outside the circle).

The six classes follow Endo & Matsumoto (2022); the label is the dominant phenomenon, and a weaker second one
may accompany it (thin cloud over an aurora, faint glow on a clear night):

* ``arc``: one to three thin bright bands along the magnetic east-west axis, curved;
* ``diffuse``: broad low-contrast glow patches;
* ``discrete``: bright folded curtains with fine ray structure;
* ``cloudy``: cloud cover over most of the sky, lit or dark, stars hidden;
* ``moon``: a bright moon up, flooding the sky, with glare;
* ``clear``: stars (with airglow, maybe the Milky Way, maybe a thin crescent low down).

An optional seventh class, ``day`` (add it to ``classes``), is the sky with the sun above -12 deg: nautical and
civil twilight and daylight, with the sun's disc and glare when it is up, maybe clouds. A model trained with it
says ``day`` itself on a camera whose site location is unknown (auto-exposing cameras never saturate by day).

:func:`render_invalid` renders frames that are not a night sky at all (a capped lens, saturation, a constant
frame, noise, a defocused frame, twilight, daylight) for the input-sanity checks.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from skyedge.training.simulate import sky_light
from skyedge.training.simulate.camera import (
    BAYER_OFFSETS,
    CameraModel,
    dew,
    encode,
    flare,
    geometry,
    to_sensor,
    vignetting_map,
)
from skyedge.training.simulate.photometry import airmass, expose, mag_to_electrons, to_adu

CLASSES = ("arc", "diffuse", "discrete", "cloudy", "moon", "clear")
# Not a night sky: twilight and daylight, for a model that must say so itself on a camera without a site location.
DAY = "day"
DAY_SUN_ALT = (-12.0, 60.0)  # the edge's default day_sun_alt_deg is -12
INVALID_KINDS = ("blank", "saturated", "constant", "noise", "defocused", "twilight", "daylight")

# What AllskyConfig.without can switch off: each simulator addition the unseen-camera ablation measures.
ABLATIONS = {
    "lit_clouds": "clouds are never lit from below (town light, moonlight): always darker than the clear sky",
    "moonlight": "the moon adds its disc and glare only, not the scattered light that floods the sky",
    "light_pollution": "no skyglow and no town domes",
    "haze": "no thin cirrus or haze (halos, fewer faint stars)",
    "obstructions": "no trees, buildings, masts or dome slits",
    "overlays": "no text burned into the corners",
    "optics": "no vignetting, dew or lens flare",
}
AUTO_EXPOSURE_MAX = 4.0  # an auto-exposing camera's longest exposure, in units of the nominal night exposure
# Relative response of (R, G, B) channels to each emission, for colour cameras.
SPECTRA = {
    "star": (1.0, 1.0, 1.0),
    "airglow": (0.75, 1.0, 0.8),
    "light_pollution": (1.0, 0.8, 0.5),
    "aurora_green": (0.25, 1.0, 0.35),
    "aurora_red": (1.0, 0.25, 0.3),
    "cloud_lp": (1.0, 0.85, 0.7),
    "cloud_moon": (0.85, 0.95, 1.0),
    "moon": (0.9, 0.95, 1.0),
    "moon_sky": (0.6, 0.75, 1.0),
    "twilight": (0.55, 0.75, 1.0),
    "ground": (0.6, 0.6, 0.55),
}


@dataclass(frozen=True)
class AllskyConfig:
    """What camera and what skies to simulate; ranges are drawn uniformly per frame.

    ``profile`` names a camera preset (:data:`skyedge.training.simulate.profiles.PROFILES`); without one the
    camera is the plain square one the other fields describe (``size``, ``bit_depth``, ``color``, ``bayer``,
    ``vignetting``, ``gain``, ``read_noise``, ``bias``).
    """

    size: int = 128
    bit_depth: int = 16
    color: str = "mono"  # mono | rgb
    bayer: str | None = None  # RGGB | BGGR | GRBG | GBRG: raw colour sensor output (implies color=rgb)
    profile: str | None = None
    fwhm_px: tuple[float, float] = (1.2, 2.2)
    limiting_mag: tuple[float, float] = (4.5, 6.0)  # faintest catalogue star drawn
    extinction: tuple[float, float] = (0.15, 0.35)  # mag per airmass
    sky_e: tuple[float, float] = (80.0, 300.0)  # dark-sky zenith, electrons per pixel
    airglow: tuple[float, float] = (0.7, 1.5)  # zenith airglow in dark-sky units (it varies night to night)
    light_pollution: tuple[float, float] = (0.0, 1.5)  # skyglow at 45 deg, dark-sky units
    domes: tuple[int, int] = (0, 2)  # town light domes on the horizon
    dome_strength: tuple[float, float] = (2.0, 25.0)  # dark-sky units at the horizon below the town
    vignetting: tuple[float, float] = (0.1, 0.45)  # fractional loss at the horizon
    gain: tuple[float, float] = (0.5, 3.0)  # electrons per ADU
    read_noise: tuple[float, float] = (2.0, 8.0)  # electrons
    bias: float = 100.0  # ADU (16-bit); scaled for 8-bit
    secondary_probability: float = 0.35
    milky_way_probability: float = 0.5
    haze_probability: float = 0.3  # thin cirrus or haze: fewer faint stars, halos
    moon_up_probability: float = 0.35  # a moon in the sky for classes other than 'moon' (cloudy: moonlit clouds)
    crescent_probability: float = 0.15  # clear nights: a thin crescent low in the sky
    dew_probability: float = 0.0  # on top of the camera's own
    sun_alt_deg: float | None = None  # above -18: twilight or daylight light is added
    magnetic_axis_deg: float = 0.0  # azimuth of magnetic east-west; aurorae scatter around it
    magnetic_axis_spread_deg: float = 25.0
    classes: tuple[str, ...] = field(default=CLASSES)
    # Simulator additions switched off, for the ablation in docs/results.md (see ABLATIONS).
    without: tuple[str, ...] = ()

    def __post_init__(self):
        if self.color not in ("mono", "rgb"):
            raise ValueError(f"color must be mono or rgb, got {self.color!r}")
        if self.bayer is not None and self.bayer not in BAYER_OFFSETS:
            raise ValueError(f"bayer must be one of {', '.join(BAYER_OFFSETS)}, got {self.bayer!r}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        unknown_effects = set(self.without) - set(ABLATIONS)
        if unknown_effects:
            raise ValueError(f"without: unknown effects {sorted(unknown_effects)}; known: {', '.join(ABLATIONS)}")
        unknown = set(self.classes) - set(CLASSES) - {DAY}
        if unknown:
            raise ValueError(f"unknown all-sky classes: {sorted(unknown)}")
        if self.profile is not None:
            from skyedge.training.simulate.profiles import PROFILES

            if self.profile not in PROFILES:
                raise ValueError(f"unknown camera profile {self.profile!r}; known: {', '.join(sorted(PROFILES))}")

    @property
    def camera(self) -> CameraModel:
        """The camera these frames are seen through (less the effects in ``without``)."""
        cam = self._camera()
        changes: dict = {}
        if "obstructions" in self.without:
            changes["obstructions"] = ()
        if "overlays" in self.without:
            changes["overlay"] = None
        if "optics" in self.without:
            changes.update(vignetting=(0.0, 0.0), dew_probability=0.0, flare=False)
        return dataclasses.replace(cam, **changes) if changes else cam

    def _camera(self) -> CameraModel:
        if self.profile is not None:
            from skyedge.training.simulate.profiles import PROFILES

            return PROFILES[self.profile].camera
        return CameraModel(
            width=self.size,
            height=self.size,
            sensor=self.bayer or ("rgb" if self.color == "rgb" else "mono"),
            bit_depth=self.bit_depth,
            vignetting=self.vignetting,
            gain=self.gain,
            read_noise=self.read_noise,
            bias=self.bias,
        )

    @property
    def channels(self) -> int:
        """Channels of the stored frame (a Bayer mosaic is stored as one channel)."""
        return self.camera.channels

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Sky:
    """One frame in the making: the camera's view, the conditions drawn, and the light accumulated so far."""

    def __init__(self, cfg: AllskyConfig, cam: CameraModel, rng: np.random.Generator):
        self.cfg, self.cam, self.rng = cfg, cam, rng
        self.geo = geometry(cam)
        g = self.geo
        self.zenith, self.azimuth = g.zenith, g.azimuth
        rho = np.clip(g.zenith / (math.pi / 2), 0, 1.3)  # equidistant sky plane: the horizon at 1
        self.dx, self.dy = rho * np.sin(g.azimuth), -rho * np.cos(g.azimuth)
        self.r = rho
        self.mask = g.sky
        self.airmass = airmass(np.minimum(g.zenith, math.radians(89.0)))
        axis = math.radians(cfg.magnetic_axis_deg + rng.normal(0, cfg.magnetic_axis_spread_deg))
        self.u = self.dx * math.cos(axis) + self.dy * math.sin(axis)  # along magnetic east-west
        self.v = -self.dx * math.sin(axis) + self.dy * math.cos(axis)  # along magnetic north-south
        self.components: list[tuple[str, np.ndarray]] = []  # (spectrum, expected electrons)
        self.star_transmission = np.ones(g.zenith.shape)  # what clouds let through from above them
        self.cloud_opacity = np.zeros(g.zenith.shape)
        self.sky0 = rng.uniform(*cfg.sky_e)  # electrons of one dark-sky zenith unit
        self.extinction = rng.uniform(*cfg.extinction)
        self.halo = 0.0  # thin cirrus / haze: fraction of bright-source light scattered into halos
        self.moon: dict | None = None
        self.meta: dict = {}

    def add(self, spectrum: str, electrons: np.ndarray) -> None:
        self.components.append((spectrum, electrons))

    def smooth_noise(self, scale: float, octaves: int = 1, persistence: float = 0.5) -> np.ndarray:
        """Value noise in [-1, 1]-ish with features of ``scale`` (fraction of the sky's diameter), in sky coordinates."""
        raster = 256
        total = np.zeros(self.dx.shape, dtype=np.float32)
        amp, norm = 1.0, 0.0
        # Sky-plane coordinates [-1.3, 1.3] -> raster pixels.
        map_x = ((self.dx + 1.3) / 2.6 * (raster - 1)).astype(np.float32)
        map_y = ((self.dy + 1.3) / 2.6 * (raster - 1)).astype(np.float32)
        for octave in range(octaves):
            cells = max(2, int(round(1.3 / (scale / 2**octave))))
            grid = self.rng.normal(size=(cells + 1, cells + 1)).astype(np.float32)
            field_ = cv2.resize(grid, (raster, raster), interpolation=cv2.INTER_CUBIC)
            total += amp * cv2.remap(field_, map_x, map_y, cv2.INTER_LINEAR)
            norm += amp
            amp *= persistence
        return total / norm


# ---------------------------------------------------------------- light sources


def _stars(sky: _Sky) -> None:
    cfg, rng = sky.cfg, sky.rng
    m_lim = rng.uniform(*cfg.limiting_mag)
    m_min = -1.5
    # Star counts grow as log10 N(<m) = 0.5 m + 0.7 over the whole sky (N(<6) ~ 5000); half is above the horizon.
    n_stars = int(0.5 * 10 ** (0.5 * m_lim + 0.7))
    u = rng.uniform(size=n_stars)
    lo, hi = 10 ** (0.5 * m_min), 10 ** (0.5 * m_lim)
    mags = np.log10(lo + u * (hi - lo)) / 0.5
    zen = np.arccos(rng.uniform(0.0, 1.0, n_stars))  # uniform on the upper hemisphere
    az = rng.uniform(0, 2 * math.pi, n_stars)
    x, y = sky.geo.project(zen, az)
    # Stars and sky share one exposure: a pixel of dark sky is as bright as a star of magnitude
    # 21.6 - 2.5 log10(pixel area in arcsec^2) (about mag 3 for a 128-pixel all-sky circle), and holds sky0 electrons.
    scale_arcsec = math.degrees(math.radians(sky.cam.fov_deg / 2) / max(sky.geo.radius_px, 1.0)) * 3600.0
    pixel_mag = sky_light.DARK_SKY_V - 2.5 * math.log10(scale_arcsec**2)
    zp = pixel_mag + 2.5 * math.log10(sky.sky0)
    flux = mag_to_electrons(mags + sky.extinction * airmass(np.minimum(zen, math.radians(89.0))), zp)
    h, w = sky.zenith.shape
    image = np.zeros((h, w))
    # Bilinear splat keeps sub-pixel positions; the PSF blur below spreads each star.
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for ox, oy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + ox, y0 + oy
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        np.add.at(image, (yi[ok], xi[ok]), flux[ok] * wt[ok])
    fwhm = rng.uniform(*cfg.fwhm_px)
    image = cv2.GaussianBlur(image, (0, 0), fwhm / 2.3548)
    if sky.halo > 0:
        # Thin cirrus: fewer faint stars (extinction) and halos around the bright ones (forward scattering).
        halos = cv2.GaussianBlur(image, (0, 0), max(h, w) * 0.015)
        image = (1 - sky.halo) * image + sky.halo * halos
    sky.add("star", image)
    sky.star_image = image
    sky.meta.update(limiting_mag=m_lim, zero_point=zp, fwhm_px=fwhm, n_stars=n_stars)


def _background(sky: _Sky) -> None:
    cfg, rng = sky.cfg, sky.rng
    glow = rng.uniform(*cfg.airglow)
    sky.airglow_map = sky_light.airglow(sky.zenith, glow)
    sky.add("airglow", sky.sky0 * sky.airglow_map)
    lp = rng.uniform(*cfg.light_pollution)
    domes = [
        (rng.uniform(0, 2 * math.pi), rng.uniform(*cfg.dome_strength), rng.uniform(0.2, 0.6))
        for _ in range(rng.integers(cfg.domes[0], cfg.domes[1] + 1))
    ]
    lp_map = sky_light.light_pollution(sky.zenith, sky.azimuth, lp, domes)
    if "light_pollution" in cfg.without:
        lp_map = np.zeros_like(lp_map)
    sky.lp_map = lp_map
    sky.add("light_pollution", sky.sky0 * lp_map)
    sky.meta.update(sky_e=sky.sky0, airglow=glow, light_pollution=lp, domes=len(domes))
    if rng.uniform() < cfg.milky_way_probability:
        ang, off = rng.uniform(0, math.pi), rng.uniform(-0.5, 0.5)
        dist = sky.dx * math.sin(ang) - sky.dy * math.cos(ang) - off
        band = np.exp(-0.5 * (dist / rng.uniform(0.08, 0.15)) ** 2) * (1 + 0.4 * sky.smooth_noise(0.1, 3))
        sky.add("star", sky.sky0 * rng.uniform(0.05, 0.2) * np.clip(band, 0, None))


def _moonlight(sky: _Sky, alt_deg: float, phase_angle_deg: float) -> None:
    """A moon at ``alt_deg`` with the given phase angle (0 full, 180 new): scattered light, disc, glare."""
    rng = sky.rng
    az = rng.uniform(0, 2 * math.pi)
    moon_z = math.radians(90.0 - alt_deg)
    scattered = sky_light.moonlight(sky.zenith, sky.azimuth, moon_z, az, phase_angle_deg, sky.extinction * 0.8)
    if "moonlight" in sky.cfg.without:
        scattered = np.zeros_like(scattered)
    sky.add("moon_sky", sky.sky0 * scattered)
    illumination = (1 + math.cos(math.radians(phase_angle_deg))) / 2
    sky.moon = {"alt": alt_deg, "az": az, "z": moon_z, "illumination": illumination, "scattered": scattered}
    if alt_deg <= 0:
        return
    (mx,), (my,) = sky.geo.project(np.array([moon_z]), np.array([az]))
    h, w = sky.zenith.shape
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.hypot(xx - mx, yy - my) / (sky.geo.radius_px or 1.0)
    # The true disc (0.5 deg) is under a pixel; blooming of the saturated image makes it a few pixels wide.
    disk_r = rng.uniform(1.5, 4.0) / max(sky.geo.radius_px, 1.0)
    disk = np.exp(-0.5 * (d / disk_r) ** 6)
    brightness = 4000.0 * illumination
    sky.add("moon", sky.sky0 * brightness * disk)
    # Lens glare: light scattered in the optics around the disc, proportional to the moon's brightness.
    glare = rng.uniform(20, 80) / (1.0 + (d / rng.uniform(0.03, 0.08)) ** 2)
    sky.add("moon_sky", sky.sky0 * illumination * glare)
    if sky.halo > 0.2 and rng.uniform() < 0.5:
        # The 22-degree halo of ice crystals in cirrus.
        ring = np.exp(-0.5 * ((d * 90 - 22) / 1.5) ** 2)
        sky.add("moon_sky", sky.sky0 * illumination * sky.halo * 15 * ring)
    sky.moon.update(xy=(float(mx), float(my)), brightness=brightness)
    sky.meta.update(moon_altitude_deg=alt_deg, moon_phase=float(illumination), moon_x=float(mx), moon_y=float(my))


def _moon(sky: _Sky, strength: float) -> None:
    """The 'moon' class: a bright moon well up."""
    phase_angle = sky.rng.uniform(0, 110) if strength >= 1 else sky.rng.uniform(90, 150)
    _moonlight(sky, sky.rng.uniform(12, 80), phase_angle)


def _arc(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    for _ in range(rng.integers(1, 4)):
        v0, curvature = rng.uniform(-0.45, 0.45), rng.uniform(-0.5, 0.5)
        width = rng.uniform(0.02, 0.05)
        dist = sky.v - (v0 + curvature * sky.u**2)
        along = 0.7 + 0.3 * sky.smooth_noise(0.5)
        brightness = sky.sky0 * strength * rng.uniform(4.0, 15.0)
        sky.add("aurora_green", brightness * along * np.exp(-0.5 * (dist / width) ** 2))


def _discrete(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    for _ in range(rng.integers(1, 3)):
        v0, curvature = rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6)
        folds = rng.uniform(0.04, 0.15) * np.sin(2 * math.pi * rng.uniform(1, 3.5) * sky.u + rng.uniform(0, 6.3))
        edge = v0 + curvature * sky.u**2 + folds
        dist = sky.v - edge
        height = rng.uniform(0.06, 0.2)
        # Sharp lower border, light extending up the field lines (here: one side of the band).
        profile = np.where(dist < 0, np.exp(-0.5 * (dist / 0.015) ** 2), np.exp(-dist / height))
        rays_freq = rng.uniform(15, 45)
        rays = 0.55 + 0.45 * np.sin(2 * math.pi * rays_freq * sky.u + 3 * sky.smooth_noise(0.2)) ** 2
        brightness = sky.sky0 * strength * rng.uniform(6.0, 20.0)
        sky.add("aurora_green", brightness * profile * rays)
        if rng.uniform() < 0.4:
            sky.add("aurora_red", 0.3 * brightness * np.exp(-np.abs(dist - 2 * height) / height) * rays)


def _diffuse(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    field_ = sky.smooth_noise(rng.uniform(0.12, 0.3), octaves=2)
    patches = np.clip(field_ - rng.uniform(0.0, 0.4), 0, None)
    patches /= np.quantile(patches[sky.mask], 0.95) + 1e-9 if sky.mask.any() else 1.0
    sky.add("aurora_green", sky.sky0 * strength * rng.uniform(2.0, 5.0) * patches)


def _cloud(sky: _Sky, strength: float) -> None:
    """Cloud cover of ``strength`` (the class: most of the sky; as a secondary: a few patches)."""
    rng = sky.rng
    coverage = np.clip(strength * rng.uniform(0.6, 1.0), 0.05, 1.0)
    noise = sky.smooth_noise(rng.uniform(0.15, 0.4), octaves=4, persistence=0.55)
    threshold = np.quantile(noise, 1.0 - coverage)
    # Thick cloud (the class) lets almost no starlight through; thin patches (a secondary) are translucent.
    thickness = rng.uniform(0.9, 1.0) if strength >= 0.5 else rng.uniform(0.4, 0.9)
    opacity = np.clip((noise - threshold) / rng.uniform(0.05, 0.3), 0.0, 1.0) * thickness
    sky.cloud_opacity = np.maximum(sky.cloud_opacity, opacity)
    sky.meta.update(cloud_coverage=float(coverage), cloud_albedo=float(rng.uniform(0.4, 0.9)))


def _twilight(sky: _Sky, sun_alt_deg: float) -> None:
    sun_az = sky.rng.uniform(0, 2 * math.pi)
    light = sky_light.twilight(sky.zenith, sky.azimuth, sun_alt_deg, sun_az)
    sky.twilight_map = light
    sky.add("twilight", sky.sky0 * light)
    sky.meta.update(sun_alt_deg=sun_alt_deg)
    if sun_alt_deg > 0:
        # The sun's disc saturates and blooms; glare in the optics spreads a good part of the frame.
        (sx,), (sy,) = sky.geo.project(np.array([math.radians(90.0 - sun_alt_deg)]), np.array([sun_az]))
        h, w = sky.zenith.shape
        yy, xx = np.mgrid[0:h, 0:w]
        d = np.hypot(xx - sx, yy - sy) / (sky.geo.radius_px or 1.0)
        level = float(light.max())
        disc = np.exp(-0.5 * (d / sky.rng.uniform(0.03, 0.07)) ** 6)
        glare = sky.rng.uniform(1.0, 4.0) / (1.0 + (d / sky.rng.uniform(0.05, 0.15)) ** 2)
        sky.add("star", sky.sky0 * level * (50.0 * disc + glare))


def _day(sky: _Sky) -> float:
    """The ``day`` class: the sun between -12 deg (nautical twilight) and high in the sky."""
    if sky.cfg.sun_alt_deg is not None:
        return sky.cfg.sun_alt_deg
    lo, hi = DAY_SUN_ALT
    # Half twilight (the sun below the horizon), half daylight.
    return float(sky.rng.uniform(lo, 0.0) if sky.rng.uniform() < 0.5 else sky.rng.uniform(0.0, hi))


PHENOMENA = {"arc": _arc, "discrete": _discrete, "diffuse": _diffuse, "cloudy": _cloud, "moon": _moon}
# A weaker second phenomenon that can accompany each class.
SECONDARY = {
    "arc": ("diffuse", "cloudy"),
    "discrete": ("arc", "diffuse"),
    "diffuse": ("arc", "cloudy"),
    "cloudy": ("diffuse",),
    "moon": ("cloudy",),
    "clear": ("diffuse", "cloudy"),
    DAY: ("cloudy",),
}
# Strength of the secondary relative to a full-strength primary: low enough that the label stays right.
SECONDARY_STRENGTH = {"arc": 0.15, "discrete": 0.08, "diffuse": 0.1, "cloudy": 0.15, "moon": 0.08}


# ---------------------------------------------------------------- the frame


def _scene(label: str, sky: _Sky) -> None:
    cfg, rng = sky.cfg, sky.rng
    if rng.uniform() < cfg.haze_probability and label != "cloudy" and "haze" not in cfg.without:
        sky.halo = rng.uniform(0.1, 0.5)
        sky.extinction += rng.uniform(0.1, 0.6)  # cirrus and haze dim the faint stars
    _background(sky)
    sun_alt = _day(sky) if label == DAY else cfg.sun_alt_deg
    if sun_alt is not None and sun_alt > -18:
        _twilight(sky, sun_alt)
    if label == "moon":
        _moon(sky, 1.0)
    elif label == "clear":
        if rng.uniform() < cfg.crescent_probability:
            _moonlight(sky, rng.uniform(-20, 15), rng.uniform(130, 170))  # a thin crescent, low or set
    elif rng.uniform() < cfg.moon_up_probability:
        # Clouds and aurorae under a moon: moonlit clouds are bright, aurorae washed out a little.
        _moonlight(sky, rng.uniform(-10, 60), rng.uniform(0, 150) if label == "cloudy" else rng.uniform(70, 160))
    if label in PHENOMENA and label != "moon":
        PHENOMENA[label](sky, 1.0)
    elif label == DAY and rng.uniform() < 0.5:
        _cloud(sky, rng.uniform(0.2, 1.0))  # by day any cover, from a few clouds to overcast
    sky.meta["secondary"] = ""
    if rng.uniform() < cfg.secondary_probability:
        second = SECONDARY[label][rng.integers(len(SECONDARY[label]))]
        PHENOMENA[second](sky, SECONDARY_STRENGTH[second] * rng.uniform(0.3, 1.0))
        sky.meta["secondary"] = second
    _stars(sky)


def _combine(sky: _Sky) -> np.ndarray:
    """Expected electrons (H, W, 3): sky light through the clouds, cloud light, the ground, optics."""
    h, w = sky.zenith.shape
    transmission = 1.0 - sky.cloud_opacity
    expected = np.zeros((h, w, 3))
    for spectrum, emission in sky.components:
        weight = np.asarray(SPECTRA[spectrum])
        # Where a cloud is, the light of the clear sky (from above it, or scattered in the air) is dimmed by
        # its opacity and the cloud's own light (city light, moonlight, twilight it scatters) added.
        seen = emission * transmission
        expected += seen[..., None] * weight[None, None, :]
    stars = sky.star_image * sky.geo.sky
    sky.meta["starlight_seen"] = float((stars * transmission).sum() / max(stars.sum(), 1e-9))
    if sky.cloud_opacity.any():
        moon_above = sky.moon["scattered"] * 2 if sky.moon else 0.0
        twi = getattr(sky, "twilight_map", 0.0)
        if "lit_clouds" in sky.cfg.without:
            radiance = sky_light.cloud_radiance(0.0, 0.0, 0.0, sky.meta["cloud_albedo"], sky.airglow_map)
        else:
            radiance = sky_light.cloud_radiance(sky.lp_map, moon_above, twi, sky.meta["cloud_albedo"], sky.airglow_map)
        lit_by = (
            SPECTRA["cloud_moon"] if sky.moon and np.mean(moon_above) > np.mean(sky.lp_map) else SPECTRA["cloud_lp"]
        )
        cloud = sky.sky0 * radiance * sky.cloud_opacity * (0.85 + 0.15 * sky.smooth_noise(0.05))
        expected += cloud[..., None] * np.asarray(lit_by)[None, None, :]
    geo, cam = sky.geo, sky.cam
    expected *= geo.sky[..., None]
    # The ground below the horizon and the obstructions: dark, faintly lit by the sky and the town.
    blocked = geo.obstruction
    if blocked.any():
        level = sky.sky0 * (
            0.15
            + 0.3 * float(np.mean(sky.lp_map))
            + (0.5 * sky.moon["illumination"] if sky.moon and sky.moon["alt"] > 0 else 0)
        )
        level += sky.sky0 * float(np.mean(getattr(sky, "twilight_map", 0.0))) * 0.1
        ground = level * (0.7 + 0.3 * sky.smooth_noise(0.08))
        expected += (ground * blocked)[..., None] * np.asarray(SPECTRA["ground"])[None, None, :]
    expected *= vignetting_map(geo, sky.rng.uniform(*cam.vignetting))[..., None]
    if cam.flare and sky.moon and sky.moon.get("xy") and sky.moon["illumination"] > 0.3:
        expected = flare(expected, geo, sky.moon["xy"], sky.sky0 * 30 * sky.moon["illumination"])
    if sky.rng.uniform() < max(cam.dew_probability, sky.cfg.dew_probability):
        strength = sky.rng.uniform(0.2, 0.7)
        expected = dew(expected, sky.rng, strength)
        sky.meta["dew"] = float(strength)
    return expected + 2.0  # dark current and a little scattered light keep masked corners above zero


def _readout(expected_rgb: np.ndarray, sky: _Sky) -> np.ndarray:
    """Sensor, exposure, noise, converter and the camera program's encoding."""
    cam, rng = sky.cam, sky.rng
    expected = to_sensor(expected_rgb, cam)
    scale = 1.0
    if cam.exposure == "auto" or cam.encoding == "auto_stretch":
        # A camera program with automatic exposure keeps the sky at a useful level: by day a far shorter exposure,
        # by night at most a few times the nominal one (its longest), so a dark sky stays photon-starved and noisy.
        level = float(np.median(expected[sky.geo.sky] if expected.ndim == 2 else expected[sky.geo.sky].mean(axis=1)))
        target = rng.uniform(0.05, 0.25) * cam.full_well
        scale = min(target / max(level, 1e-6), AUTO_EXPOSURE_MAX)
        expected = expected * scale
    # The exposure the camera program would write into the file (FITS EXPTIME, EXIF ExposureTime).
    sky.meta["exposure_s"] = float(cam.night_exposure_s * scale)
    expected = np.minimum(expected, cam.full_well * 1.5)
    gain, read_noise = rng.uniform(*cam.gain), rng.uniform(*cam.read_noise)
    if cam.bit_depth == 8:
        gain *= 8.0  # an 8-bit camera spans the same sky with coarser steps
    bias = cam.bias if cam.bit_depth == 16 else cam.bias / 16
    b2 = cam.binning**2
    electrons = np.minimum(expose(expected * b2, read_noise * cam.binning, rng), cam.full_well * b2) / b2
    adu = to_adu(electrons, gain, bias, cam.bit_depth if cam.encoding == "linear" else 16)
    stamp = f"{2026 + int(rng.integers(0, 3))}-{int(rng.integers(1, 13)):02d}-{int(rng.integers(1, 29)):02d} " + (
        f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:{int(rng.integers(0, 60)):02d} exp {rng.uniform(1, 60):.1f}s"
    )
    image = encode(adu, cam, sky.geo, rng, stamp)
    sky.meta.update(
        gain=gain,
        read_noise=read_noise,
        bias=bias,
        bit_depth=cam.bit_depth,
        bayer=cam.sensor if cam.sensor in BAYER_OFFSETS else "",
    )
    return image


def render_allsky(label: str, rng: np.random.Generator, cfg: AllskyConfig = AllskyConfig()) -> tuple[np.ndarray, dict]:
    """One frame of class ``label`` through ``cfg``'s camera: the file's pixels and the frame's metadata."""
    if label not in CLASSES and label != DAY:
        raise ValueError(f"unknown all-sky class {label!r}; expected one of {', '.join(CLASSES + (DAY,))}")
    cam = cfg.camera
    sky = _Sky(cfg, cam, rng)
    sky.meta.update(label=label, profile=cfg.profile or "")
    _scene(label, sky)
    image = _readout(_combine(sky), sky)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return image, sky.meta


def stored_dtype(cam: CameraModel) -> str:
    """The dtype of the frames a camera writes."""
    if cam.float_nan_outside:
        return "float32"
    return "uint8" if cam.bit_depth == 8 or cam.encoding == "auto_stretch" or cam.jpeg_quality else "uint16"


def render_invalid(kind: str, rng: np.random.Generator, cfg: AllskyConfig = AllskyConfig()) -> tuple[np.ndarray, dict]:
    """A frame that is not a usable night sky, as ``cfg``'s camera would write it (for the sanity checks), and its
    metadata (``exposure_s`` where a camera program would record one)."""
    cam = cfg.camera
    shape = (cam.height, cam.width, 3) if cam.channels == 3 else (cam.height, cam.width)
    dtype = np.uint16 if stored_dtype(cam) != "uint8" else np.uint8
    top = np.iinfo(dtype).max
    if kind == "blank":  # a capped lens: bias, dark current and read noise only
        bias = (cam.bias if dtype == np.uint16 else cam.bias / 16) * rng.uniform(0.5, 1.5)
        return np.clip(rng.normal(bias, rng.uniform(1, 4), shape), 0, top).astype(dtype), {"kind": kind}
    if kind == "saturated":
        image = np.full(shape, top, dtype)
        image[rng.uniform(size=shape) < rng.uniform(0, 0.05)] = int(top * rng.uniform(0.3, 0.9))
        return image, {"kind": kind}
    if kind == "constant":
        return np.full(shape, int(rng.uniform(0, top)), dtype), {"kind": kind}
    if kind == "noise":
        return rng.integers(0, top + 1, shape, dtype=np.int64).astype(dtype), {"kind": kind}
    label = CLASSES[int(rng.integers(len(CLASSES)))]
    if kind == "defocused":
        image, meta = render_allsky(label, rng, cfg)
        sigma = rng.uniform(0.04, 0.1) * cam.height
        return cv2.GaussianBlur(image, (0, 0), sigma), {**meta, "kind": kind}
    sun = rng.uniform(-8, -2) if kind == "twilight" else rng.uniform(5, 60)
    image, meta = render_allsky(label, rng, dataclasses.replace(cfg, sun_alt_deg=sun))
    return image, {**meta, "kind": kind}


class _AllskyShard:
    """A picklable shard maker for the runner, closed over the camera config."""

    def __init__(self, cfg: AllskyConfig, files: str | None):
        self.cfg, self.files = cfg, files

    def __call__(self, index, labels, seed_seq, out):
        from skyedge.training.simulate.frame_files import fits_header, write_frame

        rng = np.random.default_rng(seed_seq)
        images, meta_rows = [], []
        for j, label in enumerate(labels):
            image, meta = render_allsky(label, rng, self.cfg)
            item = index * 100_000 + j
            if self.files:
                folder = out / "frames"
                folder.mkdir(exist_ok=True)
                path = write_frame(folder / f"allsky-{index:04d}-{j:05d}", image, self.files, fits_header(meta, item))
                meta["file"] = str(path.relative_to(out))
            images.append(image)
            meta_rows.append(meta)
        labels_idx = np.array([self.cfg.classes.index(m["label"]) for m in meta_rows], dtype=np.int64)
        return {"images": np.stack(images), "labels": labels_idx}, meta_rows


def simulate_allsky(
    n: int,
    out,
    seed: int = 0,
    cfg: AllskyConfig = AllskyConfig(),
    files: str | None = None,
    workers: int | None = None,
    shard_size: int = 256,
    progress: bool = True,
):
    """Simulate n labelled all-sky frames into a sharded data set (and optionally image files)."""
    cam = cfg.camera
    from pathlib import Path

    from skyedge.training.simulate.runner import run_simulation

    manifest = run_simulation(
        _AllskyShard(cfg, files),
        task="frame",
        classes=list(cfg.classes),
        n=n,
        seed=seed,
        out=out,
        shard_size=shard_size,
        workers=workers,
        progress=progress,
        arrays_spec={
            "images": {
                "dtype": stored_dtype(cam),
                "shape": [cam.height, cam.width] + ([3] if cam.channels == 3 else []),
                "unit": "ADU" if cam.encoding == "linear" else "stretched",
                "bit_depth": cam.bit_depth,
                "color": "mono" if cam.sensor == "mono" else "rgb",
                "bayer": cam.sensor if cam.sensor in BAYER_OFFSETS else None,
                "profile": cfg.profile,
            }
        },
        simulator={"name": "allsky", "config": cfg.to_dict()},
    )
    if files:
        _write_label_table(Path(out))
    return manifest


def _write_label_table(out) -> None:
    """An OATH-style label table (file,label) beside the frames, for the folder loaders and the edge demo."""
    import csv

    from skyedge.shards import ShardedDataset

    data = ShardedDataset.open(out, verify=False).load()
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        for file, label in zip(data["meta.file"], data["meta.label"], strict=False):
            writer.writerow([file, label])
