"""The edge daemon in a changing environment: each test is one way an unattended device met its surroundings.

The numbers refer to the reliability issue's list: vanished files (1), a vanished folder (2), bad paths at start
(3), oversized images (4), the camera's frame format across restarts (5), symlinks (6), the card's file mode (7),
bounded sequence buffers (8), the telescope field resuming after a restart (9), a `--once` run outlasting slow
reporters (10); and a shutdown step that fails (the others still run).
"""

from __future__ import annotations

import json
import os
import stat
import time

import numpy as np
from edge_helpers import (
    RunningDaemon,
    assert_last_epochs_match_offline,
    catalogue_field_config,
    deliver,
    messages,
    small_field,
    wait_for,
    write_config,
)

from skyedge.cli import main


def _copy(frames, folder, prefix=""):
    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        deliver(f, folder / f"{prefix}{f.name}")


class SlowBackend:
    """The package's ONNX Runtime backend, slowed down, so the source blocks on a full queue mid-listing."""

    def __init__(self, package, seconds: float):
        from skyedge.edge.backends import create_backend
        from skyedge.edge.package import open_package

        self.inner = create_backend("onnxruntime", open_package(package, "fp32", "onnxruntime"))
        self.input_names, self.seconds = self.inner.input_names, seconds

    def infer(self, inputs):
        time.sleep(self.seconds)
        return self.inner.infer(inputs)

    def close(self):
        self.inner.close()


def _as_png(frames, folder):
    """The frames as 16-bit PNGs (OpenCV raised a bare FileNotFoundError for vanished PNG/JPEG files)."""
    import cv2

    from skyedge.imageio import read_frame

    folder.mkdir(parents=True, exist_ok=True)
    for f in frames:
        cv2.imwrite(str(folder / f"{f.stem}.png"), np.clip(read_frame(f)[0], 0, 65535).astype(np.uint16))
    return [folder / f"{f.stem}.png" for f in frames]


def test_1_files_deleted_between_listing_and_read_are_skipped_and_counted(stub_frame_package, camera_frames, tmp_path):
    incoming = tmp_path / "in"
    pngs = _as_png(camera_frames[:40], incoming)
    log = tmp_path / "r.jsonl"
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
        batch_size=1,
    )
    # The source lists all 40 files, then blocks on the full item queue while the slow backend works;
    # meanwhile camera software rotates the last 10 away.
    doomed = sorted(pngs, key=lambda p: (p.stat().st_mtime, p.name))[-10:]
    with RunningDaemon(cfg, backend=SlowBackend(stub_frame_package, 0.05)) as daemon:
        assert wait_for(lambda: len(messages(log, "classification")) >= 3)
        for f in doomed:
            f.unlink()
        assert wait_for(lambda: len(messages(log, "classification")) >= 30, timeout=30)
        time.sleep(0.5)
        assert daemon.alive(), "the daemon must not stop for a vanished file"
    classified = {m["frame_id"] for m in messages(log, "classification")}
    assert classified == {f.name for f in pngs} - {f.name for f in doomed}
    counts = messages(log, "metrics")[-1]["counts"]
    assert counts["vanished"] == 10 and counts["failed"] == 0 and counts["corrupt"] == 0
    assert not any(e["event"] == "source_failed" for e in messages(log, "event"))


def test_2_a_vanished_folder_is_reported_retried_and_resumed(stub_frame_package, camera_frames, tmp_path):
    incoming, away = tmp_path / "in", tmp_path / "away"
    _copy(camera_frames[:3], incoming)
    log = tmp_path / "r.jsonl"
    state = tmp_path / "state" / "s.sqlite"  # outside the folder, as on a network share
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {
            "kind": "directory",
            "path": str(incoming),
            "settle_s": 0,
            "poll_s": 0.05,
            "state_file": str(state),
            "retry_initial_s": 0.1,
            "retry_max_s": 0.4,
        },
        {"jsonl": {"path": str(log)}},
    )
    with RunningDaemon(cfg) as daemon:
        assert wait_for(lambda: len(messages(log, "classification")) == 3)
        incoming.rename(away)  # unmounted disk, network share hiccup
        assert wait_for(lambda: any(e["event"] == "source_failed" for e in messages(log, "event")))
        time.sleep(1.5)
        assert daemon.alive()
        away.rename(incoming)
        _copy(camera_frames[3:6], incoming, prefix="late-")
        assert wait_for(lambda: any(e["event"] == "source_recovered" for e in messages(log, "event")))
        assert wait_for(lambda: len(messages(log, "classification")) == 6)
    events = [e["event"] for e in messages(log, "event") if e["event"].startswith("source_")]
    assert events == ["source_failed", "source_recovered"]  # once each, however many retries
    failed = next(e for e in messages(log, "event") if e["event"] == "source_failed")
    assert str(incoming) in failed["message"]
    # The safety verdict was pulled to unsafe by the failure (the frames never made it safe anyway).
    assert not any(e["event"] == "safety_change" and e["details"]["safe"] for e in messages(log, "event"))


