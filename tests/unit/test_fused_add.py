"""A residual ADD fused into the conv that produces one operand (tinyprune/plan/fusion.py,
tp_conv_interleaved_add_s8): the planner's proof of safety, case by case; the plan it makes on a
small ResNet (identity and projection shortcuts); and the C kernel, both paths, with its full and
its least scratch, against TFLite Micro's conv followed by TFLM's ADD arithmetic.
"""

from __future__ import annotations

import ctypes
from dataclasses import replace
from typing import Any

import kernel_host as kh
import numpy as np
import pytest
from test_kernels_conv import CASE, _args, _single_op, model_bytes, reference
from tests_support import small_resnet_tflite

from tinyprune.ir import fold_constants, read_tflite
from tinyprune.ir.graph import Graph, Op, Quant, Tensor
from tinyprune.kernels.base import KernelCall
from tinyprune.kernels.conv import INTERLEAVED, ConvArgs
from tinyprune.kernels.elementwise import add_params, add_tables
from tinyprune.kernels.fused import pass_bytes
from tinyprune.kernels.quant import requantize
from tinyprune.plan import planner
from tinyprune.plan.fusion import refusal

# ---- the rule, on a hand-made graph ---------------------------------------------------------

Q = Quant((0.05,), (0,))
CONV = KernelCall("tp_conv_interleaved_s8")
ADD = KernelCall("tp_add_table_s8")


def _block(*, residual_shape: tuple[int, ...] = (1, 4, 4, 4), dtype: str = "int8",
           add_inputs: tuple[int, int] = (5, 3), extra: tuple[Op, ...] = (),
           outputs: tuple[int, ...] = (7,), add_kernel: str = "tp_add_table_s8",
           conv_kernel: str = "tp_conv_interleaved_s8") -> tuple[Graph, list[planner.PlannedOp]]:
    """in -> conv0 -> x(3) -> conv1 -> y1(4) -> conv2 -> y2(5); ADD(y2, x) -> s(6) -> MEAN -> 7,
    then ``extra`` ops; tensor 9 is a spare activation of ``residual_shape``."""
    act = (1, 4, 4, 4)
    w = np.zeros((4, 3, 3, 4), np.int8)
    tensors = (
        Tensor(0, "in", act, "int8", Q), Tensor(1, "w", w.shape, "int8", Q, w),
        Tensor(2, "b", (4,), "int32", Q, np.zeros(4, np.int32)),
        Tensor(3, "x", act, dtype, Q),
        Tensor(4, "y1", act, dtype, Q), Tensor(5, "y2", act, dtype, Q),
        Tensor(6, "s", act, dtype, Q), Tensor(7, "out", (1, 4), "int8", Q),
        Tensor(8, "axes", (2,), "int32", None, np.array([1, 2], np.int32)),
        Tensor(9, "spare", residual_shape, "int8", Q), Tensor(10, "t", act, "int8", Q))
    ops = [Op(0, "CONV_2D", (0, 1, 2), (3,), name="conv0"),
           Op(1, "CONV_2D", (3, 1, 2), (4,), name="conv1"),
           Op(2, "CONV_2D", (4, 1, 2), (5,), name="conv2"),
           Op(3, "ADD", add_inputs, (6,), name="sum"),
           Op(4, "MEAN", (6, 8), (7,), name="gap"), *extra]
    calls = {"CONV_2D": replace(CONV, kernel=conv_kernel), "ADD": replace(ADD, kernel=add_kernel),
             "MEAN": KernelCall("tp_mean_s8")}
    graph = Graph(tensors, tuple(ops), (0,), outputs)
    return graph, [planner.PlannedOp(op, calls[op.opcode]) for op in ops]


def _why(graph: Graph, ops: list[planner.PlannedOp], conv_input: int = 0) -> str | None:
    return refusal(graph, ops, 3, conv_input, lambda t: t)


def test_fuses_conv2_into_the_identity_add() -> None:
    graph, ops = _block()
    assert _why(graph, ops, 0) is None
    # the other operand (x) is read by conv1 as well: not fusable the other way round
    assert _why(graph, ops, 1) == "the conv's output is read by another op or is a graph output"


