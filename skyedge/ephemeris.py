"""Sun and moon for a site and a moment, computed offline with astropy: what the sky should look like.

Accuracy and cost, documented because a device may run for years without a network:

* Positions come from astropy's built-in ephemeris (ERFA: VSOP87 for the sun, ELP2000-82 truncated for the
  moon: arcseconds), topocentric, geometric altitudes (no refraction: near the horizon the real sky is up to
  0.5 deg higher).
* Earth orientation: no IERS table is downloaded. UT1 is taken as UTC (|UT1 - UTC| < 0.9 s, at most 0.004 deg
  in altitude), polar motion comes from astropy's bundled tables or, past them, the 50-year mean (arcseconds).
  ``iers.conf.auto_download`` is switched off when this module is imported, in this process only.
* Cost: positions are tabulated on a 2-minute grid in 6-hour chunks (one vectorised astropy call, about
  0.12 s per chunk on 2 cores, i.e. four a day) and interpolated on unit vectors; the interpolation error is below
  0.001 deg. A frame's ephemeris then costs microseconds. Tools that walk an archive, whose frames lie hours or
  nights apart, tabulate an hour at a time (``ARCHIVE_CHUNK_S``: 0.03 s a chunk, most of it astropy's own
  overhead).
"""

from __future__ import annotations

import math
import threading
import warnings
from dataclasses import dataclass

import numpy as np

STEP_S = 120.0
CHUNK_S = 6 * 3600.0
ARCHIVE_CHUNK_S = 3600.0
_CHUNKS_KEPT = 8


@dataclass(frozen=True)
class SkyEphemeris:
    """The sun and moon at one moment, as seen from the site."""

    sun_alt_deg: float
    sun_az_deg: float
    moon_alt_deg: float
    moon_az_deg: float
    moon_illumination: float  # illuminated fraction of the disc, 0 (new) to 1 (full)

    def message(self) -> dict:
        """The ``ephemeris`` object of classification and state messages."""
        return {
            "sun_alt_deg": round(self.sun_alt_deg, 3),
            "sun_az_deg": round(self.sun_az_deg, 3),
            "moon_alt_deg": round(self.moon_alt_deg, 3),
            "moon_az_deg": round(self.moon_az_deg, 3),
            "moon_illumination": round(self.moon_illumination, 4),
        }


def _altaz_to_vectors(alt_deg: np.ndarray, az_deg: np.ndarray) -> np.ndarray:
    alt, az = np.radians(alt_deg), np.radians(az_deg)
    return np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)], axis=-1)  # east, north, up


def _vector_to_altaz(v: np.ndarray) -> tuple[float, float]:
    v = v / np.linalg.norm(v)
    return math.degrees(math.asin(max(-1.0, min(1.0, v[2])))), math.degrees(math.atan2(v[0], v[1])) % 360.0


class Ephemeris:
    """Sun and moon for one site; thread-safe (pipelines share it)."""

    def __init__(self, latitude_deg: float, longitude_deg: float, elevation_m: float = 0.0, chunk_s: float = CHUNK_S):
        """``chunk_s``: the span tabulated at once, a whole number of ``STEP_S`` (``ARCHIVE_CHUNK_S`` for frames
        hours apart)."""
        from astropy.utils import iers

        if chunk_s < STEP_S or chunk_s % STEP_S:
            raise ValueError(f"chunk_s: {chunk_s} is not a whole number of {STEP_S:.0f} s steps")
        self.chunk_s = float(chunk_s)

        iers.conf.auto_download = False  # never reach for the network from the device
        iers.conf.auto_max_age = None
        self.latitude_deg, self.longitude_deg, self.elevation_m = latitude_deg, longitude_deg, elevation_m
        self._chunks: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def positions(self, posix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(sun ENU unit vectors, moon ENU unit vectors, moon illumination) computed by astropy at each time."""
        import astropy.units as u
        from astropy.coordinates import AltAz, EarthLocation, get_body
        from astropy.time import Time

        location = EarthLocation(lat=self.latitude_deg * u.deg, lon=self.longitude_deg * u.deg, height=self.elevation_m * u.m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ERFA's "dubious year" and polar-motion fallback notes
            t = Time(posix, format="unix", scale="utc")
            t.delta_ut1_utc = np.zeros(len(posix))  # UT1 = UTC: no IERS table needed (see module docstring)
            frame = AltAz(obstime=t, location=location)
            sun_h = get_body("sun", t, location).transform_to(frame)
            moon_h = get_body("moon", t, location).transform_to(frame)
            sun_v = _altaz_to_vectors(sun_h.alt.deg, sun_h.az.deg)
            moon_v = _altaz_to_vectors(moon_h.alt.deg, moon_h.az.deg)
        # Illuminated fraction (1 + cos i) / 2 with the phase angle i ~ 180 deg - elongation (the sun is 400
        # times farther than the moon): (1 - cos elongation) / 2. The elongation is read from the horizon-frame
        # vectors (a rotation of astropy's, 1e-10 from its separation(), which cost a third of the chunk).
        illumination = (1.0 - np.clip(np.einsum("ij,ij->i", sun_v, moon_v), -1.0, 1.0)) / 2.0
        return sun_v, moon_v, illumination

    def _chunk(self, index: int):
        with self._lock:
            table = self._chunks.get(index)
            if table is None:
                times = index * self.chunk_s + np.arange(0.0, self.chunk_s + STEP_S, STEP_S)
                table = self.positions(times)
                self._chunks[index] = table
                while len(self._chunks) > _CHUNKS_KEPT:
                    self._chunks.pop(next(iter(self._chunks)))
            return table

    def at(self, posix: float) -> SkyEphemeris:
        """The sun and moon at POSIX time ``posix`` (interpolated from the tabulated chunk)."""
        index = int(posix // self.chunk_s)
        sun_v, moon_v, illumination = self._chunk(index)
        x = (posix - index * self.chunk_s) / STEP_S
        i = min(int(x), len(illumination) - 2)
        w = x - i
        sun = (1 - w) * sun_v[i] + w * sun_v[i + 1]
        moon = (1 - w) * moon_v[i] + w * moon_v[i + 1]
        sun_alt, sun_az = _vector_to_altaz(sun)
        moon_alt, moon_az = _vector_to_altaz(moon)
        return SkyEphemeris(sun_alt, sun_az, moon_alt, moon_az, float((1 - w) * illumination[i] + w * illumination[i + 1]))

    def altaz(self, ra_deg: float, dec_deg: float, posix: float) -> tuple[float, float]:
        """(altitude, azimuth) in degrees of a J2000 (ICRS) direction at POSIX time ``posix``, offline as above
        (precession, nutation and aberration included; refraction not)."""
        import astropy.units as u
        from astropy.coordinates import AltAz, EarthLocation, SkyCoord
        from astropy.time import Time

        location = EarthLocation(lat=self.latitude_deg * u.deg, lon=self.longitude_deg * u.deg, height=self.elevation_m * u.m)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = Time(posix, format="unix", scale="utc")
            t.delta_ut1_utc = 0.0
            there = SkyCoord(ra=ra_deg * u.deg, dec=dec_deg * u.deg).transform_to(AltAz(obstime=t, location=location))
        return float(there.alt.deg), float(there.az.deg)
