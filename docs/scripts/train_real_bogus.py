"""Rebuild the packaged real/bogus model (skyedge/edge/field/data/real_bogus.onnx and .json) and score it.

    python docs/scripts/train_real_bogus.py /path/to/hatp32 runs/real-bogus [--install]

Training data: 20 simulated 512 px fields (seeds 11-15 with 20 objects per class, 21-35 with 40; 16 epochs, 3 px
drift, half the supernovae hostless), harvested with the simulator's truth; the real night's first 24 frames,
harvested as they are (every residual bogus) and with sources planted by skyedge field-inject (seeds 0 and 2).
Held out: 5 simulated fields (36-40) and the real night's last 24 frames (as they are, and with the plantings of
seeds 1 and 3). --install copies the model and its card into the package.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np


def sh(*args: str) -> None:
    subprocess.run(["skyedge", *args], check=True)


def split(path: Path, cut: int) -> tuple[Path, Path]:
    """The harvest's residuals of frames before ``cut`` and from ``cut`` on, as two files."""
    data = dict(np.load(path))
    out = []
    for name, keep in (("first", data["epoch"] < cut), ("second", data["epoch"] >= cut)):
        part = {k: (v[keep] if np.ndim(v) and len(v) == len(data["label"]) else v) for k, v in data.items()}
        target = path.with_name(f"{path.stem}-{name}.npz")
        np.savez_compressed(target, **part)
        out.append(target)
    return out[0], out[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("real_frames")
    parser.add_argument("work")
    parser.add_argument("--install", action="store_true")
    args = parser.parse_args()
    from skyedge.training.simulate.field import FieldConfig, simulate_field
    from skyedge.training.simulate.obslog import CadenceConfig
    from skyedge.training.simulate.transients import TransientConfig

    work = Path(args.work)
    train, test = [], []
    for seed in [*range(11, 16), *range(21, 41)]:
        per_class = 20 if seed < 20 else 40
        cfg = FieldConfig(size=512, objects_per_class=per_class, drift_px=3.0, hostless_fraction=0.5,
                          transients=TransientConfig(cadence=CadenceConfig(epochs=16)))
        field = simulate_field(work / f"sim-{seed}", seed=seed, cfg=cfg, progress=False)
        sh("field-harvest", str(field / "frames"), str(work / f"h-sim-{seed}.npz"), "--truth", str(field / "truth.json"))
        (test if seed > 35 else train).append(work / f"h-sim-{seed}.npz")
    sh("field-harvest", args.real_frames, str(work / "h-real.npz"))
    first, second = split(work / "h-real.npz", 24)
    train.append(first)
    test.append(second)
    for seed in (0, 1, 2, 3):
        sh("field-inject", args.real_frames, str(work / f"inj-{seed}"), "--per-kind", "10" if seed < 2 else "20",
           "--snr", "5,30", "--seed", str(seed))
        sh("field-harvest", str(work / f"inj-{seed}" / "frames"), str(work / f"h-inj-{seed}.npz"),
           "--truth", str(work / f"inj-{seed}" / "truth.json"))
        first, second = split(work / f"h-inj-{seed}.npz", 24)
        (train if seed in (0, 2) else test).append(first if seed in (0, 2) else second)
    sh("train-real-bogus", *map(str, train), "--test", *map(str, test), "--out", str(work / "model"))
    if args.install:
        data = Path(__file__).resolve().parents[2] / "skyedge" / "edge" / "field" / "data"
        data.mkdir(exist_ok=True)
        for name in ("real_bogus.onnx", "real_bogus.json"):
            shutil.copy(work / "model" / name, data / name)


if __name__ == "__main__":
    main()
