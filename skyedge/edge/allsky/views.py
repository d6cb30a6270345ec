"""Several views of one frame: the model sees each frame turned by quarter turns, and its answers are averaged.

A fisheye sky has no preferred orientation on the sensor, and training turns and flips every frame, yet on real
frames a model's answer still depends on how the camera is mounted: on the real development camera the package
that never saw it called 0.52-0.66 of the clear skies safe over the eight turns and mirror images of the same
frames, and 0.23-0.32 of the cloudy ones. Averaging the four quarter turns makes the answer independent of the
mount, and was better on both counts than the turns' average (docs/results.md). It costs ``views`` inferences a
frame (a pipeline's ``views: 4``).

The turned copies of each frame follow one another on the batch axis (frame-major). Every output is averaged over
a frame's views; a cloud map is first turned back, so that each view's cells lie on the frame's own. The open-set
distance is the views' mean distance, of the same scale as the single view's the threshold was calibrated on.
"""

from __future__ import annotations

import numpy as np


def spatial_axes(layout: str) -> tuple[int, int]:
    """The (height, width) axes of a batched image tensor of ``layout`` ('NCHW' or 'NHWC')."""
    return (layout.index("H"), layout.index("W"))


def spread(x: np.ndarray, views: int, layout: str) -> np.ndarray:
    """(N, ...) frames -> (N * views, ...): each frame, then its quarter turns, one after another."""
    if views == 1:
        return x
    axes = spatial_axes(layout)
    turned = np.stack([np.rot90(x, k, axes=axes) for k in range(views)], axis=1)
    return np.ascontiguousarray(turned.reshape(x.shape[0] * views, *x.shape[1:]))


def merge(outputs: dict[str, np.ndarray], views: int, maps: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Each output (N * views, ...) averaged over a frame's views -> (N, ...); the outputs named in ``maps``
    (spatial, cells on their last two axes) turned back first."""
    if views == 1:
        return outputs
    out = {}
    for name, value in outputs.items():
        v = np.asarray(value).reshape(-1, views, *np.shape(value)[1:])
        if name in maps:
            v = np.stack([np.rot90(v[:, k], -k, axes=(-2, -1)) for k in range(views)], axis=1)
        out[name] = v.mean(axis=1, dtype=np.float64).astype(np.asarray(value).dtype)
    return out
