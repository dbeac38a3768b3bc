"""The typed graph every stage after ``quantize`` works on: tensors, quantization, ops.

It is read from a ``.tflite`` flatbuffer by :func:`tinyprune.ir.read_tflite` and is immutable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

DTYPE_BYTES = {"int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8, "float32": 4, "bool": 1}
NP_DTYPES: dict[str, type[np.generic]] = {
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float32": np.float32, "bool": np.bool_,
}
"""The tensor types the reader accepts, as numpy types."""


@dataclass(frozen=True)
class Quant:
    """Affine quantization: ``real = scale * (q - zero_point)``; per-channel when len(scale) > 1.

    Scales are the float32 values of the flatbuffer, held as Python floats (exactly representable).
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor of the graph. ``data`` is set for constants (weights, biases, shapes), else None.
    ``is_variable``: an op's state (the hidden and cell state of an LSTM), which the op reads
    before it writes it; an op's intermediate (TFLite ``intermediates``, read by no kernel
    tinyprune has) may have a zero dimension and no bytes."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None
    is_variable: bool = False

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * DTYPE_BYTES[self.dtype]

    @property
    def scale(self) -> float:
        """The single (per-tensor) scale; raises if the tensor is not per-tensor quantized."""
        assert self.quant is not None and len(self.quant.scale) == 1, self.name
        return self.quant.scale[0]

    @property
    def zero_point(self) -> int:
        assert self.quant is not None, self.name
        return self.quant.zero_point[0]


@dataclass(frozen=True)
class Op:
    """One operator. ``inputs``/``outputs`` are tensor indices (-1 = optional input absent).

    ``options`` holds the builtin options as plain values, enums by name, e.g.
    ``{"padding": "SAME", "stride_w": 1, "stride_h": 1, "fused_activation_function": "RELU"}``.
    ``name`` is the layer name (derived from the first output tensor's name).
    """

    index: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class Graph:
    """The whole model: tensors by index, ops in execution order, graph inputs and outputs."""

    tensors: tuple[Tensor, ...]
    ops: tuple[Op, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    source: Path | None = None

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    @property
    def stateful(self) -> bool:
        """The model keeps state between invokes (variable tensors: an LSTM's hidden and cell
        state), which TFLM carries over unless reset."""
        return any(t.is_variable for t in self.tensors)

    def op_inputs(self, op: Op) -> list[Tensor | None]:
        return [self.tensors[i] if i >= 0 else None for i in op.inputs]

    def op_outputs(self, op: Op) -> list[Tensor]:
        return [self.tensors[i] for i in op.outputs]
