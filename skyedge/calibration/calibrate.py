"""``skyedge calibrate``: INT8 models for a package, the accuracy report, and the gate."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skyedge.calibration.evaluate import compare, predict, predict_step
from skyedge.calibration.quantize import quantize
from skyedge.calibration.report import GateError, gate, write_reports
from skyedge.calibration.subset import DEFAULT_SIZE, stratified_subset
from skyedge.dataset_inputs import load_labelled_inputs
from skyedge.model_card import read_card, write_card
from skyedge.precisions import calibration_target, ort_session, step_file
from skyedge.shards import sha256_file
from skyedge.step_graph import run_chained, session_runner

log = logging.getLogger(__name__)


def _names(data) -> str:
    return ", ".join(map(str, data)) if isinstance(data, (list, tuple)) else str(data)


def _step_calibration_inputs(step_fp32: Path, card, calib, limit: int = 4096) -> dict[str, np.ndarray]:
    """Step-graph inputs (one epoch each, with the FP32 state before it) from the calibration histories, at most
    ``limit`` of them, taken evenly over the real epochs (not the right padding)."""
    fed: list[dict] = []
    run_chained(session_runner(ort_session(step_fp32)), card.step, calib.inputs, collect=fed)
    real = np.concatenate([np.flatnonzero(calib.lengths > t) + t * len(calib) for t in range(len(fed))])
    chosen = real[np.linspace(0, len(real) - 1, min(limit, len(real))).astype(int)]
    return {name: np.concatenate([f[name] for f in fed])[chosen] for name in fed[0]}


def calibrate_package(
    package: str | Path,
    data: str | Path | list,
    targets: list[str],
    *,
    method: str = "percentile",
    size: int = DEFAULT_SIZE,
    eval_data: str | Path | list | None = None,
    max_drop_points: float = 1.0,
    allow_drop: bool = False,
    seed: int = 0,
    reduce_range: bool = True,
    bayer: str | None = None,
) -> dict:
    """Quantize for each target, evaluate every precision on held-out data, write reports, apply the gate.

    ``data`` and ``eval_data`` are a skyedge-shards folder or a list of them (one per camera; for a frame model also
    a site's labelled folder, ``DIR/<class>/<frame>``); ``reduce_range``: 7-bit weights in the CPU form (the
    default: they cannot saturate on x86 CPUs without VNNI, and run as fast; False for full range, for CPUs with
    VNNI or ARM only); ``bayer``: labelled folders hold raw mosaics of this pattern (the pipeline's ``preprocess.bayer``)."""
    started = time.perf_counter()
    package = Path(package)
    card = read_card(package)
    pool = load_labelled_inputs(data, card, package=package, bayer=bayer)
    chosen = stratified_subset(pool.strata, size, seed)
    calib = pool.take(chosen)
    if eval_data is not None:
        held = load_labelled_inputs(eval_data, card, package=package, bayer=bayer)
        held_source = _names(eval_data)
    else:
        rest = np.setdiff1d(np.arange(len(pool)), chosen)
        if len(rest) == 0:
            raise GateError(f"{_names(data)}: every item went into calibration; pass --eval DIR with held-out data")
        held = pool.take(rest)
        held_source = f"{_names(data)} (items not used for calibration)"
    log.info("calibrating %s on %d items, evaluating on %d", card.name, len(calib), len(held))
    files = dict(card.files)
    quant_info = []
    for target in targets:
        form = calibration_target(target)
        out = package / form.file
        quant_info.append(quantize(package / card.files["fp32"], out, calib.inputs, target, method, reduce_range=reduce_range and not form.symmetric))
        files[form.key] = out.name
    step_files = dict(card.step.files) if card.step is not None else {}
    if step_files:
        # The step graph's quantization sees what the edge feeds it: every epoch of the calibration histories
        # with the state the FP32 step graph carries to it.
        step_calib = _step_calibration_inputs(package / step_files["fp32"], card, calib)
        for target in targets:
            form = calibration_target(target)
            out = package / step_file(form.key)
            quant_info.append(quantize(package / step_files["fp32"], out, step_calib, target, method, reduce_range=reduce_range and not form.symmetric))
            step_files[form.key] = out.name
    graphs = [(k, package / f, predict) for k, f in files.items()]
    graphs += [(f"step:{k}", package / f, predict_step) for k, f in step_files.items()]
    predictions, skipped = {}, {}
    for precision, path, predictor in graphs:
        try:
            predictions[precision] = predictor(path, card, held)
        except Exception as exc:  # noqa: BLE001 - FP16 kernels may be missing on CPU; reported, not fatal
            skipped[precision] = str(exc).splitlines()[0]
            log.warning("cannot evaluate %s on this CPU: %s", precision, skipped[precision])
    results = compare(card, held, predictions)
    verdicts = {}
    for target in targets:
        key = calibration_target(target).key
        for graph in (key, f"step:{key}") if step_files else (key,):
            verdicts[graph] = gate(results, graph, max_drop_points)
    failed = {k: v for k, v in verdicts.items() if v}
    report = {
        "model": card.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": files | {f"step:{k}": v for k, v in step_files.items()},
        "calibration": {
            "source": _names(data),
            "items": len(calib),
            "method": method,
            "per_class": {c: int((calib.labels == i).sum()) for i, c in enumerate(card.classes)},
        },
        "held_out": {"source": held_source, "items": len(held)},
        "results": results,
        "not_evaluated": skipped,
        "quantization": quant_info,
        "gate": {
            "max_drop_points": max_drop_points,
            "allow_drop": allow_drop,
            "checked": sorted(verdicts),
            "failures": failed,
            "verdict": (
                "passed"
                if not failed
                else ("FAILED, overridden with --allow-drop: " if allow_drop else "FAILED: ")
                + " | ".join(failed.values())
            ),
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    # A form that lost more than the bound (in either graph) is written and reported but left out of the card unless
    # --allow-drop says ship it: a deployment asking for it is then refused by name at start-up, instead of running a
    # model that lost accuracy because an exit status went unread.
    withheld = set() if allow_drop else {graph.removeprefix("step:") for graph in failed}
    files = {k: v for k, v in files.items() if k not in withheld}
    step_files = {k: v for k, v in step_files.items() if k not in withheld}
    report["gate"]["withheld_from_card"] = sorted(withheld)
    write_reports(package, report)
    card_data = card.model_dump(mode="json")
    card_data["files"] = files
    if step_files:
        card_data["step"]["files"] = step_files
    # Every file the card already vouches for (mask, head statistics) stays vouched for, beside the new models.
    written = [*files.values(), *step_files.values()]
    card_data["sha256"] = {**card.sha256, **{name: sha256_file(package / name) for name in written}}
    write_card(card_data, package)
    if failed and not allow_drop:
        raise GateError(
            f"{package}: calibration gate failed: "
            + " | ".join(failed.values())
            + f". The card leaves out {', '.join(sorted(withheld))}. Try another --method or a larger --size, or pass"
            " --allow-drop to ship anyway."
        )
    return report
