"""Image-stamp sequences of variable and transient objects (after Carrasco-Davis et al. 2019).

An object is a light-curve model plus a way to render it: each epoch of the
observation log is drawn with that epoch's PSF (Gaussian or Moffat at the
epoch's seeing), counts from magnitudes through the epoch's zero point, the
epoch's sky level, Poisson and read noise. Classes:

* ``SN``: Bazin rise/decline on top of a Sérsic host galaxy at an offset;
* ``RRLyrae``, ``Cepheid``: periodic pulsators; ``EB``: eclipsing binary;
* ``nonvariable``: a constant star;
* ``asteroid``: a (slightly trailed) point source present in a single epoch;
* ``bogus``: cosmic rays, hot pixels, bad columns or subtraction-like dipoles.

Objects reach to and slightly past the epoch's 5-sigma limiting magnitude, so
faint ones are hard, as they are in real data. :class:`SkyObject` renders into
any pixel grid, so the full-frame ``field`` simulator reuses it unchanged.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from skyedge.training.simulate import lightcurves
from skyedge.training.simulate.obslog import CadenceConfig, cadence_log
from skyedge.training.simulate.photometry import expose, limiting_magnitude, mag_to_electrons
from skyedge.training.simulate.psf import convolve_same, psf_stamp, sersic_stamp

CLASSES = ("SN", "RRLyrae", "Cepheid", "EB", "nonvariable", "asteroid", "bogus")
CONDITIONS = ("mjd", "fwhm", "sky", "zero_point", "exptime", "airmass")


@dataclass(frozen=True)
class TransientConfig:
    """Stamp size, PSF family, magnitude ranges and the survey cadence."""

    stamp_size: int = 21  # 21 px HiTS-like; 63 px ZTF-like
    psf: str = "moffat"  # moffat | gaussian
    moffat_beta: tuple[float, float] = (2.5, 4.5)
    bright_mag: float = 16.5  # at the cadence model's depth; a log of another depth shifts it with its limit
    faint_margin: float = 0.3  # faintest objects: this far below the median limiting magnitude
    faint_fraction: float = 0.15  # share of objects within 1 mag of the limit (the rest are brighter)
    sn_faint_fraction: float | None = None  # the same for supernovae (None: faint_fraction); surveys find most near
    # their limit (HiTS 2015: median peak S/N 27 in a 5x5 box against 51 at 0.15)
    # Neighbouring pixels' noise correlation, drawn per object from this range: 0 for a raw CCD frame, ~0.2 for a
    # survey's resampled images (HiTS 2015); a range teaches both.
    noise_correlation: tuple[float, float] = (0.0, 0.0)
    # Supernovae as deep surveys find them: peaks up to this many days after the last epoch (0 or more: some are
    # caught rising, the case early classification is for; -5 keeps every peak 5 days inside the window), and a
    # share in hosts too faint to see (1-3 mag below the limit), so the stamp is blank until the explosion.
    sn_latest_peak_days: float = -5.0
    sn_faint_host_fraction: float = 0.0
    min_variability: float = 0.4  # mag: variable classes must vary at least this much over the sampled epochs
    variability_snr: float = 5.0  # ... and by this many sigma of the photometric noise (the survey's selection)
    cadence: CadenceConfig = field(default_factory=CadenceConfig)
    classes: tuple[str, ...] = CLASSES

    def __post_init__(self):
        if self.stamp_size < 9 or self.stamp_size % 2 == 0:
            raise ValueError(f"stamp_size must be odd and at least 9, got {self.stamp_size}")
        if self.psf not in ("moffat", "gaussian"):
            raise ValueError(f"psf must be moffat or gaussian, got {self.psf!r}")
        low, high = self.noise_correlation
        if not 0.0 <= low <= high < 0.5:
            raise ValueError(f"noise_correlation must be a range within [0, 0.5), got {self.noise_correlation}")
        if not 0.0 <= self.sn_faint_host_fraction <= 1.0 or self.sn_latest_peak_days <= -10.0:
            raise ValueError(
                "sn_faint_host_fraction must be in [0, 1] and sn_latest_peak_days above -10 (peaks drawn from 10 "
                f"days before the first epoch), got {self.sn_faint_host_fraction}, {self.sn_latest_peak_days}"
            )
        unknown = set(self.classes) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown transient classes: {sorted(unknown)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Depth:
    """A survey's typical epoch (zero point, seeing in px, sky in electrons): what sets its limiting magnitude."""

    zero_point: float
    fwhm: float
    sky: float
    read_noise: float

    @classmethod
    def of(cls, cfg: TransientConfig, log: dict | None = None) -> Depth:
        """The median epoch of a given observing log, else of the cadence model."""
        c = cfg.cadence
        if log is not None:
            return cls(*(float(np.median(log[k])) for k in ("zero_point", "fwhm", "sky")), c.read_noise)
        return cls(c.zero_point0, c.seeing_arcsec[0] / c.pixel_scale_arcsec, 0.5 * sum(c.sky_e), c.read_noise)

    def limit(self) -> float:
        return limiting_magnitude(self.zero_point, self.fwhm, self.sky, self.read_noise)


