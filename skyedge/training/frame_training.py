"""Training a frame model: frames prepared as the edge prepares them, the embedding trained, then the Mahalanobis
or ridge head fitted on the training embeddings and folded into the network, the open-set threshold set, and
the card's fields written (Endo & Matsumoto 2022)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skyedge.head_statistics import HEAD_STATISTICS_FILE, write_head_statistics
from skyedge.masks import FrameMask
from skyedge.metrics import classification_report
from skyedge.model_card import CardMask, Preprocess, Stretch
from skyedge.preprocess import BAYER_CODES, prepare_cloud_truth, prepare_frame
from skyedge.training.augment import camera_augment, orient
from skyedge.training.checkpoint_io import check_classes, save_checkpoint, summary
from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import Loaded
from skyedge.training.finetune import parent_run, start_from
from skyedge.training.loop import fit, oversampled, stratified_split
from skyedge.training.models.frame import SPATIAL_BACKBONES, FrameClassifier, FrameEmbedder
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


def prepare_truths(data: Loaded, spec: Preprocess) -> torch.Tensor:
    """Every frame's cloud truth on the model input's grid (N, 2, H, W) half floats: cloud x known, known; zero
    where a frame has no truth (it then teaches the classifier only)."""
    h, w = spec.size
    out = torch.zeros((len(data), 2, h, w), dtype=torch.float16)
    for i, truth in enumerate(data.cloud or []):
        if truth is not None:
            out[i] = torch.from_numpy(prepare_cloud_truth(truth, spec))
    return out


def pooled_truth(truth: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-grid truth (B, 2, H, W) -> (cloud fraction of the known sky per map cell, known share per cell)."""
    pooled = nn.functional.adaptive_avg_pool2d(truth, size)
    known = pooled[:, 1:2]
    return pooled[:, 0:1] / known.clamp(min=1e-6), known


