"""Rebuild a trained model from its run directory: the public way other stages load a training run.

``checkpoint.pt`` holds the weights and the registered model name with its keyword arguments;
``card.json`` the model-card fields the run measured; ``config.json`` the recipe.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from skyedge.errors import SkyedgeError
from skyedge.training.models import create_model


class RunError(SkyedgeError, ValueError):
    """A run directory that cannot be loaded."""


@dataclass
class TrainedRun:
    """A loaded run: the eval-mode module plus what the run wrote beside it."""

    path: Path
    model: nn.Module
    model_name: str
    model_args: dict
    card: dict
    config: dict
    metrics: dict


_LEGACY_FRAME_KEYS = ("backbone", "in_channels", "size", "embedding_dim", "num_classes", "normalize", "classifier")
_NOT_MODEL_ARGS = ("task", "kind", "head_params")


def model_from_blob(blob: dict) -> tuple[str, dict]:
    """(registered model name, keyword arguments) from a checkpoint, including runs saved before the registry."""
    if "model" in blob:
        return blob["model"], dict(blob["model_args"])
    spec = blob["spec"]  # an older run: the same settings, keyed by name
    if spec["task"] == "frame":
        return "frame_classifier", {k: spec[k] for k in _LEGACY_FRAME_KEYS}
    return "sequence_classifier", {k: v for k, v in spec.items() if k not in _NOT_MODEL_ARGS}


def load_run(run_dir: str | Path) -> TrainedRun:
    """Load ``run_dir`` (written by ``skyedge train``) with its model in eval mode on the CPU."""
    path = Path(run_dir)
    for name in ("checkpoint.pt", "card.json"):
        if not (path / name).exists():
            raise RunError(f"{path}: no {name}; is this a `skyedge train` run directory?")
    blob = torch.load(path / "checkpoint.pt", map_location="cpu", weights_only=True)
    name, model_args = model_from_blob(blob)
    try:
        model = create_model(name, **model_args)
    except (TypeError, ValueError) as exc:
        raise RunError(f"{path / 'checkpoint.pt'}: cannot rebuild model {name!r}: {exc}") from None
    try:
        model.load_state_dict(blob["state_dict"])
    except RuntimeError as exc:
        raise RunError(f"{path / 'checkpoint.pt'}: weights do not fit the recorded model arguments: {exc}") from None
    model.eval()

    def read(name: str) -> dict:
        file = path / name
        return json.loads(file.read_text()) if file.exists() else {}

    return TrainedRun(path, model, name, model_args, read("card.json"), read("config.json"), read("metrics.json"))
