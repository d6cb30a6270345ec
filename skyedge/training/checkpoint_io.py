"""What a run directory records about itself: the checkpoint, provenance (git revision, config hash), and the
summaries both tasks write."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import torch
from torch import nn

from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import Loaded


def git_revision() -> str | None:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        return None


def config_sha256(cfg: TrainConfig) -> str:
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()


def save_checkpoint(out: Path, model: str, model_args: dict, module: nn.Module) -> None:
    """``checkpoint.pt``: the registered model name, its keyword arguments, and the weights."""
    torch.save({"model": model, "model_args": model_args, "state_dict": module.state_dict()}, out / "checkpoint.pt")


def summary(report: dict) -> dict:
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def check_classes(test: Loaded, classes: list[str]) -> None:
    if list(test.classes) != list(classes):
        raise ValueError(f"test data classes {test.classes} differ from the training classes {classes}")


