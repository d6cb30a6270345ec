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
from skyedge.training.simulate.psf import convolve_same
from skyedge.training.simulate.transients import SkyObject, TransientConfig, epoch_conditions


@dataclass(frozen=True)
class FieldConfig:
    """Frame size, object count and the stamp model shared with the transients simulator."""

    size: int = 256
    objects_per_class: int = 6
    window: int = 31  # pixels rendered around each object (enough for PSF wings and host)
    drift_px: float = 0.0  # pointing drift: each epoch is offset by up to this much in x and y
    hostless_fraction: float = 0.0  # supernovae without a visible host galaxy
    truth_snr: int = 0  # >0: record each object's S/N in the difference against a reference of this many epochs
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
    # Drawn from their own generator, so fields without drift or hostless supernovae stay as they were.
    extra = np.random.default_rng(np.random.SeedSequence([seed, 0xD81F7]))
    offsets = extra.uniform(-cfg.drift_px, cfg.drift_px, size=(len(log["mjd"]), 2))
    offsets[0] = 0.0  # the first epoch defines the pixel grid
    for i, label in enumerate(labels):
        gx, gy = i % cells, i // cells
        x = cfg.window + (gx + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        y = cfg.window + (gy + 0.5) * pitch + rng.uniform(-0.2, 0.2) * pitch
        obj = SkyObject(label, rng, tcfg, log["mjd"])
        if obj.host is not None and extra.uniform() < cfg.hostless_fraction:
            obj.host = None
            obj.meta["host_mag"] = None
        objects.append((f"obj-{i:05d}", label, x, y, obj))
    half = cfg.window // 2
    epochs = len(log["mjd"])
    snr = np.zeros((len(objects), epochs))
    references: list[list] = [[] for _ in objects]
    for e in tqdm(range(epochs), desc="simulate field", unit="frame", disable=not progress):
        cond = epoch_conditions(log, e)
        expected = np.full((cfg.size, cfg.size), cond["sky"])
        for k, (_, _, x0, y0, obj) in enumerate(objects):
            x, y = x0 + offsets[e, 0], y0 + offsets[e, 1]
            ix, iy = int(round(x)), int(round(y))
            window = obj.expected(e, cond, (cfg.window, cfg.window), x - ix + half, y - iy + half)
            expected[iy - half : iy + half + 1, ix - half : ix + half + 1] += window
            if cfg.truth_snr:
                snr[k, e] = _truth_snr(window, cond, references[k], log, cfg.truth_snr, tcfg.cadence.read_noise)
        frame = expose(expected, tcfg.cadence.read_noise, rng).astype(np.float32)
        _write_fits(out / "frames" / f"epoch-{e:04d}.fits", frame, cond)
    with open(out / "catalog.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "x", "y", "class"])
        for oid, label, x, y, _ in objects:
            writer.writerow([oid, f"{x:.3f}", f"{y:.3f}", label])
    _write_truth(out / "truth.json", objects, offsets, log, snr if cfg.truth_snr else None)
    write_log_csv(log, out / "obslog.csv")
    (out / "field.json").write_text(
        json.dumps(
            {"seed": seed, "size": cfg.size, "objects": len(objects), "epochs": epochs, "classes": list(tcfg.classes)},
            indent=2,
        )
    )
    return out


def _gaussian(size: int, fwhm: float) -> np.ndarray:
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[:size, :size]
    g = np.exp(-((xx - c) ** 2 + (yy - c) ** 2) / (2 * (fwhm / 2.3548) ** 2))
    return g / g.sum()


def _blur_to(image: np.ndarray, fwhm_from: float, fwhm_to: float) -> np.ndarray:
    extra = fwhm_to**2 - fwhm_from**2
    return image if extra <= 1e-6 else convolve_same(image, _gaussian(15, float(np.sqrt(extra))))


def _truth_snr(window: np.ndarray, cond: dict, reference: list, log: dict, epochs: int, read_noise: float) -> float:
    """The S/N of a PSF fit to the object's noise-free difference against the median of the first ``epochs``
    (PSF-matched to the broader seeing, scaled to this epoch's zero point), with the frame's sky and read noise:
    what 'reaches 5 sigma in the difference image' means when the field is judged."""
    if len(reference) < epochs:
        reference.append((window, cond))
    broadest = max(c["fwhm"] for _, c in reference)
    zp0 = reference[0][1]["zero_point"]
    ref = np.median(
        [_blur_to(w, c["fwhm"], broadest) * 10 ** (0.4 * (zp0 - c["zero_point"])) for w, c in reference], axis=0
    )
    common = max(cond["fwhm"], broadest)
    diff = _blur_to(window, cond["fwhm"], common) - _blur_to(ref, broadest, common) * 10 ** (
        0.4 * (cond["zero_point"] - zp0)
    )
    psf = _gaussian(15, common)
    half = len(window) // 2
    fit = convolve_same(diff, psf)[half - 4 : half + 5, half - 4 : half + 5] / float((psf**2).sum())
    noise = np.sqrt(cond["sky"] + read_noise**2) / np.sqrt(float((psf**2).sum()))
    return float(np.abs(fit).max() / noise)


def _write_truth(path: Path, objects: list, offsets: np.ndarray, log: dict, snr: np.ndarray | None) -> None:
    """What only the simulator knows, for judging a field run: each object's class, where it is on the first
    epoch's grid (an asteroid: where it appeared), its peak magnitude, its difference-image S/N per epoch (when
    recorded), and each epoch's pointing offset."""
    rows = []
    for k, (oid, label, x, y, obj) in enumerate(objects):
        row = {"id": oid, "class": label, "x": x, "y": y, "hostless": label == "SN" and obj.host is None}
        if snr is not None:
            row["snr"] = [round(float(v), 2) for v in snr[k]]
        if obj.asteroid_epoch is not None:
            row.update(x=x + obj.asteroid["dx"], y=y + obj.asteroid["dy"], epoch=obj.asteroid_epoch)
            row["mag"] = obj.asteroid["mag"]
        elif obj.mag is not None:
            row["mag"] = float(np.min(obj.mag(log["mjd"])))
        rows.append(row)
    path.write_text(json.dumps({"objects": rows, "offsets": offsets.tolist()}))


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