def cloud_loss(cloud: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the cloud map against the cells' cloud fractions, weighted by how much of each
    cell is known sky (frames without truth weigh nothing)."""
    target, known = pooled_truth(truth, cloud.shape[-2:])
    return weighted_cloud_bce(cloud, target, known)


def weighted_cloud_bce(cloud: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, floor: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy of map cells against their cloud fractions, the weighted mean over cells (the weights'
    sum held at ``floor`` or above, so a batch with little known sky does not blow up)."""
    bce = nn.functional.binary_cross_entropy(cloud.clamp(1e-6, 1 - 1e-6), target.clamp(0, 1), reduction="none")
    return (bce * weight).sum() / weight.sum().clamp(min=floor)


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
    parent = parent_run(cfg, "frame_classifier")
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
    if m.backbone in SPATIAL_BACKBONES:
        model_args.update(pretrained=m.pretrained and parent is None, frozen_stages=m.frozen_stages, cloud_map=m.cloud_map)
        if m.cloud_context:
            model_args["cloud_context"] = True
        if m.cloud_head != "pointwise":
            model_args["cloud_head"] = m.cloud_head
    model = FrameEmbedder(**model_args)
    truth_all = prepare_truths(train, spec) if m.cloud_map else None
    truth_tr = truth_all[tr_idx] if truth_all is not None else None
    if parent is not None:
        start_from(model, parent, "embedder.", model_args, classes)
    model = model.to(device)
    loss_fn, extra = build_frame_loss(cfg, k)
    fit_idx = np.random.default_rng(cfg.seed).permutation(len(x_tr))[:600]
    y_tr_t = torch.from_numpy(y_tr)

    norm_mean = torch.tensor(spec.mean, dtype=torch.float32)
    norm_std = torch.tensor(spec.std, dtype=torch.float32)

    def augmented(x: torch.Tensor, truth: torch.Tensor | None):
        if cfg.train.camera_augment:
            return camera_augment(x, norm_mean, norm_std, truth) if truth is not None else (camera_augment(x, norm_mean, norm_std), None)
        if not cfg.train.augment:
            return x, truth
        if truth is None:
            return orient(x), None
        both = orient(torch.cat([x, truth], 1))
        return both[:, : x.shape[1]], both[:, x.shape[1] :]

    def step(net, idx):
        x, truth = augmented(x_tr[idx], truth_tr[idx].float() if truth_tr is not None else None)
        if truth is None:
            z = net(x.to(device))
            return loss_fn(z, model.logits(z), y_tr_t[idx].to(device))
        z, cloud = net(x.to(device), with_cloud=True)  # through net: DistributedDataParallel syncs both heads
        return loss_fn(z, model.logits(z), y_tr_t[idx].to(device)) + m.cloud_weight * cloud_loss(cloud, truth.to(device))

    def validate() -> float:
        return _val_accuracy_frame(model, cfg, x_tr[fit_idx], y_tr[fit_idx], x_va, y_va, device, k)

    params = list(model.parameters()) + extra
    history = fit(model, cfg, len(x_tr), step, validate, device, rank, world, params=params, backbone=model.backbone)
    if rank != 0:
        return {}
    refit = None
    if m.cloud_map and m.cloud_refit is not None:
        from skyedge.training.cloud_refit import refit_cloud_head

        once = np.unique(tr_idx)  # the training frames, each once (not as oversampled)
        source = np.asarray(train.meta.get("source", np.zeros(len(train.labels), dtype=np.int64)))
        refit = refit_cloud_head(
            model, x_all[once], truth_all[once], source[once], epochs=m.cloud_refit.epochs, seed=cfg.seed,
            kind=m.cloud_refit.head, device=device,
        )
        model_args["cloud_head"] = m.cloud_refit.head  # what the checkpoint rebuilds
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
    if refit is not None:
        results["cloud_refit"] = refit
    x_te = None
    if test is not None:
        check_classes(test, classes)
        x_te = prepare_frames(test.images, spec, "test", mask, bayer_patterns(test))
        results["test"] = _evaluate_frame(classifier, x_te, test.labels, classes, threshold)
    # Every classifier the embedding supports, on the same embedding: the papers' head comparison.
    results["heads"] = {}
    for name, candidate in heads.items():
        alt = FrameClassifier(model, candidate, distance).cpu().eval()
        entry = {"val": summary(_evaluate_frame(alt, x_va, y_va, classes, threshold))}
        if x_te is not None:
            entry["test"] = summary(_evaluate_frame(alt, x_te, test.labels, classes, threshold))
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
    """The open-set threshold (:func:`open_set_threshold`) from the training embeddings and, when the recipe names
    them (``data.threshold``), held-out frames of cameras the model never saw."""
    with torch.no_grad():
        train_dist = distance(torch.from_numpy(z_tr)).numpy()
    if data is None:
        return open_set_threshold(train_dist, None, quantile)
    x = prepare_frames(data.images, spec, "threshold", mask, bayer_patterns(data))
    dists = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            dists.append(classifier(x[i : i + 256])[1])
    return open_set_threshold(train_dist, torch.cat(dists).numpy(), quantile)


def open_set_threshold(train: np.ndarray, unseen: np.ndarray | None, quantile: float) -> tuple[float, str]:
    """(distance threshold, where it was measured): ``quantile`` of the distances of held-out frames of cameras the
    model never saw (``unseen``), but never below the same quantile of the training frames' own; without unseen
    cameras, the training frames' alone (which sit closer than any new camera's, so it comes out too tight).

    The floor matters when the training frames are more varied than the unseen cameras' (a real camera's frames
    beside simulated ones): the shared covariance widens, the simulated cameras sit close, and their quantile alone
    once put 36 of 80 of the trained camera's own clear skies beyond the threshold (docs/results.md)."""
    floor = unknown_threshold(train, quantile)
    if unseen is None:
        return floor, f"the training frames ({len(train)})"
    held_out = unknown_threshold(unseen, quantile)
    if held_out >= floor:
        return held_out, f"held-out frames of unseen cameras ({len(unseen)})"
    return floor, f"the training frames ({len(train)}), above the unseen cameras' {held_out:.3f} ({len(unseen)} frames)"


def _evaluate_frame(classifier: FrameClassifier, x: torch.Tensor, y: np.ndarray, classes, threshold: float) -> dict:
    probs, dists = [], []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            p, d = classifier(x[i : i + 256])[:2]
            probs.append(p)
            dists.append(d)
    prob, dist = torch.cat(probs).numpy(), torch.cat(dists).numpy()
    report = classification_report(y, prob.argmax(1), classes)
    report["unknown_rate"] = float((dist > threshold).mean())
    return report


