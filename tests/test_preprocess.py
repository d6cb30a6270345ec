"""Shared preprocessing (training and edge): stretch, mask, debayer, sequence calibration."""

from __future__ import annotations

import numpy as np
import pytest
from cards import frame_card, sequence_card

from skyedge.model_card import ModelCard, Stretch
from skyedge.preprocess import PreprocessError, apply_stretch, condition_features, prepare_frame, prepare_sequence


def test_frame_is_resized_stretched_masked_and_normalised():
    card = ModelCard.model_validate(frame_card())
    image = np.random.default_rng(0).integers(0, 60000, (128, 128)).astype(np.uint16)
    x = prepare_frame(image, card.preprocess)
    assert x.shape == (1, 64, 64) and x.dtype == np.float32
    corner = x[0, 0, 0] * card.preprocess.std[0] + card.preprocess.mean[0]
    assert corner == pytest.approx(0.0, abs=1e-6)  # outside the horizon circle


def test_sixteen_bit_range_survives_until_the_stretch():
    stretch = Stretch(kind="percentile", low_percentile=0, high_percentile=100)
    x = np.array([[1000.0, 1001.0], [60000.0, 30000.0]])
    out = apply_stretch(x, stretch)
    assert out[0, 1] > out[0, 0]  # one ADU apart still differs: nothing was quantised to 8 bits first
    assert out.max() == 1.0 and out.min() == 0.0


def test_rgb_and_bayer_inputs():
    card = ModelCard.model_validate(frame_card())
    mosaic = np.random.default_rng(1).integers(0, 4000, (64, 64)).astype(np.uint16)
    assert prepare_frame(mosaic, card.preprocess, bayer="RGGB").shape == (1, 64, 64)
    rgb = np.random.default_rng(2).integers(0, 255, (80, 80, 3)).astype(np.uint8)
    assert prepare_frame(rgb, card.preprocess).shape == (1, 64, 64)
    with pytest.raises(PreprocessError, match="Bayer pattern"):
        prepare_frame(mosaic, card.preprocess, bayer="XYZW")
    with pytest.raises(PreprocessError, match="shape"):
        prepare_frame(np.zeros((4, 4, 5)), card.preprocess)
    with pytest.raises(PreprocessError, match="no finite"):
        prepare_frame(np.full((8, 8), np.nan, np.float32), card.preprocess)


def test_dark_and_flat():
    card = ModelCard.model_validate(frame_card())
    image = np.full((64, 64), 500.0, np.float32)
    image[:, 32:] = 900.0
    dark = np.full((64, 64), 100.0, np.float32)
    flat = np.ones((64, 64), np.float32)
    flat[:, 32:] = 2.0  # the right half sees twice the light
    corrected = prepare_frame(image, card.preprocess, dark=dark, flat=flat)
    left, right = corrected[0, 32, 20], corrected[0, 32, 44]
    # (500-100)/ (1/1.5) and (900-100)/(2/1.5) are equal: a flat field removes the pattern.
    assert left == pytest.approx(right, abs=1e-4)
    with pytest.raises(PreprocessError, match="dark frame shape"):
        prepare_frame(image, card.preprocess, dark=np.zeros((10, 10)))


def test_sequence_calibration_makes_a_constant_star_constant():
    card = ModelCard.model_validate(sequence_card())
    spec = card.sequence
    t, s = 5, spec.stamp_size
    zp = np.array([28.0, 27.5, 28.2, 27.0, 28.0])
    flux_at_zp25 = 50.0
    stamps = np.full((t, s, s), 100.0, np.float32)
    for e in range(t):
        stamps[e, 10, 10] += flux_at_zp25 * 10 ** (0.4 * (zp[e] - 25.0))
    raw = {
        "mjd": np.arange(t, dtype=float),
        "fwhm": np.full(t, 3.0),
        "sky": np.full(t, 100.0),
        "zero_point": zp,
        "exptime": np.full(t, 60.0),
        "airmass": np.full(t, 1.1),
    }
    x, c = prepare_sequence(stamps, raw, spec)
    assert x.shape == (t, 1, s, s) and c.shape == (t, 4)
    assert np.allclose(x[:, 0, 10, 10], np.arcsinh(flux_at_zp25 / spec.asinh_softening), rtol=1e-4)
    feats = condition_features(raw, ["log_dt", "log_sky"])
    assert feats[0, 0] == 0.0 and feats[1, 0] == pytest.approx(np.log1p(24.0))
    with pytest.raises(PreprocessError, match="unknown condition feature"):
        condition_features(raw, ["humidity"])
    with pytest.raises(PreprocessError, match="expected stamps"):
        prepare_sequence(np.zeros((3, 5, 5)), raw, spec)


