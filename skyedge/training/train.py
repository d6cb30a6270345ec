"""``skyedge train``: one recipe in, an evaluated run directory out.

The run directory holds ``checkpoint.pt`` (weights plus what rebuilds the
model), ``metrics.json`` (validation and held-out test: accuracy, macro-F1,
per-class precision/recall/F1, confusion matrix; for sequences accuracy versus
epochs seen), ``confusion.png``, ``curves.png`` (and ``accuracy_vs_epochs.png``),
and ``card.json``: the model card fields ``skyedge export`` needs.

Runs on CPU or CUDA; under ``torchrun`` it trains with DistributedDataParallel
(rank 0 evaluates and writes).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skyedge.dataset_inputs import raw_conditions
from skyedge.head_statistics import HEAD_STATISTICS_FILE, write_head_statistics
from skyedge.masks import FrameMask
from skyedge.metrics import classification_report, plot_accuracy_vs_epochs, plot_confusion, plot_curves
from skyedge.model_card import CardMask, Preprocess, SequenceSpec, Stretch
from skyedge.preprocess import BAYER_CODES, condition_features, prepare_frame, prepare_sequence
from skyedge.training.augment import camera_augment, orient
from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import Loaded, load_sources
from skyedge.training.models import create_model
from skyedge.training.models.frame import FrameClassifier, FrameEmbedder
from skyedge.training.models.metric_heads import (
    MahalanobisHead,
    MinDistance,
    RidgeHead,
    SoftmaxHead,
    fit_gaussian,
    fit_ridge,
    unknown_threshold,
)

log = logging.getLogger(__name__)

MASK_FILE = "mask.png"  # a recipe's mask image, in the run directory and in the package


# ---------------------------------------------------------------- set-up


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


# ---------------------------------------------------------------- frames


def frame_preprocess_spec(
    cfg: TrainConfig, images: list[np.ndarray], mask: FrameMask | None = None, bayers: list | None = None
) -> Preprocess:
    """The card's preprocessing block, with mean/std measured on (a sample of) the training frames."""
    p = cfg.preprocess
    card_mask = None
    if p.mask is not None:
        card_mask = CardMask(file=MASK_FILE if p.mask.image else None, rectangles=[list(r) for r in p.mask.rectangles])
    draft = Preprocess(
        size=p.size,
        channels=p.channels,
        color="mono" if p.channels == 1 else "rgb",
        stretch=Stretch(**p.stretch.model_dump()),
        mean=[0.0] * p.channels,
        std=[1.0] * p.channels,
        horizon_mask=p.horizon_mask,
        horizon_radius=p.horizon_radius,
        fit=p.fit,
        mask=card_mask,
    )
    step = max(1, len(images) // 256)
    bayers = bayers if bayers is not None else [None] * len(images)
    sample = np.stack([_prepare(im, draft, mask, b) for im, b in zip(images[::step], bayers[::step], strict=True)])
    mean = sample.mean(axis=(0, 2, 3)).tolist()
    std = np.maximum(sample.std(axis=(0, 2, 3)), 1e-3).tolist()
    return draft.model_copy(update={"mean": mean, "std": std})


def _prepare(image: np.ndarray, spec: Preprocess, mask: FrameMask | None, bayer: str | None = None) -> np.ndarray:
    return prepare_frame(
        image, spec, bayer=bayer or None, mask=mask.array(image.shape[:2]) if mask is not None else None
    )


def bayer_patterns(data: Loaded) -> list:
    """Each frame's Bayer pattern (raw colour sensors: debayered as the edge would), or None."""
    patterns = data.meta.get("bayer")
    if patterns is None:
        return [None] * len(data)
    return [str(p) if str(p) in BAYER_CODES else None for p in patterns]


def prepare_frames(
    images: list[np.ndarray], spec: Preprocess, desc: str, mask: FrameMask | None = None, bayers: list | None = None
) -> torch.Tensor:
    """Every frame as the edge will prepare it (the recipe's mask applied, raw mosaics debayered)."""
    bayers = bayers if bayers is not None else [None] * len(images)
    bar = tqdm(list(zip(images, bayers, strict=True)), desc=f"preprocess {desc}", unit="frame", leave=False)
    return torch.from_numpy(np.stack([_prepare(im, spec, mask, b) for im, b in bar]))


def recipe_mask(cfg: TrainConfig, out: Path) -> FrameMask | None:
    """The recipe's mask, its image copied into the run (export puts it in the package)."""
    spec = cfg.preprocess.mask
    if spec is None:
        return None
    mask = FrameMask(spec.image, spec.rectangles, key="preprocess.mask")
    if spec.image is not None:
        shutil.copyfile(spec.image, out / MASK_FILE)
    return mask


def _embed(model: FrameEmbedder, x: torch.Tensor, device, batch: int = 256) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(x[i : i + batch].to(device)).cpu())
    return torch.cat(out).numpy()


