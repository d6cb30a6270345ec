"""Every precision of a package on the same held-out inputs: accuracy, agreement with FP32, drift, unknown rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.dataset_inputs import LabelledInputs
from skyedge.metrics import classification_report
from skyedge.model_card import ModelCard
from skyedge.precisions import ort_session
from skyedge.step_graph import run_chained, session_runner


def predict(path: Path, card: ModelCard, data: LabelledInputs, batch: int = 64) -> dict[str, np.ndarray]:
    """Probabilities at the answer epoch (N, C), and min distances (N,) when the model has them."""
    sess = ort_session(path)
    names = [o.name for o in sess.get_outputs()]
    prob_name = card.output("probabilities").name
    parts: dict[str, list] = {n: [] for n in names}
    for i in range(0, len(data), batch):
        outs = sess.run(names, {k: v[i : i + batch] for k, v in data.inputs.items()})
        for n, v in zip(names, outs, strict=True):
            parts[n].append(v)
    out = {n: np.concatenate(v) for n, v in parts.items()}
    prob = out[prob_name]
    if prob.ndim == 3:  # sequences: read each object's answer at its last real epoch
        prob = prob[np.arange(len(prob)), data.lengths - 1]
    result = {"probabilities": prob.astype(np.float64)}
    if any(t.role == "min_distance" for t in card.outputs):
        result["min_distance"] = out[card.output("min_distance").name].astype(np.float64)
    return result


def predict_step(path: Path, card: ModelCard, data: LabelledInputs, batch: int = 256) -> dict[str, np.ndarray]:
    """The step graph's probabilities at each history's last epoch, chained one epoch per call as the edge runs it."""
    run = session_runner(ort_session(path))
    parts = []
    for i in range(0, len(data), batch):
        parts.append(run_chained(run, card.step, {k: v[i : i + batch] for k, v in data.inputs.items()}))
    prob = np.concatenate(parts)
    return {"probabilities": prob[np.arange(len(prob)), data.lengths - 1].astype(np.float64)}


def compare(card: ModelCard, data: LabelledInputs, predictions: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Per precision: metrics, agreement with FP32, per-class deltas, log-probability drift, unknown rate."""
    ref = predictions["fp32"]
    ref_report = classification_report(data.labels, ref["probabilities"].argmax(1), card.classes)
    threshold = card.metric_head.unknown_threshold
    results = {}
    for precision, pred in predictions.items():
        report = classification_report(data.labels, pred["probabilities"].argmax(1), card.classes)
        logp = np.log(np.clip(pred["probabilities"], 1e-12, None))
        ref_logp = np.log(np.clip(ref["probabilities"], 1e-12, None))
        drift = np.abs(logp - ref_logp)
        entry = {
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "top1_agreement_with_fp32": float(
                (pred["probabilities"].argmax(1) == ref["probabilities"].argmax(1)).mean()
            ),
            "accuracy_delta_points": 100.0 * (report["accuracy"] - ref_report["accuracy"]),
            "logit_drift_mean": float(drift.mean()),
            "logit_drift_max": float(drift.max()),
            "per_class": {
                c: {
                    "recall": report["per_class"][c]["recall"],
                    "f1": report["per_class"][c]["f1"],
                    "recall_delta_points": 100.0
                    * (report["per_class"][c]["recall"] - ref_report["per_class"][c]["recall"]),
                }
                for c in card.classes
            },
            "confusion_matrix": report["confusion_matrix"],
        }
        if "min_distance" in pred and threshold is not None:
            entry["unknown_rate"] = float((pred["min_distance"] > threshold).mean())
        results[precision] = entry
    return results
