"""`skyedge bench`: throughput and latency per backend, precision and batch, beside the accuracy each precision keeps.

Backend-only: synthetic inputs of the card's shapes, warm-up excluded, several
timed trials; throughput is the median over trials (min and max kept as the
spread), latency percentiles are per backend call. ``--pipeline`` runs the
whole runtime (watched folder -> preprocess -> backend -> reporter) on real
frames in the same process and divides its end-to-end throughput by the
backend-only throughput for the same model, precision and batch. Ratios are
measured within one run, so they hold on any machine.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from skyedge.cpu_int8 import recorded_weights, vnni
from skyedge.dataset_inputs import random_inputs
from skyedge.edge.backends import create_backend, resolve_kind
from skyedge.edge.package import open_package
from skyedge.info import cpu_model, jetson_info
from skyedge.precisions import report_section


def time_backend(backend, inputs: dict, trials: int = 5, min_seconds: float = 1.0, warmup: int = 5) -> dict:
    """Median items/s over trials (and spread), per-call latency percentiles."""
    batch = len(next(iter(inputs.values())))
    for _ in range(warmup):
        backend.infer(inputs)
    rates, calls = [], []
    for _ in range(trials):
        n, start = 0, time.perf_counter()
        while True:
            t = time.perf_counter()
            backend.infer(inputs)
            calls.append(1e3 * (time.perf_counter() - t))
            n += 1
            if time.perf_counter() - start >= min_seconds and n >= 3:
                break
        rates.append(n * batch / (time.perf_counter() - start))
    lat = np.asarray(calls)
    return {
        "items_per_s": float(np.median(rates)),
        "items_per_s_min": float(np.min(rates)),
        "items_per_s_max": float(np.max(rates)),
        "latency_ms": {q: float(np.percentile(lat, int(q[1:]))) for q in ("p50", "p95", "p99")},
        "trials": trials,
    }


def _accuracy(package: Path, key: str) -> dict | None:
    results = report_section(package, "results")  # none in an adapted package's report: its accuracy is adapt.json's
    r = results.get(key) if isinstance(results, dict) else None
    return (
        None
        if r is None
        else {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"], "agreement": r["top1_agreement_with_fp32"]}
    )


def pipeline_throughput(
    package: Path, precision: str, batch: int, threads: int, frames: list[Path], copies: int, cameras: int = 1
) -> dict:
    """End-to-end frames/s of `skyedge run --once` over ``copies`` x ``frames`` dropped in each of ``cameras``
    folders (one pipeline each, sharing the model's batches), and how full its backend calls ran."""
    from skyedge.edge.config import EdgeConfig
    from skyedge.edge.runtime.lifecycle import Runtime

    with tempfile.TemporaryDirectory(prefix="skyedge-bench-") as tmp:
        pipelines = []
        old = time.time() - 60  # settled
        for cam in range(cameras):
            incoming = Path(tmp) / f"incoming-{cam}"
            incoming.mkdir()
            for c in range(copies):
                for f in frames:
                    shutil.copy(f, incoming / f"{c:03d}-{f.name}")
            for f in incoming.iterdir():
                os.utime(f, (old, old))
            source = {"kind": "directory", "path": str(incoming), "settle_s": 0}
            pipelines.append({"camera": f"bench-{cam}", "source": source})
        cfg = EdgeConfig.model_validate(
            {
                "site": "bench",
                "device": "bench",
                "model": {"package": str(package), "precision": precision},
                "backend": {"kind": "onnxruntime", "batch_size": batch, "threads": threads, "max_wait_ms": 20},
                "pipelines": pipelines,
                "reporters": {"jsonl": {"path": str(Path(tmp) / "out.jsonl")}},
            }
        )
        runtime = Runtime(cfg, once=True, stop_event=threading.Event())
        stats = runtime.run()
        n = stats.counts["processed"]
        seconds = (stats.last_done or 0) - (stats.first_arrival or 0)
        return {
            "frames": n,
            "cameras": cameras,
            "seconds": seconds,
            "items_per_s": n / seconds if seconds > 0 else 0.0,
            "backend_calls": stats.batches,
            "frames_per_call": n / stats.batches if stats.batches else 0.0,
        }


def torch_reference(run_dir: str, batches: list[int], trials: int, seconds: float, threads: int) -> dict:
    """PyTorch eager items/s for the run (a `skyedge torch-bench` subprocess: the edge never imports torch)."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="skyedge-torch-") as tmp:
        out = Path(tmp) / "torch.json"
        cmd = [sys.executable, "-m", "skyedge", "torch-bench", str(run_dir), "--batch", ",".join(map(str, batches))]
        cmd += ["--trials", str(trials), "--seconds", str(seconds), "--threads", str(threads), "--json", str(out)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"--compare-torch {run_dir}: torch-bench failed (needs the train extra): {result.stderr[-1500:]}"
            )
        return json.loads(out.read_text())


def device_info() -> dict:
    """CPU, cores, library versions, and Jetson facts when present."""
    import onnxruntime as ort

    info = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        # INT8 on an x86 CPU: with VNNI its U8S8 kernels sum in 32 bits, without it in 16 (skyedge/cpu_int8.py)
        "vnni": vnni(),
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
    }
    try:
        import tensorrt

        info["tensorrt"] = tensorrt.__version__
    except ImportError:
        info["tensorrt"] = None
    # The board, its L4T and JetPack release and power mode, as `skyedge info` reads them; None off a Jetson.
    info["jetson"] = jetson_info()
    return info


def run_bench(
    package: str | Path,
    backend: str,
    precisions: list[str],
    batches: list[int],
    threads: int = 0,
    trials: int = 5,
    seconds: float = 1.0,
    frames: list[Path] | None = None,
    copies: int = 4,
    compare_torch: str | None = None,
    cameras: int = 1,
) -> dict:
    """Every (precision, batch) combination; with ``frames``, also the pipeline efficiency at each."""
    package = Path(package)
    kind = resolve_kind(backend)
    rows = []
    for precision in precisions:
        pkg = open_package(package, precision, kind, graph="full")
        # What the calibration report says of this file, read once for all its batches.
        weights, accuracy = recorded_weights(package, pkg.onnx_file.name), _accuracy(package, pkg.key)
        for batch in batches:
            be = create_backend(kind, pkg, threads=threads, batch_size=batch)
            try:
                timing = time_backend(be, random_inputs(pkg.card, batch), trials, seconds)
            finally:
                be.close()
            row = {
                "backend": kind,
                "precision": precision,
                "file": pkg.onnx_file.name,
                "weights": weights,  # INT8: 7-bit or 8-bit, as calibrated
                "batch": batch,
                **timing,
                "accuracy": accuracy,
            }
            if frames:
                pipe = pipeline_throughput(package, precision, batch, threads, frames, copies, cameras)
                row["pipeline"] = pipe | {"efficiency": pipe["items_per_s"] / timing["items_per_s"]}
            rows.append(row)
    reference = torch_reference(compare_torch, batches, trials, seconds, threads) if compare_torch else None
    if reference:
        for row in rows:
            eager = reference["items_per_s"].get(str(row["batch"]))
            row["torch_eager"] = {"items_per_s": eager, "speedup": row["items_per_s"] / eager if eager else None}
    return {
        "torch_reference": reference,
        "model": pkg.card.name,
        "task": pkg.card.task,
        "device": device_info(),
        "threads": threads,
        "rows": rows,
    }


def plot_bench(result: dict, path: Path) -> None:
    """Throughput and p99 latency per precision and batch (one PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    precisions = list(dict.fromkeys(r["precision"] for r in rows))
    batches = sorted({r["batch"] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / max(len(precisions), 1)
    for i, p in enumerate(precisions):
        xs = np.arange(len(batches)) + i * width
        thr = [next((r["items_per_s"] for r in rows if r["precision"] == p and r["batch"] == b), 0) for b in batches]
        p99 = [
            next((r["latency_ms"]["p99"] for r in rows if r["precision"] == p and r["batch"] == b), 0) for b in batches
        ]
        axes[0].bar(xs, thr, width, label=p)
        axes[1].bar(xs, p99, width, label=p)
    for ax, title in zip(axes, ("throughput (items/s, median of trials)", "p99 latency per call (ms)"), strict=True):
        ax.set_xticks(np.arange(len(batches)) + width * (len(precisions) - 1) / 2, [f"batch {b}" for b in batches])
        ax.set_title(title)
        ax.legend()
    fig.suptitle(f"{result['model']} on {result['device']['cpu']} ({result['rows'][0]['backend']})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
