"""Cloud cover for the all-sky simulator: per-pixel opacity of banks, broken cloud, overcast, moonlit decks and
banks low on the horizon, drawn into a scene's :class:`~skyedge.training.simulate.allsky_scene.Sky`.

The class's cover is any cloud that matters to a dome; a secondary's is a few translucent patches. What the
cloud looks like (lit by the town, the moon or twilight) is the scene's to combine; this module only says where
the cloud is and how opaque.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from skyedge.training.simulate.allsky_scene import Sky


def cloud(sky: Sky, strength: float) -> None:
    """Cloud cover of ``strength`` (the class: from a few banks to overcast; as a secondary: a few patches)."""
    rng = sky.rng
    if strength >= 0.5 and sky.cfg.cloud_cover is not None:
        coverage = rng.uniform(*sky.cfg.cloud_cover)
    elif strength >= 0.5:
        # The class is any cloud that matters to a dome: overcast, broken, or a few banks over a clear sky.
        coverage = rng.uniform(0.6, 1.0) if rng.uniform() < 0.6 else rng.uniform(0.08, 0.6)
    else:
        coverage = np.clip(strength * rng.uniform(0.6, 1.0), 0.05, 1.0)
    textured = "cloud_texture" not in sky.cfg.without
    # The shapes come from smooth noise (banks, holes); the texture within them from finer noise that changes
    # their thickness and brightness, not their outline.
    noise = sky.smooth_noise(rng.uniform(0.15, 0.4), octaves=4, persistence=0.55)
    if textured and rng.uniform() < 0.35:
        # Streets and rolls along the wind: the shapes stretched along one direction.
        a = rng.uniform(0, math.pi)
        along = sky.dx * math.cos(a) + sky.dy * math.sin(a)
        rolls = np.sin(2 * math.pi * rng.uniform(2, 5) * along + 2.0 * sky.smooth_noise(0.25, 2))
        noise = 0.75 * noise + 0.25 * rolls
    threshold = None
    if strength >= 0.5 and sky.cfg.horizon_bank_probability > 0 and rng.uniform() < sky.cfg.horizon_bank_probability:
        # Banks on the horizon only (3-15% of the sky), the shapes pushed below ~45 deg altitude; the rest stays clear.
        low = np.clip((np.degrees(sky.zenith) - 45.0) / 30.0, 0.0, 1.0) * (sky.zenith <= math.pi / 2)
        noise = noise + 3.0 * low.astype(np.float32)
        coverage = rng.uniform(0.03, 0.15)
        threshold = np.quantile(noise[sky.mask > 0], 1.0 - coverage)
    moonlit = sky.moon is not None and sky.moon["alt"] > 0
    deck = sky.cfg.deck_probability > 0 and moonlit and strength >= 0.5 and coverage >= 0.6
    if deck and rng.uniform() < sky.cfg.deck_probability:
        # One deck over the whole sky: opaque, so the moon's disc and every star are gone (combine adds the glow).
        # Off by default, which keeps the draws of every earlier data set (docs/results.md: with decks a model
        # lost the real clear skies).
        sky.deck = True
        sky.cloud_opacity = np.ones_like(sky.cloud_opacity)
        sky.meta.update(cloud_coverage=1.0, cloud_albedo=float(rng.uniform(0.5, 0.9)), cloud_deck=True)
        return
    threshold = np.quantile(noise, 1.0 - coverage) if threshold is None else threshold
    # Thick cloud (the class) lets almost no starlight through, but for the share drawn thin; thin patches (a
    # secondary) are translucent.
    thin = strength >= 0.5 and coverage >= 0.5 and sky.cfg.thin_cloud_probability > 0 and rng.uniform() < sky.cfg.thin_cloud_probability
    if thin:
        sky.meta["cloud_thin"] = True
        thickness = rng.uniform(0.5, 0.85)
    else:
        thickness = rng.uniform(0.9, 1.0) if strength >= 0.5 else rng.uniform(0.4, 0.9)
    opacity = np.clip((noise - threshold) / rng.uniform(0.05, 0.3), 0.0, 1.0) * thickness
    if textured:
        detail = sky.smooth_noise(rng.uniform(0.04, 0.08), octaves=3, persistence=0.6)
        opacity = np.clip(opacity * (1.0 + 0.35 * detail * (opacity < 0.95)), 0.0, thickness if thin else 1.0)
    sky.cloud_opacity = np.maximum(sky.cloud_opacity, opacity)
    sky.meta.update(cloud_coverage=float(coverage), cloud_albedo=float(rng.uniform(0.4, 0.9)))
