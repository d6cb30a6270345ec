"""Score an all-sky package on a real camera's annotated frames, through the edge as it runs on a device.

    python docs/scripts/real_allsky.py PACKAGE LABELME_DIR OUT [--precision fp32] [--nights test] \\
        [--site 38.607,93.896,4200] [--utc-offset 8] [--adapt 3,5,10 [--refit-map [--painted]]] [--other PACKAGE2] [--cloud-map decide] \\
        [--stars ['{KEYS}']] [--mask PNG] [--checks '{KEY: VALUE}']

The frames of the chosen half of the nights (the recipe's split: fraction 0.5, seed 0; ``--nights all`` for
every night) are written as JPEG files named by their local capture time, and `skyedge run --once` classifies
them with the site located (so day is the sun's, not the model's), the default geometry and the package's
cloud map. Scored against the labels the polygons and the ephemeris give (skyedge/training/data/labelme.py):

* safe rate per truth class (safe = clear or moon, as a safety policy with those safe classes would count);
* exact accuracy per class and over every night frame (partly cloudy counts as cloudy; with ``--adapt`` also the
  class-balanced mean over clear, moonlit and cloudy), night frames called day, unrecognised rate;
* cloud cover against the polygons (mean absolute error in points) and per-sector clear/cloudy accuracy
  (sector truth from the polygons on the same geometry, both at 0.5). The edge counts the whole lens circle (no
  site mask here), obstructions and unannotated sky included, while the polygons' truth covers only what they
  annotate: docs/scripts/real_cloud_map.py also counts the map over the annotated sky alone;
* with ``--adapt``: `skyedge adapt` with k labelled frames per class from the other half's nights, then the
  same scores (3 draws per k), with the same ``--cloud-map`` check (``--refit-map``: adapt also writes the cloud
  head it refits, ``--refit-map-head``; ``--painted``: each labelled frame's cloud painted as a person would in
  `skyedge label`, from its polygons, the unannotated sky not judged);
* a 95% interval for each called-safe rate, resampling whole nights (frames of one night share their sky, so
  they are not independent draws: the interval says how far another set of nights could move the figure).

``--checks '{KEY: VALUE}'`` sets other keys of the pipeline's ``checks`` section. ``--reuse`` scores the answers already in OUT/run/results.jsonl instead of running the edge again. ``--cloud-map
decide`` runs the pipeline with ``checks.cloud_map: decide`` (the model's cloud map settles clear against cloudy).
``--other PACKAGE2`` (a package trained on the other half of the nights, ``nights: {part: test}``) scores every
night: the test half by PACKAGE, the training half by PACKAGE2 (answers in OUT/run-other), so each frame is
answered by a model that never saw its night.

Writes OUT/real.json and OUT/real.md. The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import yaml

from skyedge.edge.cloud_map import CloudMapper
from skyedge.edge.config import load_edge_config
from skyedge.edge.reporters.jsonl import read_jsonl
from skyedge.edge.runtime.lifecycle import Runtime
from skyedge.model_card import read_card
from skyedge.preprocess import prepare_cloud_truth
from skyedge.training.data.labelme import PARTLY, cloud_truth, labelled_frames

SAFE = ("clear", "moon")


def night_part(name: str):
    """The recipe's split of the nights (fraction 0.5, seed 0): its ``test`` or ``train`` half, or None for all."""
    return None if name == "all" else SimpleNamespace(part=name, fraction=0.5, seed=0)


def read_answers(results: Path) -> dict[str, dict]:
    """The classification messages of an edge run's JSONL file, per frame name."""
    return {m["payload"]["frame_id"].rsplit(".", 1)[0]: m["payload"] for m in read_jsonl(results) if m["topic"].endswith("/classification")}