def build_frame_loss(cfg: TrainConfig, num_classes: int):
    """(loss_fn(embeddings, logits, labels), extra trainable parameters)."""
    m = cfg.frame_model
    if m.loss == "cross_entropy":
        return (lambda z, logits, y: nn.functional.cross_entropy(logits, y)), []
    from pytorch_metric_learning import losses, miners

    if m.loss == "triplet":
        loss = losses.TripletMarginLoss(margin=m.triplet_margin)
        miner = miners.TripletMarginMiner(margin=m.triplet_margin, type_of_triplets="all")
        return (lambda z, logits, y: loss(z, y, miner(z, y))), []
    loss = losses.ArcFaceLoss(num_classes, m.embedding_dim, margin=m.arcface_margin_deg, scale=m.arcface_scale)
    return (lambda z, logits, y: loss(z, y)), list(loss.parameters())


def _val_accuracy_frame(model, cfg, x_fit, y_fit, x_val, y_val, device, num_classes) -> float:
    if cfg.frame_model.loss == "cross_entropy":
        model.eval()
        with torch.no_grad():
            pred = torch.cat(
                [model.logits(model(x_val[i : i + 256].to(device))).argmax(1).cpu() for i in range(0, len(x_val), 256)]
            )
        return float((pred.numpy() == y_val).mean())
    z_fit, z_val = _embed(model, x_fit, device), _embed(model, x_val, device)
    means, chol = fit_gaussian(z_fit, y_fit, num_classes)
    head = MahalanobisHead(means, chol)
    with torch.no_grad():
        pred = head(torch.from_numpy(z_val)).argmax(1).numpy()
    return float((pred == y_val).mean())


def oversampled(idx: np.ndarray, data: Loaded, sources, seed: int) -> np.ndarray:
    """Training indices with each item repeated by its source's ``weight`` (fractions drawn, seeded)."""
    weights = np.array([s.weight for s in (sources if isinstance(sources, list) else [sources])], dtype=float)
    if np.all(weights == 1.0):
        return idx
    source = np.asarray(data.meta.get("source", np.zeros(len(data.labels), dtype=np.int64)))
    w = weights[source[idx]]
    reps = np.floor(w).astype(np.int64) + (np.random.default_rng(seed).random(len(idx)) < w - np.floor(w))
    return np.repeat(idx, reps)


def _parent_run(cfg: TrainConfig, model_name: str):
    """The run ``train.init_from`` names, checked to be the same kind of model (or None)."""
    if cfg.train.init_from is None:
        return None
    from skyedge.training.checkpoint import load_run

    parent = load_run(cfg.train.init_from)
    if parent.model_name != model_name:
        raise ValueError(f"train.init_from: {cfg.train.init_from} is a {parent.model_name}, not a {model_name}")
    return parent


def _start_from(model: nn.Module, parent, prefix: str, model_args: dict, classes: list[str]) -> None:
    """Copy the parent's weights into ``model``: everything whose shape fits, and the class layer's rows by class
    name (a site's image folder lists classes in its own order; classes new to the network start fresh);
    architecture settings must agree, naming the one that does not."""
    for key, value in model_args.items():
        theirs = parent.model_args.get(key)
        if key not in ("num_classes",) and theirs is not None and theirs != value:
            raise ValueError(f"train.init_from: the parent run has {key}={theirs!r}, this recipe {value!r}")
    own = model.state_dict()
    parents = {k[len(prefix) :]: v for k, v in parent.model.state_dict().items() if k.startswith(prefix)}
    taken = {k: v for k, v in parents.items() if k in own and own[k].shape == v.shape}
    known = list(parent.card.get("classes", []))
    if known != list(classes):
        for key in [k for k in own if k.startswith(("logits.", "classifier.")) and k in parents]:
            rows = own[key].clone()
            for i, name in enumerate(classes):
                if name in known and parents[key].shape[1:] == rows.shape[1:]:
                    rows[i] = parents[key][known.index(name)]
            taken[key] = rows
        new = [c for c in classes if c not in known]
        log.info("class layer taken by class name; starting fresh: %s", ", ".join(new) or "no class")
    model.load_state_dict(taken, strict=False)
    fresh = sorted(set(own) - set(taken))
    log.info("fine-tuning from %s: %d tensors taken, fresh: %s", parent.path, len(taken), ", ".join(fresh) or "none")


