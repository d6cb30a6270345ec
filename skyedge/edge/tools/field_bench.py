"""`skyedge bench --field`: what a telescope field costs, by number of objects and history length.

Two measurements, both medians over trials within one run:

* **graph**: one epoch of N objects with histories of length H, through the
  full graph (the whole history again, as the edge did before the step graph)
  and through the step graph (one epoch plus the carried state), in batches of
  the backend's size: object-epochs per second and milliseconds per epoch;
* **pipeline**: the whole runtime (reference, alignment, difference imaging,
  association, stamps, step graph, publishing policy, JSON-lines reporter) on
  field frames from a folder: object-epochs per second and the time of each
  epoch, from the field summaries, so its growth with the epoch is visible.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np

from skyedge.edge.backends import create_backend, resolve_kind
from skyedge.edge.package import open_package


def _inputs(specs, n: int, t: int, rng) -> dict[str, np.ndarray]:
    out = {}
    for spec in specs:
        shape = [n] + [d if isinstance(d, int) else t for d in spec.shape[1:]]
        out[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def _epoch_ms(backend, inputs: dict, batch: int, trials: int) -> float:
    """Median milliseconds to run every object of one epoch through ``backend`` in batches of ``batch``."""
    n = len(next(iter(inputs.values())))
    parts = [{k: v[i : i + batch] for k, v in inputs.items()} for i in range(0, n, batch)]
    backend.infer(parts[0])  # warm-up
    times = []
    for _ in range(trials):
        t0 = time.perf_counter()
        for part in parts:
            backend.infer(part)
        times.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(times)


def graph_costs(
    package, precision: str, backend: str, objects: list[int], histories: list[int], batch: int, trials: int, threads: int = 0
) -> list[dict]:
    """Per (objects, history): ms per epoch and object-epochs/s for the full and the step graph."""
    kind = resolve_kind(backend)
    rng = np.random.default_rng(0)
    rows = []
    for graph in ("full", "step"):
        pkg = open_package(package, precision, kind, graph=graph)
        be = create_backend(kind, pkg, threads=threads, batch_size=batch)
        try:
            for n in objects:
                for h in histories:
                    inputs = _inputs(pkg.inputs, n, h if graph == "full" else 1, rng)
                    ms = _epoch_ms(be, inputs, batch, trials)
                    rows.append(
                        {"graph": graph, "objects": n, "history": h, "ms_per_epoch": ms, "object_epochs_per_s": 1e3 * n / ms}
                    )
        finally:
            be.close()
    return rows


def pipeline_costs(package, precision: str, frames: Path, batch: int, threads: int = 0, catalog: Path | None = None) -> dict:
    """The runtime on a field's frames: object-epochs/s and each epoch's time from the field summaries."""
    from skyedge.edge.config import EdgeConfig
    from skyedge.edge.runtime.lifecycle import Runtime

    with tempfile.TemporaryDirectory(prefix="skyedge-field-bench-") as tmp:
        log = Path(tmp) / "out.jsonl"
        source = {"kind": "fits-sequence", "path": str(frames), "settle_s": 0, "state_file": str(Path(tmp) / "s.sqlite")}
        if catalog is not None:
            source["catalog"] = str(catalog)
        cfg = EdgeConfig.model_validate(
            {
                "site": "bench",
                "device": "bench",
                "model": {"package": str(package), "precision": precision},
                "backend": {"kind": "onnxruntime", "batch_size": batch, "threads": threads},
                "pipelines": [{"camera": "field", "source": source}],
                "reporters": {"jsonl": {"path": str(log)}},
            }
        )
        started = time.perf_counter()
        runtime = Runtime(cfg, once=True, stop_event=threading.Event())
        runtime.run()
        wall = time.perf_counter() - started
        rows = [json.loads(line)["payload"] for line in log.read_text().splitlines()]
    summaries = [r for r in rows if r.get("schema", "").startswith("skyedge.field")]
    per_object = sum(1 for r in rows if r.get("schema", "").startswith("skyedge.classification"))
    ts = [datetime.fromisoformat(s["ts"].replace("Z", "+00:00")).timestamp() for s in summaries]
    # The reference's epochs (3 by default) are answered together once it is built; then one summary per epoch.
    first = min(cfg.pipelines[0].source.reference_epochs, max(len(ts) - 1, 1))
    intervals = [1e3 * (b - a) for a, b in zip(ts[first - 1 : -1], ts[first:], strict=True)]
    object_epochs = sum(s["objects"]["followed"] for s in summaries)
    span = ts[-1] - ts[first - 1] if len(ts) > first else 0.0
    steady = sum(s["objects"]["followed"] for s in summaries[first:])
    return {
        "epochs": len(summaries),
        "object_epochs": object_epochs,
        "per_object_messages": per_object,
        "wall_s": wall,
        "object_epochs_per_s_wall": object_epochs / wall,
        "object_epochs_per_s_steady": steady / span if span > 0 else None,
        "ms_per_epoch": intervals,
        "ms_per_epoch_first_6": statistics.mean(intervals[:6]) if intervals else None,
        "ms_per_epoch_all": statistics.mean(intervals) if intervals else None,
        "followed_last_epoch": summaries[-1]["objects"]["followed"] if summaries else 0,
    }


def plot_field_bench(result: dict, path: Path) -> Path:
    """Object-epochs/s against history for each object count, full vs step graph; and the pipeline's epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = result["graph"]
    for n in sorted({r["objects"] for r in rows}):
        for graph, style in (("full", "--"), ("step", "-")):
            sel = sorted((r for r in rows if r["objects"] == n and r["graph"] == graph), key=lambda r: r["history"])
            axes[0].plot([r["history"] for r in sel], [r["ms_per_epoch"] for r in sel], style, marker="o",
                         label=f"{graph}, {n} objects")
    axes[0].set(xlabel="history length (epochs)", ylabel="ms per epoch", yscale="log", title="one epoch, all objects")
    axes[0].legend(fontsize=7)
    pipe = result.get("pipeline")
    if pipe and pipe["ms_per_epoch"]:
        axes[1].plot(range(1, len(pipe["ms_per_epoch"]) + 1), pipe["ms_per_epoch"], marker=".")
        axes[1].set(xlabel="epoch after the reference", ylabel="ms between summaries",
                    title=f"pipeline: {pipe['object_epochs_per_s_wall']:.0f} object-epochs/s (wall)")
    fig.suptitle(f"{result['model']} ({result['precision']}, batch {result['batch']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
