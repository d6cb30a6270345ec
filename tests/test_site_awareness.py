"""Site awareness: capture times from the file, day gating by the sun, physical cross-checks, masks.

The day/night, cross-check and mask tests run the real daemon (`skyedge run --once`) on files whose capture
times are written into them, at a real site; the expected sun and moon come from the independent formulas of
tests/test_ephemeris.py, not from the code under test.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml
from edge_helpers import messages, offline_frame_probabilities, package_with_unknown_threshold, write_config
from test_ephemeris import reference

from skyedge.cli import main
from skyedge.edge.allsky.capture_time import CaptureClock, parse_timezone
from skyedge.edge.config import CaptureTimeSection
from skyedge.model_card import read_card

LA_PALMA = {"latitude_deg": 28.7606, "longitude_deg": -17.8816, "elevation_m": 2396.0}
SITE = (LA_PALMA["latitude_deg"], LA_PALMA["longitude_deg"], LA_PALMA["elevation_m"])


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# ---------------------------------------------------------------- capture time (fast)


def test_capture_time_from_fits_exif_filename_or_file(tmp_path):
    clock = CaptureClock(CaptureTimeSection(camera_timezone="Atlantic/Canary", filename_format="%Y%m%d_%H%M%S"), "cam")
    start = _utc("2026-11-23T22:00:00")
    got = clock.of("x.fits", {"DATE-OBS": "2026-11-23T22:00:00", "EXPTIME": 30.0}, None)
    assert got.posix == start.timestamp() + 15 and got.source == "fits:DATE-OBS+EXPTIME/2"  # mid-exposure
    got = clock.of("x.fits", {"DATE-AVG": "2026-11-23T22:00:10.5", "DATE-OBS": "2026-11-23T22:00:00"}, None)
    assert got.posix == start.timestamp() + 10.5 and got.source == "fits:DATE-AVG"
    # MJD keywords (61367 = 2026-11-23), and the older convention of a bare DATE-OBS with its time in TIME-OBS or UT.
    got = clock.of("x.fits", {"MJD-OBS": 61367 + 22 / 24, "EXPTIME": 30.0}, None)
    assert abs(got.posix - (start.timestamp() + 15)) < 1e-3 and got.source == "fits:MJD-OBS+EXPTIME/2"
    assert abs(clock.of("x.fits", {"MJD-AVG": 61367 + 22 / 24}, None).posix - start.timestamp()) < 1e-3
    for key in ("TIME-OBS", "UT"):
        got = clock.of("x.fits", {"DATE-OBS": "2026-11-23", key: "22:00:00"}, None)
        assert got.posix == start.timestamp() and got.source == "fits:DATE-OBS", key
    # A bare date is no time, and a garbled exposure no exposure: the next source, or DATE-OBS as it stands.
    assert clock.of("x.fits", {"DATE-OBS": "2026-11-23"}, 1795464000.0).source == "file-mtime"
    for exptime in (1e300, float("inf"), -5.0, "30", True):
        got = clock.of("x.fits", {"DATE-OBS": "2026-11-23T22:00:00", "EXPTIME": exptime}, None)
        assert got.posix == start.timestamp() and got.source == "fits:DATE-OBS", exptime
    # A reset clock (1970, 1980, 2000: what reset clocks read) is no capture time: the next source answers, and a
    # file time as reset as the rest leaves the frame without one (the sun is then not placed at all).
    for reset in ("1970-01-01T00:03:12", "1980-01-06T00:00:00", "2000-01-01T00:00:00"):
        got = clock.of("x.fits", {"DATE-OBS": reset}, 1795464000.0)
        assert got.source == "file-mtime" and got.posix == 1795464000.0, reset
    assert clock.of("x.fits", {"DATE-OBS": "1970-01-01T00:03:12"}, 192.0) is None
    # EXIF: local camera time, or the offset the camera wrote beside it.
    from PIL import Image

    for offset, expected in ((None, "2026-11-23T21:30:05+00:00"), ("+02:00", "2026-11-23T19:30:05+00:00")):
        exif = Image.Exif()
        ifd = exif.get_ifd(0x8769)
        ifd[0x9003] = "2026:11:23 21:30:05"  # Canary winter time = UTC
        if offset:
            ifd[0x9011] = offset
        path = tmp_path / f"cam-{offset}.jpg"
        Image.fromarray(np.zeros((16, 16), np.uint8)).save(path, exif=exif)
        got = clock.of(str(path), {}, 0.0)
        assert got.source == "exif:DateTimeOriginal"
        assert datetime.fromtimestamp(got.posix, timezone.utc).isoformat() == expected
    # A camera that fills only IFD0's DateTime (or has a zeroed DateTimeOriginal beside it) is read from it.
    exif = Image.Exif()
    exif[0x0132] = "2026:11:23 21:30:05"
    exif.get_ifd(0x8769)[0x9003] = "0000:00:00 00:00:00"
    path = tmp_path / "ifd0.jpg"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(path, exif=exif)
    got = clock.of(str(path), {}, 0.0)
    assert got.source == "exif:DateTime" and got.posix == _utc("2026-11-23T21:30:05").timestamp()
    # A PNG frame's eXIf chunk (a 16-bit mono camera saving PNG through Pillow) is read as a JPEG's EXIF is.
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = "2026:11:23 21:30:05"
    path = tmp_path / "ccd1_20260715_233000.png"  # its name says another time: EXIF comes first
    # (bytes: Pillow's PNG writer leaves out an Exif object whose IFD0 is empty)
    Image.fromarray(np.zeros((16, 16), np.uint16)).save(path, exif=exif.tobytes())
    got = clock.of(str(path), {}, 0.0)
    assert got.source == "exif:DateTimeOriginal" and got.posix == _utc("2026-11-23T21:30:05").timestamp()
    # A file name in summer time (UTC+1 in the Canaries).
    got = clock.of("/data/allsky/ccd1_20260715_233000.png", {}, 0.0)
    assert got.source == "filename" and datetime.fromtimestamp(got.posix, timezone.utc) == _utc("2026-07-15T22:30:00")
    # Nothing in the file: the file time, said so.
    got = clock.of("/data/allsky/frame.png", {}, 1795464000.0)
    assert got.source == "file-mtime" and got.posix == 1795464000.0
    assert parse_timezone("-05:30").utcoffset(None) == timedelta(hours=-5, minutes=-30)
    with pytest.raises(ValueError, match="camera_timezone"):
        parse_timezone("Mars/Olympus_Mons")


# ---------------------------------------------------------------- end to end (needs the tiny package)


def _fits_at(source: Path, out: Path, when: datetime) -> Path:
    """A copy of a FITS frame whose header says it was taken at ``when`` (and whose file time says so too)."""
    from astropy.io import fits

    data = fits.getdata(source)
    header = fits.Header({"DATE-OBS": when.strftime("%Y-%m-%dT%H:%M:%S"), "EXPTIME": 10.0})
    fits.PrimaryHDU(data, header=header).writeto(out)
    os.utime(out, (when.timestamp(), when.timestamp()))  # arrival order = capture order
    return out


def _deploy(tmp_path, package, incoming, log, pipeline_extra: dict | None = None, **extra) -> Path:
    cfg = write_config(
        tmp_path / "e.yaml",
        package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
        site_location=LA_PALMA,
        **extra,
    )
    if pipeline_extra:
        data = yaml.safe_load(cfg.read_text())
        data["pipelines"][0].update(pipeline_extra)
        cfg.write_text(yaml.safe_dump(data))
    return cfg


def test_a_day_of_frames_is_day_by_day_and_night_classes_by_night(stub_frame_package, camera_frames, tmp_path):
    package = package_with_unknown_threshold(stub_frame_package, tmp_path / "pkg", 1e9)
    night_classes = list(read_card(package).classes)
    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    start = _utc("2026-11-23T12:00:00")
    times = [start + timedelta(minutes=20 * k) for k in range(72)]  # one day, a frame every 20 minutes
    for k, when in enumerate(times):
        _fits_at(camera_frames[k % 30], incoming / f"f{k:03d}.fits", when)
    cfg = _deploy(
        tmp_path,
        package,
        incoming,
        log,
        {
            "safety": {"safe_classes": night_classes, "hold_frames": 2},
            "sky_state": {"hysteresis_frames": 2},
        },
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    results = sorted(messages(log, "classification"), key=lambda m: m["frame_id"])
    assert len(results) == 72
    for when, m in zip(times, results, strict=True):
        sun_alt = reference(when.timestamp() + 5, *SITE)[0]
        assert m["captured_from"] == "fits:DATE-OBS+EXPTIME/2"
        assert abs(m["ephemeris"]["sun_alt_deg"] - sun_alt) < 0.1
        if abs(sun_alt - (-12.0)) < 0.3:
            continue  # too close to the threshold to insist
        if sun_alt > -12.0:
            assert m["class"] == "day" and m["probabilities"] == {"day": 1.0}, (when, sun_alt, m["class"])
        else:
            assert m["class"] in night_classes, (when, sun_alt, m["class"])
    # The state follows: day -> night classes at dusk, back to day at dawn; safety only at night.
    states = [s["state"] for s in messages(log, "state")]
    assert states[0] == "day" and states[-1] == "day" and any(s in night_classes for s in states)
    day_states = [s for s in messages(log, "state") if s["state"] == "day"]
    assert all(not s["safe"] and s["ephemeris"]["sun_alt_deg"] > -12.0 for s in day_states)
    safety = [e["details"]["safe"] for e in messages(log, "event") if e["event"] == "safety_change"]
    assert safety == [True, False], safety  # safe after dusk, unsafe again at dawn
    metrics = messages(log, "metrics")[-1]
    assert metrics["counts"]["processed"] == 72


def _dark_time_with_moon(below: bool) -> datetime:
    """A moment at La Palma with the sun well down and the moon below the horizon (or high), from the reference."""
    t = _utc("2026-11-01T00:00:00")
    while True:
        sun_alt, moon_alt, _ = reference(t.timestamp(), *SITE)
        if sun_alt < -20 and ((moon_alt < -10) if below else (moon_alt > 30)):
            return t
        t += timedelta(minutes=30)


def test_moon_with_the_moon_below_the_horizon_is_flagged(stub_frame_package, camera_frames, tmp_path):
    """The model (scripted) says 'moon' for both frames; physics disagrees for the one taken with the moon down.
    'unrecognised' makes the answer unsafe; by default (None) 'reclassify' takes 'moon' out, as 'day' at night,
    and the model's next class answers."""
    for policy in ("flag", "unrecognised", None, "reclassify"):
        incoming, log = tmp_path / f"in-{policy}", tmp_path / f"{policy}.jsonl"
        incoming.mkdir()
        _fits_at(camera_frames[0], incoming / "set.fits", _dark_time_with_moon(below=True))
        _fits_at(camera_frames[0], incoming / "up.fits", _dark_time_with_moon(below=False) + timedelta(days=60))
        cfg = _deploy(
            tmp_path, stub_frame_package, incoming, log, {"checks": {"moon_below_horizon": policy}} if policy else {},
            script=[{"moon": 0.6, "cloudy": 0.3, "clear": 0.1}],
        )
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        got = {m["frame_id"]: m for m in messages(log, "classification")}
        assert got["set.fits"]["checks"] == ["moon_below_horizon"] and got["set.fits"]["ephemeris"]["moon_alt_deg"] < -9
        reclassified = policy in ("reclassify", None)
        want = {"flag": "moon", "unrecognised": "unrecognised"}.get(policy, "cloudy")
        assert got["set.fits"]["class"] == want
        assert got["set.fits"]["top_class"] == ("cloudy" if reclassified else "moon")
        if reclassified:
            assert got["set.fits"]["probabilities"]["moon"] == 0.0
            assert got["set.fits"]["probabilities"]["cloudy"] == pytest.approx(0.75, abs=1e-6)
        assert "checks" not in got["up.fits"] and got["up.fits"]["class"] == "moon"
        assert messages(log, "metrics")[-1]["counts"]["check_moon_below_horizon"] == 1
    # A model certain of 'moon' (every other class 0) names no next class: refused, as 'unrecognised' would.
    incoming, log = tmp_path / "in-certain", tmp_path / "certain.jsonl"
    incoming.mkdir()
    _fits_at(camera_frames[0], incoming / "set.fits", _dark_time_with_moon(below=True))
    assert main(["run", "--config", str(_deploy(tmp_path, stub_frame_package, incoming, log, {}, script=[{"moon": 1.0}])), "--once"]) == 0
    (m,) = messages(log, "classification")
    assert (m["class"], m["top_class"], m["checks"]) == ("unrecognised", "moon", ["moon_below_horizon"])


