"""Cortex-M4 cycle model: the TRM's timing with its pipeline effects, over one basic block.

Rules (Cortex-M4 TRM, "Processor instruction timings"; shared/FACTS.md), each one a unit test:

1. ALU, MUL/MLA, SMULL/SMLAL, SMLAD, SXTB16 and other DSP ops: 1 cycle; STR 1.
2. A single load takes 2 cycles, but a load right after a load from the *same memory block*
   pipelines and costs 1. Which block a load reads is not seen statically: loads through the
   same base register are taken as the same block, through different ones as different
   (weights in flash and activations in SRAM do not pipeline).
3. An address (base or index register) written by the instruction just before costs +1
   (the AGU reads it a cycle early).
4. A load right after a store costs +1 (the store's data phase holds the bus).
5. LDRD/STRD 3 (1 + 2 words); LDM/STM/PUSH/POP 1 + N; SDIV/UDIV 6 (2..12 by value, not seen).
6. IT folds into the 16-bit instruction before it (0 cycles), else 1.
7. A taken branch costs 1 + P: P is 1 for a target at a word address or a 16-bit first target
   instruction, 2 for a 32-bit instruction at a halfword address (two fetches); plus the flash
   line fill when fetches are uncached (``cycle_memory``). A conditional branch not taken: 1.

Not modelled: the branch-target prefetch that hides part of P, stalls across block boundaries,
FPU latencies (VMLA 3, VDIV 14 as in the table).
"""

from __future__ import annotations

from collections.abc import Sequence

from capstone import arm_const as A

from tinyprune.emulator.cycle_ops import Kind, Op

_LOADS = frozenset({Kind.LOAD, Kind.LOAD2})
_MEMORY = frozenset({Kind.LOAD, Kind.LOAD2, Kind.STORE, Kind.STORE2, Kind.MULTI})
_FIXED = {Kind.LOAD2: 3, Kind.STORE2: 3, Kind.DIV: 6, Kind.FPLONG: 14}


def _base_cost(op: Op, prev: Op | None) -> int:
    if op.kind is Kind.LOAD:
        pipelined = (prev is not None and prev.kind is Kind.LOAD and prev.base == op.base
                     and not (prev.writes - {prev.base}) & op.reads)
        return 1 if pipelined else 2
    if op.kind is Kind.MULTI:
        return 1 + op.nregs
    if op.kind is Kind.IT:
        return 0 if prev is not None and prev.size == 2 else 1
    return _FIXED.get(op.kind, 1)


def _address_regs(op: Op) -> frozenset[int]:
    if op.kind in _LOADS:
        return op.reads - {A.ARM_REG_CPSR}  # base and index
    if op.kind in (Kind.STORE, Kind.STORE2) and op.base:
        return frozenset({op.base})
    return frozenset()


def _stalls(op: Op, prev: Op | None) -> int:
    if prev is None:
        return 0
    extra = 0
    if op.kind in _LOADS and prev.kind in (Kind.STORE, Kind.STORE2):
        extra += 1  # rule 4
    if prev.kind not in _MEMORY and prev.writes & _address_regs(op):
        extra += 1  # rule 3
    return extra


def schedule(ops: Sequence[Op]) -> int:
    """Cycles of a basic block on the Cortex-M4 (taken-branch refill in :func:`entry`)."""
    total, prev = 0, None
    for op in ops:
        total += _base_cost(op, prev) + _stalls(op, prev)
        prev = op
    return total


def branch(last: Op | None) -> tuple[int, int]:
    """(taken penalty, fall-through penalty): the 1 of 1 + P (P is added by :func:`entry`)."""
    if last is None or not last.writes_pc:
        return 0, 0
    return 1, 0


def entry(first: Op | None, address: int) -> int:
    """P of a branch into a block that starts with ``first`` at ``address``."""
    if first is not None and first.size == 4 and address % 4 == 2:
        return 2
    return 1
