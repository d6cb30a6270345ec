"""FP16 ONNX with FP32 inputs and outputs: the form TensorRT builds a strongly typed FP16 engine from."""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx

# Recurrent layers stay FP32 (with casts around them): a small share of the compute, the state accumulates
# rounding over epochs, and ONNX Runtime's CPU provider crashes on an FP16 LSTM instead of refusing it.
RECURRENT = ("LSTM", "GRU", "RNN")


def _detach_consumed_outputs(model: onnx.ModelProto) -> None:
    """Give each graph output that other nodes also read its own Identity.

    The FP16 converter casts an output back to FP32 under the output's name, and a
    node reading that name would then receive FP32 beside FP16 (the frame model's
    ``embedding`` feeds the metric head): an invalid graph.
    """
    outputs = {o.name for o in model.graph.output}
    consumed = {i for n in model.graph.node for i in n.input} & outputs
    for name in consumed:
        inner = f"{name}__internal"
        for node in model.graph.node:
            node.output[:] = [inner if o == name else o for o in node.output]
            node.input[:] = [inner if i == name else i for i in node.input]
        model.graph.node.append(onnx.helper.make_node("Identity", [inner], [name], name=f"{name}__output"))


def _drop_unused_recurrent_outputs(model: onnx.ModelProto) -> None:
    """Blank the recurrent nodes' unread state outputs (Y_h, Y_c): the converter mistypes casts on them."""
    read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
    for node in model.graph.node:
        if node.op_type in RECURRENT:
            node.output[:] = [o if o in read else "" for o in node.output]
            while node.output and not node.output[-1]:
                node.output.pop()


def convert_fp16(src: Path, dst: Path) -> onnx.ModelProto:
    """Convert weights and activations of ``src`` to FP16, keep FP32 I/O, write ``dst``."""
    from onnxconverter_common import float16

    model = onnx.load(str(src))
    # Stale shape-inference entries would survive beside the converter's FP16 ones as duplicates.
    del model.graph.value_info[:]
    _detach_consumed_outputs(model)
    _drop_unused_recurrent_outputs(model)
    with warnings.catch_warnings():
        # Weights below FP16's smallest normal are clamped; the converter warns once per value.
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=[*float16.DEFAULT_OP_BLOCK_LIST, *RECURRENT]
        )
    onnx.checker.check_model(half)
    onnx.save(half, str(dst))
    return half
