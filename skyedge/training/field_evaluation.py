"""Judging a field run against its truth: what was found, how early, and how well it was classified.

``skyedge field-report FIELD RESULTS.jsonl`` reads a simulated field, or real frames with sources planted by
``skyedge field-inject`` (either way a ``truth.json``), and what the edge published about it, and reports:

* **detectability**: each object's S/N in the difference image per epoch, which
  the simulator records (``truth_snr``: a PSF fit to the object's noise-free
  window minus the median of the reference epochs, PSF-matched, with the
  frame's sky and read noise); objects that reach 5 sigma at some epoch are the
  ones a survey can find;
* **completeness**: the share of those followed by the edge (an object is
  followed when an object the edge reported lies within ``match_radius`` px of
  it), overall, per class and against peak magnitude (a plot). The simulator's
  ``bogus`` objects (cosmic rays, hot pixels, subtraction artefacts) are not
  sources to find: the edge should judge them artefacts before they become
  objects, so they are left out of completeness and counted apart
  (``artefacts``: detectable, followed);
* **how early**: per class, the epoch of the first message about the object,
  against the epoch it first reached 5 sigma;
* **classification**: the class the edge last published for each found object,
  against the model's offline answer on the same object (the full graph over
  stamps cut at the true position from every epoch) and the truth.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

DETECTABLE_SNR = 5.0

def read_results(path: Path) -> tuple[dict[str, list], list[dict]]:
    """Per-object messages (object id -> payloads in order) and field summaries from a JSON-lines log."""
    objects: dict[str, list] = defaultdict(list)
    summaries = []
    with open(path) as fh:
        for line in fh:
            payload = json.loads(line).get("payload", {})
            schema = payload.get("schema", "")
            if schema.startswith("skyedge.classification") and payload.get("task") == "sequence":
                objects[payload["object_id"]].append(payload)
            elif schema.startswith("skyedge.field"):
                summaries.append(payload)
    return objects, summaries


def field_report(field: Path, results: Path, package: Path, match_radius: float = 3.0) -> dict:
    """Completeness, how early, and classification of a field run against its truth (a simulated field, or real
    frames with sources planted by ``skyedge field-inject``)."""
    from scipy.spatial import cKDTree

    field, results, package = Path(field), Path(results), Path(package)
    truth = json.loads((field / "truth.json").read_text())["objects"]
    if not truth or "snr" not in truth[0]:
        raise ValueError(f"{field}/truth.json has no S/N per epoch: simulate the field with truth_snr (FieldConfig)")
    objects, summaries = read_results(results)
    if not summaries:
        raise ValueError(f"{results}: no field summaries (was this a telescope field run?)")
    epoch_of_mjd = {round(s["mjd"], 6): s["epoch"] for s in summaries}
    ids = list(objects)
    pos = np.array([[m[0]["position"]["x"], m[0]["position"]["y"]] for m in objects.values()]).reshape(-1, 2)
    tree = cKDTree(pos) if len(pos) else None
    offline = _offline_last_class(field, package, truth, summaries)
    rows = []
    for k, t in enumerate(truth):
        snr = np.array(t["snr"])
        detectable = bool((snr >= DETECTABLE_SNR).any())
        row = {
            "id": t["id"],
            "class": t["class"],
            "mag": t.get("mag"),
            "hostless": t["hostless"],
            "max_snr": float(snr.max()),
            "detectable_epoch": int(np.argmax(snr >= DETECTABLE_SNR)) + 1 if detectable else None,
            "found": False,
            "offline_class": offline[k],
        }
        # A moving object is found where it was when it was detectable; a fixed one where it is.
        places = np.array(t["track"])[snr >= DETECTABLE_SNR] if "track" in t and detectable else [[t["x"], t["y"]]]
        if tree is not None:
            d, j = tree.query(places, distance_upper_bound=match_radius)
            hit = np.flatnonzero(np.isfinite(d))
            if len(hit):
                msgs = objects[ids[j[hit[0]]]]
                row.update(
                    found=True,
                    object_id=ids[j[hit[0]]],
                    first_epoch=epoch_of_mjd.get(round(msgs[0]["mjd"], 6)),
                    edge_class=msgs[-1]["class"],
                )
        rows.append(row)
    return _summarise(rows, summaries)


def _epochs(field: Path, truth: list[dict], summaries: list[dict], spec) -> list[tuple[Path, dict, np.ndarray]]:
    """(frame, raw conditions, (N, 2) positions in that frame) of the last ``max_epochs`` epochs: a run with
    condition-bearing summaries gives the conditions the edge used; else the simulator's headers and offsets."""
    from astropy.io import fits

    from skyedge.dataset_inputs import HEADER_KEYS, RAW_CONDITIONS

    if summaries and "conditions" in summaries[0] and "frame_xy" in truth[0]:
        ordered = sorted(summaries, key=lambda s: s["epoch"])[-spec.max_epochs :]
        out = []
        for s in ordered:
            e = s["epoch"] - 1
            xy = np.array([t["frame_xy"][e] for t in truth])
            out.append((Path(s["source"]), {k: s["conditions"][k]["value"] for k in RAW_CONDITIONS}, xy))
        return out
    offsets = np.array(json.loads((field / "truth.json").read_text())["offsets"])
    frames = sorted((field / "frames").glob("*.fits"), key=lambda p: fits.getheader(p)["MJD-OBS"])
    xy = np.array([[t["x"], t["y"]] for t in truth])
    first = max(len(frames) - spec.max_epochs, 0)
    out = []
    for e in range(first, len(frames)):
        header = fits.getheader(frames[e])
        out.append((frames[e], {k: float(header[HEADER_KEYS[k]]) for k in RAW_CONDITIONS}, xy + offsets[e]))
    return out


