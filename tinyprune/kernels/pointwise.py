"""HARD_SWISH, RELU, RELU6, LEAKY_RELU, TANH (int8): one-input activations.

Every number is computed here as TFLite Micro's Prepare computes it (``hard_swish_common.cc``,
``activations_common.cc``, ``leaky_relu_common.cc``, ``tanh.cc``), in float32 where TFLM divides
floats and in double where it does; the kernels (``runtime/kernels/tp_<op>_s8.c``) and their
template fragments only apply them. A new module beside ``activation.py`` (SOFTMAX, LOGISTIC):
the ops of this family that MobileNetV3 and friends need, kept apart from the checks another
change edits there.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import checked_multiplier, tflite_round
from tinyprune.kernels.tensor import (
    fail,
    label_shape,
    op_input,
    op_output,
    require_int8,
    require_normal_scales,
)

log = logging.getLogger(__name__)

F32 = np.float32
TANH_INPUT_INTEGER_BITS = 4  # Q4.27 input, as LOGISTIC


def f32_ratio(a: float, b: float) -> float:
    """``a / b`` divided in float32 (TFLM ``float / float``), returned as a double."""
    return float(F32(F32(a) / F32(b)))


def downscale_int16(multiplier: int) -> int:
    """TFLM DownScaleInt32ToInt16Multiplier: a Q31 multiplier rounded to Q15."""
    if multiplier >= (1 << 31) - 1 - (1 << 15):
        return (1 << 15) - 1
    return (multiplier + (1 << 15)) >> 16


def hard_swish_params(x: Tensor, out: Tensor) -> dict[str, int]:
    """tp_hard_swish_params: TFLM HardSwishPrepare (float32 scales, int16 multipliers)."""
    hires = F32(F32(1.0 / 128.0) * F32(x.scale))
    reluish_scale = F32(F32(3.0) / F32(32768.0))
    out_mult, out_exp = checked_multiplier(float(F32(hires / F32(out.scale))),
                                           "input scale / 128 / output scale")
    rel_mult, rel_exp = checked_multiplier(float(F32(hires / reluish_scale)),
                                           "input scale / 128 / (3 / 2^15)")
    if out_exp > 0:
        raise ValueError(
            f"expected an output scale of at least input scale / 128 ({float(hires):g}), as "
            f"TFLite Micro's HARD_SWISH needs, received {out.scale:g}"
        )
    return {
        "input_zero_point": x.zero_point,
        "output_zero_point": out.zero_point,
        "reluish_multiplier": downscale_int16(rel_mult),
        "reluish_exponent": rel_exp,
        "output_multiplier": downscale_int16(out_mult),
        "output_exponent": out_exp,
    }


# ---- HARD_SWISH by table: tp_hard_swish_s8's int16 arithmetic, value by value ---------------

def _i16(v: int) -> int:
    """The int16 a C conversion gives (two's complement wrap)."""
    return ((v + (1 << 15)) & 0xFFFF) - (1 << 15)


def _cdiv(x: int, d: int) -> int:
    """C integer division (truncates towards zero)."""
    q = abs(x) // d
    return q if x >= 0 else -q


def _srdhm16(a: int, b: int) -> int:
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    return _i16(_cdiv(ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14)), 1 << 15))


def _sdhm16(a: int, b: int) -> int:
    return (1 << 15) - 1 if a == b == -(1 << 15) else _i16(_cdiv(a * b, 1 << 15))


def _rounding_divide16(x: int, exponent: int) -> int:
    mask = _i16((1 << exponent) - 1)
    remainder = _i16(x & mask)
    threshold = _i16((mask >> 1) + (1 if x < 0 else 0))
    return _i16((x >> exponent) + (1 if remainder > threshold else 0))


def _saturating_left_shift16(v: int, amount: int) -> int:
    return max(-(1 << 15), min((1 << 15) - 1, v * (1 << amount)))


