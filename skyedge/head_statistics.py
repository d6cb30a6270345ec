"""The Gaussian statistics behind a Mahalanobis head, kept beside the model so the head can be refitted later.

Training writes them (class means, the shared covariance the head was built from, and how many frames of each
class went in); export carries the file into the package; ``skyedge adapt`` reads them on the device, where
the training data is not, and pools them with a site's own labelled frames. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD_STATISTICS_FILE = "head_statistics.npz"


@dataclass
class HeadStatistics:
    """Class means (K, D), the shared within-class covariance (D, D) and per-class counts (K,)."""

    means: np.ndarray
    covariance: np.ndarray
    counts: np.ndarray

    @property
    def dof(self) -> int:
        """Degrees of freedom of the pooled covariance: frames minus classes."""
        return max(int(self.counts.sum()) - int((self.counts > 0).sum()), 1)


def write_head_statistics(path: Path, means: np.ndarray, covariance: np.ndarray, counts: np.ndarray) -> Path:
    """Write the statistics (float64, so a refit starts from exactly what training used)."""
    with open(path, "wb") as fh:
        np.savez(
            fh, means=means.astype(np.float64), covariance=covariance.astype(np.float64), counts=counts.astype(np.int64)
        )
    return path


def read_head_statistics(path: Path) -> HeadStatistics:
    """Read and check them; a damaged file is an error naming it."""
    try:
        with np.load(path) as data:
            stats = HeadStatistics(data["means"], data["covariance"], data["counts"])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not readable head statistics ({exc})") from None
    k, d = stats.means.shape
    if stats.covariance.shape != (d, d) or stats.counts.shape != (k,):
        raise ValueError(f"{path}: shapes disagree: means {stats.means.shape}, covariance {stats.covariance.shape}")
    return stats


def precision_cholesky(covariance: np.ndarray) -> np.ndarray:
    """L with L L^T the inverse of ``covariance`` (symmetrised first): the head's projection."""
    precision = np.linalg.inv(covariance)
    return np.linalg.cholesky(0.5 * (precision + precision.T))
