"""Planting artificial sources into real telescope frames, to measure what the field pipeline finds on real data
(how survey pipelines report completeness).

``skyedge field-inject FRAMES OUT`` reads a folder of frames of one field, measures and aligns every frame as the
edge does (:mod:`skyedge.edge.field.epoch_prep`), and plants point sources at fixed positions on the sky (the first
frame's pixel grid), moved into each frame through that frame's alignment, so they follow the drift, rotation or
flip. Each source has the frame's measured seeing and a light curve by kind:

* ``SN``: absent until a random epoch after the reference epochs, then rising linearly to its peak;
* ``asteroid``: constant, moving across the grid at 5-30 px per hour in a random direction;
* ``variable`` (reported as ``RRLyrae``): a sinusoid of 1-3 h period about a mean level, present from the start.

Peak fluxes are drawn for a target S/N in the difference image (``--snr``), from each frame's measured noise and
seeing. ``OUT`` then holds ``frames/`` (the injected frames, float32, headers kept) and ``truth.json`` (per object:
class, grid position or track, frame positions, flux and expected S/N per epoch; per epoch: file, conditions),
which ``skyedge field-report`` scores a run against.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

KINDS = {"SN": "SN", "asteroid": "asteroid", "variable": "RRLyrae"}
MARGIN_PX = 15  # injected sources stay this far inside every frame
STAR_CLEARANCE_FWHM = 3.0  # ... and this far from the first frame's stars


def frames_in_time_order(folder: Path) -> list[Path]:
    """The FITS frames of ``folder`` in the order they were taken (the header's time, else the file's)."""
    from astropy.io import fits

    from skyedge.edge.sources.observation_time import observation_time

    found = [p for p in folder.iterdir() if p.name.lower().endswith((".fits", ".fit", ".fts", ".fits.gz"))]
    if not found:
        raise FileNotFoundError(f"{folder}: no FITS frames")
    return sorted(found, key=lambda p: (observation_time(dict(fits.getheader(p)), str(p))[0], p.name))


def _psf(shape: tuple[int, int], x: float, y: float, fwhm: float, flux: float) -> tuple[slice, slice, np.ndarray]:
    """A Gaussian of ``flux`` centred at (x, y), integrated over pixels, and where it goes."""
    from scipy.special import erf

    s = fwhm / 2.3548
    r = int(math.ceil(4 * s)) + 1
    x0, x1 = max(int(x) - r, 0), min(int(x) + r + 1, shape[1])
    y0, y1 = max(int(y) - r, 0), min(int(y) + r + 1, shape[0])
    ex = np.arange(x0, x1 + 1) - 0.5 - x
    ey = np.arange(y0, y1 + 1) - 0.5 - y
    px = np.diff(0.5 * erf(ex / (s * math.sqrt(2))))
    py = np.diff(0.5 * erf(ey / (s * math.sqrt(2))))
    return slice(y0, y1), slice(x0, x1), (flux * np.outer(py, px)).astype(np.float32)


def inject(
    frames_dir: Path,
    out: Path,
    per_kind: int = 10,
    snr: tuple[float, float] = (5.0, 30.0),
    reference_epochs: int = 3,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Plant ``per_kind`` sources of each kind into the frames of ``frames_dir``; write ``out/frames`` and
    ``out/truth.json``."""
    from astropy.io import fits
    from tqdm import tqdm

    from skyedge.edge.config_sources import FitsSequenceSourceSection
    from skyedge.edge.field.epoch_prep import FramePreparer
    from skyedge.edge.sources import Rejected
    from skyedge.edge.sources.fits_sequence import read_epoch

    rng = np.random.default_rng(seed)
    paths = frames_in_time_order(Path(frames_dir))
    preparer = FramePreparer(FitsSequenceSourceSection(kind="fits-sequence", path=str(frames_dir)))
    prepared, grid = [], None
    for path in tqdm(paths, desc="measuring and aligning", disable=not progress):
        frame = read_epoch(path)
        if isinstance(frame, Rejected):
            raise ValueError(frame.reason)
        p = preparer.prepare(frame, grid)
        grid = p.stars if grid is None else grid
        prepared.append(p)
    shape = prepared[0].image.shape
    mjd = np.array([p.conditions["mjd"] for p in prepared])
    hours = (mjd - mjd[0]) * 24.0
    fwhm = np.array([p.conditions["fwhm"] for p in prepared])
    noise = np.array([p.conditions["noise"] for p in prepared])
    # S/N of a point source in the difference (sky-limited, PSF-matched to the broader seeing; the reference's
    # own noise shrinks with the frames stacked into it).
    per_flux = 1.0 / (noise * math.sqrt(4 * math.pi) * np.maximum(fwhm, fwhm[:reference_epochs].max()) / 2.3548)
    per_flux /= math.sqrt(1.0 + 1.0 / reference_epochs)

    def inside_all(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        ok = np.ones(len(x), bool)
        for p in prepared:
            fx, fy = p.alignment.to_frame(x, y)
            ok &= (fx >= MARGIN_PX) & (fy >= MARGIN_PX) & (fx < shape[1] - MARGIN_PX) & (fy < shape[0] - MARGIN_PX)
        return ok

    from scipy.spatial import cKDTree

    stars = cKDTree(grid) if len(grid) else None
    clearance = STAR_CLEARANCE_FWHM * float(np.median(fwhm))

    def positions(n: int) -> np.ndarray:
        got = np.zeros((0, 2))
        for _ in range(200):
            xy = rng.uniform([0, 0], [shape[1], shape[0]], (4 * n, 2))
            ok = inside_all(xy[:, 0], xy[:, 1])
            if stars is not None:
                ok &= stars.query(xy)[0] > clearance
            got = np.vstack([got, xy[ok]])
            if len(got) >= n:
                return got[:n]
        raise ValueError(f"{frames_dir}: no room for {n} sources on the sky every frame shows")

    def asteroid_track(x: float, y: float) -> np.ndarray:
        """A straight track from (x, y) that passes no star (on a star's photon noise nothing is 5 sigma)."""
        for _ in range(500):
            rate, angle = rng.uniform(5, 30), rng.uniform(0, 2 * np.pi)
            track = np.stack([x + rate * hours * np.cos(angle), y + rate * hours * np.sin(angle)], axis=1)
            if stars is None or (stars.query(track)[0] > clearance).all():
                return track
        return np.tile([x, y], (len(hours), 1))  # a crowded field: a stationary one rather than none

    objects = []
    last = len(prepared) - 1
    for kind, label in KINDS.items():
        for k, (x, y) in enumerate(positions(per_kind)):
            peak_snr = rng.uniform(*snr)
            peak = peak_snr / float(np.median(per_flux))
            t = np.arange(len(prepared))
            if kind == "SN":
                start = rng.integers(reference_epochs, max(reference_epochs + 1, int(0.6 * last)))
                flux = peak * np.clip((t - start + 1) / max(last - start + 1, 1), 0, 1)
                track = np.tile([x, y], (len(t), 1))
            elif kind == "asteroid":
                track = asteroid_track(x, y)
                flux = np.full(len(t), peak)
                flux[~inside_all(track[:, 0], track[:, 1])] = 0.0  # off the shared sky: not there
            else:
                period, phase = rng.uniform(1, 3), rng.uniform(0, 2 * np.pi)
                flux = peak * (0.6 + 0.4 * np.sin(2 * np.pi * hours / period + phase))
                track = np.tile([x, y], (len(t), 1))
            # What the difference shows is the flux beyond what the reference (a median of the first epochs) holds
            # at the same place: a variable's swing about its median, an asteroid where it is not any more.
            s = float(np.median(fwhm)) / 2.3548
            at_ref = [
                flux[r] * np.exp(-np.sum((track - track[r]) ** 2, axis=1) / (4 * s * s)) for r in range(reference_epochs)
            ]
            seen = np.abs(flux - np.median(at_ref, axis=0))
            objects.append(
                {
                    "id": f"inj-{kind}-{k:03d}",
                    "class": label,
                    "x": float(x),
                    "y": float(y),
                    "hostless": True,
                    "mag": float(25.0 - 2.5 * np.log10(peak)),
                    "track": track.round(3).tolist(),
                    "flux": flux.round(3).tolist(),
                    "snr": (seen * per_flux).round(3).tolist(),
                    "frame_xy": [],
                }
            )

    dest = Path(out) / "frames"
    dest.mkdir(parents=True, exist_ok=True)
    epochs = []
    for e, (path, p) in enumerate(tqdm(list(zip(paths, prepared, strict=True)), desc="planting", disable=not progress)):
        with fits.open(path) as hdul:
            header, data = hdul[0].header.copy(), hdul[0].data.astype(np.float32)
        for o in objects:
            fx, fy = p.alignment.to_frame(np.array([o["track"][e][0]]), np.array([o["track"][e][1]]))
            o["frame_xy"].append([round(float(fx[0]), 3), round(float(fy[0]), 3)])
            if o["flux"][e] > 0:
                rows, cols, psf = _psf(data.shape, float(fx[0]), float(fy[0]), p.conditions["fwhm"], o["flux"][e])
                data[rows, cols] += psf
        for key in ("BZERO", "BSCALE", "BLANK"):
            header.pop(key, None)
        header["HISTORY"] = f"skyedge field-inject: {len(objects)} artificial sources (seed {seed})"
        name = path.name[: -len(".gz")] if path.name.endswith(".gz") else path.name
        fits.PrimaryHDU(data, header).writeto(dest / name, overwrite=True)
        epochs.append(
            {
                "file": name,
                "mjd": float(p.conditions["mjd"]),
                "conditions": {k: float(v) for k, v in p.conditions.items() if np.isfinite(v)},
                "sources": p.sources,
            }
        )
    truth = {"injected_into": str(frames_dir), "seed": seed, "epochs": epochs, "objects": objects}
    (Path(out) / "truth.json").write_text(json.dumps(truth) + "\n")
    return Path(out)
