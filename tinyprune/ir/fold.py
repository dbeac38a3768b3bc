"""Folds shape-only subgraphs at generation time.

Keras 3's ``Flatten`` becomes SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE in int8 TFLite: a shape
computation on a static shape.  Ops whose inputs are all known (constants, or the static shape of
a tensor for SHAPE) are evaluated here with numpy and their outputs become constants, so only ops
that touch activations are left for the planner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.ir.graph import NP_DTYPES, Graph, Op, Tensor
from tinyprune.ir.validate import FIX, op_what, short

Folder = Callable[[Op, list[Tensor | None]], np.ndarray | None]


def _shape(op: Op, ins: list[Tensor | None]) -> np.ndarray | None:
    t = ins[0]
    dtype = np.int64 if op.options.get("out_type") == 4 else np.int32  # TensorType.INT64 == 4
    return None if t is None else np.array(t.shape, dtype=dtype)


def _strided_slice(op: Op, ins: list[Tensor | None]) -> np.ndarray | None:
    x, begin, end, strides = (t.data if t is not None else None for t in ins[:4])
    if x is None or begin is None or end is None or strides is None:
        return None
    o = op.options
    if o.get("ellipsis_mask", 0) or o.get("new_axis_mask", 0) or o.get("offset", False):
        return None
    slices: list[slice | int] = []
    for axis in range(len(begin)):
        b = None if o.get("begin_mask", 0) >> axis & 1 else int(begin[axis])
        e = None if o.get("end_mask", 0) >> axis & 1 else int(end[axis])
        if o.get("shrink_axis_mask", 0) >> axis & 1:
            slices.append(int(begin[axis]))
        else:
            slices.append(slice(b, e, int(strides[axis])))
    return np.asarray(x[tuple(slices)])


def _const_datas(ins: list[Tensor | None]) -> list[np.ndarray] | None:
    """The constant values of all inputs, or None when one is missing or not constant."""
    datas = [t.data for t in ins if t is not None and t.data is not None]
    return datas if len(datas) == len(ins) else None


def _pack(op: Op, ins: list[Tensor | None]) -> np.ndarray | None:
    datas = _const_datas(ins)
    return None if datas is None else np.stack(datas, axis=int(op.options.get("axis", 0)))


def _concat(op: Op, ins: list[Tensor | None]) -> np.ndarray | None:
    datas = _const_datas(ins)
    if datas is None or any(t is not None and t.quant is not None for t in ins):
        return None
    return np.concatenate(datas, axis=int(op.options.get("axis", 0)))


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Folder:
    def fold(op: Op, ins: list[Tensor | None]) -> np.ndarray | None:
        a, b = ins[0], ins[1]
        if a is None or b is None or a.data is None or b.data is None:
            return None
        if a.quant is not None or b.quant is not None or a.dtype not in ("int32", "int64"):
            return None
        return fn(a.data, b.data).astype(a.data.dtype)

    return fold


FOLDERS: dict[str, Folder] = {
    "SHAPE": _shape,
    "STRIDED_SLICE": _strided_slice,
    "PACK": _pack,
    "CONCATENATION": _concat,
    "MUL": _binary(np.multiply),
    "ADD": _binary(np.add),
    "SUB": _binary(np.subtract),
}


def fold_constants(graph: Graph) -> Graph:
    """Returns a graph where foldable ops are gone and their outputs are constants.

    Raises:
        UsageError: an op cannot be evaluated on its constant inputs (e.g. a zero stride, axes
            out of range), or its value does not fit the shape of its output tensor.
    """
    tensors = list(graph.tensors)
    kept: list[Op] = []
    for op in graph.ops:
        folder = FOLDERS.get(op.opcode)
        ins = [tensors[i] if i >= 0 else None for i in op.inputs]
        value = _evaluate(folder, op, ins, graph) if folder is not None and len(op.outputs) == 1 \
            else None
        if value is None:
            kept.append(op)
            continue
        out = tensors[op.outputs[0]]
        tensors[out.index] = dataclasses.replace(out, data=_as_output(value, out, op, graph))
    return dataclasses.replace(graph, tensors=tuple(tensors), ops=tuple(kept))


def _where(op: Op, graph: Graph) -> str:
    label = str(graph.source) if graph.source is not None else "the .tflite model"
    return f"{label}: {op_what(op.index, op.name, op.opcode)}"


def _evaluate(folder: Folder, op: Op, ins: list[Tensor | None], graph: Graph) -> np.ndarray | None:
    try:
        with np.errstate(all="ignore"):
            return folder(op, ins)
    except (ValueError, IndexError, TypeError, OverflowError) as exc:  # numpy on the file's data
        raise UsageError(f"{_where(op, graph)}: cannot be evaluated on its constant inputs "
                         f"({short(str(exc), 100)}); {FIX}") from None


def _as_output(value: np.ndarray, out: Tensor, op: Op, graph: Graph) -> np.ndarray:
    """The folded value in the shape and type of the op's output tensor (a tensor without a
    shape takes the value as computed)."""
    value = np.asarray(value)
    if not out.shape:
        return value
    if value.size != out.size:
        raise UsageError(f"{_where(op, graph)}: output: expected {out.size} values for shape "
                         f"{list(out.shape)}, received {value.size} from its inputs; {FIX}")
    dtype = NP_DTYPES.get(out.dtype)
    if dtype is not None and value.dtype != dtype:
        value = value.astype(dtype)
    return value.reshape(out.shape)
