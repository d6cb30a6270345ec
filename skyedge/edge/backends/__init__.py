"""Inference backends: anything with ``input_names``, ``infer(batch)`` and ``close()`` (the :class:`Backend` protocol).

Chosen by name in the deployment YAML (``backend.kind``) through
:func:`create_backend`, which also checks once that the graph's inputs are the
card's. Tests and ``skyedge bench`` may hand the runtime any object that
satisfies the protocol.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from skyedge.errors import SkyedgeError

log = logging.getLogger(__name__)

KINDS = ("onnxruntime", "tensorrt", "scripted")


class BackendError(SkyedgeError, ValueError):
    """A backend that cannot run this package as configured."""


@runtime_checkable
class Backend(Protocol):
    """What the runtime needs of a backend; ``infer`` takes and returns name -> array, batch axis first."""

    input_names: list[str]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def tensorrt_usable() -> tuple[bool, str]:
    """Whether the TensorRT backend can run here, and why not."""
    if importlib.util.find_spec("tensorrt") is None:
        return False, "tensorrt is not importable"
    if importlib.util.find_spec("pycuda") is None:
        return False, "pycuda is not installed (pip install skyedge[jetson])"
    if not (shutil.which("nvidia-smi") or os.path.exists("/etc/nv_tegra_release")):
        return False, "no NVIDIA GPU visible"
    return True, ""


def resolve_kind(kind: str) -> str:
    """``auto`` -> ``tensorrt`` when usable, else ``onnxruntime``; logs which and why."""
    if kind != "auto":
        return kind
    ok, why = tensorrt_usable()
    chosen = "tensorrt" if ok else "onnxruntime"
    log.info("backend auto -> %s%s", chosen, "" if ok else f" ({why})")
    return chosen


def create_backend(
    kind: str,
    package,
    *,
    providers: list[str] | None = None,
    threads: int = 0,
    batch_size: int = 8,
    engine_dir: Path | None = None,
    dla_core: int | None = None,
    script: list | None = None,
) -> Backend:
    """Build the backend ``kind`` (already resolved) for a verified package; its inputs must be the card's."""
    if kind == "onnxruntime":
        from skyedge.edge.backends.onnxruntime_backend import OnnxRuntimeBackend

        backend = OnnxRuntimeBackend(package.onnx_file, providers, threads)
    elif kind == "tensorrt":
        from skyedge.edge.backends.tensorrt_backend import TensorRTBackend, engine_from_package

        backend = TensorRTBackend(engine_from_package(package, engine_dir, dla_core), batch_size)
    elif kind == "scripted":
        from skyedge.edge.backends.scripted import ScriptedBackend

        backend = ScriptedBackend(package, script or [])
    else:
        raise BackendError(f"backend.kind: unknown backend {kind!r}; expected one of {', '.join(KINDS)}")
    expected = [t.name for t in package.inputs]
    if sorted(backend.input_names) != sorted(expected):
        backend.close()
        raise BackendError(
            f"{package.onnx_file}: graph inputs {backend.input_names} differ from the card's {expected}"
        )
    return backend
