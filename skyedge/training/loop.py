"""The epoch loop both tasks share (after timm's ``train_one_epoch``): seeds, device, DDP, optimiser and schedule,
seeded batches, validation, early stopping, the best weights, and the backbone frozen for a fine-tune's first
epochs. A task supplies ``step(net, idx) -> loss`` and ``validate() -> accuracy``."""

from __future__ import annotations

import logging
import os
import random
import time

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import Loaded

log = logging.getLogger(__name__)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, numpy and torch; optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def distributed() -> tuple[int, int]:
    """(rank, world size), initialising torch.distributed under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    return (torch.distributed.get_rank() if world > 1 else 0), world


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, val) with each class split in the same proportion."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for k in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == k))
        cut = max(1, int(round(fraction * len(idx)))) if len(idx) > 1 else 0
        val.extend(idx[:cut])
        train.extend(idx[cut:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))


def make_optimizer(params, cfg: TrainConfig, steps: int):
    t = cfg.train
    if t.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    elif t.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    if t.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=t.lr, total_steps=max(steps, 1))
    elif t.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))
    else:
        sched = None
    return opt, sched


def _batches(n: int, batch: int, rng: np.random.Generator, rank: int = 0, world: int = 1):
    """Index batches for this rank: one shared permutation, strided, equal batch counts on every rank."""
    order = rng.permutation(n)
    order = order[: len(order) - len(order) % world][rank::world]
    for i in range(0, len(order) - 1, batch):  # never a batch of one (BatchNorm)
        chunk = order[i : i + batch]
        if len(chunk) > 1:
            yield torch.as_tensor(chunk)


class EpochTracker:
    """Per-epoch history, progress log, best weights and early stopping on validation accuracy."""

    def __init__(self, patience: int, rank: int = 0):
        self.patience, self.rank = patience, rank
        self.history: list[dict] = []
        self.best, self.best_state, self.stale = -1.0, None, 0

    def update(self, epoch: int, losses: list[float], val_accuracy: float, seconds: float, model: nn.Module) -> bool:
        """Record one epoch; return True when training should stop."""
        loss = float(np.mean(losses)) if losses else 0.0
        self.history.append({"epoch": epoch, "train_loss": loss, "val_accuracy": val_accuracy, "seconds": seconds})
        if self.rank == 0:
            log.info("epoch %d: loss %.4f, val accuracy %.3f (%.1fs)", epoch, loss, val_accuracy, seconds)
        if val_accuracy > self.best:
            self.best, self.stale = val_accuracy, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.stale += 1
        if self.stale >= self.patience:
            log.info("early stopping: no better validation accuracy for %d epochs", self.stale)
            return True
        return False


def train_one_epoch(
    net: nn.Module, batches: list, step, opt, sched, total_steps: int, desc: str, quiet: bool, clip=None, frozen=None
):
    """One pass over ``batches``: ``step(net, idx)`` returns the loss; returns the batch losses."""
    net.train()
    if frozen is not None:
        frozen.eval()  # BatchNorm keeps the parent's statistics, not a few site frames'
    losses = []
    for idx in tqdm(batches, desc=desc, unit="batch", leave=False, disable=quiet):
        loss = step(net, idx)
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(clip, 5.0)
        opt.step()
        if sched is not None and sched.last_epoch < total_steps:
            sched.step()
        losses.append(float(loss.detach()))
    return losses


def fit(
    model: nn.Module,
    cfg: TrainConfig,
    n_train: int,
    step,
    validate,
    device,
    rank: int,
    world: int,
    *,
    params=None,
    clip=False,
    backbone: nn.Module | None = None,
) -> list[dict]:
    """The epoch loop both tasks share: optimiser and schedule, seeded batches, validation, early stopping.

    ``step(net, idx)`` computes one batch's loss through ``net`` (DistributedDataParallel under torchrun, so
    gradients are synchronised); ``validate()`` returns the validation accuracy. The best epoch's weights are
    loaded back into ``model``; returns the per-epoch history. ``backbone`` is the part
    ``train.freeze_backbone_epochs`` holds still at the start.
    """
    total_steps = cfg.train.epochs * max(1, n_train // (cfg.train.batch_size * world))
    params = list(model.parameters()) if params is None else params
    opt, sched = make_optimizer(params, cfg, total_steps)
    rng = np.random.default_rng(cfg.seed)  # the same on every rank: _batches strides it
    tracker = EpochTracker(cfg.train.patience, rank)
    frozen_epochs = cfg.train.freeze_backbone_epochs if backbone is not None else 0
    for epoch in range(1, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        if epoch in (1, frozen_epochs + 1):  # the only epochs where the backbone freezes or thaws
            if backbone is not None:
                backbone.requires_grad_(epoch > frozen_epochs)  # no gradient: the optimiser skips these weights
            if epoch <= frozen_epochs and rank == 0:
                log.info("backbone frozen for the first %d epochs", frozen_epochs)
            # DistributedDataParallel registers the weights needing gradients when wrapped: wrap again on thawing.
            net = model
            if world > 1:
                net = nn.parallel.DistributedDataParallel(
                    model, device_ids=[device.index] if device.type == "cuda" else None
                )
        frozen = backbone if epoch <= frozen_epochs else None
        batches = list(_batches(n_train, cfg.train.batch_size, rng, rank, world))
        desc = f"epoch {epoch}/{cfg.train.epochs}"
        losses = train_one_epoch(
            net, batches, step, opt, sched, total_steps, desc, rank != 0, params if clip else None, frozen
        )
        if tracker.update(epoch, losses, validate(), time.perf_counter() - t0, model):
            break
    model.load_state_dict(tracker.best_state)
    return tracker.history


def oversampled(idx: np.ndarray, data: Loaded, sources, seed: int) -> np.ndarray:
    """Training indices with each item repeated by its source's ``weight`` times its own (meta ``weight``, where a
    loader gives one), fractions drawn, seeded."""
    weights = np.array([s.weight for s in (sources if isinstance(sources, list) else [sources])], dtype=float)
    item = data.meta.get("weight")
    if np.all(weights == 1.0) and item is None:
        return idx
    source = np.asarray(data.meta.get("source", np.zeros(len(data.labels), dtype=np.int64)))
    w = weights[source[idx]] * (1.0 if item is None else np.asarray(item, dtype=float)[idx])
    reps = np.floor(w).astype(np.int64) + (np.random.default_rng(seed).random(len(idx)) < w - np.floor(w))
    return np.repeat(idx, reps)


