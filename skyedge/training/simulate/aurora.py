"""Aurorae in an all-sky frame, along the magnetic east-west axis (``sky.u``) and across it (``sky.v``).

* ``arc``: one to three thin bright bands, curved;
* ``discrete``: bright folded curtains with a sharp lower border and fine rays, sometimes red above;
* ``diffuse``: broad low-contrast glow patches.

Each adds green (and red) emission to the frame in the making (:class:`skyedge.training.simulate.allsky_scene.Sky`)
in units of its dark-sky brightness.
"""

from __future__ import annotations

import math

import numpy as np


def arc(sky, strength: float) -> None:
    rng = sky.rng
    for _ in range(rng.integers(1, 4)):
        v0, curvature = rng.uniform(-0.45, 0.45), rng.uniform(-0.5, 0.5)
        width = rng.uniform(0.02, 0.05)
        dist = sky.v - (v0 + curvature * sky.u**2)
        along = 0.7 + 0.3 * sky.smooth_noise(0.5)
        brightness = sky.sky0 * strength * rng.uniform(4.0, 15.0)
        sky.add("aurora_green", brightness * along * np.exp(-0.5 * (dist / width) ** 2))


def discrete(sky, strength: float) -> None:
    rng = sky.rng
    for _ in range(rng.integers(1, 3)):
        v0, curvature = rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6)
        folds = rng.uniform(0.04, 0.15) * np.sin(2 * math.pi * rng.uniform(1, 3.5) * sky.u + rng.uniform(0, 6.3))
        edge = v0 + curvature * sky.u**2 + folds
        dist = sky.v - edge
        height = rng.uniform(0.06, 0.2)
        # Sharp lower border, light extending up the field lines (here: one side of the band).
        profile = np.where(dist < 0, np.exp(-0.5 * (dist / 0.015) ** 2), np.exp(-dist / height))
        rays_freq = rng.uniform(15, 45)
        rays = 0.55 + 0.45 * np.sin(2 * math.pi * rays_freq * sky.u + 3 * sky.smooth_noise(0.2)) ** 2
        brightness = sky.sky0 * strength * rng.uniform(6.0, 20.0)
        sky.add("aurora_green", brightness * profile * rays)
        if rng.uniform() < 0.4:
            sky.add("aurora_red", 0.3 * brightness * np.exp(-np.abs(dist - 2 * height) / height) * rays)


def diffuse(sky, strength: float) -> None:
    rng = sky.rng
    field_ = sky.smooth_noise(rng.uniform(0.12, 0.3), octaves=2)
    patches = np.clip(field_ - rng.uniform(0.0, 0.4), 0, None)
    patches /= np.quantile(patches[sky.mask], 0.95) + 1e-9 if sky.mask.any() else 1.0
    sky.add("aurora_green", sky.sky0 * strength * rng.uniform(2.0, 5.0) * patches)
