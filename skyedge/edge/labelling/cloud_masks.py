"""Painted cloud for ``skyedge adapt``: a labelled frame's painted mask (:mod:`skyedge.painted_cloud`) on the model
input's grid and the cloud map's cells.

A head refitted to frame labels reads on a scale placed for the check's limit (:mod:`adapt_map`); a head refitted to
painted frames reads cloud fraction, as a head trained on the simulator's or the polygons' truth does.
"""

from __future__ import annotations

import numpy as np

from skyedge.preprocess import prepare_cloud_truth


def prepared(truth: np.ndarray, preprocess, sky: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cloud x judged, judged) (H, W) on the model input's grid for a frame's painted ``truth``, through the same
    preparation as the frame; ``sky``: the prepared frame's sky pixels (H, W)."""
    cloud, known = prepare_cloud_truth(truth, preprocess) * sky.astype(np.float32)
    return cloud, known


def cell_cloud(cloud: np.ndarray, judged: np.ndarray, map_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(each map cell's painted cloud fraction, NaN where nothing is judged; each cell's share of judged sky) from a
    frame's :func:`prepared` mask."""
    import cv2

    h, w = map_shape
    cloud = cv2.resize(cloud, (w, h), interpolation=cv2.INTER_AREA)
    known = cv2.resize(judged, (w, h), interpolation=cv2.INTER_AREA)
    with np.errstate(invalid="ignore", divide="ignore"):
        fraction = np.where(known > 1e-6, cloud / np.maximum(known, 1e-12), np.nan)
    return np.clip(fraction, 0.0, 1.0), known