class _Recording:
    """The scripted backend, recording how many rows each call held."""

    def __init__(self, backend):
        self.backend, self.rows = backend, []
        self.input_names = backend.input_names

    def infer(self, inputs):
        self.rows.append(len(next(iter(inputs.values()))))
        return self.backend.infer(inputs)

    def close(self):
        self.backend.close()


def test_two_cameras_batched_together_are_each_decided_by_their_own_settings(stub_frame_package, camera_frames, tmp_path):
    """Two all-sky cameras share the device's model, and their frames share its batches: one backend call for a
    batch, whichever camera each frame came from (each camera's frames were a call of their own). Each frame is
    still decided by its own pipeline: here one flags 'moon' under a set moon, the other refuses it. (Every frame of
    a batch was once decided by the first frame's pipeline: its checks, its cloud geometry, its star watch.)"""
    from skyedge.edge.backends.scripted import ScriptedBackend
    from skyedge.edge.config import load_edge_config
    from skyedge.edge.package import open_package
    from skyedge.edge.runtime.lifecycle import Runtime

    when = _dark_time_with_moon(below=True)
    folders = {name: tmp_path / f"in-{name}" for name in ("east", "west")}
    for k in range(4):
        for folder in folders.values():
            folder.mkdir(exist_ok=True)
            _fits_at(camera_frames[0], folder / f"f{k}.fits", when + timedelta(minutes=k))
    log = tmp_path / "both.jsonl"
    cfg = _deploy(tmp_path, stub_frame_package, folders["east"], log, {"checks": {"moon_below_horizon": "flag"}}, script=["moon"], batch_size=8)
    data = yaml.safe_load(cfg.read_text())
    data["backend"]["max_wait_ms"] = 10_000  # both cameras' frames in one batch (it closes when both sources end)
    west = {**data["pipelines"][0], "camera": "west", "checks": {"moon_below_horizon": "unrecognised"}}
    west["source"] = {**west["source"], "path": str(folders["west"])}
    data["pipelines"].append(west)
    cfg.write_text(yaml.safe_dump(data))
    backend = _Recording(ScriptedBackend(open_package(str(stub_frame_package), "fp32", "scripted"), ["moon"]))
    stats = Runtime(load_edge_config(cfg), once=True, backend=backend).run()
    assert stats.counts["processed"] == 8 and backend.rows == [8]
    assert messages(log, "metrics")[-1]["counts"]["backend_calls"] == 1  # what a device owner reads
    got = messages(log, "classification")
    by_camera = {c: sorted(m["class"] for m in got if m["camera"] == c) for c in ("allsky", "west")}
    assert by_camera == {"allsky": ["moon"] * 4, "west": ["unrecognised"] * 4}


