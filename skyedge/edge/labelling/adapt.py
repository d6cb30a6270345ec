"""``skyedge adapt``: a model package refitted to a site's own labelled frames, on the device, without torch.

The frame models classify by Mahalanobis distance in a learned embedding (Endo & Matsumoto 2022), so a new
camera, or a new class, is enrolled by refitting the head, not the network:

1. the labelled frames (an image folder, ``DIR/<class>/<file>``) are prepared exactly as the edge prepares
   frames (with ``pipeline``, as that pipeline does: its Bayer pattern, dark, flat and site mask) and embedded by
   the package's own FP32 graph (ONNX Runtime);
2. each class with frames gets its mean from them; classes without keep the mean training gave them; names the
   model does not know are added as classes. The shared covariance mixes training's (read from the package's
   head statistics) with the new frames' within-class scatter (up to half and half, when there are enough
   frames to estimate it), then is shrunk toward a scaled identity;
3. the open-set threshold becomes the larger of the parent's and the 99.5% quantile of the new frames'
   leave-one-out distances, so the site's own sky is not rejected;
4. where the package has a cloud map and the frames include clear or moonlit ones and cloudy ones (at least
   ``min_per_class`` of each side), a cloud head is refitted to them (:mod:`adapt_map`; frames with their cloud
   painted, :mod:`skyedge.painted_cloud`, say where the cloud is) and the report compares it with the shipped one on these
   frames; it replaces the shipped head only when asked (``refit_map_head``,
   ``--refit-map-head``): on the real development camera it helped a package that never saw the camera and harmed
   one trained on the camera's polygons (docs/results.md, "The cloud head refitted by adapt");
5. every precision file of the package (FP32, FP16, INT8 for TensorRT and for the CPU) gets the new heads
   (:mod:`head_surgery`: the old head's nodes cut off at its input, the new one appended in float32);
6. a report gives leave-one-out accuracy on the site's frames before and after, the map's cross-validated reading
   of them before and after, and each precision's agreement with FP32. The new card records the parent's hash,
   the data's hash and the counts. A TensorRT engine built from the parent no longer matches (its sidecar names
   the parent ONNX file's hash) and is refused. The parent's quantization record (report.json) comes along: the
   INT8 files' feature extractor is the parent's, 7-bit or 8-bit weights as calibrated.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skyedge.edge.config import StartupError
from skyedge.edge.config_checks import ChecksSection
from skyedge.edge.labelling import adapt_map
from skyedge.edge.labelling.adapt_report import markdown
from skyedge.edge.labelling.head_surgery import HeadSurgeryError, replace_class_head, replace_map_head, save_checked
from skyedge.edge.preparation import FramePreparation
from skyedge.errors import SkyedgeError
from skyedge.head_statistics import HeadStatistics, precision_cholesky, read_head_statistics, write_head_statistics
from skyedge.imageio import read_frame
from skyedge.labelled_folder import labelled_files
from skyedge.masks import MaskError as SiteMaskError
from skyedge.masks import card_mask
from skyedge.model_card import Adaptation, ModelCard, read_card, write_card
from skyedge.painted_cloud import MaskError, mask_path, read_mask
from skyedge.precisions import report_section
from skyedge.preprocess import NO_SKY
from skyedge.shards import sha256_file

log = logging.getLogger(__name__)

MIN_PER_CLASS = 3
THRESHOLD_QUANTILE = 0.995
SHRINKAGE = 0.05  # of the pooled covariance toward a scaled identity, as training does
NEW_COVARIANCE_WEIGHT = 0.5  # the most the site's own within-class scatter counts against training's


class AdaptError(SkyedgeError, ValueError):
    """Input adapt cannot use: says which file, folder or class."""


def labelled_frames(folder: Path) -> list[tuple[Path, str]]:
    """``(file, class)`` for every frame in ``folder/<class>/`` (:mod:`skyedge.labelled_folder`), sorted."""
    if not folder.is_dir():
        raise AdaptError(f"--data: {folder} is not a folder of class folders (DIR/<class>/<file>)")
    items = labelled_files(folder)
    if not items:
        raise AdaptError(f"--data: {folder} has no images in class folders (DIR/<class>/<file>)")
    return items


def data_sha256(folder: Path, items: list[tuple[Path, str]]) -> str:
    """One hash over the labelled data: each file's (and painted mask's) path below the folder and its bytes."""
    h = hashlib.sha256()
    for path in (p for frame, _ in items for p in (frame, mask_path(frame)) if p.is_file()):
        h.update(str(path.relative_to(folder)).encode())
        h.update(bytes.fromhex(sha256_file(path)))
    return h.hexdigest()


def head_outputs(z: np.ndarray, means: np.ndarray, chol: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Mahalanobis head in numpy: probabilities (N, K) and the minimum distance (N,)."""
    y = z @ chol
    centres = means @ chol
    d2 = np.maximum((y * y).sum(1, keepdims=True) - 2.0 * y @ centres.T + (centres**2).sum(1), 0.0)
    logits = -0.5 * d2
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), np.sqrt(d2.min(axis=1) + 1e-12)


