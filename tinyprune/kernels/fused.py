"""A CONV_2D with the residual ADD that consumes it as its epilogue: one kernel call.

``tp_conv_interleaved_add_s8`` (runtime/include/tp_nn_conv.h) is ``tp_conv_interleaved_s8``
whose every int8 result is added at once, with ``tp_add_table_s8``'s arithmetic, to the residual
value at its position, overwriting it. Both calls are lowered as usual; this module only merges
their parameters. Whether a pair may be fused is the planner's decision
(tinyprune/plan/fusion.py): this module assumes it has been proved safe.
"""

from __future__ import annotations

from dataclasses import replace

from tinyprune.kernels.base import KernelCall

CONV_KERNEL = "tp_conv_interleaved_s8"
ADD_KERNEL = "tp_add_table_s8"
FUSED_KERNEL = "tp_conv_interleaved_add_s8"
FUSED_NARROW_KERNEL = "tp_conv_interleaved_add_narrow_s8"
FUSABLE_CONV_KERNELS = (CONV_KERNEL, "tp_conv_1x1_thin_s8")
"""The conv kernels whose layers may be fused: the others are lowered again as CONV_KERNEL
first (tinyprune/kernels/conv.py lower_interleaved; the planner does it)."""


def can_fuse(conv: KernelCall, add: KernelCall) -> bool:
    """True when the two calls have the kernels the fused kernel combines."""
    return conv.kernel == CONV_KERNEL and add.kernel == ADD_KERNEL and not conv.fused


def _sum(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b


def pass_bytes(c_out: int, dsp: bool) -> int:
    """Scratch the fused kernel adds to the conv's (tp_conv_interleaved_add_s8_get_buffer_size):
    one pass's int8 results, 2 * C_OUT rounded up to 4, on the DSP path; none on the portable."""
    return (2 * c_out + 3) // 4 * 4 if dsp else 0


def fuse_conv_add(conv: KernelCall, add: KernelCall, *, conv_input: int, residual: str,
                  add_name: str, dsp: bool) -> KernelCall:
    """The fused call of a conv and the ADD that consumes its output.

    Args:
        conv: the conv's call (``tp_conv_interleaved_s8``).
        add: the ADD's call (``tp_add_table_s8``, same-shape operands).
        conv_input: which ADD input (0 or 1) the conv's output is; the ADD's math is symmetric,
            so the fused kernel takes the tables as (conv, residual).
        residual: C expression of the residual's buffer, which the call reads and overwrites
            (the ADD's output takes that buffer).
        add_name: the ADD layer's name (the report's ``fused``).
        dsp: the DSP path (its scratch holds a pass's results, :func:`pass_bytes`).
    """
    if not can_fuse(conv, add) or conv_input not in (0, 1):
        raise ValueError(f"expected {CONV_KERNEL} and {ADD_KERNEL}, received {conv.kernel} "
                         f"and {add.kernel} (input {conv_input})")
    a = add.params
    extra = pass_bytes(int(conv.params["output_dims"]["c"]), dsp)
    scratch = conv.scratch_bytes + extra
    tables = (a["input1_table"], a["input2_table"])
    params = {**conv.params, "kernel": FUSED_KERNEL, "output": residual,
              "scratch_bytes": scratch, "scratch": "tp_scratch",
              "add_label": a["label"], "add_conv_table": tables[conv_input],
              "add_residual_table": tables[1 - conv_input],
              "add_output_multiplier": a["output_multiplier"],
              "add_output_shift": a["output_shift"],
              "add_output_rounding": a["output_rounding"],
              "add_act_min": a["act_min"], "add_act_max": a["act_max"]}
    return replace(
        conv, kernel=FUSED_KERNEL, template="ops/conv_add_s8.c.j2", params=params,
        sources=conv.sources,
        weight_bytes=conv.weight_bytes + add.weight_bytes,
        est_cycles=_sum(conv.est_cycles, add.est_cycles),
        scratch_bytes=scratch, in_place_scratch_bytes=None, fused=(add_name,),
        min_scratch_bytes=None if conv.min_scratch_bytes is None
        else conv.min_scratch_bytes + extra, narrow_kernel=FUSED_NARROW_KERNEL,
        reason=(f"{conv.reason}; " if conv.reason else "") + f"fused with {add_name} (ADD)")