def test_3_bad_paths_at_start_are_config_errors_with_key_and_line(stub_frame_package, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    jl = {"jsonl": {"path": str(tmp_path / "r.jsonl")}}
    cases = [
        (
            {"kind": "directory", "path": str(tmp_path / "missing")},
            jl,
            "pipelines[0].source.path (line",
            "does not exist",
        ),
        ({"kind": "directory", "path": str(a_file)}, jl, "pipelines[0].source.path (line", "it is a file"),
        (
            {"kind": "directory", "path": str(folder)},
            {"jsonl": {"path": str(folder)}},
            "reporters.jsonl.path (line",
            "is a directory",
        ),
        (
            {"kind": "directory", "path": str(folder), "state_file": str(a_file / "state.sqlite")},
            jl,
            "pipelines[0].source.state_file (line",
            "cannot create",
        ),
    ]
    # The collect folder inside a recursively watched folder: every copy would come back as a new frame.
    recursive = {"kind": "directory", "path": str(folder), "recursive": True}
    collect = {"collect": {"path": str(folder / "kept")}}
    cases.append((recursive, jl, "pipelines[0].collect.path (line", "add 'kept' to source.exclude"))
    for i, (source, reporters, key, reason) in enumerate(cases):
        extra = {"pipeline": collect} if source is recursive else {}
        cfg = write_config(tmp_path / f"c{i}.yaml", stub_frame_package, source, reporters, **extra)
        status = main(["run", "--config", str(cfg), "--once"])
        err = capsys.readouterr().err
        assert status == 2, (i, err)
        assert str(cfg) in err and key in err and reason in err and "Traceback" not in err, err
    # Excluded, it is fine (and so is any collect folder outside the watched one).
    for excluded in ({**recursive, "exclude": ["kept"]}, {**recursive, "path": str(tmp_path / "elsewhere")}):
        (tmp_path / "elsewhere").mkdir(exist_ok=True)
        cfg = write_config(tmp_path / "fine.yaml", stub_frame_package, excluded, jl, pipeline=collect)
        assert main(["run", "--config", str(cfg), "--once"]) == 0, capsys.readouterr().err


def _big_png(path, width: int, height: int) -> None:
    """A valid 8-bit grey PNG of width x height zeros, written without ever holding the pixels."""
    import struct
    import zlib

    comp, row, parts = zlib.compressobj(9), b"\x00" + bytes(width), []
    for _ in range(height):
        parts.append(comp.compress(row))
    parts.append(comp.flush())

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
    )


def test_4_oversized_images_are_refused_from_the_header(stub_frame_package, camera_frames, tmp_path):
    from astropy.io import fits

    incoming = tmp_path / "in"
    _copy(camera_frames[:2], incoming)
    _big_png(incoming / "huge.png", 20_000, 20_000)  # 0.4 MB on disk, 400 megapixels decoded
    assert (incoming / "huge.png").stat().st_size < 1_000_000
    header = fits.Header({"SIMPLE": True, "BITPIX": 16, "NAXIS": 2, "NAXIS1": 9000, "NAXIS2": 9000})
    (incoming / "huge.fits").write_bytes(header.tostring().encode())  # the header promises 81 megapixels
    log = tmp_path / "r.jsonl"
    source = {"kind": "directory", "path": str(incoming), "settle_s": 0, "max_pixels": 50_000_000}
    cfg = write_config(tmp_path / "e.yaml", stub_frame_package, source, {"jsonl": {"path": str(log)}})
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    rejected = {
        e["details"]["frame_id"]: e["message"] for e in messages(log, "event") if e["event"] == "input_rejected"
    }
    assert set(rejected) == {"huge.png", "huge.fits"}
    assert "20000x20000 = 400.0 megapixels" in rejected["huge.png"] and "not decoded" in rejected["huge.png"]
    assert "9000x9000" in rejected["huge.fits"]
    assert len(messages(log, "classification")) == 2


