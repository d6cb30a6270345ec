"""Real stamp sequences from survey archives: a FITS cube of science stamps with an epoch table (the HiTS form).

A file holds one object: the primary HDU a (T, S, S) cube of science-image stamps
centred on the object, one per epoch, in ADU; a binary-table extension (``EPOCHS``,
else the first table) one row per epoch. Columns, by name, case-insensitive:

* ``MJD`` (or ``MJD-OBS``, ``MJD_OBS``): required;
* ``EXPTIME`` (s), ``AIRMASS``, ``GAIN`` (e-/ADU; else the header's ``GAIN``);
* ``SEEING``/``FWHM``/``SEEING_HDR`` (px), ``SKY``/``SKYBRITE`` (ADU), ``MAGZP``/``ZP``.

What the table lacks is measured or assumed, and :attr:`StampSequence.sources` says
which: the sky from each stamp's border (median), also when the table's sky repeats
one value for every epoch (archives that copied the first epoch's header); the zero
point from the caller (a noise-scaled model uses only its differences). Epochs whose
stamp holds no data (all one value, or not finite: the object off the chip that night)
are left out, and said so. Stamps come back in
electrons, conditions in the simulator's units, so real and simulated sequences go
through :func:`skyedge.preprocess.prepare_sequence` alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ALIASES = {
    "mjd": ("MJD", "MJD-OBS", "MJD_OBS"),
    "exptime": ("EXPTIME", "EXPOSURE"),
    "airmass": ("AIRMASS",),
    "gain": ("GAIN",),
    "fwhm": ("FWHM", "SEEING", "SEEING_HDR"),
    "sky": ("SKY", "SKYLEVEL", "SKYBRITE"),
    "zero_point": ("MAGZP", "ZP", "ZERO_POINT"),
}
DEFAULTS = {"exptime": 1.0, "airmass": 1.0, "gain": 1.0, "fwhm": 3.5}


@dataclass
class StampSequence:
    """One object's stamps (T, S, S) in electrons, its raw conditions (the simulator's columns) and their origin."""

    name: str
    path: Path
    stamps: np.ndarray
    conditions: dict[str, np.ndarray]
    sources: dict[str, str] = field(default_factory=dict)


def border_median(stamps: np.ndarray) -> np.ndarray:
    """Each stamp's background: the median of its outer 2-pixel frame (away from the object at the centre)."""
    border = np.ones(stamps.shape[1:], dtype=bool)
    border[2:-2, 2:-2] = False
    return np.nanmedian(stamps[:, border], axis=1)


def _column(table, names: tuple[str, ...]):
    columns = {c.upper(): c for c in table.columns.names}
    for name in names:
        if name in columns:
            return np.asarray(table[columns[name]], dtype=np.float64)
    return None


def read_stamp_cube(path: str | Path, zero_point: float | None = None) -> StampSequence:
    """One object's sequence from a FITS stamp cube with an epoch table; ``zero_point`` (mag for one electron) is
    used where the table gives none."""
    from astropy.io import fits

    path = Path(path)
    try:
        hdus = fits.open(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable FITS file ({exc})") from None
    with hdus:
        cube = hdus[0].data
        if cube is None or cube.ndim != 3 or cube.shape[1] != cube.shape[2]:
            shape = None if cube is None else cube.shape
            raise ValueError(f"{path}: primary HDU must be a (epochs, size, size) stamp cube, got shape {shape}")
        tables = [h for h in hdus[1:] if isinstance(h, fits.BinTableHDU)]
        table = next((h for h in tables if h.name == "EPOCHS"), tables[0] if tables else None)
        if table is None:
            raise ValueError(f"{path}: no epoch table (a binary-table extension, EPOCHS) beside the stamp cube")
        rows = table.data
        if len(rows) != len(cube):
            raise ValueError(f"{path}: epoch table has {len(rows)} rows for {len(cube)} stamps")
        header = dict(hdus[0].header)
        stamps_adu = cube.astype(np.float64)
        values, sources = {}, {}
        for key, names in ALIASES.items():
            found = _column(rows, names)
            if found is not None:
                values[key], sources[key] = found, f"table:{names[0]}"
        name = str(header.get("OBJECT", path.name.split(".")[0]))
    if "mjd" not in values:
        raise ValueError(f"{path}: epoch table lacks an MJD column (one of {', '.join(ALIASES['mjd'])})")
    with np.errstate(invalid="ignore"):
        blank = ~np.isfinite(stamps_adu).all(axis=(1, 2)) | (np.ptp(stamps_adu, axis=(1, 2)) == 0)
    if blank.all():
        raise ValueError(f"{path}: no epoch's stamp holds data (all blank)")
    if blank.any():
        sources["epochs"] = f"{int(blank.sum())} blank epoch(s) left out: {np.flatnonzero(blank).tolist()}"
        stamps_adu = stamps_adu[~blank]
        values = {k: v[~blank] for k, v in values.items()}
    n = len(stamps_adu)
    if "gain" not in values and "GAIN" in header:
        values["gain"], sources["gain"] = np.full(n, float(header["GAIN"])), "header:GAIN"
    for key, default in DEFAULTS.items():
        if key not in values:
            values[key], sources[key] = np.full(n, default), "assumed"
    gain = values.pop("gain")
    sky_adu = values.get("sky")
    if sky_adu is None or (n > 1 and np.ptp(sky_adu) == 0):
        # A table sky that never changes is a copy of one epoch's header, not a measurement.
        values["sky"], sources["sky"] = border_median(stamps_adu), "measured"
    if "zero_point" not in values:
        if zero_point is None:
            zero_point = float("nan")
            sources["zero_point"] = "unknown"
        else:
            sources["zero_point"] = "given"
        values["zero_point"] = np.full(n, zero_point)
    if np.ptp(values["fwhm"]) == 0 and sources["fwhm"].startswith("table"):
        sources["fwhm"] += " (one value for every epoch)"
    values["sky"] = values["sky"] * gain
    bad = [k for k, v in values.items() if k != "zero_point" and not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"{path}: epoch table column(s) {', '.join(bad)} hold non-finite values")
    order = np.argsort(values["mjd"], kind="stable")
    conditions = {k: v[order] for k, v in values.items()}
    stamps = (stamps_adu * gain[:, None, None])[order].astype(np.float32)
    return StampSequence(name=name, path=path, stamps=stamps, conditions=conditions, sources=sources)


def read_stamp_cubes(paths, zero_point: float | None = None) -> list[StampSequence]:
    """Every cube among ``paths`` (files, or folders searched for ``*.fits``/``*.fits.gz``), sorted by name."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(list(p.glob("*.fits")) + list(p.glob("*.fits.gz")) + list(p.glob("*.fit")))
        elif p.exists():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"no FITS stamp cubes in {', '.join(map(str, paths))}")
    return [read_stamp_cube(f, zero_point) for f in files]