def _hard_swish_value(p: dict[str, int], x: int) -> int:
    hires = _i16(_i16(x - p["input_zero_point"]) * (1 << 7))
    preshift_output = _srdhm16(hires, p["output_multiplier"])
    reluish, exponent = hires, p["reluish_exponent"]
    if exponent > 0:
        reluish = _saturating_left_shift16(reluish, exponent - 1)
    reluish = _srdhm16(reluish, p["reluish_multiplier"])
    if exponent > 0:
        reluish = _saturating_left_shift16(reluish, 1)
    if exponent < 0:
        reluish = _rounding_divide16(reluish, -exponent)
    reluish = _i16((reluish + (1 << 15)) >> 1)
    out = _rounding_divide16(_sdhm16(reluish, preshift_output), -p["output_exponent"])
    return max(-128, min(127, _i16(out + p["output_zero_point"])))


def hard_swish_table(params: dict[str, int]) -> np.ndarray:
    """HARD_SWISH of every int8 input (index = input + 128), as tp_hard_swish_s8 computes it."""
    return np.array([_hard_swish_value(params, x) for x in range(-128, 128)], dtype=np.int8)


def relu_params(x: Tensor, out: Tensor) -> dict[str, Any]:
    """tp_relu_params: TFLM CalculateReluOpData<int8_t> (requantized, clamped at zero)."""
    multiplier, shift = checked_multiplier(f32_ratio(x.scale, out.scale),
                                           "input scale / output scale")
    return {
        "input_zero_point": x.zero_point,
        "output_zero_point": out.zero_point,
        "multiplier": multiplier,
        "shift": shift,
        "act_min": max(-128, out.zero_point),
        "act_max": 127,
    }


def relu6_params(x: Tensor, out: Tensor) -> dict[str, Any]:
    """The clamp of TFLM Relu6Prepare: [input zero point, FloatToQuantizedType(6.0)].

    TFLite Micro clamps the raw input values and does not requantize them, even when the
    converter gave the output another scale (it does for a standalone ReLU6); the firmware does
    the same, to stay bit-exact with it, and the handler logs a warning.
    """
    steps = float(F32(F32(6.0) / F32(x.scale)))
    if not abs(steps) < 2**31 - 128:  # TFLM's conversion to int32 is undefined there
        raise ValueError(f"6.0 / input scale leaves int32; expected an input scale above "
                         f"{6.0 / 2**31:g}, received {x.scale:g}")
    six = tflite_round(steps) + x.zero_point
    return {"act_min": x.zero_point, "act_max": min(127, max(-128, six))}


def leaky_relu_params(x: Tensor, out: Tensor, alpha: float) -> dict[str, int]:
    """tp_leaky_relu_params: TFLM CalculateOpDataLeakyRelu (float32 products, as TFLM)."""
    alpha_real = float(F32(F32(F32(x.scale) * F32(alpha)) / F32(out.scale)))
    alpha_mult, alpha_shift = checked_multiplier(alpha_real, "input scale x alpha / output scale")
    identity_mult, identity_shift = checked_multiplier(f32_ratio(x.scale, out.scale),
                                                       "input scale / output scale")
    return {
        "input_zero_point": x.zero_point,
        "output_zero_point": out.zero_point,
        "identity_multiplier": identity_mult,
        "identity_shift": identity_shift,
        "alpha_multiplier": alpha_mult,
        "alpha_shift": alpha_shift,
    }


def input_radius(integer_bits: int, left_shift: int) -> int:
    """TFLM CalculateInputRadius(integer_bits, left_shift, 31), double arithmetic, floored."""
    value = 1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << left_shift)
    return math.floor(value)


