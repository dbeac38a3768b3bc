"""SOFTMAX and LOGISTIC (int8), bit-exact with TFLite Micro's SoftmaxPrepare / LogisticPrepare."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import quantize_multiplier, tflite_round
from tinyprune.kernels.tensor import fail, label_shape, op_input, op_output, require_int8

SOFTMAX_DIFF_INTEGER_BITS = 5  # Q5.26 input differences
LOGISTIC_INPUT_INTEGER_BITS = 4  # Q4.27 input
MAX_SOFTMAX_ROW = 511  # keeps 4 bits of headroom in the Q12.19 sum of exponentials


def input_radius(integer_bits: int, left_shift: int, total_signed_bits: int = 31) -> int:
    """TFLM CalculateInputRadius (double arithmetic, floored)."""
    value = (
        1.0
        * ((1 << integer_bits) - 1)
        * (1 << (total_signed_bits - integer_bits))
        / (1 << left_shift)
    )
    return math.floor(value)


def softmax_params(beta: float, input_scale: float) -> dict[str, int]:
    """tp_softmax_params: TFLM PreprocessSoftmaxScaling + diff_min (double rounding build)."""
    real = min(beta * input_scale * (1 << (31 - SOFTMAX_DIFF_INTEGER_BITS)), (1 << 31) - 1.0)
    if not real > 1.0:
        raise ValueError(
            f"beta * input scale = {beta * input_scale:.2g} is too small for int8 softmax "
            f"(expected beta * input scale * 2^26 above 1, TFLM's "
            f"QuantizeMultiplierGreaterThanOne; received {real:g}): the logits it was "
            f"calibrated on span only {255 * input_scale:.2g}, so every class gets the same "
            "probability; this is what an untrained model or calibration data unlike the "
            "model's inputs give. Train the model, or pass --data with real samples (x_train "
            "calibrates the quantization)"
        )
    multiplier, shift = quantize_multiplier(real)
    diff_min = -input_radius(SOFTMAX_DIFF_INTEGER_BITS, shift)
    return {"input_multiplier": multiplier, "input_left_shift": shift, "diff_min": diff_min}


def logistic_params(input_scale: float, input_zp: int) -> dict[str, int]:
    """tp_logistic_params: TFLM CalculateArithmeticOpDataLogistic (int8)."""
    q, shift = math.frexp(input_scale * (1 << (31 - LOGISTIC_INPUT_INTEGER_BITS)))
    multiplier = tflite_round(q * (1 << 31))
    if multiplier >= 1 << 31 or not 0 <= shift <= 31:
        raise ValueError(
            f"input scale: expected 2^-28 .. 2^4 (a left shift of 0..31 into Q4.27), received "
            f"{input_scale:g}"
        )
    return {
        "input_zero_point": input_zp,
        "input_range_radius": input_radius(LOGISTIC_INPUT_INTEGER_BITS, shift),
        "input_multiplier": multiplier,
        "input_left_shift": shift,
    }


def _check_output(op: Op, scale: float, zero_point: int) -> None:
    if zero_point != -128 or scale != 1.0 / 256:
        raise fail(
            op, f"expects output scale 1/256 and zero point -128, received {scale}/{zero_point}"
        )


@dataclass(frozen=True)
class SoftmaxHandler:
    opcodes: tuple[str, ...] = ("SOFTMAX",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        _check_output(op, out.scale, out.zero_point)
        if not x.shape or not 1 <= x.shape[-1] <= MAX_SOFTMAX_ROW:
            raise fail(op, f"supports 1..{MAX_SOFTMAX_ROW} classes, received shape {list(x.shape)}")
        try:
            softmax_params(float(op.options.get("beta", 1.0)), x.scale)
        except ValueError as exc:
            raise fail(op, str(exc)) from None

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        params: dict[str, Any] = softmax_params(float(op.options.get("beta", 1.0)), x.scale)
        params.update(
            input=ctx.act(x.index),
            output=ctx.act(out.index),
            num_rows=x.size // x.shape[-1],
            row_size=x.shape[-1],
            label=f"softmax {label_shape(x.shape)}",
        )
        return KernelCall(
            kernel="tp_softmax_s8",
            sources=("tp_softmax_s8.c",),
            template="ops/softmax_s8.c.j2",
            params=params,
        )


@dataclass(frozen=True)
class LogisticHandler:
    opcodes: tuple[str, ...] = ("LOGISTIC",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        if out.zero_point != -128:
            raise fail(op, f"expects output zero point -128, received {out.zero_point}")
        try:
            logistic_params(x.scale, x.zero_point)
        except ValueError as exc:
            raise fail(op, str(exc)) from None

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        params: dict[str, Any] = logistic_params(x.scale, x.zero_point)
        params.update(
            input=ctx.act(x.index),
            output=ctx.act(out.index),
            size=x.size,
            label=f"logistic {label_shape(x.shape)}",
        )
        return KernelCall(
            kernel="tp_logistic_s8",
            sources=("tp_logistic_s8.c",),
            template="ops/logistic_s8.c.j2",
            params=params,
        )


register(SoftmaxHandler())
register(LogisticHandler())
