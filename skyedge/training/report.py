"""Summarise several runs as markdown tables (mean and spread over seeds): ``python -m skyedge.training.report RUN...``.

Frame runs report every classifier head fitted on the same embedding
(softmax, Mahalanobis, ridge); sequence runs report the last-epoch accuracy,
macro-F1 and the accuracy after 1, 4, 8, ... epochs.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np


def _fmt(values: list[float]) -> str:
    arr = np.asarray(values, dtype=float)
    if len(arr) == 1:
        return f"{arr[0]:.3f}"
    return f"{arr.mean():.3f} ± {arr.std(ddof=1):.3f}"


def frame_table(runs: list[dict]) -> str:
    rows = defaultdict(lambda: defaultdict(list))
    for m in runs:
        cfg = m["_config"]
        loss = cfg["frame_model"]["loss"]
        for head, entry in m.get("heads", {}).items():
            split = entry.get("test", entry["val"])
            rows[(loss, head)]["acc"].append(split["accuracy"])
            rows[(loss, head)]["f1"].append(split["macro_f1"])
            rows[(loss, head)]["seconds"].append(m["seconds"])
    lines = [
        "| embedding loss | classifier | runs | held-out accuracy | macro-F1 | train s |",
        "|---|---|---|---|---|---|",
    ]
    for (loss, head), v in sorted(rows.items()):
        lines.append(
            f"| {loss} | {head} | {len(v['acc'])} | {_fmt(v['acc'])} | {_fmt(v['f1'])} | {np.mean(v['seconds']):.0f} |"
        )
    return "\n".join(lines)


def sequence_table(runs: list[dict]) -> str:
    rows = defaultdict(lambda: defaultdict(list))
    for m in runs:
        arch = m["_config"]["sequence_model"]["arch"]
        split = m.get("test", m["val"])
        curve = split["accuracy_vs_epochs"]
        rows[arch]["acc"].append(split["accuracy"])
        rows[arch]["f1"].append(split["macro_f1"])
        for t in (1, 4, 8, 16):
            if t <= len(curve):
                rows[arch][f"t{t}"].append(curve[t - 1])
        rows[arch]["seconds"].append(m["seconds"])
    lines = [
        "| model | runs | accuracy (last epoch) | macro-F1 | acc after 1 / 4 / 8 / 16 epochs | train s |",
        "|---|---|---|---|---|---|",
    ]
    for arch, v in sorted(rows.items()):
        early = " / ".join(f"{np.mean(v[f't{t}']):.2f}" for t in (1, 4, 8, 16) if v[f"t{t}"])
        lines.append(
            f"| {arch} | {len(v['acc'])} | {_fmt(v['acc'])} | {_fmt(v['f1'])} | {early} | {np.mean(v['seconds']):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    runs = []
    for path in argv:
        run = Path(path)
        if not (run / "metrics.json").exists():
            print(f"skipping {run}: no metrics.json", file=sys.stderr)
            continue
        m = json.loads((run / "metrics.json").read_text())
        m["_config"] = json.loads((run / "config.json").read_text())
        runs.append(m)
    frames = [m for m in runs if m["task"] == "frame"]
    seqs = [m for m in runs if m["task"] == "sequence"]
    if frames:
        print(frame_table(frames) + "\n")
    if seqs:
        print(sequence_table(seqs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
