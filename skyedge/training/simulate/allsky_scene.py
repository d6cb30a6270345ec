"""The light of one all-sky frame, built in sky coordinates and read out through the camera.

:class:`Sky` holds the frame in the making (the camera's view, the conditions drawn, the light added so far);
each phenomenon adds its light (stars, airglow and light pollution, moonlight, aurorae, clouds, twilight,
daylight); :func:`scene` draws one class's sky with a weaker second phenomenon, :func:`combine` adds the
components through extinction, clouds and halos, and :func:`readout` turns expected electrons into the file's
pixels. The physics is in :mod:`skyedge.training.simulate.sky_light`; the classes and the configuration in
:mod:`skyedge.training.simulate.allsky`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import cv2
import numpy as np

from skyedge.training.simulate import sky_light
from skyedge.training.simulate.aurora import arc, diffuse, discrete
from skyedge.training.simulate.camera import (
    BAYER_OFFSETS,
    CameraModel,
    dew,
    dust,
    encode,
    flare,
    geometry,
    to_sensor,
    vignetting_map,
)
from skyedge.training.simulate.clouds import cloud
from skyedge.training.simulate.photometry import airmass, expose, mag_to_electrons, to_adu

if TYPE_CHECKING:
    from skyedge.training.simulate.allsky import AllskyConfig

# Not a night sky: twilight and daylight, for a model that must say so itself on a camera without a site location.
DAY = "day"
DAY_SUN_ALT = (-12.0, 60.0)  # the edge's default day_sun_alt_deg is -12
AUTO_EXPOSURE_MAX = 4.0  # an auto-exposing camera's longest exposure, in units of the nominal night exposure
# Relative response of (R, G, B) channels to each emission, for colour cameras.
SPECTRA = {
    "star": (1.0, 1.0, 1.0),
    "star_hot": (0.8, 0.9, 1.15),
    "star_cool": (1.15, 0.95, 0.7),
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


class Sky:
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
        self.deck = False  # the sky is one opaque, featureless cloud deck
        self.meta: dict = {}

    def add(self, spectrum: str, electrons: np.ndarray) -> None:
        self.components.append((spectrum, electrons))

    def smooth_noise(self, scale: float, octaves: int = 1, persistence: float = 0.5) -> np.ndarray:
        """Value noise in [-1, 1]-ish with features of ``scale`` (fraction of the sky's diameter), in sky coordinates."""
        raster = 256 if max(self.dx.shape) <= 256 else 512  # fine structure survives on larger frames
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


def _stars(sky: Sky) -> None:
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
    band = getattr(sky, "milky_way", None)
    if band is not None:
        # Faint stars crowd towards the Milky Way: a third of them are redrawn near its plane.
        extra = int(n_stars * 0.35)
        ang, off, width = band
        t = rng.uniform(-1.3, 1.3, extra)
        d = off + rng.normal(0, width * 1.5, extra)
        px, py = t * math.cos(ang) + d * math.sin(ang), t * math.sin(ang) - d * math.cos(ang)
        rho = np.hypot(px, py)
        keep = rho < 1.0
        zen = np.concatenate([zen, rho[keep] * math.pi / 2])
        az = np.concatenate([az, np.arctan2(px[keep], -py[keep]) % (2 * math.pi)])
        mags = np.concatenate([mags, rng.uniform(m_lim - 1.5, m_lim, int(keep.sum()))])
    x, y = sky.geo.project(zen, az)
    # Stars and sky share one exposure: a pixel of dark sky is as bright as a star of magnitude
    # 21.6 - 2.5 log10(pixel area in arcsec^2) (about mag 3 for a 128-pixel all-sky circle), and holds sky0 electrons.
    scale_arcsec = math.degrees(math.radians(sky.cam.fov_deg / 2) / max(sky.geo.radius_px, 1.0)) * 3600.0
    pixel_mag = sky_light.DARK_SKY_V - 2.5 * math.log10(scale_arcsec**2)
    zp = pixel_mag + 2.5 * math.log10(sky.sky0)
    flux = mag_to_electrons(mags + sky.extinction * airmass(np.minimum(zen, math.radians(89.0))), zp)
    h, w = sky.zenith.shape
    # Two populations by colour (hot blue-white, cool orange), each splatted bilinearly (sub-pixel positions kept).
    hot = rng.uniform(size=len(flux)) < 0.55
    fwhm = rng.uniform(*cfg.fwhm_px)
    total = np.zeros((h, w))
    for spectrum, chosen in (("star_hot", hot), ("star_cool", ~hot)):
        image = np.zeros((h, w))
        x0, y0 = np.floor(x[chosen]).astype(int), np.floor(y[chosen]).astype(int)
        fx, fy, f = x[chosen] - x0, y[chosen] - y0, flux[chosen]
        for ox, oy, wt in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = x0 + ox, y0 + oy
            ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
            np.add.at(image, (yi[ok], xi[ok]), f[ok] * wt[ok])
        image = cv2.GaussianBlur(image, (0, 0), fwhm / 2.3548)
        if sky.halo > 0:
            # Thin cirrus: fewer faint stars (extinction) and halos around the bright ones (forward scattering).
            halos = cv2.GaussianBlur(image, (0, 0), max(h, w) * 0.015)
            image = (1 - sky.halo) * image + sky.halo * halos
        sky.add(spectrum, image)
        total += image
    sky.star_image = total
    sky.meta.update(limiting_mag=m_lim, zero_point=zp, fwhm_px=fwhm, n_stars=len(flux))


def _background(sky: Sky) -> None:
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
    if rng.uniform() < cfg.milky_way_probability and "milky_way" not in cfg.without:
        # The Milky Way: at a dark site as bright as the airglow or brighter, mottled by star clouds and cut by
        # dark dust lanes along its middle.
        ang, off, width = rng.uniform(0, math.pi), rng.uniform(-0.5, 0.5), rng.uniform(0.07, 0.14)
        dist = sky.dx * math.sin(ang) - sky.dy * math.cos(ang) - off
        band = np.exp(-0.5 * (dist / width) ** 2) * (1 + 0.5 * sky.smooth_noise(0.06, 4))
        lanes = 1.0 - 0.6 * np.exp(-0.5 * (dist / (0.3 * width)) ** 2) * np.clip(sky.smooth_noise(0.08, 3) + 0.3, 0, 1)
        sky.add("star", sky.sky0 * rng.uniform(0.2, 0.9) * np.clip(band * lanes, 0, None))
        sky.milky_way = (ang, off, width)


def _moonlight(sky: Sky, alt_deg: float, phase_angle_deg: float) -> None:
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
    # Real all-sky lenses scatter a bright moon over a third of the sky or more.
    glare = rng.uniform(20, 120) / (1.0 + (d / rng.uniform(0.03, 0.2)) ** 2)
    sky.add("moon_sky", sky.sky0 * illumination * glare)
    sky.moon["light"] = sky.sky0 * (scattered + illumination * glare)  # what lights dust on the dome
    if sky.halo > 0.2 and rng.uniform() < 0.5:
        # The 22-degree halo of ice crystals in cirrus.
        ring = np.exp(-0.5 * ((d * 90 - 22) / 1.5) ** 2)
        sky.add("moon_sky", sky.sky0 * illumination * sky.halo * 15 * ring)
    sky.moon.update(xy=(float(mx), float(my)), brightness=brightness)
    sky.meta.update(moon_altitude_deg=alt_deg, moon_phase=float(illumination), moon_x=float(mx), moon_y=float(my))


def _moon(sky: Sky, strength: float) -> None:
    """The 'moon' class: a bright moon well up."""
    phase_angle = sky.rng.uniform(0, 110) if strength >= 1 else sky.rng.uniform(90, 150)
    _moonlight(sky, sky.rng.uniform(12, 80), phase_angle)


def _twilight(sky: Sky, sun_alt_deg: float) -> None:
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


def _day(sky: Sky) -> float:
    """The ``day`` class: the sun between -12 deg (nautical twilight) and high in the sky."""
    if sky.cfg.sun_alt_deg is not None:
        return sky.cfg.sun_alt_deg
    lo, hi = DAY_SUN_ALT
    # Half twilight (the sun below the horizon), half daylight.
    return float(sky.rng.uniform(lo, 0.0) if sky.rng.uniform() < 0.5 else sky.rng.uniform(0.0, hi))


PHENOMENA = {"arc": arc, "discrete": discrete, "diffuse": diffuse, "cloudy": cloud, "moon": _moon}
# A weaker second phenomenon that can accompany each class.
SECONDARY = {
    "arc": ("diffuse", "cloudy"),
    "discrete": ("arc", "diffuse"),
    "diffuse": ("arc", "cloudy"),
    "cloudy": ("diffuse",),
    "moon": ("cloudy",),
    "clear": ("diffuse",),  # never cloud: a clear frame is one a dome may open under
    DAY: ("cloudy",),
}
# Strength of the secondary relative to a full-strength primary: low enough that the label stays right.
SECONDARY_STRENGTH = {"arc": 0.15, "discrete": 0.08, "diffuse": 0.1, "cloudy": 0.15, "moon": 0.08}


# ---------------------------------------------------------------- the frame


def scene(label: str, sky: Sky) -> None:
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
        cloud(sky, rng.uniform(0.2, 1.0))  # by day any cover, from a few clouds to overcast
    sky.meta["secondary"] = ""
    if rng.uniform() < cfg.secondary_probability:
        second = SECONDARY[label][rng.integers(len(SECONDARY[label]))]
        PHENOMENA[second](sky, SECONDARY_STRENGTH[second] * rng.uniform(0.3, 1.0))
        sky.meta["secondary"] = second
    _stars(sky)


def combine(sky: Sky) -> np.ndarray:
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
        variation = 0.85 + 0.15 * sky.smooth_noise(0.05)
        if sky.deck:
            variation = 0.95 + 0.05 * sky.smooth_noise(0.3, 2)  # stratus: nearly featureless
            if "lit_clouds" not in sky.cfg.without:  # the moon's light diffused through the deck, not reflected
                # A deck is only drawn under a moon: 1-4x the clear sky's moonlight, a glow 8-30 deg wide.
                m, r = sky.moon, sky.rng
                level, glow = r.uniform(1.0, 4.0) * float(np.mean(m["scattered"])), r.uniform(0.3, 2.0)
                radiance = sky_light.cloud_radiance(sky.lp_map, 0.0, twi, sky.meta["cloud_albedo"], sky.airglow_map)
                radiance = radiance + sky_light.moon_through_deck(sky.zenith, sky.azimuth, m["z"], m["az"], level, glow, r.uniform(8.0, 30.0))
        elif "cloud_texture" not in sky.cfg.without:
            # Lit clouds show their structure: brighter thick parts, fine mottling.
            variation = 0.75 + 0.2 * sky.smooth_noise(0.05, 3) + 0.25 * sky.cloud_opacity
        cloud = sky.sky0 * radiance * sky.cloud_opacity * variation
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
    if cam.flare and sky.moon and sky.moon.get("xy") and sky.moon["illumination"] > 0.3 and not sky.deck:
        expected = flare(expected, geo, sky.moon["xy"], sky.sky0 * 30 * sky.moon["illumination"])
    lit = sky.moon is not None and "light" in sky.moon and sky.moon["illumination"] > 0.3
    if lit and sky.cfg.dust_probability > 0 and sky.rng.uniform() < sky.cfg.dust_probability:
        added, sky.meta["dust"] = dust(geo, sky.rng, sky.moon["light"])  # a dusty dome lit by the moon
        expected += added[..., None] * np.asarray(SPECTRA["moon"])[None, None, :]
    if sky.rng.uniform() < max(cam.dew_probability, sky.cfg.dew_probability):
        strength = sky.rng.uniform(0.2, 0.7)
        expected = dew(expected, sky.rng, strength)
        sky.meta["dew"] = float(strength)
    return expected + 2.0  # dark current and a little scattered light keep masked corners above zero


def readout(expected_rgb: np.ndarray, sky: Sky) -> np.ndarray:
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


