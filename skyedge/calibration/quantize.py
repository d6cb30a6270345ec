"""INT8 Q/DQ ONNX through ONNX Runtime's static quantization, in the two forms the targets want.

* ``tensorrt`` -> ``model.int8.onnx``: symmetric INT8 activations (zero point 0)
  and symmetric per-channel INT8 weights, Q/DQ on the inputs of Conv, Gemm and
  MatMul, which is where TensorRT fuses them into INT8 kernels.
* ``cpu`` -> ``model.int8-cpu.onnx``: U8S8 (asymmetric uint8 activations,
  symmetric int8 per-channel weights), with Q/DQ around every op ONNX Runtime
  has an integer kernel for, the form its x86/ARM CPU kernels run fast.
  :func:`skyedge.calibration.calibrate.calibrate_package` asks for 7-bit
  weights unless told otherwise (``reduce_range``; docs/precision.md).

Only the feature extractor is quantized: for frame models the backbone and
embedding layer (everything the ``embedding`` output depends on); for sequence
models the per-epoch stamp encoder (everything feeding the LSTM/GRU). The
recurrent layer, the classifier after it, and the Mahalanobis/ridge head stay
FP32: they are a small share of the compute and the metric head's distances
lose the open-set threshold's meaning under 8-bit rounding. So do the first
convolution and the arithmetic that makes its input, in both forms (real night
frames lost points to the one, a step graph's carried sums to the other).
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

from skyedge.cpu_int8 import SEVEN_BIT
from skyedge.precisions import calibration_target

log = logging.getLogger(__name__)

METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
RECURRENT = ("LSTM", "GRU", "RNN")


class _QuietPreprocessHint(logging.Filter):
    """ONNX Runtime suggests its pre-processing on every call; our exporter already folds and infers shapes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing" not in record.getMessage()


@contextlib.contextmanager
def _quiet_quantizer():
    """Hide the quantizer's stdout progress and its pre-processing hint (logged on the root logger) for one call."""
    hint = _QuietPreprocessHint()
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(hint)


class _Reader(CalibrationDataReader):
    def __init__(self, inputs: dict[str, np.ndarray], batch: int):
        self.inputs, self.batch, self.pos = inputs, batch, 0
        self.n = len(next(iter(inputs.values())))

    def get_next(self):
        if self.pos >= self.n:
            return None
        item = {k: v[self.pos : self.pos + self.batch] for k, v in self.inputs.items()}
        self.pos += self.batch
        return item

    def rewind(self):
        self.pos = 0


def _even_batch(n: int, largest: int = 16) -> int:
    """A batch size dividing ``n``: ONNX Runtime's histogram calibrators stack batches and need equal sizes."""
    return next(b for b in range(min(largest, n), 0, -1) if n % b == 0)


def first_convolution(model: onnx.ModelProto, nodes: list[str]) -> str | None:
    """Name of the first Conv among ``nodes`` in graph order (ONNX graphs are topologically sorted)."""
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"}
    return next((n for n in nodes if n in convs), None)


def producers_of(model: onnx.ModelProto, tensors) -> set[str]:
    """Names of the nodes that make ``tensors``, directly or through others."""
    producer = {out: node for node in model.graph.node for out in node.output}
    seen, stack = set(), list(tensors)
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(node.input)
    return seen


def inputs_of(model: onnx.ModelProto, name: str) -> set[str]:
    """Names of the nodes whose outputs the node ``name`` reads, directly or through others."""
    return producers_of(model, next(n for n in model.graph.node if n.name == name).input)


def feature_nodes(model: onnx.ModelProto) -> tuple[list[str], list[str]]:
    """Names of the nodes to quantize (the feature extractor) and of the recurrent nodes kept in float."""
    graph = model.graph
    recurrent = [n for n in graph.node if n.op_type in RECURRENT]
    if recurrent:
        boundary = [n.input[0] for n in recurrent]
    else:
        outputs = {o.name for o in graph.output}
        boundary = ["embedding"] if "embedding" in outputs else [o.name for o in graph.output]
    keep = producers_of(model, boundary)
    ordered = [n.name for n in graph.node if n.name in keep]
    return ordered, [n.name for n in recurrent]


