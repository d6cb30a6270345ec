"""The daemon against its machine: a disk that fills up and empties again, and a wall clock that jumps.

Both run a real daemon against a real broker (mosquitto). The full disk is a real one: a 4 MiB tmpfs mounted
for the test (root only; CI runs as root). The clock jump steps only the daemon's wall clock, with a small
LD_PRELOAD shim (tests/clockshift.c) built here, exactly as an NTP step would: monotonic time keeps running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from edge_helpers import RunningDaemon, deliver, package_with_unknown_threshold, topic_root, wait_for, write_config
from mqtt_helpers import Collector

from skyedge.cli import main
from skyedge.model_card import read_card

pytestmark = pytest.mark.mqtt5

TESTS = Path(__file__).parent


def _copy(frames, folder, prefix):
    for f in frames:
        deliver(f, folder / f"{prefix}{f.name}")


def _payloads(col: Collector, kind: str) -> list[dict]:
    return [json.loads(m.payload) for m in list(col.messages) if m.topic.endswith("/" + kind)]


def _events(col: Collector, name: str) -> list[dict]:
    return [e for e in _payloads(col, "event") if e["event"] == name]


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB filesystem that a test can fill."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(disk: Path) -> Path:
    """Write zeros until the filesystem refuses (ENOSPC); return the filler file."""
    filler = disk / "filler"
    # Unbuffered: a buffered file would try the refused bytes again on close and raise there.
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
        except OSError as exc:
            assert exc.errno == 28, exc  # ENOSPC
    return filler


def test_a_full_disk_is_reported_survived_and_loses_or_corrupts_nothing(
    stub_frame_package, camera_frames, tmp_path, mqtt_broker, small_disk
):
    incoming = tmp_path / "in"
    incoming.mkdir()
    audit, state, queue = small_disk / "audit.jsonl", small_disk / "state.sqlite", small_disk / "outbox.sqlite"
    source = {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.05, "state_file": str(state)}
    mqtt_cfg = {"host": mqtt_broker.host, "port": mqtt_broker.port, "queue_path": str(queue), "metrics_interval_s": 1.0}
    cfg = write_config(tmp_path / "e.yaml", stub_frame_package, source, {"mqtt": mqtt_cfg, "jsonl": {"path": str(audit)}})
    col = Collector(mqtt_broker, f"{topic_root(cfg)}/#", protocol=mqtt.MQTTv5)

    def classified() -> set[str]:
        return {p["frame_id"] for p in _payloads(col, "classification")}

    names = [
        f"{prefix}{f.name}"
        for prefix, part in (("a-", camera_frames[:5]), ("b-", camera_frames[5:25]), ("c-", camera_frames[25:30]))
        for f in part
    ]
    with RunningDaemon(cfg) as daemon:
        _copy(camera_frames[:5], incoming, "a-")
        assert wait_for(lambda: classified() >= set(names[:5]))
        filler = _fill(small_disk)
        _copy(camera_frames[5:25], incoming, "b-")
        # The roof still hears about the sky while the disk is full.
        assert wait_for(lambda: classified() >= set(names[:25]), timeout=30), len(classified())
        assert wait_for(lambda: _events(col, "storage_failed"), timeout=10)
        failed_paths = {e["details"]["path"] for e in _events(col, "storage_failed")}
        assert failed_paths <= {str(audit), str(state), str(queue)} and failed_paths
        assert daemon.alive()
        filler.unlink()
        assert wait_for(
            lambda: {e["details"]["path"] for e in _events(col, "storage_recovered")} == failed_paths, timeout=15
        )
        _copy(camera_frames[25:30], incoming, "c-")
        assert wait_for(lambda: classified() >= set(names), timeout=20)
    # Nothing corrupted: every audit line is whole JSON, both databases pass SQLite's integrity check.
    lines = audit.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    audited = [r["payload"]["frame_id"] for r in records if r["topic"].endswith("/classification")]
    assert sorted(audited) == sorted(names)  # each frame once, the ones held in memory included
    for db in (state, queue):
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", db
    with sqlite3.connect(queue) as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0  # all acknowledged
    with sqlite3.connect(state) as conn:
        assert conn.execute("SELECT COUNT(*) FROM processed WHERE status='ok'").fetchone()[0] == 30
    assert main(["run", "--config", str(cfg), "--once"]) == 0  # a restart processes nothing twice
    audit_after = [json.loads(line) for line in audit.read_text().splitlines()]
    assert sum(r["topic"].endswith("/classification") for r in audit_after) == 30
    col.close()


@pytest.fixture(scope="module")
def clockshift(tmp_path_factory):
    """The LD_PRELOAD shim that steps a process's wall clock (built with the system's C compiler)."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("needs a C compiler to build tests/clockshift.c")
    lib = tmp_path_factory.mktemp("clockshift") / "libclockshift.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(TESTS / "clockshift.c"), "-ldl"], check=True)
    return lib


