"""STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR (int8); TILE.

Slices and resizes on static shapes, as Keras ``Cropping2D``, tensor slicing, ``ops.split``,
``UpSampling2D(interpolation="bilinear")`` and ``Resizing`` become. Every index is computed here
at generation time, as TFLite Micro computes it in Prepare or per call (``strided_slice_logic.h``,
``resize_nearest_neighbor.h`` in float32, ``resize_bilinear.h`` in integers); the kernels copy or
interpolate. Values are never requantized, so input and outputs must share one quantization (the
TFLite converter guarantees it; a model that breaks it is refused).

TILE has no TFLite Micro kernel, so a model with it cannot be checked against the reference: its
refusal (``base.refuse``, not a supported op) names the Keras layer that makes it and what to use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, refuse, register
from tinyprune.kernels.quant import tflite_round
from tinyprune.kernels.tensor import (
    Dims4,
    c_dims,
    dims4,
    fail,
    label_shape,
    op_input,
    op_output,
    require_int8,
    require_rank,
)

F32 = np.float32


def _const_ints(op: Op, graph: Graph, index: int, what: str) -> list[int]:
    t = op_input(op, graph, index)
    if not t.is_const:
        raise fail(op, f"needs constant {what}, received a computed tensor")
    assert t.data is not None
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _same_quantization(op: Op, x: Tensor, *outs: Tensor) -> None:
    for out in outs:
        if out.quant != x.quant:
            raise fail(op, f"expects output '{out.name}' quantized as its input (values are "
                           "copied, not requantized)")


# ---- STRIDED_SLICE --------------------------------------------------------------------------


@dataclass(frozen=True)
class SliceMasks:
    begin: int = 0
    end: int = 0
    shrink: int = 0


def _start_for_axis(start: int, stride: int, size: int, masked: bool) -> int:
    """TFLM StridedSliceStartForAxis."""
    if start < 0:
        start += size
    start = min(max(start, 0), size) if stride > 0 else min(max(start, -1), size - 1)
    if masked:
        start = 0 if stride > 0 else size - 1
    return start


def _end_for_axis(end: int, start: int, stride: int, size: int, masked: bool,
                  shrink: bool) -> int:
    """TFLM StridedSliceEndForAxis (no offset)."""
    if shrink:
        return start if start >= size else start + 1
    if end < 0:
        end += size
    end = min(max(end, 0), size) if stride > 0 else min(max(end, -1), size - 1)
    if masked:
        end = size if stride > 0 else -1
    return end


def strided_slice_plan(shape: tuple[int, ...], begin: list[int], end: list[int],
                       strides: list[int], masks: SliceMasks) -> tuple[Dims4, Dims4, Dims4]:
    """(start, step, count) per [N, H, W, C] axis, as TFLM's StridedSlicePadIndices and
    StridedSliceStart/EndForAxis compute them for a tensor of rank <= 4."""
    pad = 4 - len(shape)
    full = (1,) * pad + tuple(shape)
    begin, end, strides = [0] * pad + begin, [1] * pad + end, [1] * pad + strides
    lead = (1 << pad) - 1
    begin_mask, end_mask = masks.begin << pad | lead, masks.end << pad | lead
    shrink_mask = masks.shrink << pad
    starts, counts = [], []
    for axis, size in enumerate(full):
        stride = strides[axis]
        start = _start_for_axis(begin[axis], stride, size, bool(begin_mask >> axis & 1))
        stop = _end_for_axis(end[axis], start, stride, size, bool(end_mask >> axis & 1),
                             bool(shrink_mask >> axis & 1))
        starts.append(start)
        counts.append(len(range(start, stop, stride)))
    return (
        (starts[0], starts[1], starts[2], starts[3]),
        (strides[0], strides[1], strides[2], strides[3]),
        (counts[0], counts[1], counts[2], counts[3]),
    )


@dataclass(frozen=True)
class StridedSliceHandler:
    opcodes: tuple[str, ...] = ("STRIDED_SLICE",)

    def _plan(self, op: Op, graph: Graph) -> tuple[Dims4, Dims4, Dims4]:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        require_rank(op, x)
        _same_quantization(op, x, out)
        o = op.options
        for name in ("ellipsis_mask", "new_axis_mask"):
            if o.get(name, 0):
                raise fail(op, f"with {name} {o[name]} is not supported (TFLite Micro neither)")
        if o.get("offset", False):
            raise fail(op, "with offset=True is not supported (TFLite Micro neither)")
        begin, end, strides = (_const_ints(op, graph, i, n)
                               for i, n in ((1, "begin"), (2, "end"), (3, "strides")))
        if not len(begin) == len(end) == len(strides) == len(x.shape) or 0 in strides:
            raise fail(op, f"expects {len(x.shape)} begin, end and non-zero stride values, "
                           f"received {begin}, {end}, {strides}")
        masks = SliceMasks(int(o.get("begin_mask", 0)), int(o.get("end_mask", 0)),
                           int(o.get("shrink_axis_mask", 0)))
        start, step, count = strided_slice_plan(x.shape, begin, end, strides, masks)
        if math.prod(count) != out.size:
            raise fail(op, f"selects {list(count)} elements but its output is {list(out.shape)}")
        return start, step, count

    def check(self, op: Op, graph: Graph) -> None:
        self._plan(op, graph)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        start, step, count = self._plan(op, graph)
        params = {
            "input": ctx.act(x.index), "output": ctx.act(out.index),
            "start": c_dims(start), "step": c_dims(step),
            "input_dims": c_dims(dims4(x.shape)), "output_dims": c_dims(count),
            "label": f"strided slice {label_shape(x.shape)} -> {label_shape(out.shape)}",
        }
        return KernelCall(kernel="tp_strided_slice_s8", sources=("tp_strided_slice_s8.c",),
                          template="ops/strided_slice_s8.c.j2", params=params)


# ---- SPLIT / SPLIT_V ------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitHandler:
    """SPLIT (inputs: axis, tensor), SPLIT_V (inputs: tensor, sizes, axis) and UNPACK (input:
    tensor; option axis; each output drops the axis), all one copy kernel."""

    opcodes: tuple[str, ...] = ("SPLIT", "SPLIT_V", "UNPACK")

    def _axis(self, op: Op, graph: Graph, x: Tensor) -> int:
        rank = len(x.shape)
        if op.opcode == "UNPACK":
            axes = [int(op.options.get("axis", 0))]
        else:
            axes = _const_ints(op, graph, 0 if op.opcode == "SPLIT" else 2, "axis")
        if len(axes) != 1 or not -rank <= axes[0] < rank:
            raise fail(op, f"axis {axes} is out of range for shape {list(x.shape)}")
        return axes[0] % rank

    def _layout(self, op: Op, graph: Graph) -> tuple[Tensor, list[Tensor], int, list[int]]:
        x = op_input(op, graph, 1 if op.opcode == "SPLIT" else 0)
        outs = [graph.tensor(i) for i in op.outputs]
        require_int8(op, x, *outs)
        _same_quantization(op, x, *outs)
        axis = self._axis(op, graph, x)
        rest = [d for i, d in enumerate(x.shape) if i != axis]
        extents = []
        for t in outs:
            shape = list(t.shape)
            if op.opcode == "UNPACK":
                shape.insert(axis, 1)
            if len(shape) != len(x.shape) or [d for i, d in enumerate(shape) if i != axis] != rest:
                raise fail(op, f"output '{t.name}' of shape {list(t.shape)} does not fit input "
                               f"{list(x.shape)} along axis {axis}")
            extents.append(shape[axis])
        if sum(extents) != x.shape[axis]:
            raise fail(op, f"outputs along axis {axis} do not add up to {x.shape[axis]}")
        return x, outs, axis, extents

    def check(self, op: Op, graph: Graph) -> None:
        self._layout(op, graph)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, outs, axis, extents = self._layout(op, graph)
        inner = math.prod(x.shape[axis + 1:])
        params = {
            "input": ctx.act(x.index),
            "outer": math.prod(x.shape[:axis]),
            "input_row": x.shape[axis] * inner,
            "outputs": [{"data": ctx.act(t.index), "row": e * inner}
                        for t, e in zip(outs, extents, strict=True)],
            "label": f"{op.opcode.lower()} {label_shape(x.shape)} into {len(outs)} along "
                     f"axis {axis}",
        }
        return KernelCall(kernel="tp_split_s8", sources=("tp_split_s8.c",),
                          template="ops/split_s8.c.j2", params=params)


# ---- RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR ----------------------------------------------


def nearest_indices(out_size: int, in_size: int, align_corners: bool,
                    half_pixel_centers: bool) -> list[int]:
    """The source index of every output index: TFLM GetNearestNeighbor, in float32."""
    if align_corners and out_size > 1:
        scale = F32(in_size - 1) / F32(out_size - 1)
    else:
        scale = F32(in_size) / F32(out_size)
    offset = F32(0.5 if half_pixel_centers else 0.0)
    out = []
    for v in range(out_size):
        value = (F32(v) + offset) * scale
        index = tflite_round(float(value)) if align_corners else math.floor(float(value))
        index = min(index, in_size - 1)
        out.append(max(0, index) if half_pixel_centers else index)
    return out


def bilinear_scale(in_size: int, out_size: int, align_corners: bool) -> int:
    """TFLM ResizeBilinearInteger's scale in 1/1024 steps."""
    if align_corners and out_size > 1:
        return ((1 << 10) * (in_size - 1) + (out_size - 1) // 2) // (out_size - 1)
    return ((1 << 10) * in_size + out_size // 2) // out_size


@dataclass(frozen=True)
class ResizeHandler:
    opcodes: tuple[str, ...] = ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")

    def _io(self, op: Op, graph: Graph) -> tuple[Tensor, Tensor, bool, bool]:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        _same_quantization(op, x, out)
        if len(x.shape) != 4 or len(out.shape) != 4:
            raise fail(op, f"expects 4-D tensors, received {list(x.shape)} -> {list(out.shape)}")
        size = _const_ints(op, graph, 1, "size")
        if size != [out.shape[1], out.shape[2]] or out.shape[0] != x.shape[0] or \
                out.shape[3] != x.shape[3]:
            raise fail(op, f"size {size} does not match output {list(out.shape)} of input "
                           f"{list(x.shape)}")
        align, half = bool(op.options.get("align_corners")), bool(
            op.options.get("half_pixel_centers"))
        if align and half:
            raise fail(op, "with both align_corners and half_pixel_centers is invalid")
        return x, out, align, half

    def check(self, op: Op, graph: Graph) -> None:
        self._io(op, graph)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out, align, half = self._io(op, graph)
        params: dict[str, Any] = {
            "input": ctx.act(x.index), "output": ctx.act(out.index),
            "input_dims": c_dims(dims4(x.shape)), "output_dims": c_dims(dims4(out.shape)),
            "label": f"{op.opcode.lower()} {label_shape(x.shape)} -> {label_shape(out.shape)}",
        }
        if op.opcode == "RESIZE_NEAREST_NEIGHBOR":
            rows = nearest_indices(out.shape[1], x.shape[1], align, half)
            cols = nearest_indices(out.shape[2], x.shape[2], align, half)
            params["rows"] = ctx.const(f"{op.name}_rows", np.array(rows), "int32_t")
            params["cols"] = ctx.const(f"{op.name}_cols", np.array(cols), "int32_t")
            kernel, weights = "tp_resize_nearest_s8", 4 * (len(rows) + len(cols))
        else:
            params["height_scale"] = bilinear_scale(x.shape[1], out.shape[1], align)
            params["width_scale"] = bilinear_scale(x.shape[2], out.shape[2], align)
            params["half_pixel_centers"] = int(half)
            kernel, weights = "tp_resize_bilinear_s8", 0
        return KernelCall(kernel=kernel, sources=(f"{kernel}.c",),
                          template=f"ops/{kernel.removeprefix('tp_')}.c.j2", params=params,
                          macs=4 * out.size if kernel == "tp_resize_bilinear_s8" else 0,
                          weight_bytes=weights)


# ---- TILE: refused with what to do ----------------------------------------------------------


refuse("TILE", "TFLite Micro has no TILE kernel, so the firmware could not be checked against "
              "it. Keras 3's UpSampling2D(interpolation='nearest') converts to EXPAND_DIMS + "
              "TILE + RESHAPE; use UpSampling2D(interpolation='bilinear') or "
              "keras.layers.Resizing(height, width, interpolation='nearest') "
              "(RESIZE_NEAREST_NEIGHBOR), or a tf_keras model, whose UpSampling2D converts to "
              "RESIZE_NEAREST_NEIGHBOR")

register(StridedSliceHandler())
register(SplitHandler())
register(ResizeHandler())
