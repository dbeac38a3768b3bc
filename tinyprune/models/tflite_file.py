"""Checks and figures for an int8 ``.tflite`` file given as the model (no TensorFlow needed).

The file is read and validated by the IR reader (:func:`tinyprune.ir.read_tflite`, every rule of
:mod:`tinyprune.ir.validate`); on top, the loader needs it to be full-integer int8 (int8 inputs,
outputs and weights, per-tensor quantized inputs and outputs) and reports its input and output
shapes, parameter and MAC counts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyprune.errors import UsageError
from tinyprune.ir import Graph, Tensor, read_tflite
from tinyprune.ir.validate import short

log = logging.getLogger(__name__)

_INT8_FIX = "give the Keras model or a full-integer int8 .tflite"
# Ops with weights: opcode -> index of the filter input (bias is the next one).
_WEIGHTED_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}
_ACTIVATION_TYPES = ("int8",)
# MACs per output value from the filter shape (the reader checked its rank for each op).
_MACS_PER_OUTPUT: dict[str, Callable[[tuple[int, ...]], int]] = {
    "CONV_2D": lambda f: f[1] * f[2] * f[3],
    "DEPTHWISE_CONV_2D": lambda f: f[1] * f[2],
    "FULLY_CONNECTED": lambda f: f[-1],
}


@dataclass(frozen=True)
class TfliteInfo:
    """Shapes (batch dimension dropped) and counts of a checked int8 TFLite model."""

    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    params: int
    macs: int


def _label(tensor: Tensor) -> str:
    return f"tensor {tensor.index} '{short(tensor.name)}'"


def _check_io(path: Path, graph: Graph) -> None:
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            tensor = graph.tensor(i)
            if tensor.dtype not in _ACTIVATION_TYPES:
                raise UsageError(
                    f"{path}: expected a full-integer int8 TFLite model, received {kind} "
                    f"{_label(tensor)} of type {tensor.dtype}; {_INT8_FIX}")
            if tensor.quant is None or len(tensor.quant.scale) != 1:
                received = "none" if tensor.quant is None else f"{len(tensor.quant.scale)} scales"
                raise UsageError(
                    f"{path}: {kind} {_label(tensor)}: quantization: expected one scale and zero "
                    f"point (per-tensor), received {received}; {_INT8_FIX}")


def _check_weights(path: Path, graph: Graph) -> None:
    for op in graph.ops:
        if op.opcode not in _WEIGHTED_OPS:
            continue
        weights = graph.tensor(op.inputs[_WEIGHTED_OPS[op.opcode]])
        if weights.dtype != "int8":
            raise UsageError(
                f"{path}: expected a full-integer int8 TFLite model, received "
                f"{weights.dtype} weights in {_label(weights)} ({op.opcode}); {_INT8_FIX}")


def _counts(graph: Graph) -> tuple[int, int]:
    params = macs = 0
    for op in graph.ops:
        if op.opcode not in _WEIGHTED_OPS:
            continue
        first = _WEIGHTED_OPS[op.opcode]
        params += sum(graph.tensor(i).size for i in op.inputs[first:first + 2] if i >= 0)
        filt = graph.tensor(op.inputs[first]).shape
        macs += graph.tensor(op.outputs[0]).size * _MACS_PER_OUTPUT[op.opcode](filt)
    return params, macs


def _shape(tensor: Tensor) -> tuple[int, ...]:
    return tensor.shape[1:] if len(tensor.shape) > 1 else tensor.shape


def check_tflite(path: Path, data: bytes) -> TfliteInfo:
    """Check that ``data`` (the bytes of ``path``) is a valid full-integer int8 TFLite model and
    return its shapes and counts.

    Raises:
        UsageError: not a TFLite flatbuffer, damaged or inconsistent (every message names
            ``path``), or float inputs/outputs/weights (the message says to give the Keras model
            or a full-int8 file instead).
    """
    graph = read_tflite(data, name=path)
    _check_io(path, graph)
    _check_weights(path, graph)
    params, macs = _counts(graph)
    log.debug("%s: %d ops, %d params, %d MACs", path, len(graph.ops), params, macs)
    return TfliteInfo(
        input_shapes=tuple(_shape(graph.tensor(i)) for i in graph.inputs),
        output_shapes=tuple(_shape(graph.tensor(i)) for i in graph.outputs),
        params=params,
        macs=macs,
    )
