"""How far a threshold, an ensemble or the stars beside the model can move the real camera's two safety figures.

    python docs/scripts/real_frontier.py LABELME_DIR OUT --answers DIR [--answers DIR2] [--stars STARS_OUT]

Each DIR is the output of ``real_allsky.py PACKAGE LABELME DIR --other PACKAGE2`` (answers in DIR/run and
DIR/run-other), so every night frame is answered by a model that never saw its night, or of ``real_allsky.py PACKAGE
LABELME DIR --nights all`` for a package that saw none of the camera's nights. Several DIRs average their
probabilities, as a device running those models side by side would. From the answers alone:

* the edge's own figures (clear or moonlit clear called safe; cloudy or partly cloudy called safe);
* the frontier of a threshold on p(clear) + p(moon): the most clear or moonlit skies called safe while at most
  3% (the issue's bar) or 5% (the kept-back cameras') of cloudy or partly cloudy ones are. The threshold is
  chosen on these very frames, so this is an upper bound on what any threshold could do;
* where the cloud of the unsafe errors lies: the polygons' cloud fraction of the sky above 30 deg altitude;
* the cloud map as the edge can apply it: the class vetoed by the map (``safety.max_cloud_cover``,
  ``cloud_zenith_deg``), and the map deciding clear against cloudy (``checks.cloud_map: decide``: a ``cloudy``
  answer under a clear map is safe, a ``clear`` or ``moon`` one under a cloudy map is not), at a fixed limit (10%
  within 72 deg, the check's defaults) and at the limit that meets the 3% bar on one half of the nights, scored on
  the other. Answers from a run with ``--cloud-map decide`` already carry the map's classes: read them for the
  figures through the edge, and a run without it for the class alone;
* the map overruling the class only where it is sure (a ``cloudy`` answer made safe at most ``lo`` percent cloud,
  a safe one made unsafe above ``hi``, the class standing between), the band chosen on one half, scored on the
  other: whether a map that only speaks when sure keeps the separation (run it on answers without the check).

With ``--stars`` (a ``real_stars.py`` output: stars.json with each frame's star counts on the device's mask,
solutions.json with the lens solved from the stars, used for the altitudes): a logistic fusion of the model's
safe log-odds with the stars' visible fractions, fitted on one half of the nights and scored on the other, both
ways, at the same bars; and the edge's ``clear_without_stars`` applied to the answers' classes (a run with
``--cloud-map decide`` gives the check after the map): how many cloudy frames called safe it turns, at what cost.
Writes OUT/frontier.json and OUT/frontier.md. The real data never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_allsky import SAFE, night_part, read_answers

from skyedge.edge.cloud_map import CloudReport
from skyedge.edge.config import ChecksSection
from skyedge.edge.config_observatory import StarsSection
from skyedge.edge.labelling.adapt_map import newton_logistic
from skyedge.stars.lens import Lens
from skyedge.training.data.labelme import PARTLY, labelled_frames

UNSAFE = ("cloudy", PARTLY)
CAPS = (0.03, 0.05)
HIGH_ALT_DEG = 30.0
_CHECKS = ChecksSection()  # the edge's defaults for checks.cloud_map
MAP_LIMIT, MAP_ZENITH_DEG, MAP_DECIDES = _CHECKS.cloud_map_max_cover, _CHECKS.cloud_map_zenith_deg, ("cloudy",)
# The edge's defaults for checks.clear_without_stars: the least share of expected zenith stars a 'clear' (or 'moon')
# answer must see.
STAR_LEAST = {"clear": StarsSection.model_fields["min_zenith_fraction"].default,
              "moon": StarsSection.model_fields["moon_min_zenith_fraction"].default}


def safe_probability(payload: dict) -> float:
    """p(clear) + p(moon) of one classification message, 'day' left out (the edge has taken it out at night)."""
    p = {k: v for k, v in payload["probabilities"].items() if k != "day"}
    total = sum(p.values()) or 1.0
    return sum(p.get(c, 0.0) for c in SAFE) / total


def frontier(score: np.ndarray, safe_truth: np.ndarray, cap: float) -> tuple[float, float]:
    """(share of safe-truth frames called safe, share of the others) at the lowest threshold on ``score`` that calls
    at most ``cap`` of the unsafe-truth frames safe (score above the threshold: safe)."""
    score, safe_truth = np.asarray(score, float), np.asarray(safe_truth, bool)
    unsafe = np.sort(score[~safe_truth])[::-1]
    allowed = int(np.floor(cap * unsafe.size))
    threshold = unsafe[allowed] if allowed < unsafe.size else -np.inf
    called = score > threshold
    return float(called[safe_truth].mean()), float(called[~safe_truth].mean())


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(t, -30, 30)))


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1.0, steps: int = 50) -> np.ndarray:
    """Weights (intercept first) of an L2-penalised logistic regression, each class weighted to count alike
    (Newton's method)."""
    a = np.hstack([np.ones((len(x), 1)), np.asarray(x, float)])
    y = np.asarray(y, float)
    w_class = np.where(y > 0, 0.5 / max(y.mean(), 1e-9), 0.5 / max(1 - y.mean(), 1e-9))
    return newton_logistic(a, y, w_class, l2, steps)


def two_fold_scores(x: np.ndarray, y: np.ndarray, half: np.ndarray) -> np.ndarray:
    """Each frame's fused score from the logistic fit on the other half of the nights."""
    out = np.zeros(len(y))
    a = np.hstack([np.ones((len(x), 1)), x])
    for h in np.unique(half):
        beta = fit_logistic(x[half != h], y[half != h])
        out[half == h] = _sigmoid(a[half == h] @ beta)
    return out


def map_cover(payload: dict, zenith_deg: float = MAP_ZENITH_DEG) -> float:
    """Percent cloud the edge's rule reads from a message's map: its sectors within ``zenith_deg`` of the zenith."""
    sectors = tuple(payload["cloud_map"]["sectors"])
    fraction = CloudReport(cloud_cover=0.0, sectors=sectors, geometry="default").clear_within(zenith_deg)
    return np.inf if fraction is None else 100.0 * fraction


def map_called(classes: np.ndarray, cover: np.ndarray, limit: float, decides: tuple[str, ...]) -> np.ndarray:
    """Safe by a cloud-map rule: a safe class, or a ``cloudy`` one where ``decides`` holds it, and the map at most
    ``limit`` (``decides`` empty: the safety veto; ``("cloudy",)``: ``checks.cloud_map: decide``): the band rule
    with no band."""
    return band_called(classes, cover, limit if "cloudy" in decides else -np.inf, limit)


def two_fold_limit(classes, cover, safe_truth, half, decides, cap: float = CAPS[0]) -> tuple[np.ndarray, list[float]]:
    """The map rule at the highest limit (0.5-point steps) that calls at most ``cap`` of one half's unsafe-truth frames
    safe, scored on the other half, both ways: (called, [limit chosen on each half])."""
    called, limits = np.zeros(len(classes), bool), []
    for fit in np.unique(half):
        on = half == fit
        ok = [c for c in np.arange(0.0, 100.5, 0.5) if map_called(classes, cover, c, decides)[on & ~safe_truth].mean() <= cap]
        limit = max(ok) if ok else -1.0
        limits.append(float(limit))
        called[~on] = map_called(classes, cover, limit, decides)[~on]
    return called, limits


def band_called(classes: np.ndarray, cover: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Safe by a map that overrules the class only when it is sure: a ``cloudy`` answer under at most ``lo`` percent
    cloud is safe, a safe one under more than ``hi`` is not, and between the two the class stands (``lo == hi``:
    ``checks.cloud_map: decide``)."""
    safe_class = np.isin(classes, list(SAFE))
    promoted = (classes == "cloudy") & (cover <= lo)
    return (safe_class & (cover <= hi)) | promoted


BAND_GRID = np.arange(0.0, 40.5, 0.5)


def two_fold_band(classes, cover, safe_truth, half, cap: float = CAPS[0]) -> tuple[np.ndarray, list[list[float]]]:
    """The (lo, hi) band calling the most safe-truth frames safe with at most ``cap`` of the unsafe-truth ones, chosen
    on one half of the nights and scored on the other, both ways (among equals the tightest: the lowest lo, then
    hi): (called, [[lo, hi] chosen on each half])."""
    called, bands = np.zeros(len(classes), bool), []
    for fit in np.unique(half):
        on = half == fit
        best, band = -1.0, [-1.0, -1.0]
        for lo in BAND_GRID:
            for hi in BAND_GRID[BAND_GRID >= lo]:
                rule = band_called(classes, cover, lo, hi)
                if rule[on & ~safe_truth].mean() <= cap and rule[on & safe_truth].mean() > best:
                    best, band = rule[on & safe_truth].mean(), [float(lo), float(hi)]
        bands.append(band)
        called[~on] = band_called(classes, cover, *band)[~on]
    return called, bands


def star_features(row: dict | None) -> list[float]:
    """The stars' whole-sky and zenith visible fractions on the device's mask, each with a flag for 'no verdict'."""
    row = row or {}
    v, z = row.get("visible_fraction"), row.get("zenith_visible_fraction")
    return [0.0 if v is None else v, float(v is None), 0.0 if z is None else z, float(z is None)]


def stars_turned(classes: np.ndarray, rows: list[dict | None]) -> np.ndarray:
    """Which answers the edge's ``clear_without_stars`` turns unsafe: 'clear' (or 'moon', to a lower share) with the
    check's fraction (the zenith's, else the whole sky's) under the least share; no verdict turns nothing."""
    out = np.zeros(len(classes), bool)
    for i, (c, row) in enumerate(zip(classes, rows, strict=True)):
        row = row or {}
        z, v = row.get("zenith_visible_fraction"), row.get("visible_fraction")
        frac, least = (z if z is not None else v), STAR_LEAST.get(str(c))
        out[i] = frac is not None and least is not None and frac < least
    return out


def high_cloud(frame, lens: Lens) -> float | None:
    """The polygons' cloud fraction of the annotated sky above :data:`HIGH_ALT_DEG` (None: none annotated there)."""
    yy, xx = np.mgrid[0 : frame.sky.shape[0], 0 : frame.sky.shape[1]]
    high = lens.sky(xx, yy)[0] > HIGH_ALT_DEG
    cloud, sky = int((frame.cloud & high).sum()), int((frame.sky & high).sum())
    return cloud / (cloud + sky) if cloud + sky else None


def nearest_lens(solutions: dict, name: str, fmt: str) -> Lens:
    """The solved lens of the frame nearest in time (the camera was remounted: a lens holds for its own epoch)."""
    solved = {k: v for k, v in solutions.items() if isinstance(v, dict)}
    t = datetime.strptime(name, fmt)
    return Lens(**solved[min(solved, key=lambda k: abs((datetime.strptime(k, fmt) - t).total_seconds()))])


def summary(score: np.ndarray, safe_truth: np.ndarray, called: np.ndarray) -> dict:
    """The called-safe figures and the frontier at each cap."""
    out = {"clear_or_moon_called_safe": round(float(called[safe_truth].mean()), 4),
           "cloudy_or_partly_called_safe": round(float(called[~safe_truth].mean()), 4)}
    for cap in CAPS:
        good, bad = frontier(score, safe_truth, cap)
        out[f"best_clear_or_moon_at_{cap}"] = round(good, 4)
        out[f"its_cloudy_or_partly_at_{cap}"] = round(bad, 4)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labelme", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--answers", type=Path, action="append", required=True, help="a real_allsky.py --other output")
    ap.add_argument("--stars", type=Path, default=None, help="a real_stars.py output (stars.json, solutions.json)")
    ap.add_argument("--site", default="38.607,93.896,4200")
    ap.add_argument("--utc-offset", type=float, default=8.0)
    args = ap.parse_args(argv)
    lat, lon, elev = (float(v) for v in args.site.split(","))
    site = SimpleNamespace(latitude_deg=lat, longitude_deg=lon, elevation_m=elev)
    fmt = "%Y-%m-%d-%H-%M-%S"
    frames, half = [], []
    for part in ("test", "train"):
        rows = [r for r in labelled_frames(args.labelme, site, fmt, args.utc_offset, night_part(part)) if r.label != "day"]
        frames += rows
        half += [part] * len(rows)
    runs = []
    for d in args.answers:
        answers = read_answers(d / "run" / "results.jsonl")
        if (d / "run-other" / "results.jsonl").exists():  # absent: one package that saw neither half (--nights all)
            answers.update(read_answers(d / "run-other" / "results.jsonl"))
        runs.append(answers)
    keep = [i for i, r in enumerate(frames) if all(r.path.stem in a for a in runs)]
    frames, half = [frames[i] for i in keep], np.array([half[i] for i in keep])
    labels = np.array([r.label for r in frames])
    safe_truth = np.isin(labels, SAFE)
    score = np.array([np.mean([safe_probability(a[r.path.stem]) for a in runs]) for r in frames])
    if len(runs) == 1:
        called = np.array([runs[0][r.path.stem]["class"] in SAFE for r in frames])
    else:  # the averaged probabilities' top class, as the edge picks it
        called = np.array([_top(r.path.stem, runs) in SAFE for r in frames])
    result = {"answers": [str(d) for d in args.answers], "frames": len(frames), "model": summary(score, safe_truth, called)}
    classes = np.array([runs[0][r.path.stem]["class"] if len(runs) == 1 else _top(r.path.stem, runs) for r in frames])
    cover = np.array([np.mean([map_cover(a[r.path.stem]) for a in runs]) for r in frames])
    for key, decides in (("map_veto", ()), ("map_decides", MAP_DECIDES)):
        rule = map_called(classes, cover, MAP_LIMIT, decides)
        eligible = np.isin(classes, list(SAFE) + list(decides))
        result[key] = summary(np.where(eligible, 100.0 - cover, -np.inf), safe_truth, rule)
        fold, limits = two_fold_limit(classes, cover, safe_truth, half, decides)
        result[key]["two_fold_at_0.03"] = {"limits": limits, "clear_or_moon_called_safe": round(float(fold[safe_truth].mean()), 4),
                                           "cloudy_or_partly_called_safe": round(float(fold[~safe_truth].mean()), 4)}
        result[key]["by_truth"] = {lab: round(float(rule[labels == lab].mean()), 4) for lab in sorted(set(labels))}
    fold, bands = two_fold_band(classes, cover, safe_truth, half)
    result["map_band_two_fold_at_0.03"] = {"bands": bands, "clear_or_moon_called_safe": round(float(fold[safe_truth].mean()), 4),
                                           "cloudy_or_partly_called_safe": round(float(fold[~safe_truth].mean()), 4)}
    if args.stars is not None:
        stars = {row["frame"]: row for row in json.loads((args.stars / "stars.json").read_text())["frames_scored_device_mask"]}
        logit = np.log(score + 1e-4) - np.log(1 - score + 1e-4)
        x = np.array([[lo, *star_features(stars.get(r.path.stem))] for lo, r in zip(logit, frames, strict=True)])
        turned = stars_turned(classes, [stars.get(r.path.stem) for r in frames])
        called_safe = np.isin(classes, list(SAFE))
        result["stars_check"] = {
            "cloudy_or_partly_called_safe": int((called_safe & ~safe_truth).sum()),
            "of_those_turned": int((called_safe & ~safe_truth & turned).sum()),
            "clear_or_moon_called_safe": int((called_safe & safe_truth).sum()),
            "of_those_lost": int((called_safe & safe_truth & turned).sum()),
            "by_truth": {lab: [int((called_safe & turned)[labels == lab].sum()), int(called_safe[labels == lab].sum())]
                         for lab in sorted(set(labels))},
        }
        fused = two_fold_scores(x, safe_truth.astype(float), half)
        result["model_and_stars"] = summary(fused, safe_truth, fused >= 0.5)
        solutions = json.loads((args.stars / "solutions.json").read_text())
        errors = [r for r, c in zip(frames, called, strict=True) if c and r.label in UNSAFE]
        highs = [high_cloud(r.frame, nearest_lens(solutions, r.path.stem, fmt)) for r in errors]
        result["unsafe_errors_by_cloud_above_30deg"] = {
            "none (< 1%)": sum(h is not None and h < 0.01 for h in highs),
            "1-10%": sum(h is not None and 0.01 <= h < 0.1 for h in highs),
            "10% or more": sum(h is not None and h >= 0.1 for h in highs),
            "nothing annotated there": sum(h is None for h in highs),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "frontier.json").write_text(json.dumps(result, indent=2) + "\n")
    md = markdown(result)
    (args.out / "frontier.md").write_text(md)
    print(md)
    return 0


def _top(name: str, runs: list[dict]) -> str:
    """The top class of the runs' averaged probabilities for one frame ('day' left out)."""
    classes = [c for c in runs[0][name]["probabilities"] if c != "day"]
    mean = {c: np.mean([a[name]["probabilities"].get(c, 0.0) for a in runs]) for c in classes}
    return max(mean, key=mean.get)


def markdown(result: dict) -> str:
    """The figures as a table."""
    lines = [f"{result['frames']} night frames, answers from {', '.join(result['answers'])}", "",
             "| decision | clear or moon called safe | cloudy or partly called safe | best clear or moon at <= 0.03 (its unsafe) | at <= 0.05 (its unsafe) |",
             "|---|---|---|---|---|"]
    rule = f"{MAP_LIMIT:g}% within {MAP_ZENITH_DEG:g} deg"
    rows = (("model", "the model's top class"), ("model_and_stars", "fused with the stars (two-fold logistic)"),
            ("map_veto", f"the class, vetoed by the map above {rule}"),
            ("map_decides", f"the map deciding clear against cloudy at {rule} (`checks.cloud_map: decide`)"))
    for key, name in rows:
        s = result.get(key)
        if s:
            lines.append(f"| {name} | {s['clear_or_moon_called_safe']:.3f} | {s['cloudy_or_partly_called_safe']:.3f} | "
                         f"{s['best_clear_or_moon_at_0.03']:.3f} ({s['its_cloudy_or_partly_at_0.03']:.3f}) | "
                         f"{s['best_clear_or_moon_at_0.05']:.3f} ({s['its_cloudy_or_partly_at_0.05']:.3f}) |")
    for key in ("map_veto", "map_decides"):
        fold = result[key]["two_fold_at_0.03"]
        lines += ["", f"{key}: by truth at {rule}: " + ", ".join(f"{k} {v:.3f}" for k, v in result[key]["by_truth"].items())
                  + f"; the limit meeting 0.03 on one half ({', '.join(f'{v:g}%' for v in fold['limits'])}), scored on the "
                  f"other: {fold['clear_or_moon_called_safe']:.3f} / {fold['cloudy_or_partly_called_safe']:.3f}"]
    band = result["map_band_two_fold_at_0.03"]
    lines += ["", "the map overruling the class only outside a band (a `cloudy` answer safe at most lo%, a safe one unsafe "
              f"above hi%), the band meeting 0.03 on one half ({'; '.join(f'{lo:g}-{hi:g}%' for lo, hi in band['bands'])}), "
              f"scored on the other: {band['clear_or_moon_called_safe']:.3f} / {band['cloudy_or_partly_called_safe']:.3f}"]
    if "stars_check" in result:
        c = result["stars_check"]
        lines += ["", f"the stars' check (`clear_without_stars` at the edge's defaults) on these answers: of "
                  f"{c['cloudy_or_partly_called_safe']} cloudy or partly cloudy frames called safe it turns "
                  f"{c['of_those_turned']} unsafe, at a cost of {c['of_those_lost']} of the {c['clear_or_moon_called_safe']} "
                  "clear or moonlit ones called safe; by truth (turned / called safe): "
                  + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in c["by_truth"].items())]
    if "unsafe_errors_by_cloud_above_30deg" in result:
        lines += ["", f"cloudy or partly cloudy frames called safe, by the polygons' cloud above {HIGH_ALT_DEG:.0f} deg altitude: "
                  + ", ".join(f"{k}: {v}" for k, v in result["unsafe_errors_by_cloud_above_30deg"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