def test_a_frames_exif_gives_its_time_and_exposure_from_one_read(tmp_path, monkeypatch):
    """A JPEG's EXIF says when it was taken and for how long: the site reads the file's EXIF once for both."""
    from PIL import Image

    import skyedge.exif
    from skyedge.edge.allsky.site import SiteView
    from skyedge.edge.config import PipelineSection
    from skyedge.edge.sources import RawFrame
    from skyedge.ephemeris import Ephemeris

    exif = Image.Exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003], ifd[0x829A] = "2026:11:23 23:30:05", 20.0
    path = tmp_path / "night.jpg"
    Image.fromarray(np.full((64, 64, 3), 30, np.uint8)).save(path, exif=exif)
    reads = []
    real_read = skyedge.exif.read_exif
    monkeypatch.setattr(skyedge.exif, "read_exif", lambda p: reads.append(p) or real_read(p))
    section = PipelineSection.model_validate({"camera": "c", "source": {"kind": "camera", "uri": 0}})
    seen = SiteView(section, Ephemeris(*SITE)).observe(RawFrame("f", str(path), np.asarray(Image.open(path)), {}))
    assert seen.captured == _utc("2026-11-23T23:30:05").timestamp() and seen.exposure_s == 20.0
    assert reads == [str(path)]


