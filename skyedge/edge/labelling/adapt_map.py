"""``skyedge adapt``'s second fit: the cloud-map head refitted to the site's camera from frame labels or painted
cloud, in numpy.

Why: on the real development camera (docs/results.md, "The cloud head refitted"), a package that never saw the
camera carried the camera's cloud in its backbone's features while the head it shipped with did not read it: a
head refitted from 5 clear and 5 overcast frame-labelled frames ranked cloudy frames above clear ones with AUC
0.76-0.91 (median 0.85), the shipped head 0.70.

How:

1. the feature map the cloud head reads (:func:`head_surgery.map_head_input`) is taken from the package's FP32
   graph for every labelled frame, and each map cell's share of sky from the prepared frame;
2. frame labels become cell targets: every sky cell of a clear or moonlit frame is clear, every sky cell of a
   cloudy frame is cloud; aurora, day and classes the model does not know say nothing about cloud and are left
   out. A cell counts by its share of sky, and the clear and the cloudy side count alike. A frame with its cloud
   painted (:mod:`skyedge.painted_cloud`, any class) gives each cell its painted cloud fraction instead, counted by its
   share of judged sky;
3. one logistic unit per cell, shared by all cells (a 1 x 1 convolution), is fitted on standardised features with
   an L2 penalty by Newton's method; the standardisation is folded into the weights;
4. frame labels say nothing about how much of a frame is cloud, so the fitted probabilities are not cover: on the
   real camera, clear frames' maps read 23-33% and cloudy ones 48-65%, all beyond the check's default 10% limit.
   Where every frame used is painted, the sides are not balanced and the head is kept as fitted: its cover reads
   as cloud fraction (scaling and shifting its logits to bring each frame's cover nearest its painted cover
   changed nothing on the real camera: docs/results.md). Otherwise the head's bias is shifted so that the limit
   falls between the site's clear and cloudy frames: the middle of the widest run of shifts that puts the most
   frames (each side counting alike) on their side of it, judged on cross-validated maps (each frame's map from a
   head fitted without it);
5. the report gives each frame's reading within the check's zenith rings, as shipped and refitted (cross-validated,
   at the chosen shift: the shift is chosen on the same maps, so the refitted figure leans optimistic), and for
   painted frames the median difference of their cover from the painted one. Whether the refit replaces the
   shipped head is the caller's choice: on the real camera it did more harm than good to a head trained on the
   camera's polygons, though it read these few frames better (docs/results.md).
"""

from __future__ import annotations

import numpy as np

from skyedge.edge.cloud_map import CloudMapper
from skyedge.edge.config_checks import ChecksSection
from skyedge.edge.labelling.cloud_masks import cell_cloud, prepared

CLEAR_SIDE = ("clear", "moon")
CLOUD_SIDE = ("cloudy",)
L2 = 1.0  # on standardised features, against about half a cell's worth of loss per cell on each side
NEWTON_STEPS = 50
FOLDS = 10
SHIFTS = np.round(np.arange(-8.0, 8.0001, 0.1), 1)  # bias shifts tried (logits)


def cloud_targets(labels: list[str]) -> np.ndarray:
    """Per frame: 0 (clear side), 1 (cloudy) or NaN (says nothing about cloud)."""
    return np.array([0.0 if c in CLEAR_SIDE else 1.0 if c in CLOUD_SIDE else np.nan for c in labels])


def cell_sky(valid: np.ndarray, map_shape: tuple[int, int]) -> np.ndarray:
    """(N, h, w) share of each map cell that shows sky, from the prepared frames' sky (N, H, W)."""
    import cv2

    h, w = map_shape
    return np.stack([cv2.resize(v.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) for v in valid])


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(t, -30.0, 30.0)))


