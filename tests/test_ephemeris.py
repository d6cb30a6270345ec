"""The edge's ephemeris against an independent computation: low-precision sun and moon theory written out here.

The reference uses textbook series (the sun's equation of centre; the moon's largest periodic terms in
longitude, latitude and distance, Brown/ELP as summarised by Meeus), mean sidereal time, and a topocentric
correction by vectors. Its own accuracy is a few hundredths of a degree, so agreement within 0.1 degree says
the astropy-based tables, their interpolation and the offline Earth-orientation choice are right.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris

D2R = math.pi / 180.0


def _sin(deg):
    return math.sin(deg * D2R)


def _cos(deg):
    return math.cos(deg * D2R)


def _sun_ecliptic(t_cent: float) -> tuple[float, float, float]:
    """Apparent ecliptic longitude (deg), latitude 0, distance (km) of the sun."""
    l0 = 280.46646 + 36000.76983 * t_cent
    m = 357.52911 + 35999.05029 * t_cent
    c = (1.914602 - 0.004817 * t_cent) * _sin(m) + (0.019993 - 0.000101 * t_cent) * _sin(2 * m) + 0.000289 * _sin(3 * m)
    omega = 125.04 - 1934.136 * t_cent
    lam = l0 + c - 0.00569 - 0.00478 * _sin(omega)
    e = 0.016708634 - 0.000042037 * t_cent
    r_au = 1.000001018 * (1 - e * e) / (1 + e * _cos(m + c))
    return lam, 0.0, r_au * 149597870.7


# (D, M, M', F) multipliers and coefficients: longitude sine terms (deg), distance cosine terms (km).
LONGITUDE_DISTANCE = [
    (0, 0, 1, 0, 6.288774, -20905.355),
    (2, 0, -1, 0, 1.274027, -3699.111),
    (2, 0, 0, 0, 0.658314, -2955.968),
    (0, 0, 2, 0, 0.213618, -569.925),
    (0, 1, 0, 0, -0.185116, 48.888),
    (0, 0, 0, 2, -0.114332, -3.149),
    (2, 0, -2, 0, 0.058793, 246.158),
    (2, -1, -1, 0, 0.057066, -152.138),
    (2, 0, 1, 0, 0.053322, -170.733),
    (2, -1, 0, 0, 0.045758, -204.586),
    (0, 1, -1, 0, -0.040923, -129.620),
    (1, 0, 0, 0, -0.034720, 108.743),
    (0, 1, 1, 0, -0.030383, 104.755),
    (2, 0, 0, -2, 0.015327, 10.321),
    (0, 0, 1, 2, -0.012528, 0.0),
    (0, 0, 1, -2, 0.010980, 79.661),
    (4, 0, -1, 0, 0.010675, -34.782),
    (0, 0, 3, 0, 0.010034, -23.210),
]
LATITUDE = [
    (0, 0, 0, 1, 5.128122),
    (0, 0, 1, 1, 0.280602),
    (0, 0, 1, -1, 0.277693),
    (2, 0, 0, -1, 0.173237),
    (2, 0, -1, 1, 0.055413),
    (2, 0, -1, -1, 0.046271),
    (2, 0, 0, 1, 0.032573),
    (0, 0, 2, 1, 0.017198),
]


def _moon_ecliptic(t_cent: float) -> tuple[float, float, float]:
    """Geocentric ecliptic longitude, latitude (deg) and distance (km) of the moon, largest terms only."""
    lp = 218.3164477 + 481267.88123421 * t_cent
    d = 297.8501921 + 445267.1114034 * t_cent
    m = 357.5291092 + 35999.0502909 * t_cent
    mp = 134.9633964 + 477198.8675055 * t_cent
    f = 93.2720950 + 483202.0175233 * t_cent
    lam, dist = lp, 385000.56
    for kd, km, kmp, kf, sl, cr in LONGITUDE_DISTANCE:
        arg = kd * d + km * m + kmp * mp + kf * f
        lam += sl * _sin(arg)
        dist += cr * _cos(arg)
    beta = sum(c * _sin(kd * d + km * m + kmp * mp + kf * f) for kd, km, kmp, kf, c in LATITUDE)
    nutation = -0.00478 * _sin(125.04 - 1934.136 * t_cent)
    return lam + nutation, beta, dist


def _topocentric_alt(lam, beta, dist_km, jd_ut, t_cent, lat, lon, elevation_m) -> float:
    eps = 23.439291 - 0.0130042 * t_cent + 0.00256 * _cos(125.04 - 1934.136 * t_cent)
    # Geocentric equatorial vector of the body.
    x = dist_km * _cos(beta) * _cos(lam)
    y = dist_km * (_cos(beta) * _sin(lam) * _cos(eps) - _sin(beta) * _sin(eps))
    z = dist_km * (_cos(beta) * _sin(lam) * _sin(eps) + _sin(beta) * _cos(eps))
    # The observer, rotated by local sidereal time (WGS-84-like ellipsoid).
    gmst = 280.46061837 + 360.98564736629 * (jd_ut - 2451545.0) + 0.000387933 * t_cent**2
    lst = gmst + lon
    a, flattening = 6378.137, 1 / 298.257
    e2 = flattening * (2 - flattening)
    n = a / math.sqrt(1 - e2 * _sin(lat) ** 2)
    h = elevation_m / 1000.0
    ox, oy, oz = (n + h) * _cos(lat) * _cos(lst), (n + h) * _cos(lat) * _sin(lst), (n * (1 - e2) + h) * _sin(lat)
    tx, ty, tz = x - ox, y - oy, z - oz
    # Up direction of the site (geodetic normal).
    ux, uy, uz = _cos(lat) * _cos(lst), _cos(lat) * _sin(lst), _sin(lat)
    return math.degrees(math.asin((tx * ux + ty * uy + tz * uz) / math.sqrt(tx * tx + ty * ty + tz * tz)))


def reference(posix: float, lat: float, lon: float, elevation_m: float) -> tuple[float, float, float]:
    """(sun altitude, moon altitude, moon illumination) from the formulas above."""
    jd_ut = 2440587.5 + posix / 86400.0
    t_cent = (jd_ut + 69.2 / 86400.0 - 2451545.0) / 36525.0  # the series run on terrestrial time
    sun = _sun_ecliptic(t_cent)
    moon = _moon_ecliptic(t_cent)
    sun_alt = _topocentric_alt(*sun, jd_ut, t_cent, lat, lon, elevation_m)
    moon_alt = _topocentric_alt(*moon, jd_ut, t_cent, lat, lon, elevation_m)
    elongation = math.acos(_cos(moon[1]) * _cos(moon[0] - sun[0]))
    return sun_alt, moon_alt, (1 - math.cos(elongation)) / 2


SITES = {
    "la-palma": (28.7606, -17.8816, 2396.0),
    "paranal": (-24.6272, -70.4042, 2635.0),
    "svalbard": (78.2232, 15.6267, 520.0),
    "south-pole": (-89.99, 0.0, 2835.0),
    "fairbanks": (64.8378, -147.7164, 136.0),
}
TIMES = [
    "2024-03-20T03:06:00",
    "2025-06-21T22:30:00",
    "2026-11-23T21:00:00",
    "2027-01-15T04:45:00",
    "2028-08-02T12:00:00",
    "2030-12-31T23:59:00",
]


def _alt(vectors: np.ndarray) -> np.ndarray:
    return np.degrees(np.arcsin(np.clip(vectors[:, 2], -1.0, 1.0)))


@pytest.mark.parametrize("site", sorted(SITES))
def test_sun_and_moon_agree_with_an_independent_reference_within_a_tenth_of_a_degree(site):
    """astropy's positions (what the ephemeris tabulates) against the independent series, over six years."""
    lat, lon, elevation = SITES[site]
    eph = Ephemeris(lat, lon, elevation)
    rng = np.random.default_rng(len(site))
    stamps = [datetime.fromisoformat(t).replace(tzinfo=timezone.utc).timestamp() for t in TIMES]
    stamps += list(rng.uniform(stamps[0], stamps[-1], 6))  # and a few random moments in between
    sun_v, moon_v, illumination = eph.positions(np.array(stamps))  # one vectorised call, as a chunk is made
    want = np.array([reference(posix, lat, lon, elevation) for posix in stamps])
    worst = {
        "sun": float(np.abs(_alt(sun_v) - want[:, 0]).max()),
        "moon": float(np.abs(_alt(moon_v) - want[:, 1]).max()),
        "illumination": float(np.abs(illumination - want[:, 2]).max()),
    }
    assert worst["sun"] < 0.1 and worst["moon"] < 0.1, worst
    assert worst["illumination"] < 0.01, worst