def train_frame(
    cfg: TrainConfig,
    train: Loaded,
    test: Loaded | None,
    out: Path,
    device,
    rank: int,
    world: int,
    threshold_data: Loaded | None = None,
) -> dict:
    classes, k = train.classes, len(train.classes)
    tr_idx, va_idx = stratified_split(train.labels, cfg.data.val_fraction, cfg.seed)
    tr_idx = oversampled(tr_idx, train, cfg.data.train, cfg.seed)
    mask = recipe_mask(cfg, out)
    bayers = bayer_patterns(train)
    parent = _parent_run(cfg, "frame_classifier")
    if parent is not None:  # fine-tuning: the network learned on frames prepared exactly this way
        spec = Preprocess.model_validate(parent.card["preprocess"])
    else:
        spec = frame_preprocess_spec(cfg, [train.images[i] for i in tr_idx], mask, [bayers[i] for i in tr_idx])
    x_all = prepare_frames(train.images, spec, "train", mask, bayers)
    y_all = train.labels
    x_tr, y_tr, x_va, y_va = x_all[tr_idx], y_all[tr_idx], x_all[va_idx], y_all[va_idx]
    m = cfg.frame_model
    model_args = {
        "backbone": m.backbone,
        "in_channels": cfg.preprocess.channels,
        "size": list(cfg.preprocess.size),
        "embedding_dim": m.embedding_dim,
        "num_classes": k,
        "normalize": m.loss != "cross_entropy",
    }
    model = FrameEmbedder(**model_args)
    if parent is not None:
        _start_from(model, parent, "embedder.", model_args, classes)
    model = model.to(device)
    loss_fn, extra = build_frame_loss(cfg, k)
    fit_idx = np.random.default_rng(cfg.seed).permutation(len(x_tr))[:600]
    y_tr_t = torch.from_numpy(y_tr)

    norm_mean = torch.tensor(spec.mean, dtype=torch.float32)
    norm_std = torch.tensor(spec.std, dtype=torch.float32)

    def step(net, idx):
        x = x_tr[idx]
        if cfg.train.camera_augment:
            x = camera_augment(x, norm_mean, norm_std)
        elif cfg.train.augment:
            x = orient(x)
        z = net(x.to(device))
        return loss_fn(z, model.logits(z), y_tr_t[idx].to(device))

    def validate() -> float:
        return _val_accuracy_frame(model, cfg, x_tr[fit_idx], y_tr[fit_idx], x_va, y_va, device, k)

    params = list(model.parameters()) + extra
    history = fit(model, cfg, len(x_tr), step, validate, device, rank, world, params=params, backbone=model.backbone)
    if rank != 0:
        return {}
    # Fit the metric classifier on all training embeddings and fold it into the network.
    z_tr = _embed(model, x_tr, device)
    means, chol = fit_gaussian(z_tr, y_tr, k)
    # What `skyedge adapt` needs to refit the head on a site's frames without the training data.
    write_head_statistics(
        out / HEAD_STATISTICS_FILE, means, np.linalg.inv(chol @ chol.T), np.bincount(y_tr, minlength=k)
    )
    distance = MinDistance(means, chol)
    w, b, temp = fit_ridge(z_tr, y_tr, k, m.ridge_alpha)
    heads: dict[str, nn.Module] = {"mahalanobis": MahalanobisHead(means, chol), "ridge": RidgeHead(w, b, temp)}
    if m.loss == "cross_entropy":
        heads["softmax"] = SoftmaxHead(model.logits)
    classifier = FrameClassifier(model, heads[m.classifier], distance).cpu().eval()
    threshold, threshold_from = _open_set_threshold(
        classifier, distance, z_tr, threshold_data, spec, mask, m.unknown_quantile
    )
    log.info("open-set threshold %.3f (quantile %.3f of %s)", threshold, m.unknown_quantile, threshold_from)
    results = {"val": _evaluate_frame(classifier, x_va, y_va, classes, threshold), "threshold_from": threshold_from}
    x_te = None
    if test is not None:
        _check_classes(test, classes)
        x_te = prepare_frames(test.images, spec, "test", mask, bayer_patterns(test))
        results["test"] = _evaluate_frame(classifier, x_te, test.labels, classes, threshold)
    # Every classifier the embedding supports, on the same embedding: the papers' head comparison.
    results["heads"] = {}
    for name, candidate in heads.items():
        alt = FrameClassifier(model, candidate, distance).cpu().eval()
        entry = {"val": _summary(_evaluate_frame(alt, x_va, y_va, classes, threshold))}
        if x_te is not None:
            entry["test"] = _summary(_evaluate_frame(alt, x_te, test.labels, classes, threshold))
        results["heads"][name] = entry
    save_checkpoint(out, "frame_classifier", {**model_args, "classifier": m.classifier}, classifier)
    inputs, outputs = classifier.card_io()
    card = {
        "task": "frame",
        "classes": classes,
        "preprocess": json.loads(spec.model_dump_json()),
        "metric_head": {
            "kind": m.classifier,
            "embedding_dim": m.embedding_dim,
            "in_graph": True,
            "unknown_threshold": threshold,
            "loss": m.loss,
            "statistics": HEAD_STATISTICS_FILE,
        },
        "inputs": inputs,
        "outputs": outputs,
    }
    return {"history": history, "results": results, "card": card}


