"""TensorRT engine files and their sidecars: which engine a package holds, and whether it may be used.

An engine is only valid for the TensorRT version, GPU and ONNX file it was
built from. The sidecar ``<engine>.json`` records them; :func:`check_sidecar`
refuses a stale or foreign engine with a message saying what differs, so it is
rebuilt, never silently used. No TensorRT import here: the device facts are
passed in by the caller.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from skyedge.errors import SkyedgeError

SIDECAR_SCHEMA = "skyedge.engine/1"


class EngineError(SkyedgeError, ValueError):
    """An engine that must not be used here (missing, stale, or built for other hardware)."""


@dataclass(frozen=True)
class EngineSidecar:
    """What an engine was built from and for."""

    tensorrt: str
    gpu: str
    compute_capability: str
    precision: str
    onnx_file: str
    onnx_sha256: str
    profiles: list[dict] = field(default_factory=list)
    dla_core: int | None = None
    build_seconds: float = 0.0
    created: str = ""
    schema: str = SIDECAR_SCHEMA

    def write(self, engine_path: Path) -> Path:
        """Write next to ``engine_path`` as ``<engine>.json``."""
        path = sidecar_path(engine_path)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def sidecar_path(engine_path: Path) -> Path:
    """``engines/x.engine`` -> ``engines/x.engine.json``."""
    return engine_path.with_name(engine_path.name + ".json")


def gpu_slug(name: str) -> str:
    """A file-name-safe GPU name: 'NVIDIA Jetson Orin Nano' -> 'jetson-orin-nano'."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower().replace("nvidia", "")).strip("-")
    return slug or "gpu"


GRAPHS = ("full", "step")  # a package's graphs: the model, and a sequence model's incremental step graph


def engine_name(
    precision: str, gpu: str, tensorrt_version: str, graph: str = "full", dla_core: int | None = None
) -> str:
    """``[step-]<precision>-<gpu>[-dla<N>]-trt<major.minor>.engine``: one file per (graph, precision, GPU or DLA
    core, TensorRT version), so an engine built for a DLA core never replaces the GPU's."""
    major_minor = ".".join(tensorrt_version.split(".")[:2])
    prefix = "" if graph == "full" else f"{graph}-"
    dla = "" if dla_core is None else f"-dla{dla_core}"
    return f"{prefix}{precision}-{gpu_slug(gpu)}{dla}-trt{major_minor}.engine"


def read_sidecar(engine_path: Path) -> EngineSidecar:
    """Read an engine's sidecar, or say why it cannot be trusted."""
    path = sidecar_path(engine_path)
    if not engine_path.exists():
        raise EngineError(f"{engine_path}: no such engine; build it on this device with `skyedge engine`")
    if not path.exists():
        raise EngineError(f"{engine_path}: no sidecar {path.name}; rebuild the engine with `skyedge engine`")
    try:
        data = json.loads(path.read_text())
        if data.get("schema") != SIDECAR_SCHEMA:
            raise EngineError(f"{path}: schema {data.get('schema')!r}, expected {SIDECAR_SCHEMA!r}")
        return EngineSidecar(**data)
    except (json.JSONDecodeError, TypeError) as exc:
        raise EngineError(f"{path}: unreadable engine sidecar ({exc}); rebuild the engine") from None


def check_sidecar(
    engine_path: Path,
    *,
    tensorrt_version: str,
    gpu: str,
    compute_capability: str,
    onnx_sha256: str,
    dla_core: int | None = None,
) -> EngineSidecar:
    """The sidecar if the engine matches this TensorRT, GPU (or DLA core) and ONNX file; else :class:`EngineError`."""
    side = read_sidecar(engine_path)
    problems = []
    if side.dla_core != dla_core:
        built = "the GPU" if side.dla_core is None else f"DLA core {side.dla_core}"
        wanted = "the GPU" if dla_core is None else f"DLA core {dla_core}"
        problems.append(f"built for {built}, backend.dla_core asks for {wanted}")
    if side.tensorrt != tensorrt_version:
        problems.append(f"built with TensorRT {side.tensorrt}, this device runs {tensorrt_version}")
    if side.gpu != gpu or side.compute_capability != compute_capability:
        problems.append(
            f"built for {side.gpu} (sm {side.compute_capability}), this GPU is {gpu} (sm {compute_capability})"
        )
    if side.onnx_sha256 != onnx_sha256:
        problems.append(f"built from a different {side.onnx_file} (sha256 {side.onnx_sha256[:12]}…)")
    if problems:
        raise EngineError(
            f"{engine_path}: stale or foreign engine: " + "; ".join(problems) + ". Rebuild it with `skyedge engine`."
        )
    return side


# ---------------------------------------------------------------- TensorRT 10.3 / 11.x differences, in one place


def tensorrt_major_minor(version: str) -> tuple[int, int]:
    """``"10.3.0.30"`` -> ``(10, 3)``."""
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int(minor)


def strongly_typed_network(builder, trt):
    """An empty strongly typed network: TensorRT 10.x needs the creation flag; 11.x is always strongly typed."""
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if flag is None or tensorrt_major_minor(trt.__version__)[0] >= 11:
        return builder.create_network(0)
    return builder.create_network(1 << int(flag))


def io_tensors(engine, trt) -> tuple[list[str], list[str]]:
    """(input names, output names) of a deserialized engine, by the named-tensor API both versions share."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    return inputs, [n for n in names if n not in inputs]
