"""All-sky camera frames: fisheye sky with stars, airglow, aurora, clouds and moon.

Geometry is an equidistant fisheye: zenith at the image centre, the horizon a
circle of radius R, and a pixel at radius r sees zenith angle 90 deg * r / R.
Every light source is rendered in expected electrons per pixel, attenuated by
the atmosphere (airmass, Kasten & Young) and the lens (vignetting), then read
out with Poisson and read noise and digitised to 8 or 16 bits, optionally
through a Bayer mosaic. The six classes follow Endo & Matsumoto (2022):

* ``arc``: one to three thin bright bands along the magnetic east-west axis, curved;
* ``diffuse``: broad low-contrast glow patches;
* ``discrete``: bright folded curtains with fine ray structure;
* ``cloudy``: cloud cover hiding stars partly or fully, lit by skyglow or moon;
* ``moon``: the moon's disk with glare and a washed-out sky;
* ``clear``: stars only (with airglow and sometimes the Milky Way).

Each frame may also carry a weaker second phenomenon (thin cloud over an
aurora, faint glow on a clear night), so classes overlap the way real ones
do; the label is the dominant phenomenon.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from skyedge.training.simulate.photometry import airmass, expose, mag_to_electrons, to_adu

CLASSES = ("arc", "diffuse", "discrete", "cloudy", "moon", "clear")

# Relative response of (R, G, B) channels to each emission, for colour cameras.
SPECTRA = {
    "star": (1.0, 1.0, 1.0),
    "airglow": (0.75, 1.0, 0.8),
    "light_pollution": (1.0, 0.8, 0.5),
    "aurora_green": (0.25, 1.0, 0.35),
    "aurora_red": (1.0, 0.25, 0.3),
    "cloud_lp": (1.0, 0.85, 0.7),
    "cloud_moon": (0.85, 0.95, 1.0),
    "moon": (0.9, 0.95, 1.0),
    "moon_sky": (0.6, 0.75, 1.0),
}

BAYER_OFFSETS = {
    "RGGB": ((0, 0), (0, 1), (1, 0), (1, 1)),
    "BGGR": ((1, 1), (0, 1), (1, 0), (0, 0)),
    "GRBG": ((0, 1), (0, 0), (1, 1), (1, 0)),
    "GBRG": ((1, 0), (0, 0), (1, 1), (0, 1)),
}


@dataclass(frozen=True)
class AllskyConfig:
    """What kind of camera and sky to simulate; ranges are drawn uniformly per frame."""

    size: int = 128
    bit_depth: int = 16
    color: str = "mono"  # mono | rgb
    bayer: str | None = None  # RGGB | BGGR | GRBG | GBRG: raw colour sensor output (implies color=rgb)
    fwhm_px: tuple[float, float] = (1.2, 2.2)
    limiting_mag: tuple[float, float] = (4.5, 6.0)  # faintest catalogue star drawn
    zero_point: tuple[float, float] = (12.0, 13.5)  # mag giving 1 electron per exposure
    extinction: tuple[float, float] = (0.15, 0.35)  # mag per airmass
    sky_e: tuple[float, float] = (80.0, 300.0)  # zenith sky, electrons per pixel
    light_pollution: tuple[float, float] = (0.0, 1.5)  # extra sky at the horizon, in units of zenith sky
    vignetting: tuple[float, float] = (0.1, 0.45)  # fractional loss at the horizon
    gain: tuple[float, float] = (0.5, 3.0)  # electrons per ADU
    read_noise: tuple[float, float] = (2.0, 8.0)  # electrons
    bias: float = 100.0  # ADU (16-bit); scaled for 8-bit
    secondary_probability: float = 0.35
    milky_way_probability: float = 0.5
    magnetic_axis_deg: float = 0.0  # image angle of magnetic east-west; aurorae scatter around it
    magnetic_axis_spread_deg: float = 25.0
    classes: tuple[str, ...] = field(default=CLASSES)

    def __post_init__(self):
        if self.color not in ("mono", "rgb"):
            raise ValueError(f"color must be mono or rgb, got {self.color!r}")
        if self.bayer is not None and self.bayer not in BAYER_OFFSETS:
            raise ValueError(f"bayer must be one of {', '.join(BAYER_OFFSETS)}, got {self.bayer!r}")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        unknown = set(self.classes) - set(CLASSES)
        if unknown:
            raise ValueError(f"unknown all-sky classes: {sorted(unknown)}")

    @property
    def channels(self) -> int:
        """Channels of the stored frame (a Bayer mosaic is stored as one channel)."""
        return 3 if self.color == "rgb" and self.bayer is None else 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _Sky:
    """Per-frame geometry and the list of emission maps being accumulated."""

    def __init__(self, cfg: AllskyConfig, rng: np.random.Generator):
        self.cfg, self.rng = cfg, rng
        n = cfg.size
        self.c = (n - 1) / 2.0
        self.R = 0.47 * n
        yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
        self.dx, self.dy = (xx - self.c) / self.R, (yy - self.c) / self.R  # unit: horizon radius
        self.r = np.hypot(self.dx, self.dy)
        self.mask = self.r <= 1.0
        self.zenith = np.clip(self.r, 0, 1) * (math.pi / 2)
        self.airmass = airmass(np.minimum(self.zenith, math.radians(89.0)))
        axis = math.radians(cfg.magnetic_axis_deg + rng.normal(0, cfg.magnetic_axis_spread_deg))
        self.u = self.dx * math.cos(axis) + self.dy * math.sin(axis)  # along magnetic east-west
        self.v = -self.dx * math.sin(axis) + self.dy * math.cos(axis)  # along magnetic north-south
        self.components: list[tuple[str, np.ndarray]] = []
        self.star_transmission = np.ones((n, n))
        self.sky0 = rng.uniform(*cfg.sky_e)
        self.extinction = rng.uniform(*cfg.extinction)

    def add(self, spectrum: str, emission: np.ndarray) -> None:
        self.components.append((spectrum, emission))

    def smooth_noise(self, scale: float, octaves: int = 1, persistence: float = 0.5) -> np.ndarray:
        """Value noise in [-1, 1]-ish with features of ``scale`` (fraction of the image), plus finer octaves."""
        n = self.cfg.size
        total = np.zeros((n, n))
        amp, norm = 1.0, 0.0
        for octave in range(octaves):
            cells = max(2, int(round(1.0 / (scale / 2**octave))))
            grid = self.rng.normal(size=(cells + 1, cells + 1)).astype(np.float32)
            total += amp * cv2.resize(grid, (n, n), interpolation=cv2.INTER_CUBIC)
            norm += amp
            amp *= persistence
        return total / norm


def _stars(sky: _Sky) -> None:
    cfg, rng = sky.cfg, sky.rng
    m_lim = rng.uniform(*cfg.limiting_mag)
    m_min = -1.5
    # Star counts grow as log10 N(<m) = 0.5 m + 0.7 over the whole sky (N(<6) ~ 5000); half is above the horizon.
    n_stars = int(0.5 * 10 ** (0.5 * m_lim + 0.7))
    u = rng.uniform(size=n_stars)
    lo, hi = 10 ** (0.5 * m_min), 10 ** (0.5 * m_lim)
    mags = np.log10(lo + u * (hi - lo)) / 0.5
    # Uniform on the upper hemisphere: cos(zenith) uniform in (0, 1].
    zen = np.arccos(rng.uniform(0.0, 1.0, n_stars))
    az = rng.uniform(0, 2 * math.pi, n_stars)
    rad = zen / (math.pi / 2) * sky.R
    x, y = sky.c + rad * np.cos(az), sky.c + rad * np.sin(az)
    zp = rng.uniform(*cfg.zero_point)
    flux = mag_to_electrons(mags + sky.extinction * airmass(np.minimum(zen, math.radians(89.0))), zp)
    n = cfg.size
    image = np.zeros((n, n))
    # Bilinear splat keeps sub-pixel positions; the PSF blur below spreads each star.
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        xi, yi = x0 + ox, y0 + oy
        ok = (xi >= 0) & (xi < n) & (yi >= 0) & (yi < n)
        np.add.at(image, (yi[ok], xi[ok]), flux[ok] * w[ok])
    fwhm = rng.uniform(*cfg.fwhm_px)
    image = cv2.GaussianBlur(image, (0, 0), fwhm / 2.3548)
    sky.add("star", image)
    sky.meta.update(limiting_mag=m_lim, zero_point=zp, fwhm_px=fwhm, n_stars=n_stars)


def _background(sky: _Sky) -> None:
    cfg, rng = sky.cfg, sky.rng
    # Airglow brightens toward the horizon (van Rhijn: thin emitting layer seen at a slant).
    earth, height = 6371.0, 90.0
    van_rhijn = 1.0 / np.sqrt(1.0 - (earth / (earth + height) * np.sin(sky.zenith)) ** 2)
    sky.add("airglow", sky.sky0 * van_rhijn)
    lp = rng.uniform(*cfg.light_pollution)
    if lp > 0:
        az = rng.uniform(0, 2 * math.pi)
        toward = np.clip(sky.dx * math.cos(az) + sky.dy * math.sin(az), 0, None)
        sky.add("light_pollution", sky.sky0 * lp * sky.r**3 * (0.3 + toward) ** 2)
    sky.meta.update(sky_e=sky.sky0, light_pollution=lp)
    if rng.uniform() < cfg.milky_way_probability:
        ang, off = rng.uniform(0, math.pi), rng.uniform(-0.5, 0.5)
        dist = sky.dx * math.sin(ang) - sky.dy * math.cos(ang) - off
        band = np.exp(-0.5 * (dist / rng.uniform(0.08, 0.15)) ** 2) * (1 + 0.4 * sky.smooth_noise(0.1, 3))
        sky.add("star", sky.sky0 * rng.uniform(0.05, 0.2) * np.clip(band, 0, None))


def _arc(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    for _ in range(rng.integers(1, 4)):
        v0, curvature = rng.uniform(-0.45, 0.45), rng.uniform(-0.5, 0.5)
        width = rng.uniform(0.02, 0.05)
        dist = sky.v - (v0 + curvature * sky.u**2)
        along = 0.7 + 0.3 * sky.smooth_noise(0.5)
        brightness = sky.sky0 * strength * rng.uniform(4.0, 15.0)
        sky.add("aurora_green", brightness * along * np.exp(-0.5 * (dist / width) ** 2))


def _discrete(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    for _ in range(rng.integers(1, 3)):
        v0, curvature = rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6)
        folds = rng.uniform(0.04, 0.15) * np.sin(2 * math.pi * rng.uniform(1, 3.5) * sky.u + rng.uniform(0, 6.3))
        edge = v0 + curvature * sky.u**2 + folds
        dist = sky.v - edge
        height = rng.uniform(0.06, 0.2)
        # Sharp lower border, light extending up the field lines (here: one side of the band).
        profile = np.where(dist < 0, np.exp(-0.5 * (dist / 0.015) ** 2), np.exp(-dist / height))
        rays_freq = rng.uniform(15, 45)
        rays = 0.55 + 0.45 * np.sin(2 * math.pi * rays_freq * sky.u + 3 * sky.smooth_noise(0.2)) ** 2
        brightness = sky.sky0 * strength * rng.uniform(6.0, 20.0)
        sky.add("aurora_green", brightness * profile * rays)
        if rng.uniform() < 0.4:
            sky.add("aurora_red", 0.3 * brightness * np.exp(-np.abs(dist - 2 * height) / height) * rays)


def _diffuse(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    field_ = sky.smooth_noise(rng.uniform(0.12, 0.3), octaves=2)
    patches = np.clip(field_ - rng.uniform(0.0, 0.4), 0, None)
    patches /= np.quantile(patches[sky.mask], 0.95) + 1e-9
    sky.add("aurora_green", sky.sky0 * strength * rng.uniform(2.0, 5.0) * patches)


def _cloud(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    coverage = np.clip(strength * rng.uniform(0.6, 1.0), 0.05, 1.0)
    noise = sky.smooth_noise(rng.uniform(0.15, 0.4), octaves=4, persistence=0.55)
    threshold = np.quantile(noise, 1.0 - coverage)
    opacity = np.clip((noise - threshold) / rng.uniform(0.1, 0.6), 0.0, 1.0)
    tau = rng.uniform(0.7, 1.0)
    sky.star_transmission *= 1.0 - tau * opacity
    lit_by = "cloud_moon" if rng.uniform() < 0.4 else "cloud_lp"
    # Clouds reflect ground light or moonlight (brighter than sky) or block airglow (darker), by site.
    glow = sky.sky0 * rng.uniform(-0.6, 2.5)
    sky.add(lit_by, glow * opacity * (0.8 + 0.2 * sky.smooth_noise(0.05)))
    sky.meta.update(cloud_coverage=float(coverage))


def _moon(sky: _Sky, strength: float) -> None:
    rng = sky.rng
    alt = math.radians(rng.uniform(10, 80))
    az = rng.uniform(0, 2 * math.pi)
    rad = (math.pi / 2 - alt) / (math.pi / 2)
    mx, my = rad * math.cos(az), rad * math.sin(az)
    d = np.hypot(sky.dx - mx, sky.dy - my)
    phase = rng.uniform(0.4, 1.0) * strength
    # The true disk (0.5 deg) is under a pixel; blooming of the saturated image makes it a few pixels wide.
    disk_r = rng.uniform(1.5, 4.0) / sky.R
    disk = np.exp(-0.5 * (d / disk_r) ** 6)
    sky.add("moon", sky.sky0 * 400.0 * phase * disk)
    core = 1.0 / (1.0 + (d / rng.uniform(0.03, 0.08)) ** 2)
    halo = 1.0 / (1.0 + (d / rng.uniform(0.25, 0.6)) ** 2)
    scattered = rng.uniform(30, 100) * core + rng.uniform(3, 10) * halo + rng.uniform(2.0, 6.0)
    sky.add("moon_sky", sky.sky0 * phase * scattered)
    sky.meta.update(moon_altitude_deg=math.degrees(alt), moon_phase=float(phase))


PHENOMENA = {"arc": _arc, "discrete": _discrete, "diffuse": _diffuse, "cloudy": _cloud, "moon": _moon}
# A weaker second phenomenon that can accompany each class.
SECONDARY = {
    "arc": ("diffuse", "cloudy"),
    "discrete": ("arc", "diffuse"),
    "diffuse": ("arc", "cloudy"),
    "cloudy": ("moon", "diffuse"),
    "moon": ("cloudy",),
    "clear": ("diffuse", "cloudy"),
}
# Strength of the secondary relative to a full-strength primary: low enough that the label stays right.
SECONDARY_STRENGTH = {"arc": 0.15, "discrete": 0.08, "diffuse": 0.1, "cloudy": 0.15, "moon": 0.08}


def render_allsky(label: str, rng: np.random.Generator, cfg: AllskyConfig = AllskyConfig()) -> tuple[np.ndarray, dict]:
    """One frame of class ``label``: (H, W) or (H, W, 3) uint8/uint16 ADU, and its metadata."""
    if label not in CLASSES:
        raise ValueError(f"unknown all-sky class {label!r}; expected one of {', '.join(CLASSES)}")
    sky = _Sky(cfg, rng)
    sky.meta = {"label": label, "secondary": ""}
    _background(sky)
    if label != "clear":
        PHENOMENA[label](sky, 1.0)
    if rng.uniform() < cfg.secondary_probability:
        second = SECONDARY[label][rng.integers(len(SECONDARY[label]))]
        PHENOMENA[second](sky, SECONDARY_STRENGTH[second] * rng.uniform(0.3, 1.0))
        sky.meta["secondary"] = second
    _stars(sky)
    vignetting = 1.0 - rng.uniform(*cfg.vignetting) * sky.r**2
    rgb = cfg.color == "rgb" or cfg.bayer is not None
    channels = 3 if rgb else 1
    expected = np.zeros((cfg.size, cfg.size, channels))
    for spectrum, emission in sky.components:
        weight = np.asarray(SPECTRA[spectrum]) if rgb else np.array([sum(SPECTRA[spectrum]) / 3.0])
        transmitted = emission * sky.star_transmission if spectrum == "star" else emission
        expected += transmitted[..., None] * weight[None, None, :]
    expected *= (vignetting * sky.mask)[..., None]
    # Dark current and a little scattered light keep the masked corners from being exactly zero.
    expected += 2.0
    gain, read_noise = rng.uniform(*cfg.gain), rng.uniform(*cfg.read_noise)
    bias = cfg.bias if cfg.bit_depth == 16 else cfg.bias / 16
    if cfg.bit_depth == 8:
        gain *= 8.0  # an 8-bit camera spans the same sky with coarser steps (sky ~ 10-60 ADU)
    if cfg.bayer is not None:
        mosaic = np.zeros((cfg.size, cfg.size))
        (ry, rx), (g1y, g1x), (g2y, g2x), (by, bx) = BAYER_OFFSETS[cfg.bayer]
        mosaic[ry::2, rx::2] = expected[ry::2, rx::2, 0]
        mosaic[g1y::2, g1x::2] = expected[g1y::2, g1x::2, 1]
        mosaic[g2y::2, g2x::2] = expected[g2y::2, g2x::2, 1]
        mosaic[by::2, bx::2] = expected[by::2, bx::2, 2]
        expected = mosaic[..., None]
    electrons = expose(expected, read_noise, rng)
    image = to_adu(electrons, gain, bias, cfg.bit_depth)
    if image.shape[-1] == 1:
        image = image[..., 0]
    sky.meta.update(gain=gain, read_noise=read_noise, bias=bias, bit_depth=cfg.bit_depth, bayer=cfg.bayer or "")
    return image, sky.meta


class _AllskyShard:
    """A picklable shard maker for the runner, closed over the camera config."""

    def __init__(self, cfg: AllskyConfig, files: str | None):
        self.cfg, self.files = cfg, files

    def __call__(self, index, labels, seed_seq, out):
        from skyedge.training.simulate.frame_files import fits_header, write_frame

        rng = np.random.default_rng(seed_seq)
        images, meta_rows = [], []
        for j, label in enumerate(labels):
            image, meta = render_allsky(label, rng, self.cfg)
            item = index * 100_000 + j
            if self.files:
                folder = out / "frames"
                folder.mkdir(exist_ok=True)
                path = write_frame(folder / f"allsky-{index:04d}-{j:05d}", image, self.files, fits_header(meta, item))
                meta["file"] = str(path.relative_to(out))
            images.append(image)
            meta_rows.append(meta)
        labels_idx = np.array([self.cfg.classes.index(m["label"]) for m in meta_rows], dtype=np.int64)
        return {"images": np.stack(images), "labels": labels_idx}, meta_rows


def simulate_allsky(
    n: int,
    out,
    seed: int = 0,
    cfg: AllskyConfig = AllskyConfig(),
    files: str | None = None,
    workers: int | None = None,
    shard_size: int = 256,
    progress: bool = True,
):
    """Simulate n labelled all-sky frames into a sharded data set (and optionally image files)."""
    from pathlib import Path

    from skyedge.training.simulate.runner import run_simulation

    manifest = run_simulation(
        _AllskyShard(cfg, files),
        task="frame",
        classes=list(cfg.classes),
        n=n,
        seed=seed,
        out=out,
        shard_size=shard_size,
        workers=workers,
        progress=progress,
        arrays_spec={
            "images": {
                "dtype": "uint8" if cfg.bit_depth == 8 else "uint16",
                "shape": [cfg.size, cfg.size] + ([3] if cfg.channels == 3 else []),
                "unit": "ADU",
                "bit_depth": cfg.bit_depth,
                "color": cfg.color,
                "bayer": cfg.bayer,
            }
        },
        simulator={"name": "allsky", "config": cfg.to_dict()},
    )
    if files:
        _write_label_table(Path(out))
    return manifest


def _write_label_table(out) -> None:
    """An OATH-style label table (file,label) beside the frames, for the folder loaders and the edge demo."""
    import csv

    from skyedge.shards import ShardedDataset

    data = ShardedDataset.open(out, verify=False).load()
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        for file, label in zip(data["meta.file"], data["meta.label"], strict=False):
            writer.writerow([file, label])
