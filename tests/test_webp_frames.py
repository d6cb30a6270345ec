"""Frames a camera program writes as WebP (indi-allsky offers it beside JPEG, PNG and TIFF): read, sized from the
header before decoding, timed and exposed from their EXIF chunk, and picked up by a watched folder."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from skyedge.edge.allsky.capture_time import CaptureClock
from skyedge.edge.config import CaptureTimeSection
from skyedge.edge.config_sources import DirectorySourceSection
from skyedge.edge.sources import RawFrame, create_source
from skyedge.exposure import exposure_seconds
from skyedge.imageio import FrameTooLarge, image_size, read_frame

KINDS = {"lossy": {"quality": 95}, "lossless": {"lossless": True}}


def _sky(h=37, w=53) -> np.ndarray:
    """A colour frame whose left half is red, so a channel swap would show."""
    image = np.zeros((h, w, 3), np.uint8)
    image[:, : w // 2, 0] = 200
    image[:, w // 2 :, 2] = 120
    return image


def _exif(exposure_s: float | None = None, when: str | None = None) -> bytes:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    if exposure_s is not None:
        sub[0x829A] = exposure_s
    if when is not None:
        sub[0x9003] = when
    return exif.tobytes()


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("with_exif", [False, True], ids=["plain", "exif"])
def test_a_webp_frame_is_read_as_rgb_and_sized_from_its_header(tmp_path, kind, with_exif):
    path = tmp_path / f"frame-{kind}.webp"
    extra = {"exif": _exif(30.0)} if with_exif else {}  # with metadata, WebP's extended layout (VP8X) is written
    Image.fromarray(_sky()).save(path, "WEBP", **KINDS[kind], **extra)
    assert image_size(path) == (53, 37)
    image, header = read_frame(path, max_pixels=10_000)
    assert image.shape == (37, 53, 3) and image.dtype == np.uint8 and header == {}
    left, right = image[:, :20].mean((0, 1)), image[:, -20:].mean((0, 1))
    assert left[0] > 150 and left[2] < 30 and right[2] > 90 and right[0] < 30  # RGB, not OpenCV's BGR
    with pytest.raises(FrameTooLarge, match=r"frame-.*\.webp: 53x37 .*source\.max_pixels"):
        read_frame(path, max_pixels=1_000)


def test_a_webp_frames_exif_gives_its_exposure_and_capture_time(tmp_path):
    path = tmp_path / "day.webp"
    Image.fromarray(_sky()).save(path, "WEBP", quality=90, exif=_exif(0.0005, "2026:11:23 21:30:05"))
    assert exposure_seconds(path) == pytest.approx(0.0005)
    got = CaptureClock(CaptureTimeSection(camera_timezone="+01:00"), "cam").of(str(path), {}, 0.0)
    assert got.source == "exif:DateTimeOriginal" and got.posix == 1795469405.0 - 3600  # 21:30:05 at UTC+1
    plain = tmp_path / "plain.webp"
    Image.fromarray(_sky()).save(plain, "WEBP", quality=90)
    assert exposure_seconds(plain) is None
    (tmp_path / "broken.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPVP8 truncated")
    assert exposure_seconds(tmp_path / "broken.webp") is None and image_size(tmp_path / "broken.webp") is None


def test_a_watched_folder_reads_webp_frames_by_default(tmp_path):
    Image.fromarray(_sky()).save(tmp_path / "image-20231201223000.webp", "WEBP", quality=90)
    Image.fromarray(_sky()).save(tmp_path / "image-20231201223100.jpg", quality=90)
    spec = DirectorySourceSection(kind="directory", path=str(tmp_path), settle_s=0, state_file=str(tmp_path / "s.db"))
    source = create_source(spec, once=True, stop_event=threading.Event())
    try:
        frames = [o for o in source if isinstance(o, RawFrame)]
    finally:
        source.close()
    assert sorted(f.frame_id for f in frames) == ["image-20231201223000.webp", "image-20231201223100.jpg"]
    assert all(f.image.shape == (37, 53, 3) for f in frames)
