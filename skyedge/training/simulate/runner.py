"""Runs a simulator over worker processes, one shard per task, with a progress bar.

Labels are balanced over the classes and shuffled with the data set seed;
each shard draws its pixels from its own SeedSequence child, so the output is
bit-identical for any number of workers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from skyedge.shards import write_manifest, write_shard

# make_shard(shard_index, labels, seed_sequence, out_dir) -> (arrays, meta_rows)
ShardMaker = Callable[[int, list[str], np.random.SeedSequence, Path], tuple[dict, list[dict]]]


def balanced_labels(classes: list[str], n: int, seed: int) -> list[str]:
    """n labels with every class within one of n/len(classes), in a seeded random order."""
    labels = [classes[i % len(classes)] for i in range(n)]
    order = np.random.default_rng(np.random.SeedSequence([seed, 0xC1A55])).permutation(n)
    return [labels[i] for i in order]


def _run_one(args):
    maker, index, labels, seed_seq, out = args
    arrays, meta = maker(index, labels, seed_seq, out)
    return index, write_shard(out, index, arrays, meta)


def run_simulation(
    maker: ShardMaker,
    *,
    task: str,
    classes: list[str],
    n: int,
    seed: int,
    out: str | os.PathLike,
    arrays_spec: dict,
    simulator: dict,
    shard_size: int = 256,
    workers: int | None = None,
    progress: bool = True,
    extra: dict | None = None,
) -> Path:
    """Simulate n items into shards under ``out`` and write the manifest; return the manifest path."""
    if n < 1:
        raise ValueError("n must be at least 1")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    labels = balanced_labels(classes, n, seed)
    chunks = [labels[i : i + shard_size] for i in range(0, n, shard_size)]
    seeds = np.random.SeedSequence(seed).spawn(len(chunks))
    tasks = [(maker, i, chunk, seeds[i], out) for i, chunk in enumerate(chunks)]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    entries: dict[int, dict] = {}
    bar = tqdm(total=n, desc=f"simulate {simulator['name']}", unit="item", disable=not progress)
    if workers <= 1:
        for task_args in tasks:
            index, entry = _run_one(task_args)
            entries[index] = entry
            bar.update(entry["count"])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_run_one, t) for t in tasks]
            for future in as_completed(futures):
                index, entry = future.result()
                entries[index] = entry
                bar.update(entry["count"])
    bar.close()
    shards = [entries[i] for i in sorted(entries)]
    return write_manifest(
        out,
        task=task,
        classes=classes,
        shards=shards,
        arrays=arrays_spec,
        simulator={**simulator, "seed": seed},
        extra=extra,
    )
