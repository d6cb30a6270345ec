"""Simulator physics: fluxes, seeing, noise, geometry and reproducibility, measured on rendered pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import curve_fit

from skyedge.shards import DatasetError, ShardedDataset
from skyedge.training.simulate import lightcurves
from skyedge.training.simulate.allsky import CLASSES as ALLSKY_CLASSES
from skyedge.training.simulate.allsky import AllskyConfig, render_allsky, simulate_allsky
from skyedge.training.simulate.obslog import COLUMNS, CadenceConfig, cadence_log, read_log_csv, write_log_csv
from skyedge.training.simulate.photometry import expose, limiting_magnitude, mag_to_electrons, to_adu
from skyedge.training.simulate.psf import FWHM_PER_SIGMA, gaussian_stamp, moffat_alpha, moffat_stamp
from skyedge.training.simulate.transients import CLASSES as TRANSIENT_CLASSES
from skyedge.training.simulate.transients import TransientConfig, render_sequence, simulate_transients


def fixed_log(n=8, fwhm=3.5, sky=400.0, zp=28.0):
    return {
        "mjd": 61000.0 + np.arange(n) * 0.3,
        "fwhm": np.full(n, fwhm),
        "sky": np.full(n, sky),
        "zero_point": np.full(n, zp),
        "exptime": np.full(n, 60.0),
        "airmass": np.full(n, 1.2),
    }


def test_psf_integrates_to_unit_flux():
    assert gaussian_stamp(41, 20.3, 19.8, 3.0).sum() == pytest.approx(1.0, abs=1e-6)
    # Moffat wings extend beyond any stamp: the loss is small but real, never a gain.
    total = moffat_stamp(61, 30.0, 30.0, 3.0, beta=3.0).sum()
    assert 0.98 < total < 1.0


@pytest.mark.parametrize("mag", [17.0, 18.5, 20.0])
def test_measured_flux_scales_with_magnitude(mag):
    """Sky-subtracted stamp flux = 10^(-0.4 (m - ZP)) electrons, within the photon + read noise."""
    rng = np.random.default_rng(1)
    log = fixed_log(n=12)
    cfg = TransientConfig(stamp_size=41, psf="gaussian")
    fluxes = []
    for _ in range(3):
        stamps, cond, meta = render_sequence("nonvariable", rng, cfg, log)
        m = meta["mean_mag"]
        measured = (stamps - log["sky"][:, None, None]).sum(axis=(1, 2))
        expected = mag_to_electrons(m, log["zero_point"])
        sigma = np.sqrt(expected + stamps[0].size * (log["sky"] + cfg.cadence.read_noise**2))
        assert np.all(np.abs(measured - expected) < 5 * sigma)
        fluxes.append((m, measured.mean()))
    # Across objects: the log flux ratio follows the magnitude difference.
    (m1, f1), (m2, f2) = fluxes[0], fluxes[-1]
    if abs(m1 - m2) > 0.5 and min(f1, f2) > 0:
        assert -2.5 * math.log10(f1 / f2) == pytest.approx(m1 - m2, abs=0.15)
    _ = mag


def _gauss2d(coords, amp, x0, y0, sigma, bg):
    x, y = coords
    return (amp * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2)) + bg).ravel()


def _moffat2d(coords, amp, x0, y0, alpha, beta, bg):
    x, y = coords
    return (amp * (1 + ((x - x0) ** 2 + (y - y0) ** 2) / alpha**2) ** (-beta) + bg).ravel()


@pytest.mark.parametrize("psf", ["gaussian", "moffat"])
@pytest.mark.parametrize("seeing", [2.5, 4.0, 6.0])
def test_measured_fwhm_matches_requested_seeing(psf, seeing):
    rng = np.random.default_rng(2)
    size = 41
    log = fixed_log(n=1, fwhm=seeing, sky=200.0)
    cfg = TransientConfig(stamp_size=size, psf=psf, bright_mag=15.0, faint_fraction=0.0)
    obj_stamp = None
    while obj_stamp is None:
        stamps, _, meta = render_sequence("nonvariable", rng, cfg, log)
        if meta["mean_mag"] < 17.5:
            obj_stamp = stamps[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    c = (size - 1) / 2
    if psf == "gaussian":
        p, _ = curve_fit(_gauss2d, (xx, yy), obj_stamp.ravel(), p0=[obj_stamp.max(), c, c, 1.5, 200.0])
        fwhm = FWHM_PER_SIGMA * abs(p[3])
    else:
        p, _ = curve_fit(
            _moffat2d, (xx, yy), obj_stamp.ravel(), p0=[obj_stamp.max(), c, c, 2.0, 3.0, 200.0], maxfev=20000
        )
        fwhm = 2 * abs(p[3]) * math.sqrt(2 ** (1 / p[4]) - 1)
    # Pixel integration broadens the measured profile slightly (variance + 1/12 px^2): well inside 10%.
    assert fwhm == pytest.approx(seeing, rel=0.10)


def test_moffat_alpha_inverts_fwhm():
    alpha = moffat_alpha(4.0, 3.0)
    assert 2 * alpha * math.sqrt(2 ** (1 / 3.0) - 1) == pytest.approx(4.0)


@pytest.mark.parametrize("sky, read_noise", [(50.0, 3.0), (400.0, 7.0), (2000.0, 12.0)])
def test_pixel_variance_is_poisson_plus_read_noise(sky, read_noise):
    rng = np.random.default_rng(3)
    image = expose(np.full((300, 300), sky), read_noise, rng)
    assert image.mean() == pytest.approx(sky, rel=0.01)
    assert image.var() == pytest.approx(sky + read_noise**2, rel=0.03)


def test_adu_conversion_variance_and_saturation():
    rng = np.random.default_rng(4)
    gain, sky, rn = 2.0, 1000.0, 5.0
    adu = to_adu(expose(np.full((300, 300), sky), rn, rng), gain, 100.0, 16)
    assert adu.dtype == np.uint16
    assert adu.astype(float).var() == pytest.approx((sky + rn**2) / gain**2 + 1 / 12, rel=0.04)
    assert to_adu(np.array([1e9]), 1.0, 0.0, 8)[0] == 255


def test_limiting_magnitude_is_five_sigma():
    zp, fwhm, sky, rn = 28.0, 3.5, 600.0, 7.0
    m = limiting_magnitude(zp, fwhm, sky, rn)
    s = mag_to_electrons(m, zp)
    area = 4 * math.pi * (fwhm / FWHM_PER_SIGMA) ** 2
    assert s / math.sqrt(s + area * (sky + rn**2)) == pytest.approx(5.0, rel=1e-6)
    assert limiting_magnitude(zp, fwhm, 4 * sky, rn) < m  # brighter sky, shallower limit


def test_same_seed_same_output_whatever_the_workers(tmp_path):
    cfg = AllskyConfig(size=48)
    simulate_allsky(20, tmp_path / "a", seed=7, cfg=cfg, workers=1, shard_size=8, progress=False)
    simulate_allsky(20, tmp_path / "b", seed=7, cfg=cfg, workers=2, shard_size=8, progress=False)
    simulate_allsky(20, tmp_path / "c", seed=8, cfg=cfg, workers=1, shard_size=8, progress=False)
    a, b, c = (ShardedDataset.open(tmp_path / n) for n in "abc")
    assert a.content_hash() == b.content_hash()
    assert a.content_hash() != c.content_hash()
    assert np.array_equal(a.load()["images"], b.load()["images"])
    t1 = simulate_transients(14, tmp_path / "t1", seed=3, workers=1, shard_size=5, progress=False)
    t2 = simulate_transients(14, tmp_path / "t2", seed=3, workers=2, shard_size=5, progress=False)
    assert np.array_equal(
        ShardedDataset.open(t1.parent).load()["images"], ShardedDataset.open(t2.parent).load()["images"]
    )


def test_labels_are_balanced(tmp_path):
    simulate_allsky(60, tmp_path, seed=1, cfg=AllskyConfig(size=32), workers=1, progress=False)
    labels = ShardedDataset.open(tmp_path).load()["labels"]
    assert np.bincount(labels, minlength=6).tolist() == [10] * 6


def test_truncated_shard_is_reported(tmp_path):
    simulate_allsky(6, tmp_path, seed=1, cfg=AllskyConfig(size=32), workers=1, progress=False)
    shard = tmp_path / "shard-00000.npz"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="sha256 differs"):
        ShardedDataset.open(tmp_path)


@pytest.mark.parametrize("label", ALLSKY_CLASSES)
def test_allsky_geometry_and_format(label):
    rng = np.random.default_rng(5)
    image, meta = render_allsky(label, rng, AllskyConfig(size=96))
    assert image.shape == (96, 96) and image.dtype == np.uint16
    assert meta["label"] == label
    yy, xx = np.mgrid[0:96, 0:96]
    r = np.hypot(xx - 47.5, yy - 47.5)
    outside, inside = image[r > 0.49 * 96].astype(float), image[r < 0.4 * 96].astype(float)
    # Beyond the horizon there is only bias and dark current; the sky is far brighter.
    assert np.median(outside) < np.median(inside)
    assert np.median(outside) < meta["bias"] + 20


def test_moon_frames_are_brighter_than_clear_ones():
    rng = np.random.default_rng(6)
    cfg = AllskyConfig(size=64, secondary_probability=0.0)
    moon = [render_allsky("moon", rng, cfg)[0].astype(float) for _ in range(8)]
    clear = [render_allsky("clear", rng, cfg)[0].astype(float) for _ in range(8)]
    assert np.median([m.max() for m in moon]) > np.median([c.max() for c in clear])
    assert np.median([np.median(m) for m in moon]) > np.median([np.median(c) for c in clear])


def test_clouds_hide_stars():
    cfg = AllskyConfig(size=96, secondary_probability=0.0, milky_way_probability=0.0)
    for seed in range(6):  # the class spans a few banks over a clear sky to overcast
        image, cloudy = render_allsky("cloudy", np.random.default_rng(seed), cfg)
        assert cloudy["cloud_coverage"] >= 0.08 and cloudy["cloud_fraction"] > 0.0
        assert cloudy["starlight_seen"] <= 1.0 - 0.5 * cloudy["cloud_fraction"] + 1e-9


def test_bayer_mosaic_and_8bit():
    cfg = AllskyConfig(size=64, bayer="RGGB", bit_depth=8, secondary_probability=0.0)
    image, meta = render_allsky("discrete", np.random.default_rng(7), cfg)
    assert image.shape == (64, 64) and image.dtype == np.uint8 and meta["bayer"] == "RGGB"
    # Green aurora: green photosites (0,1),(1,0) outshine red (0,0) on average.
    green = np.concatenate([image[0::2, 1::2].ravel(), image[1::2, 0::2].ravel()]).astype(float)
    assert green.mean() > image[0::2, 0::2].astype(float).mean()
    rgb, _ = render_allsky("clear", np.random.default_rng(7), AllskyConfig(size=64, color="rgb"))
    assert rgb.shape == (64, 64, 3)


def test_fits_and_label_table_output(tmp_path):
    from astropy.io import fits

    simulate_allsky(6, tmp_path, seed=2, cfg=AllskyConfig(size=32), files="fits", workers=1, progress=False)
    rows = (tmp_path / "labels.csv").read_text().splitlines()
    assert rows[0] == "file,label" and len(rows) == 7
    file, label = rows[1].split(",")
    with fits.open(tmp_path / file) as hdul:
        header = hdul[0].header
        assert header["SIMCLASS"] == label
        for key in ("DATE-OBS", "EXPTIME", "GAIN", "IMAGETYP"):
            assert key in header
        assert hdul[0].data.shape == (32, 32)


@pytest.mark.parametrize("label", TRANSIENT_CLASSES)
def test_each_transient_class_renders(label):
    stamps, cond, meta = render_sequence(label, np.random.default_rng(11))
    assert stamps.shape == (24, 21, 21) and stamps.dtype == np.float32
    assert cond.shape == (24, len(COLUMNS))
    assert np.all(np.diff(cond[:, 0]) > 0)  # epochs in time order
    assert meta["label"] == label


def test_asteroid_is_present_in_one_epoch_only():
    rng = np.random.default_rng(12)
    log = fixed_log(n=10, sky=300.0)
    stamps, _, meta = render_sequence("asteroid", rng, TransientConfig(stamp_size=21, faint_fraction=0.0), log)
    signal = (stamps - 300.0).sum(axis=(1, 2))
    noise = math.sqrt(21 * 21 * (300 + 49))
    assert int(np.argmax(signal)) == meta["asteroid_epoch"]
    others = np.delete(signal, meta["asteroid_epoch"])
    assert np.all(np.abs(others) < 5 * noise)


def test_variable_classes_vary_and_constant_stars_do_not():
    rng = np.random.default_rng(13)
    cfg = TransientConfig()
    log = cadence_log(cfg.cadence, rng)
    for label in ("RRLyrae", "Cepheid", "EB", "SN"):
        for _ in range(5):
            from skyedge.training.simulate.transients import SkyObject

            obj = SkyObject(label, rng, cfg, log["mjd"])
            assert np.ptp(obj.mag(log["mjd"])) >= cfg.min_variability
    flat, _ = lightcurves.draw_nonvariable(rng, (0, 10), (18, 19))
    assert np.ptp(flat(np.linspace(0, 10, 50))) == 0


def test_supernovae_caught_rising_and_in_faint_hosts_only_when_asked():
    from skyedge.training.simulate.transients import SkyObject

    log = cadence_log(CadenceConfig(), np.random.default_rng(19))
    last = log["mjd"].max()

    def draw(n=60, **options):
        rng, cfg = np.random.default_rng(20), TransientConfig(**options)
        objects = [SkyObject("SN", rng, cfg, log["mjd"]) for _ in range(n)]
        return objects, cfg

    plain, cfg = draw()
    same, _ = draw(sn_latest_peak_days=-5.0, sn_faint_host_fraction=0.0)
    assert [o.meta["t0"] for o in plain] == [o.meta["t0"] for o in same]  # the defaults reproduce old data sets
    assert max(o.meta["t0"] for o in plain) <= last - 5.0
    late, _ = draw(sn_latest_peak_days=5.0)
    rising = [o for o in late if o.meta["t0"] > last]
    assert rising  # still rising at the last epoch, and selected only when seen to vary
    assert all(np.ptp(o.mag(log["mjd"])) >= cfg.min_variability for o in rising)
    hidden, _ = draw(sn_faint_host_fraction=1.0)
    limit = hidden[0].depth.limit()
    assert all(limit + 1.0 <= o.host["mag"] <= limit + 3.0 for o in hidden)
    assert np.median([o.host["mag"] for o in plain]) < limit
    with pytest.raises(ValueError, match="sn_faint_host_fraction"):
        TransientConfig(sn_faint_host_fraction=1.5)


def test_rr_lyrae_period_is_recovered():
    from astropy.timeseries import LombScargle

    rng = np.random.default_rng(14)
    mag, params = lightcurves.draw_rrlyrae(rng, (0, 30), (18, 19))
    t = np.sort(rng.uniform(0, 30, 400))
    freq, power = LombScargle(t, mag(t)).autopower(minimum_frequency=0.5, maximum_frequency=6, samples_per_peak=20)
    assert 1 / freq[np.argmax(power)] == pytest.approx(params["period"], rel=0.02)


def test_sn_peaks_at_the_requested_magnitude():
    mag, params = lightcurves.draw_sn(np.random.default_rng(15), (61000, 61020), (19, 20))
    t = np.linspace(params["t0"] - 20, params["t0"] + 40, 4000)
    assert mag(t).min() == pytest.approx(params["peak_mag"], abs=0.01)


def test_bright_epochs_raise_the_sky_of_some_epochs_only_and_leave_old_logs_alone():
    plain = cadence_log(CadenceConfig(epochs=400), np.random.default_rng(17))
    again = cadence_log(CadenceConfig(epochs=400, bright_epochs=0.0), np.random.default_rng(17))
    assert np.array_equal(plain["sky"], again["sky"])  # the default draws nothing extra: old seeds reproduce
    bright = cadence_log(CadenceConfig(epochs=400, bright_epochs=0.25), np.random.default_rng(17))
    assert np.array_equal(bright["mjd"], plain["mjd"]) and np.array_equal(bright["fwhm"], plain["fwhm"])
    ratio = bright["sky"] / plain["sky"]
    raised = ratio > 1.0
    assert 0.15 < raised.mean() < 0.35
    assert np.all((ratio[raised] >= 2.0) & (ratio[raised] <= 5.0)) and np.all(ratio[~raised] == 1.0)


def test_visit_ranges_and_long_gaps_shape_the_cadence_and_are_checked():
    plain = cadence_log(CadenceConfig(epochs=400), np.random.default_rng(18))
    same = cadence_log(CadenceConfig(epochs=400, visits_per_night=2, long_gaps=0.0), np.random.default_rng(18))
    assert np.array_equal(plain["mjd"], same["mjd"])  # the defaults draw nothing extra

    def nights(log):  # first epoch of each night and visits per night (a night's visits span under 0.5 day)
        starts = np.r_[0, np.flatnonzero(np.diff(log["mjd"]) > 0.5) + 1]
        return log["mjd"][starts], np.diff(np.r_[starts, len(log["mjd"])])

    survey = cadence_log(CadenceConfig(epochs=400, visits_per_night=(2, 5), long_gaps=0.2), np.random.default_rng(18))
    first, visits = nights(survey)
    assert set(visits[:-1]) == {2, 3, 4, 5}  # the last night may be cut by the epoch count
    assert set(nights(plain)[1][:-1]) == {2}
    gaps = np.diff(first)
    plain_gaps = np.diff(nights(plain)[0])
    assert (plain_gaps >= 8).mean() < 0.03  # 1-3 days; only several lost nights in a row make more
    assert 0.1 < (gaps >= 8).mean() < 0.35  # a fifth of the breaks are 5-20 days
    for bad in ({"visits_per_night": 0}, {"visits_per_night": (3, 2)}, {"long_gaps": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            CadenceConfig(**bad)


def test_observation_log_csv_round_trip_and_errors(tmp_path):
    log = cadence_log(CadenceConfig(epochs=10), np.random.default_rng(16))
    write_log_csv(log, tmp_path / "log.csv")
    back = read_log_csv(tmp_path / "log.csv")
    for key in COLUMNS:
        assert np.allclose(back[key], log[key], atol=1e-5)
    (tmp_path / "bad.csv").write_text("mjd,fwhm\n1,2\n")
    with pytest.raises(ValueError, match=r"bad.csv: observation log lacks column\(s\) sky"):
        read_log_csv(tmp_path / "bad.csv")
    # A user log fixes every object's epochs.
    stamps, cond, _ = render_sequence("EB", np.random.default_rng(1), TransientConfig(), back)
    assert np.allclose(cond[:, 0], back["mjd"])


def test_field_frames_headers_and_catalogue(tmp_path):
    from astropy.io import fits

    from skyedge.training.simulate.field import FieldConfig, simulate_field

    cfg = FieldConfig(size=200, objects_per_class=2, transients=TransientConfig(cadence=CadenceConfig(epochs=5)))
    simulate_field(tmp_path, seed=4, cfg=cfg, progress=False)
    frames = sorted((tmp_path / "frames").glob("*.fits"))
    assert len(frames) == 5
    header = fits.getheader(frames[0])
    for key in ("MJD-OBS", "EXPTIME", "FWHM", "SKYLEVEL", "MAGZP", "AIRMASS"):
        assert key in header
    rows = (tmp_path / "catalog.csv").read_text().splitlines()
    assert rows[0] == "id,x,y,class"
    classes = {r.split(",")[3] for r in rows[1:]}
    assert classes == set(TRANSIENT_CLASSES)
    # A non-variable catalogue star shows up at its position with its flux above the sky.
    data = fits.getdata(frames[0])
    for row in rows[1:]:
        oid, x, y, label = row.split(",")
        if label == "nonvariable":
            ix, iy = int(round(float(x))), int(round(float(y)))
            box = data[iy - 5 : iy + 6, ix - 5 : ix + 6] - header["SKYLEVEL"]
            assert box.sum() > 5 * math.sqrt(box.size * (header["SKYLEVEL"] + 49))


@pytest.mark.parametrize("label", ["SN", "nonvariable", "asteroid"])
def test_a_given_log_sets_the_depth_whatever_its_zero_point(label):
    """A survey's log in any zero-point convention (DECam's 31.5, the cadence model's 28) gives the same electrons:
    objects are drawn relative to the log's own limiting magnitude."""
    from pathlib import Path

    log = read_log_csv(Path(__file__).resolve().parents[1] / "configs/obslogs/hits2015.csv")
    shifted = dict(log, zero_point=log["zero_point"] - 3.5)
    a, _, meta_a = render_sequence(label, np.random.default_rng(3), log=log)
    b, _, meta_b = render_sequence(label, np.random.default_rng(3), log=shifted)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    mags = [m for m in ("peak_mag", "mean_mag", "mag") if m in meta_a]
    for key in mags:
        assert meta_a[key] - meta_b[key] == pytest.approx(3.5, abs=1e-6)


@pytest.mark.parametrize("rho", [0.1, 0.25])
def test_correlated_noise_keeps_its_variance_and_reaches_the_asked_correlation(rho):
    """Resampled survey images (HiTS) correlate neighbouring pixels' noise; the simulator can render that."""
    from skyedge.training.simulate.transients import correlated

    noise = correlated(np.random.default_rng(0).normal(0, 3.0, (300, 300)), rho)
    assert noise.std() == pytest.approx(3.0, rel=0.02)
    for a, b in ((noise[:, :-1], noise[:, 1:]), (noise[:-1], noise[1:])):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] == pytest.approx(rho, abs=0.02)
    sky = 500.0
    stamps, _, _ = render_sequence(
        "nonvariable", np.random.default_rng(1), TransientConfig(noise_correlation=(rho, rho)), fixed_log(n=40, sky=sky)
    )
    rows = stamps[:, :2, :].astype(np.float64) - sky  # the border, away from the star
    measured = np.corrcoef(rows[:, :, :-1].ravel(), rows[:, :, 1:].ravel())[0, 1]
    assert measured == pytest.approx(rho, abs=0.04)
