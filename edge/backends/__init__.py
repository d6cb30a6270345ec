"""Inference backends behind one interface: ``infer(inputs) -> outputs``, ``input_names``, ``close()``.

Chosen by name in the deployment YAML (``backend.kind``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil

log = logging.getLogger(__name__)


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


def create_backend(kind: str, package, settings):
    """Build the backend ``kind`` (already resolved) for a verified package."""
    if kind == "onnxruntime":
        from skyedge.edge.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(package.onnx_file, settings.providers, settings.threads)
    if kind == "tensorrt":
        from skyedge.edge.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(package, settings.batch_size, settings.engine_dir)
    raise ValueError(f"backend.kind: unknown backend {kind!r}")
