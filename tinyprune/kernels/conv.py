"""CONV_2D and DEPTHWISE_CONV_2D -> the fastest C kernel that accepts the layer.

The numbers are computed exactly as TFLite Micro's Prepare does (``conv_common.cc``,
``depthwise_conv_common.cc``, ``kernel_util.cc``, ``padding.h``); the pure functions
:func:`conv_args` and :func:`depthwise_args` return them so tests can drive the C kernels directly.

Kernel choice: :data:`CONV_KERNELS` and :data:`DEPTHWISE_KERNELS` list the kernels of each op,
fastest first; :func:`choose_kernel` takes the first whose ``applies`` accepts the layer, and its
``prepare`` turns the TFLM arguments into what that kernel takes (input offset folded into the
bias, filter regrouped or padded). The general kernels (``tp_conv_s8``, ``tp_depthwise_conv_s8``)
accept everything and stay last. docs/kernels.md says when each one is chosen and why.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from tinyprune.errors import UnsupportedError
from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels import sparse_cost
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import (
    MAX_LEFT_SHIFT,
    activation_range,
    constant_channels,
    fast_rounding,
    quantize_multiplier,
    shift_error,
)
from tinyprune.kernels.tensor import require_scales

ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


@dataclass(frozen=True)
class ConvArgs:
    """Everything ``tp_conv_s8`` / ``tp_depthwise_conv_s8`` take besides the activation buffers.

    Shapes are NHWC 4-tuples; the filter shape is [C_OUT, KH, KW, C_IN] for conv and
    [1, KH, KW, C_OUT] for depthwise. ``stride``, ``padding`` and ``dilation`` are (w, h) pairs.
    """

    input_shape: tuple[int, int, int, int]
    filter_shape: tuple[int, int, int, int]
    output_shape: tuple[int, int, int, int]
    input_offset: int
    output_offset: int
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    act_min: int
    act_max: int
    multiplier: np.ndarray  # int32 [C_OUT]
    shift: np.ndarray  # int32 [C_OUT]
    weights: np.ndarray  # int8, filter_shape
    bias: np.ndarray | None  # int32 [C_OUT]
    ch_mult: int = 1
    depthwise: bool = False

    @property
    def macs(self) -> int:
        n, oh, ow, oc = self.output_shape
        _, kh, kw, kc = self.filter_shape
        return n * oh * ow * oc * kh * kw * (1 if self.depthwise else kc)

    @property
    def weight_bytes(self) -> int:
        """Flash bytes: weights, bias, multipliers and shifts."""
        bias = 0 if self.bias is None else self.bias.size * 4
        return self.weights.size + bias + 8 * self.multiplier.size


def out_size(padding: str, image: int, filt: int, stride: int, dilation: int) -> int:
    """TFLM ComputeOutSize (GetWindowedOutputSize)."""
    effective = (filt - 1) * dilation + 1
    if padding == "SAME":
        return (image + stride - 1) // stride
    return (image + stride - effective) // stride


def pad_before(stride: int, dilation: int, image: int, filt: int, out: int) -> int:
    """TFLM ComputePaddingWithOffset: padding before the first row / column (total // 2)."""
    effective = (filt - 1) * dilation + 1
    total = max((out - 1) * stride + effective - image, 0)
    return total // 2


def channel_multipliers(input_scale: float, filter_scales: tuple[float, ...], output_scale: float,
                        channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (multiplier, shift) as TFLM PopulateConvolutionQuantizationParams (in double).

    A per-tensor filter scale is broadcast to every channel.
    """
    mult = np.zeros(channels, dtype=np.int32)
    shift = np.zeros(channels, dtype=np.int32)
    for i in range(channels):
        scale = filter_scales[i] if len(filter_scales) > 1 else filter_scales[0]
        real = float(np.float64(input_scale) * np.float64(scale) / np.float64(output_scale))
        mult[i], shift[i] = quantize_multiplier(real)
    return mult, shift


def _padding_values(op: Op, in_shape: tuple[int, ...], kh: int, kw: int) -> tuple[
        tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(stride, dilation, padding, out size), each (w, h), as TFLM Prepare computes them."""
    o = op.options
    stride = (int(o.get("stride_w", 1)), int(o.get("stride_h", 1)))
    dilation = (int(o.get("dilation_w_factor", 1)), int(o.get("dilation_h_factor", 1)))
    pad = str(o.get("padding", "VALID"))
    ow = out_size(pad, in_shape[2], kw, stride[0], dilation[0])
    oh = out_size(pad, in_shape[1], kh, stride[1], dilation[1])
    padding = (pad_before(stride[0], dilation[0], in_shape[2], kw, ow),
               pad_before(stride[1], dilation[1], in_shape[1], kh, oh))
    return stride, dilation, padding, (ow, oh)


def _common_args(op: Op, graph: Graph, channels: int, ch_mult: int) -> ConvArgs:
    x, w, b = _inputs(op, graph)
    y = graph.tensor(op.outputs[0])
    assert x.quant and w.quant and y.quant
    kh, kw = w.shape[1], w.shape[2]
    stride, dilation, padding, _ = _padding_values(op, x.shape, kh, kw)
    mult, shift = channel_multipliers(x.scale, w.quant.scale, y.scale, channels)
    act = str(op.options.get("fused_activation_function", "NONE"))
    lo, hi = activation_range(act, y.scale, y.zero_point)
    weights = np.asarray(w.data, dtype=np.int8)
    depthwise = op.opcode == "DEPTHWISE_CONV_2D"
    rows = weights.reshape(-1, channels).T if depthwise else weights.reshape(channels, -1)
    bias, mult, shift = constant_channels(
        rows, None if b is None else np.asarray(b.data, dtype=np.int32).reshape(-1), mult, shift,
        y.zero_point, lo, hi)
    return ConvArgs(
        input_shape=_nhwc(x), filter_shape=_nhwc(w), output_shape=_nhwc(y),
        input_offset=-x.zero_point, output_offset=y.zero_point, stride=stride, padding=padding,
        dilation=dilation, act_min=lo, act_max=hi, multiplier=mult, shift=shift,
        weights=weights, bias=bias, ch_mult=ch_mult, depthwise=depthwise)


def conv_args(op: Op, graph: Graph) -> ConvArgs:
    """The arguments of ``tp_conv_s8`` for a CONV_2D op (checked with :meth:`ConvHandler.check`)."""
    return _common_args(op, graph, graph.tensor(op.inputs[1]).shape[0], ch_mult=1)


def depthwise_args(op: Op, graph: Graph) -> ConvArgs:
    """The arguments of ``tp_depthwise_conv_s8`` for a DEPTHWISE_CONV_2D op."""
    x, w = graph.tensor(op.inputs[0]), graph.tensor(op.inputs[1])
    return _common_args(op, graph, w.shape[3], ch_mult=w.shape[3] // x.shape[3])


def conv_scratch_bytes(filter_shape: tuple[int, ...], dsp: bool) -> int:
    """tp_conv_s8_get_buffer_size: two int16 im2col columns on the DSP path, else 0."""
    _, kh, kw, c = filter_shape
    return 2 * kh * kw * c * 2 if dsp else 0


# ---- kernel choice ----------------------------------------------------------------------------

@dataclass(frozen=True)
class ConvKernel:
    """One C kernel of CONV_2D or DEPTHWISE_CONV_2D.

    Attributes:
        name: the C function, e.g. ``"tp_conv_interleaved_s8"``.
        sources: the C files under ``runtime/kernels/`` it needs.
        applies: True when the kernel accepts the layer (its :class:`ConvArgs` as TFLM has them).
        prepare: the arguments the kernel takes (folded bias, regrouped filter) from the TFLM
            ones; only called when ``applies`` is True.
        scratch: its ``_get_buffer_size`` (args, dsp) -> bytes.
        stream: the prepared filter holds the bias and the per-channel parameters too (the
            kernel's bias and quant_params arguments are NULL).
        in_place: the scratch bytes the kernel needs with output == input (args, dsp), or None
            when the layer cannot run in place (tp_nn_conv.h says when each kernel can).
        min_scratch: the least scratch the kernel's narrow variant ``narrow_name`` runs with
            (out of place), when less than ``scratch`` (a slower path the planner may take at
            the memory peak), else None.
        narrow_name: the C function of that variant (same arguments and stream).
    """

    name: str
    sources: tuple[str, ...]
    applies: Callable[[ConvArgs], bool]
    prepare: Callable[[ConvArgs], ConvArgs]
    scratch: Callable[[ConvArgs, bool], int]
    stream: bool = False
    in_place: Callable[[ConvArgs, bool], int | None] = lambda a, dsp: None
    min_scratch: Callable[[ConvArgs, bool], int | None] = lambda a, dsp: None
    narrow_name: str = ""


def folded_bias(a: ConvArgs) -> np.ndarray | None:
    """bias + input_offset * (sum of each output channel's filter values), or None past int32.

    The specialised kernels take this bias and multiply raw int8 inputs (tp_nn_conv.h).
    """
    w = a.weights.astype(np.int64)
    if a.depthwise:
        sums = w.reshape(-1, w.shape[-1]).sum(axis=0)
    else:
        sums = w.reshape(w.shape[0], -1).sum(axis=1)
    bias = np.zeros(sums.shape, np.int64) if a.bias is None else a.bias.astype(np.int64)
    folded = bias + a.input_offset * sums
    if folded.min() < -(2**31) or folded.max() >= 2**31:
        return None
    return folded.astype(np.int32)


def _with_folded_bias(a: ConvArgs) -> ConvArgs:
    folded = folded_bias(a)
    assert folded is not None
    return replace(a, bias=folded)


def _depth4(a: ConvArgs) -> int:
    """n4: the KH * KW * C_IN values of a filter row rounded up to a multiple of 4."""
    _, kh, kw, c = a.filter_shape
    return (kh * kw * c + 3) // 4 * 4


def _is_interleavable(a: ConvArgs) -> bool:
    """Any conv whose folded bias fits int32: measured faster than tp_conv_s8 on every shape of
    bench/kernels.py (1x1 8->16 0.118 vs 0.086, 64->64 0.431 vs 0.335, 3x3 16->16 0.444 vs
    0.376, 3x3/2 3->8 0.180 vs 0.098, 10x4/2 1->64 0.307 vs 0.217 MACs/cycle)."""
    return folded_bias(a) is not None


def pair_stream(rows: np.ndarray, params: list[np.ndarray], fast: bool) -> np.ndarray:
    """The filter stream of tp_conv_interleaved_s8 (tp_nn_conv.h): word 0 is 1 when the
    rounding words are valid, then per pair of output channels its two rows interleaved a word at
    a time and its eight parameter words (bias, multiplier, shift, rounding; two of each).

    Args:
        rows: int8 [C_OUT rounded up to even, n4], the zero-padded filter rows.
        params: four int32 arrays of C_OUT rounded up to even values each.
        fast: the rounding words are valid (tp_requantize_fast applies to every channel).
    """
    pairs, n4 = rows.shape[0] // 2, rows.shape[1]
    weights = rows.reshape(pairs, 2, n4 // 4, 4).transpose(0, 2, 1, 3).reshape(pairs, 2 * n4)
    words = np.stack([p.astype(np.int32).reshape(pairs, 2) for p in params], axis=1)
    tail = words.reshape(pairs, 8).astype("<i4").view(np.int8)
    body = np.concatenate([weights.astype(np.int8), tail], axis=1).reshape(-1)
    head = np.array([1 if fast else 0], "<i4").view(np.int8)
    return np.ascontiguousarray(np.concatenate([head, body]))


def padded(values: np.ndarray, n: int, repeat_last: bool) -> np.ndarray:
    """values (int64) padded to n: with 0 (biases), or with the last value (multipliers, shifts,
    rounding words: a padding channel requantized by a kernel then has valid parameters; its
    result is never stored, but a shift of 0 would make tp_requantize_fast undefined in C)."""
    out = np.zeros(n, np.int64)
    v = np.asarray(values, np.int64).reshape(-1)
    out[:v.size] = v
    if repeat_last and v.size:
        out[v.size:] = v[-1]
    return out


def _prepare_interleaved(a: ConvArgs) -> ConvArgs:
    """Folded bias; filter rows padded with zeros to n4 (and C_OUT to even with a zero row, bias 0
    and the last channel's requantization), as the stream of :func:`pair_stream`."""
    n4 = _depth4(a)
    c_out = a.filter_shape[0]
    even = (c_out + 1) // 2 * 2
    rows = np.zeros((even, n4), np.int8)
    flat = a.weights.reshape(c_out, -1)
    rows[:c_out, :flat.shape[1]] = flat
    folded = folded_bias(a)
    assert folded is not None
    rounding = rounding_words(a)
    params = [padded(folded, even, False)] + [
        padded(v, even, True) for v in (a.multiplier, a.shift,
                                         np.zeros(c_out) if rounding is None else rounding)]
    return replace(a, weights=pair_stream(rows, params, rounding is not None), bias=None)


def _interleaved_scratch(a: ConvArgs, dsp: bool) -> int:
    """tp_conv_interleaved_s8_get_buffer_size: two int16 columns + the int8 window (DSP)."""
    return (5 if dsp else 1) * _depth4(a)


def _interleaved_min_scratch(a: ConvArgs, dsp: bool) -> int | None:
    """tp_conv_interleaved_narrow_s8_get_buffer_size on the DSP path: its narrow path keeps
    the two windows int8 (2 * n4 bytes); nothing smaller on the portable path."""
    return 2 * _depth4(a) if dsp else None


THIN_C_IN = (4, 8, 12, 16)
"""The input channel counts ``tp_conv_1x1_thin_s8`` takes (its DSP passes keep P pixels x
C_IN / 2 widened words in registers)."""


def _is_thin_1x1(a: ConvArgs) -> bool:
    """A 1x1 conv, no padding, 4-16 input channels (a multiple of 4), its folded bias in int32
    and every channel's shift able to take tp_requantize_fast: measured faster than
    tp_conv_interleaved_s8 on these (bench/results/thin_conv.md)."""
    return (a.filter_shape[1:3] == (1, 1) and a.padding == (0, 0)
            and a.input_shape[3] in THIN_C_IN and folded_bias(a) is not None
            and rounding_words(a) is not None)


def thin_stream(a: ConvArgs) -> np.ndarray:
    """The filter stream of tp_conv_1x1_thin_s8 (tp_nn_conv.h): per output channel its row as
    int16, each group of four values in SXTB16 order (0, 2, 1, 3), then its folded bias,
    multiplier, -shift - 1 and rounding word."""
    c_out, c_in = a.filter_shape[0], a.filter_shape[3]
    rows = a.weights.reshape(c_out, c_in // 4, 4)[:, :, [0, 2, 1, 3]].reshape(c_out, c_in)
    folded = folded_bias(a)
    rounding = rounding_words(a)
    assert folded is not None and rounding is not None
    params = np.stack([folded, a.multiplier, -np.asarray(a.shift, np.int64) - 1, rounding],
                      axis=1).astype("<i4")
    body = np.concatenate([np.ascontiguousarray(rows, "<i2").view(np.int8),
                           np.ascontiguousarray(params).view(np.int8)], axis=1)
    return np.ascontiguousarray(body.reshape(-1))


def _prepare_thin_1x1(a: ConvArgs) -> ConvArgs:
    return replace(a, weights=thin_stream(a), bias=None)


def _thin_in_place(a: ConvArgs, dsp: bool) -> int | None:
    """Stride 1 and C_OUT <= C_IN: a pass reads its pixels before it stores; no scratch."""
    return 0 if a.stride == (1, 1) and a.output_shape[3] <= a.input_shape[3] else None


def _is_dw3x3(a: ConvArgs) -> bool:
    return a.ch_mult == 1 and a.filter_shape[1:3] == (3, 3) and folded_bias(a) is not None


def group_stream(a: ConvArgs) -> np.ndarray:
    """The filter stream of tp_depthwise_conv_3x3_s8 (tp_nn_conv.h): word 0 is 1 when the
    rounding words are valid, then per group of four channels (the last C % 4 zero-padded to a
    group) its nine tap words (int8 x 4, tap t = 3 * ky + kx) and its bias (folded),
    multiplier, shift and rounding words, four of each: 25 words per group."""
    c = a.filter_shape[3]
    groups = (c + 3) // 4
    taps = np.zeros((9, groups * 4), np.int8)
    taps[:, :c] = a.weights.reshape(9, c)
    folded = folded_bias(a)
    assert folded is not None
    rounding = rounding_words(a)
    params = np.zeros((4, groups * 4), np.int64)
    for i, v in enumerate((folded, a.multiplier, a.shift,
                           np.zeros(c) if rounding is None else rounding)):
        params[i] = padded(v, groups * 4, i > 0)
    tap_bytes = taps.reshape(9, groups, 4).transpose(1, 0, 2).reshape(groups, 36)
    words = params.reshape(4, groups, 4).transpose(1, 0, 2).reshape(groups, 16)
    body = np.concatenate([tap_bytes, words.astype("<i4").view(np.int8)], axis=1)
    head = np.array([0 if rounding is None else 1], "<i4").view(np.int8)
    return np.ascontiguousarray(np.concatenate([head, body.reshape(-1)]))


def _prepare_dw3x3(a: ConvArgs) -> ConvArgs:
    """Folded bias; the filter and the per-channel parameters as :func:`group_stream`."""
    return replace(a, weights=group_stream(a), bias=None)


def _same_pixels(a: ConvArgs) -> bool:
    return a.stride == (1, 1) and a.input_shape[1:3] == a.output_shape[1:3]


def _interleaved_in_place(a: ConvArgs, dsp: bool) -> int | None:
    """1x1, stride 1, no padding, C_OUT <= C_IN: each pixel is read before its outputs land at or
    before it; the same scratch."""
    ok = (a.filter_shape[1:3] == (1, 1) and a.padding == (0, 0) and _same_pixels(a)
          and a.output_shape[3] <= a.input_shape[3])
    return _interleaved_scratch(a, dsp) if ok else None


def _dw3x3_scratch(a: ConvArgs, dsp: bool) -> int:
    return (a.input_shape[3] + 3) // 4 * 4


def _dw3x3_in_place(a: ConvArgs, dsp: bool) -> int | None:
    """SAME (padding 1), stride 1, dilation 1: a two-row ring of W * C bytes (rounded to 4) in
    the scratch after the zero-point row."""
    if not (_same_pixels(a) and a.padding == (1, 1) and a.dilation == (1, 1)):
        return None
    return _dw3x3_scratch(a, dsp) + 2 * ((a.input_shape[2] * a.input_shape[3] + 3) // 4 * 4)


CONV_KERNELS: tuple[ConvKernel, ...] = (
    ConvKernel("tp_conv_1x1_thin_s8", ("tp_conv_1x1_thin_s8.c",), _is_thin_1x1,
               _prepare_thin_1x1, lambda a, dsp: 0, stream=True, in_place=_thin_in_place),
    ConvKernel("tp_conv_interleaved_s8", ("tp_conv_interleaved_s8.c",), _is_interleavable,
               _prepare_interleaved, _interleaved_scratch, stream=True,
               in_place=_interleaved_in_place, min_scratch=_interleaved_min_scratch,
               narrow_name="tp_conv_interleaved_narrow_s8"),
    ConvKernel("tp_conv_s8", ("tp_conv_s8.c",), lambda a: True, lambda a: a,
               lambda a, dsp: conv_scratch_bytes(a.filter_shape, dsp)),
)
"""CONV_2D kernels, fastest first (the general tp_conv_s8 accepts every layer, and runs when
the folded bias would leave int32)."""

INTERLEAVED = next(k for k in CONV_KERNELS if k.name == "tp_conv_interleaved_s8")
"""The kernel the residual ADD fusion builds on (:func:`lower_interleaved`)."""

DEPTHWISE_KERNELS: tuple[ConvKernel, ...] = (
    ConvKernel("tp_depthwise_conv_3x3_s8", ("tp_depthwise_conv_3x3_s8.c",), _is_dw3x3,
               _prepare_dw3x3, _dw3x3_scratch, stream=True, in_place=_dw3x3_in_place),
    ConvKernel("tp_depthwise_conv_s8", ("tp_depthwise_conv_s8.c",), lambda a: True,
               lambda a: a, lambda a, dsp: 0),
)
"""DEPTHWISE_CONV_2D kernels, fastest first (the general tp_depthwise_conv_s8 accepts all)."""


def rounding_words(a: ConvArgs) -> np.ndarray | None:
    """The per-channel rounding words of tp_requantize_fast (tp_dsp.h) for the layer, or None
    when a channel cannot take it (tinyprune/kernels/quant.py fast_rounding)."""
    return fast_rounding(a.shift, a.output_offset)


def choose_kernel(args: ConvArgs) -> ConvKernel:
    """The first kernel of the op's list that accepts the layer."""
    kernels = DEPTHWISE_KERNELS if args.depthwise else CONV_KERNELS
    return next(k for k in kernels if k.applies(args))


def _nhwc(t: Tensor) -> tuple[int, int, int, int]:
    s = (1,) * (4 - len(t.shape)) + tuple(int(v) for v in t.shape)
    return s[0], s[1], s[2], s[3]


def _inputs(op: Op, graph: Graph) -> tuple[Tensor, Tensor, Tensor | None]:
    ins = graph.op_inputs(op)
    x, w = ins[0], ins[1]
    assert x is not None and w is not None
    return x, w, ins[2] if len(ins) > 2 else None


def _dims(shape: tuple[int, ...]) -> dict[str, int]:
    s = (1,) * (4 - len(shape)) + tuple(int(v) for v in shape)
    return {"n": s[0], "h": s[1], "w": s[2], "c": s[3]}


def _fail(op: Op, reason: str) -> UnsupportedError:
    return UnsupportedError(f"layer '{op.name}': {op.opcode} {reason}")


def check_int8_tensors(op: Op, x: Tensor, w: Tensor, b: Tensor | None, y: Tensor) -> None:
    """The checks CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share (dtypes, quantization)."""
    if x.dtype == "int16" or y.dtype == "int16":
        raise _fail(op, "with int16 activations (16x8 quantization) is not supported; "
                        "expected int8, received int16")
    if x.dtype != "int8" or y.dtype != "int8":
        raise _fail(op, f"expected int8 input and output, received {x.dtype} -> {y.dtype}")
    if w.dtype != "int8" or not w.is_const:
        kind = "constant" if w.is_const else "non-constant"
        raise _fail(op, f"expected constant int8 weights, received {kind} {w.dtype}")
    if b is not None and (b.dtype != "int32" or not b.is_const):
        raise _fail(op, f"expected a constant int32 bias, received {b.dtype}")
    for t in (x, w, y):
        if t.quant is None:
            raise _fail(op, f"expected quantized tensors, tensor '{t.name}' has no quantization")
    assert x.quant and y.quant and w.quant
    require_scales(op, x, w, y)
    if len(x.quant.scale) != 1 or len(y.quant.scale) != 1:
        raise _fail(op, "expected per-tensor quantized activations, received per-channel")
    if any(z != 0 for z in w.quant.zero_point):
        raise _fail(op, "expected symmetric int8 weights (zero point 0), received zero point "
                        f"{max(w.quant.zero_point, key=abs)}")
    act = op.options.get("fused_activation_function", "NONE")
    if act not in ACTIVATIONS:
        raise _fail(op, f"fused activation: expected one of {', '.join(ACTIVATIONS)}, "
                        f"received {act}")
    try:
        activation_range(str(act), y.scale, y.zero_point)
    except ValueError as exc:
        raise _fail(op, f"output '{y.name}': {exc}") from None


def check_shifts(op: Op, x: Tensor, w: Tensor, y: Tensor, shifts: np.ndarray) -> None:
    """Refuses a layer whose requantization multiplier (input scale x filter scale / output
    scale) of some channel needs a left shift the kernels, like TFLM, cannot apply (> 31)."""
    assert w.quant
    for c in np.flatnonzero(np.asarray(shifts) > MAX_LEFT_SHIFT)[:1]:
        scale = w.quant.scale[c] if len(w.quant.scale) > 1 else w.quant.scale[0]
        real = float(np.float64(x.scale) * np.float64(scale) / np.float64(y.scale))
        err = shift_error(real, int(shifts[c]))
        raise _fail(op, f"output '{y.name}' channel {c}: input scale {x.scale:g} ('{x.name}') x "
                        f"filter scale {scale:g} ('{w.name}') / output scale {y.scale:g}: {err}; "
                        "check the quantization of these tensors")


def _check_window(op: Op, graph: Graph, channels: int, quant_axis: int) -> None:
    x, w, b = _inputs(op, graph)
    y = graph.tensor(op.outputs[0])
    check_int8_tensors(op, x, w, b, y)
    if not (len(x.shape) == len(w.shape) == len(y.shape) == 4):
        raise _fail(op, f"expected 4-D tensors, received input {list(x.shape)}, filter "
                        f"{list(w.shape)}, output {list(y.shape)}")
    o = op.options
    if o.get("padding", "VALID") not in ("SAME", "VALID"):
        raise _fail(op, f"padding: expected SAME or VALID, received {o.get('padding')}")
    steps = [int(o.get(k, 1)) for k in ("stride_w", "stride_h", "dilation_w_factor",
                                         "dilation_h_factor")]
    if min(steps) < 1:
        raise _fail(op, f"expected strides and dilations >= 1, received {steps}")
    assert w.quant
    if w.quant.per_channel and (len(w.quant.scale) != channels or w.quant.axis != quant_axis):
        raise _fail(op, f"expected {channels} filter scales on axis {quant_axis}, received "
                        f"{len(w.quant.scale)} on axis {w.quant.axis}")
    if b is not None and b.size != channels:
        raise _fail(op, f"expected {channels} bias values, received {b.size}")
    _, _, _, (ow, oh) = _padding_values(op, x.shape, w.shape[1], w.shape[2])
    if (y.shape[0], y.shape[1], y.shape[2], y.shape[3]) != (x.shape[0], oh, ow, channels):
        raise _fail(op, f"output shape: expected {[x.shape[0], oh, ow, channels]}, received "
                        f"{list(y.shape)}")


def _lower(op: Op, ctx: LowerContext, tflm_args: ConvArgs, label: str,
           kernel: ConvKernel | None = None) -> KernelCall:
    kernel = kernel or choose_kernel(tflm_args)
    args = kernel.prepare(tflm_args)
    scratch_bytes = kernel.scratch(tflm_args, ctx.dsp)
    hint = op.name

    def array(suffix: str, values: np.ndarray | None, ctype: str = "int32_t") -> str:
        if kernel.stream or values is None:
            return "NULL"
        return ctx.const(f"{hint}_{suffix}", values, ctype)

    params = {
        "input": ctx.act(op.inputs[0]),
        "output": ctx.act(op.outputs[0]),
        "filter": ctx.const(f"{hint}_w", args.weights, "int8_t"),
        "bias": array("b", args.bias),
        "multiplier": array("mult", args.multiplier),
        "shift": array("shift", args.shift),
        "input_dims": _dims(args.input_shape),
        "filter_dims": _dims(args.filter_shape),
        "bias_dims": _dims((args.output_shape[3],)),
        "output_dims": _dims(args.output_shape),
        "input_offset": args.input_offset,
        "output_offset": args.output_offset,
        "ch_mult": args.ch_mult,
        "stride_w": args.stride[0], "stride_h": args.stride[1],
        "pad_w": args.padding[0], "pad_h": args.padding[1],
        "dilation_w": args.dilation[0], "dilation_h": args.dilation[1],
        "act_min": args.act_min, "act_max": args.act_max,
        "scratch": ctx.scratch if scratch_bytes else "NULL",
        "scratch_bytes": scratch_bytes,
        "label": label,
        "kernel": kernel.name,
    }
    template = "ops/depthwise_conv_s8.c.j2" if args.depthwise else "ops/conv_s8.c.j2"
    flash = args.weights.size if kernel.stream else args.weight_bytes
    return KernelCall(kernel=kernel.name, sources=kernel.sources, template=template,
                      params=params, scratch_bytes=scratch_bytes, macs=args.macs,
                      weight_bytes=flash,
                      in_place_scratch_bytes=kernel.in_place(tflm_args, ctx.dsp),
                      min_scratch_bytes=kernel.min_scratch(tflm_args, ctx.dsp),
                      narrow_kernel=kernel.narrow_name)


def _label(kind: str, op: Op, args: ConvArgs) -> str:
    _, kh, kw, _ = args.filter_shape
    pad = str(op.options.get("padding", "VALID")).lower()
    act = str(op.options.get("fused_activation_function", "NONE")).lower()
    dil = f" d{args.dilation[0]}x{args.dilation[1]}" if args.dilation != (1, 1) else ""
    mult = f" x{args.ch_mult}" if args.depthwise and args.ch_mult > 1 else ""
    return (f"{kind} {kh}x{kw}/{args.stride[0]}x{args.stride[1]}{dil} {pad} "
            f"{args.input_shape[3]}->{args.output_shape[3]}{mult}"
            + ("" if act == "none" else f" {act}"))


class ConvHandler:
    """CONV_2D (groups = 1) -> the first of :data:`CONV_KERNELS` that accepts it."""

    opcodes: ClassVar[tuple[str, ...]] = ("CONV_2D",)
    # output channels run in pairs; C_IN % 4 == 0 keeps a 1x1 window in place and a kxk
    # window's KH * KW * C_IN a whole number of words (no zero padding multiplied)
    channel_multiple: ClassVar[int] = 4

    def check(self, op: Op, graph: Graph) -> None:
        x, w, _ = _inputs(op, graph)
        if len(x.shape) == len(w.shape) == 4 and w.shape[3] != x.shape[3]:
            raise _fail(op, f"grouped convolution is not supported: filter depth {w.shape[3]}, "
                            f"input channels {x.shape[3]}")
        _check_window(op, graph, channels=w.shape[0], quant_axis=0)
        check_shifts(op, x, w, graph.tensor(op.outputs[0]), conv_args(op, graph).shift)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        args = conv_args(op, graph)
        return _lower(op, ctx, args, _label("conv", op, args))


def lower_interleaved(op: Op, graph: Graph, ctx: LowerContext, call: KernelCall) -> KernelCall:
    """``call`` (a CONV_2D lowered by :class:`ConvHandler`) run by tp_conv_interleaved_s8
    instead: what the residual ADD fusion takes (tinyprune/kernels/fused.py); the estimate and
    the choice's annotations of ``call`` are kept."""
    if call.kernel == INTERLEAVED.name:
        return call
    args = conv_args(op, graph)
    new = _lower(op, ctx, args, _label("conv", op, args), INTERLEAVED)
    return replace(call, kernel=new.kernel, sources=new.sources, params=new.params,
                   scratch_bytes=new.scratch_bytes, weight_bytes=new.weight_bytes,
                   in_place_scratch_bytes=new.in_place_scratch_bytes,
                   min_scratch_bytes=new.min_scratch_bytes, narrow_kernel=new.narrow_kernel)


class DepthwiseConvHandler:
    """DEPTHWISE_CONV_2D (any depth multiplier) -> the first of :data:`DEPTHWISE_KERNELS`."""

    opcodes: ClassVar[tuple[str, ...]] = ("DEPTHWISE_CONV_2D",)
    channel_multiple: ClassVar[int] = 4  # the 3x3 kernel runs four channels per word

    def check(self, op: Op, graph: Graph) -> None:
        x, w, b = _inputs(op, graph)
        if b is None:  # tflite-micro's DEPTHWISE_CONV_2D Prepare crashes (segfault) without one
            raise _fail(op, "without a bias cannot be checked against the TFLite Micro "
                            "reference (it crashes on such a layer); expected a bias tensor, "
                            "received none")
        if len(x.shape) == len(w.shape) == 4:
            if w.shape[0] != 1 or w.shape[3] % x.shape[3] != 0:
                raise _fail(op, f"expected a filter [1, KH, KW, C_IN * multiplier], received "
                                f"{list(w.shape)} for {x.shape[3]} input channels")
            # TFLM loops over the option's multiplier, not the shapes': with 0 (or options
            # missing, which reads as 0) it writes no output at all (found by make fuzz)
            mult = int(op.options.get("depth_multiplier", 0) or 0)
            if mult != w.shape[3] // x.shape[3]:
                raise _fail(op, f"depth_multiplier: expected {w.shape[3] // x.shape[3]} from the "
                                f"shapes, received {mult} (the TFLite Micro reference computes "
                                f"with the option); re-export the model with the TFLite "
                                f"converter")
        _check_window(op, graph, channels=w.shape[3], quant_axis=3)
        check_shifts(op, x, w, graph.tensor(op.outputs[0]), depthwise_args(op, graph).shift)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        args = depthwise_args(op, graph)
        return _lower(op, ctx, args, _label("dwconv", op, args))


register(ConvHandler(), estimate=sparse_cost.conv_dense_estimate)
register(DepthwiseConvHandler(), estimate=sparse_cost.dw_dense_estimate)