def test_clear_with_a_bright_moon_and_no_glare_is_flagged():
    """The moon's place in the image comes from the orientation; no glare there under a bright high moon is suspicious."""
    from skyedge.edge.allsky.site import SiteView, sky_to_pixel
    from skyedge.edge.config import PipelineSection
    from skyedge.edge.sources import RawFrame
    from skyedge.ephemeris import Ephemeris

    when = _dark_time_with_moon(below=False)
    # Move on to a bright moon: the illumination from the reference.
    while reference(when.timestamp(), *SITE)[2] < 0.7 or not (
        reference(when.timestamp(), *SITE)[1] > 30 and reference(when.timestamp(), *SITE)[0] < -20
    ):
        when += timedelta(hours=1)
    section = PipelineSection.model_validate(
        {"camera": "c", "source": {"kind": "camera", "uri": 0}, "orientation": {"north_angle_deg": 30.0}}
    )
    view = SiteView(section, Ephemeris(*SITE))
    dark = np.full((128, 128), 100.0, np.float32)
    header = {"DATE-OBS": when.strftime("%Y-%m-%dT%H:%M:%S")}
    seen = view.observe(RawFrame("f", "f.fits", dark, header))
    assert seen.ephemeris.moon_illumination > 0.7 and seen.moon_xy is not None
    assert view.check("clear", seen) == (["bright_moon_unseen"], False)
    assert view.check("cloudy", seen) == ([], False)  # behind clouds, no glare is expected
    x, y = sky_to_pixel(seen.ephemeris.moon_alt_deg, seen.ephemeris.moon_az_deg, dark.shape, section.orientation)
    assert (x, y) == pytest.approx(seen.moon_xy)
    glaring = dark.copy()
    yy, xx = np.mgrid[0:128, 0:128]
    glaring += 5000.0 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 4.0**2))
    assert view.check("clear", view.observe(RawFrame("f", "f.fits", glaring, header))) == ([], False)