def test_linear_stamp_scaling_keeps_flux_independent_of_seeing():
    from skyedge.training.simulate.psf import gaussian_stamp

    card = ModelCard.model_validate(sequence_card())
    spec = card.sequence.model_copy(update={"stamp_scaling": "linear", "asinh_softening": 10.0})
    s = spec.stamp_size
    stamps = np.stack([100.0 + 5000.0 * gaussian_stamp(s, 10, 10, fwhm) for fwhm in (2.5, 4.0, 6.0)]).astype(np.float32)
    raw = {
        "mjd": np.arange(3.0),
        "fwhm": np.array([2.5, 4.0, 6.0]),
        "sky": np.full(3, 100.0),
        "zero_point": np.full(3, 25.0),
        "exptime": np.full(3, 60.0),
        "airmass": np.full(3, 1.0),
    }
    x, _ = prepare_sequence(stamps, raw, spec)
    # The median background estimate is slightly biased by the wings; the sum is still constant to ~2%.
    sums = x[:, 0].sum(axis=(1, 2)) * spec.asinh_softening
    assert np.ptp(sums) / sums.mean() < 0.05
    asinh, _ = prepare_sequence(stamps, raw, card.sequence)
    assert np.ptp(asinh[:, 0].sum(axis=(1, 2))) / asinh[:, 0].sum(axis=(1, 2)).mean() > 0.2  # why linear exists


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_fast_fits_reader_equals_astropy(tmp_path, dtype):
    """The edge's direct FITS path must read exactly what astropy reads (data, scaling and header values)."""
    from astropy.io import fits

    from skyedge.imageio import _read_fits_astropy, read_frame

    rng = np.random.default_rng(1)
    data = (rng.random((37, 53)) * (200 if dtype == np.uint8 else 60000)).astype(dtype)
    hdu = fits.PrimaryHDU(data)
    hdu.header["OBJECT"] = ("it''s a 'test'", "quoted")
    hdu.header["EXPTIME"] = 12.5
    hdu.header["FLAG"] = True
    path = tmp_path / "x.fits"
    hdu.writeto(path)
    fast, header = read_frame(path)
    slow, slow_header = _read_fits_astropy(path)
    np.testing.assert_array_equal(fast, slow)
    for key in ("OBJECT", "EXPTIME", "FLAG", "BITPIX"):
        assert header[key] == slow_header[key], key


def _star_sequence(zero_point: float, gain: float = 1.0):
    """Four epochs of a star on a sky, in ADU at ``gain`` (e-/ADU), with the conditions an archive would give."""
    from skyedge.training.simulate.psf import gaussian_stamp

    rng = np.random.default_rng(4)
    electrons = np.stack([400.0 + 3000.0 * f * gaussian_stamp(21, 10, 10, 3.5) for f in (1.0, 1.0, 2.0, 0.5)])
    electrons = rng.poisson(electrons).astype(np.float32)
    raw = {
        "mjd": np.arange(4.0),
        "fwhm": np.full(4, 3.5),
        "sky": np.full(4, 400.0) / gain,
        "noise": np.full(4, 20.0) / gain,
        "zero_point": np.full(4, zero_point),
        "exptime": np.full(4, 86.0),
        "airmass": np.full(4, 1.2),
    }
    return electrons / gain, raw


def test_noise_flux_scale_does_not_hinge_on_the_zero_point_or_the_gain():
    card = ModelCard.model_validate(sequence_card())
    noise_spec = card.sequence.model_copy(
        update={"flux_scale": "noise", "conditions": ["airmass"], "conditions_mean": [1.0], "conditions_std": [1.0]}
    )
    base, _ = prepare_sequence(*_star_sequence(31.5), noise_spec)
    for zp, gain in ((30.5, 1.0), (32.5, 1.0), (31.5, 4.0)):
        x, _ = prepare_sequence(*_star_sequence(zp, gain), noise_spec)
        np.testing.assert_allclose(x, base, atol=1e-4)
    # The brighter epoch stays brighter: only a common scale went.
    assert base[2, 0, 10, 10] > base[0, 0, 10, 10] > base[3, 0, 10, 10]
    # The zero-point scaling is what the noise scaling replaces: a magnitude off changes its stamps.
    zp_spec = noise_spec.model_copy(update={"flux_scale": "zero_point"})
    a, _ = prepare_sequence(*_star_sequence(31.5), zp_spec)
    b, _ = prepare_sequence(*_star_sequence(30.5), zp_spec)
    assert a[2, 0, 10, 10] / b[2, 0, 10, 10] < 0.7  # 2.5x fainter, less a little asinh compression


def test_noise_flux_scale_takes_the_sky_noise_when_none_is_measured_and_refuses_a_bad_one():
    from skyedge.preprocess import prepare_stamps

    card = ModelCard.model_validate(sequence_card())
    spec = card.sequence.model_copy(
        update={"flux_scale": "noise", "conditions": ["airmass"], "conditions_mean": [1.0], "conditions_std": [1.0]}
    )
    spec = spec.model_copy(update={"asinh_softening": 1.0, "stamp_scaling": "linear"})
    stamps, raw = _star_sequence(31.5)
    raw.pop("noise")
    x, _ = prepare_sequence(stamps, raw, spec)
    border = np.ones((21, 21), dtype=bool)
    border[2:-2, 2:-2] = False
    expected = (stamps[:, 10, 10] - np.median(stamps[:, border], axis=1)) / 20.0  # sqrt(400 e of sky)
    np.testing.assert_allclose(x[:, 0, 10, 10], expected, rtol=1e-4)
    with pytest.raises(PreprocessError, match="reference epoch's noise"):
        prepare_stamps(stamps, 31.5, spec)
    with pytest.raises(PreprocessError, match="positive"):
        prepare_stamps(stamps, 31.5, spec, reference=(31.5, 0.0))
