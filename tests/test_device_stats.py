"""Temperatures and GPU load from sysfs-shaped files (a Jetson's layout, written by the test)."""

from __future__ import annotations

from skyedge.edge.runtime.device_stats import gpu_load, temperatures


def test_jetson_thermal_zones_and_gpu_load(tmp_path):
    for i, (name, milli) in enumerate([("cpu-thermal", 48500), ("gpu-thermal", 47000), ("soc0-thermal", 45250)]):
        zone = tmp_path / f"thermal_zone{i}"
        zone.mkdir()
        (zone / "type").write_text(name + "\n")
        (zone / "temp").write_text(f"{milli}\n")
    broken = tmp_path / "thermal_zone9"
    broken.mkdir()
    (broken / "type").write_text("bad\n")  # no temp file: skipped, not an error
    assert temperatures(tmp_path) == {"cpu": 48.5, "gpu": 47.0, "soc0_thermal": 45.2}
    load = tmp_path / "load"
    load.write_text("123\n")
    assert gpu_load([tmp_path / "missing", load]) == 0.123
    assert gpu_load([tmp_path / "missing"]) is None
