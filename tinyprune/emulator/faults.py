"""Faults and stops of an emulated run, reported the same way by every backend.

unicorn does not vector faults to the firmware: the unicorn backend detects them itself
(``checks.py``, memory and instruction errors) and builds a :class:`Fault`. On QEMU and on a real
board the firmware's fault handler prints ``@tp fault ...`` with the fault status registers and
the core registers; :func:`fault_from_line` turns that line into the same :class:`Fault`. A run
that stops without its end-of-run line (a fault, a branch-to-self, ``main`` returning, a limit)
raises :class:`FirmwareStopped` with the firmware's UART output so far.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import capstone
from capstone import arm_const as A

from tinyprune.emulator import checks
from tinyprune.emulator.cycles import disassembler
from tinyprune.errors import EmulationError

USAGE, BUS, MEMMANAGE, HARD = "UsageFault", "BusFault", "MemManage fault", "HardFault"
UART_TAIL_LINES = 20

# CFSR bit -> (fault, reason), in the order a report names them when several are set.
CFSR_BITS: tuple[tuple[int, str, str], ...] = (
    (16, USAGE, "undefined instruction"),
    (17, USAGE, "invalid state"),
    (18, USAGE, "invalid exception return"),
    (19, USAGE, "no coprocessor"),
    (24, USAGE, "unaligned access"),
    (25, USAGE, "divide by zero"),
    (0, MEMMANAGE, "instruction access violation"),
    (1, MEMMANAGE, "data access violation"),
    (4, MEMMANAGE, "stacking error"),
    (3, MEMMANAGE, "unstacking error"),
    (5, MEMMANAGE, "lazy FP stacking error"),
    (8, BUS, "instruction bus error"),
    (9, BUS, "precise data bus error"),
    (10, BUS, "imprecise data bus error"),
    (12, BUS, "stacking error"),
    (11, BUS, "unstacking error"),
    (13, BUS, "lazy FP stacking error"),
)
MMARVALID, BFARVALID = 1 << 7, 1 << 15
HFSR_VECTTBL, HFSR_DEBUGEVT = 1 << 1, 1 << 31
_FETCH_REASONS = ("instruction access violation", "instruction bus error", "invalid state")
XN_NOTE = "fetch from the execute-never peripheral, device or system region"
THUMB_NOTE = "execution in ARM state: a branch to an address without the Thumb bit"


@dataclass(frozen=True)
class Fault:
    """A fault as the core would raise it.

    Attributes:
        kind: ``UsageFault``, ``BusFault``, ``MemManage fault`` or ``HardFault``.
        reason: the fault status bit in words (``unaligned access``, ``divide by zero``, ...).
        pc: address of the faulting instruction.
        function: the ELF function holding ``pc`` (``?`` when none does).
        address: the faulting address (data or fetch) when the fault has one.
        instruction: the faulting instruction, disassembled.
        note: why it faults here (``CCR.UNALIGN_TRP is set``, ...).
        caller: ``<function> (lr 0x...)`` for faults where the pc itself says little.
    """

    kind: str
    reason: str
    pc: int
    function: str
    address: int | None = None
    instruction: str | None = None
    note: str | None = None
    caller: str | None = None

    def describe(self) -> str:
        """One line: ``UsageFault: unaligned access at address 0x...: `ldrd ...` (...); pc ...``."""
        text = f"{self.kind}: {self.reason}"
        if self.address is not None:
            text += f" at address 0x{self.address:08x}"
        if self.instruction:
            text += f": `{self.instruction}`"
        if self.note:
            text += f" ({self.note})"
        text += f"; pc 0x{self.pc:08x}, in function {self.function}"
        if self.caller:
            text += f", called from {self.caller}"
        return text


class FirmwareStopped(EmulationError):
    """Exit 1: the firmware faulted, parked, returned from ``main`` or ran past a limit.

    The message is one line saying why, then the last lines the firmware printed.

    Attributes:
        summary: the first line of the message.
        fault: the fault, when it was one.
        uart: everything the firmware printed until it stopped.
    """

    def __init__(self, message: str, uart: str, fault: Fault | None = None) -> None:
        super().__init__(message + uart_tail(uart))
        self.summary = message
        self.fault = fault
        self.uart = uart


def uart_tail(uart: str, lines: int = UART_TAIL_LINES) -> str:
    """The last lines of the UART output, indented, for an error message."""
    text = uart.rstrip("\n")
    if not text.strip():
        return "\nUART output so far: (none)"
    rows = text.splitlines()
    shown = rows[-lines:]
    head = f"last {len(shown)} of {len(rows)} lines" if len(rows) > len(shown) else "all"
    body = "\n".join(f"  | {row}" for row in shown)
    return f"\nUART output so far ({head}):\n{body}"


def insn_text(insn: capstone.CsInsn | None) -> str | None:
    """``mnemonic operands`` of a decoded instruction."""
    if insn is None:
        return None
    return f"{insn.mnemonic} {insn.op_str}".strip()


def decode_at(memory: Callable[[int, int], bytes | None], pc: int) -> capstone.CsInsn | None:
    """The instruction at ``pc`` (None when the memory holds none there)."""
    code = memory(pc, 4)
    if not code:
        return None
    return next(disassembler().disasm(code, pc), None)


def caller(
    lr: int,
    pc: int | None,
    memory: Callable[[int, int], bytes | None],
    function_at: Callable[[int], str],
    function_entry: Callable[[int], int | None] = lambda _pc: None,
) -> str | None:
    """``F (lr 0x...)`` when LR provably holds the return into a caller of the code at ``pc``:
    the instruction before it is a ``BL`` to that function's entry, or a ``BLX`` through a
    register. LR is often stale (it still points into a callee that returned): then None."""
    ret = lr & ~1
    call = decode_at(memory, ret - 4)
    target = None if pc is None else function_entry(pc)
    direct = (
        call is not None
        and call.size == 4
        and call.id == A.ARM_INS_BL
        and (target is None or call.operands[0].imm == target)
    )
    indirect = decode_at(memory, ret - 2)
    through_register = (
        indirect is not None and indirect.size == 2 and indirect.id == A.ARM_INS_BLX
    )
    if not (direct or through_register):
        return None
    return f"{function_at(ret)} (lr 0x{lr:08x})"


def unaligned_note(insn: capstone.CsInsn) -> str:
    """Why an unaligned access by ``insn`` faults."""
    if insn.id in checks.ALWAYS_ALIGNED:
        need = "word" if checks.ALWAYS_ALIGNED[insn.id] == checks.WORD else "halfword"
        name = insn.mnemonic.split(".")[0].upper()
        return f"{name} always needs {need} alignment on Armv7-M, whatever CCR.UNALIGN_TRP"
    return "CCR.UNALIGN_TRP is set"


def check_fault(
    check: checks.Check,
    insn: capstone.CsInsn,
    read: Callable[[int], int],
    function: str,
    has_fpu: bool,
) -> Fault:
    """The UsageFault of a failed :class:`checks.Check` (registers from ``read``)."""
    text = insn_text(insn)
    if check.always and check.expr is None:
        note = (
            "the FPU is disabled: CPACR does not grant CP10/CP11"
            if has_fpu
            else "this core has no FPU"
        )
        return Fault(USAGE, "no coprocessor", insn.address, function, None, text, note)
    assert check.expr is not None
    if check.mask == checks.DIVIDE:
        return Fault(
            USAGE, "divide by zero", insn.address, function, None, text, "CCR.DIV_0_TRP is set"
        )
    where, note = check.expr.value(read), unaligned_note(insn)
    return Fault(USAGE, "unaligned access", insn.address, function, where, text, note)


def _first_reason(cfsr: int) -> tuple[str, str] | None:
    for bit, kind, reason in CFSR_BITS:
        if cfsr & (1 << bit):
            return kind, reason
    return None


def _fields_int(fields: Mapping[str, str], key: str) -> int | None:
    try:
        return int(fields[key], 16) if key in fields else None
    except ValueError:
        return None


_LINE_REGS = {f"r{i}": A.ARM_REG_R0 + i for i in range(13)} | {
    "sp": A.ARM_REG_SP,
    "lr": A.ARM_REG_LR,
}


def fault_from_line(
    fields: Mapping[str, str],
    function_at: Callable[[int], str] = lambda _pc: "?",
    memory: Callable[[int, int], bytes | None] = lambda _a, _n: None,
    function_entry: Callable[[int], int | None] = lambda _pc: None,
) -> Fault:
    """Decode the fields of a ``@tp fault`` line (startup.c.j2) into a :class:`Fault`.

    ``function_at`` and ``memory`` come from the ELF when it is known (QEMU runs); without them
    (a real board's serial output) the fault still names its kind, reason, pc and address.
    """
    cfsr = _fields_int(fields, "cfsr") or 0
    pc = _fields_int(fields, "pc") or 0
    kind, reason = _first_reason(cfsr) or _hard_reason(fields)
    insn = decode_at(memory, pc) if pc else None
    address = _fault_address(cfsr, fields, reason, insn)
    note = _NOTES.get(reason)
    if reason == "precise data bus error" and insn is not None:
        note = f"{'write' if insn.id in checks.STORES else 'read'} where nothing answers"
    if reason in ("stacking error", "unstacking error") and pc == 0:
        reason, note = "stack overflow", "no exception frame could be pushed below the stack"
    elif reason == "unaligned access" and insn is not None:
        note = unaligned_note(insn)
    called_from = None
    lr = _fields_int(fields, "lr")
    if reason in _FETCH_REASONS:
        if lr is not None:
            called_from = caller(lr, None, memory, function_at, function_entry)
        if address is None and reason != "invalid state":
            address = pc  # a fetch fault's address is where the fetch went
    text = None if reason == "invalid state" else insn_text(insn)
    return Fault(kind, reason, pc, function_at(pc), address, text, note, called_from)


_NOTES = {
    "divide by zero": "CCR.DIV_0_TRP is set",
    "no coprocessor": "the FPU is disabled: CPACR does not grant CP10/CP11",
    "instruction access violation": XN_NOTE,
    "instruction bus error": "fetch from unmapped memory",
    "invalid state": THUMB_NOTE,
}


def _hard_reason(fields: Mapping[str, str]) -> tuple[str, str]:
    """A fault with no CFSR bit: a HardFault of its own, or an exception nobody handles."""
    hfsr = _fields_int(fields, "hfsr") or 0
    if fields.get("kind") == "unexpected":
        return HARD, "unexpected exception (SVCall, PendSV, SysTick or DebugMonitor)"
    if hfsr & HFSR_DEBUGEVT:
        return HARD, "breakpoint with no debugger attached"
    if hfsr & HFSR_VECTTBL:
        return HARD, "vector table read error"
    return HARD, f"{fields.get('kind', 'hard')} fault with no fault status bit set"


def _fault_address(
    cfsr: int, fields: Mapping[str, str], reason: str, insn: capstone.CsInsn | None
) -> int | None:
    if cfsr & BFARVALID and reason.endswith("bus error"):
        return _fields_int(fields, "bfar")
    if cfsr & MMARVALID and reason.startswith("data access"):
        return _fields_int(fields, "mmfar")
    if reason == "unaligned access" and insn is not None:
        regs = {reg: _fields_int(fields, name) for name, reg in _LINE_REGS.items()}
        expr = checks.address(insn)
        if expr is not None and all(regs.get(r) is not None for r, _ in expr.terms):
            return expr.value(lambda r: regs[r] or 0)
    return None