def _overlay_and_trees(image: np.ndarray) -> np.ndarray:
    """The frame as a badly placed camera would see it: a bright timestamp overlay and a dark tree line."""
    out = image.copy()
    top = float(np.percentile(image, 99.9))
    out[2:9, 2:40] = top * 3  # burned-in text
    out[54:, :] = np.minimum(out[54:, :], float(np.percentile(image, 1)))  # trees along the bottom
    return out


def test_a_mask_hides_an_overlay_and_trees(stub_frame_package, camera_frames, tmp_path):
    import cv2
    from astropy.io import fits

    incoming, log = tmp_path / "in", tmp_path / "r.jsonl"
    incoming.mkdir()
    original = fits.getdata(camera_frames[3]).astype(np.float32)
    fits.PrimaryHDU(original).writeto(incoming / "a-plain.fits")
    fits.PrimaryHDU(_overlay_and_trees(original)).writeto(incoming / "b-overlay.fits")
    tree_mask = np.full(original.shape, 255, np.uint8)
    tree_mask[54:, :] = 0
    cv2.imwrite(str(tmp_path / "trees.png"), tree_mask)
    masked = {"preprocess": {"mask": {"image": str(tmp_path / "trees.png"), "rectangles": [[0, 0, 44, 12]]}}}
    cfg = _deploy(tmp_path, stub_frame_package, incoming, log, masked)
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    got = {m["frame_id"]: m for m in messages(log, "classification")}
    assert got["a-plain.fits"]["class"] == got["b-overlay.fits"]["class"]
    for c, v in got["a-plain.fits"]["probabilities"].items():
        assert got["b-overlay.fits"]["probabilities"][c] == pytest.approx(v, abs=1e-6)
    # Without the mask the overlay and the trees do change what the model sees.
    plain = offline_frame_probabilities(stub_frame_package, [incoming / "a-plain.fits", incoming / "b-overlay.fits"])
    assert np.abs(plain["a-plain.fits"] - plain["b-overlay.fits"]).max() > 1e-4
    # A mask that does not fit the camera's frames is a start-up error naming the file.
    small = np.full((32, 32), 255, np.uint8)
    cv2.imwrite(str(tmp_path / "small.png"), small)
    bad = _deploy(
        tmp_path,
        stub_frame_package,
        incoming,
        tmp_path / "bad.jsonl",
        {
            "preprocess": {"mask": {"image": str(tmp_path / "small.png")}},
            "source": {"kind": "directory", "path": str(incoming), "frame_shape": [64, 64]},
        },
    )
    assert main(["run", "--config", str(bad), "--once"]) == 2
    shutil.rmtree(incoming)


