"""Quantization arithmetic done at generation time, bit-exact with TFLite Micro's Prepare code."""

from __future__ import annotations

import math

import numpy as np


def tflite_round(x: float) -> int:
    """std::round: half away from zero."""
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier: ``real ~= multiplier * 2^(shift - 31)``.

    The multiplier lies in [2^30, 2^31).
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def activation_range(activation: str, scale: float, zero_point: int, dtype_min: int = -128,
                     dtype_max: int = 127) -> tuple[int, int]:
    """TFLM CalculateActivationRangeQuantized for a fused activation name."""

    def q(v: float) -> int:  # float32 division, as TFLM computes it
        with np.errstate(over="ignore", divide="ignore"):
            steps = float(np.float32(v) / np.float32(scale))
        if not abs(steps) < 2**31 - 128:  # TFLM's static_cast<int32_t> is undefined there
            raise ValueError(f"fused activation {activation}: {v:g} / output scale leaves int32; "
                             f"expected an output scale above {abs(v) / 2**31:g}, received "
                             f"{scale:g}")
        return zero_point + tflite_round(steps)

    if activation == "NONE":
        return dtype_min, dtype_max
    if activation == "RELU":
        return max(dtype_min, q(0.0)), dtype_max
    if activation == "RELU6":
        return max(dtype_min, q(0.0)), min(dtype_max, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(dtype_min, q(-1.0)), min(dtype_max, q(1.0))
    raise ValueError(f"fused activation {activation} has no integer range")


MAX_LEFT_SHIFT = 31
"""The largest shift tp_requantize / tp_requantize_pos take (a multiplier below 2^31 x 2^0):
TFLM's MultiplyByQuantizedMultiplier computes ``x * (1 << shift)``, undefined from 32 on, so a
real multiplier of 2^31 or more has no reference result; the handlers refuse it."""


def shift_error(real: float, shift: int, max_shift: int = MAX_LEFT_SHIFT) -> str | None:
    """Why a (real multiplier, shift) from :func:`quantize_multiplier` cannot run, or None.

    ``max_shift`` is 31 for MultiplyByQuantizedMultiplier and 0 where TFLM requires a
    multiplier below 1 (ADD's QuantizeMultiplierSmallerThanOneExp).
    """
    if shift <= max_shift:
        return None
    bound = "1" if max_shift == 0 else f"2^{max_shift}"
    return (f"expected a requantization multiplier below {bound} (a shift of at most {max_shift}), "
            f"received {real:.6g} (shift {shift})")


def checked_multiplier(real: float, what: str, max_shift: int = MAX_LEFT_SHIFT) -> tuple[int, int]:
    """:func:`quantize_multiplier` of ``real``, or ValueError naming ``what`` where TFLM's
    result is undefined (a multiplier that is not finite, or needs a shift above ``max_shift``).
    """
    if not math.isfinite(real):
        raise ValueError(f"{what}: expected a finite requantization multiplier, received {real:g}")
    multiplier, shift = quantize_multiplier(real)
    err = shift_error(real, shift, max_shift)
    if err is not None:
        raise ValueError(f"{what}: {err}")
    return multiplier, shift
