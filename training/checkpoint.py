"""Rebuild a trained model from its run directory: the public way other stages load a training run.

``checkpoint.pt`` holds the weights and the ``spec`` that rebuilds the module;
``card.json`` the model-card fields the run measured; ``config.json`` the recipe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from skyedge.errors import SkyedgeError
from skyedge.training.models.frame import FrameClassifier, FrameEmbedder
from skyedge.training.models.metric_heads import MahalanobisHead, MinDistance, RidgeHead, SoftmaxHead
from skyedge.training.models.sequence import SequenceClassifier


class RunError(SkyedgeError, ValueError):
    """A run directory that cannot be loaded."""


@dataclass
class TrainedRun:
    """A loaded run: the eval-mode module plus what the run wrote beside it."""

    path: Path
    model: nn.Module
    spec: dict
    card: dict
    config: dict
    metrics: dict


def _frame_model(spec: dict) -> nn.Module:
    k, d = spec["num_classes"], spec["embedding_dim"]
    embedder = FrameEmbedder(spec["backbone"], spec["in_channels"], spec["size"], d, k, spec["normalize"])
    zeros_means, eye = np.zeros((k, d)), np.eye(d)
    heads = {
        "mahalanobis": lambda: MahalanobisHead(zeros_means, eye),
        "ridge": lambda: RidgeHead(np.zeros((k, d)), np.zeros(k), 1.0),
        "softmax": lambda: SoftmaxHead(embedder.logits),
    }
    if spec["classifier"] not in heads:
        raise RunError(f"checkpoint spec: unknown classifier {spec['classifier']!r}")
    return FrameClassifier(embedder, heads[spec["classifier"]](), MinDistance(zeros_means, eye))


def _sequence_model(spec: dict) -> nn.Module:
    return SequenceClassifier(
        spec["arch"],
        spec["num_classes"],
        spec["num_conditions"],
        spec["hidden"],
        tuple(spec["encoder_channels"]),
        spec["use_conditions"],
        spec["stamp_size"],
        spec.get("photometry_radius", 0),
        spec.get("asinh_input", True),
        spec.get("difference_channel", False),
    )


def load_run(run_dir: str | Path) -> TrainedRun:
    """Load ``run_dir`` (written by ``skyedge train``) with its model in eval mode on the CPU."""
    path = Path(run_dir)
    for name in ("checkpoint.pt", "card.json"):
        if not (path / name).exists():
            raise RunError(f"{path}: no {name}; is this a `skyedge train` run directory?")
    blob = torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
    spec = blob["spec"]
    model = _frame_model(spec) if spec["task"] == "frame" else _sequence_model(spec)
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise RunError(f"{path / 'checkpoint.pt'}: weights do not fit the recorded spec: {exc}") from None
    model.eval()

    def read(name: str) -> dict:
        file = path / name
        return json.loads(file.read_text()) if file.exists() else {}

    return TrainedRun(path, model, spec, read("card.json"), read("config.json"), read("metrics.json"))