def refit(stats: HeadStatistics, z: np.ndarray, y: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """New class means (K, D), pooled shrunk covariance (D, D) and counts (K,) from the parent's statistics and
    the embeddings ``z`` with class indices ``y`` (classes >= the parent's are new)."""
    d = z.shape[1]
    means = np.zeros((k, d))
    means[: len(stats.means)] = stats.means
    counts = np.zeros(k, dtype=np.int64)
    counts[: len(stats.counts)] = stats.counts
    scatter = np.zeros((d, d))
    present = np.unique(y)
    for c in present:
        zc = z[y == c]
        means[c] = zc.mean(axis=0)  # the site's camera: its own frames decide where the class lies
        centred = zc - means[c]
        scatter += centred.T @ centred
        counts[c] += len(zc)
    dof_new = max(len(z) - len(present), 0)
    # The site's camera may spread a class differently from the simulator's: its scatter gets up to half the
    # weight, in proportion to how well its frames can estimate a D x D covariance (2 D degrees of freedom).
    weight = NEW_COVARIANCE_WEIGHT * min(1.0, dof_new / (2.0 * d))
    cov = stats.covariance if weight == 0 else (1 - weight) * stats.covariance + weight * scatter / dof_new
    cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.trace(cov) / d * np.eye(d)
    return means, cov, counts


def _leave_one_out(stats, z, y, k) -> tuple[np.ndarray, np.ndarray]:
    """Each frame's prediction and distance from a head refitted without it."""
    pred, dist = np.zeros(len(z), dtype=np.int64), np.zeros(len(z))
    for i in range(len(z)):
        keep = np.arange(len(z)) != i
        means, cov, _ = refit(stats, z[keep], y[keep], k)
        if not np.any(y[keep] == y[i]) and y[i] >= len(stats.means):
            means[y[i]] = np.inf  # a new class whose only frame is held out cannot be predicted
        finite = np.isfinite(means).all(axis=1)
        p, dmin = head_outputs(z[i : i + 1], np.where(finite[:, None], means, 0.0), precision_cholesky(cov))
        p[:, ~finite] = 0.0
        pred[i], dist[i] = int(p.argmax()), float(dmin[0])
    return pred, dist


# ------------------------------------------------------------------------------------------- the command


def _session(model: Path | bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model
    return ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])