def tanh_params(x: Tensor, out: Tensor) -> dict[str, int]:
    """tp_tanh_params: TFLM tanh CalculateArithmeticOpData (int8)."""
    if out.zero_point != 0 or out.scale != 1.0 / 128:
        raise ValueError(
            f"expected output scale 1/128 and zero point 0, received {out.scale}/{out.zero_point}"
        )
    q, shift = math.frexp(x.scale * (1 << (31 - TANH_INPUT_INTEGER_BITS)))
    multiplier = tflite_round(q * (1 << 31))
    if multiplier >= 1 << 31 or not 0 <= shift <= 31:  # TFLM shifts 1 << shift: 0..31
        raise ValueError(f"input scale: expected 2^-27 .. 2^4 (a left shift of 0..31 into "
                         f"Q4.27), received {x.scale:g}")
    return {
        "input_zero_point": x.zero_point,
        "input_range_radius": input_radius(TANH_INPUT_INTEGER_BITS, shift),
        "input_multiplier": multiplier,
        "input_left_shift": shift,
    }


@dataclass(frozen=True)
class Pointwise:
    """One kernel of this family: its C function and how its parameters are computed.

    ``table``, when set, turns the parameters into the 256 outputs of every int8 input; the op
    then runs as ``tp_lut_s8`` (its kernel stays the in-house reference the table is tested
    against).
    """

    kernel: str
    params: Callable[[Op, Tensor, Tensor], dict[str, Any]]
    table: Callable[[dict[str, int]], np.ndarray] | None = None


KERNELS: dict[str, Pointwise] = {
    "HARD_SWISH": Pointwise("tp_hard_swish_s8", lambda op, x, y: hard_swish_params(x, y),
                            table=hard_swish_table),
    "RELU": Pointwise("tp_relu_s8", lambda op, x, y: relu_params(x, y)),
    "RELU6": Pointwise("tp_relu6_s8", lambda op, x, y: relu6_params(x, y)),
    "LEAKY_RELU": Pointwise(
        "tp_leaky_relu_s8", lambda op, x, y: leaky_relu_params(x, y, float(op.options["alpha"]))
    ),
    "TANH": Pointwise("tp_tanh_s8", lambda op, x, y: tanh_params(x, y)),
}
"""TFLite op -> kernel of the one-input activations."""


@dataclass(frozen=True)
class PointwiseHandler:
    opcodes: tuple[str, ...] = tuple(KERNELS)

    def _params(self, op: Op, graph: Graph) -> dict[str, Any]:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        require_normal_scales(op, x, out)
        if x.size != out.size:
            raise fail(op, f"expects the output shaped as the input, received {list(out.shape)}")
        if op.opcode == "LEAKY_RELU" and "alpha" not in op.options:
            raise fail(op, "has no alpha option")
        try:
            with np.errstate(over="ignore", divide="ignore", under="ignore"):
                return KERNELS[op.opcode].params(op, x, out)
        except ValueError as exc:
            raise fail(op, str(exc)) from None

    def check(self, op: Op, graph: Graph) -> None:
        self._params(op, graph)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        spec = KERNELS[op.opcode]
        kernel = spec.kernel
        if op.opcode == "RELU6" and x.quant != out.quant:
            log.warning(
                "layer '%s': RELU6 output scale %g differs from its input's %g; TFLite Micro "
                "clamps without requantizing, and so does the firmware (bit-exact with it)",
                op.name, out.scale, x.scale)
        params = self._params(op, graph)
        params.update(
            input=ctx.act(x.index),
            output=ctx.act(out.index),
            size=x.size,
            label=f"{op.opcode.lower()} {label_shape(x.shape)}",
        )
        if spec.table is not None:
            table = ctx.const(f"{op.name}_table", spec.table(params), "int8_t")
            return KernelCall(kernel="tp_lut_s8", sources=("tp_lut_s8.c",),
                              template="ops/lut_s8.c.j2", params={**params, "table": table},
                              weight_bytes=256)
        return KernelCall(
            kernel=kernel,
            sources=(f"{kernel}.c",),
            template=f"ops/{kernel.removeprefix('tp_')}.c.j2",
            params=params,
        )


register(PointwiseHandler())
