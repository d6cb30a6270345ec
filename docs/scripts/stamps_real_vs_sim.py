"""Real survey stamps beside the simulator's "as observed by" the same survey: pictures and the numbers behind them.

    python docs/scripts/stamps_real_vs_sim.py DIR_OF_HITS_CUBES configs/obslogs/hits2015.csv docs/hits-real-vs-sim.png

Simulates supernovae with the survey's log and compares, with the real cubes: the background noise over the sky's
Poisson noise (correlated noise from resampling or extra read noise shows as a ratio above 1, and as pixel-to-
pixel correlation), and the supernovae's peak S/N in a 5x5 box (how deep the survey's detected supernovae are).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from skyedge.training.data.stamp_cubes import border_median, read_stamp_cubes
from skyedge.training.simulate.obslog import read_log_csv
from skyedge.training.simulate.transients import TransientConfig, render_sequence


def stamp_statistics(stamps: np.ndarray, sky: np.ndarray) -> dict[str, np.ndarray]:
    """Per epoch: border noise (MAD) over sqrt(sky), neighbour correlation of border pixels, 5x5 peak S/N."""
    border = np.ones(stamps.shape[1:], dtype=bool)
    border[2:-2, 2:-2] = False
    bg = border_median(stamps)
    resid = stamps - bg[:, None, None]
    mad = 1.4826 * np.median(np.abs(resid[:, border]), axis=1)
    top = resid[:, :2, :]  # two border rows: horizontal neighbours
    corr = np.array([np.corrcoef(r[:, :-1].ravel(), r[:, 1:].ravel())[0, 1] for r in top])
    c = stamps.shape[1] // 2
    box = resid[:, c - 2 : c + 3, c - 2 : c + 3].sum(axis=(1, 2))
    return {"noise_ratio": mad / np.sqrt(sky), "correlation": corr, "peak_snr": box / (5 * mad)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cubes", type=Path)
    parser.add_argument("log", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--n-sim", type=int, default=100)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real = read_stamp_cubes([args.cubes])
    log = read_log_csv(args.log)
    rng = np.random.default_rng(0)
    cfg = TransientConfig(stamp_size=real[0].stamps.shape[1])
    sim = [render_sequence("SN", rng, cfg, log) for _ in range(args.n_sim)]
    stats = {}
    for name, items in (("real", [(s.stamps, s.conditions["sky"]) for s in real]), ("sim", [(s, log["sky"]) for s, _, _ in sim])):
        parts = [stamp_statistics(st.astype(np.float64), sky) for st, sky in items]
        stats[name] = {
            "noise_ratio": np.concatenate([p["noise_ratio"] for p in parts]),
            "correlation": np.concatenate([p["correlation"] for p in parts]),
            "peak_snr": np.array([np.nanmax(p["peak_snr"]) for p in parts]),
        }
    summary = {
        name: {k: {q: float(np.percentile(v, q)) for q in (10, 50, 90)} for k, v in s.items()}
        for name, s in stats.items()
    }
    print(json.dumps(summary, indent=1))
    fig = plt.figure(figsize=(12, 7.5))
    grid = fig.add_gridspec(3, 8)
    epochs = np.linspace(0, len(log["mjd"]) - 1, 8).astype(int)
    for row, (name, stamps) in enumerate((("real HiTS SN", real[0].stamps), ("simulated SN", sim[0][0]))):
        lo, hi = np.percentile(stamps, [1, 99.5])
        for col, e in enumerate(epochs):
            ax = fig.add_subplot(grid[row, col])
            ax.imshow(np.arcsinh((stamps[e] - lo) / (0.05 * (hi - lo))), cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}\nepoch {e + 1}" if col == 0 else f"epoch {e + 1}", fontsize=8)
    for col, (key, label) in enumerate(
        (("noise_ratio", "border noise / sqrt(sky)"), ("correlation", "neighbour correlation"), ("peak_snr", "SN peak S/N (5x5)"))
    ):
        ax = fig.add_subplot(grid[2, col * 3 : col * 3 + 2 if col < 2 else 8])
        both = np.concatenate([stats["real"][key], stats["sim"][key]])
        bins = np.linspace(*np.nanpercentile(both, [1, 99]), 30)
        for name in ("real", "sim"):
            ax.hist(stats[name][key], bins=bins, density=True, histtype="step", label=name)
        ax.set_xlabel(label, fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle("HiTS 2015 supernovae (real, DECam g) and the simulator with the HiTS-like log", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
