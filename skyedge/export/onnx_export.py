"""PyTorch -> ONNX with stable tensor names, dynamic batch (and time), then checker and shape inference.

Frame models go through torch's ``torch.export``-based exporter (``dynamo=True``),
which folds batch norms into convolutions. Sequence models go through the
TorchScript exporter: ``torch.export`` specializes an LSTM's sequence length,
while the TorchScript symbolics emit ONNX ``LSTM``/``GRU`` (both in the TensorRT
parser's table) with the time axis left dynamic. Every export is checked for a
frozen axis against the card.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from skyedge.errors import SkyedgeError

log = logging.getLogger(__name__)
# The exporter's IR passes log every rewrite at INFO.
logging.getLogger("onnx_ir").setLevel(logging.WARNING)

OPSET = 18  # inside TensorRT 10.3's parser range (9..20); ONNX Runtime quantization supports it
MAX_BATCH = 4096


class ExportError(SkyedgeError, RuntimeError):
    """The exporter failed or produced a graph that does not check out."""


def example_inputs(card: dict) -> tuple[torch.Tensor, ...]:
    """Zero-filled inputs in the card's shapes, batch 2 (and the card's max epochs) for tracing."""
    tensors = []
    for spec in card["inputs"]:
        shape = []
        for axis, dim in enumerate(spec["shape"]):
            if isinstance(dim, int):
                shape.append(dim)
            else:
                shape.append(2 if axis == 0 else card["sequence"]["max_epochs"])
        tensors.append(torch.zeros(shape, dtype=torch.float32))
    return tuple(tensors)


def _export_dynamo(model, inputs, path, input_names, output_names, card, opset) -> None:
    # One Dim object per axis name, so inputs sharing an axis share its symbol.
    named = {"batch": torch.export.Dim("batch", min=1, max=MAX_BATCH)}
    dims: list[dict] = []
    for spec in card["inputs"]:
        axes = {}
        for axis, dim in enumerate(spec["shape"]):
            if isinstance(dim, str):
                if dim not in named:
                    named[dim] = torch.export.Dim(dim, min=1, max=card["sequence"]["max_epochs"])
                axes[axis] = named[dim]
        dims.append(axes)
    _onnx_export(model, inputs, path, input_names, output_names, opset, dynamo=True, dynamic_shapes=tuple(dims), external_data=False)


def _export_torchscript(model, inputs, path, input_names, output_names, card, opset) -> None:
    # torch.export specializes an nn.LSTM/GRU's sequence length to the tracing length (torch 2.14 raises
    # "Constraints violated (time)" and the ONNX exporter then freezes the output's time axis), so
    # recurrent models go through the TorchScript exporter, whose LSTM/GRU symbolics keep time dynamic.
    axes = {}
    for spec in card["inputs"] + card["outputs"]:
        axes[spec["name"]] = {i: d for i, d in enumerate(spec["shape"]) if isinstance(d, str)}
    _onnx_export(model, inputs, path, input_names, output_names, opset, dynamo=False, dynamic_axes=axes, do_constant_folding=True)


def _onnx_export(model, inputs, path, input_names, output_names, opset, **exporter) -> None:
    """torch.onnx.export with the names and opset both exporters share; ``exporter``: the one's own options."""
    torch.onnx.export(
        model.eval(),
        inputs,
        str(path),
        input_names=input_names,
        output_names=output_names,
        opset_version=opset,
        **exporter,
    )


def export_onnx(model: nn.Module, card: dict, path: Path, opset: int = OPSET) -> onnx.ModelProto:
    """Export ``model`` to ``path`` with the card's input/output names and dynamic axes; return the checked graph."""
    inputs = example_inputs(card)
    input_names = [t["name"] for t in card["inputs"]]
    output_names = [t["name"] for t in card["outputs"]]
    # The exporter narrates every stage on stdout; keep it for the log instead of the user's terminal.
    chatter = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(chatter):
            warnings.simplefilter("ignore")
            if card["task"] == "sequence":
                _export_torchscript(model, inputs, path, input_names, output_names, card, opset)
            else:
                _export_dynamo(model, inputs, path, input_names, output_names, card, opset)
    except Exception as exc:
        log.debug("exporter output:\n%s", chatter.getvalue())
        raise ExportError(f"torch.onnx.export failed for {card.get('name', 'model')}: {exc}") from exc
    graph = onnx.load(str(path))
    try:
        onnx.checker.check_model(graph, full_check=True)
        graph = onnx.shape_inference.infer_shapes(graph, strict_mode=True)
    except Exception as exc:
        raise ExportError(f"{path}: exported graph fails onnx.checker/shape inference: {exc}") from exc
    got_in = [i.name for i in graph.graph.input]
    got_out = [o.name for o in graph.graph.output]
    if got_in != input_names or got_out != output_names:
        raise ExportError(f"{path}: tensor names {got_in} -> {got_out}, expected {input_names} -> {output_names}")
    for out, spec in zip(graph.graph.output, card["outputs"], strict=True):
        got = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
        want = [
            d if isinstance(d, int) else got[i] if isinstance(got[i], str) else None
            for i, d in enumerate(spec["shape"])
        ]
        if len(got) != len(spec["shape"]) or None in want:
            raise ExportError(
                f"{path}: output '{out.name}' has shape {got}, the card says {spec['shape']} (an axis froze)"
            )
    onnx.save(graph, str(path))
    return graph


def simplify(path: Path) -> bool:
    """Run onnxslim in place when installed and it removes nodes; return whether the file changed."""
    try:
        import onnxslim
    except ImportError:
        return False
    before = onnx.load(str(path))
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            slim = onnxslim.slim(before)
    except Exception as exc:  # noqa: BLE001 - simplification is optional; the unsimplified graph stands
        log.warning("onnxslim failed (%s); keeping the exported graph", exc)
        return False
    if slim is None or len(slim.graph.node) >= len(before.graph.node):
        return False
    onnx.save(slim, str(path))
    return True