def _open_set_threshold(classifier, distance, z_tr, data: Loaded | None, spec, mask, quantile: float):
    """The open-set distance threshold and where it was measured: held-out frames of cameras the model never saw
    when the recipe names them (``data.threshold``), else the training frames (which sit closer than any new
    camera's, so the threshold comes out too tight)."""
    if data is None:
        with torch.no_grad():
            train_dist = distance(torch.from_numpy(z_tr)).numpy()
        return unknown_threshold(train_dist, quantile), f"the training frames ({len(z_tr)})"
    x = prepare_frames(data.images, spec, "threshold", mask, bayer_patterns(data))
    dists = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            dists.append(classifier(x[i : i + 256])[1])
    return unknown_threshold(torch.cat(dists).numpy(), quantile), f"held-out frames of unseen cameras ({len(x)})"


def _summary(report: dict) -> dict:
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def _check_classes(test: Loaded, classes: list[str]) -> None:
    if list(test.classes) != list(classes):
        raise ValueError(f"test data classes {test.classes} differ from the training classes {classes}")


def _evaluate_frame(classifier: FrameClassifier, x: torch.Tensor, y: np.ndarray, classes, threshold: float) -> dict:
    probs, dists = [], []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            p, d, _ = classifier(x[i : i + 256])
            probs.append(p)
            dists.append(d)
    prob, dist = torch.cat(probs).numpy(), torch.cat(dists).numpy()
    report = classification_report(y, prob.argmax(1), classes)
    report["unknown_rate"] = float((dist > threshold).mean())
    return report


# ---------------------------------------------------------------- sequences


def sequence_spec(cfg: TrainConfig, data: Loaded, idx: np.ndarray) -> SequenceSpec:
    s = cfg.sequence_model
    raw = raw_conditions(data.conditions[idx].reshape(-1, data.conditions.shape[-1]))
    feats = condition_features(raw, s.conditions) if s.conditions else np.zeros((1, 0))
    return SequenceSpec(
        stamp_size=int(data.images.shape[-1]),
        min_epochs=s.min_epochs,
        max_epochs=int(data.images.shape[1]),
        conditions=list(s.conditions),
        conditions_mean=feats.mean(axis=0).tolist(),
        conditions_std=np.maximum(feats.std(axis=0), 1e-3).tolist(),
        flux_reference_zp=s.flux_reference_zp,
        asinh_softening=s.asinh_softening,
        stamp_scaling=s.stamp_scaling,
    )


def prepare_sequences(data: Loaded, spec: SequenceSpec, desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, cs = [], []
    for i in tqdm(range(len(data)), desc=f"preprocess {desc}", unit="seq", leave=False):
        x, c = prepare_sequence(data.images[i], raw_conditions(data.conditions[i]), spec)
        xs.append(x)
        cs.append(c)
    return torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(cs))


def _lengths(data: Loaded) -> np.ndarray:
    return data.meta.get("length", np.full(len(data), data.images.shape[1]))


