"""``skyedge evaluate``: a trained frame model on data it never saw, camera profile by camera profile.

Generalisation is the measure of a model, not its own held-out score: each named camera profile is simulated
(once, cached under ``--data-root``) with a seed of its own, prepared exactly as the edge prepares frames, and
scored: accuracy, macro-F1, the rate of truly cloudy frames called clear (the error that opens a roof under
clouds), and the open-set rejection rate. The model's own held-out score from training is printed beside it.

With ``--invalid N``, each profile also renders N frames of every kind that is no night sky (capped lens,
saturated, constant, noise, defocused, twilight, daylight) and reports how each was answered, as the edge would
answer it: by a daylight exposure, the input-sanity checks, the open-set distance, the model's own ``day`` class,
or (the failure) a night-sky class.

With ``--site-known``, each profile is also scored as a device that knows its site and capture time answers: the
sun (the simulator's altitude for the frame) decides ``day``, and at night the model's ``day`` is taken out, as is
its ``moon`` where the simulator put no moon in the sky, as ``skyedge run`` does with ``site_location`` set. The
plain score is the model alone, as on a camera with no site.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from skyedge.daylight import DAY_SUN_ALT_DEG, without_class, without_day
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
MOON = "moon"


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
    run_dir: str | Path,
    data: Loaded,
    threshold: float | None = None,
    mask: np.ndarray | None = None,
    site_known: bool = False,
) -> dict:
    """Scores of the run's model on ``data`` (its classes must be among the run's), optionally through a mask; with
    ``site_known``, also as a device that knows its site and capture time answers (:func:`site_known_answers`)."""
    run = load_run(run_dir)
    card = ModelCard.model_validate(run.card)
    remap = np.array([card.classes.index(c) for c in data.classes])
    labels = remap[data.labels]
    x = _prepare(data.images, card, bayer_patterns(data), mask)
    prob, dist = _infer(run, x)
    threshold = card.metric_head.unknown_threshold if threshold is None else threshold
    out = _scores(labels, prob.argmax(1), dist, threshold, list(card.classes))
    if site_known:
        pred, modelled = site_known_answers(prob, data, list(card.classes))
        known = _scores(labels, pred, dist[modelled], threshold, list(card.classes))
        keys = ("accuracy", "macro_f1", "cloudy_called_clear", "unrecognised_rate", "confusion_matrix")
        out["site_known"] = {k: known[k] for k in keys}
    return out


def site_known_answers(prob: np.ndarray, data: Loaded, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(class per frame, which frames reached the model) as the edge answers with ``site_location`` set: a frame
    whose sun (the simulator's) is above the default ``day_sun_alt_deg`` is ``day`` before any model; on the others
    the model's ``day`` is taken out (:func:`skyedge.daylight.without_day`), and so is its ``moon`` where the
    simulator put no moon in the sky (the default ``checks.moon_below_horizon: reclassify``; a model certain of
    ``moon``, every other class 0, keeps it, as the edge then refuses the frame)."""
    if "sun_alt_deg" in data.meta:
        sun = np.asarray(data.meta["sun_alt_deg"], dtype=np.float64)
    elif DAY in data.classes:  # the simulator records the sun of every frame that has one (daylight, twilight)
        raise ValueError("evaluate --site-known: the data set records no sun altitude per frame (meta 'sun_alt_deg')")
    else:
        sun = np.full(len(data), np.nan)  # night skies only: no frame was given a sun
    day = np.nan_to_num(sun, nan=-90.0) > DAY_SUN_ALT_DEG
    if MOON in classes and "moon_altitude_deg" in data.meta:  # recorded for every frame with a moon in its sky
        m = classes.index(MOON)
        moon_alt = np.asarray(data.meta["moon_altitude_deg"], dtype=np.float64)
        down = (np.nan_to_num(moon_alt, nan=-90.0) < 0.0) & (np.delete(prob, m, axis=1).max(axis=1) > 0)
        prob = without_class(prob, down & ~day, m)
    if DAY not in classes:
        return prob.argmax(1), ~day
    d = classes.index(DAY)
    pred = without_day(prob, ~day, d).argmax(1)
    pred[day] = d
    return pred, ~day


def _scores(labels: np.ndarray, pred: np.ndarray, dist: np.ndarray, threshold: float | None, classes: list[str]) -> dict:
    report = classification_report(labels, pred, classes)
    cloudy, clear = (classes.index(c) for c in DANGEROUS)
    truly_cloudy = labels == cloudy
    return {
        "items": int(len(labels)),
        "accuracy": report["accuracy"],
        "macro_f1": report["macro_f1"],
        "cloudy_called_clear": float((pred[truly_cloudy] == clear).mean()) if truly_cloudy.any() else 0.0,
        "unrecognised_rate": float((dist > threshold).mean()) if threshold and len(dist) else 0.0,
        "confusion_matrix": report["confusion_matrix"],
        "classes": classes,
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
    run_dir: str | Path,
    profiles: list[str],
    n: int,
    seed: int,
    root: Path,
    invalid: int = 0,
    masks: bool = False,
    site_known: bool = False,
) -> dict:
    """Per profile scores, plus the run's own held-out test score for comparison; with ``masks``, also through
    the mask each camera's site would draw (:func:`site_mask`); with ``site_known``, also as a device that knows
    its site answers (the sun decides day)."""
    run = load_run(run_dir)
    card = ModelCard.model_validate(run.card)
    own = run.metrics.get("test") or run.metrics.get("val") or {}
    out = {"run": str(run_dir), "own_held_out": {k: own.get(k) for k in ("accuracy", "macro_f1")}, "profiles": {}}
    classes = list(card.classes) if DAY in card.classes else None
    for profile in profiles:
        data = simulated_profile(profile, n, seed, root, classes)
        out["profiles"][profile] = evaluate_frames(run_dir, data, site_known=site_known)
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
    if site_known and scores:
        out["unseen_mean_accuracy_site_known"] = float(np.mean([p["site_known"]["accuracy"] for p in out["profiles"].values()]))
    return out


def print_table(result: dict) -> None:
    """The scores as a table on the terminal."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"{result['run']}: own held-out accuracy {result['own_held_out']['accuracy']}")
    masked = any("with_site_mask" in r for r in result["profiles"].values())
    known = any("site_known" in r for r in result["profiles"].values())
    for col in ("profile", "frames", "accuracy", "macro-F1", "cloudy->clear", "unrecognised"):
        table.add_column(col, justify="right")
    if masked:
        table.add_column("accuracy, site mask", justify="right")
    if known:
        table.add_column("accuracy, site known", justify="right")
        table.add_column("cloudy->clear, site known", justify="right")
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
        if known:
            row += [f"{r['site_known']['accuracy']:.3f}", f"{100 * r['site_known']['cloudy_called_clear']:.1f}%"]
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
