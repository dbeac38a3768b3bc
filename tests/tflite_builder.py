"""Single-op TFLite flatbuffers built directly with the schema object API (no converter).

The Keras converter only produces the quantization parameters calibration gives; the property
tests need any parameters (tiny and huge scales, zero points at the range ends, biases near the
int32 limits), so they write the flatbuffer themselves.

Example::

    x = TensorSpec("x", (4, 6, 6, 3), scale=(0.02,), zero_point=(-128,))
    w = TensorSpec("w", (8, 3, 3, 3), scale=tuple(per_channel), zero_point=(0,) * 8,
                   data=weights)
    y = TensorSpec("y", (4, 6, 6, 8), scale=(0.1,), zero_point=(5,))
    model = single_op("CONV_2D", [x, w, None], [y], {"padding": "SAME", "strideW": 1})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

_DTYPES = {"int8": (9, np.int8), "int16": (7, np.int16), "int32": (2, np.int32),
           "float32": (0, np.float32)}
_ACTIVATIONS = {"NONE": 0, "RELU": 1, "RELU_N1_TO_1": 2, "RELU6": 3, "TANH": 4}
_PADDING = {"SAME": 0, "VALID": 1}

# opcode -> (BuiltinOptions member, options class name); None: the op has no options table
_OPTIONS: dict[str, tuple[str, str] | None] = {
    "CONV_2D": ("Conv2DOptions", "Conv2DOptionsT"),
    "DEPTHWISE_CONV_2D": ("DepthwiseConv2DOptions", "DepthwiseConv2DOptionsT"),
    "FULLY_CONNECTED": ("FullyConnectedOptions", "FullyConnectedOptionsT"),
    "ADD": ("AddOptions", "AddOptionsT"),
    "MUL": ("MulOptions", "MulOptionsT"),
    "MAX_POOL_2D": ("Pool2DOptions", "Pool2DOptionsT"),
    "AVERAGE_POOL_2D": ("Pool2DOptions", "Pool2DOptionsT"),
    "MEAN": ("ReducerOptions", "ReducerOptionsT"),
    "SOFTMAX": ("SoftmaxOptions", "SoftmaxOptionsT"),
    "CONCATENATION": ("ConcatenationOptions", "ConcatenationOptionsT"),
    "PAD": ("PadOptions", "PadOptionsT"),
    "PADV2": ("PadV2Options", "PadV2OptionsT"),
    "RESHAPE": ("ReshapeOptions", "ReshapeOptionsT"),
    "EXPAND_DIMS": ("ExpandDimsOptions", "ExpandDimsOptionsT"),
    "SQUEEZE": ("SqueezeOptions", "SqueezeOptionsT"),
    "LOGISTIC": None,
    "QUANTIZE": None,
    "DEQUANTIZE": None,
    "HARD_SWISH": None,
    "RELU": None,
    "RELU6": None,
    "TANH": None,
    "RSQRT": None,
    "PRELU": None,
    "LEAKY_RELU": ("LeakyReluOptions", "LeakyReluOptionsT"),
    "SUB": ("SubOptions", "SubOptionsT"),
    "MAXIMUM": ("MaximumMinimumOptions", "MaximumMinimumOptionsT"),
    "MINIMUM": ("MaximumMinimumOptions", "MaximumMinimumOptionsT"),
    "SQUARED_DIFFERENCE": ("SquaredDifferenceOptions", "SquaredDifferenceOptionsT"),
    "NEG": ("NegOptions", "NegOptionsT"),
    "STRIDED_SLICE": ("StridedSliceOptions", "StridedSliceOptionsT"),
    "SPLIT": ("SplitOptions", "SplitOptionsT"),
    "SPLIT_V": ("SplitVOptions", "SplitVOptionsT"),
    "UNPACK": ("UnpackOptions", "UnpackOptionsT"),
    "RESIZE_BILINEAR": ("ResizeBilinearOptions", "ResizeBilinearOptionsT"),
    "RESIZE_NEAREST_NEIGHBOR": ("ResizeNearestNeighborOptions",
                                "ResizeNearestNeighborOptionsT"),
    "TRANSPOSE_CONV": ("TransposeConvOptions", "TransposeConvOptionsT"),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": ("UnidirectionalSequenceLSTMOptions",
                                     "UnidirectionalSequenceLSTMOptionsT"),
}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: constant when ``data`` is given. ``scale`` None: not quantized."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: tuple[float, ...] | None = None
    zero_point: tuple[int, ...] | None = None
    axis: int = 0
    data: np.ndarray | None = None
    variable: bool = False  # an op's state (not a graph input)


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def _options(s: Any, opcode: str, options: Mapping[str, Any]) -> tuple[int, Any]:
    entry = _OPTIONS[opcode]
    if entry is None:
        assert not options, f"{opcode} takes no options"
        return 0, None
    member, cls = entry
    opts = getattr(s, cls)()
    for key, value in options.items():
        if key == "fusedActivationFunction" and isinstance(value, str):
            value = _ACTIVATIONS[value]
        if key == "padding" and isinstance(value, str):
            value = _PADDING[value]
        assert hasattr(opts, key), f"{cls} has no field {key}"
        setattr(opts, key, value)
    return getattr(s.BuiltinOptions, member), opts


def single_op(opcode: str, inputs: Sequence[TensorSpec | None], outputs: Sequence[TensorSpec],
              options: Mapping[str, Any] | None = None) -> bytes:
    """A model of one op: the non-constant inputs are the graph inputs, ``None`` an absent
    optional input (index -1). Option fields use the schema's names (``strideW``, ``padding``
    as "SAME"/"VALID", ``fusedActivationFunction`` as "RELU" ...)."""
    import flatbuffers

    s = _schema()
    buffers = [s.BufferT()]  # buffer 0: the empty buffer, by convention
    tensors: list[Any] = []
    index: dict[int, int] = {}

    def add(spec: TensorSpec) -> int:
        t = s.TensorT()
        t.name, t.shape = spec.name, list(spec.shape)
        t.type = _DTYPES[spec.dtype][0]
        if spec.scale is not None:
            q = s.QuantizationParametersT()
            q.scale = [float(np.float32(v)) for v in spec.scale]
            q.zeroPoint = [int(v) for v in (spec.zero_point or (0,) * len(spec.scale))]
            q.quantizedDimension = spec.axis
            t.quantization = q
        if spec.data is not None:
            b = s.BufferT()
            raw = np.ascontiguousarray(spec.data, dtype=_DTYPES[spec.dtype][1])
            assert raw.size == int(np.prod(spec.shape)), spec.name
            b.data = np.frombuffer(raw.tobytes(), dtype=np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        t.isVariable = spec.variable
        tensors.append(t)
        index[id(spec)] = len(tensors) - 1
        return len(tensors) - 1

    op = s.OperatorT()
    op.inputs = [-1 if spec is None else add(spec) for spec in inputs]
    op.outputs = [add(spec) for spec in outputs]
    op.builtinOptionsType, op.builtinOptions = _options(s, opcode, options or {})
    code = s.OperatorCodeT()
    builtin = getattr(s.BuiltinOperator, opcode)
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    sub = s.SubGraphT()
    sub.tensors, sub.operators = tensors, [op]
    sub.inputs = [index[id(spec)] for spec in inputs
                  if spec is not None and spec.data is None and not spec.variable]
    sub.outputs = list(op.outputs)
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [sub]
    model.buffers, model.description = buffers, "tinyprune test model"
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
