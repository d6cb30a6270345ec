"""Input sanity: frames that are no night sky (capped lens, saturated, constant, noise, daylight) never get a sky class.

The checks are tried on many random instances of each kind of bad frame as every simulated camera writes them,
on synthetic frames of other sizes and types, and on valid skies of every class and camera, which must pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from skyedge.sanity import REASONS, frame_problem
from skyedge.training.simulate.allsky import CLASSES, render_allsky, render_invalid
from skyedge.training.simulate.profiles import PROFILES, profile_config

BAD_KINDS = ("blank", "saturated", "constant", "noise")


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_frames_of_every_camera_are_caught(kind):
    for p, name in enumerate(sorted(PROFILES)):
        rng = np.random.default_rng(100 + p)
        for _ in range(25):
            image, _ = render_invalid(kind, rng, profile_config(name))
            problem = frame_problem(image)
            assert problem is not None, (name, kind)
            assert problem.reason in REASONS and problem.detail


@pytest.mark.parametrize("fmt", ["jpg", "png", "fits"])
def test_a_capped_lens_is_caught_as_each_camera_writes_its_files(tmp_path, fmt):
    """Read back from the file, as the edge sees it: a JPEG encoder smooths a capped lens's noise until most
    neighbouring pixels are equal, which once read as a frame of infinite structure (6 in 40 passed as skies)."""
    from skyedge.imageio import read_frame
    from skyedge.training.simulate.frame_files import write_frame

    for name in sorted(PROFILES):
        cfg = profile_config(name)
        for s in range(40):
            image, _ = render_invalid("blank", np.random.default_rng(1000 + s), cfg)
            frame = read_frame(write_frame(tmp_path / f"{name}-{s}", image, fmt))[0]
            problem = frame_problem(np.asarray(frame))
            assert problem is not None and problem.reason in ("structureless", "constant"), (name, s, problem)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("shape", [(48, 64), (600, 800, 3), (1520, 2028)])
def test_bad_frames_of_any_size_and_type_are_caught(dtype, shape):
    rng = np.random.default_rng(7)
    top = float(np.iinfo(dtype).max) if dtype != np.float32 else 1.0
    frames = {
        "black": np.zeros(shape, dtype),
        "constant": np.full(shape, top * 0.37, dtype=dtype),
        "white": np.full(shape, top, dtype=dtype),
        "noise": (rng.uniform(0, top, shape)).astype(dtype),
        "capped lens": np.clip(rng.normal(0.05 * top, 0.002 * top + 1.0, shape), 0, top).astype(dtype),
    }
    for what, image in frames.items():
        assert frame_problem(image) is not None, what


def test_saturation_counts_in_the_middle_even_with_dark_corners():
    # A fixed exposure in daylight: the sky circle at the full well (below the converter's top), corners dark.
    yy, xx = np.mgrid[0:120, 0:160]
    image = np.where(np.hypot(xx - 80, yy - 60) < 58, 20100, 100).astype(np.uint16)
    assert frame_problem(image).reason == "saturated"


def test_nan_outside_the_circle_and_masks_are_not_sky():
    rng = np.random.default_rng(3)
    image = np.full((96, 96), np.nan, np.float32)
    yy, xx = np.mgrid[0:96, 0:96]
    inside = np.hypot(xx - 48, yy - 48) < 44
    image[inside] = rng.normal(500, 3, inside.sum())  # a capped lens, NaN outside
    assert frame_problem(image).reason == "structureless"
    sky, _ = render_allsky("clear", rng, profile_config("nan-fits-float"))
    assert frame_problem(sky) is None
    assert frame_problem(sky, np.zeros(sky.shape, bool)).reason == "constant"  # everything masked: no sky


@pytest.mark.slow  # renders 480 frames through eight cameras (about 10 s)
def test_valid_skies_of_every_class_and_camera_pass():
    flagged = []
    for p, name in enumerate(sorted(PROFILES)):
        rng = np.random.default_rng(200 + p)
        cfg = profile_config(name)
        for i in range(60):
            image, _ = render_allsky(CLASSES[i % len(CLASSES)], rng, cfg)
            problem = frame_problem(image)
            if problem is None:
                continue
            # The only acceptable failure is a frame that really is saturated (a moon on an 8-bit fixed exposure).
            h, w = image.shape[:2]
            middle = image[h // 4 : h - h // 4, w // 4 : w - w // 4].astype(float)
            middle = middle if middle.ndim == 2 else middle.mean(axis=2)
            truly = np.mean(middle >= np.nanmax(middle)) > 0.5
            flagged.append((name, CLASSES[i % len(CLASSES)], problem.reason, truly))
    assert all(reason == "saturated" and truly for _, _, reason, truly in flagged), flagged
    assert len(flagged) <= 4, flagged


# ---------------------------------------------------------------- end to end (needs the tiny package)


@pytest.mark.parametrize(
    "fmt, name", [("fits", "dark-site-mono"), ("jpg", "suburban-colour-jpeg"), ("png", "rpi-fisheye-jpeg")]
)
def test_the_daemon_never_gives_a_sky_class_to_bad_frames(stub_frame_package, tmp_path, fmt, name):
    """`skyedge run` on bad frames as one camera writes them, after good ones: each is 'unrecognised' with the
    reason, counted, and the sky is unsafe; the good frames still reach the model."""
    import os

    from edge_helpers import classify_folder, messages

    from skyedge.training.simulate.frame_files import write_frame

    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    rng = np.random.default_rng(11)
    cfg = profile_config(name)
    files: dict[str, str | None] = {}
    for k in range(4):
        files[write_frame(incoming / f"a-good-{k}", render_allsky(CLASSES[k], rng, cfg)[0], fmt).name] = None
    for kind in BAD_KINDS:
        for j in range(4):
            files[write_frame(incoming / f"b-{kind}-{j}", render_invalid(kind, rng, cfg)[0], fmt).name] = kind
    for n, file in enumerate(files):  # arrival order: the good frames first
        os.utime(incoming / file, (1_795_000_000 + n, 1_795_000_000 + n))
    got = classify_folder(tmp_path, stub_frame_package, incoming, log)
    assert set(got) == set(files)
    for file, kind in files.items():
        m = got[file]
        if kind is None:
            assert "invalid" not in m and m["distance"] is not None, file  # the model saw it
            continue
        assert m["class"] == "unrecognised" and m["unknown"] is True, (file, m["class"])
        assert m["invalid"]["reason"] in REASONS and m["invalid"]["detail"], file
        assert m["probabilities"] == {"unrecognised": 1.0}
    counts = messages(log, "metrics")[-1]["counts"]
    assert sum(v for key, v in counts.items() if key.startswith("invalid_")) == len(BAD_KINDS) * 4
    assert messages(log, "state")[-1]["safe"] is False


@pytest.mark.parametrize("fmt", ["jpg", "fits"])
def test_daylight_from_an_auto_exposing_camera_is_day_by_its_exposure(stub_frame_package, tmp_path, fmt):
    """Without a site location, daylight on an auto-exposing camera looks like a bright night sky; the exposure
    its file records (EXIF ExposureTime, FITS EXPTIME) says 'day', and the night frames are untouched."""
    from edge_helpers import classify_folder

    from skyedge.exposure import DAY_MAX_EXPOSURE_S
    from skyedge.training.simulate.frame_files import fits_header, write_frame

    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    rng = np.random.default_rng(12)
    cfg = profile_config("suburban-colour-jpeg")
    kinds = {}
    for j in range(12):
        kind = ("daylight", "night", "twilight")[j % 3]
        image, meta = render_allsky(CLASSES[j % 6], rng, cfg) if kind == "night" else render_invalid(kind, rng, cfg)
        path = write_frame(incoming / f"f-{j:02d}", image, fmt, fits_header(meta, j))
        kinds[path.name] = (kind, meta["exposure_s"])
    got = classify_folder(tmp_path, stub_frame_package, incoming, log)
    assert set(got) == set(kinds)
    for name, (kind, exposure) in kinds.items():
        m = got[name]
        assert m["exposure_s"] == pytest.approx(exposure, rel=1e-3), name
        if kind == "daylight":
            assert exposure < DAY_MAX_EXPOSURE_S
            assert m["class"] == "day" and m["day_from"] == "exposure", (name, m["class"])
        elif kind == "night":
            assert m["class"] != "day" and "day_from" not in m and m["distance"] is not None, name
        else:  # twilight: day by exposure only when it is that short
            assert (m.get("day_from") == "exposure") == (exposure < DAY_MAX_EXPOSURE_S), name