class SkyObject:
    """One object: renders its expected electrons (without sky) on a grid for any epoch."""

    def __init__(
        self, label: str, rng: np.random.Generator, cfg: TransientConfig, mjd: np.ndarray, depth: Depth | None = None
    ):
        self.label, self.cfg = label, cfg
        self.depth = depth or Depth.of(cfg)  # magnitudes are drawn relative to the survey's limit
        self.beta = rng.uniform(*cfg.moffat_beta)
        limit = self.depth.limit()
        # Most objects are well detected; a faint tail reaches past the median 5-sigma limit.
        faint = cfg.sn_faint_fraction if label == "SN" and cfg.sn_faint_fraction is not None else cfg.faint_fraction
        if rng.uniform() < faint:
            mag_range = (limit - 1.0, limit + cfg.faint_margin)
        else:
            mag_range = (cfg.bright_mag + limit - Depth.of(cfg).limit(), limit - 1.0)
        span = (float(mjd.min()), float(mjd.max()))
        self.meta: dict = {"label": label, "faint": mag_range[0] >= limit - 1.0}
        self.mag = None
        self.host = None
        self.asteroid_epoch = None
        self.artifact = None
        if label in lightcurves.DRAWERS:
            peak_range = (mag_range[0] + 0.5, mag_range[1]) if label == "SN" else mag_range
            # A survey labels an object variable only once its variability is seen: redraw until the
            # sampled light curve spans at least `min_variability` mag (as a selection cut would).
            extra = {"latest_peak_days": cfg.sn_latest_peak_days} if label == "SN" else {}
            for _ in range(100):
                self.mag, params = lightcurves.DRAWERS[label](rng, span, peak_range, **extra)
                if label == "nonvariable" or self._variability_detected(mjd, cfg, limit):
                    break
            self.meta.update(params)
        if label == "SN":
            r_eff = rng.uniform(1.0, 4.0)
            host_range = (mag_range[0] + 0.5, mag_range[1] + 0.5)
            if cfg.sn_faint_host_fraction > 0 and rng.uniform() < cfg.sn_faint_host_fraction:
                host_range = (limit + 1.0, limit + 3.0)  # drawn only when asked: old data sets reproduce
            self.host = {
                "mag": rng.uniform(*host_range),
                "r_eff": r_eff,
                "n": rng.uniform(0.7, 4.0),
                "q": rng.uniform(0.4, 1.0),
                "angle": rng.uniform(0, math.pi),
                "offset": rng.uniform(0.0, 1.5) * r_eff,
                "offset_angle": rng.uniform(0, 2 * math.pi),
            }
            self.meta["host_mag"] = self.host["mag"]
        elif label == "asteroid":
            self.asteroid_epoch = int(rng.integers(len(mjd)))
            self.asteroid = {
                "mag": rng.uniform(*mag_range),
                "trail": rng.uniform(0.0, 5.0),
                "angle": rng.uniform(0, math.pi),
                "dx": rng.uniform(-2.0, 2.0),
                "dy": rng.uniform(-2.0, 2.0),
            }
            self.meta.update(asteroid_epoch=self.asteroid_epoch, mean_mag=self.asteroid["mag"])
        elif label == "bogus":
            kind = ("cosmic_ray", "hot_pixel", "bad_column", "dipole")[rng.integers(4)]
            n = len(mjd)
            if kind == "cosmic_ray":
                epochs = rng.choice(n, size=int(rng.integers(1, 4)), replace=False)
            elif kind == "dipole":
                epochs = np.flatnonzero(rng.uniform(size=n) < rng.uniform(0.3, 0.8))
            else:
                epochs = np.arange(n)
            self.artifact = {
                "kind": kind,
                "epochs": set(int(e) for e in epochs),
                "rng": np.random.default_rng(rng.integers(2**32)),
            }
            self.meta["artifact"] = kind

    def _variability_detected(self, mjd: np.ndarray, cfg: TransientConfig, limit: float) -> bool:
        """The survey's selection: the sampled light curve spans min_variability mag and 5 sigma in flux."""
        sampled = self.mag(mjd)
        if np.ptp(sampled) < cfg.min_variability:
            return False
        d = self.depth
        flux = mag_to_electrons(sampled, d.zero_point)
        area = 4.0 * math.pi * (d.fwhm / 2.3548) ** 2
        noise = np.sqrt(area * (d.sky + d.read_noise**2) + flux)
        return float(flux.max() - flux.min()) >= cfg.variability_snr * float(np.median(noise))

    def expected(self, epoch: int, cond: dict, shape: tuple[int, int], x0: float, y0: float) -> np.ndarray:
        """Expected electrons (no sky, no noise) from this object at epoch ``epoch`` on a grid of ``shape``."""
        size_y, size_x = shape
        image = np.zeros(shape)
        fwhm, zp = cond["fwhm"], cond["zero_point"]
        kind = self.cfg.psf
        if self.mag is not None:
            flux = mag_to_electrons(self.mag(cond["mjd"]), zp)
            image += flux * self._psf(shape, x0, y0, fwhm)
        if self.host is not None:
            h = self.host
            key = (shape, x0, y0)
            if h.get("key") != key:  # the galaxy is static: render it once per grid
                hx = x0 + h["offset"] * math.cos(h["offset_angle"])
                hy = y0 + h["offset"] * math.sin(h["offset_angle"])
                size = max(size_x, size_y)
                h["image"] = sersic_stamp(size, hx, hy, h["r_eff"], h["n"], h["q"], h["angle"])[:size_y, :size_x]
                h["key"] = key
            galaxy = h["image"]
            kernel = psf_stamp(kind, 15, 7.0, 7.0, fwhm, self.beta)
            image += mag_to_electrons(h["mag"], zp) * np.clip(convolve_same(galaxy, kernel), 0, None)
        if self.asteroid_epoch == epoch:
            a = self.asteroid
            steps = max(1, int(math.ceil(a["trail"] * 2)))
            flux = mag_to_electrons(a["mag"], zp) / steps
            for s in np.linspace(-0.5, 0.5, steps):
                px = x0 + a["dx"] + s * a["trail"] * math.cos(a["angle"])
                py = y0 + a["dy"] + s * a["trail"] * math.sin(a["angle"])
                image += flux * self._psf(shape, px, py, fwhm)
        if self.artifact is not None and epoch in self.artifact["epochs"]:
            image += self._artifact(shape, x0, y0, cond)
        return image

    def _psf(self, shape, x0, y0, fwhm):
        size = max(shape)
        return psf_stamp(self.cfg.psf, size, x0, y0, fwhm, self.beta)[: shape[0], : shape[1]]

    def _artifact(self, shape, x0, y0, cond) -> np.ndarray:
        art = self.artifact
        rng = art["rng"]
        image = np.zeros(shape)
        cx, cy = int(round(x0)), int(round(y0))
        level = math.sqrt(cond["sky"]) * rng.uniform(8, 60)
        if art["kind"] == "cosmic_ray":
            # A short sharp track of 1-4 pixels, far narrower than any PSF.
            x, y = cx + int(rng.integers(-1, 2)), cy + int(rng.integers(-1, 2))
            for _ in range(int(rng.integers(1, 5))):
                if 0 <= y < shape[0] and 0 <= x < shape[1]:
                    image[y, x] += level * rng.uniform(0.5, 1.5)
                x += int(rng.integers(-1, 2))
                y += int(rng.integers(-1, 2))
        elif art["kind"] == "hot_pixel":
            image[cy, cx] += art.setdefault("hot_level", level)
        elif art["kind"] == "bad_column":
            image[:, cx] += art.setdefault("column_level", 0.3 * level)
        else:  # dipole: a misaligned subtraction leaves a positive and a negative lobe
            sep = art.setdefault("sep", rng.uniform(1.0, 2.5))
            ang = art.setdefault("angle", rng.uniform(0, 2 * math.pi))
            amp = art.setdefault("amp", mag_to_electrons(rng.uniform(17.5, 20.0), cond["zero_point"]))
            dx, dy = 0.5 * sep * math.cos(ang), 0.5 * sep * math.sin(ang)
            lobe_p = self._psf(shape, x0 + dx, y0 + dy, cond["fwhm"])
            lobe_n = self._psf(shape, x0 - dx, y0 - dy, cond["fwhm"])
            image += amp * (lobe_p - lobe_n)
        return image


