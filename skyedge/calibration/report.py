"""``report.json`` / ``report.md`` for a calibrated package, and the gate that decides whether INT8 may ship."""

from __future__ import annotations

import json
from pathlib import Path

from skyedge.errors import SkyedgeError


class GateError(SkyedgeError):
    """INT8 lost more accuracy against FP32 than the configured bound."""


def gate(results: dict[str, dict], precision: str, max_drop_points: float) -> str | None:
    """None when ``precision`` is within ``max_drop_points`` of FP32, else the message saying by how much and where."""
    entry = results[precision]
    drop = -entry["accuracy_delta_points"]
    if drop <= max_drop_points:
        return None
    worst = sorted(entry["per_class"].items(), key=lambda kv: kv[1]["recall_delta_points"])
    classes = ", ".join(f"{c} {v['recall_delta_points']:+.1f}" for c, v in worst if v["recall_delta_points"] < 0)
    return (
        f"{precision} loses {drop:.1f} accuracy points against FP32 (bound {max_drop_points:g}); "
        f"recall change by class (points): {classes or 'spread over all classes'}; "
        f"top-1 agreement with FP32 {100 * entry['top1_agreement_with_fp32']:.1f}%"
    )


def write_reports(package: Path, report: dict) -> tuple[Path, Path]:
    """Write report.json and a human-readable report.md into the package."""
    json_path = package / "report.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        f"# {report['model']}: accuracy per precision",
        "",
        f"Held-out: {report['held_out']['items']} items from `{report['held_out']['source']}`; "
        f"calibration: {report['calibration']['items']} items from `{report['calibration']['source']}` "
        f"(stratified by class and observing conditions), method `{report['calibration']['method']}`.",
        "",
        "| precision | file | accuracy | macro-F1 | top-1 agreement with FP32 | Δ accuracy (pts) | logit drift mean / max | unknown rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for precision, r in report["results"].items():
        unknown = f"{100 * r['unknown_rate']:.1f}%" if "unknown_rate" in r else "–"
        lines.append(
            f"| {precision} | {report['files'].get(precision, '')} | {r['accuracy']:.4f} | {r['macro_f1']:.4f} | "
            f"{100 * r['top1_agreement_with_fp32']:.2f}% | {r['accuracy_delta_points']:+.2f} | "
            f"{r['logit_drift_mean']:.4f} / {r['logit_drift_max']:.3f} | {unknown} |"
        )
    lines += ["", "## Recall change against FP32 by class (points)", ""]
    classes = list(next(iter(report["results"].values()))["per_class"])
    lines.append("| precision | " + " | ".join(classes) + " |")
    lines.append("|---" * (len(classes) + 1) + "|")
    for precision, r in report["results"].items():
        lines.append(
            f"| {precision} | " + " | ".join(f"{r['per_class'][c]['recall_delta_points']:+.1f}" for c in classes) + " |"
        )
    lines += ["", "## Quantization", ""]
    for q in report["quantization"]:
        lines.append(
            f"- `{q['file']}` ({q['target']}): activations {q['activations']}, weights {q['weights']}, "
            f"{q['quantized_nodes']} feature-extractor nodes quantized; kept in float: {', '.join(q['kept_float'])}."
        )
    lines += ["", f"Gate: {report['gate']['verdict']}", ""]
    if report["gate"].get("withheld_from_card"):
        left = ", ".join(report["gate"]["withheld_from_card"])
        lines += [f"Left out of the card (a deployment asking for it is refused): {left}. `--allow-drop` ships it.", ""]
    md_path = package / "report.md"
    md_path.write_text("\n".join(lines))
    return json_path, md_path
