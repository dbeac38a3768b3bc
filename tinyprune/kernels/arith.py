"""SUB, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU (broadcasting) and RSQRT, int8; NEG, float32.

Numbers as TFLite Micro's Prepare computes them: ``sub_common.cc`` divides its float32 scales in
float32, ``squared_difference.cc`` and ``prelu_common.cc`` in double, ``elementwise.cc`` takes a
float32 square root. Broadcasting folds shapes like ADD and MUL (``elementwise.broadcast_dims``).
A module of its own rather than more branches in ``elementwise.py`` (ADD, MUL), so each handler
stays a small table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.elementwise import broadcast_dims
from tinyprune.kernels.quant import activation_range, checked_multiplier
from tinyprune.kernels.tensor import (
    c_dims,
    const_bytes,
    fail,
    label_shape,
    op_input,
    op_output,
    operand,
    require_int8,
    require_normal_scales,
)

F32 = np.float32
SUB_LEFT_SHIFT = 20  # TFLM: 20 for int8
SQUARED_DIFFERENCE_LEFT_SHIFT = 7  # TFLM: 255^2 * 2^14 still fits int32


def sub_params(a: Tensor, b: Tensor, out: Tensor) -> dict[str, int]:
    """tp_sub_params without the activation: TFLM CalculateOpDataSub (float32 divisions)."""
    twice_max = F32(2.0) * F32(max(a.scale, b.scale))
    real_out = float(F32(twice_max / F32(F32(1 << SUB_LEFT_SHIFT) * F32(out.scale))))
    if not 0.0 < real_out < 1.0:
        raise ValueError(
            "expected 2 x max input scale below 2^20 x output scale (TFLite Micro's SUB), "
            f"received input scales {a.scale:g} and {b.scale:g}, output scale {out.scale:g}"
        )
    m1, sh1 = checked_multiplier(float(F32(F32(a.scale) / twice_max)), "input 1 scale / (2 x max)")
    m2, sh2 = checked_multiplier(float(F32(F32(b.scale) / twice_max)), "input 2 scale / (2 x max)")
    mo, sho = checked_multiplier(real_out, "2 x max input scale / (2^20 x output scale)")
    return {
        "input1_offset": -a.zero_point, "input2_offset": -b.zero_point,
        "left_shift": SUB_LEFT_SHIFT,
        "input1_multiplier": m1, "input1_shift": sh1,
        "input2_multiplier": m2, "input2_shift": sh2,
        "output_multiplier": mo, "output_shift": sho, "output_offset": out.zero_point,
    }


def squared_difference_params(a: Tensor, b: Tensor, out: Tensor) -> dict[str, int]:
    """tp_squared_difference_params: TFLM squared_difference.cc PrepareQuantized (double)."""
    twice_max = 2.0 * max(a.scale, b.scale)
    shifted_out = float(F32(F32(1 << (2 * SQUARED_DIFFERENCE_LEFT_SHIFT)) * F32(out.scale)))
    m1, sh1 = checked_multiplier(a.scale / twice_max, "input 1 scale / (2 x max)")
    m2, sh2 = checked_multiplier(b.scale / twice_max, "input 2 scale / (2 x max)")
    mo, sho = checked_multiplier(twice_max * twice_max / shifted_out,
                                  "(2 x max input scale)^2 / (2^14 x output scale)")
    return {
        "input1_offset": -a.zero_point, "input2_offset": -b.zero_point,
        "left_shift": SQUARED_DIFFERENCE_LEFT_SHIFT,
        "input1_multiplier": m1, "input1_shift": sh1,
        "input2_multiplier": m2, "input2_shift": sh2,
        "output_multiplier": mo, "output_shift": sho, "output_offset": out.zero_point,
    }


def prelu_params(x: Tensor, alpha: Tensor, out: Tensor) -> dict[str, int]:
    """tp_prelu_params: TFLM CalculatePreluParams (double)."""
    m1, sh1 = checked_multiplier(x.scale / out.scale, "input scale / output scale")
    m2, sh2 = checked_multiplier(x.scale * alpha.scale / out.scale,
                                  "input scale x alpha scale / output scale")
    return {
        "input_offset": -x.zero_point, "alpha_offset": -alpha.zero_point,
        "output_offset": out.zero_point,
        "multiplier_1": m1, "shift_1": sh1, "multiplier_2": m2, "shift_2": sh2,
    }


def _same_quantization(a: Tensor, b: Tensor, out: Tensor) -> dict[str, int]:
    if not a.quant == b.quant == out.quant:
        raise ValueError(
            "expected both inputs and the output quantized alike (TFLite Micro compares raw "
            f"values), received scales {a.scale:g}, {b.scale:g}, {out.scale:g}"
        )
    return {}


@dataclass(frozen=True)
class Binary:
    """One broadcasting kernel: its C function, parameter function and fused activation use."""

    kernel: str
    params: Callable[[Tensor, Tensor, Tensor], dict[str, int]]
    fused_activation: bool = False


BINARY: dict[str, Binary] = {
    "SUB": Binary("tp_sub_s8", sub_params, fused_activation=True),
    "MAXIMUM": Binary("tp_maximum_s8", _same_quantization),
    "MINIMUM": Binary("tp_minimum_s8", _same_quantization),
    "SQUARED_DIFFERENCE": Binary("tp_squared_difference_s8", squared_difference_params),
    "PRELU": Binary("tp_prelu_s8", prelu_params),
}
"""TFLite op -> broadcasting kernel."""


def _activation(op: Op, out: Tensor, fused: bool) -> tuple[int, int]:
    name = str(op.options.get("fused_activation_function", "NONE")) if fused else "NONE"
    return activation_range(name, out.scale, out.zero_point)


@dataclass(frozen=True)
class BinaryHandler:
    opcodes: tuple[str, ...] = tuple(BINARY)

    def _params(self, op: Op, graph: Graph) -> dict[str, Any]:
        a, b, out = op_input(op, graph, 0), op_input(op, graph, 1), op_output(op, graph)
        require_int8(op, a, b, out)
        require_normal_scales(op, a, b, out)
        spec = BINARY[op.opcode]
        try:
            d1, d2, do = broadcast_dims(a.shape, b.shape, out.shape)
            act_min, act_max = _activation(op, out, spec.fused_activation)
            with np.errstate(over="ignore", divide="ignore", under="ignore"):
                params: dict[str, Any] = spec.params(a, b, out)
        except ValueError as exc:
            raise fail(op, f"is not supported: {exc}") from None
        params.update(
            act_min=act_min, act_max=act_max, input1_dims=c_dims(d1), input2_dims=c_dims(d2),
            output_dims=c_dims(do),
        )
        return params

    def check(self, op: Op, graph: Graph) -> None:
        self._params(op, graph)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        a, b, out = op_input(op, graph, 0), op_input(op, graph, 1), op_output(op, graph)
        kernel = BINARY[op.opcode].kernel
        params = self._params(op, graph)
        params.update(
            label=f"{op.opcode.lower()} {label_shape(a.shape)} {label_shape(b.shape)}",
            input1=operand(ctx, a, f"{op.name}_in1"),
            input2=operand(ctx, b, f"{op.name}_in2"),
            output=ctx.act(out.index),
        )
        return KernelCall(
            kernel=kernel,
            sources=(f"{kernel}.c",),
            template=f"ops/{kernel.removeprefix('tp_')}.c.j2",
            params=params,
            macs=out.size if op.opcode in ("SQUARED_DIFFERENCE", "PRELU") else 0,
            weight_bytes=const_bytes(a, b),
        )


def rsqrt_params(x: Tensor, out: Tensor) -> dict[str, int]:
    """tp_rsqrt_params: TFLM SetRsqrtOutputMultiplier (float32 square root and product)."""
    product = F32(np.sqrt(F32(x.scale))) * F32(out.scale)
    multiplier, shift = checked_multiplier(1.0 / float(product) if product else math.inf,
                                           "1 / (sqrt(input scale) x output scale)")
    return {
        "input_zero_point": x.zero_point,
        "output_zero_point": out.zero_point,
        "multiplier": multiplier,
        "shift": shift,
    }


@dataclass(frozen=True)
class RsqrtHandler:
    opcodes: tuple[str, ...] = ("RSQRT",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        require_normal_scales(op, x, out)
        if x.size != out.size:
            raise fail(op, f"expects the output shaped as the input, received {list(out.shape)}")
        self._params(x, out, op)

    @staticmethod
    def _params(x: Tensor, out: Tensor, op: Op) -> dict[str, Any]:
        try:
            with np.errstate(over="ignore", divide="ignore", under="ignore"):
                return rsqrt_params(x, out)
        except ValueError as exc:
            raise fail(op, f"is not supported: {exc}") from None

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        self.check(op, graph)
        params: dict[str, Any] = self._params(x, out, op)
        params.update(
            input=ctx.act(x.index), output=ctx.act(out.index), size=x.size,
            label=f"rsqrt {label_shape(x.shape)}",
        )
        return KernelCall(
            kernel="tp_rsqrt_s8", sources=("tp_rsqrt_s8.c",), template="ops/rsqrt_s8.c.j2",
            params=params,
        )


@dataclass(frozen=True)
class NegHandler:
    """NEG on float32 (all TFLM has): the converter keeps a LayerNormalization's negated mean
    in float between a DEQUANTIZE and a QUANTIZE."""

    opcodes: tuple[str, ...] = ("NEG",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        if x.dtype != "float32" or out.dtype != "float32" or x.size != out.size:
            raise fail(op, f"supports float32 -> float32 of one shape (as TFLite Micro), "
                           f"received {x.dtype} {list(x.shape)} -> {out.dtype} {list(out.shape)}")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        params = {"input": ctx.act(x.index), "output": ctx.act(out.index), "size": x.size,
                  "label": f"neg float32 {label_shape(x.shape)}"}
        return KernelCall(kernel="tp_neg_f32", sources=("tp_neg_f32.c",),
                          template="ops/neg_f32.c.j2", params=params)


register(BinaryHandler())
register(RsqrtHandler())
register(NegHandler())
