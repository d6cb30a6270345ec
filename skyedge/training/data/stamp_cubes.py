"""Real stamp sequences from survey archives: a FITS cube of science stamps with an epoch table (the HiTS form).

A file holds one object: the primary HDU a (T, S, S) cube of science-image stamps
centred on the object, one per epoch, in ADU; a binary-table extension (``EPOCHS``,
else the first table) one row per epoch. Columns, by name, case-insensitive:

* ``MJD`` (or ``MJD-OBS``, ``MJD_OBS``): required;
* ``EXPTIME`` (s), ``AIRMASS``, ``GAIN`` (e-/ADU; else the header's ``GAIN``);
* ``SEEING``/``FWHM``/``SEEING_HDR`` (px), ``SKY``/``SKYBRITE`` (ADU), ``MAGZP``/``ZP``.

What the table lacks is measured or assumed by
:func:`skyedge.training.data.survey_epochs.epoch_sequence`, which says so in
:attr:`~skyedge.training.data.survey_epochs.StampSequence.sources`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyedge.training.data.survey_epochs import (
    ALIASES,
    StampSequence,
    archive_files,
    border_median,
    centre_cut,
    epoch_sequence,
)

__all__ = ["StampSequence", "border_median", "read_stamp_cube", "read_stamp_cubes"]


def _column(table, names: tuple[str, ...]):
    columns = {c.upper(): c for c in table.columns.names}
    for name in names:
        if name in columns:
            return np.asarray(table[columns[name]], dtype=np.float64)
    return None


def read_stamp_cube(path: str | Path, zero_point: float | None = None, stamp_size: int | None = None) -> StampSequence:
    """One object's sequence from a FITS stamp cube with an epoch table; ``zero_point`` (mag for one electron) is
    used where the table gives none; stamps cut to ``stamp_size`` about the centre when given."""
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
        stamps_adu = centre_cut(cube.astype(np.float64), stamp_size, path)
        values, sources = {}, {}
        for key, names in ALIASES.items():
            found = _column(rows, names)
            if found is not None:
                values[key], sources[key] = found, f"table:{names[0]}"
        name = str(header.get("OBJECT", path.name.split(".")[0]))
    if "mjd" not in values:
        raise ValueError(f"{path}: epoch table lacks an MJD column (one of {', '.join(ALIASES['mjd'])})")
    if "gain" not in values and "GAIN" in header:
        values["gain"], sources["gain"] = np.full(len(stamps_adu), float(header["GAIN"])), "header:GAIN"
    return epoch_sequence(name, path, stamps_adu, values, sources, zero_point)


def read_stamp_cubes(paths, zero_point: float | None = None, stamp_size: int | None = None) -> list[StampSequence]:
    """Every cube among ``paths`` (files, or folders searched for ``*.fits``/``*.fits.gz``), sorted by name."""
    files = archive_files(
        paths, lambda d: list(d.glob("*.fits")) + list(d.glob("*.fits.gz")) + list(d.glob("*.fit")), "FITS stamp cubes"
    )
    return [read_stamp_cube(f, zero_point, stamp_size) for f in files]
