"""Real skies with simulated aurorae: is an aurora recognised on a real camera's frames?

    python docs/scripts/real_aurora.py PACKAGE LABELME_DIR OUT [--nights test] [--strength 1.0] \\
        [--lens 248,262,213,equisolid] [--seed 0] [--grey]

The annotated real camera never recorded an aurora. Every clear night frame of the chosen half of the nights
(the recipe's split) gets, in turn, a simulated arc, discrete and diffuse aurora added over the sky its polygons
draw (skyedge/training/simulate/aurora_overlay.py: the simulator's shapes, colours and brightness relative to the
frame's own sky, in linear light), and `skyedge run --once` classifies them as docs/scripts/real_allsky.py does
(site located, default geometry). Reported per kind: recognised as an aurora (any of arc, discrete, diffuse),
the exact kind, called safe, unrecognised, and the answers. The lens (zenith pixel x, y, horizon radius in
pixels, projection) defaults to the camera's geometry solved from its stars (docs/results.md). Real backgrounds,
optics and processing; simulated aurorae: a proxy for real aurorae, not a measurement of them.

Writes OUT/aurora.json and OUT/aurora.md. The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from real_allsky import SAFE, run_edge

from skyedge.training.data.labelme import labelled_frames
from skyedge.training.simulate.aurora_overlay import KINDS, overlay_aurora

AURORA = set(KINDS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("package", type=Path)
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--nights", choices=["test", "train", "all"], default="test")
    ap.add_argument("--strength", type=float, default=1.0, help="aurora strength (the simulator's primary: 1)")
    ap.add_argument("--lens", default="248,262,213,equisolid")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grey", action="store_true", help="each composited frame made grey, as a mono camera sees it")
    ap.add_argument("--precision", default="fp32")
    ap.add_argument("--site", default="38.607,93.896,4200")
    ap.add_argument("--utc-offset", type=float, default=8.0)
    args = ap.parse_args(argv)
    lat, lon, elev = (float(v) for v in args.site.split(","))
    site = SimpleNamespace(latitude_deg=lat, longitude_deg=lon, elevation_m=elev)
    cx, cy, radius, projection = args.lens.split(",")
    nights = None if args.nights == "all" else SimpleNamespace(part=args.nights, fraction=0.5, seed=0)
    clear = [r for r in labelled_frames(args.labelme, site, "%Y-%m-%d-%H-%M-%S", args.utc_offset, nights) if r.label == "clear"]
    rng = np.random.default_rng(args.seed)
    result = {"package": str(args.package), "frames": len(clear), "strength": args.strength, "kinds": {}}
    lines = ["| aurora added | n | recognised as aurora | exact kind | called safe | unrecognised | answers |", "|---|---|---|---|---|---|---|"]
    def as_seen(image: np.ndarray) -> np.ndarray:
        if not args.grey:
            return image
        grey = np.round(image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))  # a mono sensor's sum
        return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)

    result["grey"] = args.grey
    for kind in KINDS:
        frames = [
            SimpleNamespace(path=r.path, frame=SimpleNamespace(image=as_seen(overlay_aurora(
                r.frame.image, kind, rng, mask=r.frame.sky | r.frame.cloud, centre=(float(cx), float(cy)),
                horizon_radius=float(radius), projection=projection, strength=args.strength))))
            for r in clear
        ]
        answers = run_edge(args.package, frames, args.out / kind, site, args.utc_offset, args.precision)
        classes = [answers[r.path.stem]["class"] for r in clear if r.path.stem in answers]
        row = {
            "n": len(classes),
            "recognised": round(float(np.mean([c in AURORA for c in classes])), 4),
            "exact": round(float(np.mean([c == kind for c in classes])), 4),
            "called_safe": round(float(np.mean([c in SAFE for c in classes])), 4),
            "unrecognised": round(float(np.mean([c == "unrecognised" for c in classes])), 4),
            "answers": dict(Counter(classes)),
        }
        result["kinds"][kind] = row
        lines.append(f"| {kind} | {row['n']} | {row['recognised']:.3f} | {row['exact']:.3f} | {row['called_safe']:.3f} | "
                     f"{row['unrecognised']:.3f} | {row['answers']} |")
    result["recognised"] = round(float(np.mean([k["recognised"] for k in result["kinds"].values()])), 4)
    lines.append(f"\nrecognised as aurora, all kinds: {result['recognised']:.3f}")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "aurora.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "aurora.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