def newton_logistic(a: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float, steps: int = NEWTON_STEPS) -> np.ndarray:
    """Coefficients of a sample-weighted logistic regression on the design matrix ``a`` (intercept column first, not
    penalised; the rest L2-penalised by ``l2``), by Newton's method."""
    penalty = l2 * np.eye(a.shape[1])
    penalty[0, 0] = 0.0
    beta = np.zeros(a.shape[1])
    for _ in range(steps):
        p = _sigmoid(a @ beta)
        grad = a.T @ (w * (p - y)) + penalty @ beta
        hess = (a * (w * p * (1 - p))[:, None]).T @ a + penalty + 1e-9 * np.eye(a.shape[1])
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def fit_map_head(features: np.ndarray, targets: np.ndarray, weights: np.ndarray, balance: bool = True) -> tuple[np.ndarray, float]:
    """(weight (C,), bias) of the logistic cell head fitted on ``features`` (N, C, h, w) to each cell's cloud target
    (N, h, w; a frame label's 0 or 1, or a painted fraction), each cell weighted by ``weights`` (N, h, w: its share
    of sky, or of judged sky). ``balance``: the clear and the cloudy side weigh alike (frame labels: how many frames
    each side has is the labeller's choice, not the sky's)."""
    x = features.transpose(0, 2, 3, 1).reshape(-1, features.shape[1]).astype(np.float64)
    y = targets.reshape(-1).astype(np.float64)
    w = weights.reshape(-1).astype(np.float64)
    keep = (w > 0) & ~np.isnan(y)
    x, y, w = x[keep], y[keep], w[keep]
    if balance:  # each side weighs half the cells, however many frames it has
        cloud = y >= 0.5
        for side in (~cloud, cloud):
            w[side] *= 0.5 * w.sum() / max(w[side].sum(), 1e-9)
    mu, sd = x.mean(0), x.std(0) + 1e-6
    beta = newton_logistic(np.hstack([np.ones((len(x), 1)), (x - mu) / sd]), y, w, L2)
    weight = beta[1:] / sd
    return weight, float(beta[0] - (mu * weight).sum())


