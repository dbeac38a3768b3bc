"""Static memory plan: every activation tensor gets an offset in one arena.

Buffers whose lifetimes overlap never share bytes; the placement is greedy by size with first fit
into the gaps left by earlier placements (the strategy TFLite Micro's GreedyMemoryPlanner uses).
Tensors that alias (RESHAPE and kin only reinterpret their input) form one buffer.
"""

from __future__ import annotations

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
    buffers: tuple[Buffer, ...]
    arena_bytes: int
    scratch_bytes: int

    def offset_of(self, tensor: int) -> int:
        for b in self.buffers:
            if tensor in b.tensors:
                return b.offset
        raise KeyError(tensor)


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def place(buffers: list[Buffer]) -> tuple[list[Buffer], int]:
    """Greedy by size, first fit: returns the placed buffers and the arena size."""
    placed: list[Buffer] = []
    for buf in sorted(buffers, key=lambda b: (-b.size, b.first, b.tensors)):
        live = sorted((p for p in placed if p.overlaps_in_time(buf)), key=lambda p: p.offset)
        offset = 0
        for p in live:
            if offset + buf.size <= p.offset:
                break
            offset = max(offset, _align(p.offset + p.size))
        placed.append(Buffer(buf.tensors, buf.size, buf.first, buf.last, offset))
    arena = max((_align(p.offset + p.size) for p in placed), default=0)
    return sorted(placed, key=lambda b: b.tensors), arena


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
