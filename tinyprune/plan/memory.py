"""Static memory plan: every activation tensor gets an offset in one arena.

Buffers whose lifetimes overlap never share bytes; each placement is first fit into the gaps left
by earlier placements, in a few orders (largest first, as TFLite Micro's GreedyMemoryPlanner; size x
lifetime first; earliest first), and the smallest arena wins.
Tensors that alias (RESHAPE and kin only reinterpret their input) form one buffer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

ALIGN = 16


@dataclass(frozen=True)
class Buffer:
    """One arena buffer: the tensors sharing it, its size and lifetime (op indices, inclusive)."""

    tensors: tuple[int, ...]
    size: int
    first: int
    last: int
    offset: int = 0

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass(frozen=True)
class MemoryPlan:
    """Where every activation buffer sits in the arena, and the scratch.

    Attributes:
        buffers: the tensors' buffers, placed.
        arena_bytes: the arena's size.
        scratch_bytes: a scratch buffer outside the arena that every kernel shares (the
            largest any op needs), or 0 when the scratch lives in the arena.
        scratch_offsets: (op position, offset in the arena) of each op's scratch when the
            scratch lives in the arena (each op's own buffer, live while it runs); empty
            otherwise.
    """

    buffers: tuple[Buffer, ...]
    arena_bytes: int
    scratch_bytes: int
    scratch_offsets: tuple[tuple[int, int], ...] = ()

    def scratch_offset(self, op: int) -> int | None:
        """The arena offset of op position ``op``'s scratch, None when it is not in the arena."""
        return dict(self.scratch_offsets).get(op)

    def offset_of(self, tensor: int) -> int:
        for b in self.buffers:
            if tensor in b.tensors:
                return b.offset
        raise KeyError(tensor)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


ORDERS: tuple[tuple[str, Callable[[Buffer], tuple[int, int, tuple[int, ...]]]], ...] = (
    ("size", lambda b: (-b.size, b.first, b.tensors)),
    ("area", lambda b: (-b.size * (b.last - b.first + 1), b.first, b.tensors)),
    ("first", lambda b: (b.first, -b.size, b.tensors)),
)
"""Placement orders tried by :func:`place`, each first fit: largest first (TFLM's greedy
planner), largest size x lifetime first, earliest first."""


def place_in_order(buffers: list[Buffer],
                   key: Callable[[Buffer], tuple[int, int, tuple[int, ...]]]) -> tuple[
        list[Buffer], int]:
    """First fit in the order of ``key``: returns the placed buffers and the arena size."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=key):
        first, last = buf.first, buf.last  # p.overlaps_in_time(buf), inlined: the hot loop
        live = sorted((p for p in placed if p.first <= last and first <= p.last),
                      key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        placed.append(Buffer(buf.tensors, buf.size, buf.first, buf.last, offset))
    arena = max((_align(p.offset + p.size) for p in placed), default=0)
    return sorted(placed, key=lambda b: b.tensors), arena


def place(buffers: list[Buffer]) -> tuple[list[Buffer], int]:
    """The smallest arena of the first-fit placements in :data:`ORDERS` (the first on a tie):
    returns the placed buffers and the arena size. On the official MobileNetV1 (VWW) largest
    first loses 9 KB to fragmentation (64,512 B for a peak of 55,296 live); size x lifetime
    first reaches the peak."""
    best = [place_in_order(buffers, key) for _, key in ORDERS]
    return min(best, key=lambda r: r[1])


def lifetimes(num_ops: int, uses: list[tuple[list[int], list[int]]], graph_inputs: list[int],
              graph_outputs: list[int]) -> dict[int, tuple[int, int]]:
    """First and last op index at which each activation tensor is live.

    Args:
        num_ops: number of ops.
        uses: per op, (input tensor ids, output tensor ids), activations only.
        graph_inputs: live from the start. graph_outputs: live to the end.
    """
    span: dict[int, tuple[int, int]] = {t: (0, 0) for t in graph_inputs}
    for i, (ins, outs) in enumerate(uses):
        for t in [*ins, *outs]:
            first, _ = span.get(t, (i, i))
            span[t] = (min(first, i), i)
    for t in graph_outputs:
        first, _ = span.get(t, (0, 0))
        span[t] = (first, max(num_ops - 1, 0))
    return span