def test_5_the_camera_format_survives_restarts_and_a_mode_change_is_an_event(stub_frame_package, camera_frames, tmp_path):
    from astropy.io import fits

    incoming = tmp_path / "in"
    log = tmp_path / "r.jsonl"
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
    )
    _copy(camera_frames[:3], incoming)  # three agreeing 64x64 frames: this camera's format
    assert main(["run", "--config", str(cfg), "--once"]) == 0

    def small(name):
        data = fits.getdata(camera_frames[0]).astype(np.float32)[::2, ::2]
        fits.PrimaryHDU(data).writeto(incoming / name)

    small("binned-1.fits")  # after a restart, a 32x32 frame is still not this camera's
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    rejected = [e for e in messages(log, "event") if e["event"] == "input_rejected"]
    assert [e["details"]["frame_id"] for e in rejected] == ["binned-1.fits"] and "64x64" in rejected[0]["message"]
    small("binned-2.fits")
    small("binned-3.fits")  # three agreeing frames: the camera was switched to 2x2 binning for good
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    changed = [e for e in messages(log, "event") if e["event"] == "camera_mode_changed"]
    assert len(changed) == 1 and changed[0]["details"]["current"] == "32x32 float32"
    assert "binned-3.fits" in {m["frame_id"] for m in messages(log, "classification")}
    # Pinned: nothing but the configured shape is ever accepted.
    pinned = write_config(
        tmp_path / "p.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "frame_shape": [64, 64]},
        {"jsonl": {"path": str(tmp_path / "p.jsonl")}},
    )
    small("binned-4.fits")
    assert main(["run", "--config", str(pinned), "--once"]) == 0
    reasons = [e["message"] for e in messages(tmp_path / "p.jsonl", "event") if e["event"] == "input_rejected"]
    assert len(reasons) == 1 and "source.frame_shape is 64x64" in reasons[0]


def test_6_symlinks_to_devices_or_nothing_are_reported_once(stub_frame_package, camera_frames, tmp_path):
    incoming = tmp_path / "in"
    _copy(camera_frames[:2], incoming)
    (incoming / "zero.fits").symlink_to("/dev/zero")
    (incoming / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    (incoming / "good-link.fits").symlink_to(camera_frames[5])  # a link to a real frame is simply read
    log = tmp_path / "r.jsonl"
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
    )
    for _ in range(2):  # a restart does not report them again
        assert main(["run", "--config", str(cfg), "--once"]) == 0
    rejected = {
        e["details"]["frame_id"]: e["message"] for e in messages(log, "event") if e["event"] == "input_rejected"
    }
    assert set(rejected) == {"zero.fits", "dangling.png"}
    assert "/dev/zero" in rejected["zero.fits"] and "not a regular file" in rejected["zero.fits"]
    assert "does not exist" in rejected["dangling.png"]
    assert {m["frame_id"] for m in messages(log, "classification")} == {f.name for f in camera_frames[:2]} | {
        "good-link.fits"
    }


def test_7_model_packages_are_readable_by_other_users(frame_package):
    for name in ("skyedge.json", "model.onnx", "model.fp16.onnx"):
        mode = stat.S_IMODE(os.stat(frame_package / name).st_mode)
        assert mode & 0o044 == 0o044, f"{name} is {oct(mode)}"


def test_8_a_field_retires_transients_that_are_gone():
    """Ten new transients every epoch, each seen once (what difference imaging finds on a busy field): the
    objects followed stay bounded, each retired object is named once, and the recent-frame ring stays bounded."""
    from types import SimpleNamespace

    from skyedge.edge.config_sources import FitsSequenceSourceSection
    from skyedge.edge.field.tracker import FieldTracker

    spec = FitsSequenceSourceSection(kind="fits-sequence", path="/tmp", forget_after_epochs=3, ring_epochs=4)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:128, :128]
    stars = [(20, 20), (100, 30), (60, 100), (30, 90)]

    def frame(epoch, blobs):
        image = rng.normal(100, 5, (128, 128)).astype(np.float32)
        for x, y, flux in [(sx, sy, 5000.0) for sx, sy in stars] + blobs:
            image += (flux / (2 * np.pi * 1.5**2) * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))).astype(np.float32)
        header = {"MJD-OBS": 60000.0 + epoch, "FWHM": 3.5, "SKYLEVEL": 100.0, "MAGZP": 25.0, "EXPTIME": 30.0, "AIRMASS": 1.1}
        return SimpleNamespace(
            frame_id=f"e{epoch:03d}", source=f"e{epoch:03d}.fits", image=image, header=header, replay=False
        )

    tracker = FieldTracker(spec, max_epochs=24)
    followed, retired = [], []
    for epoch in range(40):
        blobs = [] if epoch < 3 else [(float(x), float(y), 3000.0) for x, y in rng.uniform(10, 118, (10, 2))]
        for view in tracker.observe(frame(epoch, blobs)):
            followed.append(len(view.followed))
            retired += [oid for oid, _ in view.retired]
            assert len(view.history) <= 4
    assert max(followed) <= len(stars) + 10 * 3 + 10, followed  # forget_after epochs' worth of transients
    assert len(retired) == len(set(retired)) > 200  # every transient retired once