def quantize(
    fp32_path: Path,
    out_path: Path,
    calibration_inputs: dict[str, np.ndarray],
    target: str,
    method: str = "percentile",
    percentile: float = 99.999,
    reduce_range: bool = False,
) -> dict:
    """Write the INT8 model for calibration ``target``; return what was quantized and what stayed in float.
    ``reduce_range`` (the CPU form only): 7-bit weights, for CPUs without VNNI (below)."""
    form = calibration_target(target)
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {sorted(METHODS)}, got {method!r}")
    if reduce_range and form.symmetric:
        raise ValueError(f"reduce_range applies to the U8S8 CPU form, not to {target!r}")
    model = onnx.load(str(fp32_path))
    # ONNX Runtime's quantizer needs node names; the exporter names them, but be safe with hand-made graphs.
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{i}"
    named = out_path.with_suffix(".named.onnx")
    onnx.save(model, str(named))
    nodes, recurrent = feature_nodes(model)
    kept = []
    extra = {"CalibPercentile": percentile, "CalibMaxIntermediateOutputs": 64}
    extra.update({"ActivationSymmetric": form.symmetric, "WeightSymmetric": True})
    # The first convolution stays in float (one layer, a small share of the compute; TensorRT runs it in the
    # graph's type): quantized, it cost the all-sky recipe 2.3 points on real night frames in the TensorRT form
    # and 5.1 in the CPU form, which it does not lose on simulated ones; kept in float, both scored within a
    # point of FP32 there (docs/precision.md).
    # So does the arithmetic that makes its input: a sequence model's difference channel and, in its step graph,
    # the running sum carried from epoch to epoch (a frame model's input is made before the graph). Rounded to 8 bits, a difference of two near-equal
    # values loses its digits, and a carried sum its epochs: the transients recipe's step graph lost 3.6 points in
    # the CPU form (agreement 89.6%), its whole-sequence graph 0.4 (docs/precision.md).
    stem = first_convolution(model, nodes)
    if stem is not None:
        before = inputs_of(model, stem)
        nodes = [n for n in nodes if n != stem and n not in before]
        kept = [f"first convolution ({stem})"] + ([f"{len(before)} nodes making its input"] if before else [])
    if form.symmetric:
        # TensorRT fuses Q/DQ into INT8 kernels at exactly these ops' inputs.
        op_types, activation = ["Conv", "Gemm", "MatMul"], QuantType.QInt8
    else:
        # Every op with an integer kernel: keeps tensors in uint8 between convolutions on a CPU.
        op_types, activation = None, QuantType.QUInt8
    try:
        with _quiet_quantizer():
            quantize_static(
                str(named),
                str(out_path),
                _Reader(calibration_inputs, batch=_even_batch(len(next(iter(calibration_inputs.values()))))),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                nodes_to_quantize=nodes,
                per_channel=True,
                # Without VNNI, x86 multiplies uint8 by int8 in pairs summed into int16 (vpmaddubsw), which
                # saturates with full-range weights; 7-bit weights cannot. The gate measures this machine only.
                reduce_range=reduce_range,
                activation_type=activation,
                weight_type=QuantType.QInt8,
                calibrate_method=METHODS[method],
                extra_options=extra,
            )
    finally:
        named.unlink(missing_ok=True)
    quantized = onnx.load(str(out_path))
    counts = {op: sum(n.op_type == op for n in quantized.graph.node) for op in ("QuantizeLinear", "DequantizeLinear")}
    return {
        "target": target,
        "file": out_path.name,
        "method": method,
        "activations": form.activations,
        "weights": form.weights + (f" {SEVEN_BIT}" if reduce_range else ""),
        "quantized_nodes": len(nodes),
        "qdq_nodes": counts,
        "kept_float": kept + recurrent + ["classifier / metric head (after the feature extractor)"],
    }