@pytest.mark.slow
def test_a_training_recipe_with_a_mask_trains_and_the_package_carries_it(tmp_path):
    import cv2
    from tiny_models import recipe

    from skyedge.export.package import export_package
    from skyedge.masks import card_mask
    from skyedge.training.train import run_training

    mask = np.full((64, 64), 255, np.uint8)
    mask[50:, :] = 0
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    cfg = recipe(tmp_path, "frame")
    data = cfg.model_dump(mode="json")
    data["preprocess"]["mask"] = {"image": str(tmp_path / "mask.png"), "rectangles": [[0, 0, 20, 6]]}
    data["train"]["epochs"] = 2
    run = run_training(type(cfg).model_validate(data))
    package = export_package(run, tmp_path / "pkg").package
    card = read_card(package)
    assert card.preprocess.mask.file == "mask.png" and card.preprocess.mask.rectangles == [[0, 0, 20, 6]]
    assert (package / "mask.png").exists() and "mask.png" in card.sha256
    m = card_mask(card, package).array((64, 64))
    assert not m[55, 10] and not m[2, 5] and m[30, 30]


def test_the_models_day_never_overrules_a_night_the_sun_or_the_exposure_vouches_for(tmp_path, camera_frames):
    """A model with its own 'day' class says 'day' (scripted). With the site, the sun 20+ deg down wins: the best
    night class answers, flagged day_at_night. Without a site, a 10 s exposure says night just as well; with
    neither, the model's 'day' stands and the message says the model was the only evidence."""
    from stub_packages import FRAME_CLASSES, frame_package

    package = frame_package(tmp_path / "pkg", classes=[*FRAME_CLASSES, "day"])
    answer = [{"day": 0.7, "clear": 0.2, "cloudy": 0.1}]
    night = _dark_time_with_moon(below=True)
    cases = {
        "site": (True, 10.0, "clear", "sun"),
        "exposure": (False, 10.0, "clear", "exposure"),
        "nothing": (False, None, "day", "model"),
    }
    for name, (located, exposure, want, evidence) in cases.items():
        incoming, log = tmp_path / f"in-{name}", tmp_path / f"{name}.jsonl"
        incoming.mkdir()
        frame = _fits_at(camera_frames[0], incoming / "f.fits", night)
        if exposure is None:
            from astropy.io import fits

            with fits.open(frame, mode="update") as hdul:
                del hdul[0].header["EXPTIME"]
        extra = {"script": answer}
        if located:
            cfg = _deploy(tmp_path, package, incoming, log, **extra)
        else:
            cfg = write_config(
                tmp_path / f"{name}.yaml",
                package,
                {"kind": "directory", "path": str(incoming), "settle_s": 0},
                {"jsonl": {"path": str(log)}},
                **extra,
            )
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        (m,) = messages(log, "classification")
        assert (m["class"], m["day_evidence"]) == (want, evidence), (name, m)
        assert ("day_at_night" in m.get("checks", [])) == (want != "day"), (name, m)
        if want != "day":
            assert m["probabilities"]["day"] == 0.0 and m["top_class"] == "clear"