@pytest.mark.slow  # reason: compiles an LD_PRELOAD shim and runs the daemon through clock steps (about 9 s)
def test_wall_clock_jumps_change_no_timing(stub_frame_package, camera_frames, tmp_path, mqtt_broker, clockshift):
    package = package_with_unknown_threshold(stub_frame_package, tmp_path / "pkg", 1e9)
    classes = read_card(package).classes
    incoming = tmp_path / "in"
    incoming.mkdir()
    cfg = write_config(
        tmp_path / "e.yaml",
        package,
        {"kind": "directory", "path": str(incoming), "settle_s": 1.0, "poll_s": 0.1},
        {"mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port, "queue_path": str(tmp_path / "q.sqlite")}},
    )
    text = cfg.read_text().replace(
        "camera: allsky\n",
        "camera: allsky\n"
        f"  safety: {{safe_classes: [{', '.join(classes)}], hold_frames: 2, hold_s: 3.0, stale_after_s: 20.0}}\n"
        "  sky_state: {hysteresis_frames: 1, stale_after_s: 20.0}\n",
    )
    cfg.write_text(text)
    shift = tmp_path / "shift"
    shift.write_text("0\n")
    env = {**os.environ, "LD_PRELOAD": str(clockshift), "CLOCKSHIFT_FILE": str(shift)}
    col = Collector(mqtt_broker, f"{topic_root(cfg)}/#", protocol=mqtt.MQTTv5)
    daemon = subprocess.Popen([sys.executable, "-m", "skyedge", "run", "--config", str(cfg)], env=env)
    try:

        def classified(name):
            return any(p["frame_id"] == name for p in _payloads(col, "classification"))

        _copy(camera_frames[:1], incoming, "a-")
        assert wait_for(lambda: classified(f"a-{camera_frames[0].name}"), timeout=30)
        shift.write_text("-7200\n")  # the wall clock steps back two hours
        time.sleep(0.3)
        _copy(camera_frames[1:2], incoming, "b-")  # written by the real clock: two hours in the daemon's future
        assert wait_for(lambda: classified(f"b-{camera_frames[1].name}"), timeout=10), (
            "a file from the future never settled"
        )
        second = time.monotonic()
        assert wait_for(lambda: any(e["details"]["safe"] for e in _events(col, "safety_change")), timeout=10)
        held = time.monotonic() - second
        assert held < 8.0  # hold_s 3 s of real time after the first safe frame, not 2 h (margin for slow machines)
        shift.write_text("7200\n")  # and forward four hours
        time.sleep(3.0)
        _copy(camera_frames[2:3], incoming, "c-")
        assert wait_for(lambda: classified(f"c-{camera_frames[2].name}"), timeout=10)
        time.sleep(1.0)
        assert daemon.poll() is None
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    states = [s["state"] for s in _payloads(col, "state")]
    assert "stale" not in states, states  # a jump forward is not silence
    safety = [e["details"]["safe"] for e in _events(col, "safety_change")]
    assert safety == [True], safety  # safe once held; never tripped by a jump
    latencies = [p["latency_ms"]["total"] for p in _payloads(col, "classification")]
    assert len(latencies) == 3 and all(0 <= v < 5000 for v in latencies), latencies
    col.close()
