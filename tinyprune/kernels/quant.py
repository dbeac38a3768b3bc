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


def requantize(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplier (tp_requantize) on int32 values, exactly (int64 numpy).

    ``x << left`` wraps modulo 2^32 as in the shipped interpreter; shift in -31..31.
    """
    left, right = max(shift, 0), max(-shift, 0)
    v = np.asarray(x, dtype=np.int64)
    v = ((v << left) + 2**31) % 2**32 - 2**31
    if multiplier == -(2**31):
        raise ValueError("multiplier -2^31 does not come from QuantizeMultiplier")
    prod = v * multiplier  # |v| <= 2^31, |m| < 2^31: fits int64
    nudge = np.where(prod >= 0, 1 << 30, 1 - (1 << 30))
    total = prod + nudge
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))  # truncating division
    if right == 0:
        return high
    mask = (1 << right) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> right) + ((high & mask) > threshold)


FAST_MAX_SHIFT = -2
"""tp_requantize_fast (runtime/include/tp_dsp.h) needs a right shift of at least 2."""
FAST_ROUNDING_LIMIT = 2**30 - 2


def fast_rounding(shifts: np.ndarray, offset: int) -> np.ndarray | None:
    """The ``rounding`` words of tp_requantize_fast for these shifts and output offset, or None
    when some channel cannot take it (a shift above -2, or a rounding word beyond 2^30 - 2).

    rounding = 2^(r-2) + offset * 2^(r-1) with r = -shift: the output offset is folded into the
    requantization, which the proof in tp_dsp.h allows within that bound.
    """
    s = np.asarray(shifts, dtype=np.int64).reshape(-1)
    if s.size == 0 or int(s.max()) > FAST_MAX_SHIFT:
        return None
    r = -s
    rounding = (np.int64(1) << (r - 2)) + np.int64(offset) * (np.int64(1) << (r - 1))
    if int(np.abs(rounding).max()) > FAST_ROUNDING_LIMIT:
        return None
    return rounding.astype(np.int32)


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


CONSTANT_MULTIPLIER, CONSTANT_SHIFT = 1 << 30, -2
"""The requantization of a channel rewritten by :func:`constant_channels`: x -> x / 8, exact on
multiples of 8 (SRDHM by 2^30 halves, the right shift of 2 quarters; shift -2 keeps the channel
on tp_requantize_fast's path)."""


def constant_channels(rows: np.ndarray, bias: np.ndarray | None, multiplier: np.ndarray,
                      shift: np.ndarray, output_offset: int, act_min: int, act_max: int
                      ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(bias, multiplier, shift) with every channel whose weights are all zero rewritten to an
    equivalent small triple.

    Such a channel (an output channel whose every block a sparsity pattern removed) always
    accumulates exactly its bias, whatever the input and the input offset, so its int8 output
    is one constant ``v``. Its quantized scale is degenerate (the converter gives the zero
    filter a scale near 1e-8, hence a bias near 2^30 and a shift near -29), which no fast or
    sparse kernel can requantize exactly; the triple ``(8 (v - output_offset), 2^30, -2)`` gives
    the same ``v`` through the TFLM requantization, so every kernel stays bit-exact with the
    reference on the original triple. ``rows``: ``[C_OUT, K]`` int8 weights, one row per
    channel; per-channel ``multiplier``/``shift`` only (returned unchanged otherwise). A channel
    whose shift is beyond +-31 (undefined in TFLM's C; never from a real converter) is left as
    it is.
    """
    mult = np.asarray(multiplier, np.int32)
    shifts = np.asarray(shift, np.int32)
    # only where requantize is TFLM's exactly (shifts past +-31 are undefined in C: left alone)
    zero = ~np.asarray(rows).reshape(rows.shape[0], -1).any(axis=1) & (np.abs(shifts) <= 31)
    if mult.size != rows.shape[0] or not zero.any():
        return bias, mult, shifts
    acc = np.zeros(rows.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    new_bias = acc.astype(np.int32)
    mult, shifts = mult.copy(), shifts.copy()
    for c in np.flatnonzero(zero):
        v = int(requantize(np.array([acc[c]]), int(mult[c]), int(shifts[c]))[0]) + output_offset
        v = min(max(v, act_min), act_max)
        new_bias[c] = 8 * (v - output_offset)
        mult[c], shifts[c] = CONSTANT_MULTIPLIER, CONSTANT_SHIFT
    return new_bias, mult, shifts
