"""Micro-batching across pipelines: up to ``size`` items, or whatever has arrived ``max_wait_s`` after the first;
and the joining of several pipelines' model inputs into one backend call, and the splitting of its answers.

The item queue is bounded (back-pressure on file sources, drops for live
cameras, decided by the source thread); each producer ends its stream with
:data:`DONE`, and iteration ends when every producer has.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Mapping, Sequence

import numpy as np

DONE = object()


class Batcher:
    """Iterates lists of items from ``items`` until ``producers`` DONE markers have arrived.

    An item with a ``batch_key`` is already a batch (a field's objects at one epoch, up to the backend's batch
    size) and goes alone, in queue order: the batch before it must have written the state it reads."""

    def __init__(self, items: queue.Queue, size: int, max_wait_s: float, producers: int):
        self.items, self.size, self.max_wait_s, self.producers = items, size, max_wait_s, producers
        self._done = 0
        self._held = None

    def __iter__(self):
        while self._done < self.producers or self._held is not None:
            if self._held is not None:
                first, self._held = self._held, None
            else:
                first = self.items.get()
            if first is DONE:
                self._done += 1
                continue
            key = getattr(first, "batch_key", None)
            batch = [first]
            if key is not None:
                yield batch  # a field's items are already batches of the backend's size
                continue
            deadline = time.monotonic() + self.max_wait_s
            while len(batch) < self.size and self._done < self.producers:
                try:
                    nxt = self.items.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if nxt is DONE:
                    self._done += 1
                    continue
                if getattr(nxt, "batch_key", None) is not None:
                    self._held = nxt
                    break
                batch.append(nxt)
            yield batch


def joined(inputs: Sequence[Mapping[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], list[int]]:
    """Several pipelines' model inputs as one batch (concatenated on the batch axis), and each one's row count.

    Pipelines of one device run one model, so their inputs carry the same names; a pipeline whose frames were
    all answered without the model (daylight) brings none and counts 0 rows."""
    counts = [len(next(iter(x.values()))) if x else 0 for x in inputs]
    present = [x for x in inputs if x]
    if len(present) <= 1:
        return (dict(present[0]) if present else {}), counts
    return {name: np.concatenate([x[name] for x in present]) for name in present[0]}, counts


def split(outputs: Mapping[str, np.ndarray], counts: Sequence[int]) -> list[dict[str, np.ndarray]]:
    """A joined batch's outputs back per pipeline, by the row counts :func:`joined` gave (0 rows: no outputs)."""
    parts, start = [], 0
    for n in counts:
        parts.append({name: out[start : start + n] for name, out in outputs.items()} if n else {})
        start += n
    return parts
