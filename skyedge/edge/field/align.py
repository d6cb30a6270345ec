"""Aligning an epoch to the reference on real nights: drifts of hundreds of pixels, a small rotation, a meridian
flip, frames with few stars.

Star lists are matched as astroalign does (Beroiz et al. 2020): triangles of each bright star and its nearest
neighbours, described by two side ratios that do not change under a similarity transform (shift, rotation,
scale, and a flip when the ratios are taken without orientation), are paired by a KD-tree; each pairing
proposes a transform, and the one most star pairs agree with (within ``TOLERANCE_PX``) wins and is refined by
least squares on all of them (RANSAC). No library is added for it: astroalign would bring scikit-image and
sep onto the Jetson for these hundred lines of numpy and scipy.

:class:`Alignment` maps frame pixels onto the reference grid (a 2x3 affine matrix) and carries its quality:
the stars matched and their residual in pixels. An epoch that cannot be aligned gets None, never a guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

TRIANGLE_STARS = 40  # brightest stars that form triangles
NEIGHBOURS = 5  # each star's triangles use its nearest neighbours
TOLERANCE_PX = 2.0  # a star pair agrees with a transform within this
MIN_MATCHED = 6  # fewer agreeing stars: not aligned
ENOUGH_SHARE = 0.3  # this share of the shorter star list agreeing ends the search
GUESS_REACH_PX = 15.0  # the previous epoch's transform is tried for drifts up to this since then ...
GUESS_MAX_RESIDUAL_PX = 0.35  # ... and kept only when it fits this well (else the stars are matched afresh)
SHIFT_PREFERRED = 1.15  # a pure shift whose residual is within this factor of the similarity's is the answer


@dataclass(frozen=True)
class Alignment:
    """Frame pixel (x, y) -> reference pixel: ``matrix @ [x, y, 1]``; how many stars agree, their rms residual."""

    matrix: np.ndarray  # (2, 3)
    matched: int
    residual_px: float

    @classmethod
    def identity(cls, matched: int = 0, residual_px: float = 0.0) -> Alignment:
        return cls(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]), matched, residual_px)

    @property
    def shift(self) -> tuple[float, float]:
        """The translation part (what moves the frame's origin onto the reference grid)."""
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.matrix[1, 0], self.matrix[0, 0]))

    @property
    def flipped(self) -> bool:
        return float(np.linalg.det(self.matrix[:, :2])) < 0

    @property
    def is_translation(self) -> bool:
        return bool(np.allclose(self.matrix[:, :2], np.eye(2), atol=1e-6))

    def to_reference(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.matrix
        return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]

    def to_frame(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Reference grid positions -> this frame's pixels (where stamps are cut, on the frame as taken)."""
        inverse = np.linalg.inv(np.vstack([self.matrix, [0.0, 0.0, 1.0]]))[:2]
        return inverse[0, 0] * x + inverse[0, 1] * y + inverse[0, 2], inverse[1, 0] * x + inverse[1, 1] * y + inverse[
            1, 2
        ]

    def message(self) -> dict:
        """The field message's ``alignment``."""
        dx, dy = self.shift
        return {
            "dx": round(dx, 3),
            "dy": round(dy, 3),
            "rotation_deg": round(self.rotation_deg, 3),
            "flipped": self.flipped,
            "matched": self.matched,
            "residual_px": round(self.residual_px, 3),
        }


def _triangles(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(invariants (T, 2), vertex indices (T, 3)) for triangles of each star and pairs of its nearest neighbours.
    Vertices are ordered by the opposite side's length, so matched triangles match vertex by vertex."""
    from itertools import combinations

    from scipy.spatial import cKDTree

    k = min(NEIGHBOURS + 1, len(points))
    _, near = cKDTree(points).query(points, k)
    seen, tris = set(), []
    for row in near:
        for a, b in combinations(row[1:], 2):
            tri = tuple(sorted((int(row[0]), int(a), int(b))))
            if tri not in seen:
                seen.add(tri)
                tris.append(tri)
    tris = np.array(tris, dtype=np.int64)
    p = points[tris]  # (T, 3, 2)
    sides = np.stack(
        [
            np.linalg.norm(p[:, 1] - p[:, 2], axis=1),
            np.linalg.norm(p[:, 0] - p[:, 2], axis=1),
            np.linalg.norm(p[:, 0] - p[:, 1], axis=1),
        ],
        axis=1,
    )  # side i is opposite vertex i
    order = np.argsort(sides, axis=1)
    sides = np.take_along_axis(sides, order, axis=1)
    tris = np.take_along_axis(tris, order, axis=1)
    ok = sides[:, 0] > 1e-3
    invariants = np.stack(
        [sides[:, 2] / np.maximum(sides[:, 1], 1e-9), sides[:, 1] / np.maximum(sides[:, 0], 1e-9)], axis=1
    )
    return invariants[ok], tris[ok]


def _similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, shift; a reflection allowed) mapping src onto dst."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, s, vt = np.linalg.svd(b.T @ a)
    rot = u @ vt
    scale = s.sum() / max((a**2).sum(), 1e-12)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def _agreeing(matrix: np.ndarray, src: np.ndarray, tree, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    moved = src @ matrix[:, :2].T + matrix[:, 2]
    dist, idx = tree.query(moved, distance_upper_bound=TOLERANCE_PX)
    ok = np.isfinite(dist)
    return np.flatnonzero(ok), idx[ok]


def align(
    frame_stars: np.ndarray, reference_stars: np.ndarray, max_scale_change: float = 0.05, guess: np.ndarray | None = None
) -> Alignment | None:
    """The transform putting ``frame_stars`` (N, 2, brightest first) onto ``reference_stars``; None when fewer than
    :data:`MIN_MATCHED` stars agree on one. ``guess`` (a 2x3 matrix, e.g. the previous epoch's) is tried first:
    when enough stars agree with it, no triangles are matched (a tracked telescope's next frame is close)."""
    from scipy.spatial import cKDTree

    all_src = np.asarray(frame_stars, np.float64)
    all_dst = np.asarray(reference_stars, np.float64)
    tree = cKDTree(all_dst) if len(all_dst) else None
    # Enough agreement to stop searching: a good share of the stars both lists could have in common.
    enough = max(3 * MIN_MATCHED, int(ENOUGH_SHARE * min(len(all_src), len(all_dst))))
    if guess is not None and tree is not None and len(all_src) >= MIN_MATCHED:
        found = _from_guess(guess, all_src, all_dst, tree)
        if found is not None and found.matched >= enough and found.residual_px <= GUESS_MAX_RESIDUAL_PX:
            return found
    src = all_src[:TRIANGLE_STARS]
    dst = np.asarray(reference_stars, np.float64)[:TRIANGLE_STARS]
    if len(src) < 3 or len(dst) < 3:
        return None
    inv_s, tri_s = _triangles(src)
    inv_d, tri_d = _triangles(dst)
    if not len(inv_s) or not len(inv_d):
        return None
    candidates = cKDTree(inv_d).query_ball_point(inv_s, r=0.02)
    best, best_n = None, 0
    tried = 0
    for i, hits in enumerate(candidates):
        for j in hits:
            m = _similarity(src[tri_s[i]], dst[tri_d[j]])
            scale = math.sqrt(abs(np.linalg.det(m[:, :2])))
            if abs(scale - 1.0) > max_scale_change:
                continue  # the same telescope and camera: the plate scale does not change
            tried += 1
            si, di = _agreeing(m, all_src, tree, all_dst)
            if len(si) > best_n:
                best, best_n = (si, di), len(si)
            if tried > 2000 and best_n >= MIN_MATCHED * 3:
                break
        if tried > 4000:
            break
    if best is None or best_n < MIN_MATCHED:
        return None
    return _refined(all_src, all_dst, tree, *best)


def _from_guess(guess: np.ndarray, src: np.ndarray, dst: np.ndarray, tree) -> Alignment | None:
    """The guess corrected by the offset most nearest-neighbour pairs agree on (the drift since the guess was
    made, up to GUESS_REACH_PX), then refined."""
    moved = src @ guess[:, :2].T + guess[:, 2]
    dist, idx = tree.query(moved, distance_upper_bound=GUESS_REACH_PX)
    near = np.isfinite(dist)
    if near.sum() < MIN_MATCHED:
        return None
    offsets = dst[idx[near]] - moved[near]
    edges = np.arange(-GUESS_REACH_PX, GUESS_REACH_PX + 1.0)
    votes, _, _ = np.histogram2d(offsets[:, 0], offsets[:, 1], bins=(edges, edges))
    bx, by = np.unravel_index(int(votes.argmax()), votes.shape)
    peak = np.array([edges[bx] + 0.5, edges[by] + 0.5])
    close = np.linalg.norm(offsets - peak, axis=1) <= 1.5
    if close.sum() < MIN_MATCHED:
        return None
    corrected = guess.copy()
    corrected[:, 2] += offsets[close].mean(axis=0)
    si, di = _agreeing(corrected, src, tree, dst)
    return _refined(src, dst, tree, si, di) if len(si) >= MIN_MATCHED else None


def _refined(all_src: np.ndarray, all_dst: np.ndarray, tree, si: np.ndarray, di: np.ndarray) -> Alignment | None:
    """The transform fitted to the stars that agree, refitted to every star that agrees with it."""
    m = _similarity(all_src[si], all_dst[di])
    si, di = _agreeing(m, all_src, tree, all_dst)  # refined: everyone who agrees now
    if len(si) < MIN_MATCHED:
        return None
    m = _similarity(all_src[si], all_dst[di])
    residual = _rms(m, all_src[si], all_dst[di])
    # A tracked telescope mostly drifts: a rotation and scale fitted to a few noisy stars would move stamps by a
    # pixel at the frame's edges for nothing. The plain shift is kept unless the similarity fits clearly better.
    shift = np.hstack([np.eye(2), np.mean(all_dst[di] - all_src[si], axis=0)[:, None]])
    shift_residual = _rms(shift, all_src[si], all_dst[di])
    if shift_residual <= SHIFT_PREFERRED * residual + 0.02:
        return Alignment(shift, len(si), shift_residual)
    return Alignment(m, len(si), residual)


def _rms(matrix: np.ndarray, src: np.ndarray, dst: np.ndarray) -> float:
    moved = src @ matrix[:, :2].T + matrix[:, 2]
    return float(np.sqrt(np.mean(np.sum((moved - dst) ** 2, axis=1))))


def warp(image: np.ndarray, alignment: Alignment, shape: tuple[int, int]) -> np.ndarray:
    """``image`` resampled onto the reference grid of ``shape`` (bilinear), NaN where no data came in."""
    import cv2

    return cv2.warpAffine(
        image.astype(np.float32),
        alignment.matrix.astype(np.float64),
        (shape[1], shape[0]),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=float("nan"),
    )
