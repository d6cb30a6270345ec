"""Full telescope frames of one field over many epochs, with injected objects of every class.

The telescope-side input of the edge runtime: ``frames/epoch-NNNN.fits``
(float32 electrons, GAIN=1) with the headers an observatory pipeline writes
(``MJD-OBS``, ``EXPTIME``, ``FWHM``, ``SKYLEVEL``, ``MAGZP``, ``AIRMASS``),
``catalog.csv`` (id, x, y, class: the truth), and ``obslog.csv``. Objects are
the same :class:`SkyObject` models as the stamp simulator, placed on a
jittered grid so stamps do not overlap; an asteroid is catalogued where it
appears.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from skyedge.training.simulate.obslog import CadenceConfig, cadence_log, write_log_csv
from skyedge.training.simulate.photometry import expose
from skyedge.training.simulate.transients import SkyObject, TransientConfig, epoch_conditions


@dataclass(frozen=True)
class FieldConfig:
    """Frame size, object count and the stamp model shared with the transients simulator."""

    size: int = 256
    objects_per_class: int = 6
    window: int = 31  # pixels rendered around each object (enough for PSF wings and host)
    transients: TransientConfig = field(default_factory=lambda: TransientConfig(cadence=CadenceConfig(epochs=24)))


def simulate_field(out, seed: int = 0, cfg: FieldConfig = FieldConfig(), progress: bool = True) -> Path:
    """Write one field's frames, catalogue and observation log under ``out``; return ``out``."""
    out = Path(out)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF1E1D]))
    tcfg = cfg.transients
    log = cadence_log(tcfg.cadence, rng)
    labels = [c for c in tcfg.classes for _ in range(cfg.objects_per_class)]
    rng.shuffle(labels)
    # Jittered grid: one object per cell, at least a stamp apart from its neighbours.
    cells = int(np.ceil(np.sqrt(len(labels))))
    pitch = (cfg.size - 2 * cfg.window) / max(cells, 1)
    if pitch < tcfg.stamp_size + 4:
        raise ValueError(f"{len(labels)} objects do not fit a {cfg.size} px frame with {tcfg.stamp_size} px stamps")
    objects = []
    for i, label in enumerate(labels):
        gx, gy = i % cells, i // cells
        x = cfg.window + (gx + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        y = cfg.window + (gy + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        objects.append((f"obj-{i:05d}", label, x, y, SkyObject(label, rng, tcfg, log["mjd"])))
    half = cfg.window // 2
    epochs = len(log["mjd"])
    for e in tqdm(range(epochs), desc="simulate field", unit="frame", disable=not progress):
        cond = epoch_conditions(log, e)
        expected = np.full((cfg.size, cfg.size), cond["sky"])
        for _, _, x, y, obj in objects:
            ix, iy = int(round(x)), int(round(y))
            window = obj.expected(e, cond, (cfg.window, cfg.window), x - ix + half, y - iy + half)
            expected[iy - half : iy + half + 1, ix - half : ix + half + 1] += window
        frame = expose(expected, tcfg.cadence.read_noise, rng).astype(np.float32)
        _write_fits(out / "frames" / f"epoch-{e:04d}.fits", frame, cond)
    with open(out / "catalog.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "x", "y", "class"])
        for oid, label, x, y, _ in objects:
            writer.writerow([oid, f"{x:.3f}", f"{y:.3f}", label])
    write_log_csv(log, out / "obslog.csv")
    (out / "field.json").write_text(
        json.dumps(
            {"seed": seed, "size": cfg.size, "objects": len(objects), "epochs": epochs, "classes": list(tcfg.classes)},
            indent=2,
        )
    )
    return out


def _write_fits(path: Path, frame: np.ndarray, cond: dict) -> None:
    from astropy.io import fits
    from astropy.time import Time

    hdu = fits.PrimaryHDU(frame)
    header = hdu.header
    header["MJD-OBS"] = (cond["mjd"], "start of exposure (MJD)")
    header["DATE-OBS"] = Time(cond["mjd"], format="mjd").isot
    header["EXPTIME"] = (cond["exptime"], "exposure time (s)")
    header["FWHM"] = (round(cond["fwhm"], 4), "seeing FWHM (pixels)")
    header["SKYLEVEL"] = (round(cond["sky"], 3), "sky level (electrons per pixel)")
    header["MAGZP"] = (round(cond["zero_point"], 4), "magnitude giving 1 electron")
    header["AIRMASS"] = (round(cond["airmass"], 4), "airmass")
    header["GAIN"] = (1.0, "electrons per ADU")
    header["BUNIT"] = "electron"
    hdu.writeto(path, overwrite=True)
