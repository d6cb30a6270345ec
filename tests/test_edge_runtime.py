"""The edge runtime end to end on stub packages (no training): watched folder, corrupt inputs, restarts, telescope;
answers are compared with the same graphs run offline, or chosen by the test through the scripted backend."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
from edge_helpers import (
    assert_last_epochs_match_offline,
    catalogue_field_config,
    offline_frame_probabilities,
    small_field,
    topic_root,
    write_config,
)

from skyedge.cli import main
from skyedge.edge.config import load_edge_config
from skyedge.edge.reporters.jsonl import read_jsonl
from skyedge.edge.runtime.lifecycle import Runtime
from skyedge.payloads import validate_payload


def _messages(path, kind):
    return [m["payload"] for m in read_jsonl(path) if m["topic"].endswith("/" + kind)]


def _plant_corrupt(folder):
    """A dozen bad inputs of every kind the issue lists; returns their names."""
    from astropy.io import fits

    rng = np.random.default_rng(0)
    bad = {}
    good_jpeg = folder / "ok.jpg"
    import cv2

    cv2.imwrite(str(good_jpeg), (rng.random((64, 64)) * 255).astype(np.uint8))
    data = good_jpeg.read_bytes()
    good_jpeg.unlink()
    bad["truncated.jpg"] = data[: len(data) // 3]
    bad["random.fits"] = rng.bytes(5000)
    bad["empty.png"] = b""
    bad["garbage.png"] = b"\x89PNG\r\n\x1a\n" + rng.bytes(300)
    bad["text.tiff"] = b"not a tiff at all"
    for name, payload in bad.items():
        (folder / name).write_bytes(payload)
    fits.PrimaryHDU().writeto(folder / "no-image.fits")  # header only
    fits.HDUList(
        [fits.PrimaryHDU(), fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.ones(3))])]
    ).writeto(folder / "table-only.fits")
    fits.PrimaryHDU(np.full((64, 64), np.nan, dtype=np.float32)).writeto(folder / "all-nan.fits")
    inf = np.ones((64, 64), np.float32)
    inf[:20] = np.inf
    fits.PrimaryHDU(inf).writeto(folder / "inf-rows.fits")
    fits.PrimaryHDU(np.ones((4, 4), np.float32)).writeto(folder / "tiny.fits")
    fits.PrimaryHDU(np.ones((5, 64, 64), np.float32)).writeto(folder / "cube.fits")
    cv2.imwrite(str(folder / "wrong-depth.png"), (rng.random((50, 70)) * 255).astype(np.uint8))
    return set(bad) | {
        "no-image.fits",
        "table-only.fits",
        "all-nan.fits",
        "inf-rows.fits",
        "tiny.fits",
        "cube.fits",
        "wrong-depth.png",
    }


def test_every_frame_classified_as_offline_with_corrupt_files_and_restarts(stub_frame_package, camera_frames, tmp_path):
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for f in camera_frames:
        (incoming / f.name).write_bytes(f.read_bytes())
    corrupt = _plant_corrupt(incoming)
    assert len(corrupt) == 12
    log = tmp_path / "results.jsonl"
    cfg = write_config(
        tmp_path / "edge.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0.0},
        {"jsonl": {"path": str(log)}},
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    results = _messages(log, "classification")
    assert Counter(r["frame_id"] for r in results) == Counter(f.name for f in camera_frames)  # each exactly once
    offline = offline_frame_probabilities(stub_frame_package, [incoming / f.name for f in camera_frames])
    card_classes = list(results[0]["probabilities"])
    for r in results:
        got = np.array([r["probabilities"][c] for c in card_classes])
        np.testing.assert_allclose(got, offline[r["frame_id"]], atol=1e-5, err_msg=r["frame_id"])
    rejected = [e for e in _messages(log, "event") if e["event"] == "input_rejected"]
    assert {e["details"]["frame_id"] for e in rejected} == corrupt
    assert all(e["details"]["frame_id"] in e["message"] for e in rejected)  # the reason names the file
    metrics = _messages(log, "metrics")[-1]
    assert metrics["counts"]["processed"] == 60 and metrics["counts"]["corrupt"] == 12
    for m in read_jsonl(log):
        validate_payload(m["topic"].rsplit("/", 1)[1], m["payload"])
    # Restart: nothing twice; a new frame is the only one processed.
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    assert len(_messages(log, "classification")) == 60
    new = incoming / "late.fits"
    new.write_bytes(camera_frames[0].read_bytes())
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    after = _messages(log, "classification")
    assert len(after) == 61 and after[-1]["frame_id"] == "late.fits"


def test_sky_state_is_debounced_and_retained_as_changes_only(stub_frame_package, camera_frames, tmp_path):
    """The model's answers are scripted, so the states the hysteresis must publish are known in advance."""
    incoming = tmp_path / "in"
    incoming.mkdir()
    for f in camera_frames[:30]:
        (incoming / f.name).write_bytes(f.read_bytes())
    script = ["clear"] * 4 + ["cloudy"] * 2 + ["clear"] + ["cloudy"] * 5 + ["moon", "clear"] * 3 + ["clear"] * 12
    log = tmp_path / "r.jsonl"
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(log)}},
        script=script,
    )
    Runtime(load_edge_config(cfg), once=True).run()
    labels = [r["class"] for r in _messages(log, "classification")]
    assert labels == script  # one answer per frame, in the folder's order
    states = _messages(log, "state")
    # A change needs 3 agreeing frames in a row: the lone 'clear', the short 'cloudy' run and the moon flicker
    # change nothing.
    assert [s["state"] for s in states] == ["clear", "cloudy", "clear"]
    assert all(s["safe"] == (s["state"] == "clear") for s in states)
    for m in read_jsonl(log):
        if m["topic"].endswith("/state"):
            assert m["retain"] and m["qos"] == 1


