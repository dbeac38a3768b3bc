"""Run a firmware ELF on unicorn with the board's exact memory map, faulting like the core.

Flash (read/execute) and RAM are mapped exactly as the board file says; the peripherals the BSP
touches are register models (``peripherals.py``). unicorn does not vector faults to the firmware
and lets unaligned ``LDRD``, trapped divides and disabled-FPU code run on, so the runner finds
the faults itself and reports them as the core would raise them (``faults.py``):

* each basic block is decoded once, like its cycle cost, into the checks it needs
  (``checks.py``); they run at the block's entry from a few register values, and only on the
  first pass of a loop;
* an instruction whose operand the block cannot tell gets an exact code hook;
* a predicted fault is confirmed exactly: the block is restarted with a code hook on the
  instruction, so the fault is raised with the registers, UART output and counts of that point;
* memory errors become BusFaults / MemManage faults, unicorn's instruction errors UsageFaults.

A branch-to-self loop or a return from ``main`` before the harness's ``@tp end`` line is an
error; so is a run past its instruction budget (``limits.py``) or its wall-clock limit.
Instructions are counted per basic block (exact, IT blocks included) and priced with the shared
cycle model; DWT CYCCNT is served from that model.
"""

from __future__ import annotations

import ctypes
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import capstone
import unicorn as uc_mod
from unicorn import arm_const as R

from tinyprune.emulator import checks, faults
from tinyprune.emulator.cycle_models import CycleModel, model_for, unicorn_register_reader
from tinyprune.emulator.cycles import BlockCost, disassembler
from tinyprune.emulator.elf import (
    ElfImage,
    check_fits,
    layer_calls,
    main_return_addresses,
    prints_harness_lines,
)
from tinyprune.emulator.faults import BUS, HARD, MEMMANAGE, USAGE, Fault, FirmwareStopped
from tinyprune.emulator.limits import Budget, Limits
from tinyprune.emulator.peripherals import (
    CCR_DIV_0_TRP,
    CCR_UNALIGN_TRP,
    CPACR_CP10_ENABLED,
    Peripheral,
    Scs,
    peripherals_for,
)
from tinyprune.emulator.result import RegionStats, RunResult
from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board, MemoryRegion

log = logging.getLogger(__name__)

CPU_MODELS = {
    "cortex-m4": R.UC_CPU_ARM_CORTEX_M4,
    "cortex-m7": R.UC_CPU_ARM_CORTEX_M7,
    "cortex-m3": R.UC_CPU_ARM_CORTEX_M3,
    "cortex-m0plus": R.UC_CPU_ARM_CORTEX_M0,
    "cortex-m33": R.UC_CPU_ARM_CORTEX_M33,
}
END_GRACE_INSTRUCTIONS = 100_000
WALL_CHECK_INSTRUCTIONS = 2_000_000  # the wall clock is read this often
_NEVER = 0xFFFFFFFE
_END_RE = re.compile(r"^@tp end status=(-?\d+)")
_EXCP_BKPT = 7
_EXCP_FAULTS = {  # unicorn (QEMU) exception number -> the fault the core raises
    1: (USAGE, "undefined instruction"),
    2: (HARD, "unexpected exception (SVCall)"),
    4: (BUS, "precise data bus error"),
    17: (USAGE, "no coprocessor"),
    18: (USAGE, "invalid state"),
    22: (USAGE, "unaligned access"),
}
_XPSR_THUMB = 1 << 24
_SEMIHOST_WRITEC, _SEMIHOST_WRITE0, _SEMIHOST_WRITE = 0x03, 0x04, 0x05
_SEMIHOST_EXIT, _SEMIHOST_EXIT_EXTENDED = 0x18, 0x20
_ADP_APPLICATION_EXIT = 0x20026
_END_LINE = "the end-of-run line '@tp end'"

