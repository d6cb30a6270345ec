"""Sequence assembly: per catalogued object, the last T stamps with their times and conditions.

Each new epoch cuts a stamp around every object and appends it to that
object's ring buffer; every object is then classified on its history so far
(early classification), so the class can firm up epoch by epoch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from skyedge.dataset_inputs import RAW_CONDITIONS
from skyedge.model_card import SequenceSpec
from skyedge.preprocess import prepare_sequence


def cut_stamp(image: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` stamp centred on the pixel nearest (x, y); NaN where it leaves the frame."""
    half = size // 2
    ix, iy = int(round(x)), int(round(y))
    out = np.full((size, size), np.nan, dtype=np.float32)
    y0, y1 = max(iy - half, 0), min(iy + half + 1, image.shape[0])
    x0, x1 = max(ix - half, 0), min(ix + half + 1, image.shape[1])
    if y0 < y1 and x0 < x1:
        out[y0 - (iy - half) : y1 - (iy - half), x0 - (ix - half) : x1 - (ix - half)] = image[y0:y1, x0:x1]
    return out


@dataclass
class ObjectEpoch:
    """One object after one epoch: model inputs over its history and what the message reports."""

    object_id: str
    n_epochs: int
    mjd: float
    x: float
    y: float
    stamps: np.ndarray  # (T, 1, S, S)
    conditions: np.ndarray  # (T, K)


class SequenceAssembler:
    """Ring buffers of the last ``max_epochs`` stamps per object; objects absent ``forget_after`` epochs are dropped."""

    def __init__(self, spec: SequenceSpec, forget_after: int = 5):
        self.spec, self.forget_after = spec, forget_after
        self.buffers: dict[str, deque] = {}
        self.last_seen: dict[str, int] = {}
        self.epoch = 0

    def add_epoch(self, image: np.ndarray, conditions: dict[str, float], catalog) -> list[ObjectEpoch]:
        """Cut every object's stamp from this epoch; return each object's inputs over its window."""
        out = []
        self.epoch += 1
        row = np.array([conditions[k] for k in RAW_CONDITIONS], dtype=np.float64)
        for entry in catalog:
            self.last_seen[entry.id] = self.epoch
            buf = self.buffers.setdefault(entry.id, deque(maxlen=self.spec.max_epochs))
            buf.append((cut_stamp(image, entry.x, entry.y, self.spec.stamp_size), row))
            stamps = np.stack([s for s, _ in buf])
            raw = np.stack([c for _, c in buf])
            x, c = prepare_sequence(stamps, {k: raw[:, i] for i, k in enumerate(RAW_CONDITIONS)}, self.spec)
            out.append(ObjectEpoch(entry.id, len(buf), conditions["mjd"], entry.x, entry.y, x, c))
        for object_id in [k for k, seen in self.last_seen.items() if self.epoch - seen >= self.forget_after]:
            del self.buffers[object_id], self.last_seen[object_id]
        return out
