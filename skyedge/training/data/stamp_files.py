"""Real stamp sequences as one FITS file per epoch: a folder per object, science stamps alone or triplets.

``OBJECT/`` holds one science stamp per epoch; a triplet (what ZTF's and other difference-imaging archives give)
adds the epoch's reference (template) and difference stamps. A file's role is the last ``_``- or ``.``-separated
word of its name before the suffix: ``science``/``sci``, ``template``/``reference``/``ref``,
``difference``/``diff``; a file without one is a science stamp. The rest of the name is the epoch
(``e07_science.fits``, ``e07_template.fits``, ``e07_difference.fits``).

The science file's header carries the epoch's conditions, under any of the names of
:data:`~skyedge.training.data.survey_epochs.ALIASES`; the time may also be ``JD`` or an ISO ``DATE-OBS``. What
the headers lack is measured or assumed by :func:`~skyedge.training.data.survey_epochs.epoch_sequence`, and said.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from skyedge.imageio import FITS_SUFFIXES, read_frame
from skyedge.training.data.survey_epochs import ALIASES, StampSequence, centre_cut, epoch_sequence

ROLES = {
    "science": "science", "sci": "science",
    "template": "reference", "reference": "reference", "ref": "reference",
    "difference": "difference", "diff": "difference",
}  # fmt: skip
SUFFIXES = FITS_SUFFIXES


def _split(name: str) -> tuple[str, str]:
    """(epoch, role) of a file name."""
    stem = name[: -len(next(s for s in SUFFIXES if name.lower().endswith(s)))]
    m = re.match(r"^(.*?)[._-]?([A-Za-z]+)$", stem)
    if m and m.group(2).lower() in ROLES:
        return m.group(1) or stem, ROLES[m.group(2).lower()]
    return stem, "science"


def _mjd(header, path: Path) -> tuple[float | None, str | None]:
    keys = {k.upper(): k for k in header}
    for name in ALIASES["mjd"]:
        if name in keys:
            return float(header[keys[name]]), f"header:{name}"
    if "JD" in keys:
        return float(header[keys["JD"]]) - 2400000.5, "header:JD"
    if "DATE-OBS" in keys:
        from astropy.time import Time

        try:
            return float(Time(str(header[keys["DATE-OBS"]]), scale="utc").mjd), "header:DATE-OBS"
        except ValueError:
            raise ValueError(f"{path}: DATE-OBS {header[keys['DATE-OBS']]!r} is not an ISO date and time") from None
    return None, None


def _read(path: Path) -> tuple[np.ndarray, dict]:
    """One stamp and its header, read as every frame is (:func:`skyedge.imageio.read_frame`)."""
    image, header = read_frame(path)
    if image.ndim != 2:
        raise ValueError(f"{path}: a stamp must be one 2-D image, got shape {image.shape}")
    return np.asarray(image, dtype=np.float64), header


def read_epoch_folder(folder: str | Path, zero_point: float | None = None, stamp_size: int | None = None) -> StampSequence:
    """One object's sequence from its folder of per-epoch FITS files (science, or triplets)."""
    folder = Path(folder)
    epochs: dict[str, dict[str, Path]] = {}
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.name.lower().endswith(SUFFIXES):
            epoch, role = _split(f.name)
            if role in epochs.setdefault(epoch, {}):
                raise ValueError(f"{f}: a second {role} stamp for epoch {epoch!r} (beside {epochs[epoch][role].name})")
            epochs[epoch][role] = f
    if not epochs:
        raise ValueError(f"{folder}: no FITS stamps (one file per epoch, or per epoch and role)")
    lonely = [e for e, roles in epochs.items() if "science" not in roles]
    if lonely:
        raise ValueError(f"{folder}: epoch(s) {', '.join(lonely)} have no science stamp (only {sorted(epochs[lonely[0]])})")
    triplets = any(len(roles) > 1 for roles in epochs.values())
    stamps, refs, diffs, rows, files = [], [], [], [], []
    sources: dict[str, str] = {}
    for epoch, roles in epochs.items():
        image, header = _read(roles["science"])
        stamps.append(centre_cut(image, stamp_size, roles["science"]))
        mjd, src = _mjd(header, roles["science"])
        if mjd is None:
            raise ValueError(f"{roles['science']}: header has no observation time (MJD-OBS, MJD, JD or DATE-OBS)")
        row = {"mjd": mjd}
        sources["mjd"] = src
        upper = {k.upper(): k for k in header}
        for key, names in ALIASES.items():
            name = next((n for n in names if n in upper), None)
            if key != "mjd" and name is not None:
                row[key] = float(header[upper[name]])
                sources[key] = f"header:{name}"
        rows.append(row)
        files.append(roles["science"])
        if triplets:
            for role, out in (("reference", refs), ("difference", diffs)):
                if role not in roles:
                    raise ValueError(f"{folder}: epoch {epoch!r} has no {role} stamp beside its science stamp")
                other = centre_cut(_read(roles[role])[0], stamp_size, roles[role])
                if other.shape != stamps[-1].shape:
                    raise ValueError(f"{roles[role]}: {other.shape} px beside a science stamp of {stamps[-1].shape}")
                out.append(other)
                files.append(roles[role])
    shapes = {s.shape for s in stamps}
    if len(shapes) > 1:
        raise ValueError(f"{folder}: science stamps of different sizes {sorted(shapes)}; give a stamp size to cut them")
    keys = set.intersection(*(set(r) for r in rows))
    partial = {k for r in rows for k in r} - keys
    for k in partial:  # a condition only some headers give is not trusted for any epoch
        sources.pop(k, None)
    values = {k: np.array([r[k] for r in rows]) for k in keys}
    return epoch_sequence(
        folder.name,
        folder,
        np.stack(stamps),
        values,
        sources,
        zero_point,
        reference=np.stack(refs) if triplets else None,
        difference=np.stack(diffs) if triplets else None,
        files=files,
    )


def read_epoch_folders(paths, zero_point: float | None = None, stamp_size: int | None = None) -> list[StampSequence]:
    """Every object folder among ``paths`` (an object folder itself, or a folder of them), sorted by name."""
    folders: list[Path] = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise FileNotFoundError(f"{p}: no such folder (one folder per object of per-epoch FITS files)")
        subs = sorted(d for d in p.iterdir() if d.is_dir() and not d.name.startswith("."))
        folders += subs or [p]
    if not folders:
        raise FileNotFoundError(f"no object folders in {', '.join(map(str, paths))}")
    return [read_epoch_folder(f, zero_point, stamp_size) for f in folders]
