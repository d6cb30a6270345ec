"""``skyedge evaluate``: a trained frame model on data it never saw, camera profile by camera profile.

Generalisation is the measure of a model, not its own held-out score: each named camera profile is simulated
(once, cached under ``--data-root``) with a seed of its own, prepared exactly as the edge prepares frames, and
scored: accuracy, macro-F1, the rate of truly cloudy frames called clear (the error that opens a roof under
clouds), and the open-set rejection rate. The model's own held-out score from training is printed beside it.

With ``--invalid N``, each profile also renders N frames of every kind that is no night sky (capped lens,
saturated, constant, noise, defocused, twilight, daylight) and reports how each was answered, as the edge would
answer it: by a daylight exposure, the input-sanity checks, the open-set distance, the model's own ``day`` class,
or (the failure) a night-sky class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from skyedge.exposure import is_daylight_exposure
from skyedge.metrics import classification_report
from skyedge.model_card import ModelCard
from skyedge.preprocess import prepare_frame
from skyedge.sanity import frame_problem
from skyedge.training.checkpoint import load_run
from skyedge.training.data.loaders import Loaded, load_shards
from skyedge.training.frame_training import bayer_patterns, prepare_frames

DANGEROUS = ("cloudy", "clear")  # truly cloudy, called clear
DAY = "day"


def simulated_profile(profile: str, n: int, seed: int, root: Path, classes: list[str] | None = None) -> Loaded:
    """``n`` frames of ``profile`` over ``classes`` (default: the six night-sky classes), simulated on first use."""
    from skyedge.training.config import SimulateSpec

    config: dict = {"profile": profile}
    tag = ""
    if classes is not None:
        config["classes"] = list(classes)
        tag = "-" + "-".join(classes)
    return load_shards(root / f"{profile}-n{n}-s{seed}{tag}", SimulateSpec(n=n, seed=seed, config=config), "frame")


def _infer(run, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    probs, dists = [], []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            p, d = run.model(x[i : i + 256])[:2]
            probs.append(p)
            dists.append(d)
    return torch.cat(probs).numpy(), torch.cat(dists).numpy()


def _prepare(images: list[np.ndarray], card: ModelCard, bayers: list, mask: np.ndarray | None) -> torch.Tensor:
    """Frames as the edge prepares them, with a site's mask (True = sky) when given."""
    if mask is None:
        return prepare_frames(images, card.preprocess, "evaluate", None, bayers)
    return torch.from_numpy(
        np.stack([prepare_frame(im, card.preprocess, bayer=b, mask=mask) for im, b in zip(images, bayers, strict=True)])
    )


def site_mask(profile: str) -> np.ndarray:
    """The mask a site would draw for a profile's camera: sky inside the lens circle, not the trees or the dome."""
    from skyedge.training.simulate.camera import geometry
    from skyedge.training.simulate.profiles import PROFILES

    return geometry(PROFILES[profile].camera).sky.copy()


def evaluate_frames(
    run_dir: str | Path, data: Loaded, threshold: float | None = None, mask: np.ndarray | None = None
) -> dict:
    """Scores of the run's model on ``data`` (its classes must be among the run's), optionally through a mask."""
    run = load_run(run_dir)
    card = ModelCard.model_validate(run.card)
    remap = np.array([card.classes.index(c) for c in data.classes])
    labels = remap[data.labels]
    x = _prepare(data.images, card, bayer_patterns(data), mask)
    prob, dist = _infer(run, x)
    pred = prob.argmax(1)
    report = classification_report(labels, pred, list(card.classes))
    threshold = card.metric_head.unknown_threshold if threshold is None else threshold
    cloudy, clear = (card.classes.index(c) for c in DANGEROUS)
    truly_cloudy = labels == cloudy
    return {
        "items": int(len(labels)),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "cloudy_called_clear": float((pred[truly_cloudy] == clear).mean()) if truly_cloudy.any() else 0.0,
        "unrecognised_rate": float((dist > threshold).mean()) if threshold else 0.0,
        "confusion_matrix": report["confusion_matrix"],
        "classes": list(card.classes),
    }


