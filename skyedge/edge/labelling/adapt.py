"""``skyedge adapt``: a model package refitted to a site's own labelled frames, on the device, without torch.

The frame models classify by Mahalanobis distance in a learned embedding (Endo & Matsumoto 2022), so a new
camera, or a new class, is enrolled by refitting the head, not the network:

1. the labelled frames (an image folder, ``DIR/<class>/<file>``) are prepared exactly as the edge prepares
   frames and embedded by the package's own FP32 graph (ONNX Runtime);
2. each class with frames gets its mean from them; classes without keep the mean training gave them; names the
   model does not know are added as classes. The shared covariance mixes training's (read from the package's
   head statistics) with the new frames' within-class scatter (up to half and half, when there are enough
   frames to estimate it), then is shrunk toward a scaled identity;
3. the open-set threshold becomes the larger of the parent's and the 99.5% quantile of the new frames'
   leave-one-out distances, so the site's own sky is not rejected;
4. every precision file of the package (FP32, FP16, INT8 for TensorRT and for the CPU) gets the new head: the
   old head's nodes are cut off at the ``embedding`` output and the new one (MatMul/Add/Mul/Max/ReduceSum/
   ReduceMin/Softmax/Sqrt, as export builds it) is appended, in float32;
5. a report gives leave-one-out accuracy on the site's frames before and after, and each precision's agreement
   with FP32. The new card records the parent's hash, the data's hash and the counts. A TensorRT engine built
   from the parent no longer matches (its sidecar names the parent ONNX file's hash) and is refused.
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

from skyedge.errors import SkyedgeError
from skyedge.head_statistics import HeadStatistics, precision_cholesky, read_head_statistics, write_head_statistics
from skyedge.imageio import FITS_SUFFIXES, RASTER_SUFFIXES, read_frame
from skyedge.masks import card_mask
from skyedge.model_card import Adaptation, ModelCard, read_card, write_card
from skyedge.preprocess import prepare_frame
from skyedge.shards import sha256_file

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = FITS_SUFFIXES + RASTER_SUFFIXES  # what read_frame reads, as the training loaders use
MIN_PER_CLASS = 3
THRESHOLD_QUANTILE = 0.995
SHRINKAGE = 0.05  # of the pooled covariance toward a scaled identity, as training does
NEW_COVARIANCE_WEIGHT = 0.5  # the most the site's own within-class scatter counts against training's


class AdaptError(SkyedgeError, ValueError):
    """Input adapt cannot use: says which file, folder or class."""


def labelled_frames(folder: Path) -> list[tuple[Path, str]]:
    """``(file, class)`` for every image in ``folder/<class>/``, sorted; hidden files and other files skipped."""
    if not folder.is_dir():
        raise AdaptError(f"--data: {folder} is not a folder of class folders (DIR/<class>/<file>)")
    items = [
        (f, d.name)
        for d in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        for f in sorted(d.iterdir())
        if f.is_file() and not f.name.startswith(".") and f.name.lower().endswith(IMAGE_SUFFIXES)
    ]
    if not items:
        raise AdaptError(f"--data: {folder} has no images in class folders (DIR/<class>/<file>)")
    return items


def data_sha256(folder: Path, items: list[tuple[Path, str]]) -> str:
    """One hash over the labelled data: each file's path below the folder and its bytes."""
    h = hashlib.sha256()
    for path, _ in items:
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


# ------------------------------------------------------------------------------------------- graph surgery


def _reduce(op: str, x: str, out: str, opset: int, keepdims: int):
    from onnx import helper

    # ReduceSum takes its axes as an input from opset 13, the other reductions from opset 18.
    if op == "ReduceSum" and opset >= 13 or opset >= 18:
        return [helper.make_node(op, [x, "adapt_axis1"], [out], keepdims=keepdims)]
    return [helper.make_node(op, [x], [out], axes=[1], keepdims=keepdims)]


