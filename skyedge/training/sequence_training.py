"""Training a sequence model: histories prepared as the edge prepares them, a class at every epoch, later epochs
weighing more, early-classification curves (Carrasco-Davis et al. 2019; Gómez et al. 2020)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from skyedge.dataset_inputs import raw_conditions
from skyedge.metrics import classification_report
from skyedge.model_card import SequenceSpec
from skyedge.preprocess import condition_features, prepare_sequence
from skyedge.training.checkpoint_io import check_classes, save_checkpoint
from skyedge.training.config import TrainConfig
from skyedge.training.data.loaders import Loaded
from skyedge.training.finetune import parent_run, start_from
from skyedge.training.loop import fit, oversampled, stratified_split
from skyedge.training.models import create_model


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
        flux_scale=s.flux_scale,
        flux_reference_zp=s.flux_reference_zp,
        asinh_softening=s.asinh_softening,
        stamp_scaling=s.stamp_scaling,
    )


def prepare_sequences(
    data: Loaded, spec: SequenceSpec, desc: str, first_seeing: np.ndarray | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs for every sequence; those ``first_seeing`` marks get the first epoch's seeing throughout."""
    xs, cs = [], []
    for i in tqdm(range(len(data)), desc=f"preprocess {desc}", unit="seq", leave=False):
        raw = raw_conditions(data.conditions[i])
        if first_seeing is not None and first_seeing[i]:
            raw = {**raw, "fwhm": np.full_like(raw["fwhm"], raw["fwhm"][0])}
        x, c = prepare_sequence(data.images[i], raw, spec)
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
    s = cfg.sequence_model
    first_seeing = np.random.default_rng(cfg.seed).uniform(size=len(train)) < s.archive_seeing
    first_seeing[va_idx] = False  # validation judges the data as simulated
    x_all, c_all = prepare_sequences(train, spec, "train", first_seeing)
    len_all = torch.from_numpy(_lengths(train))
    y_all = torch.from_numpy(train.labels)
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
    parent = parent_run(cfg, "sequence_classifier")
    if parent is not None:
        start_from(model, parent, "", model_args, train.classes)
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
        check_classes(test, classes)
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


