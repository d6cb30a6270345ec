"""``skyedge export``: a training run -> a verified model package (docs/architecture.md "The model package").

Writes ``model.onnx`` (FP32) and ``model.fp16.onnx``, checks both against the
TensorRT parser table, measures FP32 parity with PyTorch on random and on real
held-out inputs and FP16 top-1 agreement, then writes the model card
``skyedge.json`` (with file hashes) and ``export.json`` (the measurements).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from skyedge.dataset_inputs import load_labelled_inputs, random_inputs
from skyedge.errors import SkyedgeError
from skyedge.export.fp16 import convert_fp16
from skyedge.export.onnx_export import export_onnx, simplify
from skyedge.export.parity import max_differences, run_ort, run_torch, top1
from skyedge.export.trt_compat import check_tensorrt
from skyedge.model_card import ModelCard, write_card
from skyedge.precisions import BY_KEY, ort_session, step_file
from skyedge.shards import MANIFEST, sha256_file
from skyedge.step_graph import run_chained, session_runner
from skyedge.training.checkpoint import load_run

log = logging.getLogger(__name__)

PARITY_TOLERANCE = 1e-4


class ParityError(SkyedgeError, RuntimeError):
    """The ONNX graph does not reproduce PyTorch within tolerance."""


@dataclass
class ExportResult:
    """Where the package went and what was measured."""

    package: Path
    report: dict


def _held_out_path(run_config: dict, override: str | None) -> Path | None:
    if override:
        return Path(override)
    test = (run_config.get("data") or {}).get("test") or {}
    if isinstance(test, list):  # several held-out sets: parity on the first
        test = test[0]
    path = test.get("path") if test.get("kind") == "shards" else None
    return Path(path) if path and (Path(path) / MANIFEST).exists() else None


def _parity(model, card: dict, session, inputs: dict[str, np.ndarray], label: str) -> dict:
    names = [t["name"] for t in card["outputs"]]
    ref = run_torch(model, inputs, names)
    got = run_ort(session, inputs)
    diffs = max_differences(ref, got)
    worst = max(d["max_rel"] for d in diffs.values())
    if worst > PARITY_TOLERANCE:
        raise ParityError(f"{label}: ONNX differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE:g}): {diffs}")
    return {"items": len(next(iter(inputs.values()))), "outputs": diffs, "max_rel": worst}


def export_package(
    run_dir: str | Path, out: str | Path, *, name: str | None = None, data: str | None = None, held_out: int = 1000
) -> ExportResult:
    """Export, verify and package one training run."""
    started = time.perf_counter()
    run = load_run(run_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    card = dict(run.card)
    card["name"] = name or card.get("name") or run.path.name
    card["files"] = {key: BY_KEY[key].file for key in ("fp32", "fp16")}
    card.pop("sha256", None)
    checked = ModelCard.model_validate(card)  # fail before the slow part
    mask = checked.preprocess.mask
    extra_files = []
    if mask is not None and mask.file:
        shutil.copyfile(run.path / mask.file, out / mask.file)  # the mask the model was trained with
        extra_files.append(out / mask.file)
    statistics = checked.metric_head.statistics
    if statistics is not None:
        if (run.path / statistics).is_file():
            shutil.copyfile(run.path / statistics, out / statistics)  # what skyedge adapt refits from
            extra_files.append(out / statistics)
        else:  # a run from before head statistics were written: it exports, it cannot be adapted
            card["metric_head"] = {**card["metric_head"], "statistics": None}
    fp32 = out / card["files"]["fp32"]
    log.info("exporting %s -> %s", run.path, fp32)
    export_onnx(run.model, card, fp32)
    exported = fp32.read_bytes()
    simplified = simplify(fp32)
    if simplified:
        # Keep the simplified graph only if it still reproduces PyTorch: onnxslim has been seen to fold a
        # shape-dependent subgraph of the sequence model into a wrong constant.
        try:
            _parity(run.model, card, ort_session(fp32), random_inputs(checked, 8, seed=3), "simplified graph")
        except ParityError as exc:
            log.warning("onnxslim changed the model's outputs (%s); keeping the exported graph", str(exc)[:200])
            fp32.write_bytes(exported)
            simplified = False
    check_tensorrt(fp32, str(fp32))
    session = ort_session(fp32)
    report: dict = {
        "run": str(run.path),
        "onnx": {
            "opset": next(o.version for o in onnx.load(str(fp32)).opset_import if o.domain in ("", "ai.onnx")),
            "simplified": simplified,
            "ops": dict(Counter(n.op_type for n in onnx.load(str(fp32)).graph.node).most_common()),
        },
        "tensorrt_check": "passed (TensorRT 10.3 ONNX parser table)",
        "parity": {
            "tolerance": PARITY_TOLERANCE,
            "random": _parity(run.model, card, session, random_inputs(checked, 8), "random inputs"),
        },
    }
    source = _held_out_path(run.config, data)
    labelled = None
    if source is not None:
        labelled = load_labelled_inputs(source, checked, limit=held_out, package=out)
        report["parity"]["held_out"] = _parity(run.model, card, session, labelled.inputs, f"held-out {source}")
        report["parity"]["held_out"]["data"] = str(source)
    else:
        log.warning("no held-out data set found (recipe data.test, or --data): parity checked on random inputs only")
    fp16 = out / card["files"]["fp16"]
    convert_fp16(fp32, fp16)
    check_tensorrt(fp16, str(fp16))
    report["fp16"] = _fp16_agreement(fp32, fp16, labelled, checked)
    step_files = []
    if checked.task == "sequence":
        card["step"], report["step"] = _export_step(run.model, card, out, labelled, checked)
        step_files = [out / f for f in card["step"]["files"].values()]
    card["sha256"] = {f.name: sha256_file(f) for f in (fp32, fp16, *extra_files, *step_files)}
    framework = dict(card["provenance"].get("framework", {}))
    framework.update({"onnx": onnx.__version__, "onnxruntime": ort.__version__, "torch_export": torch.__version__})
    card["provenance"] = card["provenance"] | {"framework": framework}
    write_card(card, out)
    report["seconds"] = round(time.perf_counter() - started, 1)
    report["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    (out / "export.json").write_text(json.dumps(report, indent=2) + "\n")
    return ExportResult(out, report)


def _export_step(model, card: dict, out: Path, labelled, checked: ModelCard) -> tuple[dict, dict]:
    """Export the step graph (FP32 and FP16) and check that, chained one epoch at a time, it reproduces the full
    graph at every epoch; return the card's ``step`` block and the measurements."""
    step = model.step_card()
    files = {key: step_file(key) for key in ("fp32", "fp16")}
    fp32 = out / files["fp32"]
    export_onnx(model.step_module(), {**card, "inputs": step["inputs"], "outputs": step["outputs"]}, fp32)
    check_tensorrt(fp32, str(fp32))
    step_card = ModelCard.model_validate({**card, "step": {**step, "files": files}}).step
    inputs = labelled.inputs if labelled is not None else random_inputs(checked, 32, seed=5)
    prob = checked.output("probabilities").name
    full = run_ort(ort_session(out / card["files"]["fp32"]), inputs)[prob]
    chained = run_chained(session_runner(ort_session(fp32)), step_card, inputs)
    diffs = max_differences({prob: full}, {prob: chained})[prob]
    if diffs["max_rel"] > PARITY_TOLERANCE:
        raise ParityError(
            f"{fp32}: the step graph chained epoch by epoch differs from the full graph by {diffs['max_rel']:.2e} "
            f"(> {PARITY_TOLERANCE:g})"
        )
    fp16 = out / files["fp16"]
    convert_fp16(fp32, fp16)
    check_tensorrt(fp16, str(fp16))
    report = {
        "files": files,
        "parity_with_full_graph": {
            "tolerance": PARITY_TOLERANCE,
            "items": int(len(full)),
            "epochs": int(full.shape[1]),
            "data": "held-out" if labelled is not None else "random",
            "every_epoch": diffs,
        },
    }
    try:
        half = run_chained(session_runner(ort_session(fp16)), step_card, inputs)
        report["fp16_top1_agreement_every_epoch"] = float((half.argmax(-1) == full.argmax(-1)).mean())
    except Exception as exc:  # noqa: BLE001 - FP16 kernels may be missing on CPU; reported, not fatal
        report["fp16_top1_agreement_every_epoch"] = f"not measured: {str(exc).splitlines()[0]}"
    return {**step, "files": files}, report


def _fp16_agreement(fp32: Path, fp16: Path, labelled, card: ModelCard) -> dict:
    inputs = labelled.inputs if labelled is not None else random_inputs(card, 64, seed=1)
    lengths = labelled.lengths if labelled is not None else None
    prob = card.output("probabilities").name
    try:
        half = run_ort(ort_session(fp16), inputs)
    except Exception as exc:  # noqa: BLE001 - some FP16 kernels are GPU-only in ONNX Runtime; say so, do not fail
        return {"measured": False, "reason": f"ONNX Runtime CPU cannot run the FP16 graph: {exc}"}
    full = run_ort(ort_session(fp32), inputs)
    agree = top1(full[prob], lengths) == top1(half[prob], lengths)
    return {
        "measured": True,
        "items": int(len(agree)),
        "data": "held-out" if labelled is not None else "random",
        "top1_agreement": float(agree.mean()),
        "max_abs_probability_difference": float(np.abs(full[prob] - half[prob]).max()),
    }
