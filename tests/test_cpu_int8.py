"""The U8S8 form on a CPU that can saturate it: found from the CPU's flags and the package's quantization record."""

from __future__ import annotations

import json
import logging
import shutil

import pytest

from skyedge.cpu_int8 import full_range, recorded_weights, saturation_note, vnni, x86_without_vnni

AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx avx2 fma bmi2\n"
VNNI = AVX2.replace("bmi2", "bmi2 avx512f avx512_vnni")
AVX_VNNI = AVX2.replace("bmi2", "bmi2 avx_vnni")
U8S8 = {"target": "cpu", "file": "model.int8-cpu.onnx", "activations": "uint8 asymmetric", "weights": "int8 symmetric per-channel"}
S8S8 = {"target": "tensorrt", "file": "model.int8.onnx", "activations": "int8 symmetric", "weights": "int8 symmetric per-channel"}


def test_vnni_is_read_from_the_cpu_flags_on_x86_only():
    assert vnni(AVX2, "x86_64") is False and vnni(VNNI, "x86_64") is True and vnni(AVX_VNNI, "x86_64") is True
    assert vnni(AVX2, "aarch64") is None and vnni("processor\t: 0\n", "x86_64") is None  # not x86, or unreadable
    assert x86_without_vnni(AVX2, "x86_64") is True
    assert x86_without_vnni(VNNI, "x86_64") is False
    assert x86_without_vnni(AVX_VNNI, "AMD64") is False
    assert x86_without_vnni(AVX2, "aarch64") is False  # a Jetson's CPU: no such kernels
    assert x86_without_vnni("processor\t: 0\n", "x86_64") is False  # flags unreadable: no warning on a guess


def _package(tmp_path, records):
    from stub_packages import frame_package

    from skyedge.model_card import read_card, write_card

    package = frame_package(tmp_path / "pkg")
    shutil.copy(package / "model.onnx", package / "model.int8-cpu.onnx")
    card = read_card(package).model_dump(mode="json")
    card["files"]["int8-cpu"] = "model.int8-cpu.onnx"
    card["sha256"].pop("model.int8-cpu.onnx", None)
    write_card(card, package)
    (package / "report.json").write_text(json.dumps({"quantization": records}))
    return package


def test_only_the_full_range_u8s8_form_is_at_risk(tmp_path):
    package = _package(tmp_path, [U8S8, S8S8])
    assert full_range(package, "model.int8-cpu.onnx")
    assert not full_range(package, "model.int8.onnx")  # TensorRT's form accumulates in int32
    assert not full_range(package, "model.onnx")  # nothing recorded
    assert recorded_weights(package, "model.int8-cpu.onnx") == U8S8["weights"]
    assert recorded_weights(package, "model.onnx") is None
    note = saturation_note(package, "model.int8-cpu.onnx", AVX2, "x86_64")
    assert "model.int8-cpu.onnx" in note and "without --full-range" in note and "--target cpu`" in note and "VNNI" in note
    assert saturation_note(package, "model.int8-cpu.onnx", VNNI, "x86_64") == ""
    assert saturation_note(package, "model.int8.onnx", AVX2, "x86_64") == ""
    seven = _package(tmp_path / "7", [{**U8S8, "weights": "int8 symmetric per-channel (7-bit range)"}])
    assert saturation_note(seven, "model.int8-cpu.onnx", AVX2, "x86_64") == ""
    (seven / "report.json").write_text("{not json")
    assert saturation_note(seven, "model.int8-cpu.onnx", AVX2, "x86_64") == ""  # unreadable report: no guess


@pytest.mark.parametrize("has_vnni", [False, True], ids=["avx2-only", "with-vnni"])
def test_the_edge_warns_at_start_up_where_this_cpu_can_saturate_the_file_it_runs(tmp_path, caplog, monkeypatch, has_vnni):
    """`skyedge run` with `precision: int8` on ONNX Runtime opens the U8S8 file; on an x86 CPU without VNNI the log
    says that its 8-bit weights can saturate there and how to calibrate it again. The CPU's flags are this
    machine's, so the probe is set to each answer in turn."""
    import skyedge.cpu_int8 as cpu_int8
    from skyedge.edge.package import open_package

    monkeypatch.setattr(cpu_int8, "x86_without_vnni", lambda cpuinfo=None, machine=None: not has_vnni)
    package = _package(tmp_path, [U8S8])
    with caplog.at_level(logging.WARNING, logger="skyedge.edge.package"):
        opened = open_package(package, "int8", "onnxruntime")
    assert opened.key == "int8-cpu"
    assert ("without --full-range" in caplog.text) is (not has_vnni)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="skyedge.edge.package"):
        open_package(package, "fp32", "onnxruntime")
    assert "--full-range" not in caplog.text
