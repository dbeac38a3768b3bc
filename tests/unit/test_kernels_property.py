"""Property tests: every kernel, both C paths, against TFLite Micro over generated parameters.

A seeded generator draws single-op int8 models (built with ``tflite_builder``, no converter)
whose quantization parameters sit at their extremes: real requantization multipliers from 2^-40
(TFLM flushes them to 0) to 2^34 (no kernel can apply them), activation scales of 3e38, 1e-38
and 1e-45, zero points at the ends of the int8 range, biases near INT32_MIN / INT32_MAX,
saturated and sparse weights, per-tensor and per-channel filters, every fused activation. Each
model holds a batch of random full-range inputs (rows of -128 and 127 among them), so one
interpreter call gives the reference for the whole batch.

For each draw the handler either refuses it (``check`` raises UnsupportedError: the message must
name the layer and say what it expected and received; the reference interpreter is not run, as
TFLM aborts or is undefined on such parameters) or the outputs of every kernel that accepts
the layer (portable and DSP builds) must equal the interpreter's byte for byte. At least a
quarter of each row's draws must be accepted, so a row cannot pass by refusing everything.

Conv, depthwise and FC kernels are called directly (``kernel_host.run_window`` / ``run_fc``,
every applicable kernel, not only the chosen one); the other ops go through their handler and
template fragment (``kernel_host.lower_graph``), all draws compiled into one library per path.
A new kernel is one more row of ``OPS`` (and, for a conv-like kernel, one more entry of the
kernel tables in tinyprune/kernels/conv.py, which the direct path iterates).
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import kernel_host as kh
import numpy as np
import pytest
from tflite_builder import TensorSpec, single_op

from tinyprune.errors import UsageError
from tinyprune.ir import Graph, read_tflite
from tinyprune.kernels.base import handler_for, supported_ops
from tinyprune.kernels.conv import CONV_KERNELS, DEPTHWISE_KERNELS, conv_args, depthwise_args
from tinyprune.kernels.fully_connected import fc_args

BATCH = 96  # inputs per draw (the batch dimension of the model)
INT32_MAX = 2**31 - 1
EXTREME_SCALES = (3e38, 1e-38, 1e-45)
ACTS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")
GRAPH_SOURCES = ("tp_add_s8.c", "tp_add_table_s8.c", "tp_mul_s8.c", "tp_max_pool_s8.c",
                 "tp_avg_pool_s8.c",
                 "tp_mean_s8.c", "tp_softmax_s8.c", "tp_logistic_s8.c", "tp_requantize_s8.c",
                 "tp_quantize_f32_s8.c", "tp_dequantize_s8_f32.c", "tp_concat_s8.c",
                 "tp_pad_s8.c", "tp_lut_s8.c", "tp_relu_s8.c", "tp_relu6_s8.c",
                 "tp_leaky_relu_s8.c", "tp_tanh_s8.c", "tp_rsqrt_s8.c", "tp_neg_f32.c",
                 "tp_sub_s8.c", "tp_maximum_s8.c", "tp_minimum_s8.c",
                 "tp_squared_difference_s8.c", "tp_prelu_s8.c", "tp_strided_slice_s8.c",
                 "tp_split_s8.c", "tp_resize_bilinear_s8.c", "tp_resize_nearest_s8.c",
                 "tp_transpose_conv_s8.c", "tp_lstm_s8.c")
GRAPH_HEADERS = ("tp_nn_pool.h", "tp_nn_elementwise.h", "tp_nn_activation.h", "tp_nn_tensor.h",
                 "tp_nn_transform.h", "tp_nn_transpose_conv.h", "tp_nn_recurrent.h")


# ---- parameter generators ------------------------------------------------------------------

def _f32(v: float) -> float:
    """v as a float32 value, clipped to the positive normal range."""
    return float(np.float32(min(max(v, 1.2e-38), 3.4e38)))


def act_scale(rng: np.random.Generator) -> float:
    """An activation scale: mostly 10^U(-6, 2), sometimes one of the extremes."""
    if rng.random() < 0.12:
        return float(np.float32(EXTREME_SCALES[rng.integers(len(EXTREME_SCALES))]))
    return _f32(10 ** rng.uniform(-6, 2))


def zero_point(rng: np.random.Generator) -> int:
    """Half the time an end of the int8 range (or next to it), else uniform."""
    if rng.random() < 0.5:
        return int(rng.choice([-128, -127, 127, 126, 0]))
    return int(rng.integers(-128, 128))


def real_multiplier(rng: np.random.Generator) -> float:
    """2^U(-40, 34): flushed to zero below 2^-32, refused from 2^31, with mass at the ends."""
    if rng.random() < 0.25:  # shifts -32, -31, 30, 31, 32 exactly
        e = int(rng.choice([-32, -31, 30, 31, 32]))
        return float(2.0 ** (e - 1) * rng.uniform(1.0, 2.0))
    return float(2.0 ** rng.uniform(-40, 34)) if rng.random() < 0.3 else float(
        2.0 ** rng.uniform(-16, 2))


def biases(rng: np.random.Generator, n: int) -> np.ndarray:
    """Per channel: 0, small, full-range int32, or within 2^16 of INT32_MIN / INT32_MAX."""
    kind = rng.integers(0, 5, n)
    small = rng.integers(-5000, 5000, n)
    full = rng.integers(-(2**31), 2**31, n)
    near = rng.integers(0, 2**16, n)
    out = np.select([kind == 0, kind == 1, kind == 2, kind == 3],
                    [0, small, full, INT32_MAX - near], -(2**31) + near)
    return out.astype(np.int32)


def weights(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Full-range int8 (-128 included), saturated (+-127 / -128) or mostly zeros."""
    mode = rng.integers(3)
    w = rng.integers(-128, 128, shape)
    if mode == 1:
        w = rng.choice([-128, -127, 127], shape)
    elif mode == 2:
        w = np.where(rng.random(shape) < 0.8, 0, w)
    return w.astype(np.int8)


