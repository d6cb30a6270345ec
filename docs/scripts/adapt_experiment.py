"""Reproduce docs/results.md "Adapting to a site's camera": a package on cameras it never saw, before and after
`skyedge adapt` with k labelled frames per class.

    python docs/scripts/adapt_experiment.py models/allsky-tiny results/adapt \\
        arctic-stereo-mono,rpi-fisheye-jpeg,cropped-wide-jpeg,dome-slit-mono8

Needs the train extra (the simulator); the adapted packages are scored with ONNX Runtime as the edge runs them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from skyedge.edge.adapt import adapt_package
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


def main(package: Path, work: Path, profiles: list[str]) -> dict:
    classes = read_card(package).classes
    out = {}
    for profile in profiles:
        cfg = profile_config(profile)
        rng = np.random.default_rng(1000)
        labels = [classes[i % len(classes)] for i in range(HELD_OUT)]
        held_out = [render_allsky(label, rng, cfg)[0] for label in labels]
        pool = {c: [render_allsky(c, rng, cfg)[0] for _ in range(POOL)] for c in classes}
        result = {"before": accuracy(package, held_out, labels)}
        for k in (3, 5, 10):
            runs = []
            for seed in range(SEEDS):
                pick = np.random.default_rng(seed)
                run = work / f"{profile}-k{k}-s{seed}"
                shutil.rmtree(run, ignore_errors=True)
                for c in classes:
                    (run / "data" / c).mkdir(parents=True)
                    for j in pick.choice(POOL, k, replace=False):
                        image = pool[c][j]
                        write_frame(run / "data" / c / f"{c}-{j}", image, "png" if image.dtype == np.uint8 else "fits")
                report = adapt_package(package, run / "data", run / "package")
                runs.append({"held_out": accuracy(run / "package", held_out, labels), "seconds": report["seconds"]})
            result[f"k{k}"] = runs
            mean = np.mean([r["held_out"] for r in runs])
            print(f"{profile}: before {result['before']:.3f}, k={k}: {mean:.3f}", flush=True)
        out[profile] = result
    work.mkdir(parents=True, exist_ok=True)
    (work / "results.json").write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(","))