def correlated(noise: np.ndarray, rho: float) -> np.ndarray:
    """White noise made to correlate by ``rho`` between neighbouring pixels, its variance kept: a separable
    [a, 1-2a, a] kernel (what resampling onto a survey's grid does), normalised."""
    # Neighbour correlation of the kernel: 2ab / (2a^2 + b^2) with b = 1 - 2a; solved for a on a fine grid.
    grid = np.linspace(0.0, 1.0 / 3.0, 2001)
    b = 1.0 - 2.0 * grid
    a = float(grid[np.argmin(np.abs(2 * grid * b / (2 * grid**2 + b**2) - rho))])
    kernel = np.array([a, 1.0 - 2.0 * a, a])
    from scipy.ndimage import convolve

    # Wrapped edges keep the border pixels' noise what the centre's is (stamps' backgrounds come from their border).
    return convolve(noise, np.outer(kernel, kernel), mode="wrap") / float(np.sum(kernel**2))


def epoch_conditions(log: dict[str, np.ndarray], epoch: int) -> dict[str, float]:
    """One epoch's conditions as a plain dict."""
    return {key: float(log[key][epoch]) for key in CONDITIONS}


def render_sequence(
    label: str,
    rng: np.random.Generator,
    cfg: TransientConfig = TransientConfig(),
    log: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Stamps (T, S, S) float32 electrons, conditions (T, 6) float32 in CONDITIONS order, and metadata."""
    if label not in CLASSES:
        raise ValueError(f"unknown transient class {label!r}; expected one of {', '.join(CLASSES)}")
    depth = Depth.of(cfg, log)  # a user's log sets the depth (its zero point may be any survey's)
    log = log if log is not None else cadence_log(cfg.cadence, rng)
    obj = SkyObject(label, rng, cfg, log["mjd"], depth)
    size = cfg.stamp_size
    centre = (size - 1) / 2.0
    x0, y0 = centre + rng.uniform(-0.5, 0.5), centre + rng.uniform(-0.5, 0.5)
    epochs = len(log["mjd"])
    stamps = np.empty((epochs, size, size), dtype=np.float32)
    rho = rng.uniform(*cfg.noise_correlation) if cfg.noise_correlation[1] > 0 else 0.0
    for e in range(epochs):
        cond = epoch_conditions(log, e)
        expected = cond["sky"] + obj.expected(e, cond, (size, size), x0, y0)
        stamps[e] = expose(expected, cfg.cadence.read_noise, rng)
        if rho > 0:
            stamps[e] = expected + correlated(stamps[e] - expected, rho)
    conditions = np.stack([log[key] for key in CONDITIONS], axis=1).astype(np.float32)
    return stamps, conditions, obj.meta


class _TransientShard:
    def __init__(self, cfg: TransientConfig, log: dict | None):
        self.cfg, self.log = cfg, log

    def __call__(self, index, labels, seed_seq, out):
        rng = np.random.default_rng(seed_seq)
        stamps, conds, meta_rows = [], [], []
        for label in labels:
            s, c, meta = render_sequence(label, rng, self.cfg, self.log)
            stamps.append(s)
            conds.append(c)
            meta_rows.append(meta)
        labels_idx = np.array([self.cfg.classes.index(m["label"]) for m in meta_rows], dtype=np.int64)
        return {"images": np.stack(stamps), "conditions": np.stack(conds), "labels": labels_idx}, meta_rows


def simulate_transients(
    n: int,
    out,
    seed: int = 0,
    cfg: TransientConfig = TransientConfig(),
    log: dict | None = None,
    workers: int | None = None,
    shard_size: int = 256,
    progress: bool = True,
):
    """Simulate n labelled stamp sequences into a sharded data set; ``log`` fixes the epochs (else drawn per object)."""
    from skyedge.training.simulate.runner import run_simulation

    epochs = len(log["mjd"]) if log is not None else cfg.cadence.epochs
    return run_simulation(
        _TransientShard(cfg, log),
        task="sequence",
        classes=list(cfg.classes),
        n=n,
        seed=seed,
        out=out,
        shard_size=shard_size,
        workers=workers,
        progress=progress,
        arrays_spec={
            "images": {"dtype": "float32", "shape": [epochs, cfg.stamp_size, cfg.stamp_size], "unit": "electrons"},
            "conditions": {"dtype": "float32", "shape": [epochs, len(CONDITIONS)], "names": list(CONDITIONS)},
        },
        simulator={"name": "transients", "config": cfg.to_dict(), "fixed_log": log is not None},
    )
