"""TRANSPOSE_CONV (int8, per-channel), as Keras Conv2DTranspose / Conv1DTranspose become.

Numbers as TFLite Micro's TransposeConvPrepare computes them (``transpose_conv.cc``): the padding
from the *output* size (``ComputePaddingHeightWidth`` with the output as the image, dilation 1),
per-channel multipliers as for CONV_2D (``PopulateConvolutionQuantizationParams``), the fused
activation's range. The kernel (``tp_transpose_conv_s8``) gathers where TFLM scatters, so it
needs no scratch (TFLM takes 4 bytes per output value).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.conv import channel_multipliers, check_int8_tensors, out_size, pad_before
from tinyprune.kernels.quant import activation_range
from tinyprune.kernels.tensor import c_dims, fail, label_shape, op_input, op_output

INPUT, FILTER, OUTPUT_SHAPE, BIAS = 2, 1, 0, 3  # TFLite's input order


def _tensors(op: Op, graph: Graph) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    x, w = op_input(op, graph, INPUT), op_input(op, graph, FILTER)
    has_bias = len(op.inputs) > BIAS and op.inputs[BIAS] >= 0
    return x, w, op_input(op, graph, BIAS) if has_bias else None, op_output(op, graph)


def transpose_padding(op: Op, out_shape: tuple[int, ...], kh: int, kw: int) -> tuple[int, int]:
    """(w, h) rows / columns cut before the first output: TFLM ComputePaddingHeightWidth with
    the output as the image."""
    pad = str(op.options.get("padding", "VALID"))
    sw, sh = int(op.options.get("stride_w", 1)), int(op.options.get("stride_h", 1))
    height, width = out_shape[1], out_shape[2]
    return (pad_before(sw, 1, width, kw, out_size(pad, width, kw, sw, 1)),
            pad_before(sh, 1, height, kh, out_size(pad, height, kh, sh, 1)))


def _valid_taps(out_len: int, in_len: int, taps: int, stride: int, pad: int) -> int:
    """Taps that reach an input position, summed over the output positions of one axis."""
    return sum(1 for o in range(out_len) for k in range(taps)
               if (o + pad - k) >= 0 and (o + pad - k) % stride == 0
               and (o + pad - k) // stride < in_len)


@dataclass(frozen=True)
class TransposeConvHandler:
    opcodes: tuple[str, ...] = ("TRANSPOSE_CONV",)

    def check(self, op: Op, graph: Graph) -> None:
        x, w, b, y = _tensors(op, graph)
        check_int8_tensors(op, x, w, b, y)
        if not len(x.shape) == len(w.shape) == len(y.shape) == 4:
            raise fail(op, f"expects 4-D tensors, received input {list(x.shape)}, filter "
                           f"{list(w.shape)}, output {list(y.shape)}")
        shape = op_input(op, graph, OUTPUT_SHAPE)
        if not shape.is_const or [int(v) for v in np.asarray(shape.data).reshape(-1)] != list(
                y.shape):
            raise fail(op, f"needs a constant output shape equal to its output {list(y.shape)}")
        if w.shape[3] != x.shape[3] or w.shape[0] != y.shape[3] or x.shape[0] != y.shape[0]:
            raise fail(op, f"filter {list(w.shape)} does not fit input {list(x.shape)} and "
                           f"output {list(y.shape)}")
        assert w.quant is not None
        if w.quant.per_channel and (len(w.quant.scale) != w.shape[0] or w.quant.axis != 0):
            raise fail(op, f"expected {w.shape[0]} filter scales on axis 0, received "
                           f"{len(w.quant.scale)} on axis {w.quant.axis}")
        if b is not None and b.size != w.shape[0]:
            raise fail(op, f"expected {w.shape[0]} bias values, received {b.size}")
        if str(op.options.get("padding", "VALID")) not in ("SAME", "VALID"):
            raise fail(op, f"padding: expected SAME or VALID, received {op.options['padding']}")
        if min(int(op.options.get("stride_w", 1)), int(op.options.get("stride_h", 1))) < 1:
            raise fail(op, "expected strides >= 1")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, w, b, y = _tensors(op, graph)
        assert w.quant is not None and w.data is not None
        c_out, kh, kw, c_in = w.shape
        mult, shift = channel_multipliers(x.scale, w.quant.scale, y.scale, c_out)
        act = str(op.options.get("fused_activation_function", "NONE"))
        act_min, act_max = activation_range(act, y.scale, y.zero_point)
        pad_w, pad_h = transpose_padding(op, y.shape, kh, kw)
        sw, sh = int(op.options.get("stride_w", 1)), int(op.options.get("stride_h", 1))
        bias = None if b is None else np.asarray(b.data, dtype=np.int32).reshape(-1)
        params: dict[str, Any] = {
            "input": ctx.act(x.index), "output": ctx.act(y.index),
            "filter": ctx.const(f"{op.name}_w", np.asarray(w.data, np.int8), "int8_t"),
            "bias": "NULL" if bias is None else ctx.const(f"{op.name}_b", bias, "int32_t"),
            "multiplier": ctx.const(f"{op.name}_mult", mult, "int32_t"),
            "shift": ctx.const(f"{op.name}_shift", shift, "int32_t"),
            "input_dims": c_dims((x.shape[0], x.shape[1], x.shape[2], x.shape[3])),
            "filter_dims": c_dims((c_out, kh, kw, c_in)),
            "bias_dims": c_dims((1, 1, 1, c_out)),
            "output_dims": c_dims((y.shape[0], y.shape[1], y.shape[2], y.shape[3])),
            "input_offset": -x.zero_point, "output_offset": y.zero_point,
            "stride_w": sw, "stride_h": sh, "pad_w": pad_w, "pad_h": pad_h,
            "act_min": act_min, "act_max": act_max,
            "label": f"transpose conv {kh}x{kw}/{sw}x{sh} "
                     f"{str(op.options.get('padding', 'VALID')).lower()} "
                     f"{label_shape(x.shape)} -> {label_shape(y.shape)}",
        }
        taps = (_valid_taps(y.shape[1], x.shape[1], kh, sh, pad_h)
                * _valid_taps(y.shape[2], x.shape[2], kw, sw, pad_w))
        flash = w.size + 8 * c_out + (0 if bias is None else 4 * c_out)
        return KernelCall(
            kernel="tp_transpose_conv_s8", sources=("tp_transpose_conv_s8.c",),
            template="ops/transpose_conv_s8.c.j2", params=params,
            macs=y.shape[0] * taps * c_in * c_out, weight_bytes=flash,
        )


register(TransposeConvHandler())
