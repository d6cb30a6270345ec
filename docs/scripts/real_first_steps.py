"""A user's first steps with the stars on a real camera: `skyedge geometry` on a folder of one pose's frames, then
a star watch over the same night frames started from its file, against one that starts with nothing.

    python docs/scripts/real_first_steps.py LABELME_DIR OUT [--first 2023-12] [--last 2025]

The LabelMe files carry their JPEGs; those of the capture times from FIRST to LAST (file-name order) are written to
OUT/frames, as a camera would have left them, and solved by the command. Each watch then sees every night frame in
time order, with the moon and the sun, no site mask (the watch counts within its lens); its zenith visible
fraction is printed per truth class (the polygons' labels). The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import base64
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris
from skyedge.stars.geometry_file import load_geometry
from skyedge.stars.watch import StarWatch
from skyedge.training.data.labelme import labelled_frames

SITE = (38.607, 93.896, 4200.0)
TIME_FORMAT, UTC_OFFSET = "%Y-%m-%d-%H-%M-%S", 8.0


def write_frames(labelme: Path, out: Path, first: str, last: str) -> int:
    """The JPEGs of the chosen LabelMe files, named by their capture time."""
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for path in sorted(labelme.glob("*.json")):
        if first <= path.stem < last:
            (out / f"{path.stem}.jpg").write_bytes(base64.b64decode(json.loads(path.read_text())["imageData"]))
            n += 1
    return n


def watch_through(frames, geometry_file: Path | None, work: Path) -> tuple[dict, StarWatch]:
    """Zenith visible fraction per truth label (None: no reading) through one watch, and the watch."""
    eph = Ephemeris(*SITE, chunk_s=ARCHIVE_CHUNK_S)
    geometry, save_to = None, None
    if geometry_file is not None:
        save_to = work / "watch-geometry.yaml"
        shutil.copy(geometry_file, save_to)
        geometry = load_geometry(save_to)
    watch = StarWatch(SITE, geometry, save_to=save_to)
    zenith = defaultdict(list)
    for f in frames:
        t = f.captured.timestamp()
        sky = eph.at(t)
        vis = watch.observe(f.frame.image, t, (sky.moon_alt_deg, sky.moon_az_deg, sky.moon_illumination), None, sky.sun_alt_deg).visibility
        zenith[f.label].append(None if vis is None else vis.zenith_fraction)
    return zenith, watch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--first", default="2023-12", help="first capture time (file-name prefix) of the pose")
    ap.add_argument("--last", default="2025", help="capture times before this one")
    args = ap.parse_args()
    n = write_frames(args.labelme, args.out / "frames", args.first, args.last)
    geometry = args.out / "geometry.yaml"
    cmd = ["skyedge", "geometry", str(args.out / "frames"), "--site", ",".join(map(str, SITE)), "--filename-format", TIME_FORMAT,
           "--camera-timezone", f"+{int(UTC_OFFSET):02d}:00", "--out", str(geometry)]
    print(f"{n} frames; {' '.join(cmd)}", flush=True)
    if subprocess.run(cmd).returncode != 0:
        return 1
    site = SimpleNamespace(latitude_deg=SITE[0], longitude_deg=SITE[1], elevation_m=SITE[2])
    frames = sorted(
        (f for f in labelled_frames(args.labelme, site, TIME_FORMAT, UTC_OFFSET) if args.first <= f.path.stem < args.last and f.label != "day"),
        key=lambda f: f.captured,
    )
    for name, start in (("the geometry command's file", geometry), ("nothing", None)):
        zenith, watch = watch_through(frames, start, args.out)
        g = watch.geometry
        print(f"starting from {name}: limits {g.limiting_mag if g else None}, pool {g.depth.frames if g and g.depth else 0} frames, "
              f"{watch.solves} solves, {watch.tracks} tracks")
        for label, values in sorted(zenith.items()):
            known = [v for v in values if v is not None]
            mean = f"{np.mean(known):.3f}" if known else "-"
            under = f"{np.mean([v < 0.5 for v in known]):.2f}" if known else "-"
            print(f"  {label:7s} {len(known)} of {len(values)} with a reading; zenith mean visible {mean}; under half {under}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
