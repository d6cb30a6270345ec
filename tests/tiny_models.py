"""Tiny real trainings shared by the training, export, calibration and edge tests (one of each per session)."""

from __future__ import annotations

from pathlib import Path

from skyedge.training.config import TrainConfig


def recipe(root: Path, task: str, **overrides) -> TrainConfig:
    """A seconds-long recipe on freshly simulated data under ``root``."""
    base = {
        "name": f"test-{task}",
        "task": task,
        "seed": 0,
        "out": str(root / "run"),
        "data": {
            "train": {"path": str(root / "train"), "simulate": {"n": 0, "seed": 1}},
            "test": {"path": str(root / "test"), "simulate": {"n": 0, "seed": 2}},
            "val_fraction": 0.2,
        },
        "train": {"epochs": 4, "batch_size": 32, "lr": 0.003, "threads": 2},
    }
    if task == "frame":
        base["data"]["train"]["simulate"] = {"n": 300, "seed": 1, "config": {"size": 64}}
        base["data"]["test"]["simulate"] = {"n": 120, "seed": 2, "config": {"size": 64}}
        base["preprocess"] = {"size": [32, 32]}
        base["frame_model"] = {"loss": "cross_entropy", "classifier": "mahalanobis", "embedding_dim": 8}
    else:
        cadence = {"epochs": 8}
        base["data"]["train"]["simulate"] = {"n": 420, "seed": 1, "config": {"cadence": cadence}}
        base["data"]["test"]["simulate"] = {"n": 140, "seed": 2, "config": {"cadence": cadence}}
        # The recommended flux scale (stamps in the reference epoch's noise) and difference channel (each stamp minus
        # the mean of the epochs before, a running sum the step graph carries), so export (step graph against the
        # full graph, the TensorRT table), calibration and its gate are tested on them; the LSTM (rcnn) is kept, as
        # the architecture whose export needs the most care (docs/precision.md).
        base["sequence_model"] = {
            "hidden": 24,
            "encoder_channels": [8, 16],
            "flux_scale": "noise",
            "asinh_softening": 5.0,
            "conditions": ["fwhm", "log_sky", "airmass", "log_dt"],
            "difference_channel": True,
        }
        base["train"]["epochs"] = 12
    base.update(overrides)
    return TrainConfig.model_validate(base)
