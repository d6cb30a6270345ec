"""Boltwood II and INDI Weather Watcher files: every field where Clarity II's documentation puts it, written
atomically, and stale once the camera stops (checked by a running daemon)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from edge_helpers import RunningDaemon, deliver, wait_for, write_config

from skyedge.edge.config import WeatherFilesSection
from skyedge.edge.observatory.weather_files import Reading, WeatherFiles, boltwood_line

# Clarity II's key to the data file: (first column, last column), 1-based, of each field.
COLUMNS = {
    "date": (1, 10),
    "time": (12, 22),
    "T": (24, 24),
    "V": (26, 26),
    "sky": (28, 33),
    "ambient": (35, 40),
    "sensor": (42, 47),
    "wind": (49, 54),
    "humidity": (56, 58),
    "dew": (60, 65),
    "heater": (67, 69),
    "rain_flag": (71, 71),
    "wet_flag": (73, 73),
    "since": (75, 79),
    "now_days": (81, 92),
    "cloud": (94, 94),
    "wind_cond": (96, 96),
    "rain_cond": (98, 98),
    "daylight": (100, 100),
    "close": (102, 102),
    "alert": (104, 104),
}


def fields(line: str) -> dict[str, str]:
    return {k: line[a - 1 : b].strip() for k, (a, b) in COLUMNS.items()}


def test_boltwood_line_fields_sit_in_their_columns():
    now = datetime(2026, 12, 3, 22, 15, 30, 250000).timestamp()
    r = Reading(at=now - 42, label="clear", cloud_cover=5.0, sun_alt_deg=-30.0, safe=True)
    line = boltwood_line(r, now, cloud=1, daylight=1, stale=False)
    f = fields(line)
    assert f["date"] == "2026-12-03" and f["time"] == "22:15:30.25" and (f["T"], f["V"]) == ("C", "K")
    assert f["since"] == "00042" and (f["cloud"], f["daylight"], f["close"], f["alert"]) == ("1", "1", "0", "0")
    assert (f["wind_cond"], f["rain_cond"]) == ("0", "0")  # not measured: unknown
    # VB6 Now(): days since 1899-12-30 (local time), 5 decimals.
    days = (datetime.fromtimestamp(now) - datetime(1899, 12, 30)).total_seconds() / 86400
    assert float(f["now_days"]) == pytest.approx(days, abs=1e-5)
    assert len(line) == 104 and line.split()[0] == "2026-12-03"
    stale = fields(boltwood_line(r, now, cloud=1, daylight=1, stale=True))
    assert (stale["cloud"], stale["close"], stale["alert"]) == ("0", "1", "1")


def test_conditions_follow_the_cloud_cover_or_the_class(tmp_path):
    section = WeatherFilesSection(boltwood=tmp_path / "b.txt", weather_watcher=tmp_path / "w.txt")
    files = WeatherFiles(section, ["clear"])
    at = time.time()
    cases = [
        (Reading(at, "clear", 10.0, -30.0, True), 1, 1),
        (Reading(at, "clear", 45.0, -30.0, False), 2, 1),
        (Reading(at, "cloudy", 90.0, -5.0, False), 3, 2),
        (Reading(at, "cloudy", None, None, False), 3, 1),
        (Reading(at, "arc", None, None, False), 2, 1),
        (Reading(at, "unrecognised", None, None, False), 0, 0),
        (Reading(at, "day", None, 20.0, False), 0, 3),
    ]
    for reading, cloud, daylight in cases:
        files.update(reading)
        f = fields((tmp_path / "b.txt").read_text().rstrip("\n"))
        assert (int(f["cloud"]), int(f["daylight"])) == (cloud, daylight), reading
        assert f["close"] == ("0" if reading.safe else "1")
        watcher = dict(line.split("=", 1) for line in (tmp_path / "w.txt").read_text().splitlines())
        want = reading.cloud_cover if reading.cloud_cover is not None else (0.0 if reading.safe else 100.0)
        assert float(watcher["clouds"]) == want and watcher["skyedge_class"] == reading.label
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary file left behind


def test_a_running_daemon_writes_both_files_and_marks_them_stale_when_the_camera_stops(
    stub_frame_package, camera_frames, tmp_path
):
    incoming = tmp_path / "in"
    incoming.mkdir()
    boltwood, watcher = tmp_path / "boltwood.txt", tmp_path / "watcher.txt"
    files = {"boltwood": str(boltwood), "weather_watcher": str(watcher), "stale_after_s": 1.5}
    cfg = write_config(
        tmp_path / "e.yaml",
        stub_frame_package,
        {"kind": "directory", "path": str(incoming), "settle_s": 0, "poll_s": 0.05},
        {"jsonl": {"path": str(tmp_path / "r.jsonl")}},
        script=["clear"],
        pipeline={"weather_files": files, "safety": {"hold_frames": 2}},
    )
    with RunningDaemon(cfg) as daemon:
        for f in camera_frames[:3]:
            deliver(f, incoming / f.name)
        assert wait_for(lambda: boltwood.exists() and fields(boltwood.read_text())["close"] == "0", timeout=15)
        fresh = fields(boltwood.read_text())
        assert fresh["cloud"] == "1" and fresh["alert"] == "0" and int(fresh["since"]) <= 1
        watched = dict(line.split("=", 1) for line in watcher.read_text().splitlines())
        assert watched["clouds"] == "0.0" and watched["skyedge_stale"] == "0"
        # The camera stops delivering: the files go stale on the publisher's clock, without a new frame.
        assert wait_for(lambda: fields(boltwood.read_text())["alert"] == "1", timeout=10)
        stale = fields(boltwood.read_text())
        assert stale["cloud"] == "0" and stale["close"] == "1" and int(stale["since"]) >= 1
        watched = dict(line.split("=", 1) for line in watcher.read_text().splitlines())
        assert watched["clouds"] == "100.0" and watched["skyedge_stale"] == "1"
        assert daemon.alive()
