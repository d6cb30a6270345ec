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


def test_the_daylight_rule():
    assert is_daylight_exposure(0.0002) and not is_daylight_exposure(DAY_MAX_EXPOSURE_S)
    assert not is_daylight_exposure(0.04)  # a 25 fps video frame of the night sky
    assert not is_daylight_exposure(None) and not is_daylight_exposure(0.0002, None)  # unknown, or switched off
