"""Telescope fields without a catalogue, several seeds: completeness and last-epoch accuracy (docs/results.md).

    python docs/scripts/field_experiment.py --model models/transients-tiny --out results/field-experiment

Each seed simulates a 512 x 512 field (20 objects per class, 16 epochs, up to 3 px of pointing drift, half the
supernovae without a host, the difference-image S/N recorded), runs `skyedge run --once` on it with the default
deployment (no catalogue: reference from the first 3 epochs, detection on every epoch, step graph, default
publishing policy) and judges the run with `skyedge field-report`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

from skyedge.cli import main as skyedge
from skyedge.training.field_evaluation import field_report, plot_completeness
from skyedge.training.simulate.field import FieldConfig, simulate_field
from skyedge.training.simulate.obslog import CadenceConfig
from skyedge.training.simulate.transients import TransientConfig


def one(seed: int, model: Path, out: Path, precision: str, real_bogus: str | None = "builtin") -> dict:
    field = simulate_field(
        out / f"field-{seed}",
        seed=seed,
        cfg=FieldConfig(
            size=512,
            objects_per_class=20,
            drift_px=3.0,
            hostless_fraction=0.5,
            truth_snr=3,
            transients=TransientConfig(cadence=CadenceConfig(epochs=16)),
        ),
        progress=False,
    )
    log = out / f"run-{seed}.jsonl"
    log.unlink(missing_ok=True)
    cfg = {
        "site": "experiment",
        "device": "scope",
        "model": {"package": str(model), "precision": precision},
        "backend": {"kind": "onnxruntime", "batch_size": 256},
        "pipelines": [
            {
                "camera": "field",
                "source": {
                    "kind": "fits-sequence",
                    "path": str(field / "frames"),
                    "settle_s": 0,
                    "state_file": str(out / f"state-{seed}.sqlite"),
                    "real_bogus_model": real_bogus,
                },
            }
        ],
        "reporters": {"jsonl": {"path": str(log)}},
    }
    (out / f"state-{seed}.sqlite").unlink(missing_ok=True)
    path = out / f"deploy-{seed}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert skyedge(["run", "--config", str(path), "--once"]) == 0
    report = field_report(field, log, model)
    plot_completeness(report, out / f"field-{seed}.png")
    report.pop("rows")
    return report


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", default="results/field-experiment")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--real-bogus-model", default="builtin", help="the learnt stage: builtin, a path, or none")
    args = parser.parse_args()
    learnt = None if args.real_bogus_model == "none" else args.real_bogus_model
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    reports = {s: one(int(s), Path(args.model), out, args.precision, learnt) for s in args.seeds.split(",")}
    (out / "field_experiment.json").write_text(json.dumps(reports, indent=2) + "\n")
    print(
        "| seed | detectable | found | completeness | asteroids | hostless SN | artefacts followed | edge accuracy "
        "| offline | agreement |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s, r in reports.items():
        c, a, h, b = r["classification"], r["by_class"]["asteroid"], r["hostless_sn"], r["artefacts"]
        print(
            f"| {s} | {r['detectable']} | {r['found']} | {r['completeness']:.3f} | {a['found']}/{a['detectable']} | "
            f"{h['found']}/{h['detectable']} | {b['followed']}/{b['detectable']} | {c['edge_last_epoch_accuracy']:.3f} | "
            f"{c['offline_accuracy_same_objects']:.3f} | {c['agreement_edge_offline']:.3f} |"
        )


if __name__ == "__main__":
    run()
