"""ONNX Runtime against PyTorch on the same inputs: the numbers that say an export is faithful."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import torch


def run_ort(session: ort.InferenceSession, inputs: dict[str, np.ndarray], batch: int = 64) -> dict[str, np.ndarray]:
    """All outputs for ``inputs``, in micro-batches, concatenated on the item axis."""
    names = [o.name for o in session.get_outputs()]
    n = len(next(iter(inputs.values())))
    parts: dict[str, list] = {k: [] for k in names}
    for i in range(0, n, batch):
        outs = session.run(names, {k: v[i : i + batch] for k, v in inputs.items()})
        for k, v in zip(names, outs, strict=True):
            parts[k].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def run_torch(model: torch.nn.Module, inputs: dict[str, np.ndarray], names: list[str], batch: int = 64):
    """The same for the PyTorch module (inputs in the graph's order)."""
    n = len(next(iter(inputs.values())))
    parts: list[list] = []
    with torch.no_grad():
        for i in range(0, n, batch):
            out = model(*(torch.from_numpy(v[i : i + batch]) for v in inputs.values()))
            out = out if isinstance(out, tuple) else (out,)
            parts.append([o.numpy() for o in out])
    return {name: np.concatenate([p[j] for p in parts]) for j, name in enumerate(names)}


def max_differences(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per output: max absolute difference, and the same relative to the reference's magnitude."""
    out = {}
    for name, ref in reference.items():
        diff = np.abs(ref.astype(np.float64) - other[name].astype(np.float64))
        scale = np.maximum(np.abs(ref.astype(np.float64)), 1.0)
        out[name] = {"max_abs": float(diff.max()), "max_rel": float((diff / scale).max())}
    return out


def top1(probabilities: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
    """Top class per item; for sequences, at each item's last real epoch."""
    if probabilities.ndim == 3:
        last = (lengths if lengths is not None else np.full(len(probabilities), probabilities.shape[1])) - 1
        probabilities = probabilities[np.arange(len(probabilities)), last]
    return probabilities.argmax(axis=1)
