"""`skyedge torch-bench`: the same model in PyTorch eager, what a user would otherwise run, for `bench --compare-torch`.

Kept in the training stage (it needs torch); `skyedge bench` calls it as a
subprocess and reads its JSON, so the edge never imports torch.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from skyedge.dataset_inputs import random_inputs
from skyedge.model_card import ModelCard
from skyedge.training.checkpoint import load_run


def torch_throughput(run_dir: str, batches: list[int], trials: int = 3, seconds: float = 1.0, threads: int = 0) -> dict:
    """Median items/s per batch of the run's model in eager mode on the CPU (no grad)."""
    if threads:
        torch.set_num_threads(threads)
    run = load_run(run_dir)
    card = ModelCard.model_validate(run.card)
    out = {}
    for batch in batches:
        tensors = [torch.from_numpy(v) for v in random_inputs(card, batch).values()]
        rates = []
        with torch.inference_mode():
            for _ in range(3):
                run.model(*tensors)
            for _ in range(trials):
                n, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds or n < 3:
                    run.model(*tensors)
                    n += 1
                rates.append(n * batch / (time.perf_counter() - start))
        out[str(batch)] = float(np.median(rates))
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "items_per_s": out}
