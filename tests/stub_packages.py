"""Model packages written in milliseconds, without training: the fast tier's models.

Each is a complete package the edge accepts (a valid card, files with their sha256) whose ONNX graphs are
small fixed functions of the input built with ``onnx.helper``: they run in ONNX Runtime and answer the same on
every machine, because nothing was learned. Plumbing tests use them with the ONNX Runtime backend (answers
compared with the same graph run offline) or with the scripted backend (answers chosen by the test). What a
trained model answers is the business of the model-quality tests, which train (and are marked ``slow``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from skyedge.model_card import write_card
from skyedge.shards import sha256_file

FRAME_CLASSES = ["arc", "diffuse", "discrete", "cloudy", "moon", "clear"]
SEQUENCE_CLASSES = ["SN", "RRLyrae", "Cepheid", "EB", "nonvariable", "asteroid", "bogus"]
OPSET = 17  # ReduceMean/ReduceL2 take their axes as attributes up to opset 17


def _save(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="skyedge-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _provenance() -> dict:
    return {"created": "2026-12-01T00:00:00Z", "framework": {"onnx": onnx.__version__}, "metrics": {}}


def frame_package(
    out: Path,
    classes: list[str] | None = None,
    size: int = 32,
    channels: int = 1,
    unknown_threshold: float = 1e3,
    cloud_map: bool = False,
    cloud_head: bool = False,
    statistics: bool = False,
) -> Path:
    """A frame package: image -> a fixed random projection (the embedding) -> softmax of a fixed linear map;
    ``min_distance`` is the embedding's length (far beyond any sky at the default threshold). ``cloud_map``: also
    a (batch, 1, size/16, size/16) map, the sigmoid of each 16 x 16 block's mean input (bright = cloudy).
    ``cloud_head``: the map comes instead from a head shaped as export names it (a Conv reading
    ``*cloud.net.0.weight``) on three features per 16 x 16 block (mean, mean square, roughness), shipped reading
    rough as cloudy (a starry sky is rough, an overcast smooth: wrong on purpose, for ``adapt`` to mend).
    ``statistics``: also the head statistics ``adapt`` starts from."""
    classes = list(classes or FRAME_CLASSES)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    dim, k, n_in = 8, len(classes), channels * size * size
    w = numpy_helper.from_array(rng.normal(0, 1 / np.sqrt(n_in), (n_in, dim)).astype(np.float32), "w")
    m = numpy_helper.from_array(rng.normal(0, 3.0, (dim, k)).astype(np.float32), "m")
    # With a cloud head, one reader of the input, as in exported graphs (the FP16 converter casts each reader's
    # input under the same name).
    pixels = "pixels" if cloud_head else "image"
    nodes = [
        *([helper.make_node("Identity", ["image"], ["pixels"])] if cloud_head else []),
        helper.make_node("Flatten", [pixels], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "w"], ["embedding"]),
        helper.make_node("MatMul", ["embedding", "m"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ReduceL2", ["embedding"], ["min_distance"], axes=[1], keepdims=0),
    ]
    outputs = [
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", k]),
        helper.make_tensor_value_info("min_distance", TensorProto.FLOAT, ["batch"]),
        helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", dim]),
    ]
    cells = size // 16
    inits = [w, m]
    if cloud_head:
        nodes += _cloud_head_nodes(inits)
        outputs.append(helper.make_tensor_value_info("cloud_map", TensorProto.FLOAT, ["batch", 1, cells, cells]))
    elif cloud_map:
        nodes += [
            helper.make_node("ReduceMean", ["image"], ["grey"], axes=[1], keepdims=1),
            helper.make_node("AveragePool", ["grey"], ["blocks"], kernel_shape=[16, 16], strides=[16, 16]),
            helper.make_node("Sigmoid", ["blocks"], ["cloud_map"]),
        ]
        outputs.append(helper.make_tensor_value_info("cloud_map", TensorProto.FLOAT, ["batch", 1, cells, cells]))
    graph = helper.make_graph(nodes, "stub-frame", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", channels, size, size])], outputs, inits)
    _save(graph, out / "model.onnx")
    card = {
        "schema_version": 1,
        "name": "stub-frame",
        "task": "frame",
        "classes": classes,
        "inputs": [
            {"name": "image", "role": "image", "dtype": "float32", "shape": ["batch", channels, size, size], "layout": "NCHW"}
        ],
        "outputs": [
            {"name": "probabilities", "role": "probabilities", "shape": ["batch", k]},
            {"name": "min_distance", "role": "min_distance", "shape": ["batch"]},
            {"name": "embedding", "role": "embedding", "shape": ["batch", dim]},
        ]
        + ([{"name": "cloud_map", "role": "cloud_map", "shape": ["batch", 1, cells, cells]}] if cloud_map or cloud_head else []),
        "preprocess": {
            "size": [size, size],
            "channels": channels,
            "color": "mono" if channels == 1 else "rgb",
            "stretch": {"kind": "percentile", "low_percentile": 1.0, "high_percentile": 99.5},
            "mean": [0.3] * channels,
            "std": [0.25] * channels,
            "horizon_mask": True,
        },
        "metric_head": {
            "kind": "mahalanobis",
            "embedding_dim": dim,
            "unknown_threshold": unknown_threshold,
            "loss": "cross_entropy",
        },
        "files": {"fp32": "model.onnx"},
        "sha256": {"model.onnx": sha256_file(out / "model.onnx")},
        "provenance": _provenance(),
    }
    if statistics:
        from skyedge.head_statistics import write_head_statistics

        write_head_statistics(out / "head_statistics.npz", rng.normal(0, 1, (k, dim)), np.eye(dim), np.full(k, 50))
        card["metric_head"]["statistics"] = "head_statistics.npz"
        card["sha256"]["head_statistics.npz"] = sha256_file(out / "head_statistics.npz")
    return _write(card, out)


def _cloud_head_nodes(inits: list) -> list:
    """Nodes from ``image`` to ``cloud_map`` through a feature map and a one-layer head (weights added to
    ``inits``)."""
    block = {"kernel_shape": [16, 16], "strides": [16, 16]}
    inits += [
        numpy_helper.from_array(np.array([[[[0.0]], [[0.0]], [[3.0]]]], np.float32), "stub.cloud.net.0.weight"),
        numpy_helper.from_array(np.array([-1.5], np.float32), "stub.cloud.net.0.bias"),
    ]
    return [
        helper.make_node("ReduceMean", ["pixels"], ["grey"], axes=[1], keepdims=1),
        helper.make_node("AveragePool", ["grey"], ["block_mean"], **block),
        helper.make_node("Mul", ["grey", "grey"], ["grey2"]),
        helper.make_node("AveragePool", ["grey2"], ["block_mean2"], **block),
        helper.make_node("AveragePool", ["grey"], ["local"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Sub", ["grey", "local"], ["detail"]),
        helper.make_node("Abs", ["detail"], ["detail_abs"]),
        helper.make_node("AveragePool", ["detail_abs"], ["roughness"], **block),
        helper.make_node("Concat", ["block_mean", "block_mean2", "roughness"], ["cloud_features"], axis=1),
        helper.make_node("Conv", ["cloud_features", "stub.cloud.net.0.weight", "stub.cloud.net.0.bias"], ["head_logit"]),
        helper.make_node("Sigmoid", ["head_logit"], ["cloud_map"]),
    ]


def _sequence_graph(name: str, k: int, stamp: int, n_cond: int, step: bool):
    """probabilities[b, t] = softmax(a * sum of the stamp means up to epoch t + c): each answer depends on the whole
    history, so the step graph must carry its running sum (state ``h``) to agree with the full graph."""
    rng = np.random.default_rng(11)
    a = numpy_helper.from_array(rng.normal(0, 2.0, (1, k)).astype(np.float32), "a")
    c = numpy_helper.from_array(rng.normal(0, 1.0, (k,)).astype(np.float32), "c")
    inits = [a, c, numpy_helper.from_array(np.array([2], np.int64), "axis2"), numpy_helper.from_array(np.array(1, np.int64), "time")]
    nodes = [
        helper.make_node("ReduceMean", ["stamps"], ["m"], axes=[2, 3, 4], keepdims=0),
        helper.make_node("Unsqueeze", ["m", "axis2"], ["u"]),  # (batch, time, 1)
        helper.make_node("CumSum", ["u", "time"], ["running"]),
    ]
    inputs = [
        helper.make_tensor_value_info("stamps", TensorProto.FLOAT, ["batch", "time", 1, stamp, stamp]),
        helper.make_tensor_value_info("conditions", TensorProto.FLOAT, ["batch", "time", n_cond]),
    ]
    outputs = [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", "time", k])]
    total = "running"
    if step:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axis1"))
        nodes += [
            helper.make_node("Unsqueeze", ["h", "axis1"], ["h3"]),  # (batch, 1, 1)
            helper.make_node("Add", ["running", "h3"], ["carried"]),
            helper.make_node("ReduceSum", ["u", "axis1"], ["chunk"], keepdims=0),
            helper.make_node("Add", ["h", "chunk"], ["h_out"]),
        ]
        total = "carried"
        inputs.append(helper.make_tensor_value_info("h", TensorProto.FLOAT, ["batch", 1]))
        outputs.append(helper.make_tensor_value_info("h_out", TensorProto.FLOAT, ["batch", 1]))
    nodes += [
        helper.make_node("MatMul", [total, "a"], ["ua"]),
        helper.make_node("Add", ["ua", "c"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=2),
    ]  # the card names a conditions input, which the stub reads none of
    return helper.make_graph(nodes, name, inputs, outputs, inits)


def sequence_package(
    out: Path, classes: list[str] | None = None, stamp: int = 21, max_epochs: int = 30, flux_scale: str = "zero_point"
) -> Path:
    """A sequence package with its step graph: each epoch's answer is a fixed function of that epoch's stamp."""
    classes = list(classes or SEQUENCE_CLASSES)
    out.mkdir(parents=True, exist_ok=True)
    k, conditions = len(classes), ["fwhm", "log_sky", "zero_point", "airmass"]
    _save(_sequence_graph("stub-sequence", k, stamp, len(conditions), step=False), out / "model.onnx")
    _save(_sequence_graph("stub-sequence-step", k, stamp, len(conditions), step=True), out / "model.step.onnx")
    stamps = {"name": "stamps", "role": "stamps", "shape": ["batch", "time", 1, stamp, stamp], "layout": "NTCHW"}
    conds = {"name": "conditions", "role": "conditions", "shape": ["batch", "time", len(conditions)]}
    probs = {"name": "probabilities", "role": "probabilities", "shape": ["batch", "time", k]}
    card = {
        "schema_version": 1,
        "name": "stub-sequence",
        "task": "sequence",
        "classes": classes,
        "inputs": [stamps, conds],
        "outputs": [probs],
        "preprocess": {
            "size": [stamp, stamp],
            "channels": 1,
            "color": "mono",
            "stretch": {"kind": "asinh"},
            "mean": [0.0],
            "std": [1.0],
            "horizon_mask": False,
            "resize": "none",
        },
        "sequence": {
            "stamp_size": stamp,
            "min_epochs": 1,
            "max_epochs": max_epochs,
            "conditions": conditions,
            "conditions_mean": [3.0, 5.0, 25.0, 1.3],
            "conditions_std": [1.0, 1.0, 1.0, 0.2],
            "flux_scale": flux_scale,
        },
        "metric_head": {"kind": "softmax", "loss": "cross_entropy"},
        "files": {"fp32": "model.onnx"},
        "step": {
            "inputs": [stamps, conds, {"name": "h", "role": "state", "shape": ["batch", 1]}],
            "outputs": [probs, {"name": "h_out", "role": "state", "shape": ["batch", 1]}],
            "state": {"h": "h_out"},
            "files": {"fp32": "model.step.onnx"},
        },
        "sha256": {f: sha256_file(out / f) for f in ("model.onnx", "model.step.onnx")},
        "provenance": _provenance(),
    }
    return _write(card, out)


def _write(card: dict, out: Path) -> Path:
    from skyedge.model_card import ModelCard

    write_card(ModelCard.model_validate(json.loads(json.dumps(card))), out)
    return out
