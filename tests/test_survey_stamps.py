"""Real survey stamps in the forms archives give besides cubes: a folder of per-epoch FITS files (science stamps, or
science/reference/difference triplets) and ZTF alert packets (Avro, gzipped FITS cutouts), read as the
simulator's sequences, cut to the model's stamp size, with what was measured or assumed said."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest
from astropy.io import fits

from skyedge.dataset_inputs import RAW_CONDITIONS
from skyedge.model_card import SequenceSpec
from skyedge.preprocess import prepare_sequence
from skyedge.shards import DatasetError
from skyedge.training.config import DataSource
from skyedge.training.data.loaders import load_source
from skyedge.training.data.stamp_files import read_epoch_folder, read_epoch_folders
from skyedge.training.data.survey_epochs import read_survey_stamps
from skyedge.training.data.ztf_alerts import read_ztf_alerts

fastavro = pytest.importorskip("fastavro", reason="ZTF alert packets need fastavro (the train extra)")

SPEC = SequenceSpec(stamp_size=21, max_epochs=24, conditions=["fwhm", "log_sky"], flux_scale="noise")


def _stamp(rng, size, sky, gain, flux):
    """A stamp in ADU: a Gaussian source of ``flux`` electrons at the centre on a Poisson sky of ``sky`` electrons
    (0 sky: background-subtracted, the noise of a 400 e sky kept)."""
    yy, xx = np.mgrid[:size, :size] - size // 2
    source = flux * np.exp(-(xx**2 + yy**2) / (2 * 1.5**2)) / (2 * np.pi * 1.5**2)
    noise = rng.normal(0, np.sqrt(max(sky, 400.0)), (size, size))
    return ((sky + source + noise) / gain).astype(np.float32)


def _fits_bytes(image, **header) -> bytes:
    hdu = fits.PrimaryHDU(image)
    for k, v in header.items():
        hdu.header[k] = v
    buf = io.BytesIO()
    hdu.writeto(buf)
    return buf.getvalue()


def test_per_epoch_files_read_in_electrons_sorted_with_iso_times(tmp_path):
    rng = np.random.default_rng(0)
    obj = tmp_path / "SN2015a"
    obj.mkdir()
    times = ["2015-02-19T03:00:00", "2015-02-17T03:00:00", "2015-02-18T03:00:00"]
    for i, t in enumerate(times):
        image = _stamp(rng, 21, 800.0, 4.0, 5000.0 * (i + 1))
        fits.PrimaryHDU(image, header=fits.Header({"DATE-OBS": t, "EXPTIME": 86.0, "AIRMASS": 1.2, "GAIN": 4.0})).writeto(obj / f"epoch{i}.fits")
    seq = read_epoch_folder(obj, zero_point=31.5)
    assert seq.name == "SN2015a" and seq.stamps.shape == (3, 21, 21) and seq.reference is None
    np.testing.assert_allclose(seq.conditions["mjd"], [57070.125, 57071.125, 57072.125])
    assert seq.sources["mjd"] == "header:DATE-OBS" and seq.sources["gain"] == "header:GAIN"
    assert seq.sources["sky"] == "measured" and seq.sources["fwhm"] == "assumed"
    np.testing.assert_allclose(seq.conditions["sky"], 800.0, rtol=0.1)  # electrons: ADU x gain
    peaks = seq.stamps[:, 10, 10]  # in time order: the files' 10000, 15000 and 5000 e sources
    assert peaks[2] < peaks[0] < peaks[1]
    assert set(RAW_CONDITIONS) <= set(seq.conditions)


def test_triplets_are_cut_to_the_model_size_and_keep_reference_and_difference(tmp_path):
    rng = np.random.default_rng(1)
    obj = tmp_path / "objects" / "ZTF21aaa"
    obj.mkdir(parents=True)
    for i in range(4):
        sci = _stamp(rng, 63, 600.0, 1.0, 800.0 * i)
        ref = _stamp(rng, 63, 600.0, 1.0, 0.0)
        fits.PrimaryHDU(sci, header=fits.Header({"MJD-OBS": 59000.0 + i, "FWHM": 2.0 + i / 10})).writeto(obj / f"e{i:02d}_science.fits")
        fits.PrimaryHDU(ref).writeto(obj / f"e{i:02d}_template.fits")
        fits.PrimaryHDU(sci - ref).writeto(obj / f"e{i:02d}_difference.fits")
    (seq,) = read_epoch_folders([tmp_path / "objects"], stamp_size=21)
    assert seq.stamps.shape == seq.reference.shape == seq.difference.shape == (4, 21, 21)
    # No gain in the headers: the sky's Poisson noise gives it (the stamps were made at 1 e-/ADU).
    assert seq.sources["fwhm"] == "header:FWHM" and seq.sources["gain"].startswith("from the sky's Poisson noise")
    np.testing.assert_allclose(seq.conditions["sky"], 600.0, rtol=0.25)
    assert seq.difference[3, 10, 10] > 5 * seq.difference[0, 10, 10] + 50  # the centre of 63 is the centre of 21
    (obj / "e03_difference.fits").unlink()
    with pytest.raises(ValueError, match="epoch 'e03' has no difference stamp"):
        read_epoch_folder(obj, stamp_size=21)
    with pytest.raises(ValueError, match="smaller than the 99 px"):
        read_epoch_folder(tmp_path / "objects" / "ZTF21aaa", stamp_size=99)


def _alert_schema():
    cutout = {"type": "record", "name": "cutout", "fields": [
        {"name": "fileName", "type": "string"}, {"name": "stampData", "type": "bytes"}]}
    candidate = {"type": "record", "name": "candidate", "fields": [
        {"name": "jd", "type": "double"}, {"name": "fid", "type": "int"},
        {"name": "magzpsci", "type": ["null", "float"], "default": None},
        {"name": "exptime", "type": ["null", "float"], "default": None},
        {"name": "fwhm", "type": ["null", "float"], "default": None}]}
    return fastavro.parse_schema({"type": "record", "name": "alert", "namespace": "ztf", "fields": [
        {"name": "schemavsn", "type": "string"}, {"name": "objectId", "type": "string"},
        {"name": "candid", "type": "long"}, {"name": "candidate", "type": candidate},
        {"name": "cutoutScience", "type": ["null", cutout]}, {"name": "cutoutTemplate", "type": ["null", "ztf.cutout"]},
        {"name": "cutoutDifference", "type": ["null", "ztf.cutout"]}]})  # fmt: skip


def _alert(rng, object_id, candid, jd, fid, flux, sky=0.0):
    sci = _stamp(rng, 63, sky, 1.0, flux)
    ref = _stamp(rng, 63, sky, 1.0, 0.0)
    def cut(image):
        return {"fileName": f"candid{candid}.fits.gz", "stampData": gzip.compress(_fits_bytes(image))}
    return {
        "schemavsn": "3.3", "objectId": object_id, "candid": candid,
        "candidate": {"jd": jd, "fid": fid, "magzpsci": 26.3, "exptime": 30.0, "fwhm": 2.2},
        "cutoutScience": cut(sci), "cutoutTemplate": cut(ref), "cutoutDifference": cut(sci - ref),
    }  # fmt: skip


def test_ztf_alerts_group_by_object_keep_one_band_and_measure_the_noise(tmp_path):
    rng = np.random.default_rng(2)
    jd0 = 2459000.5
    first = [_alert(rng, "ZTF21abc", 10 + i, jd0 + 3 - i, 2, 2000.0 * (3 - i)) for i in range(3)]
    first.append(_alert(rng, "ZTF21abc", 20, jd0 + 0.1, 1, 1000.0))  # one g-band epoch beside three in r
    second = [_alert(rng, "ZTF21xyz", 30 + i, jd0 + i, 1, 0.0) for i in range(2)]
    schema = _alert_schema()
    (tmp_path / "night1").mkdir()
    with open(tmp_path / "night1" / "a.avro", "wb") as fh:
        fastavro.writer(fh, schema, first[:2] + second)
    with open(tmp_path / "b.avro", "wb") as fh:
        fastavro.writer(fh, schema, first[2:])
    seqs = read_ztf_alerts([tmp_path], stamp_size=21)
    assert [s.name for s in seqs] == ["ZTF21abc", "ZTF21xyz"]
    abc = seqs[0]
    assert abc.stamps.shape == abc.reference.shape == (3, 21, 21)
    assert abc.sources["band"] == "r; other bands left out: g (1)"
    np.testing.assert_allclose(abc.conditions["mjd"], jd0 - 2400000.5 + np.array([1, 2, 3]))
    assert abc.sources["zero_point"] == "alert:magzpsci (for DN)" and np.allclose(abc.conditions["zero_point"], 26.3)
    # Background-subtracted cutouts without a gain: the sky is the measured noise's Poisson equivalent (400).
    assert abc.sources["sky"].startswith("from the stamps' noise")
    np.testing.assert_allclose(abc.conditions["sky"], 400.0, rtol=0.35)
    assert abc.sources["airmass"] == "assumed"
    data = load_source(DataSource(kind="ztf_alerts", path=tmp_path, label="SN", stamp_size=21), "sequence")
    assert data.images.shape == (2, 3, 21, 21) and data.meta["length"].tolist() == [3, 2]
    (tmp_path / "labels.csv").write_text("file,label\nZTF21abc,SN\nZTF21xyz,bogus\n")
    table = load_source(DataSource(kind="ztf_alerts", path=tmp_path, labels_csv=tmp_path / "labels.csv", stamp_size=21), "sequence")
    assert table.classes == ["SN", "bogus"] and table.labels.tolist() == [0, 1]
    with pytest.raises(DatasetError, match="cutouts of different sizes|smaller than"):
        load_source(DataSource(kind="ztf_alerts", path=tmp_path, label="SN", stamp_size=99), "sequence")


def test_the_flux_in_noise_units_does_not_depend_on_how_the_archive_gave_the_sky(tmp_path):
    """The same object as ADU with the gain given, as ADU without it, and as background-subtracted ADU without it:
    a noise-scaled model sees the same stamps (to the noise estimate's precision)."""
    rng = np.random.default_rng(3)
    sky, gain = 900.0, 3.0
    forms = {name: tmp_path / name / "obj" for name in ("given", "raw", "subtracted")}
    for folder in forms.values():
        folder.mkdir(parents=True)
    for i in range(3):
        adu = _stamp(rng, 21, sky, gain, 3000.0 * (i + 1))
        fits.PrimaryHDU(adu, header=fits.Header({"MJD-OBS": 57000.0 + i, "GAIN": gain})).writeto(forms["given"] / f"{i}.fits")
        fits.PrimaryHDU(adu, header=fits.Header({"MJD-OBS": 57000.0 + i})).writeto(forms["raw"] / f"{i}.fits")
        fits.PrimaryHDU(adu - sky / gain, header=fits.Header({"MJD-OBS": 57000.0 + i})).writeto(forms["subtracted"] / f"{i}.fits")
    seqs = {name: read_survey_stamps([f], "epoch_files", zero_point=30.0)[0] for name, f in forms.items()}
    assert seqs["given"].sources["sky"] == "measured" and seqs["given"].sources["gain"] == "header:GAIN"
    assert seqs["raw"].sources["gain"].startswith("from the sky's Poisson noise")
    np.testing.assert_allclose(seqs["raw"].conditions["sky"], sky, rtol=0.3)  # electrons again, via the gain found
    assert seqs["subtracted"].sources["sky"].startswith("from the stamps' noise")
    peaks = {name: prepare_sequence(s.stamps, s.conditions, SPEC)[0][:, 0, 10, 10] for name, s in seqs.items()}
    np.testing.assert_allclose(peaks["raw"], peaks["given"], rtol=0.25)
    np.testing.assert_allclose(peaks["subtracted"], peaks["given"], rtol=0.25)
    assert np.all(np.diff(peaks["given"]) > 0)


def test_an_unknown_form_and_an_empty_folder_say_so(tmp_path):
    with pytest.raises(ValueError, match="unknown stamp form 'jpeg'"):
        read_survey_stamps([tmp_path], "jpeg")
    with pytest.raises(FileNotFoundError, match=r"no ZTF alert packets \(\*\.avro\)"):
        read_ztf_alerts([tmp_path])
    (tmp_path / "junk.avro").write_bytes(b"not avro" * 10)
    with pytest.raises(ValueError, match="junk.avro: not an Avro alert file"):
        read_ztf_alerts([tmp_path])
    empty = tmp_path / "obj"
    empty.mkdir()
    with pytest.raises(ValueError, match="obj: no FITS stamps"):
        read_epoch_folder(empty)
    with pytest.raises(ValueError, match="exactly one of label"):
        DataSource(kind="stamp_epochs", path=tmp_path)
