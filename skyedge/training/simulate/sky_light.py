"""Where the light of a night (or twilight) sky comes from, as functions of sky position: physically grounded models.

Every function takes zenith angles and azimuths (radians, arrays of any shape) and returns surface brightness
in units of the dark-sky zenith brightness (1.0 = a moonless, unpolluted zenith, about 21.6 V mag/arcsec^2,
78 nanolambert), so the renderer multiplies by the camera's electrons for that level.

* :func:`airglow`: the van Rhijn enhancement of a thin emitting layer at 90 km seen at a slant.
* :func:`light_pollution`: a uniform skyglow rising toward the horizon plus town domes at given azimuths
  (Garstang-like: brightest at the horizon below the town, falling off in altitude and azimuth).
* :func:`moonlight`: Krisciunas & Schaefer (1991, PASP 103, 1033): the moon's illuminance by phase angle,
  Rayleigh plus Mie scattering by the angle to the moon, atmospheric extinction of the moonlight and the
  optical path of the scattering column; it floods the whole sky, not only a disc.
* :func:`twilight`: the sky brightening with the sun's altitude, about 0.35 dex per degree from -18 deg
  (astronomical night) to 0 deg, brightest toward the sun and the horizon; daylight above.
* :func:`cloud_radiance`: what a cloud base sends down: ground light (light pollution) reflected, moon and
  twilight light scattered, and only a little of the airglow above it.
* :func:`moon_through_deck`: a moon behind an opaque deck (stratus): the deck lit evenly, a broad glow, no disc.
"""

from __future__ import annotations

import math

import numpy as np

DARK_SKY_NL = 78.0  # nanolambert of the dark-sky zenith
DARK_SKY_V = 21.6  # its V surface brightness, mag/arcsec^2


def _airmass(z: np.ndarray) -> np.ndarray:
    """Kasten & Young airmass, finite at (and just below) the horizon."""
    zd = np.degrees(np.clip(z, 0.0, math.radians(89.9)))
    return 1.0 / (np.cos(np.radians(zd)) + 0.50572 * (96.07995 - zd) ** -1.6364)


def airglow(z: np.ndarray, level: float = 1.0) -> np.ndarray:
    """Airglow: ``level`` at the zenith, rising to about 6x at the horizon (van Rhijn, layer at 90 km)."""
    earth, height = 6371.0, 90.0
    s = np.sin(np.clip(z, 0.0, math.pi / 2))
    return level / np.sqrt(1.0 - (earth / (earth + height) * s) ** 2)


def light_pollution(z: np.ndarray, az: np.ndarray, glow: float, domes: list[tuple[float, float, float]]) -> np.ndarray:
    """Skyglow ``glow`` (zenith units at 45 deg altitude, rising toward the horizon) plus domes.

    ``domes`` are (azimuth rad, strength, half width rad): each is ``strength`` at the horizon below the town.
    """
    alt = np.clip(math.pi / 2 - z, 0.0, None)
    out = glow * (0.5 + 1.5 * np.exp(-alt / math.radians(25)))
    for az0, strength, width in domes:
        daz = np.angle(np.exp(1j * (az - az0)))
        out = out + strength * np.exp(-0.5 * (daz / width) ** 2) * np.exp(-alt / math.radians(12))
    return out


def moonlight(
    z: np.ndarray, az: np.ndarray, moon_z: float, moon_az: float, phase_angle_deg: float, extinction: float = 0.172
) -> np.ndarray:
    """Scattered moonlight in dark-zenith units (Krisciunas & Schaefer 1991); zero with the moon below the horizon."""
    if moon_z >= math.pi / 2:
        return np.zeros_like(z)
    a = abs(phase_angle_deg)
    illuminance = 10.0 ** (-0.4 * (3.84 + 0.026 * a + 4e-9 * a**4))
    cos_rho = np.cos(z) * math.cos(moon_z) + np.sin(z) * math.sin(moon_z) * np.cos(az - moon_az)
    rho = np.degrees(np.arccos(np.clip(cos_rho, -1.0, 1.0)))
    scattering = 10.0**5.36 * (1.06 + np.cos(np.radians(rho)) ** 2) + 10.0 ** (6.15 - np.clip(rho, 1.0, None) / 40.0)
    x_moon = float(_airmass(np.array(moon_z)))
    column = 1.0 - 10.0 ** (-0.4 * extinction * _airmass(z))
    nanolambert = scattering * illuminance * 10.0 ** (-0.4 * extinction * x_moon) * column
    return nanolambert / DARK_SKY_NL


def twilight(z: np.ndarray, az: np.ndarray, sun_alt_deg: float, sun_az: float) -> np.ndarray:
    """Twilight and daylight in dark-zenith units: 1 at -18 deg, about 10^6.3 at sunset, brightest toward the sun."""
    if sun_alt_deg <= -18.0:
        return np.zeros_like(z)
    level = 10.0 ** (0.35 * (min(sun_alt_deg, 0.0) + 18.0))
    if sun_alt_deg > 0:
        level *= 1.0 + 2.0 * math.sin(math.radians(sun_alt_deg))  # daylight keeps rising with the sun
    sun_z = math.radians(90.0 - sun_alt_deg)
    cos_rho = np.cos(z) * math.cos(sun_z) + np.sin(z) * math.sin(sun_z) * np.cos(az - sun_az)
    toward_sun = 1.0 + 2.0 * np.clip(cos_rho, 0.0, None) ** 3
    horizon = 1.0 + 1.5 * (1.0 - np.cos(np.clip(z, 0.0, math.pi / 2)))
    return level * toward_sun * horizon


def cloud_radiance(
    lp_below: np.ndarray | float,
    moon_above: np.ndarray | float,
    twilight_above: np.ndarray | float,
    albedo: float,
    airglow_above: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Light a cloud base sends down, in dark-zenith units.

    Ground light reflected: ``6 x albedo`` times the clear-sky skyglow, so overcast town skies are 2-5x
    brighter than clear ones while clouds over a dark site stay darker than its airglow, as Kyba et al. (2011)
    measured. Moon and twilight light diffusing through: half of what the clear sky would scatter, times albedo.
    Airglow (above the clouds) only as the fraction ``1 - albedo`` that a thick deck transmits diffusely.
    """
    return albedo * (np.asarray(lp_below) * 6.0 + 0.5 * np.asarray(moon_above) + 0.5 * np.asarray(twilight_above)) + (
        1.0 - albedo
    ) * np.asarray(airglow_above)


def moon_through_deck(
    zenith: np.ndarray, azimuth: np.ndarray, moon_z: float, moon_az: float, level: float, glow: float, width_deg: float
) -> np.ndarray:
    """Moonlight diffused through an opaque deck, in dark-zenith units: no disc; the deck lit nearly evenly as the
    CIE overcast sky (the zenith brightest, the horizon a third of it) at ``level``, plus a broad glow of ``glow``
    times that, ``width_deg`` wide (a Gaussian's sigma), where the moon is behind it."""
    cos_d = np.cos(zenith) * math.cos(moon_z) + np.sin(zenith) * math.sin(moon_z) * np.cos(azimuth - moon_az)
    d = np.degrees(np.arccos(np.clip(cos_d, -1.0, 1.0)))
    overcast = (1.0 + 2.0 * np.cos(np.minimum(zenith, math.pi / 2))) / 3.0
    return level * (overcast + glow * np.exp(-0.5 * (d / width_deg) ** 2))