def test_interpolating_the_table_costs_under_a_thousandth_of_a_degree():
    """A frame's ephemeris comes from the tabulated chunk; it is the direct computation to 0.001 deg."""
    lat, lon, elevation = SITES["fairbanks"]
    eph = Ephemeris(lat, lon, elevation)
    start = datetime(2026, 11, 23, 18, tzinfo=timezone.utc).timestamp()
    stamps = start + np.random.default_rng(3).uniform(0, 6 * 3600, 12)
    sun_v, moon_v, illumination = eph.positions(stamps)
    got = [eph.at(t) for t in stamps]
    assert np.abs(np.array([g.sun_alt_deg for g in got]) - _alt(sun_v)).max() < 1e-3
    assert np.abs(np.array([g.moon_alt_deg for g in got]) - _alt(moon_v)).max() < 1e-3
    assert np.abs(np.array([g.moon_illumination for g in got]) - illumination).max() < 1e-4


def test_an_archives_hour_long_tables_give_a_devices_answers_and_odd_spans_are_refused():
    """Tools walking an archive tabulate an hour at a time; the sun and moon are the same as from 6-hour tables."""
    lat, lon, elevation = SITES["fairbanks"]
    device, archive = Ephemeris(lat, lon, elevation), Ephemeris(lat, lon, elevation, chunk_s=ARCHIVE_CHUNK_S)
    start = datetime(2026, 11, 23, 18, tzinfo=timezone.utc).timestamp()
    for t in start + np.random.default_rng(4).uniform(0, 40 * 86400, 20):
        a, b = device.at(t), archive.at(t)
        assert abs(a.sun_alt_deg - b.sun_alt_deg) < 1e-3 and abs(a.moon_alt_deg - b.moon_alt_deg) < 1e-3
        assert abs(a.moon_illumination - b.moon_illumination) < 1e-5
    with pytest.raises(ValueError, match="chunk_s"):
        Ephemeris(lat, lon, elevation, chunk_s=100.0)


def test_polar_day_and_night():
    """Near the poles the sun stays up (or down) all day: the altitude varies little and never crosses 0."""
    pole = Ephemeris(-89.99, 0.0, 2835.0)
    june = datetime(2026, 6, 21, tzinfo=timezone.utc).timestamp()
    december = datetime(2026, 12, 21, tzinfo=timezone.utc).timestamp()
    winter = [pole.at(june + h * 3600).sun_alt_deg for h in range(24)]
    summer = [pole.at(december + h * 3600).sun_alt_deg for h in range(24)]
    assert max(winter) < -23.0 and min(summer) > 23.0  # a fixed altitude of about -/+ 23.4 deg
    assert max(summer) - min(summer) < 0.5
