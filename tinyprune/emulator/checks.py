"""Which instructions of a basic block can fault, and on which register values.

unicorn runs an unaligned ``LDRD``, a divide by zero with ``CCR.DIV_0_TRP`` set and FPU code with
the FPU disabled as if nothing happened; an Armv7-M core raises a UsageFault. Checking every memory
access from Python would cost ~30x in speed, so each basic block is decoded once (like its cycle
cost) into a :class:`BlockPlan`:

* the instructions that can fault under the current configuration (``CCR``, ``CPACR``):
  ``LDRD/STRD/LDM/STM/LDREX/STREX/VLDR/VSTR/VLDM/VSTM`` always need word alignment on Armv7-M,
  ``LDR/STR/LDRH/STRH/LDRSH/TBH`` only with ``CCR.UNALIGN_TRP``; ``SDIV/UDIV`` fault on a zero
  divisor with ``CCR.DIV_0_TRP``; any floating-point instruction faults with the FPU disabled;
* for each, the address (or divisor) as an affine function of the registers at the block's entry,
  found by a small symbolic pass over the instructions before it (moves, adds, subtracts, shifts
  left, write-back, literal loads). The check at run time is then a few register reads and
  integer operations at the block's entry, not a hook per instruction;
* instructions whose operand the block cannot tell (a base loaded from memory, a conditional
  write) are ``dynamic``: the backend hooks them one by one, and checks them with the exact
  registers just before they execute;
* ``unsafe_mask``: the registers a block may move by anything but a multiple of 4. The backend
  keeps the set of registers it knows to be word-aligned (read at a check, or computed from
  checked values) and drops the unsafe ones after each block; a block whose checks only ask
  for aligned registers it knows of (``simple``, ``need``) runs unchecked. A pointer stepping
  through an array in a loop is thus read once, on the loop's first pass.

Stack-pointer based accesses need no check: SP is always word-aligned on M-profile cores.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import capstone
from capstone import arm_const as A

MASK32 = 0xFFFFFFFF
WORD, HALF = 3, 1  # alignment masks
DIVIDE = -1  # the "mask" of a divide-by-zero check

CORE_REGS = frozenset({*range(A.ARM_REG_R0, A.ARM_REG_R12 + 1), A.ARM_REG_SP, A.ARM_REG_LR})
REG_BIT = {reg: 1 << n for n, reg in enumerate(sorted(CORE_REGS))}  # small masks, fast to OR
SP_BIT = REG_BIT[A.ARM_REG_SP]  # always set in a mask of aligned registers: SP[1:0] are zero

# Need word (or halfword) alignment whatever CCR.UNALIGN_TRP (Armv7-M ARM A3.2.1).
ALWAYS_ALIGNED: Mapping[int, int] = {
    A.ARM_INS_LDRD: WORD,
    A.ARM_INS_STRD: WORD,
    A.ARM_INS_LDM: WORD,
    A.ARM_INS_LDMDB: WORD,
    A.ARM_INS_STM: WORD,
    A.ARM_INS_STMDB: WORD,
    A.ARM_INS_LDREX: WORD,
    A.ARM_INS_STREX: WORD,
    A.ARM_INS_LDREXH: HALF,
    A.ARM_INS_STREXH: HALF,
    A.ARM_INS_VLDR: WORD,
    A.ARM_INS_VSTR: WORD,
    A.ARM_INS_VLDMIA: WORD,
    A.ARM_INS_VLDMDB: WORD,
    A.ARM_INS_VSTMIA: WORD,
    A.ARM_INS_VSTMDB: WORD,
}
# Unaligned accesses allowed unless CCR.UNALIGN_TRP is set.
TRAP_ALIGNED: Mapping[int, int] = {
    A.ARM_INS_LDR: WORD,
    A.ARM_INS_STR: WORD,
    A.ARM_INS_LDRT: WORD,
    A.ARM_INS_STRT: WORD,
    A.ARM_INS_LDRH: HALF,
    A.ARM_INS_STRH: HALF,
    A.ARM_INS_LDRSH: HALF,
    A.ARM_INS_LDRHT: HALF,
    A.ARM_INS_STRHT: HALF,
    A.ARM_INS_LDRSHT: HALF,
    A.ARM_INS_TBH: HALF,
}
DIVIDES = frozenset({A.ARM_INS_SDIV, A.ARM_INS_UDIV})
STORES = frozenset(
    {
        A.ARM_INS_STR,
        A.ARM_INS_STRB,
        A.ARM_INS_STRH,
        A.ARM_INS_STRD,
        A.ARM_INS_STRT,
        A.ARM_INS_STRBT,
        A.ARM_INS_STRHT,
        A.ARM_INS_STREX,
        A.ARM_INS_STREXB,
        A.ARM_INS_STREXH,
        A.ARM_INS_STM,
        A.ARM_INS_STMDB,
        A.ARM_INS_PUSH,
        A.ARM_INS_VSTR,
        A.ARM_INS_VSTMIA,
        A.ARM_INS_VSTMDB,
        A.ARM_INS_VPUSH,
    }
)
_DECREMENT_BEFORE = frozenset(
    {A.ARM_INS_LDMDB, A.ARM_INS_STMDB, A.ARM_INS_VLDMDB, A.ARM_INS_VSTMDB}
)
_MULTIPLE = frozenset(
    {
        A.ARM_INS_LDM,
        A.ARM_INS_STM,
        A.ARM_INS_VLDMIA,
        A.ARM_INS_VSTMIA,
        *_DECREMENT_BEFORE,
    }
)
_PUSH_POP = {A.ARM_INS_PUSH: -1, A.ARM_INS_POP: 1, A.ARM_INS_VPUSH: -1, A.ARM_INS_VPOP: 1}
_CONDITIONAL_AFTER_IT = 4  # instructions an IT block can cover


@dataclass(frozen=True)
class Config:
    """The core configuration the checks depend on.

    Attributes:
        unalign_trp: ``CCR.UNALIGN_TRP`` (bit 3): every unaligned word/halfword access faults.
        div_0_trp: ``CCR.DIV_0_TRP`` (bit 4): ``SDIV``/``UDIV`` by zero fault (else give 0).
        fpu_enabled: the core has an FPU and ``CPACR`` grants CP10/CP11.
    """

    unalign_trp: bool = False
    div_0_trp: bool = False
    fpu_enabled: bool = False


@dataclass(frozen=True)
class Expr:
    """``const + sum(coef * register)`` modulo 2**32, registers as capstone ``ARM_REG_*``."""

    const: int
    terms: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def of(reg: int) -> Expr:
        return Expr(0, ((reg, 1),))

    def plus(self, other: Expr, scale: int = 1) -> Expr:
        coefs = dict(self.terms)
        for reg, coef in other.terms:
            coefs[reg] = (coefs.get(reg, 0) + scale * coef) & MASK32
        terms = tuple(sorted((r, c) for r, c in coefs.items() if c))
        return Expr((self.const + scale * other.const) & MASK32, terms)

    def add(self, value: int) -> Expr:
        return Expr((self.const + value) & MASK32, self.terms)

    def times(self, factor: int) -> Expr:
        return Expr(0).plus(self, factor)

    def value(self, read: Callable[[int], int]) -> int:
        """The expression's value with register values from ``read``."""
        total = self.const
        for reg, coef in self.terms:
            total += coef * read(reg)
        return total & MASK32


