"""Simulated auroral light added to a real camera's frame: real sky, real optics and processing, simulated aurora.

No real aurora was ever recorded by the one annotated real camera the project has (LenghuSky-8, 38 deg N), so a
model that learns real skies from it sees real skies only without aurora, and may learn that a real-looking frame
is never an aurora. This module puts the simulator's aurorae (:mod:`skyedge.training.simulate.aurora`, the same
shapes, colours and brightness relative to the dark sky) onto a real frame through that camera's lens, so that
such frames can be checked (docs/scripts/real_aurora.py) and trained on.

The light is added in linear units: an 8-bit frame is undone from its display gamma (sRGB-like 2.2; enhanced JPEGs
are only approximately so), the aurora added in units of the frame's own median sky brightness (the simulator's
dark-sky unit), and the gamma put back; a 16-bit or float frame (raw or FITS data) is linear already, and its sky is
measured above its darkest pixels (a raw frame's bias). A mono camera gets the light's mean over colour. Pixels
outside ``mask`` (ground, mast, buildings) get none.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from skyedge.stars.lens import Lens
from skyedge.training.simulate.allsky_scene import SPECTRA, Sky
from skyedge.training.simulate.aurora import arc, diffuse, discrete

KINDS = {"arc": arc, "discrete": discrete, "diffuse": diffuse}
BACKGROUNDS = ("clear", "moon")  # the real frames an aurora may be added to: night skies without cloud
GAMMA = 2.2
FLOOR = (12 / 255) ** GAMMA  # a frame stretched to black still has a sky the aurora is measured against


class LensCanvas:
    """What the aurora functions draw on (the part of :class:`Sky` they use), for a real frame's lens."""

    smooth_noise = Sky.smooth_noise

    def __init__(self, shape: tuple[int, int], centre: tuple[float, float], horizon_radius: float, projection: str,
                 mask: np.ndarray, rng: np.random.Generator):
        h, w = shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        alt, az = Lens(centre[0], centre[1], horizon_radius, 0.0, "left", projection).sky(xx, yy)
        azimuth = np.radians(az)
        rho = np.minimum(90.0 - alt, 90.0) / 90.0  # the simulator's equidistant sky plane: the horizon at 1
        self.dx, self.dy = rho * np.sin(azimuth), -rho * np.cos(azimuth)
        axis = rng.uniform(0, 2 * math.pi)  # the magnetic east-west axis: any direction on an unknown camera
        self.u = self.dx * math.cos(axis) + self.dy * math.sin(axis)
        self.v = -self.dx * math.sin(axis) + self.dy * math.cos(axis)
        self.mask, self.rng, self.sky0 = mask, rng, 1.0
        self.components: list[tuple[str, np.ndarray]] = []

    def add(self, spectrum: str, electrons: np.ndarray) -> None:
        self.components.append((spectrum, electrons))

    def light(self) -> np.ndarray:
        """The aurora's (H, W, 3) light in units of the dark sky, zero off the mask."""
        out = np.zeros((*self.mask.shape, 3))
        for spectrum, emission in self.components:
            out += emission[..., None] * np.asarray(SPECTRA[spectrum])[None, None, :]
        return out * self.mask[..., None]


def overlay_aurora(image: np.ndarray, kind: str, rng: np.random.Generator, *, mask: np.ndarray,
                   centre: tuple[float, float], horizon_radius: float, projection: str = "equidistant",
                   strength: float = 1.0) -> np.ndarray:
    """``image`` with a simulated aurora of ``kind`` (arc, discrete, diffuse) added over ``mask``; the lens is the
    frame's zenith pixel, horizon radius in pixels and projection. An 8-bit frame (H, W, 3 RGB or H, W mono) is taken
    as display-encoded, a 16-bit or float one (a camera's raw or FITS data) as linear; a mono frame gets the light's
    mean over colour. Same shape and dtype out; NaN stays NaN."""
    if kind not in KINDS:
        raise ValueError(f"unknown aurora kind {kind!r}; expected one of {', '.join(KINDS)}")
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"expected an (H, W, 3) RGB or (H, W) mono frame, got {image.shape}")
    if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"expected uint8, uint16 or float pixels, got {image.dtype}")
    mask = np.asarray(mask, bool)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match the frame's {image.shape[:2]}")
    canvas = LensCanvas(image.shape[:2], centre, horizon_radius, projection, mask, rng)
    KINDS[kind](canvas, strength)
    light = canvas.light()
    if image.ndim == 2 or image.shape[2] == 1:
        light = light.mean(axis=2).reshape(image.shape)
    if image.dtype == np.uint8:
        linear = (image.astype(np.float64) / 255.0) ** GAMMA
        background = max(_median_sky(linear, mask), FLOOR)
        return (np.clip(linear + light * background, 0.0, 1.0) ** (1.0 / GAMMA) * 255.0 + 0.5).astype(np.uint8)
    data = image.astype(np.float64)
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return image.copy()
    # Raw data sit on a pedestal (bias, dark): the sky's brightness is measured above the frame's darkest pixels.
    pedestal, top = np.percentile(finite, [1.0, 99.9])
    background = max(_median_sky(data, mask) - pedestal, (top - pedestal) * FLOOR, 1e-12)
    out = data + light * background
    if image.dtype == np.uint16:
        return np.clip(np.rint(out), 0, 65535).astype(np.uint16)
    return out.astype(image.dtype)


