"""``skyedge engine``: build a TensorRT engine from a package's ONNX, on the device that will run it.

One path for TensorRT 10.3 (JetPack 6) and 11.x: precision comes from the ONNX
file (FP32, FP16, or Q/DQ INT8) and the network is created STRONGLY_TYPED, so
neither the FP16/INT8 builder flags nor an INT8 calibrator (both removed in 11)
are used. Not executed in CI (no TensorRT there); covered by tests marked
``tensorrt``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from skyedge.engines import EngineError, EngineSidecar, engine_name, strongly_typed_network
from skyedge.model_card import ModelCard, read_card
from skyedge.precisions import card_key_for, withheld_note
from skyedge.shards import sha256_file

log = logging.getLogger(__name__)

TIMING_CACHE = "timing.cache"


@dataclass(frozen=True)
class GpuInfo:
    """The CUDA device an engine is built for."""

    name: str
    compute_capability: str


def current_gpu(index: int = 0) -> GpuInfo:
    """Name and compute capability of CUDA device ``index`` (pycuda)."""
    import pycuda.driver as cuda

    cuda.init()
    dev = cuda.Device(index)
    major, minor = dev.compute_capability()
    return GpuInfo(dev.name(), f"{major}.{minor}")


def profile_shapes(
    card: ModelCard, batches: list[int], epochs: tuple[int, int, int] | None = None, graph: str = "full"
) -> dict:
    """Input name -> (min, opt, max) shapes: batch from ``batches``, time from the card's epoch limits (the step
    graph: mostly one epoch per call, up to a whole history for an object found late)."""
    lo, opt, hi = min(batches), sorted(batches)[len(batches) // 2], max(batches)
    if card.sequence is not None and epochs is None:
        first = 1 if graph == "step" else card.sequence.min_epochs
        epochs = (first, first if graph == "step" else card.sequence.max_epochs, card.sequence.max_epochs)
    shapes = {}
    for spec in card.step.inputs if graph == "step" else card.inputs:
        triple = []
        for which in range(3):
            dims = []
            for axis, dim in enumerate(spec.shape):
                if isinstance(dim, int):
                    dims.append(dim)
                elif axis == 0:
                    dims.append((lo, opt, hi)[which])
                else:
                    dims.append(epochs[which])
            triple.append(tuple(dims))
        shapes[spec.name] = tuple(triple)
    return shapes


def _parser_errors(parser) -> list[str]:
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = getattr(err, "node_name", lambda: "")() or f"#{err.node()}"
        op = getattr(err, "node_operator", lambda: "")()
        lines.append(f"node {node} ({op or '?'}): {err.desc()} [{err.code()}]")
    return lines


def build_engine(
    package: str | Path,
    precision: str,
    batches: list[int],
    *,
    workspace_mib: int = 1024,
    optimization_level: int = 3,
    dla_core: int | None = None,
    graph: str = "full",
) -> Path:
    """Build ``engines/[step-]<precision>-<gpu>-trt<ver>.engine`` (+ sidecar) from the package's ONNX for
    ``precision`` and ``graph`` (``full``, or a sequence model's ``step`` graph, which the edge runs)."""
    import tensorrt as trt

    package = Path(package)
    card = read_card(package)
    if graph == "step" and card.step is None:
        raise EngineError(f"{package}: the card has no step graph (only sequence models exported by this version do)")
    files = card.step.files if graph == "step" else card.files
    key = card_key_for(precision, "tensorrt", files)
    if key not in files:
        raise EngineError(
            f"{package}: the card lists no {precision} {graph} graph (files: {sorted(files)})" + withheld_note(package, precision)
        )
    onnx_path = package / files[key]
    gpu = current_gpu()
    engines = package / "engines"
    engines.mkdir(exist_ok=True)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = strongly_typed_network(builder, trt)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineError(
            f"{onnx_path}: TensorRT's ONNX parser refused the model:\n  " + "\n  ".join(_parser_errors(parser))
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.builder_optimization_level = optimization_level
    shapes = profile_shapes(card, batches, graph=graph)
    profile = builder.create_optimization_profile()
    for name, (lo, opt, hi) in shapes.items():
        profile.set_shape(name, lo, opt, hi)
    config.add_optimization_profile(profile)
    cache_file = engines / TIMING_CACHE
    cache = config.create_timing_cache(cache_file.read_bytes() if cache_file.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    started = time.perf_counter()
    log.info("building %s engine for %s (TensorRT %s) from %s", precision, gpu.name, trt.__version__, onnx_path.name)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"{onnx_path}: TensorRT could not build an engine (see the TensorRT log above)")
    seconds = time.perf_counter() - started
    cache_file.write_bytes(memoryview(config.get_timing_cache().serialize()))
    target = engines / engine_name(precision, gpu.name, trt.__version__, graph, dla_core)
    target.write_bytes(memoryview(serialized))
    EngineSidecar(
        tensorrt=trt.__version__,
        gpu=gpu.name,
        compute_capability=gpu.compute_capability,
        precision=precision,
        onnx_file=onnx_path.name,
        onnx_sha256=sha256_file(onnx_path),
        profiles=[{k: [list(s) for s in v] for k, v in shapes.items()}],
        dla_core=dla_core,
        build_seconds=round(seconds, 1),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    ).write(target)
    log.info("engine %s built in %.0fs", target, seconds)
    return target
