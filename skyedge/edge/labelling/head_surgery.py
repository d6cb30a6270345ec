"""Heads swapped in a package's ONNX graphs, for ``skyedge adapt``: the class head and the cloud-map head.

Each function takes a loaded model and returns a new one whose head is cut off at its input (the ``embedding``
output for the class head, the feature map the cloud head's first convolution reads for the map) and replaced by
a head built here in float32 from numpy weights. The same surgery works on every precision file of a package:
FP32, FP16 (a Cast where the file computes in float16) and the INT8 files (the heads stay in float; the quantizer
only quantizes what feeds the embedding). Nodes and weights nothing needs any more fall away.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAP_HEAD_WEIGHT = "cloud.net.0.weight"  # the cloud head's first convolution's weights, as export names them
ADAPTED_MAP_WEIGHT = "adapt_map_w"  # and as adapt names them, so an adapted package can be adapted again


class HeadSurgeryError(ValueError):
    """A graph that does not have the head adapt replaces."""


def _needed(graph, outputs: set[str]) -> list:
    """The nodes (in graph order) that the tensors ``outputs`` need."""
    needed, nodes = set(outputs), []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            nodes.append(node)
            needed.update(i for i in node.input if i)
    nodes.reverse()
    return nodes


def _rebuild(model, nodes: list, outputs: list, new_inits: list, producer: str):
    """``model`` with only ``nodes`` (and the initialisers and value infos they use), ``outputs`` and
    ``new_inits`` added."""
    from onnx import helper

    graph = model.graph
    used = {i for n in nodes for i in n.input} - {t.name for t in new_inits}  # a head adapted before is replaced
    inits = [t for t in graph.initializer if t.name in used] + new_inits
    new_graph = helper.make_graph(
        nodes, graph.name, list(graph.input), outputs, inits, value_info=[v for v in graph.value_info if v.name in used]
    )
    new_model = helper.make_model(new_graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    new_model.producer_name = producer
    return new_model


def _reduce(op: str, x: str, out: str, opset: int, keepdims: int):
    from onnx import helper

    # ReduceSum takes its axes as an input from opset 13, the other reductions from opset 18.
    if op == "ReduceSum" and opset >= 13 or opset >= 18:
        return [helper.make_node(op, [x, "adapt_axis1"], [out], keepdims=keepdims)]
    return [helper.make_node(op, [x], [out], axes=[1], keepdims=keepdims)]


def replace_class_head(model, card, means: np.ndarray, chol: np.ndarray):
    """``model`` with its class head replaced by the Mahalanobis head (means, chol) on its ``embedding`` output."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    role = {t.role: t.name for t in card.outputs}
    emb, prob, dist = role["embedding"], role["probabilities"], role["min_distance"]
    kept_outputs = [o for o in graph.output if o.name not in (prob, dist)]
    batch = next(o for o in graph.output if o.name == prob).type.tensor_type.shape.dim[0]
    nodes = _needed(graph, {o.name for o in kept_outputs})
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    w = numpy_helper.from_array(chol.astype(np.float32), "adapt_w")
    centres = means @ chol
    ct = numpy_helper.from_array(np.ascontiguousarray(centres.T).astype(np.float32), "adapt_centres_t")
    norms = numpy_helper.from_array((centres**2).sum(1)[None, :].astype(np.float32), "adapt_centre_norms")
    consts = [
        numpy_helper.from_array(np.array([1], dtype=np.int64), "adapt_axis1"),
        numpy_helper.from_array(np.array(-2.0, dtype=np.float32), "adapt_minus2"),
        numpy_helper.from_array(np.array(-0.5, dtype=np.float32), "adapt_minus_half"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "adapt_zero"),
        numpy_helper.from_array(np.array(1e-12, dtype=np.float32), "adapt_eps"),
    ]
    mk = helper.make_node
    head = [
        mk("MatMul", [emb, "adapt_w"], ["adapt_y"]),
        mk("Mul", ["adapt_y", "adapt_y"], ["adapt_yy"]),
        *_reduce("ReduceSum", "adapt_yy", "adapt_ysq", opset, 1),
        mk("MatMul", ["adapt_y", "adapt_centres_t"], ["adapt_cross"]),
        mk("Mul", ["adapt_cross", "adapt_minus2"], ["adapt_cross2"]),
        mk("Add", ["adapt_ysq", "adapt_cross2"], ["adapt_d2a"]),
        mk("Add", ["adapt_d2a", "adapt_centre_norms"], ["adapt_d2b"]),
        mk("Max", ["adapt_d2b", "adapt_zero"], ["adapt_d2"]),
        mk("Mul", ["adapt_d2", "adapt_minus_half"], ["adapt_logits"]),
        mk("Softmax", ["adapt_logits"], [prob], axis=1),
        *_reduce("ReduceMin", "adapt_d2", "adapt_min", opset, 0),
        mk("Add", ["adapt_min", "adapt_eps"], ["adapt_min_eps"]),
        mk("Sqrt", ["adapt_min_eps"], [dist]),
    ]
    k = means.shape[0]
    prob_out = helper.make_tensor_value_info(prob, TensorProto.FLOAT, [None, k])
    prob_out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    dist_out = helper.make_tensor_value_info(dist, TensorProto.FLOAT, [None])
    dist_out.type.tensor_type.shape.dim[0].CopyFrom(batch)
    return _rebuild(model, nodes + head, [prob_out, dist_out, *kept_outputs], [w, ct, norms, *consts], "skyedge adapt")