REFUSED = {
    "residual read after the ADD": (
        {"extra": (Op(5, "ADD", (3, 6), (10,), name="late"),)},
        "the residual is read after the ADD"),
    "broadcast residual": ({"residual_shape": (1, 1, 1, 4), "add_inputs": (5, 9)},
                           "shapes differ (broadcast)"),
    "residual is the graph input": ({"add_inputs": (5, 0)}, "graph input or output"),
    "ADD output is a graph output": ({"outputs": (7, 6)}, "graph input or output"),
    "conv reads the residual": ({"add_inputs": (5, 4)}, "the conv reads the residual"),
    "conv output read twice": ({"extra": (Op(5, "ADD", (5, 6), (10,), name="again"),)},
                               "read by another op"),
    "not the table ADD": ({"add_kernel": "tp_add_s8"}, "not an ADD run by tp_add_table_s8"),
    "not the interleaved conv": ({"conv_kernel": "tp_conv_s8"},
                                 "not the output of a CONV_2D run by tp_conv_interleaved_s8"),
    "int16 tensors": ({"dtype": "int16"}, "expected int8"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refuses_each_unsafe_case(case: str) -> None:
    kwargs, why = REFUSED[case]
    graph, ops = _block(**kwargs)  # type: ignore[arg-type]
    got = _why(graph, ops, 0)
    assert got is not None and why in got, got


# ---- the plan of a small ResNet --------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet() -> Graph:
    return read_tflite(small_resnet_tflite())


def _unfused(graph: Graph, ops: list[planner.PlannedOp], ctx: Any) -> list[planner.PlannedOp]:
    return ops


@pytest.mark.parametrize("dsp", [False, True])
def test_plan_fuses_both_shortcuts_and_lowers_the_peak(resnet: Graph, dsp: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fused = planner.plan(resnet, dsp=dsp)
    adds = [op for op in fused.graph.ops if op.opcode == "ADD"]
    calls = [p for p in fused.code_ops if p.call.fused]
    assert [p.call.fused for p in calls] == [(a.name,) for a in adds]
    assert [p.call.kernel for p in calls] == [
        "tp_conv_interleaved_add_narrow_s8" if dsp else "tp_conv_interleaved_add_s8",
        "tp_conv_interleaved_add_s8"]
    assert all(p.op.opcode != "ADD" for p in fused.ops)
    m = fused.memory
    buffered = {t for b in m.buffers for t in b.tensors}
    for p, add in zip(calls, adds, strict=True):
        assert p.residual in add.inputs and p.op.outputs == add.outputs
        conv_out = next(t for t in add.inputs if t != p.residual)
        assert conv_out not in buffered  # the conv's own output never exists
        assert m.offset_of(add.outputs[0]) == m.offset_of(p.residual)
        order = [q.op.name for q in fused.ops]  # the fused op runs where its ADD did
        assert all(order.index(p.op.name) > order.index(q.op.name) for q in fused.ops
                   if p.residual in q.op.outputs)
        c_out = int(p.call.params["output_dims"]["c"])
        assert p.call.scratch_bytes >= pass_bytes(c_out, dsp)
    # the identity block is the memory peak: its fused conv takes the narrow scratch (DSP)
    first = calls[0].call
    assert (first.scratch_bytes == first.min_scratch_bytes) == dsp
    assert ("narrow scratch" in first.reason) == dsp
    monkeypatch.setattr(planner, "_fuse", _unfused)
    apart = planner.plan(resnet, dsp=dsp).memory
    assert m.arena_bytes + m.scratch_bytes < apart.arena_bytes + apart.scratch_bytes


def test_a_thin_shortcut_is_fused_as_interleaved_and_leaves_no_array_behind(
        resnet: Graph, monkeypatch: pytest.MonkeyPatch) -> None:
    """The 1x1/2 16->32 shortcut alone runs tp_conv_1x1_thin_s8; fused, it is lowered again with
    tp_conv_interleaved_s8, and neither its thin stream nor any trial array stays in the plan."""
    def shortcut(ops: list[planner.PlannedOp]) -> planner.PlannedOp:
        return next(p for p in ops if p.op.opcode == "CONV_2D"
                    and p.call.params["filter_dims"]["h"] == 1)

    for fuse_shortcut in (False, True):
        if fuse_shortcut:  # price the plans so that the shortcut's fusion wins
            monkeypatch.setattr(planner, "_total", lambda g, ops: 0 if shortcut(ops).call.fused
                                else 1)
        fused = planner.plan(resnet, dsp=True)
        s = shortcut(list(fused.code_ops))
        assert s.call.kernel == ("tp_conv_interleaved_add_s8" if fuse_shortcut
                                 else "tp_conv_1x1_thin_s8")
        used = repr([p.call.params for p in fused.code_ops])
        assert [c.symbol for c in fused.consts if c.symbol not in used] == []
    monkeypatch.setattr(planner, "_fuse", _unfused)
    apart = planner.plan(resnet, dsp=True)
    assert [p.call.kernel for p in apart.code_ops if p.call.params.get("filter_dims", {})
            .get("h") == 1 and p.op.opcode == "CONV_2D"] == ["tp_conv_1x1_thin_s8"]


def test_scratch_in_the_arena_never_overlaps_a_live_buffer(resnet: Graph) -> None:
    planned = planner.plan(resnet, dsp=True)
    m = planned.memory
    assert m.scratch_bytes == 0 and m.scratch_offsets
    for i, offset in m.scratch_offsets:
        size = planned.ops[i].call.scratch_bytes
        assert size > 0 and offset % 4 == 0 and offset + size <= m.arena_bytes
        for b in m.buffers:
            if b.first <= i <= b.last:
                assert offset + size <= b.offset or b.offset + b.size <= offset


# ---- the C kernel against TFLM's conv + ADD -------------------------------------------------

class AddTableParams(ctypes.Structure):
    _fields_ = [("input1_table", ctypes.POINTER(ctypes.c_int32)),
                ("input2_table", ctypes.POINTER(ctypes.c_int32)),
                ("output_multiplier", ctypes.c_int32), ("output_shift", ctypes.c_int32),
                ("output_rounding", ctypes.c_int32), ("activation", kh.Activation)]


@pytest.fixture(scope="module")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, ctypes.CDLL]:
    cache = tmp_path_factory.mktemp("fused")
    return {dsp: kh.build_kernels(kh.CONV_SOURCES, {"TP_USE_DSP": int(dsp)}, cache)
            for dsp in (False, True)}


def _add_reference(conv: np.ndarray, res: np.ndarray, p: dict[str, int], lo: int,
                   hi: int) -> np.ndarray:
    """TFLM's AddFunc on int8 operands (conv = input 1)."""
    tables = add_tables(p)
    assert tables is not None
    raw = tables[0][conv.astype(np.int64) + 128] + tables[1][res.astype(np.int64) + 128]
    out = requantize(raw, p["output_multiplier"], p["output_shift"]) + p["output_offset"]
    return np.clip(out, lo, hi).astype(np.int8)


def _run_fused(lib: ctypes.CDLL, a: ConvArgs, x: np.ndarray, res: np.ndarray,
               p: dict[str, int], lo: int, hi: int, size: int, name: str) -> np.ndarray:
    kernel = INTERLEAVED
    k = kernel.prepare(a)
    tables = add_tables(p)
    assert tables is not None
    t1, t2 = (np.ascontiguousarray(t, np.int32) for t in tables[:2])
    params = AddTableParams(t1.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                            t2.ctypes.data_as(ctypes.POINTER(ctypes.c_int32)),
                            p["output_multiplier"], p["output_shift"], tables[2],
                            kh.Activation(lo, hi))
    ctx, _buf = kh.scratch(size)
    out = np.ascontiguousarray(res.copy())
    x = np.ascontiguousarray(x, np.int8)
    w = np.ascontiguousarray(k.weights)
    in_d, f_d, out_d = kh.dims(a.input_shape), kh.dims(a.filter_shape), kh.dims(a.output_shape)
    status = getattr(lib, name)(
        ctypes.byref(ctx), ctypes.byref(kh.ConvParams(**kh.window_params(a))),
        ctypes.byref(params), ctypes.byref(in_d), kh.ptr(x), ctypes.byref(f_d), kh.ptr(w),
        ctypes.byref(out_d), kh.ptr(out))
    assert status == kh.TP_OK
    return out


FUSED_CASES = ("conv3x3_same_cin3", "conv1x1_cout_odd", "conv1x1", "conv3x3_s2_same_relu6",
               "conv5x5_same_relu", "conv3x3_c8_same_odd_pixels", "conv3x3_c4_valid_odd_pixels")
"""Odd C_OUT and an odd pixel count (the one-column pass), 1x1 read in place, stride 2, 5x5."""


@pytest.mark.parametrize("name", FUSED_CASES)
def test_fused_kernel_equals_conv_then_add(name: str, libs: dict[bool, ctypes.CDLL]) -> None:
    tflite = model_bytes(CASE[name])
    graph = fold_constants(read_tflite(tflite))
    op = _single_op(graph, CASE[name])
    a = _args(graph, op)
    assert isinstance(a, ConvArgs) and INTERLEAVED.applies(a)
    y = graph.tensor(op.outputs[0])
    rng = np.random.default_rng(11)
    x = rng.integers(-128, 128, (2, *CASE[name].input_shape), dtype=np.int8)
    conv = reference(tflite, x)
    p = add_params(y.scale, y.zero_point, 0.043, 3, 0.071, -9)
    lo, hi = (-9, 127) if name.endswith("relu") else (-128, 127)  # ReLU after the ADD, or none
    in_d, f_d = kh.dims(a.input_shape), kh.dims(a.filter_shape)
    out_d = kh.dims(a.output_shape)
    for dsp in (False, True):
        lib = libs[dsp]
        sizes = {name: getattr(lib, f"{name}_get_buffer_size")(
                     ctypes.byref(in_d), ctypes.byref(f_d), ctypes.byref(out_d))
                 for name in ("tp_conv_interleaved_add_s8", "tp_conv_interleaved_add_narrow_s8")}
        extra = pass_bytes(a.output_shape[3], dsp)
        assert sizes["tp_conv_interleaved_add_s8"] == INTERLEAVED.scratch(a, dsp) + extra
        narrow = INTERLEAVED.min_scratch(a, dsp)
        assert sizes["tp_conv_interleaved_add_narrow_s8"] == (
            narrow + extra if narrow is not None else sizes["tp_conv_interleaved_add_s8"])
        for name, size in sizes.items():
            for xi, ci in zip(x, conv, strict=True):
                res = rng.integers(-128, 128, a.output_shape, dtype=np.int8)
                want = _add_reference(ci.reshape(a.output_shape), res, p, lo, hi)
                got = _run_fused(lib, a, xi[None], res, p, lo, hi, size, name)
                assert np.array_equal(got, want), f"{name} dsp={dsp} scratch={size}"
