"""Checks and figures for an int8 ``.tflite`` file given as the model (no TensorFlow needed).

Only what the loader needs: the file is a TFLite flatbuffer, it is full-integer int8, its input
and output shapes, parameter and MAC counts. The full graph reader is :mod:`tinyprune.ir`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune.errors import UsageError

log = logging.getLogger(__name__)

TFLITE_MAGIC = b"TFL3"
_INT8_FIX = "give the Keras model or a full-integer int8 .tflite"
# Ops with weights: opcode -> index of the filter input (bias is the next one).
_WEIGHTED_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}
_ACTIVATION_TYPES = ("INT8",)


@dataclass(frozen=True)
class TfliteInfo:
    """Shapes (batch dimension dropped) and counts of a checked int8 TFLite model."""

    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    params: int
    macs: int


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _enum_names(enum_cls: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_")}


def parse_flatbuffer(path: Path, data: bytes) -> Any:
    """Return the flatbuffer as a ``ModelT`` object, or raise UsageError naming the file."""
    if len(data) < 8 or data[4:8] != TFLITE_MAGIC:
        raise UsageError(f"{path}: not a TFLite model (expected 'TFL3' at byte 4)")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    except Exception as exc:  # a damaged flatbuffer raises anything from struct/IndexError on
        log.debug("flatbuffer parse error in %s: %s", path, exc)
        raise UsageError(f"{path}: not a TFLite model (damaged flatbuffer)") from None
    if not model.subgraphs:
        raise UsageError(f"{path}: not a TFLite model (no subgraph)")
    return model


def _opcode_names(model: Any) -> list[str]:
    names = _enum_names(_schema().BuiltinOperator)
    codes = []
    for code in model.operatorCodes:
        value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
        codes.append(names.get(value, f"OP_{value}"))
    return codes


def _tensor_label(tensor: Any) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _check_int8(path: Path, model: Any) -> None:
    types = _enum_names(_schema().TensorType)
    graph = model.subgraphs[0]
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            tensor = graph.tensors[i]
            if types[tensor.type] not in _ACTIVATION_TYPES:
                raise UsageError(
                    f"{path}: expected a full-integer int8 TFLite model, received {kind} tensor "
                    f"'{_tensor_label(tensor)}' of type {types[tensor.type].lower()}; {_INT8_FIX}"
                )
    opcodes = _opcode_names(model)
    for op in graph.operators:
        name = opcodes[op.opcodeIndex]
        if name not in _WEIGHTED_OPS:
            continue
        weights = graph.tensors[op.inputs[_WEIGHTED_OPS[name]]]
        if types[weights.type] != "INT8":
            raise UsageError(
                f"{path}: expected a full-integer int8 TFLite model, received "
                f"{types[weights.type].lower()} weights in tensor '{_tensor_label(weights)}' "
                f"({name}); {_INT8_FIX}"
            )


def _shape(tensor: Any) -> tuple[int, ...]:
    shape = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    return shape[1:] if len(shape) > 1 else shape


def _counts(model: Any) -> tuple[int, int]:
    graph = model.subgraphs[0]
    opcodes = _opcode_names(model)
    params = macs = 0
    for op in graph.operators:
        name = opcodes[op.opcodeIndex]
        if name not in _WEIGHTED_OPS:
            continue
        first = _WEIGHTED_OPS[name]
        for i in op.inputs[first : first + 2]:
            if i >= 0 and graph.tensors[i].shape is not None:
                params += int(np.prod(graph.tensors[i].shape))
        out_elems = int(np.prod(graph.tensors[op.outputs[0]].shape))
        filt = [int(d) for d in graph.tensors[op.inputs[first]].shape]
        per_output = {
            "CONV_2D": int(np.prod(filt[1:])),
            "DEPTHWISE_CONV_2D": int(np.prod(filt[1:3])),
            "FULLY_CONNECTED": filt[-1],
        }[name]
        macs += out_elems * per_output
    return params, macs


def check_tflite(path: Path, data: bytes) -> TfliteInfo:
    """Check that ``data`` is a full-integer int8 TFLite model and return its shapes and counts.

    Raises:
        UsageError: not a TFLite flatbuffer, or float inputs/outputs/weights (the message says to
            give the Keras model or a full-int8 file instead).
    """
    model = parse_flatbuffer(path, data)
    _check_int8(path, model)
    graph = model.subgraphs[0]
    params, macs = _counts(model)
    return TfliteInfo(
        input_shapes=tuple(_shape(graph.tensors[i]) for i in graph.inputs),
        output_shapes=tuple(_shape(graph.tensors[i]) for i in graph.outputs),
        params=params,
        macs=macs,
    )