def test_telescope_field_matches_offline_sequence_inference(stub_sequence_package, tmp_path):

    field = small_field(tmp_path / "field", seed=3, size=200, per_class=2)
    log = tmp_path / "scope.jsonl"
    cfg = catalogue_field_config(tmp_path / "scope.yaml", stub_sequence_package, field, log, reference_epochs=1)
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    results = _messages(log, "classification")
    objects = {r["object_id"] for r in results}
    assert len(objects) == 14 and len(results) == 14 * 6  # every object at every epoch (early classification)
    assert [r["n_epochs"] for r in results if r["object_id"] == "obj-00000"] == [1, 2, 3, 4, 5, 6]
    # The last epoch of each object equals offline inference on the same stamps, cut and scaled independently.
    from astropy.io import fits

    frames = sorted((field / "frames").glob("*.fits"), key=lambda p: fits.getheader(p)["MJD-OBS"])
    assert_last_epochs_match_offline(
        stub_sequence_package, field, frames, {r["object_id"]: r for r in results if r["n_epochs"] == 6}
    )


def test_start_fails_with_clear_messages(stub_frame_package, stub_sequence_package, tmp_path, capsys):
    src = {"kind": "directory", "path": str(tmp_path)}
    jl = {"jsonl": {"path": str(tmp_path / "x.jsonl")}}
    cases = [
        (write_config(tmp_path / "a.yaml", tmp_path / "nope", src, jl), "is not a directory"),
        (write_config(tmp_path / "b.yaml", stub_sequence_package, src, jl), "cannot feed the sequence model"),
        (write_config(tmp_path / "c.yaml", stub_frame_package, src, jl, precision="int8"), "has no int8 full graph"),
        (write_config(tmp_path / "c2.yaml", stub_frame_package, src, jl), None),
    ]
    text = tmp_path / "d.yaml"
    write_config(text, stub_frame_package, src, jl)
    text.write_text(text.read_text().replace("precision: fp32", "precision: fp32\n  expect_classes: [clear, cloudy]"))
    cases.append((text, "model.expect_classes"))
    for cfg, message in cases:
        status = main(["run", "--config", str(cfg), "--once"])
        err = capsys.readouterr().err
        if message is None:
            assert status == 0
        else:
            assert status == 2 and message in err, err