@dataclass(frozen=True)
class Check:
    """An instruction that faults when ``expr`` (its address or divisor) is bad.

    ``mask``: alignment mask (3 or 1), or :data:`DIVIDE`; ``expr`` None: the block cannot tell.
    ``always``: faults whatever the registers (FPU instruction with the FPU disabled, a constant
    unaligned address).
    """

    pc: int
    mask: int
    expr: Expr | None
    always: bool = False

    def violated(self, read: Callable[[int], int]) -> bool:
        """Whether the instruction faults with register values from ``read``."""
        if self.always:
            return True
        assert self.expr is not None
        value = self.expr.value(read)
        return value == 0 if self.mask == DIVIDE else bool(value & self.mask)


# pcs (one outcome), mask, const, ((slot, coef), ...)
RuntimeCheck = tuple[tuple[int, ...], int, int, tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class BlockPlan:
    """What the backend checks when a block is entered; see the module docstring.

    Attributes:
        regs: registers read at the block's entry (capstone ids).
        loads: words read from memory at the block's entry, each ``(const, ((index, coef), ...))``
            over ``regs``; their values follow the registers' in the value list.
        runtime: ``(pcs, mask, const, ((index into the values, coef), ...))`` per check; the
            pcs share the outcome (same registers, same residue) and are checked once.
        predicted: pcs that fault whatever the registers (the backend confirms them exactly).
        dynamic: pcs the block cannot tell; the backend hooks them.
        need: registers (:data:`REG_BIT` mask) that must be word-aligned at the entry for
            every check to pass, when that is all the checks ask (``simple``).
        reg_bits: the :data:`REG_BIT` of each of ``regs``.
        simple: every ``runtime`` check is "this register plus a multiple of 4 is aligned", so
            the backend may skip them when it knows the registers in ``need`` are aligned.
        finals: ``(bit, slot, const)``: a register that leaves the block as ``value[slot] +
            const``; after a full check its alignment at the block's end is known.
    """

    regs: tuple[int, ...] = ()
    loads: tuple[tuple[int, tuple[tuple[int, int], ...]], ...] = ()
    runtime: tuple[RuntimeCheck, ...] = ()
    predicted: tuple[int, ...] = ()
    dynamic: tuple[int, ...] = ()
    need: int = 0
    reg_bits: tuple[int, ...] = ()
    simple: bool = False
    finals: tuple[tuple[int, int, int], ...] = ()
    instructions: Mapping[int, capstone.CsInsn] = field(default_factory=dict, compare=False)


class _State:
    """Register values as expressions of the values at the block's entry (None: unknown).

    A word loaded from memory before any store of the block is a value too: atom ``-1 - i``
    stands for the word at ``loads[i]`` (an address over entry registers) at the block's entry.
    """

    def __init__(self) -> None:
        self.known: dict[int, Expr | None] = {}
        self.loads: list[Expr] = []
        self.stored = False  # a store ran: memory may differ from the block's entry

    def load(self, addr: Expr | None) -> Expr | None:
        """The value of the word at ``addr`` as of the block's entry, while that is knowable."""
        if addr is None or self.stored or any(atom < 0 for atom, _ in addr.terms):
            return None
        if addr not in self.loads:
            self.loads.append(addr)
        return Expr.of(-1 - self.loads.index(addr))

    def get(self, reg: int) -> Expr | None:
        if reg not in CORE_REGS:
            return None
        return self.known[reg] if reg in self.known else Expr.of(reg)

    def set(self, reg: int, value: Expr | None) -> None:
        if reg in CORE_REGS:
            self.known[reg] = value


def is_fpu(insn: capstone.CsInsn) -> bool:
    """A floating-point (CP10/CP11) instruction: every Thumb mnemonic starting with ``v``."""
    return bool(insn.mnemonic.startswith("v"))


def _pc_value(insn: capstone.CsInsn, aligned: bool) -> int:
    value = insn.address + 4
    return value & ~3 if aligned else value


def _operand(insn: capstone.CsInsn, op: capstone.arm.ArmOp, st: _State) -> Expr | None:
    if op.type == A.ARM_OP_IMM:
        return Expr(op.imm & MASK32)
    if op.type != A.ARM_OP_REG:
        return None
    base = Expr(_pc_value(insn, aligned=False)) if op.reg == A.ARM_REG_PC else st.get(op.reg)
    if base is None or op.shift.type == A.ARM_SFT_INVALID:
        return base
    if op.shift.type == A.ARM_SFT_LSL:
        return base.times(1 << op.shift.value)
    return None


def _alu(insn: capstone.CsInsn, st: _State) -> Expr | None:
    """The value an ALU instruction writes to its first operand (None: not modelled)."""
    ops, ident = insn.operands, insn.id
    if ident in (A.ARM_INS_MOV, A.ARM_INS_MOVW) and len(ops) == 2:
        return _operand(insn, ops[1], st)
    if ident == A.ARM_INS_MVN and len(ops) == 2:
        src = _operand(insn, ops[1], st)
        return None if src is None else src.times(-1).add(-1)
    if ident == A.ARM_INS_MOVT and len(ops) == 2:
        old = st.get(ops[0].reg)
        if old is None or old.terms:
            return None
        return Expr((old.const & 0xFFFF) | ((ops[1].imm & 0xFFFF) << 16))
    if ident == A.ARM_INS_ADR and len(ops) == 2:
        return Expr((_pc_value(insn, aligned=True) + ops[1].imm) & MASK32)
    if ident in (A.ARM_INS_ADD, A.ARM_INS_ADDW, A.ARM_INS_SUB, A.ARM_INS_SUBW, A.ARM_INS_RSB):
        return _add_sub(insn, st)
    if ident == A.ARM_INS_LSL and len(ops) == 3 and ops[2].type == A.ARM_OP_IMM:
        src = _operand(insn, ops[1], st)
        return None if src is None else src.times(1 << ops[2].imm)
    return None


def _add_sub(insn: capstone.CsInsn, st: _State) -> Expr | None:
    ops, ident = insn.operands, insn.id
    first, second = (ops[0], ops[1]) if len(ops) == 2 else (ops[1], ops[2])
    if first.type == A.ARM_OP_REG and first.reg == A.ARM_REG_PC and second.type == A.ARM_OP_IMM:
        left: Expr | None = Expr(_pc_value(insn, aligned=True))  # ADR written as ADD/SUB
    else:
        left = _operand(insn, first, st)
    right = _operand(insn, second, st)
    if left is None or right is None:
        return None
    if ident == A.ARM_INS_RSB:
        return right.plus(left, -1)
    return left.plus(right, -1 if ident in (A.ARM_INS_SUB, A.ARM_INS_SUBW) else 1)


def _memory_operand(insn: capstone.CsInsn) -> capstone.arm.ArmOp | None:
    return next((op for op in insn.operands if op.type == A.ARM_OP_MEM), None)


def _transfer_bytes(insn: capstone.CsInsn, regs: Iterable[capstone.arm.ArmOp]) -> int:
    return sum(8 if insn.reg_name(op.reg).startswith("d") else 4 for op in regs)


def address(insn: capstone.CsInsn, st: _State | None = None) -> Expr | None:
    """The (lowest) address an access instruction uses, from the registers before it."""
    st = st if st is not None else _State()
    mem = _memory_operand(insn)
    if mem is None:  # LDM/STM family: base register first, then the list
        if insn.id not in _MULTIPLE:
            return None
        base = st.get(insn.operands[0].reg)
        if base is None or insn.id not in _DECREMENT_BEFORE:
            return base
        return base.add(-_transfer_bytes(insn, insn.operands[1:]))
    if mem.mem.base == A.ARM_REG_PC:
        start: Expr | None = Expr(_pc_value(insn, aligned=insn.id not in (A.ARM_INS_TBH,)))
    else:
        start = st.get(mem.mem.base)
    if start is None or insn.post_index:
        return start
    addr = start.add(mem.mem.disp)
    if mem.mem.index:
        index = st.get(mem.mem.index)
        if index is None:
            return None
        shift = mem.shift.value if mem.shift.type == A.ARM_SFT_LSL else mem.mem.lshift
        addr = addr.plus(index, (-1 if mem.subtracted else 1) << shift)
    return addr


def _divisor(insn: capstone.CsInsn, st: _State) -> Expr | None:
    ops = insn.operands
    return _operand(insn, ops[2] if len(ops) == 3 else ops[1], st)


def checks_of(insn: capstone.CsInsn, config: Config, st: _State | None = None) -> list[Check]:
    """What can make ``insn`` fault under ``config`` (operands as of the state ``st``)."""
    st = st if st is not None else _State()
    if is_fpu(insn) and not config.fpu_enabled:
        return [Check(insn.address, 0, None, always=True)]
    mask = ALWAYS_ALIGNED.get(insn.id)
    if mask is None and config.unalign_trp:
        mask = TRAP_ALIGNED.get(insn.id)
    if mask is not None:
        return [Check(insn.address, mask, address(insn, st))]
    if config.div_0_trp and insn.id in DIVIDES:
        return [Check(insn.address, DIVIDE, _divisor(insn, st))]
    return []


def _writeback(insn: capstone.CsInsn, st: _State) -> tuple[int, Expr | None] | None:
    """(base register, its new value) of an instruction that updates its base."""
    if insn.id in _PUSH_POP:
        sp = st.get(A.ARM_REG_SP)
        moved = _PUSH_POP[insn.id] * _transfer_bytes(insn, insn.operands)
        return A.ARM_REG_SP, None if sp is None else sp.add(moved)
    if not insn.writeback:
        return None
    mem = _memory_operand(insn)
    if mem is None:
        if insn.id not in _MULTIPLE:
            return None
        base_reg = insn.operands[0].reg
        size = _transfer_bytes(insn, insn.operands[1:])
        delta = -size if insn.id in _DECREMENT_BEFORE else size
    else:
        base_reg = mem.mem.base
        post = insn.operands[-1]
        delta = post.imm if insn.post_index and post.type == A.ARM_OP_IMM else mem.mem.disp
        if insn.post_index and post.type != A.ARM_OP_IMM:
            return base_reg, None
    base = st.get(base_reg)
    return base_reg, None if base is None else base.add(delta)


def _literal(insn: capstone.CsInsn, read_word: Callable[[int], int | None]) -> Expr | None:
    mem = _memory_operand(insn)
    if insn.id != A.ARM_INS_LDR or mem is None or mem.mem.base != A.ARM_REG_PC or mem.mem.index:
        return None
    value = read_word((_pc_value(insn, aligned=True) + mem.mem.disp) & MASK32)
    return None if value is None else Expr(value)


def transfer(
    insn: capstone.CsInsn,
    st: _State,
    conditional: bool,
    read_word: Callable[[int], int | None],
) -> None:
    """Update ``st`` with the core registers ``insn`` writes."""
    written = [reg for reg in insn.regs_access()[1] if reg in CORE_REGS]
    if conditional:
        for reg in written:
            st.set(reg, None)
        return
    new: dict[int, Expr | None] = {}
    wb = _writeback(insn, st)
    if wb is not None:
        new[wb[0]] = wb[1]
    ops = insn.operands
    if ops and ops[0].type == A.ARM_OP_REG and ops[0].reg in CORE_REGS:
        value = _alu(insn, st)
        if value is None:
            value = _literal(insn, read_word)
        if value is not None:
            new[ops[0].reg] = value
        elif insn.id in (A.ARM_INS_LDR, A.ARM_INS_LDRD):
            _loaded(insn, st, new)
    for reg in written:
        st.set(reg, new.get(reg))
    if insn.id in STORES:
        st.stored = True


def _loaded(insn: capstone.CsInsn, st: _State, new: dict[int, Expr | None]) -> None:
    """``LDR``/``LDRD`` of words the block has not stored to: values as of the block's entry."""
    mem = _memory_operand(insn)
    if mem is None:
        return
    addr = address(insn, st)
    dests = insn.operands[:2] if insn.id == A.ARM_INS_LDRD else insn.operands[:1]
    for offset, op in zip((0, 4), dests, strict=False):
        if op.type == A.ARM_OP_REG and op.reg != mem.mem.base:
            new[op.reg] = st.load(None if addr is None else addr.add(offset))


def _reduce(check: Check) -> Check | None:
    """Drop terms that cannot change the outcome; None when the check can never fail."""
    if check.always or check.expr is None:
        return check
    expr = check.expr
    if check.mask != DIVIDE:  # SP is word-aligned; coefficients that are multiples drop out
        modulus = check.mask + 1
        keep = tuple(
            (r, c) for r, c in expr.terms if r != A.ARM_REG_SP and c % modulus
        )
        expr = Expr(expr.const, keep)
    if not expr.terms:
        failing = expr.const == 0 if check.mask == DIVIDE else bool(expr.const & check.mask)
        return Check(check.pc, check.mask, expr, always=True) if failing else None
    return Check(check.pc, check.mask, expr)


def _simple(mask: int, const: int, terms: tuple[tuple[int, int], ...], regs: list[int]) -> bool:
    """``register + (multiple of 4)`` must be aligned: true when the register is."""
    if mask == DIVIDE or const & 3 or len(terms) != 1:
        return False
    index, coef = terms[0]
    return index < len(regs) and coef & 3 == 1


def _finals(st: _State, slot: Mapping[int, int]) -> tuple[tuple[int, int, int], ...]:
    """Registers that leave the block as one checked value plus a constant."""
    found = []
    for reg in sorted(CORE_REGS):
        after = st.get(reg)
        if after is not None and len(after.terms) == 1:
            atom, coef = after.terms[0]
            if coef == 1 and atom in slot:
                found.append((REG_BIT[reg], slot[atom], after.const))
    return tuple(found)


def unsafe_mask(final: _State) -> int:
    """The core registers a block may leave at another value modulo 4 (:data:`REG_BIT` bits).

    Every alignment check depends on its registers modulo 4 only (SP is always word-aligned),
    so a check that passed stays passed while the blocks run in between move its registers by
    multiples of 4 (a pointer stepping through an array). Everything else (a load, a
    conditional write, an odd step) makes the register unsafe.
    """
    mask = 0
    for reg in CORE_REGS - {A.ARM_REG_SP}:
        after = final.get(reg)
        if after is None or after.terms != ((reg, 1),) or after.const & 3:
            mask |= REG_BIT[reg]
    return mask


@dataclass(frozen=True)
class BlockFacts:
    """What the backend keeps of one block: its checks (None: nothing in it can fault), its
    :func:`unsafe_mask` and its :func:`sp_step`."""

    plan: BlockPlan | None
    unsafe: int
    sp_step: int | None


def plan_block(
    insns: list[capstone.CsInsn],
    config: Config,
    read_word: Callable[[int], int | None],
    starts_in_it_block: bool = False,
    exact: frozenset[int] | set[int] = frozenset(),
) -> BlockFacts:
    """The checks of one block, the registers it may misalign and how it moves SP.

    Args:
        insns: the block's instructions, in order.
        config: CCR / CPACR state.
        read_word: reads a constant word (literal pools in flash); None if not constant.
        starts_in_it_block: the block starts inside an IT block (its first instructions are
            conditional although capstone cannot see it).
        exact: pcs the backend already checks with an exact hook (left out of the plan).
    """
    st = _State()
    found: list[Check] = []
    for index, insn in enumerate(insns):
        if insn.address not in exact:
            found.extend(checks_of(insn, config, st))
        conditional = insn.cc not in (A.ARM_CC_AL, A.ARM_CC_INVALID) or (
            starts_in_it_block and index < _CONDITIONAL_AFTER_IT
        )
        transfer(insn, st, conditional, read_word)
    unsafe, step = unsafe_mask(st), sp_step(st)
    reduced = [c for c in map(_reduce, found) if c is not None]
    if not reduced:
        return BlockFacts(None, unsafe, step)
    regs: list[int] = []
    runtime: list[RuntimeCheck] = []
    used_loads = sorted(
        {-1 - atom for c in reduced if c.expr is not None for atom, _ in c.expr.terms if atom < 0}
    )
    for index in used_loads:  # their address registers are read first
        for reg, _coef in st.loads[index].terms:
            if reg not in regs:
                regs.append(reg)
    direct = [
        reg
        for c in reduced
        if c.expr is not None and not c.always
        for reg, _ in c.expr.terms
        if reg >= 0
    ]
    for reg in direct:
        if reg not in regs:
            regs.append(reg)
    slot = {reg: i for i, reg in enumerate(regs)}
    slot |= {-1 - index: len(regs) + n for n, index in enumerate(used_loads)}
    loads = tuple(
        (st.loads[index].const, tuple((slot[r], c) for r, c in st.loads[index].terms))
        for index in used_loads
    )
    merged: dict[tuple[tuple[tuple[int, int], ...], int, int], list[int]] = {}  # one outcome
    for check in reduced:
        if check.always or check.expr is None:
            continue
        terms = tuple((slot[atom], coef) for atom, coef in check.expr.terms)
        residue = check.expr.const if check.mask == DIVIDE else check.expr.const & check.mask
        merged.setdefault((terms, check.mask, residue), []).append(check.pc)
    for (terms, mask, residue), pcs in merged.items():
        runtime.append((tuple(pcs), mask, residue, terms))
    by_pc = {insn.address: insn for insn in insns}
    predicted = tuple(c.pc for c in reduced if c.always)
    plan = BlockPlan(
        regs=tuple(regs),
        runtime=tuple(runtime),
        predicted=predicted,
        dynamic=tuple(c.pc for c in reduced if c.expr is None and not c.always),
        loads=loads,
        need=sum(REG_BIT[regs[t[0][0]]] for _p, m, c, t in runtime if _simple(m, c, t, regs)),
        reg_bits=tuple(REG_BIT[reg] for reg in regs),
        simple=not predicted and all(_simple(m, c, t, regs) for _p, m, c, t in runtime),
        finals=_finals(st, slot),
        instructions={c.pc: by_pc[c.pc] for c in reduced},
    )
    return BlockFacts(plan, unsafe, step)


CompiledChecks = Callable[[Callable[[], int], int], "int | tuple[int, ...]"]
Memory = Sequence[tuple[int, int, object]]  # (origin, last word address, buffer)


def sp_step(final: _State) -> int | None:
    """How much a block moves SP (None: by an amount it cannot tell)."""
    after = final.get(A.ARM_REG_SP)
    if after is None or after.terms != ((A.ARM_REG_SP, 1),):
        return None
    return after.const - (1 << 32) if after.const & 0x80000000 else after.const


class _Source:
    """Python source of one block's checks (see :func:`compile_checks`)."""

    def __init__(self, plan: BlockPlan, memory: Memory) -> None:
        self.plan, self.memory = plan, memory
        self.lines = ["def check(sp, aligned):", "    new = aligned"]
        self.namespace: dict[str, object] = {"unpack": struct.Struct("<I").unpack_from}
        self.read: set[int] = set()  # slots holding a value

    def value(self, slot: int, learn: bool = True) -> None:
        """Load slot ``slot`` (a register or a word of memory) into ``v<slot>``."""
        if slot in self.read:
            return
        self.read.add(slot)
        plan, regs = self.plan, self.plan.regs
        if slot < len(regs):
            source = "sp()" if regs[slot] == A.ARM_REG_SP else f"reg({regs[slot]})"
            self.lines.append(f"    v{slot} = {source}")
            if learn and regs[slot] != A.ARM_REG_SP:
                self.lines.append(f"    if not v{slot} & 3:")
                self.lines.append(f"        new |= {REG_BIT[regs[slot]]}")
            return
        const, terms = plan.loads[slot - len(regs)]
        for index, _coef in terms:
            self.value(index)
        self.lines.append(f"    a = ({_sum(const, terms)}) & {MASK32}")
        for k, (origin, last, buffer) in enumerate(self.memory):
            self.namespace[f"MEM{k}"] = buffer
            self.lines.append(f"    {'if' if k == 0 else 'elif'} {origin} <= a <= {last}:")
            self.lines.append(f"        v{slot} = unpack(MEM{k}, a - {origin})[0]")
        self.lines.append("    else:" if self.memory else "    if True:")
        self.lines.append("        return EVERY")

    def fail_if(self, test: str, pcs: tuple[int, ...], indent: str = "    ") -> None:
        name = f"PCS{len(self.namespace)}"
        self.namespace[name] = pcs
        self.lines.append(f"{indent}if {test}:")
        self.lines.append(f"{indent}    return {name}")


def compile_checks(
    plan: BlockPlan, read_reg: Callable[[int], int], memory: Memory, keep: int
) -> CompiledChecks:
    """The ``runtime`` checks of ``plan`` as one Python function, for speed.

    The function ``check(sp, aligned)`` takes a function giving SP (the backend tracks it)
    and the registers known to be aligned (:data:`REG_BIT` mask); it skips the "this
    register is aligned" checks it already knows the answer of and reads only the registers
    the others need. It returns the registers known aligned after the block (``keep`` is the
    block's ``~unsafe_mask``) when every check passes, or the pcs of the first check that fails
    (a tuple). A load outside ``memory`` (``(origin, last word address, buffer)`` of flash and
    RAM; reading a peripheral could have side effects) fails every check of the block.

    Blocks with checks run hundreds of thousands of times, and each call into unicorn costs
    about a microsecond: generated straight-line code that reads as little as it can is several
    times cheaper than a loop over the plan (the technique of :mod:`dataclasses`).
    """
    src = _Source(plan, memory)
    src.namespace |= {"reg": read_reg, "EVERY": tuple(pc for p, *_ in plan.runtime for pc in p)}
    regs, simple = plan.regs, []
    for pcs, mask, const, terms in plan.runtime:
        if _simple(mask, const, terms, list(regs)):
            simple.append((pcs, terms[0][0]))
            continue
        for index, _coef in terms:
            src.value(index)
        total = _sum(const, terms)
        test = f"not ({total}) & {MASK32}" if mask == DIVIDE else f"({total}) & {mask}"
        src.fail_if(test, pcs)
    for pcs, slot in simple:  # "register + 4k is aligned": skipped when the register is known
        bit = REG_BIT[regs[slot]]
        if slot in src.read:
            src.fail_if(f"v{slot} & 3", pcs)
            continue
        src.lines.append(f"    if not aligned & {bit}:")
        src.lines.append(f"        v{slot} = reg({regs[slot]})")
        src.fail_if(f"v{slot} & 3", pcs, indent="        ")
        src.lines.append(f"        new |= {bit}")
    src.lines.append(f"    after = new & {keep}")
    for bit, slot, const in plan.finals:
        if slot in src.read and (slot >= len(regs) or regs[slot] != A.ARM_REG_SP):
            src.lines.append(f"    if not (v{slot} + {const}) & 3:")
            src.lines.append(f"        after |= {bit}")
        elif slot < len(regs) and not const & 3:  # known aligned at the entry, moved by 4k
            src.lines.append(f"    if new & {REG_BIT[regs[slot]]}:")
            src.lines.append(f"        after |= {bit}")
    src.lines.append("    return after")
    exec("\n".join(src.lines), src.namespace)  # generated from integers and names only
    return src.namespace["check"]  # type: ignore[return-value]


def _sum(const: int, terms: tuple[tuple[int, int], ...]) -> str:
    parts = [str(const)] + [f"v{index}" if c == 1 else f"{c} * v{index}" for index, c in terms]
    return " + ".join(parts)
