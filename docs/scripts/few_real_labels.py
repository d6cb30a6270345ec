"""The few-real-labels curve: a transient run fine-tuned with k real supernovae mixed into its simulated training set,
scored on real supernovae it never saw (folds held out by object).

    python docs/scripts/few_real_labels.py runs/transients-tiny DIR_OF_HITS_CUBES OUT --ks 5,10,20 --folds 3

For each fold (the objects split at random, ``--seed``), k supernovae are drawn from the objects outside the fold
and the run is fine-tuned from its weights (``train.init_from``; ``--epochs`` at ``--lr``) on its own simulated
training set plus those k cubes (``kind: stamp_cubes``, weighted to about ``--draws`` draws an epoch), then exported
and asked about the fold's objects at their last epoch. k = 0 is the run itself. Every object is held out once, so
each k's recall is over all the objects. The cubes are read together, as ``real_transients.py`` reads them (each
epoch's transparency measured on the other objects; no labels enter that). Writes OUT/curve.json and prints it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_transients import classify

from skyedge.model_card import read_card
from skyedge.training.data.survey_epochs import read_survey_stamps


def fine_tune(run: Path, cubes: list[Path], work: Path, epochs: int, lr: float, draws: int) -> Path:
    """Fine-tune ``run`` with ``cubes`` (real SNe) beside its simulated training data; returns the exported package."""
    config = json.loads((run / "config.json").read_text())
    folder = work / "real"
    folder.mkdir(parents=True, exist_ok=True)
    for c in cubes:
        (folder / c.name).symlink_to(c.resolve())
    sims = config["data"]["train"]
    sims = sims if isinstance(sims, list) else [sims]
    real = {"kind": "stamp_cubes", "path": str(folder), "label": "SN", "zero_point": 31.5, "weight": max(1.0, draws / max(len(cubes), 1))}
    config["data"]["train"] = [*sims, real]
    config["out"] = str(work / "run")
    config["train"].update(epochs=epochs, lr=lr, init_from=str(run))
    recipe = work / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(config))
    subprocess.run(["skyedge", "train", "--config", str(recipe)], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["skyedge", "export", str(work / "run"), "--out", str(work / "pkg")], check=True, stdout=subprocess.DEVNULL)
    return work / "pkg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="the transient run to fine-tune (and, exported, the k = 0 point)")
    parser.add_argument("cubes", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--package", type=Path, default=None, help="the run's exported package (k = 0); default: export it")
    parser.add_argument("--ks", default="5,10,20")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.001)
    parser.add_argument("--draws", type=int, default=200, help="real draws per epoch, about")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    package = args.package
    if package is None:
        package = args.out / "base"
        subprocess.run(["skyedge", "export", str(args.run), "--out", str(package)], check=True, stdout=subprocess.DEVNULL)
    size = read_card(package).sequence.stamp_size
    sequences = read_survey_stamps([args.cubes], stamp_size=size)
    files = [s.path for s in sequences]
    rng = np.random.default_rng(args.seed)
    fold_of = rng.permutation(np.arange(len(sequences)) % args.folds)
    curve = {}
    for k in [0, *(int(v) for v in args.ks.split(","))]:
        found, per_object = 0, {}
        for fold in range(args.folds):
            held = [i for i in range(len(sequences)) if fold_of[i] == fold]
            rest = [i for i in range(len(sequences)) if fold_of[i] != fold]
            if k == 0:
                pkg = package
            else:
                chosen = rng.choice(rest, size=min(k, len(rest)), replace=False)
                pkg = fine_tune(args.run, [files[i] for i in chosen], args.out / f"k{k}-fold{fold}", args.epochs, args.lr, args.draws)
            classes = read_card(pkg).classes
            probs = classify(pkg, [sequences[i] for i in held], 31.5)
            for i, p in zip(held, probs, strict=True):
                answer = classes[int(p[-1].argmax())]
                per_object[sequences[i].name] = answer
                found += answer == "SN"
            if k:  # what fine-tuning on one real class did to the simulated held-out set
                test = json.loads((pkg.parent / "run" / "metrics.json").read_text())["test"]
                curve.setdefault(f"k{k}_simulated_macro_f1", []).append(round(test["macro_f1"], 3))
                per_class = {c: round(v["f1"], 3) for c, v in test["per_class"].items()}
                curve.setdefault(f"k{k}_simulated_f1", []).append(per_class)
            print(f"k={k} fold {fold}: {sum(per_object[sequences[i].name] == 'SN' for i in held)}/{len(held)}", flush=True)
        curve[f"k{k}"] = {"found": found, "n": len(sequences), "recall": round(found / len(sequences), 3), "answers": per_object}
        print(f"k={k}: {found}/{len(sequences)} real SNe called SN at the last epoch", flush=True)
    (args.out / "curve.json").write_text(json.dumps(curve, indent=2) + "\n")


if __name__ == "__main__":
    main()
