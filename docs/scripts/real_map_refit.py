"""Could a site refit a package's cloud-map head from a few labelled frames? An offline measurement, not a feature.

    python docs/scripts/real_map_refit.py PACKAGE LABELME_DIR OUT [--k 5,10] [--draws 5]

The package's ONNX graph is run with the cloud head's input (the backbone feature map the head's first convolution
reads) added as an output, on every night frame of the real camera prepared as the edge prepares it. A linear
head (one logistic unit per map cell, shared across cells: a 1x1 convolution) is fitted on the training half of the
nights and scored on the other half by how well each frame's mean map over its annotated cells ranks cloudy or
partly cloudy frames above clear or moonlit ones (AUC):

* the head as shipped;
* refitted on every training-half frame's per-cell polygon truth (what a fully annotated site could do);
* refitted on k clear and k overcast frames with frame labels only (every cell clear or every cell cloud: what
  ``skyedge label`` gives a site), several draws.

Writes OUT/map_refit.json. The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_allsky import SAFE, night_part
from real_frontier import _sigmoid, fit_logistic

from skyedge.edge.package import read_card
from skyedge.preprocess import prepare_cloud_truth, prepare_frame
from skyedge.training.data.labelme import cloud_truth, labelled_frames


def head_input(model: onnx.ModelProto) -> str:
    """The tensor the cloud head's first convolution reads (the backbone's feature map)."""
    for node in model.graph.node:
        if node.op_type == "Conv" and any(name.endswith("cloud.net.0.weight") for name in node.input):
            return node.input[0]
    raise SystemExit("no cloud head in this graph (a Conv reading '*cloud.net.0.weight')")


def features(package: Path, frames) -> dict[str, np.ndarray]:
    """Per frame: the feature map (C, h, w), the shipped map, the polygons' cloud and known share on that grid."""
    model = onnx.load(str(package / "model.onnx"))
    name = head_input(model)
    model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pre = read_card(package).preprocess
    rows = {"f": [], "cloud": [], "known": [], "shipped": []}
    for r in frames:
        shipped, f = sess.run(["cloud_map", name], {sess.get_inputs()[0].name: prepare_frame(r.frame.image, pre)[None]})
        h, w = f.shape[2:]
        truth = prepare_cloud_truth(cloud_truth(r.frame), pre)
        known = cv2.resize(truth[1], (w, h), interpolation=cv2.INTER_AREA)
        cloud = cv2.resize(truth[0], (w, h), interpolation=cv2.INTER_AREA)
        rows["f"].append(f[0])
        rows["known"].append(known)
        rows["cloud"].append(np.where(known > 0, cloud / np.maximum(known, 1e-6), 0.0))
        rows["shipped"].append(cv2.resize(shipped[0, 0], (w, h), interpolation=cv2.INTER_LINEAR))
    return {k: np.array(v, np.float32) for k, v in rows.items()}


def auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Probability that a positive frame scores above a negative one (ties broken by order)."""
    rank = np.asarray(score).argsort().argsort() + 1.0
    p = np.asarray(positive, bool)
    return float((rank[p].sum() - p.sum() * (p.sum() + 1) / 2) / (p.sum() * (~p).sum()))


def frame_cover(cells: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Each frame's mean map over the cells whose truth is known."""
    w = (known > 0.5).astype(np.float32)
    return (cells * w).sum((1, 2)) / np.maximum(w.sum((1, 2)), 1.0)


def fit_head(f: np.ndarray, target: np.ndarray, known: np.ndarray):
    """A logistic 1x1 head on standardised features (``real_frontier.fit_logistic``: clear and cloud cells counted
    alike), fitted on the cells whose truth is known; returns a predictor of per-cell cloud."""
    c = f.shape[1]
    x = f.transpose(0, 2, 3, 1).reshape(-1, c)
    keep = known.reshape(-1) > 0.5
    x, y = x[keep], target.reshape(-1)[keep]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    beta = fit_logistic((x - mu) / sd, y)

    def predict(f2: np.ndarray) -> np.ndarray:
        return _sigmoid(((f2.transpose(0, 2, 3, 1) - mu) / sd) @ beta[1:] + beta[0])

    return predict


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--k", default="5,10", help="frames per class (clear, overcast) for the frame-label refits")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--site", default="38.607,93.896,4200")
    ap.add_argument("--utc-offset", type=float, default=8.0)
    args = ap.parse_args(argv)
    lat, lon, elev = (float(v) for v in args.site.split(","))
    site = SimpleNamespace(latitude_deg=lat, longitude_deg=lon, elevation_m=elev)
    halves = {}
    for part in ("train", "test"):
        frames = [r for r in labelled_frames(args.labelme, site, "%Y-%m-%d-%H-%M-%S", args.utc_offset, night_part(part)) if r.label != "day"]
        halves[part] = (features(args.package, frames), np.array([r.label for r in frames]))
    (tr, tr_labels), (te, te_labels) = halves["train"], halves["test"]
    unsafe = ~np.isin(te_labels, SAFE)
    result = {"package": str(args.package), "test_frames": len(te_labels),
              "auc_shipped": round(auc(frame_cover(te["shipped"], te["known"]), unsafe), 3)}
    full = fit_head(tr["f"], tr["cloud"], tr["known"])
    result["auc_refit_polygons_all_train_frames"] = round(auc(frame_cover(full(te["f"]), te["known"]), unsafe), 3)
    rng = np.random.default_rng(0)
    for k in (int(v) for v in args.k.split(",")):
        aucs = []
        for _ in range(args.draws):
            idx = np.concatenate([rng.choice(np.where(tr_labels == lab)[0], k, replace=False) for lab in ("clear", "cloudy")])
            target = (tr_labels[idx] == "cloudy").astype(np.float32)[:, None, None] * np.ones_like(tr["cloud"][idx])
            head = fit_head(tr["f"][idx], target, tr["known"][idx])
            aucs.append(round(auc(frame_cover(head(te["f"]), te["known"]), unsafe), 3))
        result[f"auc_refit_{k}_clear_{k}_overcast_frame_labels"] = aucs
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "map_refit.json").write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():  # one line each: the draws side by side
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
