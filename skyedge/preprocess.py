"""Preprocessing exactly as the model card says, shared by training and the edge (numpy + OpenCV, no torch).

Training prepares its inputs with these functions and the edge runtime calls
the same ones on the device, so a model never sees data prepared differently
from what it was trained on. 16-bit and FITS data stay float32 with their full
dynamic range until the card's stretch maps them to [0, 1].
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np

from skyedge.errors import InputError
from skyedge.model_card import Preprocess, SequenceSpec, Stretch

BAYER_CODES = {
    "RGGB": "COLOR_BayerRG2RGB",
    "BGGR": "COLOR_BayerBG2RGB",
    "GRBG": "COLOR_BayerGR2RGB",
    "GBRG": "COLOR_BayerGB2RGB",
}
# Per-epoch condition features a sequence card may name, computed from raw observing conditions.
CONDITION_FEATURES = ("fwhm", "log_sky", "zero_point", "airmass", "exptime", "log_dt")


class PreprocessError(InputError):
    """Input that cannot be turned into a model input (wrong shape, NaN-only, ...)."""


def debayer(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """A raw Bayer mosaic (H, W) to RGB (H, W, 3), keeping the bit depth."""
    import cv2

    if mosaic.ndim != 2:
        raise PreprocessError(f"a Bayer mosaic must be 2-D, got shape {mosaic.shape}")
    if pattern not in BAYER_CODES:
        raise PreprocessError(f"unknown Bayer pattern {pattern!r}; expected one of {', '.join(BAYER_CODES)}")
    data = mosaic if mosaic.dtype in (np.uint8, np.uint16) else np.clip(mosaic, 0, 65535).astype(np.uint16)
    return cv2.cvtColor(data, getattr(cv2, BAYER_CODES[pattern]))


def horizon_mask(size: tuple[int, int], radius_fraction: float = 0.47) -> np.ndarray:
    """Boolean mask of the all-sky circle (zenith at the centre) for an (H, W) image (read-only, cached)."""
    return _horizon_mask(tuple(size), float(radius_fraction))


@lru_cache(maxsize=16)
def _horizon_mask(size: tuple[int, int], radius_fraction: float) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - (w - 1) / 2.0, yy - (h - 1) / 2.0)
    mask = r <= radius_fraction * min(h, w)
    mask.flags.writeable = False
    return mask


def apply_stretch(
    x: np.ndarray, stretch: Stretch, valid: np.ndarray | None = None, dtype_max: float | None = None
) -> np.ndarray:
    """Map raw values to [0, 1] by the card's stretch; percentiles come from ``valid`` pixels only."""
    sample = x[valid] if valid is not None else x.ravel()
    sample = sample[np.isfinite(sample)]
    if sample.size == 0:
        raise PreprocessError("no finite pixel values to stretch")
    if stretch.kind == "linear":
        low = stretch.low if stretch.low is not None else 0.0
        high = stretch.high if stretch.high is not None else (dtype_max or float(sample.max()))
        out = (x - low) / max(high - low, 1e-12)
    elif stretch.kind == "median":
        low, median = np.percentile(sample, [stretch.low_percentile, 50.0])
        t = np.clip(x - low, 0, None) / max(float(median - low), 1e-6)
        out = np.arcsinh(t) / math.asinh(stretch.ceiling)
    elif stretch.kind == "rank":
        ordered = np.sort(sample)
        # Ties (8-bit and JPEG data have many) take the middle of their run of ranks.
        out = (np.searchsorted(ordered, x, "left") + np.searchsorted(ordered, x, "right")) / (2.0 * ordered.size)
    else:
        low, high = np.percentile(sample, [stretch.low_percentile, stretch.high_percentile])
        span = max(float(high - low), 1e-6)
        if stretch.kind == "percentile":
            out = (x - low) / span
        else:  # asinh: compresses bright stars and the moon, keeps faint structure visible
            a = stretch.asinh_a
            out = np.arcsinh(np.clip(x - low, 0, None) / (a * span)) / math.asinh(1.0 / a)
    return np.clip(np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0).astype(np.float32)


def prepare_frame(image: np.ndarray, spec: Preprocess, **options) -> np.ndarray:
    """One decoded frame -> a (C, H, W) float32 model input, per the card's preprocessing block
    (:func:`prepare_frame_and_sky` with the same ``bayer``, ``dark``, ``flat`` and ``mask``, without the sky)."""
    return prepare_frame_and_sky(image, spec, **options)[0]