Event = Callable[[int], bool]  # run at a block's entry; True: the run stopped there
# size, instructions, cost (of the cycle model), registers it keeps aligned (~checks.unsafe_mask),
# registers that must be known aligned to skip its checks (NEVER_SKIP: the checks always run),
# the rare work of the block (SP move, event; None for most blocks), plan, compiled checks, and
# the memory epoch its cost was priced in (-1: its cost does not depend on the registers).
# A flat tuple: _on_block runs for every block executed and attribute reads cost.
Entry = tuple[
    int,
    int,
    BlockCost,
    int,
    int,
    Event | None,
    checks.BlockPlan | None,
    checks.CompiledChecks | None,
    int,
]
SP_LOST = 1  # no SP move is odd: marks "the block moves SP by an unknown amount"
NEVER_SKIP = 1 << len(checks.REG_BIT)  # a bit no register has


@dataclass
class _Frame:
    name: str
    ret: int
    sp: int
    instructions: int
    cycles: int


def _raw_library() -> object | None:
    """unicorn's C library handle (its Python wrapper costs several times the call itself)."""
    try:
        from unicorn.unicorn_py3.unicorn import uclib
    except ImportError:
        return None
    return uclib


def _register_reader(uc: uc_mod.Uc) -> Callable[[int], int]:
    """A fast reader of one 32-bit register (capstone and unicorn ARM ids coincide; see below).

    unicorn's ``reg_read`` spends most of its time in Python dispatch; the raw library call is
    several times cheaper, and the checks read registers on hot paths.
    """
    lib = _raw_library()
    if lib is None or not hasattr(uc, "_uch"):
        return lambda reg: int(uc.reg_read(reg))
    handle, raw, value = uc._uch, lib.uc_reg_read, ctypes.c_uint32()  # type: ignore[attr-defined]
    ref = ctypes.byref(value)

    def read(reg: int) -> int:
        raw(handle, reg, ref)
        return value.value

    return read


assert capstone.arm_const.ARM_REG_R0 == R.UC_ARM_REG_R0 and capstone.arm_const.ARM_REG_SP == (
    R.UC_ARM_REG_SP
), "capstone and unicorn number the ARM registers alike"


