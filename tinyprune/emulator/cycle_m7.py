"""Cortex-M7 cycle model: an in-order dual-issue scheduler over one decoded basic block.

The rules are the ones measured on silicon (shared/FACTS.md; Arm publishes no M7 timing table),
each one a unit test in ``tests/unit/test_cycle_models.py``:

1. Two instructions issue per cycle, in order; the younger never uses the older's result.
2. At most one multiply/MAC per cycle, and a MAC/multiply never pairs with a store.
3. DSP/extend ops (SXTB16, UXTB, PKHBT, REV, SSAT, QADD8...) issue only in the older slot, so
   never two in one cycle.
4. Multiply/MAC results are ready 2 cycles after issue, but a MAC whose accumulator is the
   previous MAC's result issues the next cycle (accumulator forwarding).
5. Load results are ready 2 cycles after issue (load-use latency 2; a MAC cannot consume an LDR
   result from the previous cycle). A post-indexed base update is ready after 1.
6. Two loads pair only on different banks (even/odd words): known statically only for the same
   base register with word offsets of different parity; other load pairs are not paired.
   A load and a store may pair; two stores never; LDRD/STRD use both ports.
7. LDM/STM/PUSH/POP issue alone and take ceil(n/2) cycles; SDIV/UDIV issue alone (6 cycles,
   their 2..12 data-dependent range not modelled); VDIV/VSQRT 14.
8. Branch prediction: a conditional branch backward is predicted taken, forward not taken;
   direct branches and returns (``bx lr``, ``pop {..., pc}``) are predicted; other indirect
   branches (TBB/TBH, BLX/BX to a register other than LR, LDR pc) are not. A mispredict costs
   :data:`MISPREDICT` cycles; a predicted branch costs its issue slot only.

Not modelled: unaligned-access penalties (addresses are not seen per access), stalls that cross
block boundaries (each block starts with an empty pipeline), the BTAC's first-encounter misses,
FPU latencies (FPU ops are single-cycle ALU ops here).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from capstone import arm_const as A

from tinyprune.emulator.cycle_ops import Kind, Op

MISPREDICT = 6  # FACTS.md: 6..8 measured; LLVM's model uses 4
LOAD_LATENCY = 2
MAC_LATENCY = 2
DIV_CYCLES = 6
FPLONG_CYCLES = 14

_MULS = frozenset({Kind.MUL, Kind.MAC})
_STORES = frozenset({Kind.STORE, Kind.STORE2})
_LOADS = frozenset({Kind.LOAD, Kind.LOAD2})
_MEMORY = _STORES | _LOADS
_ALONE = frozenset({Kind.MULTI, Kind.DIV, Kind.FPLONG})


def _banks_differ(a: Op, b: Op) -> bool:
    return a.base == b.base and a.base != 0 and (a.disp // 4 - b.disp // 4) % 2 != 0


def can_pair(older: Op, younger: Op) -> bool:
    """Whether ``younger`` may issue in the same cycle as ``older`` (rules 2, 3, 6, 7)."""
    if older.kind in _ALONE or younger.kind in _ALONE or older.writes_pc:
        return False
    if younger.kind is Kind.DSP:
        return False
    if older.kind in _MULS and (younger.kind in _MULS or younger.kind in _STORES):
        return False
    if younger.kind in _MULS and older.kind in _STORES:
        return False
    if older.kind in _MEMORY and younger.kind in _MEMORY:
        if Kind.LOAD2 in (older.kind, younger.kind) or Kind.STORE2 in (older.kind, younger.kind):
            return False
        if older.kind is Kind.STORE and younger.kind is Kind.STORE:
            return False
        if older.kind is Kind.LOAD and younger.kind is Kind.LOAD:
            return _banks_differ(older, younger)
    return True


def _occupancy(op: Op) -> int:
    if op.kind is Kind.MULTI:
        return (op.nregs + 1) // 2
    if op.kind is Kind.DIV:
        return DIV_CYCLES
    if op.kind is Kind.FPLONG:
        return FPLONG_CYCLES
    return 1


@dataclass
class _State:
    last: int = -1  # cycle of the last issue
    count: int = 2  # instructions issued in that cycle (2: nothing can join it)
    older: Op | None = None
    free: int = 0  # first cycle a new instruction may issue (after an issue-alone op)
    ready: dict[int, int] = field(default_factory=dict)
    chain: dict[int, int] = field(default_factory=dict)  # MAC results, for MAC accumulators


def _operands_ready(op: Op, s: _State) -> int:
    t = 0
    for r in op.reads:
        when = s.chain.get(r) if r in op.acc and op.kind is Kind.MAC else None
        t = max(t, when if when is not None else s.ready.get(r, 0))
    return t


def _retire(op: Op, t: int, s: _State) -> None:
    occ = _occupancy(op)
    latency = {Kind.LOAD: LOAD_LATENCY, Kind.LOAD2: LOAD_LATENCY, Kind.MUL: MAC_LATENCY,
               Kind.MAC: MAC_LATENCY}.get(op.kind, 1)
    done = t + occ + (1 if op.kind is Kind.MULTI else 0) if op.kind in _ALONE else t + latency
    for w in op.writes:
        fast = op.kind in _LOADS and w == op.base  # writeback of the base register
        s.ready[w] = t + 1 if fast else done
        s.chain.pop(w, None)
    if op.kind is Kind.MAC:
        for w in op.writes:
            s.chain[w] = t + 1
    if op.kind in _ALONE:
        s.free, s.count = t + occ, 2
    s.older = op


def schedule(ops: Sequence[Op]) -> int:
    """Issue cycles of a basic block on the Cortex-M7 (rules 1-7; branches in :func:`branch`)."""
    s = _State()
    for op in ops:
        deps = _operands_ready(op, s)
        older = s.older
        if (s.count == 1 and older is not None and deps <= s.last and s.free <= s.last
                and can_pair(older, op)):
            s.count = 2
            _retire(op, s.last, s)
            s.older = None
            continue
        t = max(s.last + 1, deps, s.free)
        s.last, s.count = t, 1
        _retire(op, t, s)
    return max(s.last + 1, s.free)


def _predicted_return(op: Op) -> bool:
    return (op.mnemonic == "bx" and A.ARM_REG_LR in op.reads) or op.kind is Kind.MULTI


def branch(last: Op | None, fallthrough: int) -> tuple[int, int]:
    """(taken penalty, fall-through penalty) of leaving a block that ends with ``last``."""
    if last is None or not last.writes_pc:
        return 0, 0
    if last.conditional:
        target = last.target
        if target is not None and target < fallthrough:  # backward: predicted taken
            return 0, MISPREDICT
        return MISPREDICT, 0
    if last.target is not None or _predicted_return(last):
        return 0, 0
    return MISPREDICT, 0
