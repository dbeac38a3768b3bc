"""Chooses a kernel for every op, collects constant arrays and plans the arena.

Kernel choice (:func:`choose_kernel`) is generic: the op's primary handler validates it; every
registered handler of the op (primary and variants, e.g. the sparse kernels) that accepts it
gives an estimate, and the cheapest one among the kinds the :class:`PlanOptions` allow wins. The
planner knows nothing about what a kernel exploits; it only compares numbers and records them,
with the reason, in the :class:`KernelCall` (for the report's ``layers[]``).

Lowering runs first with symbolic activation pointers (``TP_T<index>``, macros that codegen
defines from the memory plan), so a handler never needs an offset; the memory plan is made
afterwards from the ops that remain, their aliases and their scratch needs. Before it, a
residual ADD is fused into the conv that produces one of its operands where
tinyprune/plan/fusion.py proves it safe and the plan gets smaller (:func:`_fuse`).
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
from tinyprune.kernels.base import (
    KERNEL_KINDS,
    Estimate,
    KernelCall,
    PlanOptions,
    Registered,
    handlers_for,
)
from tinyprune.kernels.conv import lower_interleaved
from tinyprune.kernels.fused import fuse_conv_add
from tinyprune.plan.fusion import Fusion, candidates
from tinyprune.plan.memory import Buffer, MemoryPlan, lifetimes, place

log = logging.getLogger(__name__)

CTYPES = {"int8_t": np.int8, "uint8_t": np.uint8, "int16_t": np.int16, "uint16_t": np.uint16,
          "int32_t": np.int32, "uint32_t": np.uint32, "float": np.float32}


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
    """An op and its kernel call. ``residual``: for a conv with a fused residual ADD, the
    tensor whose buffer its output (the ADD's) takes; the op then has the conv's inputs plus
    that tensor and the ADD's outputs."""

    op: Op
    call: KernelCall
    residual: int | None = None


@dataclass(frozen=True)
class Plan:
    """Everything codegen needs: ops with their kernel calls, constants, memory plan."""

    graph: Graph
    ops: tuple[PlannedOp, ...]
    consts: tuple[ConstArray, ...]
    memory: MemoryPlan
    dsp: bool
    cost_model: str = "table"  # the cycle model whose cost fit chose the kernels

    @property
    def code_ops(self) -> tuple[PlannedOp, ...]:
        """Ops that emit code (aliases emit none); these are the firmware's layers."""
        return tuple(p for p in self.ops if not p.call.alias)

    @property
    def weight_bytes(self) -> int:
        return sum(c.nbytes for c in self.consts)


class _Lowering:
    """The LowerContext given to handlers."""

    def __init__(self, dsp: bool, cost_model: str = "table") -> None:
        self.dsp = dsp
        self.cost_model = cost_model
        self.consts: dict[str, ConstArray] = {}
        self._by_digest: dict[str, str] = {}
        self._count = 0  # symbols made (never reused once an array is dropped)

    def act(self, tensor_index: int) -> str:
        return f"TP_T{tensor_index}"

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        arr = np.ascontiguousarray(np.asarray(values).astype(CTYPES[ctype], copy=False))
        digest = hashlib.sha1(ctype.encode() + str(arr.shape).encode() + arr.tobytes()).hexdigest()
        if digest in self._by_digest:
            return self._by_digest[digest]
        base = re.sub(r"[^0-9a-zA-Z_]", "_", hint).strip("_").lower() or "c"
        symbol = f"tp_c{self._count}_{base}"[:60]
        self._count += 1
        self.consts[symbol] = ConstArray(symbol, ctype, arr.reshape(-1))
        self._by_digest[digest] = symbol
        return symbol

    def forget(self, symbol: str) -> None:
        """A dropped array: an equal one registered later gets a symbol of its own."""
        self._by_digest = {d: s for d, s in self._by_digest.items() if s != symbol}

    @property
    def scratch(self) -> str:
        return "tp_scratch"


def plan(graph: Graph, *, dsp: bool, options: PlanOptions | None = None) -> Plan:
    """Lowers every op to a kernel call and plans memory.

    Args:
        graph: the IR graph (shape-only subgraphs are folded here).
        dsp: the target has the DSP extension; kernels take their SIMD path.
        options: the kernel choice's options (default: the cheapest estimate wins).

    Raises:
        UnsupportedError: an op has no kernel, or its handler refuses it (names layer and op).
    """
    options = options or PlanOptions()
    graph = fold_constants(graph)
    if not graph.ops:
        raise UnsupportedError("the model has no operators left after folding constants")
    ctx = _Lowering(dsp, options.cost_model)
    planned: list[PlannedOp] = []
    for op in graph.ops:
        choice = choose_kernel(op, graph, dsp, options)
        call = choice.entry.handler.lower(op, graph, ctx)
        planned.append(PlannedOp(op, _annotate(call, choice, op, graph)))
    unfused, known = planned, set(ctx.consts)
    planned = _fuse(graph, planned, ctx)
    _drop_unused_consts(ctx, planned, (set(ctx.consts) - known)
                        | {str(p.call.params.get("filter")) for p in unfused})
    if options.narrow_scratch:
        planned = _narrow(graph, planned)
    memory, planned = _memory_plan(graph, planned)
    return Plan(graph=graph, ops=tuple(planned), consts=tuple(ctx.consts.values()),
                memory=memory, dsp=dsp, cost_model=options.cost_model)


@dataclass(frozen=True)
class Choice:
    """The handler chosen for an op, the estimates it was compared on, and why.

    Attributes:
        entry: the chosen handler.
        primary: the estimate of the op's primary (dense) handler, None when it has none.
        best_other: the cheapest estimate of the other accepting handlers, None when none.
        reason: one line for the report ("" when the op has a single handler).
        chosen: the estimate of the chosen handler, None when it has none.
    """

    entry: Registered
    primary: Estimate | None = None
    best_other: Estimate | None = None
    reason: str = ""
    chosen: Estimate | None = None


def choose_kernel(op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Choice:
    """The op's handler: the cheapest accepting one of the kinds ``options`` allow.

    Raises:
        UnsupportedError: the primary handler refuses the op.
    """
    entries = handlers_for(op)
    primary = entries[0]
    primary.handler.check(op, graph)
    if len(entries) == 1:
        return Choice(primary)
    wanted = options.kind_for(op.name)
    if wanted not in ("auto", *KERNEL_KINDS) and not any(wanted in e.kernels for e in entries):
        offered = sorted({k for e in entries for k in e.kernels})
        raise ValueError(f"layer '{op.name}': kernel {wanted} is not one of its kernels; "
                         f"expected one of {', '.join(offered) or '(none)'}")
    scored = [(e, est) for e in entries
              if e.estimate is not None and (est := e.estimate(op, graph, dsp, options))]
    own = next((est for e, est in scored if e is primary), None)
    others = [(e, est) for e, est in scored if e is not primary]
    best_other = min((est for _, est in others), key=lambda x: x.cycles, default=None)
    allowed = [(e, est) for e, est in scored if e.allowed_by(wanted)]
    if wanted == "auto" and own is not None and _dense_weights(op, graph):
        # Nothing to skip: a sparse format only adds index bytes, and what its estimate may
        # win (a few percent on some shapes) is inside the cost model's error.
        dense = [(e, est) for e, est in allowed if e.kind != "sparse"]
        if len(dense) < len(allowed):
            entry, est = min(dense, key=lambda pair: pair[1].cycles)
            return Choice(entry, own, best_other, _reason(entry is primary, est, own, best_other,
                          forced=False) + f"; weights {weight_sparsity(op, graph):.1%} zero, "
                          f"below the {MIN_SPARSE_WEIGHTS:.0%} a sparse format needs", est)
    if wanted == "auto" and own is None:
        return Choice(primary, None, best_other, "no estimate for the primary kernel")
    if not allowed or (wanted == primary.kind and own is None):
        return Choice(primary, own, best_other, f"no {wanted} kernel accepts the layer", own)
    entry, est = min(allowed, key=lambda pair: pair[1].cycles)
    return Choice(entry, own, best_other, _reason(entry is primary, est, own, best_other,
                                                  forced=wanted != "auto"), est)


def _reason(is_primary: bool, est: Estimate, own: Estimate | None,
            best_other: Estimate | None, *, forced: bool) -> str:
    prefix = "forced: " if forced else ""
    if is_primary:
        if best_other is None or own is None:
            return f"{prefix}{est.detail}: no other kernel accepts the layer"
        return (f"{prefix}{est.detail}: est. {own.cycles:,.0f} cycles; the best other "
                f"({best_other.detail}) est. {best_other.cycles:,.0f} "
                f"({best_other.cycles / max(own.cycles, 1.0):.2f}x)")
    if own is None:
        return f"{prefix}{est.detail}: est. {est.cycles:,.0f} cycles"
    return (f"{prefix}{est.detail}: est. {est.cycles:,.0f} cycles, "
            f"{est.cycles / max(own.cycles, 1.0):.2f}x the dense kernel's {own.cycles:,.0f}")


# Below this fraction of zero int8 weights the sparse (weight) kernels are not considered in
# "auto": trained dense weights are 1-3% zero, the blocks they leave empty are a few per layer.
MIN_SPARSE_WEIGHTS = 0.10


def _dense_weights(op: Op, graph: Graph) -> bool:
    sparsity = weight_sparsity(op, graph)
    return sparsity is not None and sparsity < MIN_SPARSE_WEIGHTS


def weight_sparsity(op: Op, graph: Graph) -> float | None:
    """Fraction of zeros in the op's constant int8 inputs (its weights); None without any."""
    arrays = [t.data for t in (graph.tensor(i) for i in op.inputs if i >= 0)
              if t.data is not None and t.dtype == "int8"]
    size = sum(a.size for a in arrays)
    if not size:
        return None
    return sum(int(np.count_nonzero(a == 0)) for a in arrays) / size


def _annotate(call: KernelCall, choice: Choice, op: Op, graph: Graph) -> KernelCall:
    """The call with the choice's figures (sparsity, estimates, reason) filled in."""
    sparsity = weight_sparsity(op, graph)
    is_primary = choice.entry.kind == "dense"
    return replace(
        call,
        sparsity=None if sparsity is None else round(sparsity, 4),
        encoding=call.encoding or ("dense" if sparsity is not None else ""),
        dense_cycles=None if choice.primary is None else round(choice.primary.cycles),
        sparse_cycles=None if choice.best_other is None else round(choice.best_other.cycles),
        est_cycles=None if choice.chosen is None else round(choice.chosen.cycles),
        dense_weight_bytes=call.dense_weight_bytes if call.dense_weight_bytes is not None
        else (call.weight_bytes if is_primary and sparsity is not None else None),
        reason=choice.reason)


def _apply(graph: Graph, planned: list[PlannedOp], f: Fusion, ctx: _Lowering) -> list[PlannedOp]:
    """The ops with the conv of ``f`` removed and its ADD replaced by the fused op."""
    conv, add = planned[f.conv], planned[f.add]
    conv_call = lower_interleaved(conv.op, graph, ctx, conv.call)
    call = fuse_conv_add(conv_call, add.call, conv_input=f.conv_input,
                         residual=ctx.act(f.residual), add_name=add.op.name, dsp=ctx.dsp)
    op = replace(conv.op, inputs=(*conv.op.inputs, f.residual), outputs=add.op.outputs)
    fused = PlannedOp(op, call, residual=f.residual)
    return [fused if i == f.add else p for i, p in enumerate(planned) if i != f.conv]


def _total(graph: Graph, planned: list[PlannedOp]) -> int:
    memory, _ = _memory_plan(graph, planned)
    return memory.arena_bytes + memory.scratch_bytes


def _drop_unused_consts(ctx: _Lowering, planned: list[PlannedOp], maybe: set[str]) -> None:
    """Forgets the arrays of ``maybe`` that no call's parameters name any more: the fusion's
    trial lowerings (a thin conv lowered again as tp_conv_interleaved_s8, kept or not) and the
    stream such a conv had before it was fused."""
    used = repr([p.call.params for p in planned])
    for symbol in maybe & set(ctx.consts):
        if symbol not in used:
            del ctx.consts[symbol]
            ctx.forget(symbol)


def _fuse(graph: Graph, planned: list[PlannedOp], ctx: _Lowering) -> list[PlannedOp]:
    """Every ADD, in order, fused with the producer of whichever operand gives the smallest
    plan (arena + scratch), among the fusions tinyprune/plan/fusion.py proves safe; kept
    unfused when no fusion is smaller (a tie fuses: one pass over the data less)."""
    adds = [p.op.index for p in planned if p.op.opcode == "ADD"]
    for index in adds:
        at = next(i for i, p in enumerate(planned) if p.op.index == index and p.op.opcode == "ADD")
        roots = _roots(graph, planned, set())
        options = [_apply(graph, planned, f, ctx) for f in candidates(graph, planned, at,
                                                                      roots.find)]
        if not options:
            continue
        best = min(options, key=lambda ops: _total(graph, ops))
        before, after = _total(graph, planned), _total(graph, best)
        if after <= before:
            log.info("fused %s into its conv: arena + scratch %d -> %d bytes",
                     planned[at].op.name, before, after)
            planned = best
    return planned


def _live(memory: MemoryPlan, n: int) -> list[int]:
    """Bytes of tensor buffers live at each of the n op positions."""
    return [sum(b.size for b in memory.buffers if b.first <= i <= b.last) for i in range(n)]


def _with_scratch(call: KernelCall, n: int) -> KernelCall:
    """The call with its least scratch (and the kernel that runs with it)."""
    kernel = call.narrow_kernel or call.kernel
    return replace(call, kernel=kernel, scratch_bytes=n,
                   params={**call.params, "scratch_bytes": n, "kernel": kernel},
                   reason=(f"{call.reason}; " if call.reason else "")
                   + f"narrow scratch at the memory peak ({n} bytes, not {call.scratch_bytes})")


MIN_NARROW_SAVING = 256
"""Bytes a slower, narrow-scratch path must save to be taken: less is within what the
measured stack peak varies between builds (tens of bytes), while the narrow path costs cycles
(official VWW: 24 bytes for 0.16 M est. cycles; ResNet-8: 400 bytes for 0.48 M)."""


def _narrow(graph: Graph, planned: list[PlannedOp]) -> list[PlannedOp]:
    """The ops whose tensors plus full scratch stand above what any op needs with the least
    scratch its kernel takes get that least scratch (a slower path: only at the peak), when
    the plan gets at least :data:`MIN_NARROW_SAVING` bytes smaller."""
    if not any(p.call.min_scratch_bytes for p in planned):
        return planned
    memory, _ = _memory_plan(graph, planned)
    live = _live(memory, len(planned))
    least = [p.call.min_scratch_bytes or p.call.scratch_bytes for p in planned]
    floor = max(v + s for v, s in zip(live, least, strict=True))
    ops = [replace(p, call=_with_scratch(p.call, least[i]))
           if least[i] < p.call.scratch_bytes and live[i] + p.call.scratch_bytes > floor else p
           for i, p in enumerate(planned)]
    after, _ = _memory_plan(graph, ops)
    saved = memory.arena_bytes + memory.scratch_bytes - after.arena_bytes - after.scratch_bytes
    if saved >= MIN_NARROW_SAVING:
        log.info("narrow scratch: %d ops; arena + scratch %d -> %d bytes",
                 sum(a is not b for a, b in zip(ops, planned, strict=True)),
                 memory.arena_bytes + memory.scratch_bytes, after.arena_bytes + after.scratch_bytes)
        return ops
    return planned


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
    ops = [replace(p, call=_in_place(p.call)) if i in shared else p
           for i, p in enumerate(planned)]
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
        elif p.residual is not None:
            roots.join(p.op.outputs[0], p.residual)
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
    apart = MemoryPlan(buffers=tuple(placed), arena_bytes=arena, scratch_bytes=scratch)
    inside = _scratch_inside(buffers, planned)
    if inside is not None and inside.arena_bytes < apart.arena_bytes + apart.scratch_bytes:
        return inside
    return apart


def _scratch_inside(buffers: list[Buffer], planned: list[PlannedOp]) -> MemoryPlan | None:
    """The plan with each op's scratch as an arena buffer of its own, live during that op only
    (a layer whose tensors leave room needs no bytes beyond the arena for its scratch); None
    when no op needs scratch. Scratch buffers carry the pseudo tensor -1 - op position."""
    scratch = [Buffer((-1 - i,), p.call.scratch_bytes, i, i)
               for i, p in enumerate(planned) if p.call.scratch_bytes]
    if not scratch:
        return None
    placed, arena = place([*buffers, *scratch])
    tensors = tuple(b for b in placed if b.tensors[0] >= 0)
    offsets = tuple((-1 - b.tensors[0], b.offset) for b in placed if b.tensors[0] < 0)
    return MemoryPlan(buffers=tensors, arena_bytes=arena, scratch_bytes=0,
                      scratch_offsets=tuple(sorted(offsets)))
