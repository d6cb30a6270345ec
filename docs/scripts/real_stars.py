"""Stars as ground truth on a real camera's annotated frames: geometry from the sky, star visibility against the
human cloud polygons, and the clear-but-starless cross-check.

    python docs/scripts/real_stars.py LABELME_DIR OUT [--site 38.607,93.896,4200] [--utc-offset 8]

1. Every night frame the polygons call clear or moonlit-clear is solved on its own (skyedge.stars.solve: no
   prior beyond "the camera looks up"); the solved frames show when the camera was remounted (north moves).
2. Every night frame (clear or not) then goes, in time order, through one StarWatch as on a device: it starts
   with no geometry, solves blind when it has none or when a frame rich in stars stops matching, and learns
   the limiting magnitudes from the completeness of every clear frame it sees with its geometry
   (skyedge.stars.depth; from the third on).
3. Star visibility per cloudynight sector against the sector's cloud fraction in the polygons (clear: at most
   5% cloud; overcast: at least 95%), reported per ring; and the cross-check's figure: the share of frames
   whose stars within 36 deg of the zenith are under half seen, per truth class, and the share that fails the
   check as the edge reads it by default (under half seen, or the stars dimmed by more than
   ``stars.max_extinction_mag`` on a dark sky).

The sectors are scored with the polygons' sky region as the mask (sky or cloud: where the truth is). The
cross-check on a package's answers (``--model``) is scored as a device meets it: a fixed mask, the circle enclosing
every frame's annotated sky, in a second pass through a fresh StarWatch. Most frames' polygons annotate only part of
the sky (half of it at the median; the rest is unannotated sky, not the horizon), and a frame's stars outside them
are what the device counts. Writes OUT/stars.json and OUT/stars.md. The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from skyedge.edge.config_observatory import StarsSection
from skyedge.ephemeris import ARCHIVE_CHUNK_S, Ephemeris
from skyedge.sky_sectors import RING_EDGES_DEG, SECTORS, SEGMENTS, sector_of
from skyedge.stars.catalogue import default_catalogue
from skyedge.stars.detection import detect_stars
from skyedge.stars.lens import Lens
from skyedge.stars.solve import NoGeometry, refine, solve_frame
from skyedge.stars.visibility import clear_enough, completeness_counts, limiting_magnitudes
from skyedge.stars.watch import StarWatch
from skyedge.training.data.labelme import labelled_frames

RINGS = ["zenith disc"] + [f"{a:.0f}-{b:.0f} deg" for a, b in zip(RING_EDGES_DEG[:-1], RING_EDGES_DEG[1:], strict=True)]


def ring_of(sector: int) -> int:
    """0 for the zenith disc, 1-4 for the rings."""
    return 0 if sector == 0 else 1 + (sector - 1) // SEGMENTS


def sector_cloud(frame, lens) -> list[float | None]:
    """Each sector's cloud fraction in the polygons (None: fewer than 30 sky pixels)."""
    region = frame.sky | frame.cloud
    yy, xx = np.nonzero(region)
    alt, az = lens.sky(xx, yy)
    sec = sector_of(90.0 - alt, az)
    ok = sec >= 0
    total = np.bincount(sec[ok], minlength=SECTORS)
    cloud = np.bincount(sec[ok], weights=frame.cloud[yy, xx][ok].astype(float), minlength=SECTORS)
    return [float(c / t) if t >= 30 else None for c, t in zip(cloud, total, strict=True)]


MIN_FRACTION = StarsSection.model_fields["min_zenith_fraction"].default
MAX_EXTINCTION = StarsSection.model_fields["max_extinction_mag"].default


def fails_check(reading) -> bool:
    """Whether a `clear` answer with this (check fraction, extinction) reading fails clear_without_stars."""
    frac, ext = reading
    return frac < MIN_FRACTION or (ext is not None and ext > MAX_EXTINCTION)


def under_half(readings: list) -> dict:
    """Frames, how many have no reading, the share of the others under half their stars seen, and the share that
    fail the edge's check (``fails_check``: stars counted and weighed). ``readings``: (fraction, extinction) or None."""
    known = [v for v in readings if v is not None and v[0] is not None]
    share = round(float(np.mean([v[0] < 0.5 for v in known])), 3) if known else None
    fail = round(float(np.mean([fails_check(v) for v in known])), 3) if known else None
    return {"frames": len(readings), "unknown": len(readings) - len(known), "under_half_seen": share, "fails_check": fail}


def reading(vis) -> tuple | None:
    """What the cross-check reads of one frame's visibility: (check fraction, extinction), or None."""
    return None if vis is None else (vis.check_fraction, vis.extinction_mag)


