"""Classifiers fitted on embeddings after training, expressed as plain layers so they export to ONNX.

* :class:`MahalanobisHead`: class means and a shared (shrunk) covariance;
  squared distances ``||L^T (z - mu_k)||^2`` with ``P = L L^T`` the precision
  matrix; probabilities ``softmax(-d^2 / 2)``.
* :class:`RidgeHead`: ridge regression onto one-hot targets; scores pass a
  softmax whose temperature is fitted on the training embeddings.
* :class:`MinDistance`: the minimum Mahalanobis distance, whatever the class
  scorer, so every model can say "unknown" when an input is far from all classes.

All use MatMul/Add/ReduceSum/Softmax only (TensorRT-friendly).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fit_gaussian(
    z: np.ndarray, y: np.ndarray, num_classes: int, shrinkage: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Class means (K, D) and the Cholesky factor L of the shared precision (D, D)."""
    z = z.astype(np.float64)
    means = np.stack([z[y == k].mean(axis=0) if np.any(y == k) else np.zeros(z.shape[1]) for k in range(num_classes)])
    centred = z - means[y]
    cov = centred.T @ centred / max(len(z) - num_classes, 1)
    # Shrink toward a scaled identity: stable when D approaches the per-class sample count.
    cov = (1 - shrinkage) * cov + shrinkage * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    precision = np.linalg.inv(cov)
    precision = 0.5 * (precision + precision.T)
    chol = np.linalg.cholesky(precision)
    return means, chol


class _Projected(nn.Module):
    def __init__(self, means: np.ndarray, chol: np.ndarray):
        super().__init__()
        w = torch.tensor(chol.T, dtype=torch.float32)  # y = L^T z
        self.register_buffer("w", w)
        self.register_buffer("centres", torch.tensor(means @ chol, dtype=torch.float32))  # rows: L^T mu_k
        self.register_buffer("centre_norms", (self.centres**2).sum(dim=1))

    def squared_distances(self, z: torch.Tensor) -> torch.Tensor:
        y = z @ self.w.T
        d2 = (y * y).sum(dim=1, keepdim=True) - 2.0 * y @ self.centres.T + self.centre_norms
        return torch.clamp(d2, min=0.0)


class MahalanobisHead(_Projected):
    """Probabilities from Gaussian class likelihoods with a shared covariance."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(-0.5 * self.squared_distances(z), dim=1)


class MinDistance(_Projected):
    """Minimum Mahalanobis distance to any class mean: large means 'unlike anything seen in training'."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sqrt(self.squared_distances(z).min(dim=1).values + 1e-12)


class RidgeHead(nn.Module):
    """Ridge regression scores -> softmax with a fitted temperature."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray, temperature: float):
        super().__init__()
        self.linear = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor(weight * temperature, dtype=torch.float32))
            self.linear.bias.copy_(torch.tensor(bias * temperature, dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(z), dim=1)


class SoftmaxHead(nn.Module):
    """The cross-entropy baseline's own linear layer, followed by softmax."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(z), dim=1)


def fit_ridge(
    z: np.ndarray, y: np.ndarray, num_classes: int, alpha: float = 1.0
) -> tuple[np.ndarray, np.ndarray, float]:
    """Ridge weights (K, D), bias (K,) and a softmax temperature minimising training NLL."""
    z = z.astype(np.float64)
    mean = z.mean(axis=0)
    zc = z - mean
    targets = np.eye(num_classes)[y]
    tmean = targets.mean(axis=0)
    w = np.linalg.solve(zc.T @ zc + alpha * np.eye(z.shape[1]), zc.T @ (targets - tmean))  # (D, K)
    bias = tmean - mean @ w
    scores = z @ w + bias
    best, best_t = np.inf, 1.0
    for t in np.geomspace(0.5, 200, 60):
        s = scores * t
        s = s - s.max(axis=1, keepdims=True)
        nll = -(s[np.arange(len(y)), y] - np.log(np.exp(s).sum(axis=1))).mean()
        if nll < best:
            best, best_t = nll, float(t)
    return w.T, bias, best_t


def unknown_threshold(distances: np.ndarray, quantile: float = 0.995) -> float:
    """Distance above which an input is 'unknown': this quantile of the training distances."""
    return float(np.quantile(distances, quantile))