def train_sequence(
    cfg: TrainConfig, train: Loaded, test: Loaded | None, out: Path, device, rank: int, world: int
) -> dict:
    classes, k = train.classes, len(train.classes)
    tr_idx, va_idx = stratified_split(train.labels, cfg.data.val_fraction, cfg.seed)
    tr_idx = oversampled(tr_idx, train, cfg.data.train, cfg.seed)
    spec = sequence_spec(cfg, train, tr_idx)
    x_all, c_all = prepare_sequences(train, spec, "train")
    len_all = torch.from_numpy(_lengths(train))
    y_all = torch.from_numpy(train.labels)
    s = cfg.sequence_model
    model_args = {
        "arch": s.arch,
        "num_classes": k,
        "num_conditions": len(s.conditions),
        "hidden": s.hidden,
        "encoder_channels": list(s.encoder_channels),
        "use_conditions": s.use_conditions,
        "stamp_size": spec.stamp_size,
        "photometry_radius": s.photometry_radius,
        "asinh_input": spec.stamp_scaling == "asinh",
        "difference_channel": s.difference_channel,
    }
    model = create_model("sequence_classifier", **model_args)
    parent = _parent_run(cfg, "sequence_classifier")
    if parent is not None:
        _start_from(model, parent, "", model_args, train.classes)
    model = model.to(device)
    t_max = x_all.shape[1]
    tr_idx_t = torch.from_numpy(tr_idx)

    def step(net, b):
        idx = tr_idx_t[b]
        x, c, y, n = x_all[idx].to(device), c_all[idx].to(device), y_all[idx].to(device), len_all[idx].to(device)
        logits = net(x, c, logits=True)
        steps_t = torch.arange(t_max, device=device)[None, :]
        valid = (steps_t < n[:, None]) & (steps_t >= s.min_epochs - 1)
        per_step = nn.functional.cross_entropy(logits.reshape(-1, k), y.repeat_interleave(t_max), reduction="none")
        # Later epochs weigh more: early on the classes are genuinely ambiguous, and the answer that
        # matters most is the one with the most evidence.
        weight = valid * (steps_t + 1).float() / t_max
        return (per_step * weight.reshape(-1)).sum() / weight.sum().clamp(min=1e-6)

    def validate() -> float:
        labels, lengths = train.labels[va_idx], len_all[va_idx].numpy()
        return _evaluate_sequence(model, x_all[va_idx], c_all[va_idx], labels, lengths, classes, device)["accuracy"]

    history = fit(model, cfg, len(tr_idx), step, validate, device, rank, world, clip=True, backbone=model.encoder)
    if rank != 0:
        return {}
    model = model.cpu().eval()
    results = {
        "val": _evaluate_sequence(
            model,
            x_all[va_idx],
            c_all[va_idx],
            train.labels[va_idx],
            len_all[va_idx].numpy(),
            classes,
            torch.device("cpu"),
        )
    }
    if test is not None:
        _check_classes(test, classes)
        x_te, c_te = prepare_sequences(test, spec, "test")
        results["test"] = _evaluate_sequence(
            model, x_te, c_te, test.labels, _lengths(test), classes, torch.device("cpu")
        )
    save_checkpoint(out, "sequence_classifier", model_args, model)
    inputs, outputs = model.card_io()
    size = spec.stamp_size
    card = {
        "task": "sequence",
        "classes": classes,
        "preprocess": {
            "size": [size, size],
            "channels": 1,
            "color": "mono",
            "stretch": {"kind": "asinh"},
            "mean": [0.0],
            "std": [1.0],
            "horizon_mask": False,
            "resize": "none",
        },
        "sequence": json.loads(spec.model_dump_json()),
        "metric_head": {"kind": "softmax", "in_graph": True, "loss": "cross_entropy"},
        "inputs": inputs,
        "outputs": outputs,
    }
    return {"history": history, "results": results, "card": card}


def _evaluate_sequence(model, x, c, y, lengths, classes, device) -> dict:
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(x), 128):
            probs.append(model(x[i : i + 128].to(device), c[i : i + 128].to(device)).cpu())
    prob = torch.cat(probs).numpy()  # (N, T, C)
    last = prob[np.arange(len(prob)), np.asarray(lengths) - 1]
    report = classification_report(y, last.argmax(1), classes)
    curve = []
    for t in range(prob.shape[1]):
        have = np.asarray(lengths) > t
        curve.append(float((prob[have, t].argmax(1) == np.asarray(y)[have]).mean()) if have.any() else float("nan"))
    report["accuracy_vs_epochs"] = curve
    return report


# ---------------------------------------------------------------- entry


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
