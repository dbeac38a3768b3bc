"""Cortex-M0+ cycle model: the 2-stage pipeline's fixed timings (Cortex-M0+ TRM, table 3-1).

1. ALU ops 1 cycle; LDR/STR (any width) 2; LDM/STM/PUSH/POP 1 + N.
2. MULS 1 with the fast (single-cycle) multiplier, 32 with the small one (``[timing] multiplier``
   in the board file; the fast one by default).
3. A taken branch refills the 2-stage pipeline: B/Bcc/BX 2 cycles, BL 3 (a 32-bit instruction, 2
   in the block + 1), POP {..., pc} 3 + N (1 + N + 2). A conditional branch not taken: 1.
4. No dual issue, no load pipelining, no branch prediction.

Thumb-2 instructions the M0+ lacks (DSP, LDRD, divides) are priced as a what-if: DSP and 32-bit
ALU ops 1, LDRD/STRD 3, SDIV/UDIV 17 (what a library division costs at best). Firmware built
for another core run under this model is an estimate of *that* code on an M0+ pipeline, not of
code compiled for the M0+.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinyprune.emulator.cycle_ops import Kind, Op

SMALL_MULTIPLIER = 32
_FIXED = {Kind.LOAD: 2, Kind.STORE: 2, Kind.LOAD2: 3, Kind.STORE2: 3, Kind.DIV: 17,
          Kind.FPLONG: 14}


def op_cycles(op: Op, small_multiplier: bool) -> int:
    """Cycles of one instruction in its block (a taken branch's refill in :func:`branch`)."""
    if op.kind is Kind.MULTI:
        return 1 + op.nregs
    if op.kind in (Kind.MUL, Kind.MAC):
        return SMALL_MULTIPLIER if small_multiplier else 1
    if op.kind is Kind.BRANCH and op.mnemonic in ("bl", "blx") and op.size == 4:
        return 2
    return _FIXED.get(op.kind, 1)


def schedule(ops: Sequence[Op], small_multiplier: bool = False) -> int:
    """Cycles of a basic block on the Cortex-M0+ (branch refills excluded)."""
    return sum(op_cycles(op, small_multiplier) for op in ops)


def branch(last: Op | None) -> tuple[int, int]:
    """(taken penalty, fall-through penalty) of leaving a block that ends with ``last``."""
    if last is None or not last.writes_pc:
        return 0, 0
    return (2 if last.kind is Kind.MULTI else 1), 0
