"""All-zero output channels run as constants: the rewritten requantization gives the same int8
outputs as TFLM's on the original (degenerate) triple (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune.kernels.quant import (
    CONSTANT_MULTIPLIER,
    CONSTANT_SHIFT,
    constant_channels,
    fast_rounding,
    quantize_multiplier,
    requantize,
)


def _out(acc: int, mult: int, shift: int, offset: int, lo: int, hi: int) -> int:
    return int(np.clip(requantize(np.array([acc]), mult, shift)[0] + offset, lo, hi))


@pytest.mark.parametrize("seed", range(6))
def test_zero_channels_keep_their_output_and_get_a_fast_exact_triple(seed: int) -> None:
    rng = np.random.default_rng(seed)
    channels = 12
    rows = rng.integers(-127, 128, (channels, 40)).astype(np.int8)
    zero = rng.choice(channels, 4, replace=False)
    rows[zero] = 0
    # live channels: ordinary scales; zero channels: the converter's ~1e-8 scale, bias ~2^30
    pairs = [quantize_multiplier(float(r)) for r in rng.uniform(1e-4, 1e-2, channels)]
    mult = np.array([m for m, _ in pairs], np.int32)
    shift = np.array([s for _, s in pairs], np.int32)
    bias = rng.integers(-5000, 5000, channels).astype(np.int32)
    for c in zero:
        mult[c], shift[c] = quantize_multiplier(float(rng.uniform(1e-9, 1e-8)) * 1e3)
        bias[c] = int(rng.choice([-(2**30), 2**30 - 1, int(rng.integers(-(2**30), 2**30))]))
    offset, lo, hi = int(rng.integers(-128, 128)), -128, int(rng.integers(0, 128))
    new_bias, new_mult, new_shift = constant_channels(rows, bias, mult, shift, offset, lo, hi)
    assert new_bias is not None
    for c in range(channels):
        if c in zero:  # the accumulator is the bias for any input
            assert (new_mult[c], new_shift[c]) == (CONSTANT_MULTIPLIER, CONSTANT_SHIFT)
            assert abs(int(new_bias[c])) <= 8 * 255
            assert _out(int(new_bias[c]), CONSTANT_MULTIPLIER, CONSTANT_SHIFT, offset, lo, hi) \
                == _out(int(bias[c]), int(mult[c]), int(shift[c]), offset, lo, hi)
        else:
            assert (new_bias[c], new_mult[c], new_shift[c]) == (bias[c], mult[c], shift[c])
    assert fast_rounding(new_shift, offset) is not None


def test_no_zero_channel_or_a_per_tensor_scale_changes_nothing() -> None:
    rows = np.ones((3, 4), np.int8)
    mult, shift = np.full(3, 1 << 30, np.int32), np.full(3, -5, np.int32)
    bias = np.arange(3, dtype=np.int32)
    b, m, s = constant_channels(rows, bias, mult, shift, 0, -128, 127)
    assert b is bias and np.array_equal(m, mult) and np.array_equal(s, shift)
    rows[1] = 0  # one multiplier for the whole tensor: nothing to rewrite per channel
    b, m, s = constant_channels(rows, bias, mult[:1], shift[:1], 0, -128, 127)
    assert b is bias and m.size == 1


def test_a_shift_beyond_31_is_left_alone() -> None:
    """TFLM's C shifts by 32 are undefined (x86 masks the count): no rewrite there."""
    rows = np.zeros((2, 4), np.int8)
    bias = np.array([-1030, 7], np.int32)
    b, m, s = constant_channels(rows, bias, np.full(2, 1861681252, np.int32),
                                np.array([32, -5], np.int32), -127, -128, 127)
    assert b is not None and b[0] == -1030 and (m[0], s[0]) == (1861681252, 32)
    assert (m[1], s[1]) == (CONSTANT_MULTIPLIER, CONSTANT_SHIFT)


def test_a_layer_without_bias_gets_one_where_a_zero_channel_needs_it() -> None:
    rows = np.ones((2, 4), np.int8)
    rows[0] = 0
    m, s = quantize_multiplier(0.5)
    b, _, _ = constant_channels(rows, None, np.full(2, m, np.int32), np.full(2, s, np.int32),
                                -7, -128, 127)
    assert b is not None and b[0] == 8 * (-7 - (-7)) and b[1] == 0
