"""What the sparse conv and FC handlers share: the requantization bound, constants, labels."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinyprune.kernels.base import LowerContext

MAX_INPUT = 255
"""Largest |input + input_offset| of an int8 input (the sparse kernels add the offset)."""


def requant_bound_ok(rows: np.ndarray, bias: np.ndarray | None, shift: np.ndarray,
                     max_input: int = MAX_INPUT) -> bool:
    """True when the SMMULR requantization of the sparse DSP paths is exact for every channel.

    Args:
        rows: int8 ``[C_OUT, K]``, the dense weights.
        bias: int32 ``[C_OUT]`` or None.
        shift: TFLM shifts, one per channel or one for the tensor.

    The accumulator of channel o never exceeds ``|bias[o]| + max_input * sum |w[o]|`` in
    magnitude (max_input: 255 with the offset added to the inputs, 128 for raw inputs and a
    folded bias); the kernels need it below ``2^(30 - max(shift[o], 0))`` (tp_nn_sparse.h).
    """
    bound = np.abs(rows.astype(np.int64)).sum(axis=1) * max_input
    if bias is not None:
        bound = bound + np.abs(bias.astype(np.int64))
    left = np.maximum(np.broadcast_to(np.asarray(shift, np.int64), bound.shape), 0)
    return bool(np.all(bound < (np.int64(1) << (30 - left))))


def const_array(ctx: LowerContext, hint: str, values: np.ndarray) -> str:
    """Registers a constant, never empty (C has no zero-length arrays): an empty array becomes
    one zero element, which the kernels never read."""
    values = np.asarray(values)
    if values.size == 0:
        values = np.zeros(1, values.dtype)
    return ctx.const(hint, values, _CTYPE[values.dtype.str[1:]])


def const_bytes(values: np.ndarray) -> int:
    """Flash bytes :func:`const_array` emits for ``values``."""
    values = np.asarray(values)
    return max(values.size, 1) * values.dtype.itemsize


_CTYPE = {"i1": "int8_t", "u1": "uint8_t", "u2": "uint16_t", "i4": "int32_t", "u4": "uint32_t"}


def ctype_of(values: np.ndarray) -> str:
    return _CTYPE[np.asarray(values).dtype.str[1:]]


def filter_fields(fields: Sequence[tuple[str, Any]]) -> list[tuple[str, str]]:
    """(field, C initializer) pairs of a sparse filter struct, for the template."""
    return [(name, str(value)) for name, value in fields]


def percent(fraction: float) -> str:
    return f"{100.0 * fraction:.1f}%"
