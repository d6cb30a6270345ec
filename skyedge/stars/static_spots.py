"""Points that stay put while the sky turns: hot pixels, a lamp, a reflection, never a star.

A colour camera's hot pixel is spread over 3x3 by debayering and passes for a faint star, so the single-pixel repair
(:mod:`skyedge.stars.detection`) misses it; 2,000 of them on a simulated 512 px colour frame kept the blind solve from
matching (tests/test_stars.py). What gives them away is time: every star but those by the pole moves by a degree in
four minutes, a hot pixel never does.

:class:`StaticSpots` remembers, at most once per ``SAMPLE_S`` of capture time, where the frame's detections were. A
place detected again within ``RADIUS_PX`` on ``MIN_HITS`` samples spanning ``MIN_SPAN_S`` or more, and on
``MIN_SHARE`` of the samples in between, is static: from then on its detections are dropped and its significance
zeroed, so that neither the solve, the tracking, the limits nor the forced measurement of expected stars reads it.
Near the celestial pole stars hardly move, so no place within ``POLE_DEG`` of it (where the lens puts it) becomes
static. A static spot unseen for ``FORGET_S`` is forgotten (a hot pixel that cooled, a lamp taken down).

What was learnt survives a restart: :meth:`StaticSpots.save` writes the places to a small ``.npz`` file (the star
watch keeps it beside the camera geometry) and :func:`load_static_spots` reads it back for a frame of the same size.
Without it a colour camera's hot pixels would pass for stars again for a quarter of an hour after every restart.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

from skyedge.durable import replace_file
from skyedge.stars.detection import Detections

SAMPLE_S = 60.0
RADIUS_PX = 0.5  # a hot pixel's centroid stays within a tenth of a pixel; chance passers-by are 4x rarer than at 1 px
MIN_HITS = 3
# ... and seen on this share of the samples from its first to its last: stars follow one another along the same
# diurnal circles, so a place one star left is passed by the next (with 1 px and no share, 900 places on a simulated
# 384 px camera became static over twelve nights of clear sky, and the zenith's stars read 0.72 seen)
MIN_SHARE = 0.7
MIN_SPAN_S = 900.0  # a star 5 deg from the pole moves 0.33 deg in 15 minutes: 0.65 px on a coarse 0.5 deg/px lens
POLE_DEG = 5.0
CANDIDATE_S = 2 * MIN_SPAN_S  # a place seen once is remembered this long (every star leaves one per sample)
FORGET_S = 3 * 86400.0
_STATE = ("_x", "_y", "_first", "_last", "_hits", "_born", "_seen")
FILE_VERSION = 1


class StaticSpots:
    """One camera's static places (pixel positions), learnt from its detections over time."""

    def __init__(self):
        self._x = np.zeros(0)
        self._y = np.zeros(0)
        self._first = np.zeros(0)
        self._last = np.zeros(0)
        self._hits = np.zeros(0, np.int64)
        self._born = np.zeros(0, np.int64)  # the sample a place was first seen on
        self._seen = np.zeros(0, np.int64)  # ... and last seen on
        self._samples = 0
        self._sampled = -np.inf

    @property
    def static(self) -> np.ndarray:
        """Which remembered places are static."""
        share = self._hits / np.maximum(self._seen - self._born + 1, 1)
        return (self._hits >= MIN_HITS) & (self._last - self._first >= MIN_SPAN_S) & (share >= MIN_SHARE)

    def __len__(self) -> int:
        return int(self.static.sum())

    def screen(self, det: Detections, posix: float, pole_xy: tuple[float, float] | None = None, pole_px: float = 0.0) -> Detections:
        """``det`` without its detections at static places (their significance zeroed, in ``det`` too); learns
        from ``det`` at most once per ``SAMPLE_S``. ``pole_xy``: the celestial pole's pixel when the lens is known,
        and ``pole_px`` the radius in pixels around it where nothing becomes static."""
        if posix - self._sampled >= SAMPLE_S or posix < self._sampled:  # a clock set back starts sampling afresh
            self._learn(det, posix, pole_xy, pole_px)
            self._sampled = posix
        static = self.static
        if pole_xy is not None and pole_px > 0:  # a star near the pole, marked before the lens was known
            static &= np.hypot(self._x - pole_xy[0], self._y - pole_xy[1]) > pole_px
        return without_places(det, self._x[static], self._y[static])

    def _learn(self, det: Detections, posix: float, pole_xy, pole_px: float) -> None:
        self._samples += 1
        x, y = np.asarray(det.x, float), np.asarray(det.y, float)
        if pole_xy is not None and pole_px > 0:
            away = np.hypot(x - pole_xy[0], y - pole_xy[1]) > pole_px
            x, y = x[away], y[away]
        matched = np.zeros(len(x), bool)
        if len(self._x) and len(x):
            from scipy.spatial import cKDTree

            dist, idx = cKDTree(np.stack([self._x, self._y], axis=1)).query(np.stack([x, y], axis=1), distance_upper_bound=RADIUS_PX)
            matched = np.isfinite(dist)
            hit = np.unique(idx[matched])  # a place counts once per sample however many detections fall on it
            self._last[hit] = posix
            self._seen[hit] = self._samples
            self._hits[hit] += 1
        new = ~matched
        n = int(new.sum())
        self._x = np.concatenate([self._x, x[new]])
        self._y = np.concatenate([self._y, y[new]])
        self._first = np.concatenate([self._first, np.full(n, posix)])
        self._last = np.concatenate([self._last, np.full(n, posix)])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._born = np.concatenate([self._born, np.full(n, self._samples, np.int64)])
        self._seen = np.concatenate([self._seen, np.full(n, self._samples, np.int64)])
        age = posix - self._last
        keep = (age <= np.where(self.static, FORGET_S, CANDIDATE_S)) & (age >= -CANDIDATE_S)
        for name in _STATE:
            setattr(self, name, getattr(self, name)[keep])

    def add_static(self, x: np.ndarray, y: np.ndarray, first: float, last: float) -> int:
        """Hold the places (``x``, ``y``) as static from now, seen from capture time ``first`` to ``last`` (a folder's
        static places: :func:`places_in_most_frames`), but those within ``RADIUS_PX`` of a place held already; how
        many were added. They are forgotten as learnt ones are: unseen for ``FORGET_S`` after ``last``."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        if len(self._x) and len(x):
            from scipy.spatial import cKDTree

            dist, _ = cKDTree(np.stack([self._x, self._y], axis=1)).query(np.stack([x, y], axis=1), distance_upper_bound=RADIUS_PX)
            x, y = x[~np.isfinite(dist)], y[~np.isfinite(dist)]
        n = len(x)
        self._samples = max(self._samples, MIN_HITS)
        last = max(float(last), float(first) + MIN_SPAN_S)
        added = {"_x": x, "_y": y, "_first": np.full(n, float(first)), "_last": np.full(n, last),
                 "_hits": np.full(n, MIN_HITS), "_born": np.full(n, self._samples - MIN_HITS + 1), "_seen": np.full(n, self._samples)}
        for name in _STATE:
            setattr(self, name, np.concatenate([getattr(self, name), added[name].astype(getattr(self, name).dtype)]))
        return n

    def save(self, path: Path, shape: tuple[int, int]) -> None:
        """Write what was learnt on frames of ``shape`` (rows, columns) to ``path``, whole and durably."""
        buffer = io.BytesIO()
        np.savez(
            buffer,
            version=FILE_VERSION,
            shape=np.asarray(shape, np.int64),
            samples=self._samples,
            sampled=self._sampled,
            **{name.lstrip("_"): getattr(self, name) for name in _STATE},
        )
        replace_file(path, buffer.getvalue())


def without_places(det: Detections, sx: np.ndarray, sy: np.ndarray) -> Detections:
    """``det`` without its detections at the places (``sx``, ``sy``), their significance zeroed (in ``det`` too)."""
    if len(sx) == 0 or len(det) == 0:
        return det
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(np.stack([sx, sy], axis=1)).query(np.stack([det.x, det.y], axis=1), distance_upper_bound=RADIUS_PX + 0.5)
    keep = ~np.isfinite(dist)
    significance = det.significance  # the frame's own image, zeroed in place (a 2k copy per frame is 16 MB)
    if significance is not None:
        h, w = significance.shape
        xi, yi = np.rint(sx).astype(int), np.rint(sy).astype(int)
        for oy in range(-2, 3):
            for ox in range(-2, 3):
                significance[np.clip(yi + oy, 0, h - 1), np.clip(xi + ox, 0, w - 1)] = 0.0
    return dataclasses.replace(det, x=det.x[keep], y=det.y[keep], flux=det.flux[keep], snr=det.snr[keep], significance=significance)


def places_in_most_frames(frames: list[tuple[float, np.ndarray, np.ndarray]], share: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The static places of a set of frames taken at any times (``frames``: capture time and detection positions
    each), one position per place: places detected within ``RADIUS_PX`` on at least ``share`` of the frames (and
    ``MIN_HITS``), those frames spanning ``MIN_SPAN_S`` or more. For a folder of frames, where :class:`StaticSpots`,
    which follows a sequence, would forget a place between frames hours apart; stars keep a place only within a
    degree or so of the pole, and only over minutes."""
    if len(frames) < MIN_HITS:
        return np.zeros(0), np.zeros(0)
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    xy = np.stack([np.concatenate([f[1] for f in frames]), np.concatenate([f[2] for f in frames])], axis=1).astype(float)
    if len(xy) == 0:
        return np.zeros(0), np.zeros(0)
    which = np.concatenate([np.full(len(f[1]), i) for i, f in enumerate(frames)])
    when = np.array([f[0] for f in frames], float)
    need = max(MIN_HITS, int(np.ceil(share * len(frames))))
    # A place needs a detection on `need` frames, so at least `need` detections near each of its own: the counts
    # leave only such candidates (a 2k colour camera's folder: 800,000 detections, a few hundred thousand of them
    # its hot pixels), which are then joined into places and judged by their frames.
    near = cKDTree(xy).query_ball_point(xy, r=RADIUS_PX, return_length=True)
    cand = np.flatnonzero(near >= need)
    if len(cand) == 0:
        return np.zeros(0), np.zeros(0)
    keys, key_of = np.unique(np.rint(xy[cand] * 4), axis=0, return_inverse=True)  # quarter pixels, then joined
    pairs = cKDTree(keys / 4).query_pairs(RADIUS_PX, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(keys), len(keys)))
    n, place_of_key = connected_components(graph, directed=False)
    place = place_of_key[key_of.ravel()]
    seen = np.unique(np.stack([place, which[cand]], axis=1), axis=0)  # (place, frame), each once
    frames_seen = np.bincount(seen[:, 0], minlength=n)
    first, last = np.full(n, np.inf), np.full(n, -np.inf)
    np.minimum.at(first, seen[:, 0], when[seen[:, 1]])
    np.maximum.at(last, seen[:, 0], when[seen[:, 1]])
    static = (frames_seen >= need) & (last - first >= MIN_SPAN_S)
    size = np.bincount(place, minlength=n)
    x = np.bincount(place, weights=xy[cand, 0], minlength=n) / np.maximum(size, 1)
    y = np.bincount(place, weights=xy[cand, 1], minlength=n) / np.maximum(size, 1)
    return x[static], y[static]


