"""The precision targets of a model package, in one table: what each one is, which file holds it, who runs it.

Every stage that names a precision reads it here: export writes the FP32 and
FP16 files, calibration writes the two INT8 forms (symmetric for TensorRT,
U8S8 for ONNX Runtime on CPUs), the model card lists them by key, the edge
picks the file a backend should run, and ONNX Runtime sessions get the options
a file needs. Nothing here imports onnxruntime or torch.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PrecisionTarget:
    """One form of the model: the card's key, its file, its number formats, and which backends prefer it."""

    key: str  # key in the card's ``files`` (and report.json's results)
    precision: str  # what a deployment asks for: fp32 | fp16 | int8
    file: str
    activations: str
    weights: str
    symmetric: bool | None  # INT8 only: zero point 0 for activations (TensorRT's requirement)
    calibration_target: str | None  # `skyedge calibrate --target` value that writes it
    preferred_by: tuple[str, ...] = ()  # backends that run this file when asked for ``precision``
    # ONNX Runtime's extended CPU fusions, where a file on a CPU is only ever an accuracy check: they crash
    # (SIGSEGV at session creation, 1.32) on some FP16 graphs, and they fuse the TensorRT form's Q/DQ pairs into
    # x86 S8S8 integer kernels whose 16-bit intermediate sums saturate (AVX2 without VNNI): measured as 10.7
    # points lost that the quantized model does not lose (run unfused it scores as FP32 does), while TensorRT
    # accumulates in int32. Basic optimizations keep the Q/DQ arithmetic the engine will do.
    ort_basic_optimizations: bool = False


TARGETS: tuple[PrecisionTarget, ...] = (
    PrecisionTarget("fp32", "fp32", "model.onnx", "float32", "float32", None, None),
    PrecisionTarget("fp16", "fp16", "model.fp16.onnx", "float16", "float16", None, None, ort_basic_optimizations=True),
    PrecisionTarget(
        "int8",
        "int8",
        "model.int8.onnx",
        "int8 symmetric",
        "int8 symmetric per-channel",
        True,
        "tensorrt",
        ort_basic_optimizations=True,
    ),
    PrecisionTarget(
        "int8-cpu",
        "int8",
        "model.int8-cpu.onnx",
        "uint8 asymmetric",
        "int8 symmetric per-channel",
        False,
        "cpu",
        preferred_by=("onnxruntime",),
    ),
)

BY_KEY = {t.key: t for t in TARGETS}
CARD_KEYS = tuple(BY_KEY)
PRECISIONS = tuple(dict.fromkeys(t.precision for t in TARGETS))
CALIBRATION_TARGETS = {t.calibration_target: t for t in TARGETS if t.calibration_target}


def calibration_target(name: str) -> PrecisionTarget:
    """The INT8 form ``skyedge calibrate --target name`` writes."""
    if name not in CALIBRATION_TARGETS:
        raise ValueError(f"calibration target must be one of {sorted(CALIBRATION_TARGETS)}, got {name!r}")
    return CALIBRATION_TARGETS[name]


def preferred_key(precision: str, backend: str) -> str:
    """The card key of the form ``backend`` runs best for ``precision`` (the U8S8 file for int8 on ONNX Runtime)."""
    return next((t.key for t in TARGETS if t.precision == precision and backend in t.preferred_by), precision)


def card_key_for(precision: str, backend: str, files: dict[str, str]) -> str:
    """Which card file serves ``precision`` on ``backend``: the backend's preferred form when the package has it."""
    key = preferred_key(precision, backend)
    return key if key in files else precision


def report_section(package, key: str):
    """One section of a package's calibration report (report.json), or None when there is none to read."""
    import json
    from pathlib import Path

    try:
        return json.loads((Path(package) / "report.json").read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def _gate(package) -> dict:
    """The calibration gate's record in a package's report.json ({} when there is none to read)."""
    gate = report_section(package, "gate")
    return gate if isinstance(gate, dict) else {}


def _withheld_keys(gate: dict, precision: str) -> list[str]:
    return [k for k in gate.get("withheld_from_card") or [] if k in BY_KEY and BY_KEY[k].precision == precision]


def withheld(package, precision: str) -> list[str]:
    """Card keys of ``precision`` that the calibration gate left out of the package's card."""
    return _withheld_keys(_gate(package), precision)


def withheld_note(package, precision: str) -> str:
    """Why the card lists no ``precision`` file when the calibration gate withheld it (report.json), else ''."""
    gate = _gate(package)
    keys = _withheld_keys(gate, precision)
    if not keys:
        return ""
    return (
        f"; the calibration gate withheld {', '.join(keys)} ({gate.get('verdict', 'failed')}; report.md): "
        "calibrate again, or ship it with --allow-drop"
    )


def step_file(key: str) -> str:
    """The file of a sequence model's step graph in precision ``key`` (``model.step.int8.onnx``)."""
    return "model.step" + BY_KEY[key].file.removeprefix("model")


def target_of_file(path) -> PrecisionTarget | None:
    """The target whose file name ``path`` carries (package naming, full or step graph), or None for a foreign file."""
    name = str(path).rsplit("/", 1)[-1]
    return next((t for t in TARGETS if name in (t.file, step_file(t.key))), None)


def ort_session_options(path, threads: int = 0):
    """ONNX Runtime session options for a package file (threads, quiet log, the optimizations the file tolerates)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    target = target_of_file(path)
    if target is not None and target.ort_basic_optimizations:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return opts


def ort_session(path, threads: int = 0, providers: list[str] | None = None):
    """An ONNX Runtime session for a package file, CPU unless ``providers`` says otherwise."""
    import onnxruntime as ort

    return ort.InferenceSession(
        str(path), ort_session_options(path, threads), providers=providers or ["CPUExecutionProvider"]
    )