def test_edge_never_imports_torch(stub_frame_package, camera_frames, tmp_path):
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / camera_frames[0].name).write_bytes(camera_frames[0].read_bytes())
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"jsonl": {"path": str(tmp_path / "r.jsonl")}},
    )
    code = (
        "import sys\n"
        "from skyedge.cli import main\n"
        f"status = main(['run', '--config', {str(cfg)!r}, '--once'])\n"
        "assert status == 0, status\n"
        "assert 'torch' not in sys.modules, 'the edge imported torch'\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]


@pytest.mark.mqtt5
def test_run_reports_over_mqtt_and_every_message_validates(stub_frame_package, camera_frames, tmp_path, mqtt_broker):
    import json

    import paho.mqtt.client as mqtt
    from mqtt_helpers import Collector

    incoming = tmp_path / "in"
    incoming.mkdir()
    for f in camera_frames[:20]:
        (incoming / f.name).write_bytes(f.read_bytes())
    mqtt_cfg = {"host": mqtt_broker.host, "port": mqtt_broker.port, "queue_path": str(tmp_path / "q.sqlite")}
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0},
        {"mqtt": mqtt_cfg},
    )
    col = Collector(mqtt_broker, f"{topic_root(cfg)}/#", protocol=mqtt.MQTTv5)
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    col.wait_for(20, timeout=20)
    deadline = time.monotonic() + 5
    while sum(m.topic.endswith("/metrics") for m in col.messages) < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    msgs = list(col.messages)
    kinds = Counter(m.topic.rsplit("/", 1)[1] for m in msgs)
    assert kinds["classification"] == 20 and kinds["status"] >= 2 and kinds["metrics"] >= 1
    for m in msgs:
        validate_payload(m.topic.rsplit("/", 1)[1], json.loads(m.payload))
    statuses = [json.loads(m.payload)["state"] for m in msgs if m.topic.endswith("/status")]
    assert statuses[-1] == "offline"  # a clean stop says so (retained)
    col.close()


def test_camera_source_reads_a_stream_and_reports_a_missing_camera(stub_frame_package, camera_frames, tmp_path):
    import cv2

    from skyedge.imageio import read_frame

    video = tmp_path / "sky.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 2, (64, 64))
    for f in camera_frames[:10]:
        img = read_frame(f)[0]
        img8 = np.clip(img / max(float(img.max()), 1.0) * 255, 0, 255).astype(np.uint8)
        writer.write(cv2.cvtColor(img8, cv2.COLOR_GRAY2BGR))
    writer.release()
    log = tmp_path / "cam.jsonl"
    cfg = write_config(
        tmp_path / "cam.yaml", stub_frame_package, {"kind": "camera", "uri": str(video)}, {"jsonl": {"path": str(log)}}
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    assert [r["frame_id"] for r in _messages(log, "classification")] == [f"frame-{i:08d}" for i in range(1, 11)]
    gone = tmp_path / "gone.jsonl"
    cfg = write_config(
        tmp_path / "gone.yaml",
        stub_frame_package,
        {"kind": "camera", "uri": str(tmp_path / "no-such-camera.avi")},
        {"jsonl": {"path": str(gone)}},
    )
    assert main(["run", "--config", str(cfg), "--once"]) == 0
    events = _messages(gone, "event")
    assert any(e["event"] == "source_failed" and "cannot be opened" in e["message"] for e in events)
    assert any(e["event"] == "safety_change" for e in events) is False  # never safe, so no change: still unsafe
    assert not _messages(gone, "classification")


def test_cameras_inputs_join_into_one_call_and_its_answers_go_back_by_rows():
    """A camera turned four ways brings four rows a frame, a daylit one none (its frames never reach the model),
    a third one row: one call of five rows, and each camera gets back exactly its own rows."""
    from skyedge.edge.runtime.batcher import joined, split

    frame = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    inputs, counts = joined([{"x": frame[:4]}, {}, {"x": frame[4:]}])
    assert counts == [4, 0, 1] and np.array_equal(inputs["x"], frame)
    answers = {"p": inputs["x"] * 2, "d": inputs["x"][:, 0]}
    parts = split(answers, counts)
    assert parts[1] == {}
    assert np.array_equal(parts[0]["p"], frame[:4] * 2) and np.array_equal(parts[2]["d"], frame[4:, 0])
    alone, counts = joined([{"x": frame}])
    assert alone["x"] is frame and counts == [5]  # one camera's batch goes as it is, not copied