def _median_sky(data: np.ndarray, mask: np.ndarray) -> float:
    """The median over the masked sky (the whole frame without one) of the pixels' mean over colour."""
    sky = data[mask] if mask.any() else data.reshape(-1, *data.shape[2:])
    level = sky.mean(axis=1) if sky.ndim == 2 else sky
    level = level[np.isfinite(level)]
    return float(np.median(level)) if level.size else 0.0


def annotated_circle(masks: list[np.ndarray]) -> tuple[tuple[float, float], float]:
    """The zenith pixel and horizon radius of a camera's frames, as the circle enclosing all their annotated sky."""
    union = np.zeros(masks[0].shape, np.uint8)
    for m in masks:
        if m.shape != union.shape:
            raise ValueError(f"annotated frames differ in size ({m.shape} and {union.shape}): give the lens")
        union |= m.astype(np.uint8)
    contours, _ = cv2.findContours(union, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        raise ValueError("no annotated sky to place the lens by: give the lens")
    (x, y), radius = cv2.minEnclosingCircle(np.concatenate(contours))
    return (float(x), float(y)), float(radius)


def aurora_copies(images: list[np.ndarray], masks: list[np.ndarray | None], labels: list[str], spec
                  ) -> list[tuple[int, np.ndarray, str]]:
    """(index of the frame copied, the copy, its aurora kind): ``spec.copies_per_frame`` copies of ``spec.fraction``
    of the frames labelled clear or moon whose sky ``masks`` gives (None: unknown, not copied), kinds in turn, seeded
    by ``spec.seed`` (``spec``: :class:`skyedge.training.config.AuroraOverlaySpec`)."""
    rng = np.random.default_rng(spec.seed)
    candidates = [i for i, label in enumerate(labels) if label in BACKGROUNDS and masks[i] is not None]
    if not candidates:
        return []
    chosen = sorted(rng.choice(candidates, size=max(1, int(round(spec.fraction * len(candidates)))), replace=False))
    found = None
    if spec.centre_px is None or spec.horizon_radius_px is None:
        found = annotated_circle([masks[i] for i in candidates])
    centre = (float(spec.centre_px[0]), float(spec.centre_px[1])) if spec.centre_px is not None else found[0]
    radius = float(spec.horizon_radius_px) if spec.horizon_radius_px is not None else found[1]
    out = []
    for i in chosen:
        for _ in range(spec.copies_per_frame):
            kind = spec.kinds[len(out) % len(spec.kinds)]
            copy = overlay_aurora(images[i], kind, rng, mask=masks[i], centre=centre, horizon_radius=radius,
                                  projection=spec.projection, strength=aurora_strength(rng, spec.strength))
            out.append((int(i), copy, kind))
    return out


def aurora_strength(rng: np.random.Generator, bounds) -> float:
    """An aurora's strength within ``bounds`` (low, high), drawn evenly in its logarithm."""
    # Real aurorae span decades of brightness against the night sky: a range drawn evenly would be almost all bright.
    low, high = (math.log(float(b)) for b in bounds)
    return float(math.exp(rng.uniform(low, high)))


def append_aurora_copies(images: list, names: list[str], cloud: list, columns: dict[str, list],
                         masks: list[np.ndarray | None], spec) -> int:
    """Add :func:`aurora_copies` to a real source's lists in place, how many: each copy named by its aurora kind,
    with its frame's cloud truth (an aurora is not cloud) and ``columns`` (``file`` marked ``#kind``, ``weight``
    ``spec.weight``, any other, such as the night, the frame's: splits keep a copy with its frame)."""
    copies = aurora_copies(images, masks, names, spec)
    for i, image, kind in copies:
        images.append(image)
        names.append(kind)
        cloud.append(cloud[i])
        for key, column in columns.items():
            column.append(f"{column[i]}#{kind}" if key == "file" else spec.weight if key == "weight" else column[i])
    return len(copies)