def replace_head(src: Path, dst: Path, card: ModelCard, means: np.ndarray, chol: np.ndarray) -> None:
    """Write ``src`` with its head replaced by the Mahalanobis head (means, chol) on its ``embedding`` output."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    role = {t.role: t.name for t in card.outputs}
    emb, prob, dist = role["embedding"], role["probabilities"], role["min_distance"]
    kept_outputs = [o for o in graph.output if o.name not in (prob, dist)]
    batch = next(o for o in graph.output if o.name == prob).type.tensor_type.shape.dim[0]
    # Keep only what the remaining outputs need: the old head's nodes and weights fall away.
    needed, nodes = {o.name for o in kept_outputs}, []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            nodes.append(node)
            needed.update(i for i in node.input if i)
    nodes.reverse()
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    w = numpy_helper.from_array(chol.astype(np.float32), "adapt_w")
    centres = means @ chol
    ct = numpy_helper.from_array(np.ascontiguousarray(centres.T).astype(np.float32), "adapt_centres_t")
    norms = numpy_helper.from_array((centres**2).sum(1)[None, :].astype(np.float32), "adapt_centre_norms")
    consts = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "adapt_axis1"),
        numpy_helper.from_array(np.array(-2.0, dtype=np.float32), "adapt_minus2"),
        numpy_helper.from_array(np.array(-0.5, dtype=np.float32), "adapt_minus_half"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "adapt_zero"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "adapt_eps"),
    ]
    mk = helper.make_node
    head = [
        mk("MatMul", [emb, "adapt_w"], ["adapt_y"]),
        mk("Mul", ["adapt_y", "adapt_y"], ["adapt_yy"]),
        *_reduce("ReduceSum", "adapt_yy", "adapt_ysq", opset, 1),
        mk("MatMul", ["adapt_y", "adapt_centres_t"], ["adapt_cross"]),
        mk("Mul", ["adapt_cross", "adapt_minus2"], ["adapt_cross2"]),
        mk("Add", ["adapt_ysq", "adapt_cross2"], ["adapt_d2a"]),
        mk("Add", ["adapt_d2a", "adapt_centre_norms"], ["adapt_d2b"]),
        mk("Max", ["adapt_d2b", "adapt_zero"], ["adapt_d2"]),
        mk("Mul", ["adapt_d2", "adapt_minus_half"], ["adapt_logits"]),
        mk("Softmax", ["adapt_logits"], [prob], axis=1),
        *_reduce("ReduceMin", "adapt_d2", "adapt_min", opset, 0),
        mk("Add", ["adapt_min", "adapt_eps"], ["adapt_min_eps"]),
        mk("Sqrt", ["adapt_min_eps"], [dist]),
    ]
    used = {i for n in nodes for i in n.input}
    inits = [t for t in graph.initializer if t.name in used] + [w, ct, norms, *consts]
    k = means.shape[0]
    prob_out = helper.make_tensor_value_info(prob, TensorProto.FLOAT, [None, k])
    prob_out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    dist_out = helper.make_tensor_value_info(dist, TensorProto.FLOAT, [None])
    dist_out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    new_graph = helper.make_graph(
        nodes + head,
        graph.name,
        list(graph.input),
        [prob_out, dist_out, *kept_outputs],
        inits,
        value_info=[v for v in graph.value_info if v.name in used],
    )
    new_model = helper.make_model(new_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    new_model.producer_name = "skyedge adapt"
    onnx.checker.check_model(new_model)
    onnx.save(new_model, str(dst))


# ------------------------------------------------------------------------------------------- the command


def _session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _run(session, card: ModelCard, x: np.ndarray) -> dict[str, np.ndarray]:
    name = next(t.name for t in card.inputs if t.role == "image")
    wanted = {t.role: t.name for t in card.outputs}
    outs = session.run(list(wanted.values()), {name: x})
    return dict(zip(wanted, outs, strict=True))


def _prepare(items, card: ModelCard, package: Path) -> np.ndarray:
    mask = card_mask(card, package)
    frames = []
    for path, _ in items:
        try:
            image = read_frame(path)[0]
            frames.append(prepare_frame(image, card.preprocess, mask=mask.array(image.shape[:2]) if mask else None))
        except (OSError, ValueError) as exc:
            raise AdaptError(f"{path}: cannot use this frame ({exc})") from None
    return np.stack(frames).astype(np.float32)


def adapt_package(
    package: str | Path,
    data: str | Path,
    out: str | Path,
    name: str | None = None,
    min_per_class: int = MIN_PER_CLASS,
) -> dict:
    """Refit ``package``'s head on the labelled frames in ``data``; write the new package to ``out``; return
    the report (also written as ``adapt.json`` and ``adapt.md`` in ``out``)."""
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
    x = _prepare(items, card, package)
    parent = _run(_session(package / card.files["fp32"]), card, x)
    z = parent["embedding"].astype(np.float64)
    before = parent["probabilities"].argmax(axis=1)
    threshold0 = card.metric_head.unknown_threshold
    loo_pred, loo_dist = _leave_one_out(stats, z, y, len(classes))
    means, cov, new_counts = refit(stats, z, y, len(classes))
    chol = precision_cholesky(cov)
    threshold = max(threshold0 or 0.0, float(np.quantile(loo_dist, THRESHOLD_QUANTILE)))

    out.mkdir(parents=True, exist_ok=True)
    new_files = dict(card.files)
    for file in card.files.values():
        replace_head(package / file, out / file, card, means, chol)
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
    agreement = {}
    for key, file in new_files.items():
        got = _run(_session(out / file), card, x)["probabilities"].argmax(axis=1)
        agreement[key] = float((got == fp32_out["probabilities"].argmax(axis=1)).mean())

    def per_class(pred):
        return {c: float((pred[y == i] == i).mean()) for i, c in enumerate(classes) if np.any(y == i)}

    report = {
        "parent": str(package),
        "data": str(data),
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
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out / "adapt.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "adapt.md").write_text(_markdown(report))
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


def _markdown(r: dict) -> str:
    lines = [
        f"# skyedge adapt: {r['frames']} labelled frames from {r['data']}",
        "",
        f"Parent package: {r['parent']}. Added classes: {', '.join(r['added_classes']) or 'none'}.",
        "",
        "| class | frames | before | after (leave-one-out) |",
        "|---|---|---|---|",
    ]
    for c, n in r["counts"].items():
        if n:
            b, a = r["before"]["per_class"].get(c), r["after_leave_one_out"]["per_class"].get(c)
            lines.append(f"| {c} | {n} | {b:.2f} | {a:.2f} |")
    lines += [
        f"| **all** | {r['frames']} | **{r['before']['accuracy']:.3f}** | **{r['after_leave_one_out']['accuracy']:.3f}** |",
        "",
        f"Open-set threshold: {r['unknown_threshold']['parent']} -> {r['unknown_threshold']['adapted']:.3f}.",
        "Top-1 agreement with FP32 on these frames: "
        + ", ".join(f"{k} {100 * v:.1f}%" for k, v in r["agreement_with_fp32"].items())
        + ".",
        "",
    ]
    return "\n".join(lines)
