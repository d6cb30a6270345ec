"""`skyedge bench`: the table, bench.json and bench.png, and the pipeline efficiency ratio."""

from __future__ import annotations

import json

import pytest

from skyedge.cli import main

pytestmark = pytest.mark.slow


def test_bench_writes_json_png_and_pipeline_ratio(frame_package, tiny_frame_run, tmp_path, capsys):
    from skyedge.training.simulate.allsky import AllskyConfig, simulate_allsky

    cam = tmp_path / "cam"
    simulate_allsky(12, cam, seed=9, cfg=AllskyConfig(size=64), files="fits", workers=1)
    out = tmp_path / "bench"
    args = ["bench", "--model", str(frame_package), "--backend", "onnxruntime", "--precision", "fp32,int8"]
    args += ["--batch", "1,4", "--trials", "2", "--seconds", "0.1", "--pipeline", str(cam / "frames"), "--copies", "1"]
    args += ["--cameras", "2"]  # two cameras at once, sharing the model's batches
    assert main([*args, "--compare-torch", str(tiny_frame_run), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "items/s" in table and "e2e ratio" in table and "per call" in table
    result = json.loads((out / "bench.json").read_text())
    assert len(result["rows"]) == 4
    for row in result["rows"]:
        assert row["items_per_s"] > 0 and row["items_per_s_min"] <= row["items_per_s"] <= row["items_per_s_max"]
        assert row["latency_ms"]["p50"] <= row["latency_ms"]["p99"]
        pipe = row["pipeline"]
        assert pipe["frames"] == 24 and pipe["cameras"] == 2 and pipe["efficiency"] > 0
        assert pipe["frames"] / row["batch"] <= pipe["backend_calls"] <= pipe["frames"]
        assert pipe["frames_per_call"] == pytest.approx(pipe["frames"] / pipe["backend_calls"])
        assert row["accuracy"] is not None  # read beside the speed, from the calibration report
    int8 = next(r for r in result["rows"] if r["precision"] == "int8")
    assert int8["file"] == "model.int8-cpu.onnx"  # ONNX Runtime runs the U8S8 form
    # ... with the weights calibration gave it (7-bit by default), beside whether this CPU has VNNI
    from skyedge.cpu_int8 import vnni

    assert int8["weights"] == "int8 symmetric per-channel (7-bit range)" and result["device"]["vnni"] is vnni()
    assert next(r for r in result["rows"] if r["precision"] == "fp32")["weights"] is None
    assert (out / "bench.png").stat().st_size > 10_000
    # PyTorch eager on the same machine, measured in a subprocess (the edge never imports torch).
    assert result["torch_reference"]["torch"] and all(r["torch_eager"]["speedup"] > 0 for r in result["rows"])
    assert result["device"]["cores"] >= 1 and result["device"]["onnxruntime"]


def test_bench_records_the_jetson_as_info_reads_it(orin_nano, tmp_path, monkeypatch):
    """On a Jetson the bench's device record carries the board, L4T and JetPack release that `skyedge info` reports
    (one reading of /etc/nv_tegra_release, not two that can disagree); off a Jetson, None."""
    from skyedge import info
    from skyedge.edge.tools.bench import device_info

    jetson = device_info()["jetson"]
    assert jetson["model"] == "NVIDIA Jetson Orin Nano Developer Kit" and jetson["l4t"] == "36.4.0" and jetson["jetpack"] == "6.1/6.2"
    monkeypatch.setattr(info, "TEGRA_RELEASE", tmp_path / "absent")
    assert device_info()["jetson"] is None
