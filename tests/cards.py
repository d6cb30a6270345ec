"""Valid model-card dicts for tests (what `skyedge export` writes for each task)."""

from __future__ import annotations

import copy

FRAME_CLASSES = ["arc", "diffuse", "discrete", "cloudy", "moon", "clear"]
SEQUENCE_CLASSES = ["SN", "RRLyrae", "Cepheid", "EB", "nonvariable", "asteroid", "bogus"]


def frame_card() -> dict:
    return copy.deepcopy(
        {
            "schema_version": 1,
            "name": "allsky-tiny",
            "task": "frame",
            "classes": FRAME_CLASSES,
            "inputs": [
                {"name": "image", "role": "image", "dtype": "float32", "shape": ["batch", 1, 64, 64], "layout": "NCHW"}
            ],
            "outputs": [
                {"name": "probabilities", "role": "probabilities", "shape": ["batch", 6]},
                {"name": "min_distance", "role": "min_distance", "shape": ["batch"]},
                {"name": "embedding", "role": "embedding", "shape": ["batch", 16]},
            ],
            "preprocess": {
                "size": [64, 64],
                "channels": 1,
                "color": "mono",
                "stretch": {"kind": "percentile", "low_percentile": 1.0, "high_percentile": 99.5},
                "mean": [0.2],
                "std": [0.25],
                "horizon_mask": True,
            },
            "metric_head": {"kind": "mahalanobis", "embedding_dim": 16, "unknown_threshold": 6.5, "loss": "triplet"},
            "files": {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8": "model.int8.onnx"},
            "sha256": {"model.onnx": "ab" * 32},
            "provenance": {
                "created": "2026-11-23T10:00:00Z",
                "git_revision": "0123456789abcdef0123456789abcdef01234567",
                "config_sha256": "cd" * 32,
                "data_sha256": "ef" * 32,
                "training_run": "runs/allsky-tiny",
                "framework": {"torch": "2.14.1", "onnx": "1.17.0"},
                "metrics": {"accuracy": 0.95, "macro_f1": 0.94},
            },
        }
    )


def sequence_card() -> dict:
    card = frame_card()
    card.update(
        name="transients-tiny",
        task="sequence",
        classes=SEQUENCE_CLASSES,
        inputs=[
            {"name": "stamps", "role": "stamps", "shape": ["batch", "time", 1, 21, 21], "layout": "NTCHW"},
            {"name": "conditions", "role": "conditions", "shape": ["batch", "time", 4]},
        ],
        outputs=[{"name": "probabilities", "role": "probabilities", "shape": ["batch", "time", 7]}],
        metric_head={"kind": "softmax", "loss": "cross_entropy"},
        sequence={
            "stamp_size": 21,
            "min_epochs": 1,
            "max_epochs": 30,
            "conditions": ["fwhm", "log_sky", "zero_point", "airmass"],
            "conditions_mean": [1.2, 300.0, 25.0, 1.3],
            "conditions_std": [0.3, 100.0, 0.5, 0.2],
        },
    )
    card["preprocess"].update(size=[21, 21], horizon_mask=False, stretch={"kind": "asinh"})
    return card
