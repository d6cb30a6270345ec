"""The cloud map on simulated cameras, against the simulator's own per-pixel opacity truth.

    python docs/scripts/sim_cloud_map.py PACKAGE SHARDS [SHARDS ...]

SHARDS are simulated data folders (``skyedge simulate``, or the folders a recipe or ``skyedge evaluate --data-root``
simulates), each scored on its own. Each frame goes through the package's FP32 graph as the edge prepares it; the
truth goes through the same letterboxing, resizing and horizon circle (``prepare_cloud_truth``) and is pooled to
the map's cells as training pools it (``frame_training.pooled_truth``). Reported per folder:

* ``cloud_cover`` mean absolute error in points: the map's mean over the known sky of the model's grid against
  the truth's, every cell weighted by how much of it is known sky;
* cells agreeing: cloudy (>= 0.5) or clear in both, over the cells at least half known.

This counts on the model's grid, not on the cloudynight sectors (which need each camera's geometry), so its
figures sit beside, not on, ``real_cloud_map.py``'s.

With ``--safety`` it also reports, per truth class of the night frames, the share called safe by the class rule
(``clear`` or ``moon``), by the class vetoed by the map (``safety.max_cloud_cover: 10``, ``cloud_zenith_deg: 72``),
and by the map deciding clear against cloudy (``checks.cloud_map: decide`` at its defaults), reading the map's
sectors as the edge does without a geometry (the default: lens circle centred, north up). The class is the
package's top class with ``day`` taken out at night (the simulator's sun below -12 deg), ``unrecognised`` beyond
the card's open-set threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from skyedge.model_card import read_card
from skyedge.precisions import ort_session
from skyedge.preprocess import prepare_cloud_truth, prepare_frame
from skyedge.training.data.loaders import load_shards
from skyedge.training.frame_training import pooled_truth


def score(package: Path, folder: Path) -> dict:
    """Cover error and cell agreement of one package's map on one simulated folder."""
    card = read_card(package)
    session = ort_session(package / card.files["fp32"])
    name = next(t.name for t in card.outputs if t.role == "cloud_map")
    data = load_shards(folder)
    if data.cloud is None:
        raise SystemExit(f"{folder}: no cloud truth in these shards")
    errors, agree, cells = [], 0.0, 0.0
    for image, truth in zip(data.images, data.cloud, strict=True):
        if truth is None:
            continue
        x = prepare_frame(image, card.preprocess)[None]
        m = session.run([name], {card.input("image").name: x})[0][0, 0]
        target, known = (
            v[0, 0].numpy().astype(np.float64)
            for v in pooled_truth(torch.from_numpy(prepare_cloud_truth(truth, card.preprocess))[None], m.shape)
        )
        if known.sum() < 1.0:
            continue
        errors.append(100.0 * abs(float((m * known).sum() - (target * known).sum())) / float(known.sum()))
        half = known >= 0.5
        agree += float(((m >= 0.5) == (target >= 0.5))[half].sum())
        cells += float(half.sum())
    return {"frames": len(errors), "cover_mae_points": round(float(np.mean(errors)), 2), "cells_agreeing": round(agree / max(cells, 1.0), 4)}


def safety(package: Path, folder: Path, limit: float = 10.0, zenith_deg: float = 72.0) -> dict:
    """Per truth class of the night frames: the share called safe by the class, the class vetoed by the map, and the
    map deciding clear against cloudy."""
    from skyedge.daylight import DAY_SUN_ALT_DEG
    from skyedge.edge.allsky.map_check import map_check
    from skyedge.edge.cloud_map import CloudMapper
    from skyedge.edge.config_checks import ChecksSection

    card = read_card(package)
    session = ort_session(package / card.files["fp32"])
    names = {t.role: t.name for t in card.outputs}
    data = load_shards(folder)
    sun = np.asarray(data.meta.get("sun_alt_deg", np.full(len(data), np.nan)), dtype=np.float64)
    mapper, threshold = CloudMapper(card.preprocess), card.metric_head.unknown_threshold
    decide = ChecksSection(cloud_map="decide", cloud_map_max_cover=limit, cloud_map_zenith_deg=zenith_deg)
    rules = {"class": [], "veto": [], "map_decides": []}
    truths = []
    for image, label, sun_alt in zip(data.images, data.labels, sun, strict=True):
        truth = data.classes[label]
        if truth == "day" or np.nan_to_num(sun_alt, nan=-90.0) > DAY_SUN_ALT_DEG:
            continue
        x = prepare_frame(image, card.preprocess)[None]
        p, d, m = session.run([names["probabilities"], names["min_distance"], names["cloud_map"]], {card.input("image").name: x})
        p = dict(zip(card.classes, p[0], strict=True))
        p.pop("day", None)
        answer = "unrecognised" if threshold is not None and float(d[0]) > threshold else max(p, key=p.get)
        report = mapper.report(m[0], image.shape[:2])
        fraction = report.clear_within(zenith_deg)
        cover = np.inf if fraction is None else 100.0 * fraction
        rules["class"].append(answer in ("clear", "moon"))
        rules["veto"].append(answer in ("clear", "moon") and cover <= limit)
        rules["map_decides"].append(map_check(answer, p, report, decide, moon_down=False)[1] in ("clear", "moon"))
        truths.append(truth)
    truths = np.array(truths)
    return {
        rule: {c: round(float(np.array(v)[truths == c].mean()), 3) for c in sorted(set(truths))} for rule, v in rules.items()
    } | {"frames": {c: int((truths == c).sum()) for c in sorted(set(truths))}}


def main(argv=None) -> int:
    """Score every folder and print one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("folders", type=Path, nargs="+")
    ap.add_argument("--safety", action="store_true", help="also the safety rules per truth class of the night frames")
    args = ap.parse_args(argv)
    out = {str(f): score(args.package, f) | ({"safety": safety(args.package, f)} if args.safety else {}) for f in args.folders}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