def prepare_frame_and_sky(
    image: np.ndarray,
    spec: Preprocess,
    *,
    bayer: str | None = None,
    dark: np.ndarray | None = None,
    flat: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One decoded frame -> (a (C, H, W) float32 model input, the (H, W) boolean sky it shows), per the card's
    preprocessing block.

    Pixels that are NaN (outside some FITS cameras' field of view) or outside ``mask`` (an (H, W) boolean
    array, True = sky) are ignored by the stretch and are zero in the model input, like the area outside
    the card's horizon circle.
    """
    import cv2

    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise PreprocessError(f"expected an (H, W) or (H, W, 3) image, got shape {image.shape}")
    dtype_max = float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else None
    if bayer:
        image = debayer(image, bayer)
    x = image.astype(np.float32)
    if mask is not None and mask.shape != x.shape[:2]:
        raise PreprocessError(f"mask is {mask.shape[1]}x{mask.shape[0]} but the frame is {x.shape[1]}x{x.shape[0]}")
    if dark is not None:
        if dark.shape[:2] != x.shape[:2]:
            raise PreprocessError(f"dark frame shape {dark.shape} does not match image {x.shape}")
        x = x - (dark.astype(np.float32) if x.ndim == dark.ndim else dark.astype(np.float32)[..., None])
    if flat is not None:
        if flat.shape[:2] != x.shape[:2]:
            raise PreprocessError(f"flat frame shape {flat.shape} does not match image {x.shape}")
        f = flat.astype(np.float32)
        f = f / np.nanmedian(f)
        x = x / np.clip(f if x.ndim == f.ndim else f[..., None], 1e-3, None)
    if x.ndim == 3 and x.shape[2] == 1:
        x = x[..., 0]
    if spec.channels == 1 and x.ndim == 3:
        x = x.mean(axis=2)
    elif spec.channels == 3 and x.ndim == 2:
        x = np.repeat(x[..., None], 3, axis=2)
    finite = np.isfinite(x) if x.ndim == 2 else np.isfinite(x).all(axis=2)
    valid = finite if mask is None else finite & mask
    if not valid.any():
        raise PreprocessError("image has no finite pixel values" if not finite.any() else "every pixel is masked")
    height, width = spec.size
    if spec.fit == "pad":
        x, valid = _pad_to_aspect(x, valid, width / height)
    if x.shape[:2] != (height, width):
        if spec.resize == "none":
            raise PreprocessError(
                f"image is {x.shape[1]}x{x.shape[0]}, the model needs {width}x{height} and resize is 'none'"
            )
        interp = cv2.INTER_AREA if spec.resize == "area" else cv2.INTER_LINEAR
        if not valid.all():
            # Fill what is not sky with the sky's median so no edge of a tree or overlay bleeds into the sky.
            fill = np.where(valid if x.ndim == 2 else valid[..., None], x, np.float32(np.median(x[valid])))
            x = fill.astype(np.float32)
        x = cv2.resize(x, (width, height), interpolation=interp)
        valid = cv2.resize(valid.astype(np.float32), (width, height), interpolation=interp) >= 0.5
    if spec.horizon_mask:
        valid = valid & horizon_mask((height, width), spec.horizon_radius)
    per_channel = valid if x.ndim == 2 else np.repeat(valid[..., None], 3, axis=2)
    x = apply_stretch(x, spec.stretch, per_channel, dtype_max)
    x = x * (valid if x.ndim == 2 else valid[..., None])
    if x.ndim == 2:
        x = x[None]
    else:
        x = np.moveaxis(x, -1, 0)
    mean = np.asarray(spec.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(spec.std, dtype=np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32), valid


NO_SKY = 255  # cloud truth of a pixel that shows no sky (simulator truth and real masks alike)


def prepare_cloud_truth(truth: np.ndarray, spec: Preprocess) -> np.ndarray:
    """Per-pixel cloud truth (uint8: opacity x 250, :data:`NO_SKY` where no sky shows) -> (2, H, W) float32 on the
    model input's grid: cloud x known, and known (the share of each model pixel whose truth is known). The same
    letterboxing, resizing and horizon circle as :func:`prepare_frame`, so truth and frame stay aligned."""
    import cv2

    known = truth != NO_SKY
    cloud = np.where(known, truth.astype(np.float32) / 250.0, 0.0).astype(np.float32)
    height, width = spec.size
    if spec.fit == "pad":
        cloud, _ = _pad_to_aspect(cloud, known, width / height)
        known = _pad_to_aspect(known.astype(np.float32), known, width / height)[0] > 0.5
        cloud = np.nan_to_num(cloud)
    weight = known.astype(np.float32)
    if cloud.shape != (height, width):
        cloud = cv2.resize(cloud * weight, (width, height), interpolation=cv2.INTER_AREA)
        weight = cv2.resize(weight, (width, height), interpolation=cv2.INTER_AREA)
    else:
        cloud = cloud * weight
    if spec.horizon_mask:
        inside = horizon_mask((height, width), spec.horizon_radius)
        cloud, weight = cloud * inside, weight * inside
    return np.stack([cloud, weight]).astype(np.float32)


def _pad_to_aspect(x: np.ndarray, valid: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Pad the shorter side symmetrically (with masked pixels) to the model's aspect ratio: a lens circle on
    a 4:3 sensor stays a circle."""
    h, w = x.shape[:2]
    target_w, target_h = max(w, int(round(h * aspect))), max(h, int(round(w / aspect)))
    if (target_h, target_w) == (h, w):
        return x, valid
    top, left = (target_h - h) // 2, (target_w - w) // 2
    pad = ((top, target_h - h - top), (left, target_w - w - left))
    x = np.pad(x, pad + (((0, 0),) if x.ndim == 3 else ()), constant_values=np.nan)
    return x, np.pad(valid, pad, constant_values=False)


def cut_stamp(image: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """A ``size`` x ``size`` stamp centred on the pixel nearest (x, y); NaN where it leaves the frame."""
    return cut_stamps(image, np.array([x]), np.array([y]), size)[0]


def cut_stamps(image: np.ndarray, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """(N, size, size) stamps centred on the pixels nearest (x, y); NaN where a stamp leaves the frame."""
    half = size // 2
    padded = np.pad(image.astype(np.float32, copy=False), half, constant_values=np.nan)
    ix = np.rint(np.asarray(x, dtype=np.float64)).astype(np.int64)
    iy = np.rint(np.asarray(y, dtype=np.float64)).astype(np.int64)
    # Objects wholly off the frame (a drifted edge) read the NaN border instead of wrapping around.
    ix = np.clip(ix, -half - 1, image.shape[1] + half) + half
    iy = np.clip(iy, -half - 1, image.shape[0] + half) + half
    offsets = np.arange(-half, half + 1)
    rows = np.clip(iy[:, None] + offsets[None, :], 0, padded.shape[0] - 1)
    cols = np.clip(ix[:, None] + offsets[None, :], 0, padded.shape[1] - 1)
    stamps = padded[rows[:, :, None], cols[:, None, :]]
    outside = (iy[:, None] + offsets < 0) | (iy[:, None] + offsets >= padded.shape[0])
    outside_x = (ix[:, None] + offsets < 0) | (ix[:, None] + offsets >= padded.shape[1])
    stamps[outside[:, :, None] | outside_x[:, None, :]] = np.nan
    return stamps


def condition_features(
    raw: dict[str, np.ndarray], names: list[str] | tuple[str, ...], dt_days: np.ndarray | None = None
) -> np.ndarray:
    """Per-epoch features (T, K) from raw conditions (mjd, fwhm, sky, zero_point, exptime, airmass).

    ``dt_days``: the time since each row's previous epoch, when the rows are not one history (one epoch of many
    objects, each with its own previous epoch); by default the differences of ``mjd``."""
    columns = []
    for name in names:
        if name == "log_sky":
            columns.append(np.log10(np.clip(raw["sky"], 1.0, None)))
        elif name == "log_dt":
            if dt_days is None:
                mjd = np.asarray(raw["mjd"], dtype=np.float64)
                dt_days = np.diff(mjd, prepend=mjd[:1])
            columns.append(np.log1p(np.clip(dt_days, 0.0, None) * 24.0))  # hours since the previous epoch
        elif name in ("fwhm", "zero_point", "airmass", "exptime"):
            columns.append(np.asarray(raw[name], dtype=np.float64))
        else:
            raise PreprocessError(f"unknown condition feature {name!r}; known: {', '.join(CONDITION_FEATURES)}")
    return np.stack(np.broadcast_arrays(*columns), axis=-1).astype(np.float32)


def normalised_conditions(features: np.ndarray, spec: SequenceSpec) -> np.ndarray:
    """Condition features scaled by the card's training mean and spread."""
    if spec.conditions_mean:
        features = (features - np.asarray(spec.conditions_mean, np.float32)) / np.asarray(
            spec.conditions_std, np.float32
        )
    return features.astype(np.float32)


def prepare_stamps(stamps: np.ndarray, zero_point, spec: SequenceSpec, reference=None) -> np.ndarray:
    """Stamps (N, S, S) -> model stamps (N, S, S), with each epoch's zero point (scalar or (N,)).

    Each stamp is background-subtracted (median of its border) and scaled with its
    epoch's zero point, so a constant star has a constant flux whatever the
    transparency, onto the card's flux scale: ``zero_point``: the card's reference
    zero point (stamps in electrons); ``noise``: the pixel noise of the sequence's
    reference epoch, ``reference`` = (its zero point, its noise, in the stamps'
    unit). Only zero-point differences enter the noise scale, so an assumed zero
    point that is off by a magnitude, or a wrong gain, changes nothing. Then
    divided by the softening and, for ``asinh`` scaling, compressed. Linear scaling
    keeps the sum over a stamp proportional to the flux whatever the seeing.
    """
    x = stamps.astype(np.float32)
    # Background from the stamp's outer 2-pixel frame: the median of the whole stamp is biased by the wings
    # of a bright source under poor seeing.
    border = np.ones(x.shape[1:], dtype=bool)
    border[2:-2, 2:-2] = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a stamp wholly off the frame: all NaN, zeros below
        x = x - np.nanmedian(x[:, border], axis=1)[:, None, None]
    zero_point = np.asarray(zero_point, dtype=np.float64)
    if spec.flux_scale == "noise":
        if reference is None:
            raise PreprocessError("this model measures flux in a reference epoch's noise: give (zero point, noise)")
        ref_zp, ref_noise = (float(v) for v in reference)
        if not (np.isfinite(ref_noise) and ref_noise > 0 and np.isfinite(ref_zp)):
            raise PreprocessError(f"the reference epoch's noise must be positive and its zero point finite, got "
                                  f"noise {ref_noise}, zero point {ref_zp}")
        scale = 10.0 ** (0.4 * (ref_zp - zero_point)) / ref_noise
    else:
        scale = 10.0 ** (0.4 * (spec.flux_reference_zp - zero_point))
    x = x * np.broadcast_to(scale, (len(x),)).astype(np.float32)[:, None, None]
    x = np.nan_to_num(x) / spec.asinh_softening
    if spec.stamp_scaling == "asinh":
        x = np.arcsinh(x)
    return x.astype(np.float32)


def sky_noise(raw: dict[str, np.ndarray]) -> np.ndarray:
    """Each epoch's pixel noise: the measured ``noise`` when the conditions carry it, else the sky's Poisson noise
    (``sky`` in electrons; read noise is small beside a night sky's)."""
    if "noise" in raw:
        return np.asarray(raw["noise"], dtype=np.float64)
    return np.sqrt(np.clip(np.asarray(raw["sky"], dtype=np.float64), 1.0, None))


def sequence_reference(raw: dict[str, np.ndarray]) -> tuple[float, float]:
    """A sequence's flux reference for noise scaling: its first epoch's zero point and pixel noise (what the edge's
    reference frame is to a field)."""
    return float(np.asarray(raw["zero_point"])[0]), float(sky_noise(raw)[0])


def prepare_sequence(
    stamps: np.ndarray, raw: dict[str, np.ndarray], spec: SequenceSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Stamps (T, S, S) in electrons + raw conditions -> model inputs (T, 1, S, S) and (T, K), float32
    (:func:`prepare_stamps`, :func:`condition_features`)."""
    if stamps.ndim != 3 or stamps.shape[1] != spec.stamp_size or stamps.shape[2] != spec.stamp_size:
        raise PreprocessError(f"expected stamps of shape (T, {spec.stamp_size}, {spec.stamp_size}), got {stamps.shape}")
    x = prepare_stamps(stamps, raw["zero_point"], spec, reference=sequence_reference(raw))
    return x[:, None], normalised_conditions(condition_features(raw, spec.conditions), spec)
