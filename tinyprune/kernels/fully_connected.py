"""FULLY_CONNECTED -> ``tp_fully_connected_s8`` / ``tp_fully_connected_per_channel_s8``.

Numbers as the TFLite Micro reference interpreter computes them: per-channel and per-tensor
multipliers both from the double product of the float32 scales divided by the output scale in
double. (``kernel_util.cc`` reads as a float32 product for the per-tensor case, but the shipped
interpreter, our oracle, rounds as the double product does: with the float32 product the official
MLPerf Tiny ``ad01_int8.tflite`` differed by 1 LSB on 9 of 1,000 random inputs; see
docs/kernels.md.) :func:`fc_args` returns them for tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from tinyprune.errors import UnsupportedError
from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels import sparse_cost
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.conv import (
    channel_multipliers,
    check_int8_tensors,
    check_shifts,
    padded,
)
from tinyprune.kernels.quant import (
    activation_range,
    constant_channels,
    fast_rounding,
    quantize_multiplier,
)

FC_KERNELS = ("tp_fully_connected_interleaved_s8", "general")
"""FULLY_CONNECTED kernels, fastest first: the interleaved stream kernel whenever the folded bias
fits int32, else the general tp_fully_connected_s8 / _per_channel_s8 ("general"). Tests and
benchmarks may narrow the tuple to force one."""


@dataclass(frozen=True)
class FcArgs:
    """Everything the fully connected kernels take besides the activation buffers."""

    rows: int  # batch rows N (input size / IN)
    in_features: int
    out_features: int
    input_offset: int
    output_offset: int
    act_min: int
    act_max: int
    per_channel: bool
    multiplier: np.ndarray  # int32 [1] (per tensor) or [OUT]
    shift: np.ndarray  # int32, same length
    weights: np.ndarray  # int8 [OUT, IN]
    bias: np.ndarray | None  # int32 [OUT]

    @property
    def kernel(self) -> str:
        return "tp_fully_connected_per_channel_s8" if self.per_channel else "tp_fully_connected_s8"

    @property
    def macs(self) -> int:
        return self.rows * self.in_features * self.out_features

    @property
    def weight_bytes(self) -> int:
        bias = 0 if self.bias is None else self.bias.size * 4
        quant = 8 * self.multiplier.size if self.per_channel else 0
        return self.weights.size + bias + quant


def tensor_multiplier(input_scale: float, filter_scale: float,
                      output_scale: float) -> tuple[int, int]:
    """The per-tensor multiplier as the TFLM reference interpreter rounds it: the double product
    of the float32 scales, divided by the float32 output scale in double."""
    product = np.float64(np.float32(input_scale)) * np.float64(np.float32(filter_scale))
    return quantize_multiplier(float(product / np.float64(np.float32(output_scale))))


def fc_scratch_bytes(in_features: int, dsp: bool) -> int:
    """tp_fully_connected_s8_get_buffer_size: one int16 input row on the DSP path, else 0."""
    return 2 * in_features if dsp else 0


def fc_folded_bias(a: FcArgs) -> np.ndarray | None:
    """bias + input_offset * (sum of each weight row), or None when it leaves int32."""
    sums = a.weights.astype(np.int64).sum(axis=1)
    bias = np.zeros(a.out_features, np.int64) if a.bias is None else a.bias.astype(np.int64)
    folded = bias + a.input_offset * sums
    if folded.size and (folded.min() < -(2**31) or folded.max() >= 2**31):
        return None
    return folded


def fc_stream(a: FcArgs) -> np.ndarray | None:
    """The filter stream of tp_fully_connected_interleaved_s8 (tp_nn_fc.h), or None when the
    folded bias leaves int32 (the general kernels run then).

    Per group of four rows: the four folded biases, the rows interleaved a word at a time
    ``[IN4/4][4 rows][4 values]``, and per channel each row's multiplier, shift and rounding
    word (``[4 rows][3]``)."""
    folded = fc_folded_bias(a)
    if folded is None:
        return None
    out4, in4 = (a.out_features + 3) // 4 * 4, (a.in_features + 3) // 4 * 4
    rows = np.zeros((out4, in4), np.int8)
    rows[:a.out_features, :a.in_features] = a.weights
    groups = out4 // 4
    weights = rows.reshape(groups, 4, in4 // 4, 4).transpose(0, 2, 1, 3).reshape(groups, 4 * in4)
    rounding = fast_rounding(a.shift, a.output_offset)
    bias = padded(folded, out4, False).astype("<i4").reshape(groups, 4)
    parts = [bias.view(np.int8), weights]
    if a.per_channel:
        quant = np.stack([padded(v, out4, True) for v in (
            a.multiplier, a.shift, np.zeros(a.out_features) if rounding is None else rounding)],
            axis=1).astype("<i4").reshape(groups, 12)
        parts.append(quant.view(np.int8))
    body = np.concatenate(parts, axis=1)
    tensor = [0, 0, 0] if a.per_channel else [
        int(a.multiplier[0]), int(a.shift[0]), 0 if rounding is None else int(rounding[0])]
    head = np.array([int(rounding is not None), int(a.per_channel), *tensor], "<i4")
    return np.ascontiguousarray(np.concatenate([head.view(np.int8), body.reshape(-1)]))


def fc_interleaved_scratch_bytes(in_features: int, dsp: bool) -> int:
    """tp_fully_connected_interleaved_s8_get_buffer_size: 2 * IN4 on the DSP path, else 0."""
    return 2 * ((in_features + 3) // 4 * 4) if dsp else 0


def fc_args(op: Op, graph: Graph) -> FcArgs:
    """The kernel arguments of a FULLY_CONNECTED op (checked by the handler's ``check``)."""
    x, w, b = _inputs(op, graph)
    y = graph.tensor(op.outputs[0])
    assert x.quant and w.quant and y.quant and w.data is not None
    out_f, in_f = int(w.shape[0]), int(w.shape[1])
    if w.quant.per_channel:
        mult, shift = channel_multipliers(x.scale, w.quant.scale, y.scale, out_f)
    else:
        m, s = tensor_multiplier(x.scale, w.quant.scale[0], y.scale)
        mult, shift = np.array([m], dtype=np.int32), np.array([s], dtype=np.int32)
    act = str(op.options.get("fused_activation_function", "NONE"))
    lo, hi = activation_range(act, y.scale, y.zero_point)
    weights = np.asarray(w.data, dtype=np.int8)
    bias = None if b is None else np.asarray(b.data, dtype=np.int32).reshape(-1)
    if w.quant.per_channel:  # an all-zero row runs as a constant (quant.constant_channels)
        bias, mult, shift = constant_channels(weights, bias, mult, shift, y.zero_point, lo, hi)
    return FcArgs(
        rows=x.size // in_f, in_features=in_f, out_features=out_f, input_offset=-x.zero_point,
        output_offset=y.zero_point, act_min=lo, act_max=hi, per_channel=w.quant.per_channel,
        multiplier=mult, shift=shift, weights=weights, bias=bias)


def _inputs(op: Op, graph: Graph) -> tuple[Tensor, Tensor, Tensor | None]:
    ins = graph.op_inputs(op)
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return x, w, ins[2] if len(ins) > 2 else None


def _fail(op: Op, reason: str) -> UnsupportedError:
    return UnsupportedError(f"layer '{op.name}': {op.opcode} {reason}")


def _check_bias_scale(op: Op, x: Tensor, w: Tensor, b: Tensor, y: Tensor) -> None:
    """TFLM's per-tensor FULLY_CONNECTED Prepare (GetQuantizedConvolutionMultipler) fails
    unless |input scale x filter scale - bias scale| / output scale <= 0.02; so do we."""
    assert w.quant
    product = float(np.float64(x.scale) * np.float64(w.quant.scale[0]))
    bias_scale = float(b.quant.scale[0]) if b.quant is not None and b.quant.scale else 0.0
    if not abs(product - bias_scale) / y.scale <= 0.02:
        raise _fail(op, f"bias '{b.name}': expected a scale of input scale x filter scale = "
                        f"{product:.6g} (within 0.02 output steps, as TFLM requires), received "
                        f"{bias_scale:.6g}")


class FullyConnectedHandler:
    """FULLY_CONNECTED with int8 weights, per-tensor or per-channel."""

    opcodes: ClassVar[tuple[str, ...]] = ("FULLY_CONNECTED",)
    # rows (outputs) in pairs, inputs a word (four values) at a time
    channel_multiple: ClassVar[int] = 4

    def check(self, op: Op, graph: Graph) -> None:
        x, w, b = _inputs(op, graph)
        y = graph.tensor(op.outputs[0])
        check_int8_tensors(op, x, w, b, y)
        fmt = op.options.get("weights_format", 0)
        if fmt not in (0, "DEFAULT"):
            raise _fail(op, f"weights_format: expected DEFAULT, received {fmt}")
        if len(w.shape) != 2:
            raise _fail(op, f"expected 2-D weights [OUT, IN], received {list(w.shape)}")
        out_f, in_f = w.shape
        if x.size % in_f or y.size != (x.size // in_f) * out_f:
            raise _fail(op, f"shapes: input {list(x.shape)} and output {list(y.shape)} do not fit "
                            f"weights [{out_f}, {in_f}]")
        assert w.quant
        if w.quant.per_channel and (len(w.quant.scale) != out_f or w.quant.axis != 0):
            raise _fail(op, f"expected {out_f} weight scales on axis 0, received "
                            f"{len(w.quant.scale)} on axis {w.quant.axis}")
        if b is not None and b.size != out_f:
            raise _fail(op, f"expected {out_f} bias values, received {b.size}")
        check_shifts(op, x, w, y, fc_args(op, graph).shift)
        if b is not None and not w.quant.per_channel:
            _check_bias_scale(op, x, w, b, y)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        a = fc_args(op, graph)
        stream = fc_stream(a) if FC_KERNELS[0] == "tp_fully_connected_interleaved_s8" else None
        act = str(op.options.get("fused_activation_function", "NONE")).lower()
        params = {
            "input": ctx.act(op.inputs[0]),
            "output": ctx.act(op.outputs[0]),
            "input_dims": {"n": a.rows, "h": 1, "w": 1, "c": a.in_features},
            "filter_dims": {"n": a.out_features, "h": 1, "w": 1, "c": a.in_features},
            "bias_dims": {"n": 1, "h": 1, "w": 1, "c": a.out_features},
            "output_dims": {"n": a.rows, "h": 1, "w": 1, "c": a.out_features},
            "input_offset": a.input_offset, "output_offset": a.output_offset,
            "act_min": a.act_min, "act_max": a.act_max,
            "label": (f"fc {a.in_features}->{a.out_features}"
                      f"{' per-channel' if a.per_channel else ''}"
                      f"{'' if act == 'none' else ' ' + act}"),
        }
        if stream is not None:
            kernel = "tp_fully_connected_interleaved_s8"
            source = f"{kernel}.c"
            scratch_bytes = fc_interleaved_scratch_bytes(a.in_features, ctx.dsp)
            params.update(filter=ctx.const(f"{op.name}_w", stream, "int8_t"))
            template, flash = "ops/fully_connected_interleaved_s8.c.j2", stream.size
        else:
            kernel, source = a.kernel, "tp_fully_connected_s8.c"
            scratch_bytes = fc_scratch_bytes(a.in_features, ctx.dsp)
            params.update(self._general_params(op, a, ctx))
            template, flash = "ops/fully_connected_s8.c.j2", a.weight_bytes
        params.update(kernel=kernel, scratch=ctx.scratch if scratch_bytes else "NULL",
                      scratch_bytes=scratch_bytes)
        return KernelCall(kernel=kernel, sources=(source,), template=template, params=params,
                          scratch_bytes=scratch_bytes, macs=a.macs, weight_bytes=flash)

    @staticmethod
    def _general_params(op: Op, a: FcArgs, ctx: LowerContext) -> dict[str, str]:
        if a.per_channel:
            quant_type = "tp_per_channel_quant"
            mult = ctx.const(f"{op.name}_mult", a.multiplier, "int32_t")
            shift = ctx.const(f"{op.name}_shift", a.shift, "int32_t")
        else:
            quant_type, mult, shift = "tp_per_tensor_quant", str(a.multiplier[0]), str(a.shift[0])
        return {"filter": ctx.const(f"{op.name}_w", a.weights, "int8_t"),
                "bias": "NULL" if a.bias is None else ctx.const(f"{op.name}_b", a.bias, "int32_t"),
                "quant_type": quant_type, "multiplier": mult, "shift": shift}


register(FullyConnectedHandler(), estimate=sparse_cost.fc_dense_estimate)