class _Run:
    """State of one emulation; the hooks are its methods."""

    def __init__(
        self,
        board: Board,
        image: ElfImage,
        regions: Sequence[str],
        limits: Limits,
        stop_on_end_line: bool,
        on_line: Callable[[str], None] | None = None,
        cycle_model: CycleModel | None = None,
    ) -> None:
        self.board, self.image = board, image
        self.model = cycle_model or model_for(board, "table")
        self.last_cost = BlockCost(0, 0, False)
        self.on_line = on_line
        self.stop_on_end_line = stop_on_end_line
        self.budget = Budget(limits, prints_harness_lines(image))
        self.instructions = 0
        self.cycles = 0
        self.fallthrough = -1
        self.limit = 0
        self.aligned = checks.SP_BIT  # registers known to be word-aligned here (REG_BIT bits)
        self.sp: int | None = None  # SP at the current block's entry, when known
        self.blocks: dict[int, Entry] = {}
        self.exact: dict[int, capstone.CsInsn] = {}
        self.exact_checks: dict[int, list[checks.Check]] = {}  # for the current config
        self.epoch = 0  # hooks added so far
        self.hooked: dict[int, int] = {}  # pc -> epoch its exact hook was added at
        self.translated: dict[int, int] = {}  # block -> epoch it was last translated at
        self.main_returns = main_return_addresses(image)
        # Each kernel call from tp_model_invoke starts a memory epoch: blocks whose memory cost
        # depends on their pointers are priced again in it (one layer's weights in DTCM, the
        # next one's in flash, through the same kernel code).
        self.reprice_at = layer_calls(image)
        self.mem_epoch = 0
        self.priced: dict[tuple[int, tuple[bool, ...]], BlockCost] = {}  # by pointer regions
        self.uart = bytearray()
        self.line_start = 0
        self.end_status: int | None = None
        self.end_deadline: int | None = None
        self.stop_reason: str | None = None
        self.exit_status: int | None = None
        self.error: str | None = None
        self.fault: Fault | None = None
        self.entries = {image.function_address(name): name for name in regions}
        self.frames: list[_Frame] = []
        self.stats = {name: [0, 0, 0] for name in regions}
        self.scs: Scs | None = None
        self.config = checks.Config()
        self.config_dirty = True
        self.flash_buf: ctypes.Array[ctypes.c_ubyte] | None = None
        self.ram_buf: ctypes.Array[ctypes.c_ubyte] | None = None
        self.tcm_bufs: list[tuple[MemoryRegion, ctypes.Array[ctypes.c_ubyte]]] = []
        self.uc = self._machine()
        flash, ram = board.flash, board.ram
        self.plain: checks.Memory = (
            (ram.origin, ram.end - 4, self.ram_buf),
            (flash.origin, flash.end - 4, self.flash_buf),
            *((r.origin, r.end - 4, buf) for r, buf in self.tcm_bufs),
        )
        self.reg = _register_reader(self.uc)
        self.entry_reg = unicorn_register_reader(self.uc)
        self._update_limit()

    # ---- setup -----------------------------------------------------------------------------
    def _machine(self) -> uc_mod.Uc:
        model = CPU_MODELS.get(self.board.core)
        if model is None:
            raise UsageError(
                f"board {self.board.name}: core {self.board.core} is not supported "
                f"by the unicorn backend; supported: {', '.join(CPU_MODELS)}"
            )
        uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB)
        uc.ctl_set_cpu_model(model)  # before any mapping (FACTS.md)
        flash, ram = self.board.flash, self.board.ram
        # Our own buffers: the checks read memory words without a call into unicorn.
        self.flash_buf = (ctypes.c_ubyte * flash.length)()
        self.ram_buf = (ctypes.c_ubyte * ram.length)()
        rx = uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC
        uc.mem_map_ptr(flash.origin, flash.length, rx, ctypes.addressof(self.flash_buf))
        uc.mem_map_ptr(ram.origin, ram.length, uc_mod.UC_PROT_ALL, ctypes.addressof(self.ram_buf))
        for tcm in (self.board.itcm, self.board.dtcm):  # a DTCM inside RAM is mapped with it
            if tcm is not None and not ram.contains(tcm.origin):
                buf = (ctypes.c_ubyte * tcm.length)()
                self.tcm_bufs.append((tcm, buf))
                uc.mem_map_ptr(tcm.origin, tcm.length, uc_mod.UC_PROT_ALL, ctypes.addressof(buf))
        for segment in self.image.segments:
            uc.mem_write(segment.address, segment.data)
        models = peripherals_for(
            self.board, self._on_uart_byte, lambda: self.cycles, self._on_config
        )
        for periph in models:
            if isinstance(periph, Scs):
                self.scs = periph
            self._map_peripheral(uc, periph)
        uc.hook_add(uc_mod.UC_HOOK_BLOCK, self._on_block)
        uc.hook_add(uc_mod.UC_HOOK_INTR, self._on_interrupt)
        uc.hook_add(uc_mod.UC_HOOK_MEM_INVALID, self._on_invalid)
        return uc

    @staticmethod
    def _map_peripheral(uc: uc_mod.Uc, periph: Peripheral) -> None:
        def read(_uc: uc_mod.Uc, offset: int, size: int, _data: object) -> int:
            return periph.read(offset, size)

        def write(_uc: uc_mod.Uc, offset: int, size: int, value: int, _data: object) -> None:
            periph.write(offset, size, value)

        uc.mmio_map(periph.base, periph.size, read, None, write, None)

    # ---- helpers ---------------------------------------------------------------------------
    def _pc(self) -> int:
        return self.reg(R.UC_ARM_REG_PC)

    def _where(self, pc: int | None = None) -> str:
        pc = self._pc() if pc is None else pc
        return f"pc 0x{pc:08x}, in function {self.image.function_at(pc)}{self._caller(pc)}"

    def _caller(self, pc: int) -> str:
        """``, called from F (lr ...)`` when LR provably holds the return into a caller."""
        caller = self._caller_of(pc)
        return f", called from {caller}" if caller else ""

    def _caller_of(self, pc: int | None) -> str | None:
        image = self.image
        lr = self.reg(R.UC_ARM_REG_LR)
        return faults.caller(lr, pc, self._memory, image.function_at, image.function_entry)

    def _memory(self, address: int, size: int) -> bytes | None:
        try:
            return bytes(self.uc.mem_read(address, size))
        except uc_mod.UcError:
            return None

    def _read_word(self, address: int) -> int | None:
        """A word of flash (a literal pool): constant for the whole run."""
        if not self.board.flash.contains(address):
            return None
        data = self._memory(address, 4)
        return int.from_bytes(data, "little") if data is not None and len(data) == 4 else None

    def _insn(self, pc: int) -> capstone.CsInsn | None:
        return faults.decode_at(self._memory, pc)

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.uc.emu_stop()

    def _raise_fault(self, fault: Fault) -> None:
        if self.error is None:
            self.fault = fault
            self.error = fault.describe()
        self.uc.emu_stop()

    def _stop(self, reason: str, status: int | None) -> None:
        self.stop_reason, self.exit_status = reason, status
        self.uc.emu_stop()

    def _update_limit(self) -> None:
        """The next instruction count at which ``_on_limit`` looks at the limits."""
        limit = min(self.budget.deadline + 1, self.instructions + WALL_CHECK_INSTRUCTIONS)
        if self.end_deadline is not None:
            limit = min(limit, self.end_deadline)
        self.limit = limit

    # ---- configuration (CCR, CPACR) --------------------------------------------------------
    def _on_config(self) -> None:
        self.config_dirty = True  # applied at the next block (a CCR/CPACR write wants an ISB)
        self.blocks.clear()  # so that the next block is decoded, and the config applied

    def _apply_config(self) -> None:
        """New CCR/CPACR: every block is planned again (translated code stays: see _decode)."""
        assert self.scs is not None
        ccr, cpacr = self.scs.ccr, self.scs.cpacr
        self.config = checks.Config(
            # Armv6-M (Cortex-M0+) faults on every unaligned halfword or word access
            unalign_trp=bool(ccr & CCR_UNALIGN_TRP) or self.board.core == "cortex-m0plus",
            div_0_trp=bool(ccr & CCR_DIV_0_TRP),
            fpu_enabled=self.board.has_fpu and bool(cpacr & CPACR_CP10_ENABLED),
        )
        self.config_dirty = False
        self.blocks.clear()
        self.exact_checks.clear()
        self.aligned = checks.SP_BIT

    # ---- blocks ----------------------------------------------------------------------------
    def _in_it_block(self) -> bool:
        xpsr = self.reg(R.UC_ARM_REG_XPSR)
        return bool((xpsr >> 10) & 0x3F or (xpsr >> 25) & 0x3)

    def _decode(self, address: int, size: int) -> Entry | None:
        """Price and plan a block at its first run; None when it was restarted (new hooks).

        Code hooks only reach code translated after they were added; ``translated`` and
        ``hooked`` (epochs) tell whether this block's translation has every hook it needs.
        """
        if self.config_dirty:
            self._apply_config()
        translated = self.translated.setdefault(address, self.epoch)
        code = self._memory(address, size) or b""
        cost = self.model.block(code, address, self.entry_reg)
        self.cycles += cost.cold_cycles  # e.g. I-cache fills, once per block
        insns = list(disassembler().disasm(code, address))
        facts = checks.plan_block(
            insns, self.config, self._read_word, self._in_it_block(), set(self.exact)
        )
        plan, keep = facts.plan, ~facts.unsafe
        event: Event | None = None
        if cost.idle:
            event = self._on_idle
        elif address in self.main_returns:
            event = self._on_main_return
        need = 0 if plan is None else plan.need if plan.simple else NEVER_SKIP
        compiled = None
        if plan is not None:
            compiled = checks.compile_checks(plan, self.reg, self.plain, keep)
        step = SP_LOST if facts.sp_step is None else facts.sp_step
        slow = self._slow_work(step, event)
        epoch = -1
        if cost.data_bases and self.model.memory is not None:
            epoch = self.mem_epoch
            self.priced[(address, self.model.memory.signature(cost.data_bases,
                                                              self.entry_reg))] = cost
        entry: Entry = (size, cost.instructions, cost, keep, need, slow, plan, compiled, epoch)
        self.blocks[address] = entry
        if plan is not None and plan.dynamic:
            self._hook_exact(plan.dynamic, plan)
            if any(self.hooked[pc] > translated for pc in plan.dynamic):
                self._restart(address, size)
                return None
        return entry

    def _reprice(self, address: int, size: int, entry: Entry) -> BlockCost:
        """The block's cost for where its pointers point now (a new memory epoch); I-cache fills
        are not charged again. Priced once per block and combination of regions."""
        cost, memory = entry[2], self.model.memory
        assert memory is not None
        key = (address, memory.signature(cost.data_bases, self.entry_reg))
        priced = self.priced.get(key)
        if priced is None:
            priced = self.priced[key] = self.model.block(self._memory(address, size) or b"",
                                                         address, self.entry_reg)
        self.blocks[address] = (*entry[:2], priced, *entry[3:8], self.mem_epoch)
        return priced

    def _hook_exact(self, pcs: Sequence[int], plan: checks.BlockPlan) -> None:
        for pc in pcs:
            if pc not in self.exact:
                self.epoch += 1
                self.exact[pc], self.hooked[pc] = plan.instructions[pc], self.epoch
                self.uc.hook_add(uc_mod.UC_HOOK_CODE, self._on_exact, None, pc, pc)

    def _restart(self, address: int, size: int) -> None:
        """Run the block again from its entry, translated anew with the hooks added since."""
        self.translated[address] = self.epoch
        self.uc.ctl_remove_cache(address, address + size)
        self.uc.reg_write(R.UC_ARM_REG_PC, address | 1)

    def _slow_work(self, step: int, event: Event | None) -> Event | None:
        """What a block does at its entry besides counting: track SP, run its event."""
        if not step and event is None:
            return None

        def work(address: int) -> bool:
            if step:
                sp = self.sp
                self.sp = None if sp is None or step == SP_LOST else sp + step
            return event is not None and event(address)

        return work

    def _on_block(self, uc: uc_mod.Uc, address: int, size: int, _data: object) -> None:
        if address in self.reprice_at:
            self.mem_epoch += 1
        entry = self.blocks.get(address)
        if entry is None or entry[0] != size:
            entry = self._decode(address, size)
            if entry is None:
                return
        _size, instructions, cost, keep, need, slow, _plan, _compiled, epoch = entry
        if epoch >= 0 and epoch != self.mem_epoch:
            cost = self._reprice(address, size, entry)
        if need & ~self.aligned:
            if self._check_entry(entry, address, size):
                return
        else:  # nothing to check, or only registers known aligned
            self.aligned &= keep
        if slow is not None and slow(address):
            return  # parked or returned from main: not counted, as on the qemu backend
        if address != self.fallthrough:  # how the previous block was left (cycle_models.py)
            cycles = cost.cycles + self.last_cost.taken_penalty + cost.entry_penalty
        else:
            cycles = cost.cycles + self.last_cost.fall_penalty
        self.last_cost = cost
        frames = self.frames
        if address in self.entries or (frames and address == frames[-1].ret):
            self._track_regions(address)
        self.instructions += instructions
        self.cycles += cycles
        self.fallthrough = address + size
        if self.instructions >= self.limit:
            self._on_limit(address)

    def _check_entry(self, entry: Entry, address: int, size: int) -> bool:
        """A block's checks at its entry; they also tell which registers are aligned after it.
        True when a predicted fault restarted the block."""
        keep, plan, compiled = entry[3], entry[6], entry[7]
        assert plan is not None and compiled is not None
        if plan.predicted and self._confirm(plan, plan.predicted, address, size):
            return True
        result = compiled(self._sp, self.aligned)
        if type(result) is tuple:  # a check failed: confirm it exactly
            if self._confirm(plan, result, address, size):
                return True
            self.aligned = (self.aligned & keep) | checks.SP_BIT  # left to exact hooks
            return False
        self.aligned = result  # type: ignore[assignment]
        return False

    def _sp(self) -> int:
        """SP at the current block's entry (tracked from the blocks' SP moves, else read)."""
        sp = self.sp
        if sp is None:
            sp = self.sp = self.reg(R.UC_ARM_REG_SP)
        return sp

    def _confirm(
        self, plan: checks.BlockPlan, pcs: Sequence[int], address: int, size: int
    ) -> bool:
        """Hook the instructions predicted to fault and rerun the block up to them."""
        if all(pc in self.exact for pc in pcs):
            return False
        self._hook_exact(pcs, plan)
        self.blocks.pop(address, None)  # re-planned without them
        self._restart(address, size)
        return True

    def _on_exact(self, uc: uc_mod.Uc, address: int, size: int, _data: object) -> None:
        """Just before an instruction that may fault: check it with the exact registers."""
        insn = self.exact.get(address)
        if insn is None or self.error is not None:
            return
        found = self.exact_checks.get(address)
        if found is None:
            found = self.exact_checks[address] = checks.checks_of(insn, self.config)
        for check in found:
            if check.violated(self.reg):
                function = self.image.function_at(address)
                fault = faults.check_fault(check, insn, self.reg, function, self.board.has_fpu)
                self._raise_fault(fault)
                return

    # ---- stops -----------------------------------------------------------------------------
    def _on_idle(self, address: int) -> bool:
        if self.end_status is not None:
            self._stop("end-line", self.end_status)
        else:
            self._fail(
                f"the firmware parked in a branch-to-self loop before {_END_LINE}; "
                f"{self._where(address)}"
            )
        return True

    def _on_main_return(self, address: int) -> bool:
        if self.end_status is not None:
            self._stop("end-line", self.end_status)
            return True
        status = self.reg(R.UC_ARM_REG_R0)
        status -= (status & 0x80000000) << 1
        self._fail(
            f"main returned {status} before {_END_LINE}; pc 0x{address:08x}, "
            f"in function {self.image.function_at(address)}"
        )
        return True

    def _on_limit(self, address: int) -> None:
        if self.end_deadline is not None and self.instructions >= self.end_deadline:
            self._stop("end-line", self.end_status)
        elif self.instructions > self.budget.deadline:
            self._fail(f"{self.budget.instructions_message(self.instructions)}; "
                       f"{self._where(address)}")
        elif self.budget.out_of_time():
            self._fail(f"{self.budget.time_message()}; {self._where(address)}")
        else:
            self._update_limit()

    # ---- UART ------------------------------------------------------------------------------
    def _on_uart_byte(self, byte: int) -> None:
        self.uart.append(byte)
        if byte != 0x0A:
            return
        line = self.uart[self.line_start :].decode("ascii", "replace").strip()
        self.line_start = len(self.uart)
        if self.on_line is not None:
            self.on_line(line)
        self.budget.on_line(line, self.instructions)
        match = _END_RE.match(line)
        if match and self.end_status is None:
            self.end_status = int(match.group(1))
            if self.stop_on_end_line:
                self.end_deadline = self.instructions + END_GRACE_INSTRUCTIONS
        self._update_limit()

    # ---- regions ---------------------------------------------------------------------------
    def _track_regions(self, address: int) -> None:
        sp = None
        while self.frames and address == self.frames[-1].ret:
            sp = self.reg(R.UC_ARM_REG_SP) if sp is None else sp
            if sp < self.frames[-1].sp:
                break
            frame = self.frames.pop()
            totals = self.stats[frame.name]
            totals[0] += 1
            totals[1] += self.instructions - frame.instructions
            totals[2] += self.cycles - frame.cycles
        name = self.entries.get(address)
        if name is not None:
            ret = self.reg(R.UC_ARM_REG_LR) & ~1
            sp = self.reg(R.UC_ARM_REG_SP)
            self.frames.append(_Frame(name, ret, sp, self.instructions, self.cycles))

    # ---- memory and CPU errors -------------------------------------------------------------
    def _on_invalid(
        self, uc: uc_mod.Uc, access: int, address: int, size: int, value: int, _data: object
    ) -> bool:
        if access == uc_mod.UC_MEM_FETCH_UNMAPPED:
            self._raise_fault(self._fetch_fault(address, "fetch from unmapped memory"))
            return False
        if access == uc_mod.UC_MEM_FETCH_PROT:
            self._raise_fault(self._fetch_fault(address, "fetch from non-executable memory"))
            return False
        pc = self._pc()
        insn = faults.insn_text(self._insn(pc))
        function = self.image.function_at(pc)
        writes = (uc_mod.UC_MEM_WRITE_UNMAPPED, uc_mod.UC_MEM_WRITE_PROT)
        kind = "write" if access in writes else "read"
        if kind == "write" and self._below_stack(address):
            ram = self.board.ram
            note = (
                f"write of {size} bytes below the start of RAM 0x{ram.origin:08x}; "
                f"the stack is {self._stack_size()} bytes at the bottom of RAM"
            )
            fault = Fault(BUS, "stack overflow", pc, function, address, insn, note)
        elif access == uc_mod.UC_MEM_WRITE_PROT:
            note = f"write of {size} bytes to read-only flash"
            fault = Fault(BUS, "precise data bus error", pc, function, address, insn, note)
        else:
            note = f"{kind} of {size} bytes outside the board's memory map"
            fault = Fault(BUS, "precise data bus error", pc, function, address, insn, note)
        self._raise_fault(fault)
        return False

    def _below_stack(self, address: int) -> bool:
        sp = self.reg(R.UC_ARM_REG_SP)
        origin = self.board.ram.origin
        return address < origin <= sp + 0x10000 and sp < origin + 0x100

    def _fetch_fault(self, address: int, note: str, kind: str = BUS) -> Fault:
        reason = "instruction bus error" if kind == BUS else "instruction access violation"
        caller = self._caller_of(None)
        function = self.image.function_at(address)
        return Fault(kind, reason, address, function, address, None, note, caller)

    def _stack_size(self) -> str:
        bottom, top = (
            self.image.symbols.get("__stack_bottom"),
            self.image.symbols.get("__stack_top"),
        )
        return str(top - bottom) if bottom is not None and top is not None else "?"

    def _on_interrupt(self, uc: uc_mod.Uc, intno: int, _data: object) -> None:
        pc = self._pc()
        if intno == _EXCP_BKPT:
            code = self._memory(pc, 2) or b"\0\0"
            if code[0] == 0xAB:
                self._semihost(pc)
                return
            fault = Fault(
                HARD,
                "breakpoint with no debugger attached",
                pc,
                self.image.function_at(pc),
                instruction=f"bkpt #{code[0]}",
            )
            self._raise_fault(fault)
            return
        if intno == 3:  # prefetch abort: a fetch from the execute-never part of the memory map
            self._raise_fault(self._fetch_fault(pc, faults.XN_NOTE, MEMMANAGE))
            return
        kind, reason = _EXCP_FAULTS.get(intno, (HARD, f"exception {intno}"))
        insn = self._insn(pc)
        self._raise_fault(
            Fault(kind, reason, pc, self.image.function_at(pc), None, faults.insn_text(insn))
        )

    def _cpu_error(self, exc: uc_mod.UcError) -> Fault | None:
        """A fault for what unicorn gave up on by itself (an instruction it cannot run)."""
        if exc.errno != uc_mod.UC_ERR_INSN_INVALID:
            return None
        pc = self._pc()
        function = self.image.function_at(pc)
        if not self.reg(R.UC_ARM_REG_XPSR) & _XPSR_THUMB:
            caller = self._caller_of(None)
            note = faults.THUMB_NOTE
            return Fault(USAGE, "invalid state", pc, function, None, None, note, caller)
        insn = self._insn(pc)
        code = self._memory(pc, 2) or b""
        text = faults.insn_text(insn) or f".short 0x{int.from_bytes(code, 'little'):04x}"
        return Fault(USAGE, "undefined instruction", pc, function, None, text)

    # ---- semihosting -----------------------------------------------------------------------
    def _semihost(self, pc: int) -> None:
        self.aligned, self.sp = checks.SP_BIT, None  # R0, PC written outside any block
        op = self.reg(R.UC_ARM_REG_R0)
        arg = self.reg(R.UC_ARM_REG_R1)
        if op == _SEMIHOST_EXIT:
            self._stop("exit", 0 if arg == _ADP_APPLICATION_EXIT else 1)
            return
        if op == _SEMIHOST_EXIT_EXTENDED:
            reason, code = (
                int.from_bytes(self.uc.mem_read(arg + 4 * i, 4), "little") for i in (0, 1)
            )
            self._stop("exit", code if reason == _ADP_APPLICATION_EXIT else 1)
            return
        self._semihost_write(op, arg)
        self.uc.reg_write(R.UC_ARM_REG_PC, (pc + 2) | 1)

    def _semihost_write(self, op: int, arg: int) -> None:
        data: bytes | bytearray
        if op == _SEMIHOST_WRITEC:
            data = bytes(self.uc.mem_read(arg, 1))
        elif op == _SEMIHOST_WRITE0:
            data = bytearray()
            while len(data) < 4096 and (byte := self.uc.mem_read(arg + len(data), 1)[0]):
                data.append(byte)
        elif op == _SEMIHOST_WRITE:
            handle, ptr, length = (
                int.from_bytes(self.uc.mem_read(arg + 4 * i, 4), "little") for i in range(3)
            )
            data = bytes(self.uc.mem_read(ptr, length)) if handle in (1, 2) else b""
            self.uc.reg_write(R.UC_ARM_REG_R0, 0)
        else:
            self.uc.reg_write(R.UC_ARM_REG_R0, 0xFFFFFFFF)
            log.debug("semihosting call 0x%x not supported; returned -1", op)
            return
        for byte in data:
            self._on_uart_byte(byte)

    # ---- run -------------------------------------------------------------------------------
    def run(self) -> RunResult:
        table = self.board.flash.vector_table
        vector = bytes(self.uc.mem_read(table, 8))
        sp, reset = int.from_bytes(vector[:4], "little"), int.from_bytes(vector[4:], "little")
        if not self.board.flash.contains(reset & ~1):
            raise UsageError(
                f"{self.image.path.name}: reset vector 0x{reset:08x} at "
                f"0x{table + 4:08x} is not in flash; "
                f"no vector table at the start of flash?"
            )
        self.uc.reg_write(R.UC_ARM_REG_SP, sp)
        self.fallthrough = reset & ~1
        try:
            self.uc.emu_start(reset | 1, _NEVER)
        except uc_mod.UcError as exc:
            if self.error is None:
                fault = self._cpu_error(exc)
                if fault is not None:
                    self._raise_fault(fault)
                else:
                    self.error = f"emulation stopped: {exc} ({self._where()})"
        if self.error is None and self.stop_reason is None:
            self._halted()
        if self.error is not None:
            raise FirmwareStopped(
                f"{self.image.path.name} on {self.board.name}: {self.error}",
                self._uart_text(),
                self.fault,
            )
        return self._result()

    def _halted(self) -> None:
        """emu_start returned by itself: the core executed WFI/WFE (unicorn halts there)."""
        if self.end_status is not None:
            self.stop_reason, self.exit_status = "end-line", self.end_status
            return
        pc = self._pc()
        before = self._insn(pc - 2)
        if before is not None and before.mnemonic in ("wfi", "wfe"):
            self.error = (
                f"the firmware sleeps in {before.mnemonic.upper()} with no interrupt to wake it, "
                f"before {_END_LINE}; {self._where(pc - 2)}"
            )
        else:
            self.error = f"emulation stopped without an end ({self._where(pc)})"

    def _uart_text(self) -> str:
        return self.uart.decode("ascii", "replace")

    def _result(self) -> RunResult:
        assert self.stop_reason is not None
        regions = {name: RegionStats(*totals) for name, totals in self.stats.items()}
        return RunResult(
            backend="unicorn",
            board=self.board.name,
            stop_reason=self.stop_reason,
            exit_status=self.exit_status,
            uart=self._uart_text(),
            instructions=self.instructions,
            cycles=self.cycles,
            regions=regions,
            cycle_model=self.model.name,
            memory_model=self.model.describe(),
        )


def run_unicorn(
    board: Board,
    image: ElfImage,
    *,
    regions: Sequence[str] = (),
    limits: Limits | None = None,
    stop_on_end_line: bool = True,
    on_line: Callable[[str], None] | None = None,
    cycle_model: str | None = None,
) -> RunResult:
    """Run ``image`` on unicorn for ``board``; see :func:`tinyprune.emulator.run_elf`."""
    check_fits(image, board)
    model = model_for(board, cycle_model)
    run = _Run(board, image, regions, limits or Limits(), stop_on_end_line, on_line, model)
    result = run.run()
    log.info(
        "unicorn: %s after %d instructions, %d cycles (estimate)",
        result.stop_reason,
        result.instructions,
        result.cycles,
    )
    return result