def device_mask(frames) -> np.ndarray:
    """The sky a device would mask in: the circle enclosing every frame's annotated sky (one camera, one size)."""
    from skyedge.training.simulate.aurora_overlay import annotated_circle

    masks = [r.frame.sky | r.frame.cloud for r in frames]
    (cx, cy), radius = annotated_circle(masks)
    yy, xx = np.mgrid[: masks[0].shape[0], : masks[0].shape[1]]
    return np.hypot(xx - cx, yy - cy) <= radius


def watch_stars(frames, eph, site3, mask_of):
    """Every night frame in time order through one StarWatch that starts knowing nothing, solves blind when it has no
    geometry or stops matching, and learns its limiting magnitudes, as a device would; yields (frame, report, watch)."""
    watch = StarWatch(site3, solve_every_s=0.0)
    for r in frames:
        sky = eph.at(r.captured.timestamp())
        moon = (sky.moon_alt_deg, sky.moon_az_deg, sky.moon_illumination)
        yield r, watch.observe(r.frame.image, r.captured.timestamp(), moon, mask_of(r), sky.sun_alt_deg), watch


def cross_check(args, frames, site, readings: dict[str, tuple | None]) -> dict:
    """Run the package through the edge on the night frames; per truth class, how many frames it called clear and
    how many of those the star check turns unsafe: by count (``turned_unsafe``: the frame's
    :attr:`~skyedge.stars.visibility.Visibility.check_fraction`, the zenith's, else the whole sky's, under 0.5) and
    as the edge reads it by default (``turned_unsafe_weighed``, :func:`fails_check`)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from real_allsky import answers

    # The model's answers do not depend on the stars: --reuse reads the cached run.
    said = answers(args.model, frames, args.out / "edge", site, args.utc_offset, "fp32", args.reuse)
    out = {}
    for r in frames:
        msg = said.get(r.path.stem)
        if msg is None or msg["class"] != "clear":
            continue
        row = out.setdefault(r.label, {"called_clear": 0, "turned_unsafe": 0, "turned_unsafe_weighed": 0, "unknown": 0})
        row["called_clear"] += 1
        seen = readings.get(r.path.stem)
        if seen is None or seen[0] is None:
            row["unknown"] += 1
            continue
        row["turned_unsafe"] += seen[0] < 0.5
        row["turned_unsafe_weighed"] += fails_check(seen)
    return out


def main(argv=None) -> int:
    """Run the evaluation."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--site", default="38.607,93.896,4200")
    ap.add_argument("--utc-offset", type=float, default=8.0)
    ap.add_argument("--model", type=Path, default=None, help="an all-sky package: score the clear_without_stars check on its answers")
    ap.add_argument("--reuse", action="store_true", help="refit from OUT/solutions.json instead of solving blind again")
    args = ap.parse_args(argv)
    lat, lon, elev = (float(v) for v in args.site.split(","))
    site = SimpleNamespace(latitude_deg=lat, longitude_deg=lon, elevation_m=elev)
    frames = [r for r in labelled_frames(args.labelme, site, "%Y-%m-%d-%H-%M-%S", args.utc_offset) if r.label != "day"]
    frames.sort(key=lambda r: r.captured)
    cat, eph = default_catalogue(), Ephemeris(lat, lon, elev, chunk_s=ARCHIVE_CHUNK_S)
    t0 = time.perf_counter()
    for r in frames:  # timed on every night frame; kept for none (a detection carries its frame's significance image)
        detect_stars(r.frame.image, mask=r.frame.sky | r.frame.cloud)
    detect_s = (time.perf_counter() - t0) / max(len(frames), 1)
    cache_file = args.out / "solutions.json"
    cache = json.loads(cache_file.read_text()) if args.reuse and cache_file.exists() else {}
    solved, failures = [], defaultdict(int)
    t0 = time.perf_counter()
    tried = 0
    for r in frames:
        if r.label not in ("clear", "moon"):
            continue
        tried += 1
        det = detect_stars(r.frame.image, mask=r.frame.sky | r.frame.cloud)
        stars = cat.at(lat, lon, elev, r.captured.timestamp())
        try:
            if args.reuse and r.path.stem in cache:
                if isinstance(cache[r.path.stem], str):
                    raise NoGeometry(cache[r.path.stem])
                sol = refine(Lens(**cache[r.path.stem]), [(det, stars.subset(stars.alt_deg >= 8))], (cache[r.path.stem]["projection"],))
            else:
                sol = solve_frame(det, cat, (lat, lon, elev), r.captured.timestamp(), r.frame.image.shape[:2])
            cache[r.path.stem] = sol.lens.as_dict()
        except NoGeometry as exc:
            cache[r.path.stem] = str(exc)
            failures[str(exc).split(" (")[0].split(" of ")[0]] += 1
            continue
        sky = eph.at(r.captured.timestamp())
        moon = (sky.moon_alt_deg, sky.moon_az_deg, sky.moon_illumination)
        counts = completeness_counts(det, stars, sol.lens, r.frame.image.shape[:2], r.frame.sky | r.frame.cloud, moon)
        solved.append((r, sol, counts))
    solve_s = (time.perf_counter() - t0) / max(tried, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    cache_file.write_text(json.dumps(cache))
    periods = defaultdict(list)
    for r, sol, _ in solved:
        periods[round(sol.lens.north_deg / 10) * 10 % 360].append((r, sol))
    geometry_rows = []
    for _north, rows in sorted(periods.items(), key=lambda kv: kv[1][0][0].captured):
        sols = [s for _, s in rows]
        geometry_rows.append(
            {
                "first": rows[0][0].path.stem, "last": rows[-1][0].path.stem, "frames": len(rows),
                "north_deg": round(float(np.median([s.lens.north_deg for s in sols])), 2),
                "north_spread_deg": round(float(np.std([s.lens.north_deg for s in sols])), 3),
                "zenith_px": [round(float(np.median([s.lens.cx for s in sols])), 1), round(float(np.median([s.lens.cy for s in sols])), 1)],
                "radius_px": round(float(np.median([s.lens.radius_px for s in sols])), 1),
                "projection": max({s.lens.projection for s in sols}, key=[s.lens.projection for s in sols].count),
                "median_rms_px": round(float(np.median([s.rms_px for s in sols])), 3),
                "median_rms_deg": round(float(np.median([s.rms_deg for s in sols])), 3),
                "median_matched": int(np.median([s.matched for s in sols])),
            }
        )
    # Overcast sectors split by what the frame's own zenith stars say (at least 0.8 of them seen: a veil the stars
    # shine through, or polygons drawn wider than the cloud). Circular for the inner rings, whose sectors make up the
    # zenith's fraction; the 36-72 deg rings are read apart from it.
    split = {True: "overcast sectors of frames whose zenith stars are seen (0.8 or more)", False: "overcast sectors of the other frames"}
    per_ring = {k: defaultdict(list) for k in ("clear", "overcast", *split.values())}
    zenith = defaultdict(list)
    rows_out, polygon_fraction = [], {}
    watch = None
    for r, rep, watch in watch_stars(frames, eph, (lat, lon, elev), lambda r: r.frame.sky | r.frame.cloud):
        mask = r.frame.sky | r.frame.cloud
        vis = rep.visibility
        rows_out.append({"frame": r.path.stem, "label": r.label, **rep.message()})
        polygon_fraction[r.path.stem] = reading(vis)
        if vis is None:
            zenith[r.label].append(None)
            continue
        truth = sector_cloud(r.frame, watch.geometry.lens_for(mask.shape))
        for s, (v, c) in enumerate(zip(vis.sectors, truth, strict=True)):
            if v is None or c is None:
                continue
            if c <= 0.05:
                per_ring["clear"][ring_of(s)].append(v)
            elif c >= 0.95:
                per_ring["overcast"][ring_of(s)].append(v)
                seen_overhead = vis.zenith_fraction is not None and vis.zenith_fraction >= 0.8
                per_ring[split[seen_overhead]][ring_of(s)].append(v)
        zenith[r.label].append((vis.zenith_fraction, vis.extinction_mag))

    def ring_table(kind: str) -> list[dict]:
        out = []
        for ring, name in enumerate(RINGS):
            v = np.array(per_ring[kind][ring])
            if len(v) == 0:
                out.append({"ring": name, "sectors": 0})
                continue
            good = v >= 0.9 if kind == "clear" else v <= 0.2
            out.append({"ring": name, "sectors": int(len(v)), "mean_visible": round(float(v.mean()), 3), "median_visible": round(float(np.median(v)), 3), "share_meeting": round(float(good.mean()), 3)})
        return out

    check = {}
    for label, vals in sorted(zenith.items()):
        check[label] = under_half(vals)
    model_check = polygon_check = None
    device_check, device_rows = {}, {}
    if args.model:
        disc = device_mask(frames)
        reports = {r.path.stem: rep for r, rep, _ in watch_stars(frames, eph, (lat, lon, elev), lambda r: disc)}
        device_rows = {k: rep.message() for k, rep in reports.items()}
        device_fraction = {k: reading(rep.visibility) for k, rep in reports.items()}
        model_check = cross_check(args, frames, site, device_fraction)
        for label in sorted({r.label for r in frames}):  # the check's own reading per truth class, on the device's mask
            device_check[label] = under_half([device_fraction[r.path.stem] for r in frames if r.label == label])
        polygon_check = cross_check(SimpleNamespace(**{**vars(args), "reuse": True}), frames, site, polygon_fraction)
    result = {
        "model_check": model_check,  # the device's mask
        "model_check_polygon_mask": polygon_check,  # stars counted only where the polygons annotate (as before)
        "frames": len(frames), "clear_frames_tried": tried, "solved": len(solved), "failures": dict(failures),
        "detect_s_per_frame": round(detect_s, 4), "solve_s_per_frame": round(solve_s, 3),
        "geometry": geometry_rows, "clear_sectors": ring_table("clear"), "overcast_sectors": ring_table("overcast"),
        "overcast_sectors_by_zenith": {name: ring_table(name) for name in split.values()},
        "zenith_check": check,
        "zenith_check_device_mask": device_check, "limiting_mags_all_nights": limiting_magnitudes(sum(c[0] for *_, c in solved if clear_enough(*c)), sum(c[1] for *_, c in solved if clear_enough(*c))),
        "watch": {"solves": watch.solves, "solve_failures": watch.solve_failures, "tracks": watch.tracks, "final_limits": watch.geometry.limiting_mag if watch.geometry else None,
                  "clear_frames_taught": watch.geometry.depth.frames if watch.geometry and watch.geometry.depth else 0},
        "frames_scored": rows_out,
        "frames_scored_device_mask": [{"frame": k, **v} for k, v in device_rows.items()],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "stars.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Stars on {args.labelme.name}", "", f"{len(frames)} night frames; {len(solved)} of {tried} clear frames solved; {detect_s * 1000:.0f} ms detection, {solve_s:.2f} s solving per frame", ""]
    lines += ["| period first | last | frames | north | zenith px | radius px | projection | rms px | rms deg | matched |", "|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {g['first']} | {g['last']} | {g['frames']} | {g['north_deg']} (sd {g['north_spread_deg']}) | {g['zenith_px']} | {g['radius_px']} | {g['projection']} | {g['median_rms_px']} | {g['median_rms_deg']} | {g['median_matched']} |" for g in geometry_rows]
    for kind in ("clear", "overcast", *split.values()):
        lines += ["", kind if kind in split.values() else f"{kind} sectors", "", "| ring | sectors | mean visible | median | share meeting |", "|---|---|---|---|---|"]
        lines += [f"| {t['ring']} | {t['sectors']} | {t.get('mean_visible', '-')} | {t.get('median_visible', '-')} | {t.get('share_meeting', '-')} |" for t in ring_table(kind)]
    lines += ["", f"limiting magnitude per ring (all clear solved frames pooled): {result['limiting_mags_all_nights']}"]
    lines += ["", f"star watch (causal, as on a device): {watch.solves} blind solves, {watch.solve_failures} failed, {watch.tracks} tracked; final limits {result['watch']['final_limits']} from {result['watch']['clear_frames_taught']} clear frames"]
    lines += ["", f"| truth | frames | unknown (no geometry, limits or stars expected) | zenith stars under half seen | or dimmed over {MAX_EXTINCTION} mag (the edge's check) |", "|---|---|---|---|---|"]
    lines += [f"| {k} | {v['frames']} | {v['unknown']} | {v['under_half_seen']} | {v['fails_check']} |" for k, v in check.items()]
    if device_check:
        lines += ["", "on the device's mask (the whole lens circle), as the check reads it (the whole sky's fraction where the zenith expects under 3 stars):", "", "| truth | frames | unknown | under half seen | or dimmed (the edge's check) |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['frames']} | {v['unknown']} | {v['under_half_seen']} | {v['fails_check']} |" for k, v in device_check.items()]
    if model_check:
        lines += ["", f"the check on {args.model.name}'s answers (a `clear` answer under half its zenith stars seen turns unsafe):", ""]
        lines += ["| truth | model said clear | turned unsafe by count (device mask) | by count or dimmed (the edge's check) | star visibility unknown | turned unsafe, unknown (polygon mask) |", "|---|---|---|---|---|---|"]
        poly = polygon_check or {}
        lines += [
            f"| {k} | {v['called_clear']} | {v['turned_unsafe']} | {v['turned_unsafe_weighed']} | {v['unknown']} | {poly.get(k, {}).get('turned_unsafe', '-')}, {poly.get(k, {}).get('unknown', '-')} |"
            for k, v in model_check.items()
        ]
    (args.out / "stars.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
