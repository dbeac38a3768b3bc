"""Memory planner: no two live buffers share bytes; greedy-by-size beats naive stacking."""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune.plan.memory import ALIGN, Buffer, lifetimes, place


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
