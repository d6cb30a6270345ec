"""Each epoch's transparency measured on the other objects of an archive read together (relative photometry), where
the archive gives no zero points: a cloudy night no longer makes a steady source look variable, the object's own
variability is kept, and objects with zero points of their own, or without company, are left as they were."""

from __future__ import annotations

import numpy as np
from astropy.io import fits

from skyedge.model_card import SequenceSpec
from skyedge.preprocess import prepare_sequence
from skyedge.training.data.survey_epochs import read_survey_stamps

SPEC = SequenceSpec(stamp_size=21, max_epochs=24, conditions=["fwhm", "log_sky"], flux_scale="noise", stamp_scaling="linear")
EPOCHS = 8
CLOUD_MAG = 0.5
CLOUDY = (3, 4, 5)  # epochs seen through CLOUD_MAG of cloud by every object


def _object(root, name, rng, flux, start_mjd, minutes_late=0.0, flare_epoch=None, header=None):
    """A folder of per-epoch FITS files (ADU, gain 1): a Gaussian source of ``flux`` electrons on a 400 e sky,
    dimmed by the shared cloud on the CLOUDY epochs, twice as bright on ``flare_epoch``."""
    folder = root / name
    folder.mkdir(parents=True)
    yy, xx = np.mgrid[:21, :21] - 10
    shape = np.exp(-(xx**2 + yy**2) / (2 * 1.6**2)) / (2 * np.pi * 1.6**2)
    for e in range(EPOCHS):
        f = flux * (2.0 if e == flare_epoch else 1.0) * (10 ** (-0.4 * CLOUD_MAG) if e in CLOUDY else 1.0)
        image = rng.poisson(400.0 + f * shape).astype(np.float32)
        mjd = start_mjd + 0.1 * e + minutes_late / 1440.0
        fits.PrimaryHDU(image, header=fits.Header({"MJD-OBS": mjd, "GAIN": 1.0, **(header or {})})).writeto(folder / f"e{e}.fits")
    return folder


def _flux(seq):
    """The prepared stamps' summed flux per epoch, as the model sees it (noise units)."""
    raw = dict(seq.conditions)
    x, _ = prepare_sequence(seq.stamps, raw, SPEC)
    return x.sum(axis=(1, 2, 3))


def _archive(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "objects"
    for k in range(5):  # companions observed within minutes of the targets
        _object(root, f"star{k}", rng, 30000.0, 57070.0, minutes_late=2.0 * k)
    _object(root, "steady", rng, 20000.0, 57070.0, minutes_late=5.0)
    _object(root, "flaring", rng, 20000.0, 57070.0, minutes_late=7.0, flare_epoch=6)
    _object(root, "calibrated", rng, 20000.0, 57070.0, header={"MAGZP": 31.0})
    _object(root, "alone", rng, 20000.0, 57090.0)  # ten days later: no company
    return root


def test_a_cloudy_night_is_measured_on_the_other_objects_and_a_steady_source_stays_steady(tmp_path):
    root = _archive(tmp_path)
    plain = {s.name: s for s in read_survey_stamps([root], "epoch_files", zero_point=31.5, transparency=False)}
    seqs = {s.name: s for s in read_survey_stamps([root], "epoch_files", zero_point=31.5)}
    steady = seqs["steady"]
    cloudy = np.isin(np.arange(EPOCHS), CLOUDY)
    np.testing.assert_allclose(steady.zero_point_offset[cloudy], -CLOUD_MAG, atol=0.1)  # 2% photometry per epoch
    np.testing.assert_allclose(steady.zero_point_offset[~cloudy], 0.0, atol=0.1)
    assert "transparency from 7 other objects" in steady.sources["zero_point"]
    before, after = _flux(plain["steady"]), _flux(steady)
    assert before[cloudy].mean() < 0.75 * before[~cloudy].mean()  # the cloud looked like the source fading
    np.testing.assert_allclose(after[cloudy].mean(), after[~cloudy].mean(), rtol=0.08)


def test_the_objects_own_variability_is_kept_and_others_are_left_alone(tmp_path):
    root = _archive(tmp_path)
    seqs = {s.name: s for s in read_survey_stamps([root], "epoch_files", zero_point=31.5)}
    flux = _flux(seqs["flaring"])
    quiet = np.delete(flux, 6)
    assert flux[6] > 1.8 * np.median(quiet)  # its own flare never enters its own zero point
    assert abs(seqs["flaring"].zero_point_offset[6]) < 0.1
    for name in ("calibrated", "alone"):  # zero points of its own; nobody observed at its times
        assert seqs[name].zero_point_offset is None
    assert seqs["calibrated"].sources["zero_point"].startswith("header")
    np.testing.assert_allclose(seqs["alone"].conditions["zero_point"], 31.5)
    assert "transparency" not in seqs["alone"].sources["zero_point"]
