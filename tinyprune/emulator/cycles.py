"""Cycle model shared by every emulator backend: a cost per instruction class.

The table is the Cortex-M4 TRM timing at zero wait states (see docs/emulator.md), the one the
CMSIS-NN reference figures in FACTS.md were priced with:

=================================================  ======
class                                              cycles
=================================================  ======
ALU, MUL/MLA, SMULL/SMLAL, SMLAD, SXTB16, FPU op   1
single load (LDR*, VLDR)                           2
single store (STR*, VSTR)                          1
LDRD / STRD                                        3
LDM / STM / PUSH / POP (N registers, also VFP)     1 + N
SDIV / UDIV                                        6
VDIV / VSQRT                                       14
taken branch (any change of flow)                  +2
=================================================  ======

Cortex-M7 firmware is priced with the same table: an estimate that ignores dual issue, caches,
flash wait states and load pipelining. Figures are labelled ``cycles_are_estimate``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import capstone
from capstone import arm_const as A

TAKEN_BRANCH_PENALTY = 2

_LOADS = frozenset(
    {
        A.ARM_INS_LDR,
        A.ARM_INS_LDRB,
        A.ARM_INS_LDRH,
        A.ARM_INS_LDRSB,
        A.ARM_INS_LDRSH,
        A.ARM_INS_LDRT,
        A.ARM_INS_LDRBT,
        A.ARM_INS_LDRHT,
        A.ARM_INS_LDRSBT,
        A.ARM_INS_LDRSHT,
        A.ARM_INS_LDREX,
        A.ARM_INS_LDREXB,
        A.ARM_INS_LDREXH,
        A.ARM_INS_LDA,
        A.ARM_INS_LDAB,
        A.ARM_INS_LDAH,
        A.ARM_INS_VLDR,
        A.ARM_INS_TBB,
        A.ARM_INS_TBH,
    }
)
_STORES = frozenset(
    {
        A.ARM_INS_STR,
        A.ARM_INS_STRB,
        A.ARM_INS_STRH,
        A.ARM_INS_STRT,
        A.ARM_INS_STRBT,
        A.ARM_INS_STRHT,
        A.ARM_INS_STREX,
        A.ARM_INS_STREXB,
        A.ARM_INS_STREXH,
        A.ARM_INS_STL,
        A.ARM_INS_STLB,
        A.ARM_INS_STLH,
        A.ARM_INS_VSTR,
    }
)
_PAIRS = frozenset({A.ARM_INS_LDRD, A.ARM_INS_STRD, A.ARM_INS_LDREXD, A.ARM_INS_STREXD})
_MULTI_WITH_BASE = frozenset(
    {
        A.ARM_INS_LDM,
        A.ARM_INS_LDMDB,
        A.ARM_INS_STM,
        A.ARM_INS_STMDB,
        A.ARM_INS_VLDMIA,
        A.ARM_INS_VLDMDB,
        A.ARM_INS_VSTMIA,
        A.ARM_INS_VSTMDB,
    }
)
_MULTI = frozenset({A.ARM_INS_PUSH, A.ARM_INS_POP, A.ARM_INS_VPUSH, A.ARM_INS_VPOP})
_DIVS = frozenset({A.ARM_INS_SDIV, A.ARM_INS_UDIV})
_FP_LONG = frozenset({A.ARM_INS_VDIV, A.ARM_INS_VSQRT})
_IDLE_OK = frozenset(
    {A.ARM_INS_NOP, A.ARM_INS_WFI, A.ARM_INS_WFE, A.ARM_INS_HINT, A.ARM_INS_B}
)  # capstone 5 decodes nop/wfi/wfe as HINT


@dataclass(frozen=True)
class BlockCost:
    """Instructions and cycles of one straight-line block (without the taken-branch penalty).

    ``idle`` is true for a block that only waits and branches unconditionally to itself
    (``b .``, ``1: wfi; b 1b``). The per-core models (``cycle_models.py``) also say what leaving
    the block costs: ``taken_penalty`` when the next block is not the fall-through (a taken branch
    or a mispredicted one), ``fall_penalty`` when it is (a branch predicted taken and not taken);
    ``entry_penalty`` is what a branch *into* this block adds (M4 fetch alignment), and
    ``cold_cycles`` what its first execution adds once (I-cache line fills); ``data_bases`` the
    base registers (capstone ids) whose region at the block's entry its memory cost depends on
    (the unicorn backend prices it again when they change region after a kernel call).
    """

    instructions: int
    cycles: int
    idle: bool
    taken_penalty: int = TAKEN_BRANCH_PENALTY
    fall_penalty: int = 0
    entry_penalty: int = 0
    cold_cycles: int = 0
    data_bases: tuple[int, ...] = ()


@lru_cache(maxsize=1)
def disassembler() -> capstone.Cs:
    """A Thumb-2 M-profile capstone decoder with operand details."""
    cs = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    cs.detail = True
    return cs


def instruction_cycles(insn: capstone.CsInsn) -> int:
    """Cycles of one decoded instruction by its class (branch penalty not included)."""
    ident = insn.id
    if ident in _LOADS:
        return 2
    if ident in _STORES:
        return 1
    if ident in _PAIRS:
        return 3
    if ident in _MULTI_WITH_BASE:
        return len(insn.operands)  # base register + N registers -> 1 + N
    if ident in _MULTI:
        return 1 + len(insn.operands)
    if ident in _DIVS:
        return 6
    if ident in _FP_LONG:
        return 14
    return 1


def _is_self_branch(insn: capstone.CsInsn, start: int) -> bool:
    if insn.id != A.ARM_INS_B or insn.cc not in (A.ARM_CC_AL, A.ARM_CC_INVALID):
        return False
    ops = insn.operands
    return len(ops) == 1 and ops[0].type == A.ARM_OP_IMM and ops[0].imm == start


def block_cost(code: bytes, address: int) -> BlockCost:
    """Decode a block of Thumb code at ``address`` and price it.

    Every instruction counts once, including IT-block instructions whose condition fails (the
    core issues them too). Bytes that do not decode count as one 16-bit instruction each.
    """
    insns = list(disassembler().disasm(code, address))
    decoded = sum(insn.size for insn in insns)
    undecoded = max(0, len(code) - decoded) // 2
    cycles = sum(instruction_cycles(insn) for insn in insns) + undecoded
    idle = (
        bool(insns)
        and undecoded == 0
        and all(insn.id in _IDLE_OK for insn in insns)
        and _is_self_branch(insns[-1], address)
    )
    return BlockCost(len(insns) + undecoded, cycles, idle)


def price(instructions: Iterable[capstone.CsInsn]) -> int:
    """Sum of :func:`instruction_cycles` over decoded instructions."""
    return sum(instruction_cycles(insn) for insn in instructions)