def filter_scales(rng: np.random.Generator, s_in: float, s_out: float, n: int) -> tuple[
        float, ...]:
    """Filter scales giving each channel a drawn real multiplier (clipped to float32)."""
    reals = np.array([real_multiplier(rng) for _ in range(n)])
    scales = np.clip(reals * s_out / s_in, 1e-38, 3e38)
    return tuple(_f32(s) for s in scales)


def int8_inputs(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random full-range int8, the first two rows all -128 and all 127."""
    x = rng.integers(-128, 128, shape, dtype=np.int8)
    x[0], x[min(1, len(x) - 1)] = -128, 127
    return x


def act(name: str, shape: tuple[int, ...], s: float, zp: int) -> TensorSpec:
    return TensorSpec(name, shape, scale=(s,), zero_point=(zp,))


# ---- the draws -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Draw:
    id: str
    tflite: bytes


def _window(rng: np.random.Generator) -> dict:
    h, w = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    kh_, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    return {"h": h, "w": w, "kh": kh_, "kw": kw, "sh": int(rng.integers(1, 4)),
            "sw": int(rng.integers(1, 4)), "dh": int(rng.integers(1, 3)),
            "dw": int(rng.integers(1, 3)), "pad": str(rng.choice(["SAME", "VALID"])),
            "act": str(rng.choice(ACTS))}


def _out(pad: str, size: int, k: int, s: int, d: int) -> int:
    eff = (k - 1) * d + 1
    return (size + s - 1) // s if pad == "SAME" else (size + s - eff) // s


def _conv_like(rng: np.random.Generator, depthwise: bool, dw3x3: bool = False) -> bytes:
    g = _window(rng)
    if dw3x3:
        g.update(kh=3, kw=3)
    if g["pad"] == "VALID":
        g["h"] = max(g["h"], (g["kh"] - 1) * g["dh"] + 1)
        g["w"] = max(g["w"], (g["kw"] - 1) * g["dw"] + 1)
    c_in = int(rng.integers(1, 10))
    mult = 1 if dw3x3 or rng.random() < 0.6 else int(rng.integers(2, 4))
    c_out = c_in * mult if depthwise else int(rng.integers(1, 10))
    s_in, s_out = act_scale(rng), act_scale(rng)
    per_channel = rng.random() < 0.7
    scales = filter_scales(rng, s_in, s_out, c_out if per_channel else 1)
    oh = _out(g["pad"], g["h"], g["kh"], g["sh"], g["dh"])
    ow = _out(g["pad"], g["w"], g["kw"], g["sw"], g["dw"])
    wshape = (1, g["kh"], g["kw"], c_out) if depthwise else (c_out, g["kh"], g["kw"], c_in)
    x = act("x", (BATCH, g["h"], g["w"], c_in), s_in, zero_point(rng))
    wt = TensorSpec("w", wshape, scale=scales, zero_point=(0,) * len(scales),
                    axis=3 if depthwise else 0, data=weights(rng, wshape))
    b = None if rng.random() < 0.15 else TensorSpec(
        "b", (c_out,), "int32", scale=tuple(_f32(s_in * s) for s in scales),
        zero_point=(0,) * len(scales), data=biases(rng, c_out))
    y = act("y", (BATCH, oh, ow, c_out), s_out, zero_point(rng))
    opts = {"padding": g["pad"], "strideW": g["sw"], "strideH": g["sh"],
            "dilationWFactor": g["dw"], "dilationHFactor": g["dh"],
            "fusedActivationFunction": g["act"]}
    if depthwise:
        opts["depthMultiplier"] = mult
    return single_op("DEPTHWISE_CONV_2D" if depthwise else "CONV_2D", [x, wt, b], [y], opts)


def _fc(rng: np.random.Generator, per_channel: bool) -> bytes:
    n_in, n_out = int(rng.integers(1, 40)), int(rng.integers(1, 12))
    s_in, s_out = act_scale(rng), act_scale(rng)
    scales = filter_scales(rng, s_in, s_out, n_out if per_channel else 1)
    x = act("x", (BATCH, n_in), s_in, zero_point(rng))
    wt = TensorSpec("w", (n_out, n_in), scale=scales, zero_point=(0,) * len(scales),
                    data=weights(rng, (n_out, n_in)))
    b = None if rng.random() < 0.15 else TensorSpec(
        "b", (n_out,), "int32", scale=(_f32(s_in * scales[0]),), data=biases(rng, n_out))
    y = act("y", (BATCH, n_out), s_out, zero_point(rng))
    return single_op("FULLY_CONNECTED", [x, wt, b], [y],
                     {"fusedActivationFunction": str(rng.choice(ACTS))})


def _binary(rng: np.random.Generator, opcode: str) -> bytes:
    shape = (BATCH, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 7)))
    other = [shape, (shape[3],), (BATCH, 1, 1, shape[3]), (BATCH, shape[1], shape[2], 1)][
        int(rng.integers(4))]
    s1 = act_scale(rng)
    s2 = act_scale(rng) if rng.random() < 0.5 else _f32(s1 * 2.0 ** rng.uniform(-40, 40))
    so = act_scale(rng) if rng.random() < 0.5 else _f32(
        (s1 * s2 if opcode == "MUL" else max(s1, s2)) / real_multiplier(rng))
    a, b = act("a", shape, s1, zero_point(rng)), act("b", tuple(other), s2, zero_point(rng))
    if len(other) == 1 and rng.random() < 0.5:  # a constant operand
        b = TensorSpec("b", tuple(other), scale=(s2,), zero_point=(zero_point(rng),),
                       data=rng.integers(-128, 128, other).astype(np.int8))
    y = act("y", shape, so, zero_point(rng))
    return single_op(opcode, [a, b], [y], {"fusedActivationFunction": str(rng.choice(ACTS))})


def _pool(rng: np.random.Generator, opcode: str) -> bytes:
    g = _window(rng)
    if g["pad"] == "VALID":
        g["h"], g["w"] = max(g["h"], g["kh"]), max(g["w"], g["kw"])
    c = int(rng.integers(1, 7))
    s, zp = act_scale(rng), zero_point(rng)
    oh = _out(g["pad"], g["h"], g["kh"], g["sh"], 1)
    ow = _out(g["pad"], g["w"], g["kw"], g["sw"], 1)
    x, y = act("x", (BATCH, g["h"], g["w"], c), s, zp), act("y", (BATCH, oh, ow, c), s, zp)
    return single_op(opcode, [x], [y], {"padding": g["pad"], "strideW": g["sw"],
                                        "strideH": g["sh"], "filterWidth": g["kw"],
                                        "filterHeight": g["kh"],
                                        "fusedActivationFunction": str(rng.choice(ACTS))})


def _mean(rng: np.random.Generator) -> bytes:
    shape = (BATCH, int(rng.integers(1, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 7)))
    s_in = act_scale(rng)
    s_out = act_scale(rng) if rng.random() < 0.5 else _f32(s_in / real_multiplier(rng))
    x = act("x", shape, s_in, zero_point(rng))
    axes = TensorSpec("axes", (2,), "int32", data=np.array([1, 2], np.int32))
    keep = bool(rng.random() < 0.5)
    y = act("y", (BATCH, 1, 1, shape[3]) if keep else (BATCH, shape[3]), s_out, zero_point(rng))
    return single_op("MEAN", [x, axes], [y], {"keepDims": keep})


def _softmax(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 40))
    s_in = act_scale(rng) if rng.random() < 0.4 else _f32(2.0 ** rng.uniform(-26, 8))
    return single_op("SOFTMAX", [act("x", (BATCH, n), s_in, zero_point(rng))],
                     [act("y", (BATCH, n), 1 / 256, -128)],
                     {"beta": _f32(rng.choice([1.0, rng.uniform(0.1, 4)]))})


def _logistic(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 64))
    s_in = act_scale(rng) if rng.random() < 0.4 else _f32(2.0 ** rng.uniform(-30, 6))
    return single_op("LOGISTIC", [act("x", (BATCH, n), s_in, zero_point(rng))],
                     [act("y", (BATCH, n), 1 / 256, -128)])


def _requantize(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 64))
    s_in = act_scale(rng)
    s_out = act_scale(rng) if rng.random() < 0.5 else _f32(s_in / real_multiplier(rng))
    return single_op("QUANTIZE", [act("x", (BATCH, n), s_in, zero_point(rng))],
                     [act("y", (BATCH, n), s_out, zero_point(rng))])


def _quantize(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 64))
    return single_op("QUANTIZE", [TensorSpec("x", (BATCH, n), "float32")],
                     [act("y", (BATCH, n), act_scale(rng), zero_point(rng))])


def _dequantize(rng: np.random.Generator) -> bytes:
    n = int(rng.integers(1, 64))
    return single_op("DEQUANTIZE", [act("x", (BATCH, n), act_scale(rng), zero_point(rng))],
                     [TensorSpec("y", (BATCH, n), "float32")])


def _concat(rng: np.random.Generator) -> bytes:
    axis = int(rng.integers(1, 4))
    base = [BATCH, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 5))]
    s, zp = act_scale(rng), zero_point(rng)
    ins = []
    for i in range(int(rng.integers(1, 4))):
        shape = list(base)
        shape[axis] = int(rng.integers(1, 5))
        ins.append(act(f"x{i}", tuple(shape), s, zp))
    out = list(base)
    out[axis] = sum(t.shape[axis] for t in ins)
    return single_op("CONCATENATION", ins, [act("y", tuple(out), s, zp)], {"axis": axis})


def _pad(rng: np.random.Generator, opcode: str = "PAD") -> bytes:
    shape = (BATCH, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    pads = np.zeros((4, 2), np.int32)
    pads[1:] = rng.integers(0, 3, (3, 2))
    s, zp = act_scale(rng), zero_point(rng)
    out = tuple(int(d + p.sum()) for d, p in zip(shape, pads, strict=True))
    ins = [act("x", shape, s, zp), TensorSpec("p", (4, 2), "int32", data=pads)]
    if opcode == "PADV2":  # an explicit padding value
        ins.append(TensorSpec("v", (1,), scale=(s,), zero_point=(zp,),
                              data=rng.integers(-128, 128, 1).astype(np.int8)))
    return single_op(opcode, ins, [act("y", out, s, zp)])


def _reshape(rng: np.random.Generator, opcode: str) -> bytes:
    """RESHAPE / EXPAND_DIMS / SQUEEZE: no code, the output aliases the input's buffer."""
    n = int(rng.integers(1, 5)) * 2
    s, zp = act_scale(rng), zero_point(rng)
    if opcode == "RESHAPE":
        shape = TensorSpec("shape", (3,), "int32", data=np.array([BATCH, 2, n // 2], np.int32))
        return single_op(opcode, [act("x", (BATCH, n), s, zp), shape],
                         [act("y", (BATCH, 2, n // 2), s, zp)], {"newShape": [BATCH, 2, n // 2]})
    if opcode == "EXPAND_DIMS":
        axis = TensorSpec("axis", (1,), "int32", data=np.array([1], np.int32))
        return single_op(opcode, [act("x", (BATCH, n), s, zp), axis],
                         [act("y", (BATCH, 1, n), s, zp)])
    return single_op(opcode, [act("x", (BATCH, 1, n), s, zp)], [act("y", (BATCH, n), s, zp)],
                     {"squeezeDims": [1]})


# ---- the ops of the Keras backbones (docs/ops.md) -----------------------------------------

def _nd(rng: np.random.Generator) -> tuple[int, ...]:
    """(BATCH, n) or (BATCH, h, w, c)."""
    if rng.random() < 0.5:
        return (BATCH, int(rng.integers(1, 48)))
    return (BATCH, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 7)))


def _near(rng: np.random.Generator, s: float, lo: float, hi: float) -> float:
    """Half the time ``s * 2^U(lo, hi)`` (the converter's neighbourhood), else any scale."""
    return _f32(s * 2.0 ** rng.uniform(lo, hi)) if rng.random() < 0.5 else act_scale(rng)


def _unary(rng: np.random.Generator, opcode: str) -> bytes:
    shape, s_in = _nd(rng), act_scale(rng)
    x = act("x", shape, s_in, zero_point(rng))
    opts: dict = {}
    if opcode == "TANH":
        x = act("x", shape, act_scale(rng) if rng.random() < 0.4 else _f32(
            2.0 ** rng.uniform(-30, 6)), zero_point(rng))
        return single_op(opcode, [x], [act("y", shape, 1 / 128, 0)])
    if opcode == "RELU6" and rng.random() < 0.5:  # what the converter gives: one quantization
        return single_op(opcode, [x], [act("y", shape, s_in, x.zero_point[0])])
    if opcode == "LEAKY_RELU":
        opts = {"alpha": float(np.float32(rng.choice([0.01, 0.2, 0.3, 1.5, -0.5, 0.0])))}
    lo, hi = {"HARD_SWISH": (-9, 3), "RSQRT": (-6, 6)}.get(opcode, (-8, 8))
    y = act("y", shape, _near(rng, s_in, lo, hi), zero_point(rng))
    return single_op(opcode, [x], [y], opts)


def _rsqrt_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    """RSQRT of a negative value is an error in TFLM (and the kernel): inputs >= zero point."""
    t = graph.tensor(graph.inputs[0])
    zp = t.quant.zero_point[0] if t.quant else 0
    x = rng.integers(zp, 128, t.shape).astype(np.int8)
    x[0], x[1] = zp, 127
    return [x]


def _neg(rng: np.random.Generator) -> bytes:
    shape = _nd(rng)
    return single_op("NEG", [TensorSpec("x", shape, "float32")],
                     [TensorSpec("y", shape, "float32")])


def _binary_op(rng: np.random.Generator, opcode: str) -> bytes:
    """SUB, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU with broadcasting."""
    shape = (BATCH, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 7)))
    other = [shape, (shape[3],), (BATCH, 1, 1, shape[3]), (BATCH, shape[1], shape[2], 1)][
        int(rng.integers(4))]
    if opcode == "PRELU":  # alpha: a constant of the trailing axes, as PReLU's weights
        other = [(shape[3],), (1, 1, shape[3]), (shape[1], shape[2], shape[3]), (1,)][
            int(rng.integers(4))]
    s1, zp1 = act_scale(rng), zero_point(rng)
    s2 = _near(rng, s1, -4, 4)
    so = _near(rng, s1, -6, 6)
    zp2, zpo = zero_point(rng), zero_point(rng)
    if opcode in ("MAXIMUM", "MINIMUM") and rng.random() < 0.85:  # the converter's case
        s2, so, zp2, zpo = s1, s1, zp1, zp1
    a = act("a", shape, s1, zp1)
    b = act("b", tuple(other), s2, zp2)
    if opcode == "PRELU" or (len(other) == 1 and rng.random() < 0.5):  # a constant operand
        b = TensorSpec("b", tuple(other), scale=(s2,), zero_point=(zp2,),
                       data=rng.integers(-128, 128, other).astype(np.int8))
    opts = {"fusedActivationFunction": str(rng.choice(ACTS))} if opcode == "SUB" else {}
    return single_op(opcode, [a, b], [act("y", shape, so, zpo)], opts)


def _slice_range(rng: np.random.Generator, dim: int) -> tuple[int, int, int, int, int]:
    """(begin, end, stride, begin_mask, end_mask) of one axis, negative indices and steps."""
    stride = int(rng.choice([1, 1, 2, 3, -1, -2]))
    begin, end = int(rng.integers(-dim, dim)), int(rng.integers(-dim - 1, dim + 1))
    return begin, end, stride, int(rng.random() < 0.25), int(rng.random() < 0.25)


def _strided_slice(rng: np.random.Generator) -> bytes:
    shape = (BATCH, int(rng.integers(1, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 7)))
    s, zp = act_scale(rng), zero_point(rng)
    begin, end, strides, bmask, emask, shrink = [0], [BATCH], [1], 0, 0, 0
    index: list[slice | int] = [slice(None)]
    for axis in range(1, 4):
        b, e, st, bm, em = _slice_range(rng, shape[axis])
        if rng.random() < 0.1:  # shrink the axis: take element b
            shrink |= 1 << axis
            b = int(rng.integers(0, shape[axis]))
            begin, end, strides = [*begin, b], [*end, b + 1], [*strides, 1]
            index.append(b)
            continue
        bmask, emask = bmask | bm << axis, emask | em << axis
        begin, end, strides = [*begin, b], [*end, e], [*strides, st]
        index.append(slice(None if bm else b, None if em else e, st))
    out_shape = np.empty(shape, np.int8)[tuple(index)].shape
    if 0 in out_shape:
        return _strided_slice(rng)
    ins = [act("x", shape, s, zp)] + [
        TensorSpec(n, (4,), "int32", data=np.array(v, np.int32))
        for n, v in (("begin", begin), ("end", end), ("strides", strides))]
    return single_op("STRIDED_SLICE", ins, [act("y", out_shape, s, zp)],
                     {"beginMask": bmask, "endMask": emask, "shrinkAxisMask": shrink})


def _split(rng: np.random.Generator, opcode: str) -> bytes:
    shape = [BATCH, int(rng.integers(1, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 7))]
    axis = int(rng.integers(1, 4))
    s, zp = act_scale(rng), zero_point(rng)
    x = act("x", tuple(shape), s, zp)
    axis_t = TensorSpec("axis", (), "int32", data=np.array(axis - 4 * int(rng.random() < 0.3),
                                                            np.int32))
    if opcode == "UNPACK":
        outs = [act(f"y{i}", tuple(shape[:axis] + shape[axis + 1:]), s, zp)
                for i in range(shape[axis])]
        return single_op(opcode, [x], outs, {"num": shape[axis], "axis": axis})
    if opcode == "SPLIT":
        n = int(rng.choice([d for d in range(1, shape[axis] + 1) if shape[axis] % d == 0]))
        sizes = [shape[axis] // n] * n
    else:
        cuts = np.sort(rng.choice(np.arange(1, shape[axis] + 1), int(rng.integers(
            1, shape[axis] + 1)), replace=False))
        sizes = list(np.diff(np.concatenate([[0], cuts])).astype(int))
        if sizes and sum(sizes) < shape[axis]:
            sizes.append(shape[axis] - sum(sizes))
    outs = []
    for i, size in enumerate(sizes):
        o = list(shape)
        o[axis] = int(size)
        outs.append(act(f"y{i}", tuple(o), s, zp))
    if opcode == "SPLIT":
        return single_op(opcode, [axis_t, x], outs, {"numSplits": len(sizes)})
    split_sizes = TensorSpec("sizes", (len(sizes),), "int32", data=np.array(sizes, np.int32))
    return single_op(opcode, [x, split_sizes, axis_t], outs, {"numSplits": len(sizes)})


def _resize(rng: np.random.Generator, opcode: str) -> bytes:
    h, w, c = (int(rng.integers(1, 6)) for _ in range(3))
    oh, ow = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    s, zp = act_scale(rng), zero_point(rng)
    align = bool(rng.random() < 0.3)
    half = bool(not align and rng.random() < 0.5)
    size = TensorSpec("size", (2,), "int32", data=np.array([oh, ow], np.int32))
    return single_op(opcode, [act("x", (BATCH, h, w, c), s, zp), size],
                     [act("y", (BATCH, oh, ow, c), s, zp)],
                     {"alignCorners": align, "halfPixelCenters": half})


def _transpose_conv(rng: np.random.Generator) -> bytes:
    h, w = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    kh_, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    pad = str(rng.choice(["SAME", "VALID"]))
    c_in, c_out = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    oh, ow = (h * sh, w * sw) if pad == "SAME" else (
        (h - 1) * sh + kh_, (w - 1) * sw + kw)
    s_in, s_out = act_scale(rng), act_scale(rng)
    per_channel = rng.random() < 0.7
    scales = filter_scales(rng, s_in, s_out, c_out if per_channel else 1)
    if not per_channel:
        scales = scales * c_out  # TFLM's transpose conv reads one scale per output channel
    wshape = (c_out, kh_, kw, c_in)
    wt = TensorSpec("w", wshape, scale=scales, zero_point=(0,) * len(scales), axis=0,
                    data=weights(rng, wshape))
    b = None if rng.random() < 0.3 else TensorSpec(
        "b", (c_out,), "int32", scale=tuple(_f32(s_in * s) for s in scales),
        zero_point=(0,) * len(scales), data=biases(rng, c_out))
    out_shape = TensorSpec("shape", (4,), "int32", data=np.array([BATCH, oh, ow, c_out],
                                                                  np.int32))
    return single_op("TRANSPOSE_CONV",
                     [out_shape, wt, act("x", (BATCH, h, w, c_in), s_in, zero_point(rng)), b],
                     [act("y", (BATCH, oh, ow, c_out), s_out, zero_point(rng))],
                     {"padding": pad, "strideW": sw, "strideH": sh,
                      "fusedActivationFunction": str(rng.choice(["NONE", "RELU"]))})


def _lstm(rng: np.random.Generator) -> bytes:
    """UNIDIRECTIONAL_SEQUENCE_LSTM over the batch (or time major), int16 cell state of a
    power-of-two scale (mostly) and drawn gate multipliers (the weight scales)."""
    steps, n_in, units = (int(rng.integers(1, 6)), int(rng.integers(1, 7)),
                          int(rng.integers(1, 9)))
    time_major = bool(rng.random() < 0.3)
    s_in, s_h = act_scale(rng), act_scale(rng)
    zp_h = zero_point(rng)
    s_cell = (2.0 ** -int(rng.integers(8, 16)) if rng.random() < 0.85
              else _f32(2.0 ** rng.uniform(-15, -8)))
    lead = (steps, BATCH) if time_major else (BATCH, steps)

    def w(name: str, cols: int, s_src: float) -> TensorSpec:
        # eight multipliers a draw: the extremes of real_multiplier on a quarter of them
        real = real_multiplier(rng) if rng.random() < 0.25 else float(2.0 ** rng.uniform(-20, 4))
        scale = _f32(min(max(real * 2.0**-12 / s_src, 1e-38), 3e38))
        return TensorSpec(name, (units, cols), scale=(scale,), zero_point=(0,),
                          data=weights(rng, (units, cols)))

    gates = ("i", "f", "c", "o")
    ins: list[TensorSpec | None] = [act("x", (*lead, n_in), s_in, zero_point(rng))]
    ins += [w(f"w{g}", n_in, s_in) for g in gates] + [w(f"r{g}", units, s_h) for g in gates]
    ins += [None] * 3 + [TensorSpec(f"b{g}", (units,), "int32", data=biases(rng, units))
                         for g in gates] + [None] * 2
    ins += [TensorSpec("h", (BATCH, units), scale=(s_h,), zero_point=(zp_h,), variable=True),
            TensorSpec("cell", (BATCH, units), "int16", scale=(s_cell,), zero_point=(0,),
                       variable=True)] + [None] * 4
    clip = float(rng.choice([0.0, 10.0, float(rng.uniform(0.01, 3.0))]))
    return single_op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins,
                     [act("y", (*lead, units), s_h, zp_h)],
                     {"fusedActivationFunction": "TANH",
                      "cellClip": clip, "timeMajor": time_major})


@dataclass(frozen=True)
class PropertyOp:
    """One table row: ``draws`` models from ``generate``; ``direct`` calls the conv/FC kernels
    themselves (every applicable kernel), otherwise the handler's template fragment runs."""

    id: str
    generate: Callable[[np.random.Generator], bytes]
    draws: int
    direct: bool = False
    kernels: dict[str, tuple[str, ...]] | None = None  # module tuples narrowed while lowering
    inputs: Callable[[Graph, np.random.Generator], list[np.ndarray]] | None = None


OPS = (
    PropertyOp("conv", lambda r: _conv_like(r, depthwise=False), 40, direct=True),
    PropertyOp("depthwise", lambda r: _conv_like(r, depthwise=True), 30, direct=True),
    PropertyOp("depthwise_3x3", lambda r: _conv_like(r, depthwise=True, dw3x3=True), 30,
               direct=True),
    PropertyOp("fc_per_channel", lambda r: _fc(r, per_channel=True), 30, direct=True),
    PropertyOp("fc_per_tensor", lambda r: _fc(r, per_channel=False), 30, direct=True),
    PropertyOp("add", lambda r: _binary(r, "ADD"), 30),
    PropertyOp("add_general", lambda r: _binary(r, "ADD"), 16,
               kernels={"ADD_KERNELS": ("tp_add_s8",)}),
    PropertyOp("mul", lambda r: _binary(r, "MUL"), 30),
    PropertyOp("max_pool", lambda r: _pool(r, "MAX_POOL_2D"), 12),
    PropertyOp("avg_pool", lambda r: _pool(r, "AVERAGE_POOL_2D"), 20),
    PropertyOp("mean", _mean, 20),
    PropertyOp("softmax", _softmax, 20),
    PropertyOp("logistic", _logistic, 20),
    PropertyOp("requantize", _requantize, 20),
    PropertyOp("quantize_f32", _quantize, 12),
    PropertyOp("dequantize", _dequantize, 12),
    PropertyOp("concat", _concat, 12),
    PropertyOp("pad", _pad, 8),
    PropertyOp("padv2", lambda r: _pad(r, "PADV2"), 8),
    PropertyOp("reshape", lambda r: _reshape(r, "RESHAPE"), 4),
    PropertyOp("expand_dims", lambda r: _reshape(r, "EXPAND_DIMS"), 8),
    PropertyOp("squeeze", lambda r: _reshape(r, "SQUEEZE"), 4),
    PropertyOp("hard_swish", lambda r: _unary(r, "HARD_SWISH"), 20),
    PropertyOp("relu", lambda r: _unary(r, "RELU"), 16),
    PropertyOp("relu6", lambda r: _unary(r, "RELU6"), 12),
    PropertyOp("leaky_relu", lambda r: _unary(r, "LEAKY_RELU"), 20),
    PropertyOp("tanh", lambda r: _unary(r, "TANH"), 16),
    PropertyOp("rsqrt", lambda r: _unary(r, "RSQRT"), 16, inputs=_rsqrt_inputs),
    PropertyOp("neg_f32", _neg, 4),
    PropertyOp("sub", lambda r: _binary_op(r, "SUB"), 24),
    PropertyOp("maximum", lambda r: _binary_op(r, "MAXIMUM"), 12),
    PropertyOp("minimum", lambda r: _binary_op(r, "MINIMUM"), 12),
    PropertyOp("squared_difference", lambda r: _binary_op(r, "SQUARED_DIFFERENCE"), 20),
    PropertyOp("prelu", lambda r: _binary_op(r, "PRELU"), 20),
    PropertyOp("strided_slice", _strided_slice, 16),
    PropertyOp("split", lambda r: _split(r, "SPLIT"), 8),
    PropertyOp("split_v", lambda r: _split(r, "SPLIT_V"), 8),
    PropertyOp("unpack", lambda r: _split(r, "UNPACK"), 8),
    PropertyOp("resize_bilinear", lambda r: _resize(r, "RESIZE_BILINEAR"), 16),
    PropertyOp("resize_nearest", lambda r: _resize(r, "RESIZE_NEAREST_NEIGHBOR"), 12),
    PropertyOp("transpose_conv", _transpose_conv, 30),
    PropertyOp("lstm", _lstm, 20),
)
OP = {o.id: o for o in OPS}


@dataclass(frozen=True)
class Checked:
    """A draw after the reader and the handler: ``graph`` None when refused (``reason``)."""

    draw: Draw
    graph: Graph | None
    reason: str = ""


def _check(draw: Draw) -> Checked:
    try:
        graph = read_tflite(draw.tflite)
        for op in graph.ops:
            handler_for(op).check(op, graph)
    except UsageError as exc:
        return Checked(draw, None, str(exc))
    return Checked(draw, graph)


_CHECKED: dict[str, list[Checked]] = {}


def checked(op: PropertyOp) -> list[Checked]:
    """The op's draws (seeded by the row id), read and checked once per session."""
    if op.id not in _CHECKED:
        rng = np.random.default_rng(int.from_bytes(op.id.encode(), "little") % 2**32)
        _CHECKED[op.id] = [_check(Draw(f"{op.id}_{i}", op.generate(rng)))
                           for i in range(op.draws)]
    return _CHECKED[op.id]


# ---- reference and inputs ----------------------------------------------------------------

def graph_inputs(graph: Graph, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for i in graph.inputs:
        t = graph.tensor(i)
        if t.dtype == "float32":
            # |x / scale| < 2^31 for every output scale drawn: TFLM's cast is undefined beyond
            out.append(rng.normal(0, 1, t.shape).astype(np.float32) *
                       np.float32(10 ** rng.uniform(-3, 3)))
        else:
            out.append(int8_inputs(rng, t.shape))
    return out


def reference(tflite: bytes, inputs: list[np.ndarray], n_outputs: int = 1) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=1 << 22)
    for k, x in enumerate(inputs):
        interp.set_input(x, k)
    interp.invoke()
    return [np.array(interp.get_output(k)) for k in range(n_outputs)]


def _float_safe(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Float inputs scaled so |x / output scale| stays below 2^30 (defined in TFLM)."""
    out = []
    for i, x in zip(graph.inputs, inputs, strict=True):
        q = graph.tensor(graph.ops[0].outputs[0])
        if graph.tensor(i).dtype == "float32" and q.quant is not None:
            limit = np.float32(2.0**30 * q.scale)
            x = np.clip(x, -limit, limit).astype(np.float32)
        out.append(x)
    return out


# ---- the two paths -----------------------------------------------------------------------

@pytest.fixture(scope="session")
def conv_libs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, ctypes.CDLL]:
    cache = tmp_path_factory.mktemp("prop_kernels")
    return {dsp: kh.build_kernels(kh.CONV_SOURCES, {"TP_USE_DSP": int(dsp)}, cache)
            for dsp in (False, True)}


def _direct_outputs(graph: Graph, x: np.ndarray, lib: ctypes.CDLL, dsp: bool) -> dict[
        str, np.ndarray]:
    op = graph.ops[0]
    if op.opcode == "FULLY_CONNECTED":
        return kh.fc_outputs(lib, fc_args(op, graph), x, dsp)
    args = depthwise_args(op, graph) if op.opcode == "DEPTHWISE_CONV_2D" else conv_args(op, graph)
    kernels = DEPTHWISE_KERNELS if args.depthwise else CONV_KERNELS
    return {k.name: kh.run_window(lib, k, args, x, dsp) for k in kernels if k.applies(args)}


@contextlib.contextmanager
def _narrowed(tables: dict[str, tuple[str, ...]]) -> Iterator[None]:
    """The kernel tuples of tinyprune.kernels.elementwise narrowed (a row forcing a kernel)."""
    from tinyprune.kernels import elementwise

    saved = {k: getattr(elementwise, k) for k in tables}
    for k, v in tables.items():
        setattr(elementwise, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(elementwise, k, v)


@dataclass
class GraphLibs:
    lowered: dict[str, kh.Lowered]
    libs: dict[bool, ctypes.CDLL]


@pytest.fixture(scope="session")
def graph_libs(tmp_path_factory: pytest.TempPathFactory) -> GraphLibs:
    """Every accepted draw of the fragment rows lowered into one library per path."""
    from tinyprune.firmware.paths import template_environment

    env = template_environment()
    lowered: dict[str, kh.Lowered] = {}
    for op in OPS:
        if op.direct:
            continue
        with _narrowed(op.kernels or {}):
            for c in checked(op):
                if c.graph is not None:
                    lowered[c.draw.id] = kh.lower_graph(f"tp_prop_{c.draw.id}", c.draw.tflite,
                                                        c.graph, env)
    headers = "".join(f'#include "{h}"\n' for h in GRAPH_HEADERS)
    code = headers + "\n".join(lw.c_code for lw in lowered.values())
    cache = tmp_path_factory.mktemp("prop_graphs")
    return GraphLibs(lowered, {dsp: kh.compile_fragments(code, int(dsp), cache, GRAPH_SOURCES)
                               for dsp in (False, True)})


def _assert_refusal_is_explained(c: Checked) -> None:
    assert c.reason.startswith("layer '") or "tensor" in c.reason, c.reason
    assert "expected" in c.reason and ("received" in c.reason or "supports" in c.reason), c.reason


@pytest.mark.parametrize("op", OPS, ids=[o.id for o in OPS])
def test_every_kernel_matches_tflm_or_the_layer_is_refused(
        op: PropertyOp, conv_libs: dict[bool, ctypes.CDLL], graph_libs: GraphLibs) -> None:
    draws = checked(op)
    accepted = [c for c in draws if c.graph is not None]
    assert len(accepted) >= max(3, op.draws // 4), (
        f"{op.id}: only {len(accepted)} of {op.draws} draws accepted; first refusal: "
        + next((c.reason for c in draws if c.graph is None), ""))
    for c in draws:
        if c.graph is None:
            _assert_refusal_is_explained(c)
            continue
        rng = np.random.default_rng(len(c.draw.tflite))
        inputs = _float_safe(c.graph, (op.inputs or graph_inputs)(c.graph, rng))
        wants = reference(c.draw.tflite, inputs, len(c.graph.outputs))
        for dsp in (False, True):
            if op.direct:
                got = [(k, [v]) for k, v in
                       _direct_outputs(c.graph, inputs[0], conv_libs[dsp], dsp).items()]
            else:
                lw = graph_libs.lowered[c.draw.id]
                got = [(lw.calls[-1].kernel, kh.run_lowered(lw, graph_libs.libs[dsp], inputs))]
            for name, outs in got:
                for k, (out, want) in enumerate(zip(outs, wants, strict=True)):
                    out = out.reshape(want.shape)
                    bad = np.flatnonzero(out.view(np.uint8) != want.view(np.uint8))
                    assert bad.size == 0, (
                        f"{c.draw.id} {name} output {k} dsp={dsp}: {bad.size} of {want.size} "
                        f"bytes differ, first at {bad[0]}: ours {out.reshape(-1)[bad[0]]}, "
                        f"tflm {want.reshape(-1)[bad[0]]}")


def test_rows_reach_their_kernels(graph_libs: GraphLibs) -> None:
    """The ADD rows run the table kernel on most draws and the general one on every draw of
    add_general (so both are compared with TFLM, the general one on the same extremes)."""
    def kernels(row: str) -> list[str]:
        return [lw.calls[-1].kernel for k, lw in graph_libs.lowered.items()
                if k.rsplit("_", 1)[0] == row]

    add = kernels("add")
    assert add.count("tp_add_table_s8") >= len(add) // 2, add
    assert set(kernels("add_general")) == {"tp_add_s8"}


def test_extreme_activation_scales_are_refused_not_undefined() -> None:
    """The issue's cases (output scale 1e-38 / 1e-45 on a conv) as far as the reader lets them
    through: scales near its 1e-30 floor still get a clear refusal from the conv handler."""
    rng = np.random.default_rng(5)
    for s_out in (1e-29, 2e-30):  # smaller ones the reader refuses first (test_kernels_refusals)
        x = act("x", (1, 3, 3, 2), 0.5, 0)
        w = TensorSpec("w", (2, 1, 1, 2), scale=(0.5, 0.5), zero_point=(0, 0),
                       data=weights(rng, (2, 1, 1, 2)))
        model = single_op("CONV_2D", [x, w, None], [act("out_t", (1, 3, 3, 2), s_out, 0)],
                          {"padding": "VALID", "strideW": 1, "strideH": 1})
        c = _check(Draw("extreme", model))
        assert c.graph is None
        assert "layer '" in c.reason and "'out_t'" in c.reason and "expected" in c.reason


def test_every_row_has_refused_and_accepted_draws_overall() -> None:
    """The generator really reaches the refusal boundary (else the extremes are not drawn)."""
    refused = sum(c.graph is None for op in OPS for c in checked(op))
    total = sum(op.draws for op in OPS)
    assert 0.05 * total < refused < 0.7 * total, (refused, total)


def test_every_registered_op_has_a_row() -> None:
    """A new op (or a handler registered for one) without a row of OPS fails here."""
    drawn = {o.opcode for op in OPS for c in checked(op) if c.graph for o in c.graph.ops}
    assert set(supported_ops()) <= drawn, sorted(set(supported_ops()) - drawn)
