"""Memory planner: no two live buffers share bytes; greedy-by-size beats naive stacking; the
report's memory section maps buffers to the code ops."""

from __future__ import annotations

import numpy as np
import pytest

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
