"""Training the learnt real/bogus stage (:mod:`skyedge.edge.field.real_bogus`) on harvested triplets.

``skyedge train-real-bogus HARVEST.npz ... --out DIR [--test HARVEST.npz ...]`` trains a small CNN (three 3x3
convolution layers and two pools on the 15 px triplet, then one hidden layer; about 12k weights) on the residuals
``skyedge field-harvest`` wrote, with the triplets flipped and turned (the sky has no preferred direction) and the
classes weighted equally. 20% of each file is held out for validation (by epoch, so the residuals of one frame stay
together). The threshold favours completeness: it keeps ``--keep-real`` of the validation set's real residuals
(default 0.995, from a normal fitted to their logits, capped at p 0.5), because a real transient refused here never reaches the classifier.

``DIR`` gets ``real_bogus.onnx`` and its card ``real_bogus.json`` (what it was trained on, the threshold, the
scores on validation and on every ``--test`` file, reported per file), the pair the edge's ``real_bogus_model``
names.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np


def _load(paths: list[Path]) -> list[dict]:
    """Harvests (the edge's ``field-harvest`` files: this stage reads them from disk, never the edge's code)."""
    out = []
    for path in paths:
        with np.load(path) as data:
            shape = data["stamps"].shape[1:]
            if len(shape) != 3 or shape[0] != 3 or shape[1] != shape[2]:
                raise ValueError(f"{path}: stamps are {shape}, not (3, S, S) triplets from skyedge field-harvest")
            out.append({"path": str(path), "softening": float(data["softening_sigma"]), **{k: data[k] for k in ("stamps", "label", "epoch")}})
    if len({s["stamps"].shape[1:] for s in out}) > 1 or len({s["softening"] for s in out}) > 1:
        raise ValueError("the harvests differ in stamp size or softening: harvest them with one skyedge version")
    return out


def _network(stamp: int):
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * (stamp // 4) ** 2, 32),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(32, 1),
    )


def _scores(model, stamps: np.ndarray) -> np.ndarray:
    import torch

    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(stamps[i : i + 4096])) for i in range(0, len(stamps), 4096)])
    return torch.sigmoid(logits.reshape(-1)).numpy() if len(stamps) else np.zeros(0, np.float32)


def _threshold(p_real: np.ndarray, keep: float) -> float:
    """The p below which a residual is bogus: the ``1 - keep`` quantile of a normal fitted to the real validation
    residuals' logits (one outlier among a few hundred would move an empirical quantile that deep from 0.05 to 0.5),
    never above 0.5."""
    from scipy.stats import norm

    if len(p_real) < 10:
        return 0.5
    z = np.log(np.clip(p_real, 1e-6, 1 - 1e-6) / np.clip(1 - p_real, 1e-6, 1))
    cut = float(np.mean(z) - norm.ppf(keep) * np.std(z))
    return min(1.0 / (1.0 + np.exp(-cut)), 0.5)


def _judge(p: np.ndarray, label: np.ndarray, threshold: float) -> dict:
    real, bogus = label == 1, label == 0
    return {
        "real": int(real.sum()),
        "bogus": int(bogus.sum()),
        "real_kept": round(float((p[real] >= threshold).mean()), 4) if real.any() else None,
        "bogus_refused": round(float((p[bogus] < threshold).mean()), 4) if bogus.any() else None,
    }


def train_real_bogus(
    paths: list[Path], out: Path, tests: list[Path] = (), epochs: int = 30, keep_real: float = 0.995, seed: int = 0
) -> dict:
    """Train, choose the threshold, export; the card (also written beside the model)."""
    import torch
    from tqdm import tqdm

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sets = _load([Path(p) for p in paths])
    train_x, train_y, val_x, val_y = [], [], [], []
    for s in sets:
        epochs_seen = np.unique(s["epoch"])
        held = rng.choice(epochs_seen, size=max(1, len(epochs_seen) // 5), replace=False)
        val = np.isin(s["epoch"], held)
        train_x.append(s["stamps"][~val])
        train_y.append(s["label"][~val])
        val_x.append(s["stamps"][val])
        val_y.append(s["label"][val])
    x, y = np.concatenate(train_x).astype(np.float32), np.concatenate(train_y).astype(np.float32)
    vx, vy = np.concatenate(val_x).astype(np.float32), np.concatenate(val_y)
    if y.sum() == 0 or y.sum() == len(y):
        raise ValueError("the harvests hold one class only: add a simulated field or an injection (real residuals)")
    stamp = int(x.shape[-1])
    model = _network(stamp)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - y.sum()) / y.sum()))
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    for _ in tqdm(range(epochs), desc="training real/bogus"):
        model.train()
        order = torch.randperm(len(tx))
        for i in range(0, len(tx), 256):
            batch, target = tx[order[i : i + 256]], ty[order[i : i + 256]]
            batch = torch.rot90(batch, int(rng.integers(4)), dims=(2, 3))
            if rng.random() < 0.5:
                batch = torch.flip(batch, dims=(3,))
            optimiser.zero_grad()
            loss_fn(model(batch).reshape(-1), target).backward()
            optimiser.step()
    p_val = _scores(model, vx)
    real_val = p_val[vy == 1]
    threshold = _threshold(real_val, keep_real)
    card = {
        "made_by": "skyedge train-real-bogus (docs/scripts/train_real_bogus.py rebuilds the packaged model)",
        "stamp": stamp,
        "softening_sigma": sets[0]["softening"],
        "threshold": round(threshold, 5),
        "keep_real": keep_real,
        "trained_on": [{"file": Path(s["path"]).name, "residuals": int(len(s["label"])), "real": int(s["label"].sum())} for s in sets],
        "epochs": epochs,
        "seed": seed,
        "validation": _judge(p_val, vy, threshold),
        "tests": [],
    }
    for t in _load([Path(p) for p in tests]):
        card["tests"].append({"file": Path(t["path"]).name, **_judge(_scores(model, t["stamps"].astype(np.float32)), t["label"], threshold)})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()):  # the exporter narrates on stdout
        torch.onnx.export(
            model.eval(),
            (torch.zeros(1, 3, stamp, stamp),),
            str(out / "real_bogus.onnx"),
            input_names=["stamps"],
            output_names=["logit"],
            opset_version=17,
            dynamo=False,
            dynamic_axes={"stamps": {0: "n"}, "logit": {0: "n"}},
        )
    (out / "real_bogus.json").write_text(json.dumps(card, indent=2) + "\n")
    return card


_HELP = """\
train-real-bogus: train the field's learnt real/bogus stage on harvested residual triplets

Reads .npz files from skyedge field-harvest (simulated fields and injections into real frames), trains a small
CNN, picks the threshold that keeps --keep-real of the validation set's real residuals, and writes
real_bogus.onnx and real_bogus.json (the card: what it was trained on, threshold, scores) to --out: the pair a
field's real_bogus_model names.

example:
  skyedge train-real-bogus runs/rb/sim-1.npz runs/rb/sim-2.npz runs/rb/hatp32-first.npz --test runs/rb/hatp32-second.npz --out runs/real-bogus
"""


def add_command(subparsers) -> None:
    """``skyedge train-real-bogus``."""
    from skyedge.commands import add_command as described

    p = described(subparsers, _HELP)
    p.add_argument("harvests", nargs="+", help=".npz files from skyedge field-harvest")
    p.add_argument("--out", required=True)
    p.add_argument("--test", nargs="*", default=[], help="harvests scored, never trained on")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--keep-real", type=float, default=0.995, help="share of real residuals the threshold keeps")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_command)


def _command(args) -> int:
    card = train_real_bogus(args.harvests, Path(args.out), args.test, args.epochs, args.keep_real, args.seed)
    print(json.dumps({k: card[k] for k in ("threshold", "validation", "tests")}, indent=2))
    return 0