def logits(features: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    """(N, 1, h, w) logits of the fitted head."""
    return (np.einsum("nchw,c->nhw", features, weight) + bias)[:, None]


def predict(features: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    """(N, 1, h, w) cloud maps of the fitted head, as the rewritten graphs compute them."""
    return _sigmoid(logits(features, weight, bias))


def covers(maps: np.ndarray, valid: np.ndarray, shapes: list[tuple[int, int]], preprocess, zenith_deg: float) -> np.ndarray:
    """Each frame's cloud fraction within ``zenith_deg`` of the zenith, as the pipeline's check reads it (default
    geometry)."""
    mapper = CloudMapper(preprocess)
    fractions = [
        mapper.report(m, shape, v).clear_within(zenith_deg) for m, shape, v in zip(maps, shapes, valid, strict=True)
    ]
    return np.array([np.nan if f is None else f for f in fractions])


def cross_validated(features: np.ndarray, targets: np.ndarray, weights: np.ndarray, balance: bool = True) -> np.ndarray:
    """Each frame's logits (N, 1, h, w) from a head fitted on the other folds' frames (folds of whole frames)."""
    folds = np.arange(len(targets)) % min(FOLDS, len(targets))
    out = np.zeros((len(targets), 1, *features.shape[2:]))
    for f in np.unique(folds):
        train = folds != f
        fit = fit_map_head(features[train], targets[train], weights[train], balance)
        out[~train] = logits(features[~train], *fit)
    return out


def _balanced(cover: np.ndarray, target: np.ndarray, max_cover: float) -> float:
    """The share of frames on their side of the limit, each side counting alike (frames with no sky seen left out)."""
    seen = ~np.isnan(cover)
    cloudy, target = 100 * cover[seen] > max_cover, target[seen]
    return 0.5 * float((~cloudy[target == 0]).mean() + cloudy[target == 1].mean())


def choose_shift(cv_logits: np.ndarray, target: np.ndarray, read, max_cover: float) -> float:
    """The bias shift that puts the check's limit between the clear and the cloudy frames (the middle of the
    widest run of best shifts); ``read``: maps -> each frame's cover."""
    scores = np.array([_balanced(read(_sigmoid(cv_logits + s)), target, max_cover) for s in SHIFTS])
    best = np.flatnonzero(scores >= scores.max() - 1e-9)
    runs = np.split(best, np.flatnonzero(np.diff(best) > 1) + 1)
    widest = max(runs, key=len)
    return float(SHIFTS[widest].mean())


def _median(values: np.ndarray) -> float | None:
    values = values[~np.isnan(values)]
    return round(100 * float(np.median(values)), 1) if len(values) else None


def _summary(cover: np.ndarray, target: np.ndarray, max_cover: float) -> dict:
    clear, cloudy = cover[target == 0], cover[target == 1]
    right = np.concatenate([100 * clear <= max_cover, 100 * cloudy > max_cover])
    return {
        "clear_side_cover_median": _median(clear),
        "cloudy_cover_median": _median(cloudy),
        "on_the_right_side_of_the_limit": round(float(right.mean()), 3) if len(right) else None,
        "balanced": round(_balanced(cover, target, max_cover), 3) if len(clear) and len(cloudy) else None,
    }


def cell_targets(target, painted, valid, preprocess, map_shape) -> tuple[np.ndarray, np.ndarray, list]:
    """(targets (N, h, w), weights (N, h, w), each frame's judged sky (H, W) where it was painted and judges some sky,
    else None): a painted frame's cells by their painted cloud fraction and judged sky, the others by their frame
    target (:func:`cloud_targets`) over their sky."""
    sky = cell_sky(valid, map_shape)
    targets = np.repeat(target[:, None, None], sky[0].size, axis=1).reshape(sky.shape)
    weights, judged = sky.copy(), [None] * len(target)
    for i, truth in enumerate(painted):
        if truth is None:
            continue
        cloud, known = prepared(truth, preprocess, valid[i])
        fraction, share = cell_cloud(cloud, known, map_shape)
        if share.sum() > 0:
            targets[i], weights[i], judged[i] = fraction, np.where(np.isnan(fraction), 0.0, share), known
    return targets, weights, judged


def refit_map(
    features, shipped, labels, valid, shapes, preprocess, checks: ChecksSection | None = None, painted=None
) -> tuple[tuple[np.ndarray, float], dict]:
    """((weight, bias), report) for labelled frames with ``features`` (N, C, h, w) and the parent's maps
    ``shipped`` (N, 1, h, w), placed for the pipeline's ``checks`` (``cloud_map_max_cover`` within
    ``cloud_map_zenith_deg``; default: the check's defaults); ``painted``: each frame's painted cloud truth or
    None (:mod:`skyedge.painted_cloud`). Where every frame used is painted, the head reads cloud fraction and is not shifted.
    The caller has checked both sides have frames."""
    checks = checks or ChecksSection()
    limit, zenith = checks.cloud_map_max_cover, checks.cloud_map_zenith_deg
    painted = list(painted) if painted is not None else [None] * len(labels)
    target = cloud_targets(labels)
    targets, weights, judged = cell_targets(target, painted, valid, preprocess, features.shape[2:])
    was_painted = np.array([j is not None for j in judged])
    used = was_painted | ~np.isnan(target)
    f, cells, w, v = features[used], targets[used], weights[used], valid[used]
    t, by_paint = target[used], was_painted[used]
    s = [shape for shape, u in zip(shapes, used, strict=True) if u]

    def read(maps: np.ndarray) -> np.ndarray:
        return covers(maps, v, s, preprocess, zenith)

    fraction_scale = bool(by_paint.all())
    weight, bias = fit_map_head(f, cells, w, balance=not fraction_scale)
    cv = cross_validated(f, cells, w, balance=not fraction_scale)
    shift = 0.0 if fraction_scale else choose_shift(cv, t, read, limit)
    placed = _sigmoid(cv + shift)
    report = {
        "frames": {"clear_side": int((t == 0).sum()), "cloudy": int((t == 1).sum()), "painted": int(by_paint.sum())},
        "check": {"cloud_map_max_cover": limit, "cloud_map_zenith_deg": zenith},
        "scale": "cloud fraction (every frame painted)" if fraction_scale else "placed for the check's limit",
        "bias_shift": round(shift, 2),
        "before": _summary(read(shipped[used]), t, limit),
        "after_cross_validated": _summary(read(placed), t, limit),
    }
    if by_paint.any():
        idx = np.flatnonzero(by_paint)
        judged_sky = np.stack([j for j in judged if j is not None])  # the painted frames, all of them used
        shapes_painted = [s[i] for i in idx]
        truth = covers(np.nan_to_num(cells[idx])[:, None], judged_sky, shapes_painted, preprocess, zenith)

        def error(maps: np.ndarray) -> float | None:  # over each frame's judged sky, as the check reads a map
            return _median(np.abs(covers(maps, judged_sky, shapes_painted, preprocess, zenith) - truth))

        report["painted_cover_error_points"] = {"before": error(shipped[used][idx]), "after_cross_validated": error(placed[idx])}
    return (weight, bias + shift), report


def with_map_features(fp32_path) -> tuple[bytes, str]:
    """(the FP32 graph with the feature map its cloud head reads added as an output, serialised; that tensor's name),
    so one run gives the parent's answers and the features."""
    import onnx

    from skyedge.edge.labelling.head_surgery import map_head_input

    model = onnx.load(str(fp32_path))
    name = map_head_input(model)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString(), name