def evaluate_invalid(run_dir: str | Path, profile: str, n: int, seed: int) -> dict:
    """How frames that are no night sky are answered, per kind: counts of exposure (a daylight exposure: 'day'
    before any model, as the edge's default ``day_max_exposure_s`` does) / sanity / unrecognised / day (the
    model's class) / sky class."""
    from skyedge.training.simulate.allsky import INVALID_KINDS, render_invalid
    from skyedge.training.simulate.profiles import profile_config

    run = load_run(run_dir)
    card = ModelCard.model_validate(run.card)
    cfg = profile_config(profile)
    bayer = cfg.camera.sensor if cfg.camera.sensor not in ("mono", "rgb") else None
    threshold = card.metric_head.unknown_threshold
    out = {}
    for k, kind in enumerate(INVALID_KINDS):
        rng = np.random.default_rng([seed, k])
        frames = [render_invalid(kind, rng, cfg) for _ in range(n)]
        answers = {"exposure": 0, "sanity": 0, "unrecognised": 0, "day": 0, "sky_class": 0}
        model_frames = []
        for image, meta in frames:
            # The edge's order: a daylight exposure makes the frame 'day' first, then the sanity checks, then the model.
            if is_daylight_exposure(meta.get("exposure_s")):
                answers["exposure"] += 1
            elif frame_problem(image) is not None:
                answers["sanity"] += 1
            else:
                model_frames.append(image)
        if model_frames:
            x = prepare_frames(model_frames, card.preprocess, kind, None, [bayer] * len(model_frames))
            prob, dist = _infer(run, x)
            for p, d in zip(prob, dist, strict=True):
                if threshold is not None and d > threshold:
                    answers["unrecognised"] += 1
                elif card.classes[int(p.argmax())] == DAY:
                    answers["day"] += 1
                else:
                    answers["sky_class"] += 1
        out[kind] = answers
    return out


def evaluate_profiles(
    run_dir: str | Path, profiles: list[str], n: int, seed: int, root: Path, invalid: int = 0, masks: bool = False
) -> dict:
    """Per profile scores, plus the run's own held-out test score for comparison; with ``masks``, also through
    the mask each camera's site would draw (:func:`site_mask`)."""
    run = load_run(run_dir)
    card = ModelCard.model_validate(run.card)
    own = run.metrics.get("test") or run.metrics.get("val") or {}
    out = {"run": str(run_dir), "own_held_out": {k: own.get(k) for k in ("accuracy", "macro_f1")}, "profiles": {}}
    classes = list(card.classes) if DAY in card.classes else None
    for profile in profiles:
        data = simulated_profile(profile, n, seed, root, classes)
        out["profiles"][profile] = evaluate_frames(run_dir, data)
        if masks:
            masked = evaluate_frames(run_dir, data, mask=site_mask(profile))
            out["profiles"][profile]["with_site_mask"] = {
                k: masked[k] for k in ("accuracy", "macro_f1", "cloudy_called_clear", "unrecognised_rate")
            }
        if invalid:
            out["profiles"][profile]["invalid"] = evaluate_invalid(run_dir, profile, invalid, seed)
    scores = [p["accuracy"] for p in out["profiles"].values()]
    out["unseen_mean_accuracy"] = float(np.mean(scores)) if scores else None
    out["unseen_cloudy_called_clear"] = (
        float(np.mean([p["cloudy_called_clear"] for p in out["profiles"].values()])) if scores else None
    )
    return out


def print_table(result: dict) -> None:
    """The scores as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result['run']}: own held-out accuracy {result['own_held_out']['accuracy']}")
    masked = any("with_site_mask" in r for r in result["profiles"].values())
    for col in ("profile", "frames", "accuracy", "macro-F1", "cloudy->clear", "unrecognised"):
        table.add_column(col, justify="right")
    if masked:
        table.add_column("accuracy, site mask", justify="right")
    for name, r in result["profiles"].items():
        row = [
            name,
            str(r["items"]),
            f"{r['accuracy']:.3f}",
            f"{r['macro_f1']:.3f}",
            f"{100 * r['cloudy_called_clear']:.1f}%",
            f"{100 * r['unrecognised_rate']:.1f}%",
        ]
        if masked:
            row.append(f"{r['with_site_mask']['accuracy']:.3f}")
        table.add_row(*row)
    console.print(table)
    invalid = {name: r["invalid"] for name, r in result["profiles"].items() if "invalid" in r}
    if invalid:
        kinds = list(next(iter(invalid.values())))
        table = Table(
            title="frames that are no night sky: day by exposure / sanity / unrecognised / day (model) / sky class (the failure)"
        )
        table.add_column("profile")
        for kind in kinds:
            table.add_column(kind, justify="right")
        for name, per_kind in invalid.items():
            table.add_row(name, *("/".join(str(v) for v in per_kind[k].values()) for k in kinds))
        console.print(table)
