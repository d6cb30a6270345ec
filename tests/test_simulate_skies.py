"""All-sky simulator physics and cameras: each effect measured on the functions and on rendered pixels."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from skyedge.training.simulate import sky_light
from skyedge.training.simulate.allsky import (
    CLASSES,
    INVALID_KINDS,
    AllskyConfig,
    render_allsky,
    render_invalid,
    stored_dtype,
)
from skyedge.training.simulate.camera import CameraModel, dew, geometry, to_sensor
from skyedge.training.simulate.profiles import PROFILES, profile_config

# A plain linear mono camera with no vignetting: pixel values are proportional to sky brightness plus bias.
LINEAR = CameraModel(width=96, height=96, vignetting=(0.0, 0.0), gain=(1.0, 1.0), read_noise=(2.0, 2.0), seed=0)


def linear_cfg(**sky) -> AllskyConfig:
    # One sky brightness and transparency for every frame, so frames compare by their conditions alone.
    base = dict(
        secondary_probability=0.0,
        milky_way_probability=0.0,
        haze_probability=0.0,
        crescent_probability=0.0,
        sky_e=(150.0, 150.0),
        airglow=(1.0, 1.0),
        extinction=(0.2, 0.2),
    )
    cfg = AllskyConfig(**{**base, **sky})
    return _with_camera(cfg, LINEAR)


def _with_camera(cfg: AllskyConfig, cam: CameraModel) -> AllskyConfig:
    """An AllskyConfig whose plain camera is ``cam`` (the fields AllskyConfig.camera reads)."""
    return dataclasses.replace(
        cfg,
        size=cam.width,
        vignetting=cam.vignetting,
        gain=cam.gain,
        read_noise=cam.read_noise,
        bias=cam.bias,
    )


def sky_level(image: np.ndarray, cfg: AllskyConfig) -> float:
    """Median sky signal above bias inside 60 deg of the zenith."""
    geo = geometry(cfg.camera)
    inner = geo.sky & (geo.zenith < math.radians(60))
    return float(np.median(image[inner].astype(float))) - cfg.bias


def star_count(image: np.ndarray, cfg: AllskyConfig, where: np.ndarray | None = None) -> float:
    """Point sources inside 60 deg of the zenith (and inside ``where``), per 1000 pixels: local maxima standing
    6 sigma and 25% above their 5x5 median (the contrast keeps a cloud deck's texture, a few per cent, out)."""
    import cv2

    geo = geometry(cfg.camera)
    x = image.astype(np.float32)
    local = cv2.medianBlur(x, 5)
    residual = x - local
    inner = geo.sky & (geo.zenith < math.radians(60))
    sigma = 1.4826 * np.median(np.abs(residual[inner])) + 1e-6
    peaks = (residual == cv2.dilate(residual, np.ones((3, 3), np.uint8))) & (
        residual > np.maximum(6 * sigma, 0.25 * (local - cfg.bias))
    )
    region = inner if where is None else inner & where
    return 1000.0 * float((peaks & region).sum()) / max(int(region.sum()), 1)


def medians(label: str, cfg: AllskyConfig, n: int, seed: int, measure=sky_level, overcast: bool = False) -> list[float]:
    """``measure`` of n frames of ``label``; ``overcast``: only cloudy frames whose cloud covers 60% or more (the
    class also holds a few banks over a clear sky)."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        image, meta = render_allsky(label, rng, cfg)
        if not overcast or meta.get("cloud_coverage", 1.0) >= 0.6:
            out.append(measure(image, cfg))
    return out


# ---------------------------------------------------------------- sky light models


def test_airglow_follows_van_rhijn():
    z = np.radians([0.0, 45.0, 80.0, 90.0])
    glow = sky_light.airglow(z, 1.0)
    assert glow[0] == pytest.approx(1.0)
    assert np.all(np.diff(glow) > 0)
    # A thin layer at 90 km seen at the horizon: 1 / sqrt(1 - (R / (R + h))^2) ~ 6.
    assert glow[-1] == pytest.approx(1 / math.sqrt(1 - (6371 / 6461) ** 2), rel=1e-6)


def test_light_pollution_rises_to_the_horizon_and_under_a_town():
    z = np.radians([0.0, 45.0, 75.0, 89.0])
    towards = sky_light.light_pollution(z, np.zeros(4), 1.0, [(0.0, 5.0, 0.3)])
    away = sky_light.light_pollution(z, np.full(4, math.pi), 1.0, [(0.0, 5.0, 0.3)])
    assert np.all(np.diff(towards) > 0) and np.all(np.diff(away) > 0)
    assert towards[-1] > 3 * away[-1]  # the dome of the town
    assert towards[0] == pytest.approx(away[0], rel=0.01)  # ... seen from below only near the horizon


def test_full_moon_sky_matches_krisciunas_schaefer_and_floods_the_sky():
    z = np.radians(np.linspace(0, 80, 9))
    az = np.full(z.shape, math.pi)  # the half of the sky away from the moon
    light = sky_light.moonlight(z, az, math.radians(45.0), 0.0, 0.0, extinction=0.172)
    zenith_mag = 21.6 - 2.5 * math.log10(1.0 + light[0])
    # K&S 1991 (fig. 3): a full moon at 45 deg altitude puts the zenith near V = 18-18.5 mag/arcsec^2.
    assert 17.5 < zenith_mag < 19.0
    assert light.min() > 5.0  # the whole sky, even 120 deg from the moon, is several times the dark sky


@pytest.mark.parametrize("vary", ["phase", "altitude"])
def test_moonlight_rises_with_phase_and_altitude(vary):
    z, az = np.radians([0.0, 40.0, 70.0]), np.zeros(3)
    if vary == "phase":  # phase angle 0 is full
        series = [sky_light.moonlight(z, az, math.radians(40), math.pi, a) for a in (150, 110, 70, 30, 0)]
    else:
        series = [sky_light.moonlight(z, az + math.pi, math.radians(90 - a), 0.0, 20) for a in (3, 15, 30, 60)]
    zenith = [s[0] for s in series]
    assert np.all(np.diff(zenith) > 0)
    assert not sky_light.moonlight(z, az, math.radians(95), 0.0, 0.0).any()  # set: no moonlight


def test_twilight_rises_monotonically_with_the_sun():
    z, az = np.array([0.0, 1.2]), np.array([0.0, 0.0])
    levels = [sky_light.twilight(z, az, alt, 0.0)[0] for alt in (-17.0, -12.0, -6.0, -1.0, 10.0, 40.0)]
    assert np.all(np.diff(levels) > 0)
    assert not sky_light.twilight(z, az, -18.5, 0.0).any()
    toward, away = sky_light.twilight(np.radians([80.0, 80.0]), np.array([0.0, math.pi]), -6.0, 0.0)
    assert toward > away  # brightest toward the sun


def test_cloud_base_reflects_ground_light_but_not_airglow():
    assert sky_light.cloud_radiance(0.0, 0.0, 0.0, 0.8) == 0.0
    assert sky_light.cloud_radiance(2.0, 0.0, 0.0, 0.8) > 2.0  # brighter than the skyglow it hides


# ---------------------------------------------------------------- rendered skies


def test_lit_clouds_are_brighter_than_the_clear_sky_under_light_pollution():
    cfg = linear_cfg(light_pollution=(2.0, 2.0), domes=(0, 0), moon_up_probability=0.0)
    cloudy, clear = medians("cloudy", cfg, 6, 1, overcast=True), medians("clear", cfg, 6, 2)
    assert min(cloudy) > max(clear)


def test_dark_clouds_hide_stars_and_dim_a_dark_sky():
    cfg = linear_cfg(light_pollution=(0.0, 0.0), domes=(0, 0), moon_up_probability=0.0)
    assert np.median(medians("cloudy", cfg, 6, 3, overcast=True)) < 0.8 * np.median(medians("clear", cfg, 6, 4))
    rng = np.random.default_rng(3)
    cloudy = [render_allsky("cloudy", rng, dataclasses.replace(cfg, cloud_cover=(0.9, 1.0))) for _ in range(8)]
    clear = [render_allsky("clear", rng, cfg) for _ in range(8)]
    # The starlight reaching the camera (thick cloud, soft edges) and the stars the pixels show.
    for _, meta in cloudy:  # no more than half of the light behind cloud of opacity 0.5 or more gets through
        assert meta["starlight_seen"] <= 1.0 - 0.5 * meta["cloud_fraction"] + 1e-9
    assert all(meta["starlight_seen"] == pytest.approx(1.0) for _, meta in clear)
    # Behind thick cloud (the simulator's own truth, opacity 0.9 or more) the stars are gone.
    thick = [star_count(im, cfg, (m["cloud_truth"] >= 225) & (m["cloud_truth"] != 255)) for im, m in cloudy]
    assert np.mean(thick) < 0.3 * np.mean([star_count(im, cfg) for im, _ in clear]), thick


def test_moonlit_clouds_are_brighter_than_moonless_ones():
    dark = linear_cfg(light_pollution=(0.0, 0.0), domes=(0, 0), moon_up_probability=0.0)
    moonlit = dataclasses.replace(dark, moon_up_probability=1.0)
    rng = np.random.default_rng(5)
    lit = []
    for _ in range(12):
        image, meta = render_allsky("cloudy", rng, moonlit)
        if meta.get("moon_altitude_deg", -1) > 20 and meta["moon_phase"] > 0.5:
            lit.append(sky_level(image, moonlit))
    assert lit, "no bright moon above 20 deg in 12 draws"
    assert min(lit) > 3 * np.median(medians("cloudy", dark, 6, 6))


def _disc_contrast(image: np.ndarray, meta: dict, bias: float) -> float:
    """The brightest pixel within 2 px of the moon against the median 6-12 px from it (bias removed)."""
    yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
    d = np.hypot(xx - meta["moon_x"], yy - meta["moon_y"])
    signal = image.astype(float) - bias
    return float(signal[d <= 2].max() / max(np.median(signal[(d >= 6) & (d <= 12)]), 1e-6))


def test_moon_behind_a_cloud_deck_is_a_broad_glow_without_disc_or_stars():
    cfg = linear_cfg(light_pollution=(0.0, 0.0), domes=(0, 0), moon_up_probability=1.0, cloud_cover=(0.9, 1.0))
    deck = dataclasses.replace(cfg, deck_probability=1.0)
    rng = np.random.default_rng(9)
    decks = []
    while len(decks) < 3:
        image, meta = render_allsky("cloudy", rng, deck)
        if meta.get("moon_altitude_deg", -1) > 20 and meta["moon_phase"] > 0.5:
            decks.append((image, meta))
    clear_moon = [render_allsky("moon", rng, cfg) for _ in range(3)]
    for image, meta in decks:
        assert meta["cloud_deck"] and meta["cloud_fraction"] == 1.0
        assert star_count(image, deck) == 0
        assert _disc_contrast(image, meta, cfg.bias) < 2.5  # a glow a few degrees wide, not a disc
        # Lit evenly: the deck's darkest quarter is no darker than a third of its median (CIE overcast).
        geo = geometry(deck.camera)
        inner = image[geo.sky & (geo.zenith < math.radians(60))].astype(float) - cfg.bias
        assert np.percentile(inner, 25) > np.median(inner) / 3
    assert all(_disc_contrast(im, m, cfg.bias) > 5.0 for im, m in clear_moon)  # the clear sky shows the disc (8-70)
    assert np.median([sky_level(im, cfg) for im, _ in decks]) > np.median(medians("cloudy", dataclasses.replace(cfg, moon_up_probability=0.0), 3, 10))
    # Decks only under a moon: without one, asking for decks changes no draw (and off is the default).
    moonless = dataclasses.replace(cfg, moon_up_probability=0.0)
    a, _ = render_allsky("cloudy", np.random.default_rng(4), moonless)
    b, meta = render_allsky("cloudy", np.random.default_rng(4), dataclasses.replace(moonless, deck_probability=1.0))
    assert cfg.deck_probability == 0.0 and np.array_equal(a, b) and "cloud_deck" not in meta


def test_horizon_banks_put_a_few_percent_of_cloud_low_and_leave_the_sky_above_clear():
    """The partly cloudy night a real camera's model called clear: 5-9% cloud, nearly all below 36 deg altitude."""
    from skyedge.preprocess import NO_SKY

    cfg = linear_cfg(horizon_bank_probability=1.0)
    geo = geometry(cfg.camera)
    rng = np.random.default_rng(11)
    for _ in range(4):
        _, meta = render_allsky("cloudy", rng, cfg)
        truth = meta["cloud_truth"]
        cloudy = (truth != NO_SKY) & (truth >= 125)
        assert 0.02 <= meta["cloud_fraction"] <= 0.2, meta["cloud_fraction"]
        assert not (cloudy & (geo.zenith < math.radians(45))).any()  # the sky above 45 deg altitude stays clear
    # Off by default, and asking for it changes no other class's draw.
    a, _ = render_allsky("clear", np.random.default_rng(4), linear_cfg())
    b, _ = render_allsky("clear", np.random.default_rng(4), cfg)
    assert AllskyConfig().horizon_bank_probability == 0.0 and np.array_equal(a, b)


def test_thin_cloud_lets_the_brighter_stars_through_and_is_still_cloud():
    """Thin cloud a person paints as cloud and the stars shine through: opacity 0.5-0.85 at its thickest, the stars
    under it dimmed, not gone as under the class's usual thick cloud."""
    from skyedge.preprocess import NO_SKY

    cfg = linear_cfg(light_pollution=(0.0, 0.0), domes=(0, 0), moon_up_probability=0.0, cloud_cover=(0.95, 1.0))
    thin_cfg = dataclasses.replace(cfg, thin_cloud_probability=1.0)
    thick = [render_allsky("cloudy", np.random.default_rng(s), cfg) for s in range(6)]
    thin = [render_allsky("cloudy", np.random.default_rng(s), thin_cfg) for s in range(6)]
    for _, meta in thin:
        opacity = meta["cloud_truth"][meta["cloud_truth"] != NO_SKY] / 250.0
        assert meta["cloud_thin"] and 0.5 <= opacity.max() <= 0.85 + 1e-6
        assert meta["cloud_fraction"] > 0.3  # cloud by the truth's own count (opacity 0.5 or more)
    # The starlight reaching the camera: a third to a half through thin cloud, a few per cent through thick.
    assert min(m["starlight_seen"] for _, m in thin) > 0.2
    assert np.median([m["starlight_seen"] for _, m in thick]) < 0.1
    # Off by default, and asking for it changes no draw of a frame it does not thin.
    a, _ = render_allsky("clear", np.random.default_rng(4), cfg)
    b, _ = render_allsky("clear", np.random.default_rng(4), thin_cfg)
    assert AllskyConfig().thin_cloud_probability == 0.0 and np.array_equal(a, b)
    assert not any("cloud_thin" in meta for _, meta in thick)


def test_a_dusty_dome_mottles_a_moonlit_sky_and_leaves_a_moonless_one_alone():
    """Dust on the dome is many soft out-of-focus blobs over the lens circle; lit by the moon it adds light to the
    sky. Without a moon up it is invisible, and the draw is the clean one."""
    import cv2

    from skyedge.training.simulate.camera import dust

    clean = linear_cfg(light_pollution=(0.0, 0.0), domes=(0, 0))
    geo = geometry(dataclasses.replace(LINEAR, width=256, height=256))
    specks, _ = dust(geo, np.random.default_rng(0), np.ones(geo.zenith.shape, np.float32))
    blobs = cv2.connectedComponents((specks > 0.02).astype(np.uint8))[0] - 1
    assert blobs >= 20 and specks[geo.in_circle].mean() > 20 * max(specks[~geo.in_circle].mean(), 1e-6)
    dusty = dataclasses.replace(clean, dust_probability=1.0)
    sky = geometry(clean.camera).sky
    for seed in range(3):
        a, meta_a = render_allsky("moon", np.random.default_rng(seed), clean)
        b, meta_b = render_allsky("moon", np.random.default_rng(seed), dusty)
        assert "dust" in meta_b and "dust" not in meta_a
        assert np.median(b[sky].astype(float)) > 1.01 * np.median(a[sky].astype(float))
    moonless = dataclasses.replace(clean, moon_up_probability=0.0, crescent_probability=0.0)
    a, _ = render_allsky("cloudy", np.random.default_rng(5), moonless)
    b, meta = render_allsky("cloudy", np.random.default_rng(5), dataclasses.replace(moonless, dust_probability=1.0))
    assert clean.dust_probability == 0.0 and np.array_equal(a, b) and "dust" not in meta


def test_moon_class_brightens_the_whole_sky_with_phase():
    cfg = linear_cfg(light_pollution=(0.0, 0.0), domes=(0, 0))
    rng = np.random.default_rng(7)
    rows = []
    for _ in range(16):
        image, meta = render_allsky("moon", rng, cfg)
        geo = geometry(cfg.camera)
        # The sky far from the disc (the half of the frame away from it) still brightens with the phase.
        mx, my = meta["moon_x"], meta["moon_y"]
        yy, xx = np.mgrid[0 : image.shape[0], 0 : image.shape[1]]
        far = geo.sky & (np.hypot(xx - mx, yy - my) > 0.5 * geo.radius_px)
        rows.append((meta["moon_phase"], float(np.median(image[far])) - cfg.bias))
    phase, level = np.array(rows).T
    assert np.corrcoef(phase, level)[0, 1] > 0.5
    clear = medians("clear", cfg, 6, 8)
    assert np.median(level) > 2 * np.median(clear)


def test_twilight_frames_brighten_as_the_sun_rises():
    levels = []
    for sun in (-17.5, -16.0, -14.0, -12.0):  # brighter than -12 a fixed exposure saturates
        cfg = linear_cfg(sun_alt_deg=sun, light_pollution=(0.0, 0.0), domes=(0, 0), moon_up_probability=0.0)
        levels.append(np.median(medians("clear", cfg, 3, 9)))
    assert np.all(np.diff(levels) > 0)


def test_haze_halos_and_fewer_faint_stars():
    hazy = linear_cfg(haze_probability=1.0, moon_up_probability=0.0, light_pollution=(0.0, 0.0), domes=(0, 0))
    clean = dataclasses.replace(hazy, haze_probability=0.0)
    assert np.median(medians("clear", hazy, 8, 10, star_count)) < np.median(medians("clear", clean, 8, 10, star_count))


def test_light_pollution_dome_brightens_its_horizon():
    cfg = linear_cfg(light_pollution=(0.0, 0.0), domes=(1, 1), dome_strength=(20.0, 20.0), moon_up_probability=0.0)
    image, _ = render_allsky("clear", np.random.default_rng(11), cfg)
    geo = geometry(cfg.camera)
    ring = geo.sky & (geo.zenith > math.radians(75))
    az = geo.azimuth[ring]
    values = image[ring].astype(float)
    sectors = [np.median(values[(az >= a) & (az < a + math.pi / 4)]) for a in np.arange(0, 2 * math.pi, math.pi / 4)]
    assert max(sectors) > 2 * min(sectors)


# ---------------------------------------------------------------- lenses and cameras


@pytest.mark.parametrize(
    "projection, r45",
    [
        ("equidistant", 0.5),
        ("equisolid", math.sin(math.radians(22.5)) / math.sin(math.radians(45))),
        ("stereographic", math.tan(math.radians(22.5))),
    ],
)
def test_projection_puts_the_zenith_in_the_middle_and_45_deg_where_the_formula_says(projection, r45):
    cam = CameraModel(width=201, height=201, projection=projection, fov_deg=180, circle=1.0)
    geo = geometry(cam)
    x, y = geo.project(np.radians([0.0, 45.0, 90.0]), np.zeros(3))
    assert (x[0], y[0]) == pytest.approx(geo.centre)
    assert math.hypot(x[1] - geo.centre[0], y[1] - geo.centre[1]) / geo.radius_px == pytest.approx(r45, rel=1e-6)
    assert math.hypot(x[2] - geo.centre[0], y[2] - geo.centre[1]) / geo.radius_px == pytest.approx(1.0, rel=1e-6)


def test_wide_lens_sees_ground_and_cropped_circle_fills_the_frame():
    wide = geometry(CameraModel(width=128, height=128, fov_deg=190, circle=0.9))
    assert (wide.in_circle & ~wide.sky).sum() > 0.05 * wide.in_circle.sum()  # a ring of ground below the horizon
    cropped = geometry(CameraModel(width=160, height=120, fov_deg=185, circle=1.15))
    assert cropped.in_circle[0].any() and cropped.in_circle[-1].any()  # cut by the top and bottom edges
    assert not cropped.in_circle[:, 0].any()


@pytest.mark.parametrize(
    "kind, open_fraction",
    [("trees", (0.6, 0.99)), ("buildings", (0.7, 0.995)), ("mast", (0.97, 0.9999)), ("slit", (0.1, 0.5))],
)
def test_obstructions_hide_the_right_part_of_the_sky(kind, open_fraction):
    cam = CameraModel(width=160, height=160, obstructions=(kind,), seed=3)
    geo = geometry(cam)
    above = geo.in_circle & (geo.zenith < math.pi / 2)
    fraction = geo.sky.sum() / above.sum()
    assert open_fraction[0] < fraction < open_fraction[1]
    if kind != "slit":
        assert geo.sky[geo.zenith < math.radians(30)].all()  # nothing on the ground reaches near the zenith
    assert geometry(cam) is geo  # the same trees every frame


def test_dew_spreads_light_and_keeps_it():
    frame = np.zeros((64, 64, 3))
    frame[32, 32] = 1000.0
    fogged = dew(frame, np.random.default_rng(0), 0.6)
    assert fogged.max() < 0.5 * frame.max()
    assert fogged.sum() == pytest.approx(frame.sum(), rel=0.02)


def test_bayer_mosaic_applies_white_balance_per_photosite():
    rgb = np.ones((4, 4, 3)) * np.array([10.0, 20.0, 30.0])
    mosaic = to_sensor(rgb, CameraModel(sensor="RGGB", white_balance=(2.0, 1.0, 0.5)))
    assert mosaic[0, 0] == 20.0 and mosaic[0, 1] == 20.0 and mosaic[1, 0] == 20.0 and mosaic[1, 1] == 15.0


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_each_profile_writes_its_own_kind_of_file(name):
    cfg = profile_config(name)
    cam = cfg.camera
    rng = np.random.default_rng(12)
    for label in CLASSES:
        image, meta = render_allsky(label, rng, cfg)
        assert image.dtype == np.dtype(stored_dtype(cam))
        assert image.shape[:2] == (cam.height, cam.width)
        assert image.ndim == (3 if cam.sensor == "rgb" else 2)
        assert meta["profile"] == name
    geo = geometry(cam)
    if cam.float_nan_outside:
        assert np.isnan(image[~geo.in_circle]).all() and np.isfinite(image[geo.in_circle]).all()
    if cam.overlay:
        vertical, horizontal = cam.overlay.split("-")
        rows = slice(0, cam.height // 8) if vertical == "top" else slice(-cam.height // 8, None)
        cols = slice(0, cam.width // 2) if horizontal == "left" else slice(-cam.width // 2, None)
        corner = image[rows, cols]
        assert (corner == np.iinfo(image.dtype).max).any()  # the burned-in timestamp


def test_profiles_are_many_and_different():
    assert len(PROFILES) >= 6
    cams = [p.camera for p in PROFILES.values()]
    for field in ("projection", "sensor", "encoding", "bit_depth", "fov_deg", "circle"):
        assert len({getattr(c, field) for c in cams}) >= 2, field
    assert sum(bool(c.obstructions) for c in cams) >= 3 and sum(bool(c.jpeg_quality) for c in cams) >= 2


def test_auto_stretch_camera_keeps_the_sky_level_whatever_its_brightness():
    cfg = profile_config("suburban-colour-jpeg", secondary_probability=0.0)
    rng = np.random.default_rng(13)
    dark = np.median([np.median(render_allsky("clear", rng, cfg)[0]) for _ in range(6)])
    lit = np.median([np.median(render_allsky("moon", rng, cfg)[0]) for _ in range(6)])
    assert dark > 20 and lit < 4 * dark  # a linear camera would show the moonlit sky many times brighter


def test_same_seed_same_frame():
    cfg = profile_config("rpi-fisheye-jpeg")
    a, _ = render_allsky("discrete", np.random.default_rng(14), cfg)
    b, _ = render_allsky("discrete", np.random.default_rng(14), cfg)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("kind", INVALID_KINDS)
def test_invalid_frames_render_as_the_camera_writes(kind):
    cfg = profile_config("dark-site-mono")
    image, _ = render_invalid(kind, np.random.default_rng(15), cfg)
    assert image.shape == (cfg.camera.height, cfg.camera.width)
    if kind == "daylight":
        night, _ = render_allsky("clear", np.random.default_rng(15), cfg)
        assert np.median(image) > 10 * np.median(night)


def test_day_class_is_twilight_or_daylight_and_exposure_decides_saturation():
    from skyedge.sanity import frame_problem
    from skyedge.training.simulate.allsky_scene import DAY, DAY_SUN_ALT

    fixed = profile_config("dark-site-mono", classes=CLASSES + (DAY,))
    auto = profile_config("raw-bayer-fits", classes=CLASSES + (DAY,))
    rng = np.random.default_rng(16)
    for _ in range(6):
        image, meta = render_allsky(DAY, rng, dataclasses.replace(fixed, sun_alt_deg=None))
        assert DAY_SUN_ALT[0] <= meta["sun_alt_deg"] <= DAY_SUN_ALT[1]
    # By day a fixed exposure saturates; an automatic one shortens and keeps the sky below the top.
    noon_fixed, _ = render_allsky(DAY, rng, dataclasses.replace(fixed, sun_alt_deg=40.0))
    noon_auto, _ = render_allsky(DAY, rng, dataclasses.replace(auto, sun_alt_deg=40.0))
    assert frame_problem(noon_fixed) is not None and frame_problem(noon_fixed).reason in ("saturated", "constant")
    assert frame_problem(noon_auto) is None
    assert np.mean(noon_auto >= np.iinfo(noon_auto.dtype).max) < 0.05


@pytest.mark.parametrize("effect", ["lit_clouds", "moonlight", "light_pollution", "obstructions", "optics"])
def test_each_ablation_switches_its_effect_off(effect):
    from skyedge.training.simulate.allsky import ABLATIONS

    assert effect in ABLATIONS
    name = "rpi-fisheye-jpeg" if effect != "lit_clouds" else "suburban-colour-jpeg"
    label = {"lit_clouds": "cloudy", "moonlight": "moon"}.get(effect, "clear")
    full = profile_config(name, secondary_probability=0.0)
    less = dataclasses.replace(full, without=(effect,))
    a, _ = render_allsky(label, np.random.default_rng(17), full)
    b, _ = render_allsky(label, np.random.default_rng(17), less)
    assert not np.array_equal(a, b)
    if effect == "obstructions":
        assert geometry(less.camera).sky.sum() > geometry(full.camera).sky.sum()
    with pytest.raises(ValueError, match="unknown effects"):
        AllskyConfig(without=("rain",))


@pytest.mark.slow  # reason: renders day and night frames for every camera profile (about 10 s on 2 cores)
def test_exposures_as_the_camera_program_records_them():
    """Fixed cameras write their nominal exposure; auto-exposing ones seconds by night (a bright moon included)
    and well under the edge's daylight limit by day."""
    from skyedge.exposure import DAY_MAX_EXPOSURE_S

    for name in sorted(PROFILES):
        cfg = profile_config(name)
        rng = np.random.default_rng(31)
        night = [render_allsky(label, rng, cfg)[1]["exposure_s"] for label in CLASSES for _ in range(3)]
        day = [render_invalid("daylight", rng, cfg)[1]["exposure_s"] for _ in range(6)]
        if cfg.camera.exposure == "fixed" and cfg.camera.encoding != "auto_stretch":
            assert set(night) | set(day) == {cfg.camera.night_exposure_s}, name
        else:
            assert min(night) > 1.0 and max(day) < DAY_MAX_EXPOSURE_S, (name, min(night), max(day))
