"""Day decided by physics: the sun's altitude that makes a frame 'day', and the model's 'day' taken out at night.

Shared by the edge (:mod:`skyedge.edge.allsky.task`), which knows the sun from its site and the capture time, and
``skyedge evaluate --site-known``, which scores simulated cameras as such a device answers them.
"""

from __future__ import annotations

import numpy as np

DAY_SUN_ALT_DEG = -12.0  # nautical twilight: a sun higher than this makes the frame 'day'


def without_class(probabilities: np.ndarray, rows: np.ndarray, index: int) -> np.ndarray:
    """``probabilities`` (N, C) with class ``index`` taken out where ``rows`` (N,) is true, the other classes sharing
    its probability: what physics rules out (a day at night, a moonlit sky with the moon down)."""
    p = np.asarray(probabilities).copy()
    if not rows.any():
        return p
    p[rows, index] = 0.0
    p[rows] /= np.clip(p[rows].sum(axis=1, keepdims=True), 1e-12, None)
    return p


def without_day(probabilities: np.ndarray, night: np.ndarray, day_index: int) -> np.ndarray:
    """``probabilities`` (N, C) with the 'day' class taken out where ``night`` (N,) is true, the night classes
    sharing its probability: a learned day class may agree with physics, never overrule it."""
    return without_class(probabilities, night, day_index)
