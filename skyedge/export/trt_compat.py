"""Will TensorRT's ONNX parser take this graph? Checked on the workstation, before the model travels.

The table ``data/tensorrt_10.3_onnx_ops.json`` records, from the onnx-tensorrt
operator documentation, which ONNX operators the TensorRT 10.3 parser (JetPack 6)
supports, the opset range, and the restrictions that can be checked statically
(attribute values, zero points, constant axes). TensorRT 11 parses a superset,
so a graph that passes here parses there too.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from skyedge.errors import SkyedgeError

TABLE = Path(__file__).parent / "data" / "tensorrt_10.3_onnx_ops.json"

# Inputs TensorRT needs as build-time constants (initializers or Constant nodes), by op: input index.
_CONSTANT_INPUTS = {
    "Slice": (3,),
    "Squeeze": (1,),
    "Unsqueeze": (1,),
    "CumSum": (1,),
    "TopK": (1,),
    "OneHot": (1,),
    **{
        f"Reduce{k}": (1,)
        for k in ("L1", "L2", "LogSum", "LogSumExp", "Max", "Mean", "Min", "Prod", "Sum", "SumSquare")
    },
}


class TensorRTCompatError(SkyedgeError, ValueError):
    """A graph the TensorRT ONNX parser would refuse; lists every offending node."""

    def __init__(self, model_name: str, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"{model_name}: {len(problems)} node(s) TensorRT {load_table()['tensorrt']} cannot parse:\n  "
            + "\n  ".join(problems)
        )


@dataclass(frozen=True)
class Finding:
    """One node outside what the parser supports."""

    node: str
    op: str
    reason: str

    def __str__(self) -> str:
        return f"node '{self.node}' ({self.op}): {self.reason}"


@lru_cache(maxsize=1)
def load_table() -> dict:
    """The operator table shipped with skyedge."""
    return json.loads(TABLE.read_text())


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return None


def _as_py(value):
    return value.decode() if isinstance(value, bytes) else value


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            t = _attr(node, "value")
            if t is not None:
                values[node.output[0]] = numpy_helper.to_array(t)
    return values


def _check_node(node: onnx.NodeProto, rules: list[dict], constants: dict, ranks: dict) -> list[str]:
    reasons = []
    for rule in rules:
        if "attribute" in rule:
            value = _attr(node, rule["attribute"])
            value = rule.get("default") if value is None else _as_py(value)
            if "allowed" in rule and value not in rule["allowed"]:
                reasons.append(f"attribute {rule['attribute']}={value!r}, supported: {rule['allowed']}")
            if rule.get("all_ones") and value is not None and any(v != 1 for v in value):
                reasons.append(f"attribute {rule['attribute']}={list(value)} must be all ones")
        elif "zero_point_input" in rule:
            i = rule["zero_point_input"]
            if len(node.input) > i and node.input[i]:
                zp = constants.get(node.input[i])
                if zp is None:
                    reasons.append("zero point must be a constant")
                elif np.any(zp != 0):
                    reasons.append("zero point must be 0 (symmetric quantization); this is an asymmetric Q/DQ")
        elif "spatial_dims" in rule:
            rank = ranks.get(node.input[0])
            if rank is not None and rank - 2 not in rule["spatial_dims"]:
                reasons.append(f"{rank - 2}D pooling; only {rule['spatial_dims']}D is supported")
        elif "max_outputs" in rule:
            used = [o for o in node.output if o]
            if len(used) > rule["max_outputs"]:
                reasons.append(f"uses {len(used)} outputs; only the first is supported")
    for i in _CONSTANT_INPUTS.get(node.op_type, ()):
        if len(node.input) > i and node.input[i] and node.input[i] not in constants:
            reasons.append(f"input {i} ('{node.input[i]}') must be a build-time constant")
    return reasons


def find_unsupported(model: onnx.ModelProto | str | Path) -> list[Finding]:
    """Every node (including those in subgraphs) the TensorRT 10.3 parser would refuse."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    table = load_table()
    supported, rules = set(table["supported"]), table["restrictions"]
    findings: list[Finding] = []
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is not None and not table["opset_min"] <= opset <= table["opset_max"]:
        findings.append(
            Finding("<model>", "opset", f"opset {opset} outside {table['opset_min']}..{table['opset_max']}")
        )
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - ranks are a refinement; the op check stands without them
        inferred = model
    ranks = {
        v.name: len(v.type.tensor_type.shape.dim)
        for v in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)
        if v.type.tensor_type.HasField("shape")
    }

    def walk(graph: onnx.GraphProto):
        constants = _constants(graph)
        for node in graph.node:
            name = node.name or f"<unnamed {node.op_type} -> {','.join(node.output)}>"
            if node.domain not in ("", "ai.onnx"):
                findings.append(Finding(name, node.op_type, f"custom domain '{node.domain}' needs a plugin"))
            elif node.op_type not in supported:
                findings.append(Finding(name, node.op_type, "operator not supported by the TensorRT ONNX parser"))
            else:
                for reason in _check_node(node, rules.get(node.op_type, []), constants, ranks):
                    findings.append(Finding(name, node.op_type, reason))
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for g in a.graphs:
                    walk(g)

    walk(model.graph)
    return findings


def check_tensorrt(model: onnx.ModelProto | str | Path, name: str = "model") -> None:
    """Raise :class:`TensorRTCompatError` naming every node TensorRT 10.3 would refuse."""
    findings = find_unsupported(model)
    if findings:
        raise TensorRTCompatError(name, [str(f) for f in findings])
