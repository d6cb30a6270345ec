"""One object's epochs from a survey archive, whatever form they came in, as the simulator's sequences.

Every reader of real stamps (a FITS cube with an epoch table, :mod:`~skyedge.training.data.stamp_cubes`; per-epoch
FITS files or science/reference/difference triplets, :mod:`~skyedge.training.data.stamp_files`; ZTF alert
packets, :mod:`~skyedge.training.data.ztf_alerts`) gathers the science stamps in ADU and whatever conditions the
archive gives, then hands them to :func:`epoch_sequence`, the one place that decides what is measured, what is
assumed and what is left out:

* epochs whose stamp holds no data (all one value, or not finite: the object off the chip that night) are left
  out, and said so;
* the gain (e-/ADU) from the archive; where none is given, from the sky's own Poisson noise on the stamps'
  borders (photon transfer), or, for background-subtracted stamps, none: they stay in ADU and the sky is taken
  as the measured noise's Poisson equivalent (a noise-scaled model sees the same flux in noise units either way);
* the sky from each stamp's border (median) when the archive gives none, or one value for every epoch (archives
  that copied the first epoch's header);
* the zero point from the caller where the archive gives none (a noise-scaled model uses only its differences).

Stamps come back in electrons (ADU for background-subtracted stamps without a gain), conditions in the simulator's units, so real
and simulated sequences go through :func:`skyedge.preprocess.prepare_sequence` alike. A model reads science
stamps (its card's ``sequence.stamps``): a triplet's reference and difference stamps are kept beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Column or header names per raw condition, case-insensitive, first found wins.
ALIASES = {
    "mjd": ("MJD", "MJD-OBS", "MJD_OBS"),
    "exptime": ("EXPTIME", "EXPOSURE"),
    "airmass": ("AIRMASS",),
    "gain": ("GAIN",),
    "fwhm": ("FWHM", "SEEING", "SEEING_HDR"),
    "sky": ("SKY", "SKYLEVEL", "SKYBRITE"),
    "zero_point": ("MAGZP", "ZP", "ZERO_POINT", "MAGZPSCI"),
}
DEFAULTS = {"exptime": 1.0, "airmass": 1.0, "fwhm": 3.5}
ASSUMED_ZERO_POINTS = ("given", "unknown")  # sources of a zero point the archive did not give
MAD_TO_SIGMA = 1.4826
SKY_SEEN_SIGMAS = 3.0  # a border median this many noise sigmas above zero is a sky, not a subtracted background


@dataclass
class StampSequence:
    """One object's science stamps (T, S, S), its raw conditions (the simulator's columns) and their origin."""

    name: str
    path: Path  # the file or folder the object came from (its label table key is path.name)
    stamps: np.ndarray
    conditions: dict[str, np.ndarray]
    sources: dict[str, str] = field(default_factory=dict)
    reference: np.ndarray | None = None  # a triplet's reference (template) stamps, same unit and epochs
    difference: np.ndarray | None = None  # a triplet's difference stamps
    files: list[Path] = field(default_factory=list)  # every file read, for the data hash
    # Per-epoch transparency (mag, added to an assumed zero point) measured on the other objects read with it
    # (:mod:`~skyedge.training.data.ensemble_photometry`); None where the archive gave zero points or none was measured.
    zero_point_offset: np.ndarray | None = None


def archive_files(paths, in_folder, what: str) -> list[Path]:
    """The files ``paths`` name: a file itself, a folder's ``in_folder(folder)`` (sorted); a missing path, or
    nothing at all, is an error naming it (``what``: the kind of file, for the message)."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(in_folder(p))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"no {what} in {', '.join(map(str, paths))}")
    return files


def border_mask(size: tuple[int, int]) -> np.ndarray:
    """The outer 2-pixel frame of a stamp, away from the object at its centre."""
    border = np.ones(size, dtype=bool)
    border[2:-2, 2:-2] = False
    return border


def border_median(stamps: np.ndarray) -> np.ndarray:
    """Each stamp's background: the median of its outer 2-pixel frame."""
    return np.nanmedian(stamps[:, border_mask(stamps.shape[1:])], axis=1)


def border_noise(stamps: np.ndarray) -> np.ndarray:
    """Each stamp's pixel noise: the robust spread (MAD) of its outer 2-pixel frame."""
    b = stamps[:, border_mask(stamps.shape[1:])]
    return MAD_TO_SIGMA * np.nanmedian(np.abs(b - np.nanmedian(b, axis=1, keepdims=True)), axis=1)


def centre_cut(stamps: np.ndarray, size: int | None, where: Path) -> np.ndarray:
    """Stamps cut to ``size`` x ``size`` about their centre (ZTF's 63 x 63 to a model's 21); None keeps them."""
    if size is None or stamps.shape[-1] == size and stamps.shape[-2] == size:
        return stamps
    h, w = stamps.shape[-2:]
    if h < size or w < size:
        raise ValueError(f"{where}: stamps of {h} x {w} px are smaller than the {size} px the model reads")
    y0, x0 = (h - size) // 2, (w - size) // 2
    return stamps[..., y0 : y0 + size, x0 : x0 + size]


