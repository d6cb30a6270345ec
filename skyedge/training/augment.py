"""Camera augmentations for frame training: what differs between all-sky cameras, drawn per frame in a batch.

Applied to prepared frames (normalised model inputs): each is mapped back to the stretched [0, 1] sky, changed
as another camera would show it, and normalised again. The point is generalisation to cameras never seen:

* orientation: flips and quarter turns (a sky has no preferred orientation on the sensor);
* geometry: zoom 0.8-1.2 and shifts of up to 8% (image-circle size and position differ per lens and mount);
* tone: gamma 0.6-1.6 and a contrast/offset jitter (camera curves, auto-stretch, JPEG);
* blur: a Gaussian of up to 1.5 px (dew, focus, resampling);
* noise: Gaussian noise of up to 4% (sensor noise, compression);
* obstructions: a dark wedge along part of the horizon (trees, buildings) in a third of the frames;
* colour: a third of colour frames become grey (mono cameras), the rest get a channel gain jitter (white balance,
  a camera program's tint).

Per-pixel truth that rides with a frame (a cloud map's targets, on the model input's grid) is moved by the same
orientation and geometry, so it stays aligned.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def orient(x: torch.Tensor) -> torch.Tensor:
    """Random flips and quarter turns per frame: a sky has no preferred orientation on the sensor (any channels
    stacked on the frame move with it)."""
    flip_h = torch.rand(x.shape[0], 1, 1, 1) < 0.5
    flip_v = torch.rand(x.shape[0], 1, 1, 1) < 0.5
    x = torch.where(flip_h, x.flip(3), x)
    x = torch.where(flip_v, x.flip(2), x)
    if x.shape[2] == x.shape[3] and torch.rand(()) < 0.5:
        x = x.transpose(2, 3)
    return x


def _geometry(s: torch.Tensor) -> torch.Tensor:
    b = s.shape[0]
    scale = torch.empty(b).uniform_(0.8, 1.2)
    shift = torch.empty(b, 2).uniform_(-0.08, 0.08)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(s.shape), align_corners=False)
    return F.grid_sample(s, grid, padding_mode="zeros", align_corners=False)


def _tone(s: torch.Tensor) -> torch.Tensor:
    b = s.shape[0]
    gamma = torch.exp(torch.empty(b, 1, 1, 1).uniform_(math.log(0.6), math.log(1.6)))
    gain = torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2)
    offset = torch.empty(b, 1, 1, 1).uniform_(-0.05, 0.05)
    return (s.clamp(0, 1) ** gamma * gain + offset).clamp(0, 1)


def _blur(s: torch.Tensor) -> torch.Tensor:
    sigma = float(torch.empty(()).uniform_(0.3, 1.5))
    radius = max(1, int(round(2 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=s.dtype)
    kernel = torch.exp(-0.5 * (k / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = s.shape[1]
    s = F.conv2d(
        F.pad(s, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c
    )
    return F.conv2d(
        F.pad(s, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c
    )


def _obstruct(s: torch.Tensor) -> torch.Tensor:
    b, _, h, w = s.shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    r, angle = torch.hypot(xx, yy), torch.atan2(yy, xx)
    start = torch.empty(b, 1, 1).uniform_(-math.pi, math.pi)
    span = torch.empty(b, 1, 1).uniform_(0.5, 2.5)
    depth = torch.empty(b, 1, 1).uniform_(0.7, 0.9)
    inside = torch.remainder(angle - start, 2 * math.pi) < span
    dark = inside & (r > depth) & (torch.rand(b, 1, 1) < 0.33)
    return torch.where(dark[:, None], s * 0.1, s)


def _colour(s: torch.Tensor) -> torch.Tensor:
    if s.shape[1] != 3:
        return s
    b = s.shape[0]
    grey = torch.rand(b, 1, 1, 1) < 0.33
    tinted = (s * torch.empty(b, 3, 1, 1).uniform_(0.8, 1.2)).clamp(0, 1)
    return torch.where(grey, s.mean(1, keepdim=True).expand_as(s), tinted)


def camera_augment(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, truth: torch.Tensor | None = None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """A batch (B, C, H, W) of normalised frames as other cameras might have delivered them; with ``truth``
    (B, K, H, W), also the truth moved with them: ``(frames, truth)``."""
    c = x.shape[1]
    s = x * std.view(1, -1, 1, 1) + mean.view(1, -1, 1, 1)  # back to the stretched sky in [0, 1]
    if truth is not None:
        s = torch.cat([s, truth], 1)
    s = _geometry(orient(s))
    if truth is not None:
        s, truth = s[:, :c], s[:, c:]
    s = _colour(_tone(s))
    if torch.rand(()) < 0.5:
        s = _blur(s)
    s = _obstruct(s)
    s = (s + torch.randn_like(s) * float(torch.empty(()).uniform_(0.0, 0.04))).clamp(0, 1)
    out = (s - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    return out if truth is None else (out, truth)