def _offline_last_class(field: Path, package: Path, truth: list[dict], summaries: list[dict]) -> list[str]:
    """The model's answer at the last epoch, from the full graph over stamps cut at each object's true position."""
    from astropy.io import fits

    from skyedge.dataset_inputs import RAW_CONDITIONS
    from skyedge.model_card import read_card
    from skyedge.precisions import ort_session
    from skyedge.preprocess import condition_features, cut_stamps, normalised_conditions, prepare_stamps, sky_noise

    card = read_card(package)
    spec = card.sequence
    stamps, raw, reference = [], {k: [] for k in RAW_CONDITIONS}, None
    for path, conditions, xy in _epochs(field, truth, summaries, spec):
        image = fits.getdata(path).astype(np.float32)
        cut = cut_stamps(image, xy[:, 0], xy[:, 1], spec.stamp_size)
        # The first epoch is the flux reference, as the edge's reference frame is.
        reference = reference or (float(conditions["zero_point"]), float(sky_noise(conditions)))
        stamps.append(prepare_stamps(cut, float(conditions["zero_point"]), spec, reference=reference))
        for k in RAW_CONDITIONS:
            raw[k].append(float(conditions[k]))
    features = normalised_conditions(condition_features({k: np.array(v) for k, v in raw.items()}, spec.conditions), spec)
    n = len(truth)
    inputs = {"stamps": np.stack(stamps, axis=1)[:, :, None], "conditions": np.broadcast_to(features, (n, *features.shape)).copy()}
    session = ort_session(package / card.files["fp32"])
    names = [t.name for t in card.inputs]
    prob = session.run(None, {n: inputs[t.role] for n, t in zip(names, card.inputs, strict=True)})[0]
    return [card.classes[i] for i in prob[:, -1].argmax(1)]


ARTEFACT = "bogus"  # the simulator's class of detector and subtraction artefacts


def _summarise(rows: list[dict], summaries: list[dict]) -> dict:
    artefacts = [r for r in rows if r["class"] == ARTEFACT and r["detectable_epoch"] is not None]
    detectable = [r for r in rows if r["detectable_epoch"] is not None and r["class"] != ARTEFACT]
    found = [r for r in detectable if r["found"]]
    classified = [r for r in rows if r["found"]]
    by_class = {}
    for c in sorted({r["class"] for r in rows}):
        d = [r for r in (artefacts if c == ARTEFACT else detectable) if r["class"] == c]
        f = [r for r in d if r["found"]]
        lag = [r["first_epoch"] - r["detectable_epoch"] for r in f if r.get("first_epoch") is not None]
        by_class[c] = {
            "objects": sum(r["class"] == c for r in rows),
            "detectable": len(d),
            "found": len(f),
            "completeness": len(f) / len(d) if d else None,
            "median_first_message_epoch": float(np.median([r["first_epoch"] for r in f])) if f else None,
            "median_epochs_after_detectable": float(np.median(lag)) if lag else None,
        }
    edge_ok = [r["edge_class"] == r["class"] for r in classified]
    off_ok = [r["offline_class"] == r["class"] for r in classified]
    hostless = [r for r in detectable if r["hostless"]]
    return {
        "objects": len(rows),
        "detectable": len(detectable),
        "found": len(found),
        "completeness": len(found) / len(detectable) if detectable else None,
        "hostless_sn": {"detectable": len(hostless), "found": sum(r["found"] for r in hostless)},
        "artefacts": {"detectable": len(artefacts), "followed": sum(r["found"] for r in artefacts)},
        "by_class": by_class,
        "classification": {
            "objects": len(classified),
            "edge_last_epoch_accuracy": float(np.mean(edge_ok)) if edge_ok else None,
            "offline_accuracy_same_objects": float(np.mean(off_ok)) if off_ok else None,
            "agreement_edge_offline": float(np.mean([r["edge_class"] == r["offline_class"] for r in classified]))
            if classified
            else None,
        },
        "epochs": [
            {"epoch": s["epoch"], **s["objects"], "messages": s.get("messages", 0)} for s in summaries
        ],
        "rows": rows,
    }


def plot_completeness(report: dict, path: Path) -> Path:
    """Completeness against peak magnitude (detectable objects), and the objects followed per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if r["detectable_epoch"] is not None and r["mag"] is not None]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    if rows:
        mags = np.array([r["mag"] for r in rows])
        found = np.array([r["found"] for r in rows])
        edges = np.arange(np.floor(mags.min()), np.ceil(mags.max()) + 0.5, 0.5)
        idx = np.digitize(mags, edges)
        centres, share, counts = [], [], []
        for i in range(1, len(edges)):
            m = idx == i
            if m.any():
                centres.append(0.5 * (edges[i - 1] + edges[i]))
                share.append(found[m].mean())
                counts.append(int(m.sum()))
        a.plot(centres, share, "o-")
        for c, s, n in zip(centres, share, counts, strict=True):
            a.annotate(str(n), (c, s), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    a.set(xlabel="peak magnitude", ylabel="found / detectable (5 sigma in the difference)", ylim=(0, 1.05),
          title="detection completeness")
    epochs = report["epochs"]
    b.plot([e["epoch"] for e in epochs], [e["followed"] for e in epochs], label="followed")
    b.plot([e["epoch"] for e in epochs], [e["new"] for e in epochs], label="new")
    b.plot([e["epoch"] for e in epochs], [e["retired"] for e in epochs], label="retired")
    b.set(xlabel="epoch", ylabel="objects", title="per epoch")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
