"""TensorRT engines: the sidecar check everywhere; building and running engines only where TensorRT and a GPU are."""

from __future__ import annotations

import numpy as np
import pytest

from skyedge.engines import EngineError, EngineSidecar, check_sidecar, engine_name, gpu_slug, read_sidecar


def _sidecar(**over):
    base = dict(
        tensorrt="10.3.0",
        gpu="Orin (nvgpu)",
        compute_capability="8.7",
        precision="int8",
        onnx_file="model.int8.onnx",
        onnx_sha256="a" * 64,
    )
    return EngineSidecar(**{**base, **over})


def test_engine_names_are_per_precision_gpu_and_version():
    assert engine_name("fp16", "NVIDIA Jetson Orin Nano", "10.3.0.30") == "fp16-jetson-orin-nano-trt10.3.engine"
    # A DLA core's engine has a name of its own: building one never replaces the GPU's.
    assert engine_name("int8", "Orin (nvgpu)", "10.3.0", dla_core=1) == "int8-orin-nvgpu-dla1-trt10.3.engine"
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"


def test_stale_or_foreign_engines_are_refused_with_the_reason(tmp_path):
    engine = tmp_path / "int8.engine"
    engine.write_bytes(b"serialized")
    _sidecar().write(engine)
    facts = dict(tensorrt_version="10.3.0", gpu="Orin (nvgpu)", compute_capability="8.7", onnx_sha256="a" * 64)
    assert check_sidecar(engine, **facts).precision == "int8"
    for change, needle in (
        ({"tensorrt_version": "11.0.0"}, "TensorRT 10.3.0"),
        ({"gpu": "NVIDIA H100", "compute_capability": "9.0"}, "built for Orin"),
        ({"onnx_sha256": "b" * 64}, "different model.int8.onnx"),
        ({"dla_core": 0}, "built for the GPU, backend.dla_core asks for DLA core 0"),
    ):
        with pytest.raises(EngineError, match=needle):
            check_sidecar(engine, **{**facts, **change})
    _sidecar(dla_core=0).write(engine)
    assert check_sidecar(engine, **facts, dla_core=0).dla_core == 0
    with pytest.raises(EngineError, match="built for DLA core 0, backend.dla_core asks for the GPU"):
        check_sidecar(engine, **facts)
    (tmp_path / "int8.engine.json").unlink()
    with pytest.raises(EngineError, match="no sidecar"):
        read_sidecar(engine)
    with pytest.raises(EngineError, match="no such engine"):
        read_sidecar(tmp_path / "missing.engine")


@pytest.mark.slow
def test_profiles_cover_batch_and_the_cards_epoch_range(sequence_package):
    from skyedge.export.engine import profile_shapes
    from skyedge.model_card import read_card

    card = read_card(sequence_package)
    shapes = profile_shapes(card, [1, 8, 32])
    lo, opt, hi = shapes["stamps"]
    assert lo[:2] == (1, card.sequence.min_epochs) and opt[0] == 8 and hi[:2] == (32, card.sequence.max_epochs)
    assert hi[2:] == (1, card.sequence.stamp_size, card.sequence.stamp_size)


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_builds_and_matches_onnxruntime(frame_package, precision):
    """Needs TensorRT 10.3+/11.x, pycuda and a GPU: build, load through the backend, compare with ONNX Runtime."""
    from skyedge.dataset_inputs import random_inputs
    from skyedge.edge.backends import create_backend
    from skyedge.edge.backends.onnxruntime_backend import OnnxRuntimeBackend
    from skyedge.edge.package import open_package
    from skyedge.export.engine import build_engine

    path = build_engine(frame_package, precision, [1, 8, 32])
    assert read_sidecar(path).precision == precision
    package = open_package(frame_package, precision, "tensorrt")
    trt_backend = create_backend("tensorrt", package, batch_size=8)
    ort_backend = OnnxRuntimeBackend(package.onnx_file)  # the same (symmetric INT8) file TensorRT built from
    try:
        for batch in (1, 5, 8):
            inputs = random_inputs(package.card, batch, seed=batch)
            got, want = trt_backend.infer(inputs), ort_backend.infer(inputs)
            agree = (got["probabilities"].argmax(1) == want["probabilities"].argmax(1)).mean()
            assert got["probabilities"].shape == want["probabilities"].shape
            assert agree >= (1.0 if precision == "fp32" else 0.8)
            if precision == "fp32":
                np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-3)
    finally:
        trt_backend.close()