def test_9_a_telescope_field_resumes_where_it_stopped(stub_sequence_package, tmp_path):
    from astropy.io import fits

    field = small_field(tmp_path / "field", seed=4, size=160, per_class=1)
    frames = sorted((field / "frames").glob("*.fits"), key=lambda p: fits.getheader(p)["MJD-OBS"])
    later = tmp_path / "later"
    later.mkdir()
    for f in frames[3:]:
        f.rename(later / f.name)  # the telescope has taken three epochs so far
    log = tmp_path / "scope.jsonl"
    cfg = catalogue_field_config(tmp_path / "scope.yaml", stub_sequence_package, field, log, settle_s=0)
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    first = messages(log, "classification")
    for f in frames[3:]:
        (later / f.name).rename(field / "frames" / f.name)
    assert main(["run", "--config", str(cfg), "--once"]) == 0  # a restart, three more epochs
    after = messages(log, "classification")[len(first) :]
    n_objects = len({m["object_id"] for m in first})
    assert len(first) == 3 * n_objects and len(after) == 3 * n_objects  # nothing twice
    assert sorted({m["n_epochs"] for m in after}) == [4, 5, 6]  # histories continue, not restart at 1
    last = {m["object_id"]: m for m in after if m["n_epochs"] == 6}
    assert_last_epochs_match_offline(stub_sequence_package, field, [field / "frames" / p.name for p in frames], last)


def test_10_a_once_run_publishes_every_answer_however_slow_its_reporters(
    stub_frame_package, camera_frames, tmp_path, monkeypatch
):
    """`skyedge run --once` ends only when every answer is said: a slow reporter (a busy disk, a loaded CPU) once
    cut a real night's log short by half its epochs when the stop's drain bound ran out."""
    from skyedge.edge.reporters.jsonl import JsonlReporter
    from skyedge.edge.runtime import lifecycle

    incoming = tmp_path / "in"
    pngs = _as_png(camera_frames[:20], incoming)
    log = tmp_path / "r.jsonl"
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
    )
    publish = JsonlReporter.publish

    def slow(self, message):
        time.sleep(0.02)
        publish(self, message)

    monkeypatch.setattr(JsonlReporter, "publish", slow)
    monkeypatch.setattr(lifecycle, "STOP_DRAIN_S", 0.01)  # a daemon's stop would give up almost at once
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    assert {m["frame_id"] for m in messages(log, "classification")} == {f.name for f in pngs}


def test_a_failing_shutdown_step_costs_none_of_the_others(tmp_path, caplog):
    """The publisher's shutdown takes the final metrics, says 'offline', and closes every reporter: when one of those
    steps raises (here the metrics, and the first reporter's close), the rest still happen, and the log says so."""
    import logging

    from skyedge.edge.messages import MessageFactory
    from skyedge.edge.reporters.jsonl import JsonlReporter
    from skyedge.edge.runtime.publisher import DeviceFacts, Publisher
    from skyedge.edge.runtime.stats import Stats

    class ClosesBadly(JsonlReporter):
        def close(self) -> None:
            super().close()
            raise OSError("the disk went away")

    class SaysClosed(JsonlReporter):
        closed = False

        def close(self) -> None:
            super().close()
            self.closed = True

    def depth() -> int:
        raise RuntimeError("the batch queue is gone")

    first, second = ClosesBadly(tmp_path / "first.jsonl"), SaysClosed(tmp_path / "second.jsonl")
    facts = DeviceFacts("onnxruntime", "fp32", "stub", ["clear", "cloudy"], depth, metrics_interval_s=3600.0)
    publisher = Publisher(MessageFactory("site", "device", None), [first, second], [], Stats(), facts)
    with caplog.at_level(logging.ERROR):
        publisher.start()
        publisher.close()
    for path in (tmp_path / "first.jsonl", tmp_path / "second.jsonl"):
        states = [json.loads(line)["payload"].get("state") for line in path.read_text().splitlines()]
        assert states == ["online", "offline"], path
    assert second.closed
    assert caplog.text.count("publisher shutdown: a step failed") == 2
