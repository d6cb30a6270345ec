"""Reproduce docs/results.md "Adapting to a site's camera": a package on cameras it never saw, before and after
`skyedge adapt` with k labelled frames per class.

    python docs/scripts/adapt_experiment.py models/allsky-tiny results/adapt \\
        arctic-stereo-mono,rpi-fisheye-jpeg,cropped-wide-jpeg,dome-slit-mono8 [POOLS]

POOLS (default 1): how many independent pools of labelled frames to draw per camera; the first is the one the
tables in docs/results.md were first made with, so k = 10 (the whole pool) gets POOLS results instead of one.

Needs the train extra (the simulator); the adapted packages are scored with ONNX Runtime as the edge runs them.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from skyedge.edge.labelling.adapt import adapt_package
from skyedge.model_card import read_card
from skyedge.preprocess import prepare_frame
from skyedge.training.simulate.allsky import render_allsky
from skyedge.training.simulate.frame_files import write_frame
from skyedge.training.simulate.profiles import profile_config

POOL, HELD_OUT, SEEDS = 10, 245, 3


def accuracy(package: Path, frames: list[np.ndarray], labels: list[str]) -> float:
    """Top-1 accuracy of a package's FP32 graph, frames prepared as the edge prepares them."""
    card = read_card(package)
    session = ort.InferenceSession(str(package / card.files["fp32"]), providers=["CPUExecutionProvider"])
    x = np.stack([prepare_frame(f, card.preprocess) for f in frames]).astype(np.float32)
    p = session.run(["probabilities"], {card.inputs[0].name: x})[0]
    return float((p.argmax(1) == np.array([card.classes.index(label) for label in labels])).mean())


def main(package: Path, work: Path, profiles: list[str], pools: int = 1) -> dict:
    classes = read_card(package).classes
    out = {}
    for profile in profiles:
        cfg = profile_config(profile)
        rng = np.random.default_rng(1000)
        labels = [classes[i % len(classes)] for i in range(HELD_OUT)]
        held_out = [render_allsky(label, rng, cfg)[0] for label in labels]
        pool_rngs = [rng] + [np.random.default_rng(2000 + p) for p in range(1, pools)]
        pools_ = [{c: [render_allsky(c, r, cfg)[0] for _ in range(POOL)] for c in classes} for r in pool_rngs]
        result = {"before": accuracy(package, held_out, labels)}
        for k in (3, 5, 10):
            runs = []
            for (p, pool), seed in itertools.product(enumerate(pools_), range(SEEDS)):
                pick = np.random.default_rng(seed)
                run = work / f"{profile}-k{k}-p{p}-s{seed}"
                shutil.rmtree(run, ignore_errors=True)
                for c in classes:
                    (run / "data" / c).mkdir(parents=True)
                    for j in pick.choice(POOL, k, replace=False):
                        image = pool[c][j]
                        write_frame(run / "data" / c / f"{c}-{j}", image, "png" if image.dtype == np.uint8 else "fits")
                report = adapt_package(package, run / "data", run / "package")
                runs.append({"held_out": accuracy(run / "package", held_out, labels), "seconds": report["seconds"]})
            result[f"k{k}"] = runs
            acc = [r["held_out"] for r in runs]
            print(
                f"{profile}: before {result['before']:.3f}, k={k}: {np.mean(acc):.3f} "
                f"(min {min(acc):.3f}, max {max(acc):.3f}, {len(acc)} adapts)",
                flush=True,
            )
        out[profile] = result
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","), int(sys.argv[4]) if len(sys.argv) > 4 else 1)
