"""Run the edge on a folder of real telescope frames and report the night: conditions measured, alignment, new
objects, bogus residuals and SN candidates, with a plot over the night.

    python docs/scripts/real_field.py FRAMES OUT --model models/transients-tiny [--inject 10] [--real-bogus-model none]

FRAMES: raw frames of one field (FITS, any header). The edge runs as deployed (``skyedge run --once`` on a
fits-sequence source, every object every epoch). OUT gets ``night.json`` (per epoch: conditions and where each
came from, alignment, objects; the SN candidates at p >= 0.5), ``night.png``; with ``--inject N``, also
``inject/`` (N sources of each kind planted by ``skyedge field-inject``) and ``inject_report.json``
(``skyedge field-report``: completeness and classification against the model offline on the same stamps).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import yaml


def run_edge(frames: Path, out: Path, model: Path, name: str, real_bogus: str | None = "builtin") -> tuple[Path, float]:
    """``skyedge run --once`` over ``frames``; the JSON-lines log and the wall time."""
    from skyedge.cli import main

    log = out / f"{name}.jsonl"
    log.unlink(missing_ok=True)
    cfg = {
        "site": "real-field",
        "device": "bench",
        "model": {"package": str(model), "precision": "fp32"},
        "backend": {"kind": "onnxruntime", "batch_size": 64},
        "pipelines": [
            {
                "camera": "field",
                "source": {
                    "kind": "fits-sequence",
                    "path": str(frames),
                    "patterns": ["*.fits", "*.fit", "*.fts", "*.fits.gz"],
                    "settle_s": 0,
                    "state_file": str(out / f"{name}.state.sqlite"),
                    "real_bogus_model": real_bogus,
                },
                "field_messages": {"policy": "every_epoch"},
            }
        ],
        "reporters": {"jsonl": {"path": str(log)}},
    }
    for stale in out.glob(f"{name}.state.sqlite*"):
        stale.unlink()
    path = out / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    started = time.perf_counter()
    if main(["run", "--config", str(path), "--once"]) != 0:
        raise SystemExit("skyedge run failed")
    return log, time.perf_counter() - started


def night(log: Path) -> dict:
    """Per-epoch summaries and the SN candidates: an object's answer with p(SN) >= 0.5 at any epoch once the object
    was brighter than the reference on two epochs (``detections`` >= 2, the edge's default candidate rule); the
    model's answer alone is counted too, to show what the rule removes."""
    summaries, candidates, model_alone = [], {}, {}
    for line in log.read_text().splitlines():
        p = json.loads(line)["payload"]
        if p["schema"].startswith("skyedge.field"):
            summaries.append(p)
        elif p["schema"].startswith("skyedge.classification") and p.get("probabilities", {}).get("SN", 0) >= 0.5:
            oid, sn = p["object_id"], p["probabilities"]["SN"]
            model_alone[oid] = max(model_alone.get(oid, 0.0), sn)
            if p.get("detections", 0) >= 2:
                candidates[oid] = max(candidates.get(oid, 0.0), sn)
    new = [s["objects"]["new"] for s in summaries]
    return {
        "epochs": len(summaries),
        "residual_px_max": max(s["alignment"]["residual_px"] for s in summaries),
        "new_after_reference_median": float(np.median(new[3:])) if len(new) > 3 else None,
        "new_after_reference_total": int(sum(new[3:])),
        "bogus_total": {k: sum(s["objects"].get("bogus", {}).get(k, 0) for s in summaries) for k in ("sharp", "dipole", "warm_pixel", "learnt", "edge")},
        "sn_candidates_p05": len(candidates),
        "sn_answers_p05_model_alone": len(model_alone),
        "sn_candidates": candidates,
        "summaries": summaries,
    }


def plot(report: dict, path: Path) -> None:
    """Conditions, alignment and objects over the night."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = report["summaries"]
    hours = 24 * (np.array([e["mjd"] for e in s]) - np.floor(s[0]["mjd"]))
    fig, ax = plt.subplots(3, 2, figsize=(11, 8), sharex=True)
    for a, key, label in [
        (ax[0, 0], "fwhm", "FWHM (px)"),
        (ax[0, 1], "zero_point", "relative zero point (mag)"),
        (ax[1, 0], "sky", "sky (ADU)"),
        (ax[1, 1], "airmass", "airmass"),
    ]:
        a.plot(hours, [e["conditions"][key]["value"] for e in s], "o-", ms=3)
        a.set_ylabel(label)
        a.set_title(f"{key}: {s[-1]['conditions'][key]['source']}", fontsize=9)
    ax[2, 0].plot(hours, [e["alignment"]["dx"] for e in s], label="dx")
    ax[2, 0].plot(hours, [e["alignment"]["dy"] for e in s], label="dy")
    twin = ax[2, 0].twinx()
    twin.plot(hours, [e["alignment"]["residual_px"] for e in s], "k.", label="residual")
    twin.set_ylabel("residual (px)")
    ax[2, 0].set_ylabel("alignment (px)")
    ax[2, 0].legend(loc="upper left", fontsize=8)
    ax[2, 1].bar(hours, [e["objects"]["new"] for e in s], width=0.08, label="new objects")
    ax[2, 1].plot(hours, [sum(e["objects"].get("bogus", {}).values()) for e in s], "r.", label="bogus")
    ax[2, 1].set_ylabel("per epoch")
    ax[2, 1].legend(fontsize=8)
    for a in ax[2]:
        a.set_xlabel("UT (h)")
    fig.suptitle(f"{report['epochs']} epochs; SN candidates (p >= 0.5): {report['sn_candidates_p05']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("frames", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", type=Path, required=True, help="a sequence (transients) package")
    ap.add_argument("--inject", type=int, default=0, help="also plant this many sources of each kind and score them")
    ap.add_argument("--inject-seed", type=int, default=7, help="where the sources go (the packaged real/bogus model was trained on plantings 0-3)")
    ap.add_argument("--real-bogus-model", default="builtin", help="the learnt stage: builtin, a path, or none")
    args = ap.parse_args()
    learnt = None if args.real_bogus_model == "none" else args.real_bogus_model
    args.out.mkdir(parents=True, exist_ok=True)
    log, seconds = run_edge(args.frames, args.out, args.model, "night", learnt)
    report = night(log)
    report["wall_s"] = round(seconds, 1)
    plot(report, args.out / "night.png")
    (args.out / "night.json").write_text(json.dumps(report, indent=1) + "\n")
    print({k: v for k, v in report.items() if k not in ("summaries", "sn_candidates")})
    if args.inject:
        from skyedge.edge.tools.field_inject import inject
        from skyedge.training.field_evaluation import field_report

        injected = inject(args.frames, args.out / "inject", per_kind=args.inject, seed=args.inject_seed)
        log, _ = run_edge(injected / "frames", args.out, args.model, "inject", learnt)
        scored = field_report(injected, log, args.model)
        (args.out / "inject_report.json").write_text(json.dumps(scored, indent=1) + "\n")
        print({k: scored[k] for k in ("detectable", "found", "completeness", "classification")})
        print({c: (v["detectable"], v["found"]) for c, v in scored["by_class"].items()})


if __name__ == "__main__":
    main()
