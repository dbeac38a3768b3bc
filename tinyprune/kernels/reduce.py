"""MEAN (int8), as Keras GlobalAveragePooling becomes; bit-exact with TFLite Micro.

Current TFLM runs every int8 MEAN through ``QuantizedMeanOrSum`` (reduce_common.cc
EvalIntegerMean), which folds 1/count into the output multiplier and rounds.  Older TFLM took a
truncating ``reference_ops::Mean`` path when input and output shared scale and zero point; the
installed interpreter no longer does (a test patches a model to check it).  TF 2.21 gives
GlobalAveragePooling1D/2D an output scale different from the input's anyway.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import quantize_multiplier, shift_error
from tinyprune.kernels.tensor import (
    c_dims,
    fail,
    label_shape,
    op_input,
    op_output,
    require_int8,
    require_scales,
)


def mean_params(
    in_scale: float, in_zp: int, out_scale: float, out_zp: int, count: int
) -> dict[str, int]:
    """tp_mean_params: TFLM PrepareMeanOrSumHelper, then QuantizedMeanOrSum's 1/count folding."""
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    adjust = min(count.bit_length() - 1, 32, 31 + shift)  # 63 - clz64(count), clamped
    multiplier = ((multiplier << adjust) // count) if adjust >= 0 else multiplier
    return {
        "input_offset": -in_zp,
        "output_offset": out_zp,
        "multiplier": int(np.int64(multiplier).astype(np.int32)),
        "shift": shift - adjust,
    }


def resolve_axes(axes: list[int], rank: int) -> list[int]:
    """TFLM ResolveAxis: negative axes wrapped, duplicates dropped; returned sorted."""
    return sorted({a + rank if a < 0 else a for a in axes})


def mean_dims(shape: tuple[int, ...], axes: list[int]) -> tuple[int, int, int, int]:
    """[N, H, W, C] for tp_mean_s8: outer dims, reduced dims, 1, inner dims."""
    lo, hi = axes[0], axes[-1] + 1
    return (math.prod(shape[:lo]), math.prod(shape[lo:hi]), 1, math.prod(shape[hi:]))


def _axes(op: Op, graph: Graph, x: Tensor) -> list[int]:
    axis = op_input(op, graph, 1)
    if not axis.is_const:
        raise fail(op, "needs constant axes, received a computed tensor")
    assert axis.data is not None
    return [int(a) for a in np.asarray(axis.data).reshape(-1)]


@dataclass(frozen=True)
class MeanHandler:
    opcodes: tuple[str, ...] = ("MEAN",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        require_scales(op, x, out)
        raw = _axes(op, graph, x)
        rank = len(x.shape)
        if not raw or any(not -rank <= a < rank for a in raw):
            raise fail(op, f"over axes {raw} is not supported for shape {list(x.shape)}")
        axes = resolve_axes(raw, rank)
        if axes != list(range(axes[0], axes[-1] + 1)):
            shown = axes[0] if len(axes) == 1 else axes
            raise fail(
                op,
                f"over axis {shown} is not supported; supported: one contiguous run "
                "of axes, e.g. the spatial axes [1, 2]",
            )
        if math.prod(x.shape[a] for a in axes) > (1 << 23):
            raise fail(op, "reduces more than 2^23 elements per output")
        kept = math.prod(x.shape) // math.prod(x.shape[a] for a in axes)
        if out.size != kept:
            raise fail(op, f"output: expected {kept} values for {list(x.shape)} over axes "
                           f"{axes}, received shape {list(out.shape)}")
        count = math.prod(x.shape[a] for a in axes)
        p = mean_params(x.scale, x.zero_point, out.scale, out.zero_point, count)
        error = shift_error(x.scale / out.scale / count, p["shift"])
        if error:
            raise fail(op, f"output '{out.name}': input scale {x.scale:g} / output scale "
                           f"{out.scale:g} / {count} elements: {error}; check the quantization "
                           f"of '{x.name}' and '{out.name}'")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        dims = mean_dims(x.shape, resolve_axes(_axes(op, graph, x), len(x.shape)))
        params = {
            "input": ctx.act(x.index),
            "output": ctx.act(out.index),
            "input_dims": c_dims(dims),
            "label": f"mean {label_shape(x.shape)} -> {label_shape(out.shape)}",
            **mean_params(x.scale, x.zero_point, out.scale, out.zero_point, dims[1] * dims[2]),
        }
        return KernelCall(
            kernel="tp_mean_s8",
            sources=("tp_mean_s8.c",),
            template="ops/mean_s8.c.j2",
            params=params,
        )


register(MeanHandler())
