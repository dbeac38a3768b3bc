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

import ctypes
from collections.abc import Callable
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
GRAPH_SOURCES = ("tp_add_s8.c", "tp_mul_s8.c", "tp_max_pool_s8.c", "tp_avg_pool_s8.c",
                 "tp_mean_s8.c", "tp_softmax_s8.c", "tp_logistic_s8.c", "tp_requantize_s8.c",
                 "tp_quantize_f32_s8.c", "tp_dequantize_s8_f32.c", "tp_concat_s8.c",
                 "tp_pad_s8.c")
GRAPH_HEADERS = ("tp_nn_pool.h", "tp_nn_elementwise.h", "tp_nn_activation.h", "tp_nn_tensor.h")


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


@dataclass(frozen=True)
class PropertyOp:
    """One table row: ``draws`` models from ``generate``; ``direct`` calls the conv/FC kernels
    themselves (every applicable kernel), otherwise the handler's template fragment runs."""

    id: str
    generate: Callable[[np.random.Generator], bytes]
    draws: int
    direct: bool = False


OPS = (
    PropertyOp("conv", lambda r: _conv_like(r, depthwise=False), 40, direct=True),
    PropertyOp("depthwise", lambda r: _conv_like(r, depthwise=True), 30, direct=True),
    PropertyOp("depthwise_3x3", lambda r: _conv_like(r, depthwise=True, dw3x3=True), 30,
               direct=True),
    PropertyOp("fc_per_channel", lambda r: _fc(r, per_channel=True), 30, direct=True),
    PropertyOp("fc_per_tensor", lambda r: _fc(r, per_channel=False), 30, direct=True),
    PropertyOp("add", lambda r: _binary(r, "ADD"), 30),
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
    PropertyOp("expand_dims", lambda r: _reshape(r, "EXPAND_DIMS"), 4),
    PropertyOp("squeeze", lambda r: _reshape(r, "SQUEEZE"), 4),
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


def reference(tflite: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite, arena_size=1 << 22)
    for k, x in enumerate(inputs):
        interp.set_input(x, k)
    interp.invoke()
    return [np.array(interp.get_output(0))]


def _float_safe(graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Float inputs scaled so |x / output scale| stays below 2^30 (defined in TFLM)."""
    out = []
    for i, x in zip(graph.inputs, inputs, strict=True):
        if graph.tensor(i).dtype == "float32":
            q = graph.tensor(graph.ops[0].outputs[0])
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
        a = fc_args(op, graph)
        return {a.kernel: kh.run_fc(lib, a, x, dsp)}
    args = depthwise_args(op, graph) if op.opcode == "DEPTHWISE_CONV_2D" else conv_args(op, graph)
    kernels = DEPTHWISE_KERNELS if args.depthwise else CONV_KERNELS
    return {k.name: kh.run_window(lib, k, args, x, dsp) for k in kernels if k.applies(args)}


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
        inputs = _float_safe(c.graph, graph_inputs(c.graph, rng))
        want = reference(c.draw.tflite, inputs)[0]
        for dsp in (False, True):
            if op.direct:
                got = _direct_outputs(c.graph, inputs[0], conv_libs[dsp], dsp)
            else:
                lw = graph_libs.lowered[c.draw.id]
                got = {lw.calls[-1].kernel: kh.run_lowered(lw, graph_libs.libs[dsp], inputs)[0]}
            for name, out in got.items():
                out = out.reshape(want.shape)
                bad = np.flatnonzero(out.view(np.uint8) != want.view(np.uint8))
                assert bad.size == 0, (
                    f"{c.draw.id} {name} dsp={dsp}: {bad.size} of {want.size} bytes differ, "
                    f"first at {bad[0]}: ours {out.reshape(-1)[bad[0]]}, "
                    f"tflm {want.reshape(-1)[bad[0]]}")


def test_extreme_activation_scales_are_refused_not_undefined() -> None:
    """The issue's cases: output scale 1e-38 / 1e-45 on a conv -> a clear refusal (exit 2)."""
    rng = np.random.default_rng(5)
    for s_out in (1e-38, 1e-45):
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
