"""The cloud map on a real camera's annotated frames: the model's map alone, star visibility alone, and the two
together (the map refined by the stars, ``source: both``), against the human cloud polygons.

    python docs/scripts/real_cloud_map.py PACKAGE LABELME_DIR OUT [--site 38.607,93.896,4200] [--utc-offset 8]
        [--precision fp32|int8-cpu|int8]

Every night frame goes, in time order, through one StarWatch as on a device (it starts knowing nothing, solves
the camera's geometry blind, re-solves when the camera moves, learns its limiting magnitudes from its clear
frames). Frames of the nights the recipe never trained on (fraction 0.5, seed 0) are scored, once the watch has
a geometry and limits: the model's map on the stars' geometry (as the edge's cloud map follows a solved
geometry), the polygons reduced on the same geometry as the map (``real_allsky.sector_truth``), and:

* ``cloud_cover`` mean absolute error in points, per source (model, stars, both at each ``--model-weights``); the
  model's map is counted over the sky the polygons annotate, as the truth is (``model-lens``: over the whole lens
  circle, obstructions and unannotated sky included, as the edge counts without a site mask);
* per-sector clear/cloudy agreement (both at 0.5), per source, over the sectors each source decides;
* clear and overcast frames swapped (cover >= 95 on a clear frame, <= 5 on a cloudy one).

The stars-only cover is the sectors' sky-weighted mean where stars decide, else unknown. Writes OUT/cloud_map.json.
The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from skyedge.edge.cloud_map import MODEL_WEIGHT_STARS, CloudMapper, sector_cover, with_stars
from skyedge.edge.config import OrientationSection
from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris
from skyedge.masks import card_mask, combined
from skyedge.model_card import read_card
from skyedge.precisions import ort_session
from skyedge.preprocess import prepare_frame_and_sky
from skyedge.stars.watch import StarWatch
from skyedge.training.data.labelme import labelled_frames

sys.path.insert(0, str(Path(__file__).parent))
from real_allsky import annotated_region, sector_truth


def stars_only(report, vis):
    """Sectors from the stars alone (None where none are expected) and their sky-weighted cover."""
    sectors = [None if v is None or m is None else 1.0 - v for v, m in zip(vis.sectors, report.sectors, strict=True)]
    return sectors, sector_cover(sectors, report.sector_weights)


def main(argv=None) -> int:
    """Run the evaluation."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--site", default="38.607,93.896,4200")
    ap.add_argument("--utc-offset", type=float, default=8.0)
    ap.add_argument("--model-weights", default=f"{MODEL_WEIGHT_STARS:g}", help="the model's weight in expected stars, e.g. 1,2,5")
    ap.add_argument("--precision", default="fp32", help="the package file to run: fp32, int8-cpu or int8 (TensorRT's form)")
    args = ap.parse_args(argv)
    args.model_weights = [float(w) for w in args.model_weights.split(",")]
    lat, lon, elev = (float(v) for v in args.site.split(","))
    site = SimpleNamespace(latitude_deg=lat, longitude_deg=lon, elevation_m=elev)
    fmt = "%Y-%m-%d-%H-%M-%S"
    frames = [r for r in labelled_frames(args.labelme, site, fmt, args.utc_offset) if r.label != "day"]
    frames.sort(key=lambda r: r.captured)
    test = {r.path.stem for r in labelled_frames(args.labelme, site, fmt, args.utc_offset, SimpleNamespace(part="test", fraction=0.5, seed=0))}
    card = read_card(args.package)
    if args.precision not in card.files:
        raise SystemExit(f"{args.package}: no {args.precision} file (has {', '.join(card.files)})")
    session = ort_session(args.package / card.files[args.precision])
    names = {t.role: t.name for t in card.outputs}
    model_mask = card_mask(card, args.package)
    eph = Ephemeris(lat, lon, elev, chunk_s=ARCHIVE_CHUNK_S)
    watch = StarWatch((lat, lon, elev), solve_every_s=0.0)
    errors, hits, swapped = defaultdict(list), defaultdict(lambda: [0, 0]), defaultdict(int)
    scored = 0
    for r in frames:
        sky = eph.at(r.captured.timestamp())
        moon = (sky.moon_alt_deg, sky.moon_az_deg, sky.moon_illumination)
        sky_region = r.frame.sky | r.frame.cloud
        rep = watch.observe(r.frame.image, r.captured.timestamp(), moon, sky_region, sky.sun_alt_deg)
        vis = rep.visibility
        if r.path.stem not in test or vis is None or watch.geometry is None:
            continue
        shape = r.frame.image.shape[:2]
        orientation = OrientationSection(**watch.geometry.lens_for(shape).orientation(shape))
        mapper = CloudMapper(card.preprocess, orientation, "stars")
        mask = combined(np.ones(shape, bool), model_mask.array(shape) if model_mask else None)
        x, valid = prepare_frame_and_sky(r.frame.image, card.preprocess, mask=mask)
        out = dict(zip([o.name for o in session.get_outputs()], session.run(None, {card.input("image").name: x[None]}), strict=True))
        cloud_map = out[names["cloud_map"]][0]
        # The map counted over the sky the polygons annotate, as the truth is (a site's mask would leave out the
        # mast, buildings and mountains at the horizon likewise); "model-lens" counts the whole lens circle.
        model = mapper.report(cloud_map, shape, valid & annotated_region(args.package, r.frame))
        lens = mapper.report(cloud_map, shape, valid)
        truth_cover, truth_sectors = sector_truth(args.package, r.frame, mapper)
        both = {w: with_stars(model, vis, w) for w in args.model_weights}
        star_sectors, star_cover = stars_only(model, vis)
        scored += 1
        sources = [("model", model.sectors, model.cloud_cover), ("model-lens", lens.sectors, lens.cloud_cover)]
        sources += [("stars", star_sectors, star_cover)]
        sources += [(f"both(w={w:g})", b.sectors, b.cloud_cover) for w, b in both.items()]
        for source, sectors, cover in sources:
            if cover is not None:
                errors[source].append(abs(cover - truth_cover))
                if (r.label == "clear" and cover >= 95) or (r.label == "cloudy" and cover <= 5):
                    swapped[source] += 1
            for t, p in zip(truth_sectors, sectors, strict=True):
                if t is not None and p is not None:
                    hits[source][0] += (t >= 0.5) == (p >= 0.5)
                    hits[source][1] += 1
        # The same comparison on the sectors the stars decide, so the sources are compared like for like.
        for source, sectors in [("model", model.sectors)] + [(f"both(w={w:g})", b.sectors) for w, b in both.items()]:
            source += "@stars"
            for t, p, s in zip(truth_sectors, sectors, star_sectors, strict=True):
                if t is not None and p is not None and s is not None:
                    hits[source][0] += (t >= 0.5) == (p >= 0.5)
                    hits[source][1] += 1
    result = {
        "package": str(args.package),
        "precision": args.precision,
        "frames_scored": scored,
        "cover_mae_points": {k: round(float(np.mean(v)), 2) for k, v in errors.items()},
        "cover_frames": {k: len(v) for k, v in errors.items()},
        "sector_accuracy": {k: round(h / n, 4) if n else None for k, (h, n) in hits.items()},
        "sectors_scored": {k: n for k, (_, n) in hits.items()},
        "swapped_clear_overcast": dict(swapped),
        "watch": {"solves": watch.solves, "solve_failures": watch.solve_failures},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cloud_map.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
