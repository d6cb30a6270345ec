"""Observation logs: the epochs of a survey and their observing conditions.

A log is a dict of equal-length arrays (one entry per epoch): ``mjd``,
``fwhm`` (seeing, pixels), ``sky`` (electrons per pixel), ``zero_point``
(mag giving one electron), ``exptime`` (s), ``airmass``. It comes from a
cadence model (nights with weather losses, several visits per night, as in
HiTS) or from a user's CSV with those columns.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

COLUMNS = ("mjd", "fwhm", "sky", "zero_point", "exptime", "airmass")


@dataclass(frozen=True)
class CadenceConfig:
    """A survey cadence: DECam-like optics (0.27 arcsec pixels), two visits a night about 1.6 h apart."""

    epochs: int = 24
    start_mjd: float = 61000.0
    # A range (low, high) draws each night's visits: HiTS 2015 took 4-5 a night, ZTF and LSST take 2.
    visits_per_night: int | tuple[int, int] = 2
    visit_spacing_hours: float = 1.6
    night_gap_days: tuple[float, float] = (1.0, 3.0)
    weather_loss: float = 0.2  # probability a planned night is lost
    # Share of gaps between nights that are long breaks (bright time, weather runs, a later campaign): real
    # sequences have them (one HiTS supernova has its last epoch 15 days after the one before).
    long_gaps: float = 0.0
    long_gap_days: tuple[float, float] = (5.0, 20.0)
    pixel_scale_arcsec: float = 0.27
    seeing_arcsec: tuple[float, float] = (0.9, 0.2)  # log-normal median and sigma (natural log)
    sky_e: tuple[float, float] = (300.0, 1500.0)  # dark to bright time, electrons per pixel
    # Share of epochs taken in a much brighter sky (twilight, the moon up): surveys observe then (HiTS 2015 ended
    # its run with two epochs at 4x its median sky), and a source fades into the noise there without fading.
    bright_epochs: float = 0.0
    bright_factor: tuple[float, float] = (2.0, 5.0)
    zero_point0: float = 28.0  # mag giving one electron at airmass 1 in exptime
    extinction: float = 0.15  # mag per airmass
    exptime: float = 87.0
    read_noise: float = 7.0

    def __post_init__(self):
        visits = self.visits_per_night
        low, high = visits if isinstance(visits, tuple) else (visits, visits)
        if not 1 <= low <= high:
            raise ValueError(f"visits_per_night must be at least 1 (or a range low <= high), got {visits}")
        if not 0.0 <= self.long_gaps <= 1.0 or not 0.0 < self.long_gap_days[0] <= self.long_gap_days[1]:
            raise ValueError(f"long_gaps must be in [0, 1] and long_gap_days a range of days, got "
                             f"{self.long_gaps}, {self.long_gap_days}")

    def to_dict(self) -> dict:
        return asdict(self)


def cadence_log(cfg: CadenceConfig, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Draw an observation log from the cadence model."""
    mjd, night = [], cfg.start_mjd
    # The ranges are drawn only when set, so logs simulated before stay the same for a seed.
    ranged = isinstance(cfg.visits_per_night, tuple)
    while len(mjd) < cfg.epochs:
        if rng.uniform() >= cfg.weather_loss:
            visits = int(rng.integers(cfg.visits_per_night[0], cfg.visits_per_night[1] + 1)) if ranged else cfg.visits_per_night
            for visit in range(visits):
                mjd.append(night + visit * cfg.visit_spacing_hours / 24.0 + rng.normal(0, 0.005))
        gap = rng.uniform(*cfg.night_gap_days)
        if cfg.long_gaps > 0 and rng.uniform() < cfg.long_gaps:
            gap = rng.uniform(*cfg.long_gap_days)
        night += gap
    mjd = np.array(mjd[: cfg.epochs])
    n = len(mjd)
    seeing = np.exp(
        np.log(cfg.seeing_arcsec[0] / cfg.pixel_scale_arcsec * 1.0) + cfg.seeing_arcsec[1] * rng.normal(size=n)
    )
    seeing = np.clip(seeing, 2.0, 8.0)
    airmass = 1.0 + np.abs(rng.normal(0, 0.35, size=n))
    # Moon phase drives the sky level over a ~29.5 day cycle; airmass adds a little.
    moon = 0.5 * (1 - np.cos(2 * math.pi * (mjd - cfg.start_mjd) / 29.53 + rng.uniform(0, 2 * math.pi)))
    sky = (cfg.sky_e[0] + (cfg.sky_e[1] - cfg.sky_e[0]) * moon) * (0.8 + 0.2 * airmass) * rng.uniform(0.9, 1.1, n)
    if cfg.bright_epochs > 0:  # drawn only when asked, so logs simulated before stay the same for a seed
        sky = np.where(rng.uniform(size=n) < cfg.bright_epochs, sky * rng.uniform(*cfg.bright_factor, n), sky)
    zero_point = (
        cfg.zero_point0 - cfg.extinction * (airmass - 1.0) - np.abs(rng.normal(0, 0.08, n))
    )  # thin cloud only dims
    return {
        "mjd": mjd,
        "fwhm": seeing * np.sqrt(airmass) ** 0.6,
        "sky": sky,
        "zero_point": zero_point,
        "exptime": np.full(n, cfg.exptime),
        "airmass": airmass,
    }


def read_log_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read a log from CSV with the columns in COLUMNS (extra columns are ignored)."""
    path = Path(path)
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path}: observation log lacks column(s) {', '.join(missing)}; needs {', '.join(COLUMNS)}"
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path}: observation log has no epochs")
    log = {}
    for column in COLUMNS:
        try:
            log[column] = np.array([float(r[column]) for r in rows])
        except ValueError as exc:
            raise ValueError(f"{path}: column '{column}': {exc}") from None
    order = np.argsort(log["mjd"])
    return {k: v[order] for k, v in log.items()}


def write_log_csv(log: dict[str, np.ndarray], path: str | Path) -> None:
    """Write a log as CSV (the format read_log_csv reads)."""
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i in range(len(log["mjd"])):
            writer.writerow([f"{log[c][i]:.6f}" for c in COLUMNS])