def _run(session, card: ModelCard, x: np.ndarray, extra: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The card's outputs by role (and any ``extra`` tensors by name) for inputs ``x``."""
    name = next(t.name for t in card.inputs if t.role == "image")
    wanted = {t.role: t.name for t in card.outputs}
    outs = session.run([*wanted.values(), *extra], {name: x})
    return dict(zip([*wanted, *extra], outs, strict=True))


def _run_parent(package: Path, card: ModelCard, x: np.ndarray) -> tuple[dict, np.ndarray | None, str | None]:
    """The parent FP32 graph's outputs by role on ``x``, and the feature map its cloud head reads (None, and why,
    where there is none adapt can refit), from one run."""
    path = package / card.files["fp32"]
    if not any(t.role == "cloud_map" for t in card.outputs):
        return _run(_session(path), card, x), None, "the package has no cloud map"
    try:
        graph, features = adapt_map.with_map_features(path)
    except HeadSurgeryError as exc:  # a map from some other head: left as it is, the class head still adapts
        return _run(_session(path), card, x), None, f"{card.files['fp32']}: {exc}"
    out = _run(_session(graph), card, x, extra=(features,))
    return out, out.pop(features).astype(np.float64), None


def _prepare(items, card: ModelCard, package: Path, pipeline=None):
    """(model inputs (N, C, H, W), the sky each shows (N, H, W), each frame's shape, each frame's painted cloud
    truth or None); ``pipeline``: the deployment's pipeline section whose preparation applies."""
    model_mask = card_mask(card, package)
    try:
        prep = (
            FramePreparation.of_pipeline(pipeline, card.preprocess, model_mask) if pipeline is not None
            else FramePreparation(card.preprocess, model_mask)
        )
    except (StartupError, SiteMaskError) as exc:
        raise AdaptError(f"pipeline {pipeline.camera}: {exc}") from None
    frames, skies, shapes, painted = [], [], [], []
    for path, _ in items:
        try:
            image = read_frame(path)[0]
            x, sky = prep.prepare(image)
        except (OSError, ValueError) as exc:
            raise AdaptError(f"{path}: cannot use this frame ({exc})") from None
        frames.append(x)
        skies.append(sky)
        shapes.append(image.shape[:2])
        try:
            painted.append(read_mask(mask_path(path), image.shape[:2]) if mask_path(path).is_file() else None)
        except MaskError as exc:
            raise AdaptError(str(exc)) from None
    return np.stack(frames).astype(np.float32), np.stack(skies), shapes, painted


def _sides(labels, painted) -> dict[str, int]:
    """Frames on each side of the map's fit: by their painted cloud (a frame mostly cloud is on the cloudy side),
    else by their label."""
    target = adapt_map.cloud_targets(labels)
    for i, truth in enumerate(painted):
        judged = truth[truth != NO_SKY] if truth is not None else ()
        if len(judged):
            target[i] = float(np.mean(judged == 250) >= 0.5)
    return {"clear side": int((target == 0).sum()), "cloudy": int((target == 1).sum())}


def _map_refit(parent: dict, features, why: str | None, valid, shapes, labels, painted, min_per_class: int, wanted: bool, pre, checks):
    """((weight, bias) to write or None, the report's ``cloud_map`` entry): a cloud head refitted from ``features``
    where it can be, written where ``wanted``."""
    if "cloud_map" not in parent:
        return None, {"refitted": False, "why": why}
    sides = _sides(labels, painted)
    short = [f"{side} {n}" for side, n in sides.items() if n < min_per_class]
    if short:
        why = (
            f"too few frames to refit it ({', '.join(short)}; at least {min_per_class} clear or moon and cloudy, "
            "or painted mostly clear and mostly cloud)"
        )
    if features is None or short:
        return None, {"refitted": False, "why": why}
    head, report = adapt_map.refit_map(
        features, parent["cloud_map"].astype(np.float64), labels, valid, shapes, pre, checks, painted
    )
    if not wanted:
        return None, {
            "refitted": False,
            "why": "kept as shipped; --refit-map-head writes the refit compared below",
            **report,
        }
    return head, {"refitted": True, **report}


def adapt_package(
    package: str | Path,
    data: str | Path,
    out: str | Path,
    name: str | None = None,
    min_per_class: int = MIN_PER_CLASS,
    refit_map_head: bool = False,
    checks: ChecksSection | None = None,
    pipeline=None,
) -> dict:
    """Refit ``package``'s head (and its cloud head, with ``refit_map_head``) on the labelled frames in
    ``data``; write the new package to ``out``; return the report (also written as ``adapt.json`` and ``adapt.md``
    in ``out``). ``checks``: the pipeline's cross-checks, whose ``cloud_map`` limit a refitted map is placed for
    (default: the check's defaults); ``pipeline``: the deployment's pipeline section the frames come from, prepared
    as it prepares them (default: as the model card alone says)."""
    started = time.perf_counter()
    package, data, out = Path(package), Path(data), Path(out)
    card = read_card(package)
    if card.task != "frame" or card.metric_head.kind != "mahalanobis":
        raise AdaptError(
            f"{package}: adapt refits a Mahalanobis frame head; this is a {card.task} model with "
            f"a {card.metric_head.kind} head"
        )
    if card.metric_head.statistics is None or not (package / card.metric_head.statistics).is_file():
        raise AdaptError(
            f"{package}: no head statistics in the package (exported before they were written?); "
            "re-train or re-export it with this version of skyedge"
        )
    if out.resolve() == package.resolve():
        raise AdaptError(f"--out: {out} is the parent package; adapt writes a new package and never changes it")
    stats = read_head_statistics(package / card.metric_head.statistics)
    items = labelled_frames(data)
    counts = Counter(label for _, label in items)
    few = {c: n for c, n in counts.items() if n < min_per_class}
    if few:
        detail = ", ".join(f"'{c}' has {n}" for c, n in sorted(few.items()))
        raise AdaptError(f"--data {data}: too few labelled frames ({detail}); at least {min_per_class} per class")
    added = sorted(c for c in counts if c not in card.classes)
    classes = list(card.classes) + added
    y = np.array([classes.index(label) for _, label in items])
    x, valid, shapes, painted = _prepare(items, card, package, pipeline)
    parent, map_features, no_map = _run_parent(package, card, x)
    labels = [c for _, c in items]
    map_fit, map_report = _map_refit(
        parent, map_features, no_map, valid, shapes, labels, painted, min_per_class, refit_map_head, card.preprocess, checks
    )
    z = parent["embedding"].astype(np.float64)
    before = parent["probabilities"].argmax(axis=1)
    threshold0 = card.metric_head.unknown_threshold
    loo_pred, loo_dist = _leave_one_out(stats, z, y, len(classes))
    means, cov, new_counts = refit(stats, z, y, len(classes))
    chol = precision_cholesky(cov)
    threshold = max(threshold0 or 0.0, float(np.quantile(loo_dist, THRESHOLD_QUANTILE)))

    out.mkdir(parents=True, exist_ok=True)
    new_files = dict(card.files)
    import onnx

    for file in card.files.values():
        model = replace_class_head(onnx.load(str(package / file)), card, means, chol)
        save_checked(model if map_fit is None else replace_map_head(model, card, *map_fit), out / file)
    statistics = card.metric_head.statistics
    write_head_statistics(out / statistics, means, cov, new_counts)
    extra = [f for f in card.sha256 if f not in card.files.values() and f != statistics]
    for f in extra:  # the mask and anything else the card vouches for travel unchanged
        shutil.copyfile(package / f, out / f)
    # Check what was written: FP32 reproduces the numpy head; every precision agrees with FP32.
    fp32_out = _run(_session(out / new_files["fp32"]), card.model_copy(update={"classes": classes}), x)
    p_ref, d_ref = head_outputs(z, means, chol)
    err = float(np.abs(fp32_out["probabilities"] - p_ref).max())
    if err > 1e-3 or not np.allclose(fp32_out["min_distance"], d_ref, rtol=1e-3, atol=1e-3):
        raise AdaptError(f"{out / new_files['fp32']}: the written head disagrees with its fit (max error {err:.2g})")
    if map_fit is not None:
        map_err = float(np.abs(fp32_out["cloud_map"] - adapt_map.predict(map_features, *map_fit)).max())
        if map_err > 1e-3:
            raise AdaptError(
                f"{out / new_files['fp32']}: the written cloud head disagrees with its fit (max error {map_err:.2g})"
            )
    agreement, map_differs = {}, {}
    for key, file in new_files.items():
        got = _run(_session(out / file), card, x)
        agreement[key] = float((got["probabilities"].argmax(axis=1) == fp32_out["probabilities"].argmax(axis=1)).mean())
        if map_fit is not None:
            map_differs[key] = round(float(np.abs(got["cloud_map"] - fp32_out["cloud_map"]).mean()), 4)
    if map_fit is not None:
        map_report["mean_difference_from_fp32"] = map_differs

    def per_class(pred):
        return {c: float((pred[y == i] == i).mean()) for i, c in enumerate(classes) if np.any(y == i)}

    report = {
        "parent": str(package),
        "data": str(data),
        "prepared_as": f"pipeline {pipeline.camera}" if pipeline is not None else "the model card",
        "frames": len(items),
        "counts": {c: int(counts.get(c, 0)) for c in classes},
        "added_classes": added,
        "before": {
            "accuracy": float((before == y).mean()),
            "per_class": per_class(before),
            "unrecognised_rate": float((parent["min_distance"] > threshold0).mean()) if threshold0 else None,
        },
        "after_leave_one_out": {
            "accuracy": float((loo_pred == y).mean()),
            "per_class": per_class(loo_pred),
            "unrecognised_rate": float((loo_dist > threshold).mean()),
        },
        "unknown_threshold": {"parent": threshold0, "adapted": threshold},
        "agreement_with_fp32": agreement,
        "cloud_map": map_report,
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "adapt.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "adapt.md").write_text(markdown(report))
    quantization = report_section(package, "quantization")
    if quantization is not None:
        # The INT8 files' feature extractor is the parent's as calibrated: its record travels with them, so that the
        # edge can still tell 8-bit weights from 7-bit ones (skyedge/cpu_int8.py). Their accuracy is adapt.json's.
        record = {"adapted_from": str(package), "quantization": quantization}
        (out / "report.json").write_text(json.dumps(record, indent=2) + "\n")
    files = {**{f: sha256_file(out / f) for f in new_files.values()}, statistics: sha256_file(out / statistics)}
    files.update({f: sha256_file(out / f) for f in extra})
    outputs = [
        t.model_copy(update={"shape": [t.shape[0], len(classes)]}) if t.role == "probabilities" else t
        for t in card.outputs
    ]
    new_card = card.model_copy(
        update={
            "name": name or f"{card.name}-adapted",
            "classes": classes,
            "outputs": outputs,
            "metric_head": card.metric_head.model_copy(update={"unknown_threshold": threshold}),
            "sha256": files,
            "adaptation": Adaptation(
                parent_sha256=sha256_file(package / card.files["fp32"]),
                parent_name=card.name,
                data_sha256=data_sha256(data, items),
                counts=report["counts"],
                added_classes=added,
                created=datetime.now(timezone.utc),
                report="adapt.json",
            ),
        }
    )
    write_card(json.loads(ModelCard.model_validate(new_card.model_dump()).model_dump_json()), out)
    log.info(
        "adapted %s on %d frames: accuracy %.3f before, %.3f after (leave-one-out) -> %s",
        card.name,
        len(items),
        report["before"]["accuracy"],
        report["after_leave_one_out"]["accuracy"],
        out,
    )
    return report
