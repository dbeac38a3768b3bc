"""ADD and MUL (int8) with broadcasting, bit-exact with TFLite Micro's CalculateOpData{Add,Mul}."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import activation_range, quantize_multiplier, shift_error
from tinyprune.kernels.tensor import (
    Dims4,
    c_dims,
    const_bytes,
    fail,
    label_shape,
    op_input,
    op_output,
    operand,
    require_int8,
    require_scales,
)

ADD_LEFT_SHIFT = 20  # TFLM: 20 for int8 (15 for int16)


def add_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int) -> dict[str, int]:
    """tp_add_params without the activation (TFLM CalculateOpDataAdd, int8)."""
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * so))
    return {
        "input1_offset": -zp1,
        "input2_offset": -zp2,
        "left_shift": ADD_LEFT_SHIFT,
        "input1_multiplier": m1,
        "input1_shift": sh1,
        "input2_multiplier": m2,
        "input2_shift": sh2,
        "output_multiplier": mo,
        "output_shift": sho,
        "output_offset": zpo,
    }


def mul_params(s1: float, zp1: int, s2: float, zp2: int, so: float, zpo: int) -> dict[str, int]:
    """tp_mul_params without the activation (TFLM CalculateOpDataMul)."""
    m, sh = quantize_multiplier(s1 * s2 / so)
    return {
        "input1_offset": -zp1,
        "input2_offset": -zp2,
        "output_multiplier": m,
        "output_shift": sh,
        "output_offset": zpo,
    }


def requant_error(opcode: str, s1: float, s2: float, so: float) -> str | None:
    """Why the kernel (and TFLM) cannot requantize ADD / MUL with these scales, or None.

    ADD: TFLM's QuantizeMultiplierSmallerThanOneExp aborts unless 2 * max(s1, s2) /
    (2^20 * so) rounds to a multiplier below 1. MUL: s1 * s2 / so needs a shift <= 31.
    """
    if opcode == "ADD":
        twice_max = 2 * max(s1, s2)
        real = twice_max / ((1 << ADD_LEFT_SHIFT) * so)
        err = shift_error(real, add_params(s1, 0, s2, 0, so, 0)["output_shift"], max_shift=0)
        what = f"2 x max input scale {twice_max / 2:g} / (2^20 x output scale {so:g})"
    else:
        real = s1 * s2 / so
        err = shift_error(real, mul_params(s1, 0, s2, 0, so, 0)["output_shift"])
        what = f"input scales {s1:g} x {s2:g} / output scale {so:g}"
    return None if err is None else f"{what}: {err}"


def broadcast_dims(
    a: tuple[int, ...], b: tuple[int, ...], out: tuple[int, ...]
) -> tuple[Dims4, Dims4, Dims4]:
    """Folds a broadcast of any rank into [N, H, W, C] triples for tp_add_s8 / tp_mul_s8.

    Shapes are right-aligned (NumPy rules); adjacent dimensions with the same broadcast pattern
    merge, so (1, 8, 8, 16) + (1, 1, 1, 16) becomes (1, 1, 64, 16) + (1, 1, 1, 16).

    Raises:
        ValueError: the shapes do not broadcast to ``out``, or need more than 4 dimensions.
    """
    rank = len(out)
    if len(a) > rank or len(b) > rank:
        raise ValueError(f"shapes {list(a)} and {list(b)} do not broadcast to {list(out)}")
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    groups: list[list[Any]] = []
    for da, db, do in zip(a, b, out, strict=True):
        if da not in (1, do) or db not in (1, do) or do != max(da, db):
            raise ValueError(f"shapes {list(a)} and {list(b)} do not broadcast to {list(out)}")
        if do == 1:
            continue
        pattern = (da == do, db == do)
        if groups and groups[-1][3] == pattern:
            groups[-1][0] *= da
            groups[-1][1] *= db
            groups[-1][2] *= do
        else:
            groups.append([da, db, do, pattern])
    if len(groups) > 4:
        raise ValueError(
            f"broadcasting {list(a)} with {list(b)} needs {len(groups)} dimensions; "
            "supported: up to 4 after merging"
        )
    groups = [[1, 1, 1, None]] * (4 - len(groups)) + groups
    n, h, w, c = groups
    da4, db4, do4 = ((int(n[i]), int(h[i]), int(w[i]), int(c[i])) for i in range(3))
    return da4, db4, do4


@dataclass(frozen=True)
class BinaryHandler:
    opcodes: tuple[str, ...] = ("ADD", "MUL")

    def check(self, op: Op, graph: Graph) -> None:
        a, b, out = op_input(op, graph, 0), op_input(op, graph, 1), op_output(op, graph)
        require_int8(op, a, b, out)
        require_scales(op, a, b, out)
        try:
            broadcast_dims(a.shape, b.shape, out.shape)
            activation_range(
                str(op.options.get("fused_activation_function", "NONE")), out.scale, out.zero_point
            )
        except ValueError as exc:
            raise fail(op, f"is not supported: {exc}") from None
        error = requant_error(op.opcode, a.scale, b.scale, out.scale)
        if error:
            raise fail(op, f"output '{out.name}': {error}; check the quantization of "
                           f"'{a.name}', '{b.name}' and '{out.name}'")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        a, b, out = op_input(op, graph, 0), op_input(op, graph, 1), op_output(op, graph)
        compute = add_params if op.opcode == "ADD" else mul_params
        params: dict[str, Any] = compute(
            a.scale, a.zero_point, b.scale, b.zero_point, out.scale, out.zero_point
        )
        act_min, act_max = activation_range(
            str(op.options.get("fused_activation_function", "NONE")), out.scale, out.zero_point
        )
        d1, d2, do = broadcast_dims(a.shape, b.shape, out.shape)
        params.update(
            act_min=act_min,
            act_max=act_max,
            input1_dims=c_dims(d1),
            input2_dims=c_dims(d2),
            output_dims=c_dims(do),
            label=f"{op.opcode.lower()} {label_shape(a.shape)} {label_shape(b.shape)}",
            input1=operand(ctx, a, f"{op.name}_in1"),
            input2=operand(ctx, b, f"{op.name}_in2"),
            output=ctx.act(out.index),
        )
        kernel = "tp_add_s8" if op.opcode == "ADD" else "tp_mul_s8"
        return KernelCall(
            kernel=kernel,
            sources=(f"{kernel}.c",),
            template=f"ops/{kernel.removeprefix('tp_')}.c.j2",
            params=params,
            macs=out.size if op.opcode == "MUL" else 0,
            weight_bytes=const_bytes(a, b),
        )


register(BinaryHandler())
