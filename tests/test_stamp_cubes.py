"""Survey stamp cubes (the HiTS form: a FITS cube of science stamps with an epoch table), read as the simulator's
sequences: stamps in electrons, conditions in its units, what the table lacks measured and said so."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from skyedge.dataset_inputs import RAW_CONDITIONS
from skyedge.shards import DatasetError
from skyedge.training.config import DataSource
from skyedge.training.data.loaders import load_source
from skyedge.training.data.stamp_cubes import read_stamp_cube, read_stamp_cubes

HITS = Path(os.environ.get("SKYEDGE_REALDATA", Path(__file__).resolve().parents[2] / "shared" / "realdata")) / (
    "transients/hits"
)


def _cube(path: Path, *, epochs=5, sky_adu=(100.0, 100.0, 150.0, 220.0, 120.0), gain=4.0, columns=None, rows=None):
    rng = np.random.default_rng(1)
    cube = np.stack([np.full((21, 21), s) + rng.normal(0, 2.0, (21, 21)) for s in sky_adu[:epochs]]).astype(np.float32)
    cube[:, 10, 10] += np.arange(epochs) * 50.0
    mjd = np.array([57070.3, 57070.1, 57071.2, 57072.0, 57073.5])[:epochs]
    table = {
        "MJD": mjd,
        "AIRMASS": np.linspace(1.1, 1.5, epochs),
        "EXPTIME": np.full(epochs, 86.0),
        "SEEING_HDR": np.full(epochs, 3.8),
        "SKYBRITE": np.full(epochs, 111.0),  # one value copied to every epoch, as in the HiTS archive
        "GAIN": np.full(epochs, gain),
    }
    if columns is not None:
        table = {k: v for k, v in table.items() if k in columns}
    n = epochs if rows is None else rows
    hdu = fits.BinTableHDU.from_columns([fits.Column(name=k, format="D", array=v[:n]) for k, v in table.items()])
    hdu.name = "EPOCHS"
    primary = fits.PrimaryHDU(cube)
    primary.header["OBJECT"] = path.name.split(".")[0]
    fits.HDUList([primary, hdu]).writeto(path)
    return cube, mjd


def test_a_cube_is_read_in_electrons_sorted_by_time_with_its_sky_measured(tmp_path):
    cube, mjd = _cube(tmp_path / "obj1.fits")
    seq = read_stamp_cube(tmp_path / "obj1.fits", zero_point=31.5)
    order = np.argsort(mjd)
    assert seq.name == "obj1" and seq.stamps.shape == (5, 21, 21)
    np.testing.assert_allclose(seq.conditions["mjd"], mjd[order])
    np.testing.assert_allclose(seq.stamps, cube[order] * 4.0, rtol=1e-6)
    # The table's sky repeats one value: it is measured from each stamp's border instead, in electrons.
    assert seq.sources["sky"] == "measured"
    np.testing.assert_allclose(seq.conditions["sky"], np.array([100, 100, 150, 220, 120])[order] * 4.0, rtol=0.02)
    assert seq.sources["zero_point"] == "given" and np.all(seq.conditions["zero_point"] == 31.5)
    assert "one value for every epoch" in seq.sources["fwhm"]
    assert set(RAW_CONDITIONS) <= set(seq.conditions)


def test_blank_epochs_are_left_out_and_said(tmp_path):
    cube, mjd = _cube(tmp_path / "gaps.fits")
    with fits.open(tmp_path / "gaps.fits", mode="update") as hdus:
        hdus[0].data[2] = 0.0  # off the chip that night
        hdus[0].data[4, 3, 3] = np.nan
    seq = read_stamp_cube(tmp_path / "gaps.fits")
    assert len(seq.stamps) == 3 and "2 blank epoch(s) left out: [2, 4]" == seq.sources["epochs"]
    np.testing.assert_allclose(seq.conditions["mjd"], np.sort(mjd[[0, 1, 3]]))
    _cube(tmp_path / "full.fits")
    data = load_source(DataSource(kind="stamp_cubes", path=tmp_path, label="SN"), "sequence")
    assert data.meta["length"].tolist() == [5, 3] and data.images.shape == (2, 5, 21, 21)


def test_what_the_table_lacks_is_assumed_and_said(tmp_path):
    _cube(tmp_path / "bare.fits", columns={"MJD"})
    seq = read_stamp_cube(tmp_path / "bare.fits")
    assert seq.sources["airmass"] == "assumed" and seq.sources["gain"].startswith("from the sky's Poisson noise")
    assert seq.sources["zero_point"] == "unknown" and np.all(np.isnan(seq.conditions["zero_point"]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"columns": {"AIRMASS", "GAIN"}}, "lacks an MJD column"),
        ({"rows": 3}, "3 rows for 5 stamps"),
    ],
)
def test_bad_cubes_name_the_file_and_what_is_wrong(tmp_path, kwargs, message):
    _cube(tmp_path / "bad.fits", **kwargs)
    with pytest.raises(ValueError, match=message) as info:
        read_stamp_cube(tmp_path / "bad.fits")
    assert "bad.fits" in str(info.value)


def test_not_a_cube_and_not_fits(tmp_path):
    fits.PrimaryHDU(np.zeros((21, 21), np.float32)).writeto(tmp_path / "flat.fits")
    with pytest.raises(ValueError, match="flat.fits: primary HDU must be"):
        read_stamp_cube(tmp_path / "flat.fits")
    (tmp_path / "junk.fits").write_bytes(b"not fits at all" * 100)
    with pytest.raises(ValueError, match="junk.fits"):
        read_stamp_cube(tmp_path / "junk.fits")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no FITS stamp cubes"):
        read_stamp_cubes([tmp_path / "empty"])


def test_a_folder_of_cubes_trains_as_one_class_or_from_a_label_table(tmp_path):
    for name in ("a", "b", "c"):
        _cube(tmp_path / f"{name}.fits")
    one = load_source(DataSource(kind="stamp_cubes", path=tmp_path, label="SN"), "sequence", ["SN", "bogus"])
    assert one.images.shape == (3, 5, 21, 21) and one.conditions.shape == (3, 5, len(RAW_CONDITIONS))
    assert one.classes == ["SN", "bogus"] and one.labels.tolist() == [0, 0, 0]
    (tmp_path / "labels.csv").write_text("file,label\na.fits,SN\nb.fits,bogus\nc.fits,EB\n")
    table = load_source(
        DataSource(kind="stamp_cubes", path=tmp_path, labels_csv=tmp_path / "labels.csv"), "sequence", ["SN", "bogus"]
    )
    assert table.classes == ["SN", "bogus", "EB"] and table.labels.tolist() == [0, 1, 2]
    (tmp_path / "labels.csv").write_text("file,label\na.fits,SN\n")
    with pytest.raises(DatasetError, match="no label for b.fits"):
        load_source(DataSource(kind="stamp_cubes", path=tmp_path, labels_csv=tmp_path / "labels.csv"), "sequence")
    with pytest.raises(ValueError, match="exactly one of label"):
        DataSource(kind="stamp_cubes", path=tmp_path)


@pytest.mark.skipif(not HITS.is_dir(), reason="real HiTS stamps are kept outside the repository (realdata/transients/hits)")
def test_real_hits_cubes_read_with_a_measured_sky_that_changes():
    sequences = read_stamp_cubes([HITS], zero_point=31.5)
    assert len(sequences) >= 30
    for seq in sequences:
        assert seq.stamps.shape[1:] == (21, 21) and seq.sources["sky"] == "measured"
        assert np.all(np.diff(seq.conditions["mjd"]) >= 0)
        # DECam g-band sky: a few hundred to a few thousand electrons per 86 s pixel.
        assert 100 < np.median(seq.conditions["sky"]) < 5000


@pytest.mark.skipif(not HITS.is_dir(), reason="real HiTS stamps are kept outside the repository (realdata/transients/hits)")
def test_real_hits_transparency_is_measured_on_the_objects_observed_together():
    """HiTS gives no zero points; the objects observed within minutes of each other all dimmed 0.3-0.5 mag on the
    run's cloudy night (epochs 13-15 of the 24-epoch cubes), which the ensemble must find."""
    from skyedge.training.data.survey_epochs import read_survey_stamps

    sequences = [s for s in read_survey_stamps([HITS], zero_point=31.5) if len(s.stamps) == 24]
    measured = [s for s in sequences if s.zero_point_offset is not None]
    assert len(measured) >= 0.9 * len(sequences)
    offsets = np.median(np.stack([s.zero_point_offset for s in measured]), axis=0)
    assert offsets[13:16].max() < -0.2 and np.abs(np.median(offsets)) < 0.1
