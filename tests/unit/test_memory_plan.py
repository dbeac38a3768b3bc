"""Memory planner: no two live buffers share bytes; greedy-by-size beats naive stacking; the
report's memory section maps buffers to the code ops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyprune.ir import read_tflite
from tinyprune.ir.graph import Graph, Op, Quant, Tensor
from tinyprune.plan import memory_section, plan
from tinyprune.plan.memory import ALIGN, ORDERS, Buffer, lifetimes, place, place_in_order


def _random_buffers(rng: np.random.Generator, n: int) -> list[Buffer]:
    out = []
    for i in range(n):
        first = int(rng.integers(0, 20))
        out.append(Buffer((i,), int(rng.integers(1, 5000)), first, first + int(rng.integers(0, 5))))
    return out


@pytest.mark.parametrize("seed", range(10))
def test_live_buffers_never_overlap(seed: int) -> None:
    rng = np.random.default_rng(seed)
    placed, arena = place(_random_buffers(rng, 30))
    for a in placed:
        assert a.offset % ALIGN == 0
        assert a.offset + a.size <= arena
        for b in placed:
            if a is not b and a.overlaps_in_time(b):
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset


@pytest.mark.parametrize("seed", range(10))
def test_no_worse_than_peak_live_and_better_than_sum(seed: int) -> None:
    rng = np.random.default_rng(seed)
    bufs = _random_buffers(rng, 30)
    _, arena = place(bufs)
    peak = max(sum(b.size for b in bufs if b.first <= t <= b.last) for t in range(30))
    assert peak <= arena <= sum(-(-b.size // ALIGN) * ALIGN for b in bufs)


def test_chain_reuses_memory() -> None:
    # a -> b -> c -> d: a and c can share, b and d can share.
    bufs = [Buffer((0,), 1000, 0, 0), Buffer((1,), 1000, 0, 1), Buffer((2,), 1000, 1, 2),
            Buffer((3,), 1000, 2, 3)]
    placed, arena = place(bufs)
    assert arena == 2016  # two 1000-byte slots, 16-byte aligned
    offsets = {b.tensors[0]: b.offset for b in placed}
    assert offsets[0] == offsets[2] and offsets[1] == offsets[3] != offsets[0]


def test_lifetimes_extend_outputs_to_end() -> None:
    span = lifetimes(3, [([0], [1]), ([1], [2]), ([2], [3])], [0], [3, 1])
    assert span[0] == (0, 0)
    assert span[1] == (0, 2)  # graph output: live to the last op
    assert span[3] == (2, 2)


def _mean_reshape_softmax() -> Graph:
    """x -> MEAN (code op 0) -> y -> RESHAPE (alias) -> r -> SOFTMAX (code op 1) -> s."""
    q = Quant((0.1,), (0,))
    tensors = (
        Tensor(0, "x", (1, 4, 4, 8), "int8", q),
        Tensor(1, "axes", (2,), "int32", None, np.array([1, 2], np.int32)),
        Tensor(2, "y", (1, 8), "int8", q),
        Tensor(3, "shape", (3,), "int32", None, np.array([1, 1, 8], np.int32)),
        Tensor(4, "r", (1, 1, 8), "int8", q),
        Tensor(5, "s", (1, 1, 8), "int8", Quant((1 / 256,), (-128,))),
    )
    ops = (Op(0, "MEAN", (0, 1), (2,), {"keep_dims": False}, name="gap"),
           Op(1, "RESHAPE", (2, 3), (4,), name="flat"),
           Op(2, "SOFTMAX", (4,), (5,), {"beta": 1.0}, name="probs"))
    return Graph(tensors, ops, (0,), (5,))


def test_memory_section_maps_buffers_to_code_ops() -> None:
    planned = plan(_mean_reshape_softmax(), dsp=True)
    memory = memory_section(planned)
    assert memory["arena_bytes"] == planned.memory.arena_bytes
    assert memory["scratch_bytes"] == planned.memory.scratch_bytes
    # RESHAPE emits no code: two layers, and y / r share one buffer live over both of them
    assert [(t["op"], t["layer"]) for t in memory["timeline"]] == [(0, "gap"), (1, "probs")]
    spans = {tuple(b["tensors"]): (b["first_op"], b["last_op"], b["size"])
             for b in memory["buffers"]}
    assert spans == {("x",): (0, 0, 128), ("y", "r"): (0, 1, 8), ("s",): (1, 1, 8)}
    assert [t["live_bytes"] for t in memory["timeline"]] == [128 + 8, 8 + 8]
    assert [t["scratch_bytes"] for t in memory["timeline"]] == [
        p.call.scratch_bytes for p in planned.code_ops]
    for b in memory["buffers"]:
        assert b["offset"] + b["size"] <= memory["arena_bytes"]


def test_place_keeps_the_smallest_arena_of_its_orders() -> None:
    # Largest first (and earliest first) put the 64-byte buffer of op 2 above a 48 that lives
    # over ops 0-2 and a 48 over 2-4, needing 176 bytes; size x lifetime first reaches the
    # peak: 160 bytes live at op 2.
    bufs = [Buffer((0,), 48, 0, 2), Buffer((1,), 64, 2, 2), Buffer((2,), 48, 2, 4),
            Buffer((3,), 80, 0, 0)]
    arenas = {name: place_in_order(bufs, key)[1] for name, key in ORDERS}
    assert arenas == {"size": 176, "area": 160, "first": 176}
    placed, arena = place(bufs)
    assert arena == 160
    for x in placed:
        for y in placed:
            if x is not y and x.overlaps_in_time(y):
                assert x.offset + x.size <= y.offset or y.offset + y.size <= x.offset


KWS = Path(__file__).resolve().parents[1] / "fixtures" / "mlperf_tiny" / "kws_ref_model.tflite"


def test_in_place_ops_share_only_buffers_that_die_there() -> None:
    """Official DS-CNN (KWS): every depthwise 3x3 and pointwise 64->64 conv writes over its
    input, so one 8,000-byte buffer carries the whole body (16,000 + 320 -> 8,496 + 704 bytes
    of arena + scratch; 8,704 with each op's scratch inside the arena, where the tensors of the
    op leave room)."""
    planned = plan(read_tflite(KWS.read_bytes()), dsp=True)
    ops = list(planned.ops)
    shared = [i for i, p in enumerate(ops) if not p.call.alias and p.call.params.get("input")
              and planned.memory.offset_of(p.op.inputs[0]) == planned.memory.offset_of(
                  p.op.outputs[0])]
    assert [ops[i].op.opcode for i in shared] == ["DEPTHWISE_CONV_2D", "CONV_2D"] * 4
    for i in shared:
        call = ops[i].call
        assert call.scratch_bytes == call.in_place_scratch_bytes == call.params["scratch_bytes"]
        buf = planned.memory.offset_of(ops[i].op.inputs[0])
        by_tensor = {t: b for b in planned.memory.buffers for t in b.tensors}
        src = by_tensor[ops[i].op.inputs[0]]
        assert src.offset == buf and src.last >= i
        # nothing after op i reads the tensor op i overwrote
        assert all(ops[i].op.inputs[0] not in q.op.inputs for q in ops[i + 1:])
    assert (planned.memory.arena_bytes, planned.memory.scratch_bytes) == (8704, 0)


def _pointwise_chain(read_y_again: bool) -> Graph:
    """x (2 channels) -> conv a (1x1, 2 -> 8) -> y -> conv b (1x1, 8 -> 8: may run in place) -> z
    -> MEAN; or with ``read_y_again`` ADD(z, y) -> s -> MEAN, where b must not overwrite y."""
    q = Quant((0.05,), (-3,))
    rng = np.random.default_rng(0)
    conv = {"padding": "VALID", "stride_w": 1, "stride_h": 1, "dilation_w_factor": 1,
            "dilation_h_factor": 1, "fused_activation_function": "NONE"}
    bq = Quant((0.0005,) * 8, (0,) * 8)
    tensors = (
        Tensor(0, "x", (1, 6, 6, 2), "int8", q),
        Tensor(1, "wa", (8, 1, 1, 2), "int8", Quant((0.01,) * 8, (0,) * 8),
               rng.integers(-127, 128, (8, 1, 1, 2), dtype=np.int8)),
        Tensor(2, "b", (8,), "int32", bq, np.zeros(8, np.int32)),
        Tensor(3, "y", (1, 6, 6, 8), "int8", q),
        Tensor(4, "z", (1, 6, 6, 8), "int8", q),
        Tensor(5, "s", (1, 6, 6, 8), "int8", q),
        Tensor(6, "axes", (2,), "int32", None, np.array([1, 2], np.int32)),
        Tensor(7, "out", (1, 8), "int8", q),
        Tensor(8, "wb", (8, 1, 1, 8), "int8", Quant((0.01,) * 8, (0,) * 8),
               rng.integers(-127, 128, (8, 1, 1, 8), dtype=np.int8)),
    )
    head = (Op(0, "CONV_2D", (0, 1, 2), (3,), conv, name="a"),
            Op(1, "CONV_2D", (3, 8, 2), (4,), conv, name="b"))
    mean = {"keep_dims": False}
    tail = ((Op(2, "ADD", (4, 3), (5,), {"fused_activation_function": "NONE"}, name="sum"),
             Op(3, "MEAN", (5, 6), (7,), mean, name="gap")) if read_y_again
            else (Op(2, "MEAN", (4, 6), (7,), mean, name="gap"),))
    return Graph(tensors, head + tail, (0,), (7,))


@pytest.mark.parametrize("read_y_again", [False, True])
def test_in_place_only_when_the_input_dies_at_the_op(read_y_again: bool) -> None:
    planned = plan(_pointwise_chain(read_y_again), dsp=True)
    m = planned.memory
    assert planned.ops[1].call.in_place_scratch_bytes is not None  # the kernel could
    assert (m.offset_of(3) == m.offset_of(4)) == (not read_y_again)
    assert m.offset_of(0) != m.offset_of(3)  # conv a's input is the graph input
    if not read_y_again:  # y and z in one buffer: x + y at op 0 is the peak, conv a's scratch
        # (5 x n4 = 20 bytes) beside the arena: conv b (8 -> 8) runs tp_conv_1x1_thin_s8, which
        # needs none, so no later op shares it; a's narrow path (8) would save too little
        assert planned.ops[0].call.scratch_bytes == 20
        assert planned.ops[1].call.kernel == "tp_conv_1x1_thin_s8"
        assert planned.ops[1].call.scratch_bytes == 0
        assert (m.arena_bytes, m.scratch_bytes) == (80 + 288, 20)
