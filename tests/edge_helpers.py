"""Deployment files and offline references for the edge tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml


def write_config(path: Path, package: Path, source: dict, reporters: dict, **extra) -> Path:
    """A deployment YAML for one pipeline."""
    cfg = {
        "site": "test-site",
        "device": "dev-1",
        "model": {"package": str(package), "precision": extra.pop("precision", "fp32")},
        "backend": {"kind": "onnxruntime", "batch_size": extra.pop("batch_size", 8), "max_wait_ms": 20},
        "pipelines": [{"camera": extra.pop("camera", "allsky"), "source": source}],
        "reporters": reporters,
        **extra,
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


def offline_frame_probabilities(package: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """What ONNX Runtime says for each file, preprocessed by the core exactly once, outside the runtime."""
    import onnxruntime as ort

    from skyedge.imageio import read_frame
    from skyedge.model_card import read_card
    from skyedge.preprocess import prepare_frame

    card = read_card(package)
    sess = ort.InferenceSession(str(package / "model.onnx"), providers=["CPUExecutionProvider"])
    out = {}
    for f in files:
        x = prepare_frame(read_frame(f)[0], card.preprocess)[None]
        out[f.name] = sess.run(["probabilities"], {"image": x})[0][0]
    return out


def package_with_unknown_threshold(package: Path, out: Path, threshold: float) -> Path:
    """A copy of ``package`` whose card puts the open-set threshold at ``threshold`` (model files unchanged)."""
    import shutil

    from skyedge.model_card import read_card, write_card

    shutil.copytree(package, out)
    card = read_card(out)
    write_card(card.model_copy(update={"metric_head": card.metric_head.model_copy(update={"unknown_threshold": threshold})}), out)
    return out
