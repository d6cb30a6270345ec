"""Real-data loaders on small files the test writes: image folders, OATH tables, FITS stamp sequences."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from astropy.io import fits

from skyedge.imageio import FrameReadError, read_frame
from skyedge.shards import DatasetError
from skyedge.training.data.loaders import load_fits_sequences, load_image_folder, load_oath


def _png(path, value, dtype=np.uint16):
    image = np.full((16, 20), value, dtype=dtype)
    assert cv2.imwrite(str(path), image)


def test_image_folder_by_class(tmp_path):
    for k, name in enumerate(["clear", "cloudy"]):
        (tmp_path / name).mkdir()
        for i in range(3):
            _png(tmp_path / name / f"{i}.png", 1000 * (k + 1) + i)
    fits.PrimaryHDU(np.ones((16, 20), np.float32)).writeto(tmp_path / "cloudy" / "x.fits")
    data = load_image_folder(tmp_path)
    assert data.classes == ["clear", "cloudy"]
    assert data.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert data.images[0].dtype == np.uint16 and data.images[0][0, 0] == 1000  # 16-bit kept
    assert len(data.data_hash) == 64


def test_image_folder_needs_classes(tmp_path):
    with pytest.raises(DatasetError, match="one sub-folder per class"):
        load_image_folder(tmp_path)


def test_oath_style_table(tmp_path):
    (tmp_path / "img").mkdir()
    rows = ["picture,class"]
    for i, label in enumerate(["arc", "clear", "arc"]):
        _png(tmp_path / "img" / f"{i}.png", 10 * i, np.uint8)
        rows.append(f"img/{i}.png,{label}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_oath(tmp_path, tmp_path / "labels.csv", file_column="picture", label_column="class")
    assert data.classes == ["arc", "clear"] and data.labels.tolist() == [0, 1, 0]
    with pytest.raises(DatasetError, match="no column 'file'"):
        load_oath(tmp_path, tmp_path / "labels.csv")
    (tmp_path / "labels.csv").write_text("file,label\nimg/missing.png,arc\n")
    with pytest.raises(DatasetError, match=r"labels.csv:2: image .*missing.png does not exist"):
        load_oath(tmp_path, tmp_path / "labels.csv")


def test_fits_stamp_sequences(tmp_path):
    for name, n_objects in (("SN", 2), ("bogus", 1)):
        for j in range(n_objects):
            folder = tmp_path / name / f"obj{j}"
            folder.mkdir(parents=True)
            for e in range(3 + j):
                hdu = fits.PrimaryHDU(np.full((21, 21), e, np.float32))
                hdu.header.update(
                    {
                        "MJD-OBS": 61000.0 + (3 - e),
                        "FWHM": 3.0,
                        "SKYLEVEL": 100.0,
                        "MAGZP": 28.0,
                        "EXPTIME": 60.0,
                        "AIRMASS": 1.1,
                    }
                )
                hdu.writeto(folder / f"e{e}.fits")
    data = load_fits_sequences(tmp_path)
    assert data.classes == ["SN", "bogus"]
    assert data.images.shape == (3, 4, 21, 21)
    assert data.meta["length"].tolist() == [3, 4, 3]
    # Epochs are sorted by MJD-OBS, whatever the file names.
    assert np.all(np.diff(data.conditions[0, :3, 0]) > 0)
    bad = tmp_path / "SN" / "obj0" / "e0.fits"
    fits.PrimaryHDU(np.zeros((21, 21), np.float32)).writeto(bad, overwrite=True)
    with pytest.raises(DatasetError, match="header lacks MJD-OBS"):
        load_fits_sequences(tmp_path)


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("broken.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 20, "not a decodable JPG"),
        ("noise.fits", b"random bytes, not FITS", "not a readable FITS"),
        ("empty.png", b"", "empty file"),
        ("notes.txt", b"hello", "unsupported file type"),
    ],
)
def test_corrupt_files_name_the_file_and_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FrameReadError, match=reason) as err:
        read_frame(path)
    assert name in str(err.value)


def test_fits_without_image_data(tmp_path):
    fits.HDUList([fits.PrimaryHDU()]).writeto(tmp_path / "header-only.fits")
    with pytest.raises(FrameReadError, match="no image data"):
        read_frame(tmp_path / "header-only.fits")