def map_head_input(model) -> str:
    """The tensor the cloud head's first convolution reads (its weights named ``*cloud.net.0.weight``, directly or
    through a DequantizeLinear, or ``adapt_map_w``)."""
    for node in model.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1:
            if MAP_HEAD_WEIGHT in node.input[1] or node.input[1] == ADAPTED_MAP_WEIGHT:
                return node.input[0]
    raise HeadSurgeryError(f"no cloud head in this graph (a Conv reading '*{MAP_HEAD_WEIGHT}')")


def _elem_type(model, name: str) -> int:
    from onnx import TensorProto, shape_inference

    for source in (model, shape_inference.infer_shapes(model)):
        for v in [*source.graph.value_info, *source.graph.output, *source.graph.input]:
            if v.name == name and v.type.tensor_type.elem_type:
                return v.type.tensor_type.elem_type
    return TensorProto.FLOAT


def replace_map_head(model, card, weight: np.ndarray, bias: float):
    """``model`` with its cloud head replaced by one logistic unit per map cell: sigmoid(weight . features + bias)
    on the feature map the old head read (a 1 x 1 convolution, float32)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    name = next(t.name for t in card.outputs if t.role == "cloud_map")
    old = next(o for o in graph.output if o.name == name)
    features = map_head_input(model)
    nodes = _needed(graph, {o.name for o in graph.output if o.name != name} | {features})
    head, source = [], features
    if _elem_type(model, features) != TensorProto.FLOAT:
        head.append(helper.make_node("Cast", [features], ["adapt_map_features"], to=TensorProto.FLOAT))
        source = "adapt_map_features"
    w = numpy_helper.from_array(np.asarray(weight, np.float32).reshape(1, -1, 1, 1), ADAPTED_MAP_WEIGHT)
    b = numpy_helper.from_array(np.array([bias], np.float32), "adapt_map_b")
    head += [
        helper.make_node("Conv", [source, ADAPTED_MAP_WEIGHT, "adapt_map_b"], ["adapt_map_logit"]),
        helper.make_node("Sigmoid", ["adapt_map_logit"], [name]),
    ]
    out = helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
    out.type.tensor_type.shape.CopyFrom(old.type.tensor_type.shape)
    outputs = [out if o.name == name else o for o in graph.output]
    return _rebuild(model, nodes + head, outputs, [w, b], "skyedge adapt")


def save_checked(model, dst: Path) -> None:
    """Check ``model`` and write it to ``dst``."""
    import onnx

    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
