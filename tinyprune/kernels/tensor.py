"""Data movement and type conversion: PAD / PADV2, CONCATENATION, QUANTIZE, DEQUANTIZE.

Also the small helpers the other handlers of this family share (operand lookup, checks, C
literals for dims and floats).  Every number is computed here, bit-exact with TFLite Micro's
Prepare code; the templates under ``templates/ops/`` only substitute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.errors import UnsupportedError
from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import quantize_multiplier, shift_error

Dims4 = tuple[int, int, int, int]

# ---- helpers shared by the handlers of pooling, reduce, elementwise, activation, tensor -------


def fail(op: Op, reason: str) -> UnsupportedError:
    """The error a handler raises: names the layer, the op and the reason."""
    return UnsupportedError(f"layer '{op.name}': {op.opcode} {reason}")


def op_input(op: Op, graph: Graph, index: int) -> Tensor:
    """Input ``index`` of ``op``; raises when it is absent."""
    if index >= len(op.inputs) or op.inputs[index] < 0:
        raise fail(op, f"expected input {index}, received {len(op.inputs)} inputs")
    return graph.tensor(op.inputs[index])


def op_output(op: Op, graph: Graph) -> Tensor:
    if len(op.outputs) != 1:
        raise fail(op, f"expected 1 output, received {len(op.outputs)}")
    return graph.tensor(op.outputs[0])


def require_int8(op: Op, *tensors: Tensor) -> None:
    """Each tensor is int8 with per-tensor quantization."""
    for t in tensors:
        if t.dtype != "int8":
            raise fail(
                op,
                f"expects int8 tensors, received {t.dtype} for '{t.name}'; "
                "quantize the model to full int8",
            )
        if t.quant is None or len(t.quant.scale) != 1:
            raise fail(op, f"expects per-tensor quantization of '{t.name}'")


def require_scales(op: Op, *tensors: Tensor) -> None:
    """Each quantized tensor has finite, positive scales (the requantization multipliers are
    computed from them; the model reader refuses such files too, this keeps the handlers safe)."""
    for t in tensors:
        for s in () if t.quant is None else t.quant.scale:
            if not (math.isfinite(s) and s > 0):
                raise fail(op, f"tensor '{t.name}': expected a finite positive scale, received {s}")


def require_normal_scales(op: Op, *tensors: Tensor) -> None:
    """Each scale is a normal float32 (not subnormal): TFLM's float32 Prepare arithmetic on a
    subnormal scale depends on how the interpreter was compiled (flush to zero or not)."""
    for t in tensors:
        if t.quant is not None and not all(s >= 2.0**-126 for s in t.quant.scale):
            raise fail(op, f"expected normal float32 scales (at least {2.0**-126:.3g}), received "
                           f"{min(t.quant.scale):g} for '{t.name}'")


def require_rank(op: Op, t: Tensor, max_rank: int = 4) -> None:
    if len(t.shape) > max_rank:
        raise fail(op, f"supports tensors of rank <= {max_rank}, received shape {list(t.shape)}")


def dims4(shape: tuple[int, ...]) -> Dims4:
    """A shape of rank <= 4 as [N, H, W, C], padded with leading 1s."""
    padded = (1,) * (4 - len(shape)) + tuple(int(d) for d in shape)
    return padded[0], padded[1], padded[2], padded[3]


def c_dims(d: Dims4) -> dict[str, int]:
    """A [N, H, W, C] tuple as the fields of a tp_dims initializer."""
    return {"n": d[0], "h": d[1], "w": d[2], "c": d[3]}


def label_shape(shape: tuple[int, ...]) -> str:
    """A shape for a generated-code comment, e.g. ``1x8x8x16``."""
    return "x".join(str(int(v)) for v in shape) or "scalar"


def c_float(value: float) -> str:
    """An exact C float literal (hex) for a float32 value."""
    return f"{float(np.float32(value)).hex()}f"


def operand(ctx: LowerContext, t: Tensor, hint: str) -> str:
    """C expression for an int8 operand: its arena buffer, or a flash constant."""
    if t.is_const:
        assert t.data is not None
        return ctx.const(hint, np.ascontiguousarray(t.data, dtype=np.int8).reshape(-1), "int8_t")
    return ctx.act(t.index)


def const_bytes(*tensors: Tensor) -> int:
    return sum(t.nbytes for t in tensors if t.is_const)


def requant_params(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> dict[str, int]:
    """int8 -> int8 requantization (TFLM PrepareQuantizeReference). Equal scales give TFLM's
    identity multiplier (2^30, shift 1), which the kernel copies when the zero points are equal
    too; a ratio below 2^-32 gives multiplier 0 (every output is the output zero point)."""
    multiplier, shift = quantize_multiplier(in_scale / out_scale)
    return {
        "multiplier": multiplier,
        "shift": shift,
        "input_offset": -in_zp,
        "output_offset": out_zp,
    }


def check_requant(op: Op, src: Tensor, out: Tensor) -> None:
    """Refuses an int8 -> int8 requantization whose multiplier needs a shift above 31."""
    require_scales(op, src, out)
    p = requant_params(src.scale, src.zero_point, out.scale, out.zero_point)
    error = shift_error(src.scale / out.scale, p["shift"])
    if error:
        raise fail(op, f"'{src.name}' -> '{out.name}': input scale {src.scale:g} / output scale "
                       f"{out.scale:g}: {error}; check the quantization of these tensors")


def _act_or_none(op: Op) -> str:
    return str(op.options.get("fused_activation_function", "NONE"))


# ---- PAD / PADV2 ----------------------------------------------------------------------------


def pad_amounts(paddings: np.ndarray, rank: int) -> tuple[Dims4, Dims4]:
    """The ``[rank, 2]`` paddings tensor as (before, after) in [N, H, W, C] order."""
    pads = np.asarray(paddings, dtype=np.int64).reshape(rank, 2)
    lead = [0] * (4 - rank)
    before = [*lead, *(int(v) for v in pads[:, 0])]
    after = [*lead, *(int(v) for v in pads[:, 1])]
    return (before[0], before[1], before[2], before[3]), (after[0], after[1], after[2], after[3])


@dataclass(frozen=True)
class PadHandler:
    opcodes: tuple[str, ...] = ("PAD", "PADV2")

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        require_rank(op, x)
        paddings = op_input(op, graph, 1)
        if not paddings.is_const:
            raise fail(op, "needs constant paddings, received a computed tensor")
        assert paddings.data is not None
        if paddings.data.size != 2 * len(x.shape) or int(np.min(paddings.data)) < 0:
            raise fail(
                op,
                f"expects [{len(x.shape)}, 2] non-negative paddings, received "
                f"{paddings.data.tolist()}",
            )
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            value = op_input(op, graph, 2)
            if not value.is_const or value.dtype != "int8":
                raise fail(op, "needs a constant int8 padding value")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        paddings = op_input(op, graph, 1)
        assert paddings.data is not None
        before, after = pad_amounts(paddings.data, len(x.shape))
        value = out.zero_point
        if op.opcode == "PADV2" and len(op.inputs) > 2 and op.inputs[2] >= 0:
            data = op_input(op, graph, 2).data
            assert data is not None
            value = int(np.asarray(data).reshape(-1)[0])
        params = {
            "input": ctx.act(x.index),
            "output": ctx.act(out.index),
            "input_dims": c_dims(dims4(x.shape)),
            "output_dims": c_dims(dims4(out.shape)),
            "before": c_dims(before),
            "after": c_dims(after),
            "pad_value": value,
            "label": f"pad {label_shape(x.shape)} -> {label_shape(out.shape)}",
        }
        return KernelCall(
            kernel="tp_pad_s8", sources=("tp_pad_s8.c",), template="ops/pad_s8.c.j2", params=params
        )


# ---- CONCATENATION --------------------------------------------------------------------------


def concat_layout(
    shapes: list[tuple[int, ...]], out_shape: tuple[int, ...], axis: int
) -> tuple[int, list[int], int]:
    """(outer, per-input row, output row) of a concatenation viewed as [outer, axis * inner]."""
    outer = math.prod(out_shape[:axis])
    inner = math.prod(out_shape[axis + 1 :])
    rows = [int(s[axis]) * inner for s in shapes]
    return int(outer), rows, int(out_shape[axis]) * inner


@dataclass(frozen=True)
class ConcatHandler:
    opcodes: tuple[str, ...] = ("CONCATENATION",)

    def _axis(self, op: Op, rank: int) -> int:
        axis = int(op.options.get("axis", 0))
        return axis + rank if axis < 0 else axis

    def check(self, op: Op, graph: Graph) -> None:
        out = op_output(op, graph)
        ins = [op_input(op, graph, i) for i in range(len(op.inputs))]
        require_int8(op, out, *ins)
        if _act_or_none(op) != "NONE":
            raise fail(op, f"supports no fused activation, received {_act_or_none(op)}")
        axis = self._axis(op, len(out.shape))
        if not 0 <= axis < len(out.shape):
            raise fail(
                op, f"axis {op.options.get('axis')} is out of range for shape {list(out.shape)}"
            )
        for t in ins:
            same = [d for i, d in enumerate(t.shape) if i != axis]
            if len(t.shape) != len(out.shape) or same != [
                d for i, d in enumerate(out.shape) if i != axis
            ]:
                raise fail(
                    op,
                    f"input '{t.name}' of shape {list(t.shape)} does not fit output "
                    f"{list(out.shape)} along axis {axis}",
                )
            check_requant(op, t, out)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        out = op_output(op, graph)
        ins = [op_input(op, graph, i) for i in range(len(op.inputs))]
        outer, rows, out_row = concat_layout(
            [t.shape for t in ins], out.shape, self._axis(op, len(out.shape))
        )
        inputs = [
            {
                "data": operand(ctx, t, f"{op.name}_in{i}"),
                "row": row,
                **requant_params(t.scale, t.zero_point, out.scale, out.zero_point),
            }
            for i, (t, row) in enumerate(zip(ins, rows, strict=True))
        ]
        params = {
            "output": ctx.act(out.index),
            "outer": outer,
            "output_row": out_row,
            "inputs": inputs,
            "label": f"concat {len(ins)} inputs -> {label_shape(out.shape)}",
        }
        return KernelCall(
            kernel="tp_concat_s8",
            sources=("tp_concat_s8.c", "tp_requantize_s8.c"),
            template="ops/concat_s8.c.j2",
            params=params,
            weight_bytes=const_bytes(*ins),
        )


# ---- QUANTIZE / DEQUANTIZE ------------------------------------------------------------------


def _affine(t: Tensor) -> dict[str, Any]:
    return {"scale": c_float(t.scale), "zero_point": t.zero_point}


@dataclass(frozen=True)
class QuantizeHandler:
    opcodes: tuple[str, ...] = ("QUANTIZE",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, out)
        if x.dtype == "int8":
            require_int8(op, x)
            check_requant(op, x, out)
        elif x.dtype != "float32":
            raise fail(op, f"supports float32 or int8 input, received {x.dtype}")
        if not out.scale > 0:
            raise fail(op, f"expects a positive output scale, received {out.scale}")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        common = {
            "input": ctx.act(x.index),
            "output": ctx.act(out.index),
            "size": out.size,
            "label": f"quantize {x.dtype} -> int8 {label_shape(out.shape)}",
        }
        if x.dtype == "float32":
            return KernelCall(
                kernel="tp_quantize_f32_s8",
                sources=("tp_quantize_f32_s8.c",),
                template="ops/quantize_f32_s8.c.j2",
                params={**common, **_affine(out)},
            )
        # Same scale and zero point: TFLM's multiplier (2^30, shift 1) is the identity, so a copy.
        quant = requant_params(x.scale, x.zero_point, out.scale, out.zero_point)
        return KernelCall(
            kernel="tp_requantize_s8",
            sources=("tp_requantize_s8.c",),
            template="ops/requantize_s8.c.j2",
            params={**common, **quant},
        )


@dataclass(frozen=True)
class DequantizeHandler:
    opcodes: tuple[str, ...] = ("DEQUANTIZE",)

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x)
        if out.dtype != "float32":
            raise fail(op, f"supports int8 -> float32 only, received int8 -> {out.dtype}")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        params = {
            "input": ctx.act(x.index),
            "output": ctx.act(out.index),
            "size": x.size,
            "label": f"dequantize int8 -> float32 {label_shape(x.shape)}",
            **_affine(x),
        }
        return KernelCall(
            kernel="tp_dequantize_s8_f32",
            sources=("tp_dequantize_s8_f32.c",),
            template="ops/dequantize_s8_f32.c.j2",
            params=params,
        )


register(PadHandler())
register(ConcatHandler())
register(QuantizeHandler())
register(DequantizeHandler())
