"""The exposure a frame's file records, and the daylight rule built on it."""

from __future__ import annotations

import numpy as np
import pytest

from skyedge.exposure import DAY_MAX_EXPOSURE_S, exposure_seconds, is_daylight_exposure
from skyedge.imageio import read_frame
from skyedge.training.simulate.frame_files import write_frame


@pytest.mark.parametrize("fmt", ["jpg", "tiff", "fits"])
@pytest.mark.parametrize("seconds", [0.000125, 2.5, 30.0])
def test_the_written_exposure_is_read_back(tmp_path, fmt, seconds):
    image = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    path = write_frame(tmp_path / "f", image, fmt, {"EXPTIME": seconds})
    header = read_frame(path)[1] if fmt == "fits" else {}
    assert exposure_seconds(path, header) == pytest.approx(seconds, rel=1e-6)
    assert np.asarray(read_frame(path)[0]).shape[:2] == (48, 64)  # the tag does not disturb decoding


def test_no_exposure_is_none_never_a_guess(tmp_path):
    plain = write_frame(tmp_path / "plain", np.zeros((8, 8), np.uint8), "jpg")
    assert exposure_seconds(plain) is None
    assert exposure_seconds(write_frame(tmp_path / "p", np.zeros((8, 8), np.uint8), "png", {"EXPTIME": 1.0})) is None
    assert exposure_seconds(tmp_path / "missing.jpg") is None  # vanished or a device: no metadata
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert exposure_seconds(tmp_path / "broken.jpg") is None
    for bad in (0, -1, "n/a", float("nan"), None):
        assert exposure_seconds(tmp_path / "x.fits", {"EXPTIME": bad}) is None
    assert exposure_seconds(tmp_path / "x.fits", {"EXPOSURE": "15"}) == 15.0


def _png_with_exif(path, exif_bytes: bytes, after_image_data: bool = False):
    """A 16-bit mono PNG whose eXIf chunk Pillow writes before the image data, or moved behind it."""
    import struct
    import zlib

    from PIL import Image

    Image.fromarray(np.full((32, 48), 4000, np.uint16)).save(path, exif=exif_bytes)
    if after_image_data:  # some writers append metadata after IDAT; the spec asks for it before
        data = path.read_bytes()
        chunks, pos = [], 8
        while pos < len(data):
            length = struct.unpack(">I", data[pos : pos + 4])[0]
            chunks.append(data[pos : pos + 12 + length])
            pos += 12 + length
        exif = [c for c in chunks if c[4:8] == b"eXIf"]
        rest = [c for c in chunks if c[4:8] != b"eXIf"]
        assert exif and zlib.crc32(exif[0][4:-4]) == struct.unpack(">I", exif[0][-4:])[0]
        path.write_bytes(data[:8] + b"".join(rest[:-1] + exif + rest[-1:]))  # just before IEND
    return path


def test_a_png_frame_carries_its_exposure_in_an_exif_chunk(tmp_path):
    """PNG frames (a 16-bit mono camera's) carry EXIF in an eXIf chunk, read from the header alone."""
    from PIL import Image

    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x829A] = 0.0005  # a daylight exposure
    path = _png_with_exif(tmp_path / "day.png", exif.tobytes())
    assert exposure_seconds(path) == pytest.approx(0.0005)
    assert read_frame(path)[0].dtype == np.uint16  # the chunk does not disturb decoding
    # Behind the image data (some writers append it there): found near the end of the file, not by decoding.
    late = _png_with_exif(tmp_path / "late.png", exif.tobytes(), after_image_data=True)
    assert exposure_seconds(late) == pytest.approx(0.0005)
    data = bytearray(late.read_bytes())
    crc_at = data.rindex(b"IEND") - 4 - 4  # the eXIf chunk's CRC, just before IEND's length and name
    data[crc_at] ^= 0xFF
    (tmp_path / "damaged.png").write_bytes(bytes(data))
    assert exposure_seconds(tmp_path / "damaged.png") is None  # a chunk whose CRC fails is not believed
    # A PNG without EXIF, a garbled chunk, and a PNG that is no PNG: no exposure, never an error.
    assert exposure_seconds(write_frame(tmp_path / "plain", np.zeros((8, 8), np.uint8), "png")) is None
    assert exposure_seconds(_png_with_exif(tmp_path / "garbled.png", b"Exif\x00\x00not a tiff")) is None
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    assert exposure_seconds(tmp_path / "broken.png") is None


def test_the_daylight_rule():
    assert is_daylight_exposure(0.0002) and not is_daylight_exposure(DAY_MAX_EXPOSURE_S)
    assert not is_daylight_exposure(0.04)  # a 25 fps video frame of the night sky
    assert not is_daylight_exposure(None) and not is_daylight_exposure(0.0002, None)  # unknown, or switched off
