"""``skyedge train``: one recipe in, an evaluated run directory out.

The run directory holds ``checkpoint.pt`` (weights plus what rebuilds the
model), ``metrics.json`` (validation and held-out test: accuracy, macro-F1,
per-class precision/recall/F1, confusion matrix; for sequences accuracy versus
epochs seen), ``confusion.png``, ``curves.png`` (and ``accuracy_vs_epochs.png``),
and ``card.json``: the model card fields ``skyedge export`` needs.

Runs on CPU or CUDA; under ``torchrun`` it trains with DistributedDataParallel
(rank 0 evaluates and writes). The task's training is
:mod:`skyedge.training.frame_training` or :mod:`skyedge.training.sequence_training`,
both on the loop of :mod:`skyedge.training.loop`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from skyedge.metrics import plot_accuracy_vs_epochs, plot_confusion, plot_curves
from skyedge.training.checkpoint_io import config_sha256, git_revision
from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import load_sources
from skyedge.training.frame_training import train_frame
from skyedge.training.loop import distributed, pick_device, seed_everything
from skyedge.training.sequence_training import train_sequence

log = logging.getLogger(__name__)


def run_training(cfg: TrainConfig) -> Path:
    """Train one recipe; return the run directory."""
    rank, world = distributed()
    seed_everything(cfg.seed, cfg.train.deterministic)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = pick_device(cfg.train.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    train = load_sources(cfg.data.train, cfg.task)
    test = load_sources(cfg.data.test, cfg.task, train.classes) if cfg.data.test is not None else None
    log.info(
        "training %s on %d items (%s), device %s, world size %d",
        cfg.name,
        len(train),
        ", ".join(train.classes),
        device,
        world,
    )
    if cfg.task == "frame":
        threshold_data = load_sources(cfg.data.threshold, "frame", train.classes) if cfg.data.threshold else None
        outcome = train_frame(cfg, train, test, out, device, rank, world, threshold_data)
    else:
        outcome = train_sequence(cfg, train, test, out, device, rank, world)
    if rank != 0:
        return out
    elapsed = time.perf_counter() - started
    headline = outcome["results"].get("test", outcome["results"]["val"])
    metrics = {
        "name": cfg.name,
        "task": cfg.task,
        "classes": train.classes,
        "train_items": len(train),
        "test_items": len(test) if test is not None else 0,
        "seconds": elapsed,
        "history": outcome["history"],
        **outcome["results"],
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    which = "test" if "test" in outcome["results"] else "val"
    plot_confusion(
        headline["confusion_matrix"],
        train.classes,
        out / "confusion.png",
        f"{cfg.name}: {which} accuracy {headline['accuracy']:.3f}, macro-F1 {headline['macro_f1']:.3f}",
    )
    plot_curves(outcome["history"], out / "curves.png", cfg.name)
    if cfg.task == "sequence":
        plot_accuracy_vs_epochs(
            headline["accuracy_vs_epochs"],
            out / "accuracy_vs_epochs.png",
            f"{cfg.name}: early classification ({which})",
        )
    card = outcome["card"]
    card["name"] = cfg.name
    card["provenance"] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "git_revision": git_revision(),
        "config_sha256": config_sha256(cfg),
        "data_sha256": hashlib.sha256((train.data_hash + (test.data_hash if test else "")).encode()).hexdigest(),
        "training_run": str(out),
        "framework": {"torch": torch.__version__, "numpy": np.__version__},
        "metrics": {f"{which}_accuracy": headline["accuracy"], f"{which}_macro_f1": headline["macro_f1"]},
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (out / "config.json").write_text(cfg.model_dump_json(indent=2) + "\n")
    log.info(
        "%s: %s accuracy %.3f, macro-F1 %.3f in %.0fs -> %s",
        cfg.name,
        which,
        headline["accuracy"],
        headline["macro_f1"],
        elapsed,
        out,
    )
    if world > 1:
        torch.distributed.destroy_process_group()
    return out
