"""Decoded instructions for the per-core cycle models: class, registers, memory operand, branch.

Every core model (``cycle_m7``, ``cycle_m4``, ``cycle_m0plus``) schedules a basic block of
:class:`Op` records. Decoding is done once per block (capstone) and the block's cost is cached by
the emulator, so nothing here runs per executed instruction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import capstone
from capstone import arm_const as A

from tinyprune.emulator.cycles import disassembler


class Kind(Enum):
    """Instruction classes the core models price differently."""

    ALU = "alu"
    DSP = "dsp"  # extend, pack, reverse, saturate, SIMD add/sub: the M7's older slot only
    MUL = "mul"  # multiply without accumulator
    MAC = "mac"  # multiply-accumulate (the accumulator may chain on the M7)
    LOAD = "load"
    LOAD2 = "load2"  # LDRD
    STORE = "store"
    STORE2 = "store2"  # STRD
    MULTI = "multi"  # LDM/STM/PUSH/POP and their VFP forms
    DIV = "div"
    FPLONG = "fplong"  # VDIV/VSQRT
    BRANCH = "branch"
    IT = "it"
    NOP = "nop"


_MAC = {
    "mla", "mls", "smlad", "smladx", "smlsd", "smlsdx", "smlabb", "smlabt", "smlatb", "smlatt",
    "smlawb", "smlawt", "smlal", "umlal", "smlald", "smlaldx", "smlsld", "smlsldx", "smlalbb",
    "smlalbt", "smlaltb", "smlaltt", "smmla", "smmlar", "smmls", "smmlsr", "usada8", "umaal",
}
_MUL = {
    "mul", "muls", "smull", "umull", "smulbb", "smulbt", "smultb", "smultt", "smulwb", "smulwt",
    "smuad", "smuadx", "smusd", "smusdx", "smmul", "smmulr", "usad8",
}
_DSP_PREFIXES = (
    "sxt", "uxt", "pkh", "rev", "rbit", "ssat", "usat", "qadd", "qsub", "qdadd", "qdsub", "qasx",
    "qsax", "sadd", "ssub", "uadd", "usub", "shadd", "shsub", "uhadd", "uhsub", "uqadd", "uqsub",
    "sasx", "ssax", "uasx", "usax", "shasx", "shsax", "uhasx", "uhsax", "uqasx", "uqsax", "sel",
)
_LOADS = {
    "ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrbt", "ldrht", "ldrsbt", "ldrsht",
    "ldrex", "ldrexb", "ldrexh", "lda", "ldab", "ldah", "vldr", "tbb", "tbh", "pld", "pli",
}
_STORES = {
    "str", "strb", "strh", "strt", "strbt", "strht", "strex", "strexb", "strexh", "stl", "stlb",
    "stlh", "vstr",
}
_MULTI = {
    "ldm", "ldmia", "ldmfd", "ldmdb", "ldmea", "stm", "stmia", "stmea", "stmdb", "stmfd", "push",
    "pop", "vpush", "vpop", "vldmia", "vldmdb", "vstmia", "vstmdb", "vldm", "vstm",
}
_NOPS = {"nop", "hint", "wfi", "wfe", "sev", "yield", "dmb", "dsb", "isb"}
_BRANCHES = {"b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh"}
_PC = A.ARM_REG_PC


@dataclass(frozen=True)
class Op:
    """One decoded instruction, as the core models see it.

    Attributes:
        address: where it sits.
        size: 2 or 4 bytes.
        kind: its class.
        mnemonic: the instruction's name without condition or width (``b`` for ``bne.w``).
        reads / writes: registers read and written (capstone ids, flags included).
        acc: the accumulator register(s) a MAC reads and writes (empty for others).
        base / disp: base register and immediate offset of a load/store (0 when none).
        nregs: registers moved by LDM/STM/PUSH/POP (0 for others).
        conditional: a conditional branch (Bcc, CBZ/CBNZ).
        target: the direct branch target, None when indirect or not a branch.
        writes_pc: the instruction changes the flow (branches, POP {pc}, LDR pc, ...).
    """

    address: int
    size: int
    kind: Kind
    mnemonic: str
    reads: frozenset[int]
    writes: frozenset[int]
    acc: frozenset[int] = frozenset()
    base: int = 0
    disp: int = 0
    nregs: int = 0
    conditional: bool = False
    target: int | None = None
    writes_pc: bool = False


def _kind(name: str, insn: capstone.CsInsn) -> Kind:
    if name in _MAC:
        return Kind.MAC
    if name in _MUL:
        return Kind.MUL
    if name in ("ldrd", "ldrexd"):
        return Kind.LOAD2
    if name in ("strd", "strexd"):
        return Kind.STORE2
    if name in _MULTI:
        return Kind.MULTI
    if name in ("tbb", "tbh"):
        return Kind.BRANCH
    if name in _LOADS:
        return Kind.LOAD
    if name in _STORES:
        return Kind.STORE
    if name in ("sdiv", "udiv"):
        return Kind.DIV
    if name in ("vdiv", "vsqrt"):
        return Kind.FPLONG
    if name in _BRANCHES:
        return Kind.BRANCH
    if insn.id == A.ARM_INS_IT:
        return Kind.IT
    if name in _NOPS:
        return Kind.NOP
    if name.startswith(_DSP_PREFIXES):
        return Kind.DSP
    return Kind.ALU


def _mnemonic(insn: capstone.CsInsn) -> str:
    return str(insn.insn_name()).lower()  # without condition code and width suffix


def _accumulators(name: str, insn: capstone.CsInsn) -> frozenset[int]:
    ops = insn.operands
    regs = [o.reg for o in ops if o.type == A.ARM_OP_REG]
    if name in ("smlal", "umlal", "smlald", "smlaldx", "smlsld", "smlsldx", "umaal") or (
        name.startswith("smlal")
    ):
        return frozenset(regs[:2])  # RdLo, RdHi are read and written
    return frozenset(regs[3:4])  # Ra


def _memory(insn: capstone.CsInsn) -> tuple[int, int]:
    for o in insn.operands:
        if o.type == A.ARM_OP_MEM:
            return o.mem.base, o.mem.disp
    return 0, 0


def _target(insn: capstone.CsInsn) -> int | None:
    imms = [o.imm for o in insn.operands if o.type == A.ARM_OP_IMM]
    return imms[-1] if imms else None


def decode_op(insn: capstone.CsInsn) -> Op:
    """The :class:`Op` of one capstone instruction (decoded with details)."""
    name = _mnemonic(insn)
    kind = _kind(name, insn)
    reads, writes = insn.regs_access()
    writes_pc = _PC in writes or kind is Kind.BRANCH
    memory = kind in (Kind.LOAD, Kind.LOAD2, Kind.STORE, Kind.STORE2)
    base, disp = _memory(insn) if memory else (0, 0)
    direct = kind is Kind.BRANCH and name in ("b", "bl", "cbz", "cbnz")
    return Op(
        address=insn.address,
        size=insn.size,
        kind=kind,
        mnemonic=name,
        reads=frozenset(reads),
        writes=frozenset(w for w in writes if w != _PC),
        acc=_accumulators(name, insn) if kind is Kind.MAC else frozenset(),
        base=base,
        disp=disp,
        nregs=_nregs(name, insn) if kind is Kind.MULTI else 0,
        conditional=writes_pc
        and (name in ("cbz", "cbnz") or insn.cc not in (A.ARM_CC_AL, A.ARM_CC_INVALID)),
        target=_target(insn) if direct else None,
        writes_pc=writes_pc,
    )


def _nregs(name: str, insn: capstone.CsInsn) -> int:
    regs = [o for o in insn.operands if o.type == A.ARM_OP_REG]
    with_base = not name.startswith(("push", "pop", "vpush", "vpop"))
    return max(1, len(regs) - (1 if with_base else 0))


def decode_block(code: bytes, address: int) -> tuple[list[Op], int]:
    """Decode a block: its ops and the number of 16-bit units that did not decode."""
    insns = list(disassembler().disasm(code, address))
    decoded = sum(insn.size for insn in insns)
    return [decode_op(i) for i in insns], max(0, len(code) - decoded) // 2
