"""Chooses a kernel for every op, collects constant arrays and plans the arena.

Lowering runs first with symbolic activation pointers (``TP_T<index>``, macros that codegen
defines from the memory plan), so a handler never needs an offset; the memory plan is made
afterwards from the ops that remain, their aliases and their scratch needs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field, replace

import numpy as np

from tinyprune.errors import UnsupportedError
from tinyprune.ir.fold import fold_constants
from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels.base import KernelCall, handler_for
from tinyprune.plan.memory import Buffer, MemoryPlan, lifetimes, place

log = logging.getLogger(__name__)

CTYPES = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "int32_t": np.int32,
          "uint32_t": np.uint32, "float": np.float32}


@dataclass(frozen=True)
class ConstArray:
    """A ``const`` array placed in flash by codegen."""

    symbol: str
    ctype: str
    values: np.ndarray = field(repr=False)

    @property
    def nbytes(self) -> int:
        return int(self.values.size * np.dtype(CTYPES[self.ctype]).itemsize)


@dataclass(frozen=True)
class PlannedOp:
    op: Op
    call: KernelCall


@dataclass(frozen=True)
class Plan:
    """Everything codegen needs: ops with their kernel calls, constants, memory plan."""

    graph: Graph
    ops: tuple[PlannedOp, ...]
    consts: tuple[ConstArray, ...]
    memory: MemoryPlan
    dsp: bool

    @property
    def code_ops(self) -> tuple[PlannedOp, ...]:
        """Ops that emit code (aliases emit none); these are the firmware's layers."""
        return tuple(p for p in self.ops if not p.call.alias)

    @property
    def weight_bytes(self) -> int:
        return sum(c.nbytes for c in self.consts)


class _Lowering:
    """The LowerContext given to handlers."""

    def __init__(self, dsp: bool) -> None:
        self.dsp = dsp
        self.consts: dict[str, ConstArray] = {}
        self._by_digest: dict[str, str] = {}

    def act(self, tensor_index: int) -> str:
        return f"TP_T{tensor_index}"

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        arr = np.ascontiguousarray(np.asarray(values).astype(CTYPES[ctype], copy=False))
        digest = hashlib.sha1(ctype.encode() + str(arr.shape).encode() + arr.tobytes()).hexdigest()
        if digest in self._by_digest:
            return self._by_digest[digest]
        base = re.sub(r"[^0-9a-zA-Z_]", "_", hint).strip("_").lower() or "c"
        symbol = f"tp_c{len(self.consts)}_{base}"[:60]
        self.consts[symbol] = ConstArray(symbol, ctype, arr.reshape(-1))
        self._by_digest[digest] = symbol
        return symbol

    @property
    def scratch(self) -> str:
        return "tp_scratch"


def plan(graph: Graph, *, dsp: bool) -> Plan:
    """Lowers every op to a kernel call and plans memory.

    Args:
        graph: the IR graph (shape-only subgraphs are folded here).
        dsp: the target has the DSP extension; kernels take their SIMD path.

    Raises:
        UnsupportedError: an op has no kernel, or its handler refuses it (names layer and op).
    """
    graph = fold_constants(graph)
    if not graph.ops:
        raise UnsupportedError("the model has no operators left after folding constants")
    ctx = _Lowering(dsp)
    planned: list[PlannedOp] = []
    for op in graph.ops:
        handler = handler_for(op)
        handler.check(op, graph)
        planned.append(PlannedOp(op, handler.lower(op, graph, ctx)))
    memory, planned = _memory_plan(graph, planned)
    return Plan(graph=graph, ops=tuple(planned), consts=tuple(ctx.consts.values()),
                memory=memory, dsp=dsp)


def _in_place(call: KernelCall) -> KernelCall:
    """The call with its in-place scratch (the fragment's ``scratch_bytes`` and ``scratch``)."""
    n = call.in_place_scratch_bytes or 0
    params = {**call.params, "scratch_bytes": n, "scratch": "tp_scratch" if n else "NULL"}
    return replace(call, params=params, scratch_bytes=n)