def test_an_exposure_the_sun_contradicts_says_the_clock_is_off(stub_frame_package, camera_frames, tmp_path, capfd):
    """A daylight exposure stamped in the dark of night, or a night-long one at noon, is something no sky does: the
    camera's clock (or its time zone) is doubted, flagged clock_vs_exposure, counted and said once. Twilight, a
    white frame of a camera that keeps its night exposure by day, and frames whose exposure fits the sun are not;
    the answers themselves do not change, and the check can be turned off."""
    from astropy.io import fits

    night, noon = _utc("2026-11-23T01:00:00"), _utc("2026-11-23T13:00:00")
    dusk = next(t for t in (_utc("2026-11-23T18:00:00") + timedelta(minutes=m) for m in range(0, 120, 2)) if reference(t.timestamp(), *SITE)[0] < -8)
    assert reference(night.timestamp(), *SITE)[0] < -40 and reference(noon.timestamp(), *SITE)[0] > 30  # the premise
    cases = {  # name: (capture time, exposure s, white frame, doubted)
        "a-night-daylight": (night, 0.001, False, True),
        "b-noon-night-long": (noon, 10.0, False, True),
        "c-noon-white": (noon, 10.0, True, False),
        "d-noon-daylight": (noon, 0.001, False, False),
        "e-night-night-long": (night, 10.0, False, False),
        "f-dusk-daylight": (dusk, 0.001, False, False),
    }
    for policy in ("flag", "off"):
        incoming, log = tmp_path / f"in-{policy}", tmp_path / f"{policy}.jsonl"
        incoming.mkdir()
        for name, (when, exposure, white, _) in cases.items():
            frame = _fits_at(camera_frames[0], incoming / f"{name}.fits", when)
            with fits.open(frame, mode="update") as hdul:
                hdul[0].header["EXPTIME"] = exposure
                if white:
                    hdul[0].data[...] = np.iinfo(hdul[0].data.dtype).max if hdul[0].data.dtype.kind in "iu" else 1.0
        cfg = _deploy(tmp_path, stub_frame_package, incoming, log, {"checks": {"clock_vs_exposure": policy}})
        capfd.readouterr()
        assert main(["run", "--config", str(cfg), "--once"]) == 0
        said = capfd.readouterr().err
        got = {m["frame_id"]: m for m in messages(log, "classification")}
        for name, (*_, doubted) in cases.items():
            m = got[f"{name}.fits"]
            flagged = "clock_vs_exposure" in (m.get("checks") or [])
            assert flagged == (doubted and policy == "flag"), (policy, name, m.get("checks"))
            assert (m["class"] == "day") == (not name.startswith("e-")), (name, m["class"])
        counts = messages(log, "metrics")[-1]["counts"]
        assert counts.get("check_clock_vs_exposure", 0) == (2 if policy == "flag" else 0), counts
        warned = said.count("capture_time.camera_timezone is likely wrong")
        assert warned == (1 if policy == "flag" else 0), said  # said once, not per frame