def load_static_spots(path: Path, shape: tuple[int, int]) -> StaticSpots:
    """The places saved at ``path`` for frames of ``shape``; ValueError (naming the file and why) when the file is
    unreadable, of another version, or of another frame size (another camera, or the same one binned)."""
    try:
        with np.load(Path(path), allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a static-places file ({exc})") from None
    need = {"version", "shape", "samples", "sampled", *(name.lstrip("_") for name in _STATE)}
    if missing := sorted(need - set(data)):
        raise ValueError(f"{path}: no {', '.join(missing)} in the static-places file")
    if int(data["version"]) != FILE_VERSION:
        raise ValueError(f"{path}: static-places file version {int(data['version'])}, this skyedge reads {FILE_VERSION}")
    if tuple(int(v) for v in data["shape"]) != tuple(shape):
        raise ValueError(f"{path}: learnt on {tuple(int(v) for v in data['shape'])} frames, these are {tuple(shape)}")
    sizes = {len(data[name.lstrip("_")]) for name in _STATE}
    if len(sizes) != 1:
        raise ValueError(f"{path}: its arrays differ in length ({sorted(sizes)})")
    spots = StaticSpots()
    for name in _STATE:
        setattr(spots, name, np.asarray(data[name.lstrip("_")], getattr(spots, name).dtype))
    spots._samples, spots._sampled = int(data["samples"]), float(data["sampled"])
    return spots