def _memory_plan(graph: Graph, planned: list[PlannedOp]) -> tuple[MemoryPlan, list[PlannedOp]]:
    """The smaller plan (arena + scratch) of: every op out of place, and every op whose kernel
    can write over its first input doing so where that input dies there (not a graph input or
    output, not read again, not another input of the op). Returns it and the ops as planned."""
    apart = _place(graph, planned, set())
    shared = _sharing_ops(graph, planned)
    if not shared:
        return apart, planned
    ops = [PlannedOp(p.op, _in_place(p.call)) if i in shared else p for i, p in enumerate(planned)]
    together = _place(graph, ops, shared)
    if together.arena_bytes + together.scratch_bytes < apart.arena_bytes + apart.scratch_bytes:
        log.info("in place: %d ops; arena + scratch %d -> %d bytes", len(shared),
                 apart.arena_bytes + apart.scratch_bytes,
                 together.arena_bytes + together.scratch_bytes)
        return together, ops
    return apart, planned


class _Roots:
    """Union-find over activation tensors: tensors that share one arena buffer."""

    def __init__(self) -> None:
        self.root: dict[int, int] = {}

    def find(self, t: int) -> int:
        while self.root.get(t, t) != t:
            t = self.root[t]
        return t

    def join(self, t: int, into: int) -> None:
        self.root[self.find(t)] = self.find(into)


def _is_act(graph: Graph, t: int) -> bool:
    return t >= 0 and not graph.tensors[t].is_const


def _roots(graph: Graph, planned: list[PlannedOp], shared: set[int]) -> _Roots:
    roots = _Roots()
    for i, p in enumerate(planned):
        if p.call.alias:
            roots.join(p.op.outputs[0], next(t for t in p.op.inputs if _is_act(graph, t)))
        elif i in shared:
            roots.join(p.op.outputs[0], p.op.inputs[0])
    return roots


def _sharing_ops(graph: Graph, planned: list[PlannedOp]) -> set[int]:
    """Ops whose output may take their first input's buffer (decided in order, so chains of
    in-place ops see the buffers the earlier ones merged)."""
    shared: set[int] = set()
    for i, p in enumerate(planned):
        if p.call.in_place_scratch_bytes is None or not _is_act(graph, p.op.inputs[0]):
            continue
        roots = _roots(graph, planned, shared)
        src = roots.find(p.op.inputs[0])
        fixed = {roots.find(t) for t in (*graph.inputs, *graph.outputs)}
        others = [t for t in p.op.inputs[1:] if _is_act(graph, t)]
        later = [t for q in planned[i + 1:] for t in q.op.inputs if _is_act(graph, t)]
        if (src in fixed or roots.find(p.op.outputs[0]) in fixed
                or any(roots.find(t) == src for t in (*others, *later))):
            continue
        shared.add(i)
    return shared


def _place(graph: Graph, planned: list[PlannedOp], shared: set[int]) -> MemoryPlan:
    roots = _roots(graph, planned, shared)
    find = roots.find

    def is_act(t: int) -> bool:
        return _is_act(graph, t)

    uses = [([find(t) for t in p.op.inputs if is_act(t)], [find(t) for t in p.op.outputs])
            for p in planned]
    span = lifetimes(len(planned), uses, [find(t) for t in graph.inputs],
                     [find(t) for t in graph.outputs])
    members: dict[int, list[int]] = {}
    for t in {t for p in planned for t in (*p.op.inputs, *p.op.outputs) if is_act(t)}:
        members.setdefault(find(t), []).append(t)
    buffers = [Buffer(tuple(sorted(ts)), max(graph.tensors[t].nbytes for t in ts), *span[r])
               for r, ts in members.items()]
    placed, arena = place(buffers)
    scratch = max((p.call.scratch_bytes for p in planned), default=0)
    return MemoryPlan(buffers=tuple(placed), arena_bytes=arena, scratch_bytes=scratch)