def epoch_sequence(
    name: str,
    path: Path,
    stamps_adu: np.ndarray,
    values: dict[str, np.ndarray],
    sources: dict[str, str],
    zero_point: float | None = None,
    reference: np.ndarray | None = None,
    difference: np.ndarray | None = None,
    files: list[Path] | None = None,
) -> StampSequence:
    """The sequence from science stamps (T, S, S) in ADU and the conditions the archive gave (``values``: arrays
    per raw condition or ``gain``; ``sources``: where each came from); see the module header for the rules."""
    stamps_adu = np.asarray(stamps_adu, dtype=np.float64)
    values, sources = dict(values), dict(sources)
    with np.errstate(invalid="ignore"):
        blank = ~np.isfinite(stamps_adu).all(axis=(1, 2)) | (np.ptp(stamps_adu, axis=(1, 2)) == 0)
    if blank.all():
        raise ValueError(f"{path}: no epoch's stamp holds data (all blank)")
    if blank.any():
        sources["epochs"] = f"{int(blank.sum())} blank epoch(s) left out: {np.flatnonzero(blank).tolist()}"
        keep = ~blank
        stamps_adu = stamps_adu[keep]
        values = {k: v[keep] for k, v in values.items()}
        reference = None if reference is None else reference[keep]
        difference = None if difference is None else difference[keep]
    if "mjd" not in values:
        raise ValueError(f"{path}: no observation time for the epochs (one of {', '.join(ALIASES['mjd'])})")
    n = len(stamps_adu)
    for key, default in DEFAULTS.items():
        if key not in values:
            values[key], sources[key] = np.full(n, default), "assumed"
    gain = values.pop("gain", None)
    measured_sky = border_median(stamps_adu)
    sky_adu = values.get("sky")
    if sky_adu is None or (n > 1 and np.ptp(sky_adu) == 0):
        # A table sky that never changes is a copy of one epoch's header, not a measurement.
        values["sky"], sources["sky"] = measured_sky, "measured"
    if gain is None:
        noise = border_noise(stamps_adu)
        if np.median(measured_sky) >= SKY_SEEN_SIGMAS * np.median(noise):
            # The sky is there: its Poisson noise gives the gain (photon transfer: sky_adu / noise_adu^2, read
            # noise ignored, so slightly low), one value for the camera.
            g = float(np.median(measured_sky / np.maximum(noise, 1e-12) ** 2))
            gain, sources["gain"] = np.full(n, g), f"from the sky's Poisson noise ({g:.3g} e-/ADU)"
        else:
            # Background-subtracted stamps: no gain to be had; the sky that gives the measured noise keeps the
            # noise scale right.
            gain, sources["gain"] = np.ones(n), "unknown (stamps in ADU)"
            values["sky"], sources["sky"] = noise**2, "from the stamps' noise (background-subtracted stamps)"
    if "zero_point" not in values:
        if zero_point is None:
            zero_point = float("nan")
            sources["zero_point"] = "unknown"
        else:
            sources["zero_point"] = "given"
        values["zero_point"] = np.full(n, zero_point)
    if np.ptp(values["fwhm"]) == 0 and sources["fwhm"].startswith(("table", "header")):
        sources["fwhm"] += " (one value for every epoch)"
    values["sky"] = values["sky"] * gain
    bad = [k for k, v in values.items() if k != "zero_point" and not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"{path}: condition(s) {', '.join(bad)} hold non-finite values")
    order = np.argsort(values["mjd"], kind="stable")
    scale = gain[:, None, None]

    def electrons(x):
        return None if x is None else (np.asarray(x, dtype=np.float64) * scale)[order].astype(np.float32)

    return StampSequence(
        name=name,
        path=path,
        stamps=electrons(stamps_adu),
        conditions={k: v[order] for k, v in values.items()},
        sources=sources,
        reference=electrons(reference),
        difference=electrons(difference),
        files=list(files or [path]),
    )


def read_survey_stamps(
    paths, form: str = "cubes", zero_point: float | None = None, stamp_size: int | None = None, transparency: bool = True
):
    """Every object among ``paths`` in one of the forms: ``cubes`` (FITS cubes with an epoch table),
    ``epoch_files`` (a folder per object of per-epoch FITS files, science only or triplets), ``ztf_alerts``
    (Avro alert packets); stamps cut to ``stamp_size`` about the centre when given. Where the archive gives no
    zero points, each epoch's transparency is measured on the other objects observed with it (``transparency``;
    :func:`~skyedge.training.data.ensemble_photometry.ensemble_zero_points`)."""
    if form == "cubes":
        from skyedge.training.data.stamp_cubes import read_stamp_cubes

        sequences = read_stamp_cubes(paths, zero_point, stamp_size)
    elif form == "epoch_files":
        from skyedge.training.data.stamp_files import read_epoch_folders

        sequences = read_epoch_folders(paths, zero_point, stamp_size)
    elif form == "ztf_alerts":
        from skyedge.training.data.ztf_alerts import read_ztf_alerts

        sequences = read_ztf_alerts(paths, zero_point, stamp_size)
    else:
        raise ValueError(f"unknown stamp form {form!r}: cubes, epoch_files or ztf_alerts")
    if transparency:
        from skyedge.training.data.ensemble_photometry import ensemble_zero_points

        ensemble_zero_points(sequences)
    return sequences
