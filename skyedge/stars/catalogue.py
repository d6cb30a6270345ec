"""The bright stars the device carries, and where they stand in the sky at a moment and a site.

The catalogue file (``data/bright_stars.npz``, about 8,000 stars to Hp 6.5) is derived from Hipparcos 2 by
``docs/scripts/make_star_catalogue.py``, which also records its provenance. Apparent positions, offline:

* proper motion is applied linearly from the catalogue's epoch (J1991.25; arcseconds over decades for all but a
  handful of stars);
* ICRS to the site's horizon frame (precession, nutation, Earth rotation with UT1 = UTC, aberration) comes from
  astropy as in :mod:`skyedge.ephemeris`, through one rotation fitted to eight directions, on the hour; within
  the hour the sky turns about the pole at the rate the two hours show (0.01 arcsec from astropy's own answer,
  0.05 ms instead of 2.5 ms a frame). The differential aberration the one rotation leaves out is below 0.01 deg,
  far under an all-sky camera's pixel;
* refraction is added (Saemundsson's formula, scaled by the standard atmosphere's pressure at the site's
  height): 0.3-0.5 deg at the horizon, 0.03 deg at 60 deg altitude.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CATALOGUE_FILE = Path(__file__).parent / "data" / "bright_stars.npz"
_J2000_POSIX = 946728000.0  # 2000-01-01T12:00:00 UTC (TT-UTC ignored: 64 s of proper motion is nothing)
_ANCHOR_S = 86400.0  # astropy is asked once a UTC day per site
_RATE_SPAN_S = 3600.0  # the sky's turn is read over an hour: a day's turn, 361 deg, cannot be read from two rotations
_JULIAN_YEAR_S = 365.25 * 86400.0


def _vectors(ra_deg: np.ndarray, dec_deg: np.ndarray) -> np.ndarray:
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=-1)


def refraction_deg(alt_deg: np.ndarray, elevation_m: float = 0.0) -> np.ndarray:
    """Atmospheric refraction (deg) to add to a geometric altitude (Saemundsson; 10 C, pressure at the height)."""
    h = np.maximum(np.asarray(alt_deg, np.float64), -1.0)
    r_arcmin = 1.02 / np.tan(np.radians(h + 10.3 / (h + 5.11)))
    return np.where(np.asarray(alt_deg) > -1.0, r_arcmin / 60.0 * math.exp(-elevation_m / 8400.0), 0.0)


@dataclass(frozen=True)
class StarsAt:
    """Catalogue stars at one moment: apparent altitude and azimuth (deg, azimuth from north through east)."""

    alt_deg: np.ndarray
    az_deg: np.ndarray
    mag: np.ndarray
    hip: np.ndarray

    def __len__(self) -> int:
        return len(self.mag)

    def subset(self, keep: np.ndarray) -> StarsAt:
        """The stars where ``keep`` holds."""
        return StarsAt(self.alt_deg[keep], self.az_deg[keep], self.mag[keep], self.hip[keep])


class StarCatalogue:
    """Bright stars with proper motions; :meth:`at` gives their apparent positions at a site and moment."""

    def __init__(self, path: Path | str = CATALOGUE_FILE):
        path = Path(path)
        try:
            with np.load(path) as f:
                self.hip = f["hip"]
                self.ra_deg, self.dec_deg = f["ra_deg"], f["dec_deg"]
                self.pm_ra, self.pm_dec = f["pm_ra_cosdec_mas_yr"].astype(np.float64), f["pm_dec_mas_yr"].astype(np.float64)
                self.mag = f["mag"]
                self.epoch_jyear = float(f["epoch_jyear"])
                self.provenance = str(f["provenance"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"{path}: not a skyedge star catalogue ({exc})") from exc
        self._day: tuple[float, np.ndarray] | None = None  # (UTC day, its ICRS vectors): one day's, 190 kB
        self._brightest_first = np.argsort(self.mag, kind="stable")

    def __len__(self) -> int:
        return len(self.mag)

    def icrs_vectors(self, posix: float) -> np.ndarray:
        """(N, 3) ICRS unit vectors at POSIX time ``posix`` (proper motion applied to the start of its UTC day: a
        day moves the fastest star, Barnard's, 0.03 arcsec), kept for the day: read-only."""
        day = math.floor(posix / _ANCHOR_S) * _ANCHOR_S
        if self._day is None or self._day[0] != day:
            years = 2000.0 + (day - _J2000_POSIX) / _JULIAN_YEAR_S - self.epoch_jyear
            dec = self.dec_deg + self.pm_dec * years / 3.6e6
            cos_dec = np.maximum(np.cos(np.radians(self.dec_deg)), 1e-6)
            ra = self.ra_deg + self.pm_ra * years / 3.6e6 / cos_dec
            vectors = _vectors(ra, dec)
            vectors.flags.writeable = False
            self._day = (day, vectors)
        return self._day[1]

    def at(
        self, latitude_deg: float, longitude_deg: float, elevation_m: float, posix: float, mag_limit: float | None = None,
        brightest: int | None = None,
    ) -> StarsAt:
        """Every star (brighter than ``mag_limit``; only the ``brightest`` of the catalogue, brightest first, when
        given) at the site and moment, apparent (refracted) positions."""
        rot = icrs_to_enu(latitude_deg, longitude_deg, elevation_m, posix)
        keep = slice(None) if mag_limit is None else self.mag <= mag_limit
        if brightest is not None:
            first = self._brightest_first[:brightest]
            keep = first if mag_limit is None else first[self.mag[first] <= mag_limit]
        enu = self.icrs_vectors(posix)[keep] @ rot.T
        alt = np.degrees(np.arcsin(np.clip(enu[:, 2], -1.0, 1.0)))
        az = np.degrees(np.arctan2(enu[:, 0], enu[:, 1])) % 360.0
        return StarsAt(alt + refraction_deg(alt, elevation_m), az, self.mag[keep], self.hip[keep])


@lru_cache(maxsize=1)
def default_catalogue() -> StarCatalogue:
    """The catalogue shipped with skyedge (loaded once)."""
    return StarCatalogue()


_PROBES = _vectors(np.array([0, 90, 180, 270, 45, 225, 0, 0.0]), np.array([0, 0, 0, 0, 45, -45, 89, -89.0]))


def icrs_to_enu(latitude_deg: float, longitude_deg: float, elevation_m: float, posix: float) -> np.ndarray:
    """The rotation taking ICRS unit vectors to (east, north, up) at the site and moment. astropy gives it at the
    start of the UTC day (:func:`_astropy_icrs_to_enu`), and an hour later; the rest of the day the sky turns about
    the axis and at the rate that hour shows (within 0.13 arcsec of astropy's own answer, 1.1 at worst, at 60
    random sites and moments of 2016-2031; tests/test_stars.py checks it against astropy and an independent
    formula). Asking astropy at every frame cost 2.5 ms and kept about 0.5 kB alive inside it each time
    (tracemalloc), a leak a device running for months could not afford; asked hourly, a clock check (the sky over
    +-12 h) still cost 50 astropy calls, 0.15 s."""
    anchor = math.floor(posix / _ANCHOR_S) * _ANCHOR_S
    start, axis, rate = _turn(latitude_deg, longitude_deg, elevation_m, anchor)
    return start @ rotation_about(axis, rate * (posix - anchor))


@lru_cache(maxsize=16)
def _turn(latitude_deg: float, longitude_deg: float, elevation_m: float, anchor: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(the rotation at ``anchor``, the ICRS axis the sky turns about, its rate in rad/s)."""
    start = _astropy_icrs_to_enu(latitude_deg, longitude_deg, elevation_m, anchor)
    end = _astropy_icrs_to_enu(latitude_deg, longitude_deg, elevation_m, anchor + _RATE_SPAN_S)
    m = start.T @ end
    angle = math.acos(min(1.0, max(-1.0, (np.trace(m) - 1.0) / 2.0)))
    axis = np.array([m[2, 1] - m[1, 2], m[0, 2] - m[2, 0], m[1, 0] - m[0, 1]]) / (2.0 * math.sin(angle))
    return start, axis / np.linalg.norm(axis), angle / _RATE_SPAN_S


def rotation_about(axis: np.ndarray, angle: float) -> np.ndarray:
    """The rotation by ``angle`` (rad) about the unit vector ``axis`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


@lru_cache(maxsize=8)
def _location(latitude_deg: float, longitude_deg: float, elevation_m: float):
    """The site as astropy's EarthLocation, made once per site: each new one left about 0.2 kB more alive inside
    astropy (tracemalloc: ERFA's geodetic conversions)."""
    import astropy.units as u
    from astropy.coordinates import EarthLocation

    return EarthLocation(lat=latitude_deg * u.deg, lon=longitude_deg * u.deg, height=elevation_m * u.m)


@lru_cache(maxsize=16)
def _astropy_icrs_to_enu(latitude_deg: float, longitude_deg: float, elevation_m: float, posix: float) -> np.ndarray:
    """The rotation taking ICRS unit vectors to (east, north, up) at the site and moment (astropy, offline)."""
    from astropy.coordinates import AltAz, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    iers.conf.auto_download = False  # never reach for the network from the device
    iers.conf.auto_max_age = None
    location = _location(latitude_deg, longitude_deg, elevation_m)
    x, y, z = _PROBES.T
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ERFA's "dubious year" and polar-motion fallback notes
        t = Time(posix, format="unix", scale="utc")
        t.delta_ut1_utc = 0.0
        probes = SkyCoord(x=x, y=y, z=z, representation_type="cartesian", frame="icrs")
        there = probes.transform_to(AltAz(obstime=t, location=location))
    alt, az = np.radians(there.alt.deg), np.radians(there.az.deg)
    enu = np.stack([np.cos(alt) * np.sin(az), np.cos(alt) * np.cos(az), np.sin(alt)], axis=-1)
    # Kabsch: the proper rotation that best maps the probes onto their horizon-frame directions.
    u_, _, vt = np.linalg.svd(enu.T @ _PROBES)
    d = np.sign(np.linalg.det(u_ @ vt))
    return u_ @ np.diag([1.0, 1.0, d]) @ vt