def pipeline_keys(cloud_map: str = "off", stars: dict | None = None, mask: Path | None = None, checks: dict | None = None, views: int = 1) -> dict:
    """The pipeline's keys beyond the defaults: ``checks.cloud_map``; ``stars``, the keys of a ``stars`` section
    (None: no star watch; its geometry goes into each run's folder); ``mask``, the site's mask PNG (white = sky);
    ``checks``: other keys of the ``checks`` section; ``views``: the pipeline's views (1 or 4)."""
    keys: dict = {"stars": stars}  # off unless asked: the figures in docs/results.md without star checks stay as measured
    if views != 1:
        keys["views"] = views
    checks = {**(checks or {}), **({"cloud_map": cloud_map} if cloud_map != "off" else {})}
    if checks:
        keys["checks"] = checks
    if mask is not None:
        keys["preprocess"] = {"mask": {"image": str(mask)}}
    return keys


def run_edge(package: Path, frames, work: Path, site, utc_offset: float, precision: str, pipeline: dict | None = None) -> dict[str, dict]:
    """Classify ``frames`` (Labelled) with `skyedge run --once`; the classification message per frame name.
    ``pipeline``: :func:`pipeline_keys` (None: the defaults, no star watch)."""
    pipeline = pipeline_keys() if pipeline is None else pipeline
    shutil.rmtree(work, ignore_errors=True)
    folder = work / "frames"
    folder.mkdir(parents=True)
    for r in frames:
        cv2.imwrite(str(folder / f"{r.path.stem}.jpg"), cv2.cvtColor(r.frame.image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    sign = "+" if utc_offset >= 0 else "-"
    tz = f"{sign}{int(abs(utc_offset)):02d}:{int(round(abs(utc_offset) % 1 * 60)):02d}"
    cfg = {
        "site": "real",
        "device": "eval",
        "site_location": {"latitude_deg": site.latitude_deg, "longitude_deg": site.longitude_deg, "elevation_m": site.elevation_m},
        "model": {"package": str(package), "precision": precision},
        "backend": {"kind": "onnxruntime", "batch_size": 16, "max_wait_ms": 20},
        "pipelines": [
            {
                "camera": "real",
                "source": {"kind": "directory", "path": str(folder), "settle_s": 0, "state_file": str(work / "state.db")},
                "capture_time": {"sources": ["filename"], "camera_timezone": tz, "filename_format": "%Y-%m-%d-%H-%M-%S"},
                "safety": {"safe_classes": list(SAFE)},
                **pipeline,
                "stars": {"geometry": str(work / "geometry.yaml"), **pipeline["stars"]} if pipeline["stars"] is not None else None,
            }
        ],
        "reporters": {"jsonl": {"path": str(work / "results.jsonl")}},
    }
    (work / "edge.yaml").write_text(yaml.safe_dump(cfg))
    Runtime(load_edge_config(work / "edge.yaml"), once=True).run()
    return read_answers(work / "results.jsonl")


def annotated_region(package: Path, frame) -> np.ndarray:
    """The model input's pixels (H, W) the polygons say anything about (sky or cloud): where the truth is defined,
    and so where a map is fairly counted against it (what a site mask leaves the edge to count)."""
    return prepare_cloud_truth(cloud_truth(frame), read_card(package).preprocess)[1] > 0.5


def sector_truth(package: Path, frame, mapper: CloudMapper | None = None) -> tuple[float, list]:
    """(cloud cover in percent, per-sector cloud fraction) of the polygons on the cloud map's own geometry (the
    default one, or ``mapper``'s): every model-input pixel's cloud fraction of its annotated sky, reduced by the
    edge's own mapper over the annotated pixels. (Until 2026-12-05 the truth was first pooled to the map's cells
    with the unannotated sky counted as clear, which read cloudy frames' cover 18 points low.)"""
    from scipy.ndimage import distance_transform_edt

    card = read_card(package)
    truth = prepare_cloud_truth(cloud_truth(frame), card.preprocess)
    known = truth[1]
    fraction = np.where(known > 0, truth[0] / np.maximum(known, 1e-6), 0.0).astype(np.float32)
    if (known > 0).any():
        # The unannotated sky takes its nearest annotated pixel's value, so that the mapper's interpolation at the
        # edge of the annotation mixes in nothing that was not drawn; it carries no weight of its own.
        _, (iy, ix) = distance_transform_edt(known <= 0, return_indices=True)
        fraction = fraction[iy, ix]
    mapper = mapper or CloudMapper(card.preprocess)
    report = mapper.report(fraction[None], frame.image.shape[:2], known > 0.5)
    return report.cloud_cover, list(report.sectors)


def night_interval(flags, nights, draws: int = 2000, seed: int = 0) -> list[float] | None:
    """The 2.5 and 97.5 percentiles of the mean of ``flags`` over ``draws`` resamples of whole nights."""
    flags, nights = np.asarray(flags, float), np.asarray(nights)
    if flags.size == 0:
        return None
    names, index = np.unique(nights, return_inverse=True)
    hits, counts = np.bincount(index, weights=flags, minlength=len(names)), np.bincount(index, minlength=len(names))
    pick = np.random.default_rng(seed).integers(0, len(names), size=(draws, len(names)))
    rates = hits[pick].sum(axis=1) / np.maximum(counts[pick].sum(axis=1), 1)
    return [round(float(v), 4) for v in np.percentile(rates, [2.5, 97.5])]


def score(package: Path, frames, results: dict[str, dict]) -> dict:
    """The figures of the module docstring for one run."""
    rows = []
    for r in frames:
        m = results.get(r.path.stem)
        if m is None:
            continue
        rows.append((r, m))
    night = [(r, m) for r, m in rows if r.label != "day"]
    out: dict = {"frames": len(rows), "night_frames": len(night)}
    for truth in ("clear", "moon", "cloudy", PARTLY):
        chosen = [m for r, m in night if r.label == truth]
        if not chosen:
            continue
        want = "cloudy" if truth == PARTLY else truth
        chosen_nights = [r.night for r, m in night if r.label == truth]
        out[truth] = {
            "n": len(chosen),
            "nights": len(set(chosen_nights)),
            "called_safe": round(float(np.mean([m["class"] in SAFE for m in chosen])), 4),
            "called_safe_95": night_interval([m["class"] in SAFE for m in chosen], chosen_nights),
            "exact": round(float(np.mean([m["class"] == want for m in chosen])), 4),
            "answers": dict(Counter(m["class"] for m in chosen)),
        }
    clearish = [m for r, m in night if r.label in SAFE]
    cloudish = [m for r, m in night if r.label in ("cloudy", PARTLY)]
    right = [m["class"] == ("cloudy" if r.label == PARTLY else r.label) for r, m in night if r.label in (*SAFE, "cloudy", PARTLY)]
    out["exact"] = round(float(np.mean(right)), 4) if right else None  # partly cloudy as cloudy, every frame alike
    out["clear_or_moon_called_safe"] = round(float(np.mean([m["class"] in SAFE for m in clearish])), 4) if clearish else None
    out["cloudy_or_partly_called_safe"] = round(float(np.mean([m["class"] in SAFE for m in cloudish])), 4) if cloudish else None
    for key, truths in (("clear_or_moon_called_safe_95", SAFE), ("cloudy_or_partly_called_safe_95", ("cloudy", PARTLY))):
        picked = [(r.night, m["class"] in SAFE) for r, m in night if r.label in truths]
        out[key] = night_interval([f for _, f in picked], [n for n, _ in picked])
    out["night_called_day"] = round(float(np.mean([m["class"] == "day" for _, m in night])), 4) if night else None
    out["night_unrecognised"] = round(float(np.mean([m["class"] == "unrecognised" for _, m in night])), 4) if night else None
    out["day_frames_called_day"] = round(float(np.mean([m["class"] == "day" for r, m in rows if r.label == "day"])), 4) if any(r.label == "day" for r, _ in rows) else None
    mapped = [(r, m) for r, m in night if "cloud_cover" in m]
    if mapped:
        errors, hits, total = [], 0, 0
        for r, m in mapped:
            cover, sectors = sector_truth(package, r.frame)
            errors.append(abs(cover - m["cloud_cover"]))
            for t, p in zip(sectors, m["cloud_map"]["sectors"], strict=True):
                if t is not None and p is not None:
                    hits += (t >= 0.5) == (p >= 0.5)
                    total += 1
        out["cloud_cover_mae_points"] = round(float(np.mean(errors)), 2)
        out["sector_accuracy"] = round(hits / total, 4) if total else None
        out["swapped_clear_overcast"] = int(
            sum((r.label == "clear" and m["cloud_cover"] >= 95) or (r.label == "cloudy" and m["cloud_cover"] <= 5) for r, m in mapped)
        )
    return out


def painted_mask(frame) -> np.ndarray:
    """A frame's polygons as a person would paint them in `skyedge label` (skyedge/painted_cloud.py):
    black clear sky, white cloud, grey where they say nothing (unannotated sky, obstructions)."""
    truth = cloud_truth(frame)
    mask = np.full(truth.shape, 128, np.uint8)
    mask[truth == 0], mask[truth == 250] = 0, 255
    return mask


def adapt_runs(
    package: Path, train, test, work: Path, site, utc_offset: float, precision: str, ks, pipeline: dict | None = None,
    refit_map: bool = False, painted: bool = False,
) -> dict:
    """`skyedge adapt` with k frames per class from the training nights, scored on the test nights; ``painted``:
    each labelled frame has its cloud painted (its polygons)."""
    from skyedge.edge.labelling.adapt import adapt_package

    pools = {}
    for r in train:
        if r.label == "day":
            continue
        pools.setdefault("cloudy" if r.label == PARTLY else r.label, []).append(r)
    out = {}
    for k in ks:
        runs = []
        for draw in range(3):
            rng = np.random.default_rng(100 * k + draw)
            data = work / f"adapt-k{k}-d{draw}" / "labels"
            shutil.rmtree(data.parent, ignore_errors=True)
            for label, pool in pools.items():
                (data / label).mkdir(parents=True)
                for i in rng.permutation(len(pool))[:k]:
                    r = pool[i]
                    cv2.imwrite(str(data / label / f"{r.path.stem}.jpg"), cv2.cvtColor(r.frame.image, cv2.COLOR_RGB2BGR))
                    if painted:
                        cv2.imwrite(str(data / label / f"{r.path.stem}.cloud.png"), painted_mask(r.frame))
            adapted = data.parent / "pkg"
            adapt_package(package, data, adapted, min_per_class=min(k, 3), refit_map_head=refit_map)
            results = run_edge(adapted, test, data.parent / "run", site, utc_offset, precision, pipeline)
            runs.append(score(adapted, test, results))
        keys = ("clear_or_moon_called_safe", "cloudy_or_partly_called_safe", "night_called_day")
        out[f"k{k}"] = {key: [r[key] for r in runs] for key in keys}
        out[f"k{k}"]["exact"] = [r["exact"] for r in runs]
        out[f"k{k}"]["exact_class_balanced"] = [
            float(np.mean([r[c]["exact"] for c in ("clear", "moon", "cloudy") if c in r])) for r in runs
        ]
    return out


def markdown(result: dict) -> str:
    lines = ["| truth | n (nights) | called safe [95% over nights] | exact | answers |", "|---|---|---|---|---|"]
    for truth in ("clear", "moon", "cloudy", PARTLY):
        if truth in result:
            t = result[truth]
            lo, hi = t.get("called_safe_95") or (float("nan"), float("nan"))
            lines.append(f"| {truth} | {t['n']} ({t.get('nights', '-')}) | {t['called_safe']:.3f} [{lo:.3f}, {hi:.3f}] | {t['exact']:.3f} | {t['answers']} |")
    lines.append("")
    for key in ("exact", "clear_or_moon_called_safe", "clear_or_moon_called_safe_95", "cloudy_or_partly_called_safe", "cloudy_or_partly_called_safe_95", "night_called_day", "night_unrecognised", "day_frames_called_day", "cloud_cover_mae_points", "sector_accuracy", "swapped_clear_overcast"):
        if key in result:
            lines.append(f"- {key}: {result[key]}")
    return "\n".join(lines) + "\n"


def answers(
    package: Path, frames, work: Path, site, utc_offset: float, precision: str, reuse: bool, pipeline: dict | None = None
) -> dict[str, dict]:
    """The package's classification per frame name: the cached run in ``work`` with ``reuse``, else a new one."""
    cached = work / "results.jsonl"
    if reuse and cached.exists():
        return read_answers(cached)
    return run_edge(package, frames, work, site, utc_offset, precision, pipeline)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--nights", choices=["test", "train", "all"], default="test")
    ap.add_argument("--site", default="38.607,93.896,4200")
    ap.add_argument("--utc-offset", type=float, default=8.0)
    ap.add_argument("--adapt", default="", help="k values, e.g. 3,5,10")
    ap.add_argument("--refit-map", action="store_true", help="with --adapt: adapt also writes its refitted cloud head")
    ap.add_argument("--painted", action="store_true", help="with --adapt: each labelled frame's cloud painted (its polygons)")
    ap.add_argument("--reuse", action="store_true", help="score the answers in OUT/run/results.jsonl again")
    ap.add_argument("--other", type=Path, default=None, help="a package trained on the test half: scores the training half, and the figures cover every night")
    ap.add_argument("--cloud-map", choices=["off", "flag", "decide"], default="off", help="the pipeline's checks.cloud_map")
    ap.add_argument(
        "--stars", nargs="?", const="{}", default=None, type=yaml.safe_load,
        help="a stars section: the geometry solved from these frames, the star checks; optionally its keys, e.g. '{refine_cloud_map: false}'",
    )
    ap.add_argument("--mask", type=Path, default=None, help="the site's mask PNG (white = sky; preprocess.mask.image)")
    ap.add_argument("--views", type=int, choices=[1, 4], default=1, help="the pipeline's views: 4 averages each frame's quarter turns")
    ap.add_argument("--checks", type=yaml.safe_load, default=None, help="other keys of the checks section, e.g. '{moon_below_horizon: reclassify}'")
    args = ap.parse_args(argv)
    if args.other is not None and (args.nights != "test" or args.adapt):
        ap.error("--other scores the test half by PACKAGE and the training half by --other: leave --nights and --adapt out")
    lat, lon, elev = (float(v) for v in args.site.split(","))
    site = SimpleNamespace(latitude_deg=lat, longitude_deg=lon, elevation_m=elev)

    fmt = "%Y-%m-%d-%H-%M-%S"
    frames = labelled_frames(args.labelme, site, fmt, args.utc_offset, night_part(args.nights))
    args.out.mkdir(parents=True, exist_ok=True)
    pipeline = pipeline_keys(args.cloud_map, args.stars, args.mask, args.checks, args.views)
    results = answers(args.package, frames, args.out / "run", site, args.utc_offset, args.precision, args.reuse, pipeline)
    nights = args.nights
    if args.other is not None:
        other = labelled_frames(args.labelme, site, fmt, args.utc_offset, night_part("train"))
        results.update(answers(args.other, other, args.out / "run-other", site, args.utc_offset, args.precision, args.reuse, pipeline))
        frames, nights = frames + other, f"test by {args.package}, train by {args.other}"
    result = {"package": str(args.package), "precision": args.precision, "nights": nights, "cloud_map_check": args.cloud_map,
              "stars": args.stars, "checks": args.checks, "views": args.views, **score(args.package, frames, results)}
    if args.adapt:
        train = labelled_frames(args.labelme, site, fmt, args.utc_offset, night_part("train"))
        ks = [int(k) for k in args.adapt.split(",")]
        result["adapt"] = adapt_runs(
            args.package, train, frames, args.out, site, args.utc_offset, args.precision, ks, pipeline, args.refit_map, args.painted
        )
    (args.out / "real.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "real.md").write_text(markdown(result))
    print(markdown(result))
    if "adapt" in result:
        print(json.dumps(result["adapt"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
