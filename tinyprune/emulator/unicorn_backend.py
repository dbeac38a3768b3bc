"""Run a firmware ELF on unicorn with the board's exact memory map.

Flash (read/execute) and RAM are mapped exactly as the board file says; the peripherals the BSP
touches are register models (``peripherals.py``). Anything else, a stack that leaves RAM, an
invalid instruction or an endless run is an :class:`EmulationError` naming the address, the PC and
the function. Instructions are counted per basic block (exact, IT blocks included) and priced
with the shared cycle model; DWT CYCCNT is served from that model.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import unicorn as uc_mod
from unicorn import arm_const as R

from tinyprune.emulator.cycle_models import CycleModel, model_for, unicorn_register_reader
from tinyprune.emulator.cycles import BlockCost
from tinyprune.emulator.elf import ElfImage, check_fits
from tinyprune.emulator.peripherals import Peripheral, peripherals_for
from tinyprune.emulator.result import RegionStats, RunResult
from tinyprune.errors import EmulationError, UsageError
from tinyprune.firmware.boards import Board

log = logging.getLogger(__name__)

CPU_MODELS = {
    "cortex-m4": R.UC_CPU_ARM_CORTEX_M4,
    "cortex-m7": R.UC_CPU_ARM_CORTEX_M7,
    "cortex-m3": R.UC_CPU_ARM_CORTEX_M3,
    "cortex-m0plus": R.UC_CPU_ARM_CORTEX_M0,
}
END_GRACE_INSTRUCTIONS = 100_000
_NEVER = 0xFFFFFFFE
_END_RE = re.compile(r"^@tp end status=(-?\d+)")
_EXCP_BKPT = 7
_EXCP_NAMES = {
    1: "undefined instruction",
    2: "unexpected SVC",
    3: "prefetch abort",
    4: "data abort",
    17: "coprocessor (FPU) disabled",
    18: "invalid state (ARM mode)",
    19: "stack limit",
    22: "unaligned access",
}
_SEMIHOST_WRITEC, _SEMIHOST_WRITE0, _SEMIHOST_WRITE = 0x03, 0x04, 0x05
_SEMIHOST_EXIT, _SEMIHOST_EXIT_EXTENDED = 0x18, 0x20
_ADP_APPLICATION_EXIT = 0x20026


@dataclass
class _Frame:
    name: str
    ret: int
    sp: int
    instructions: int
    cycles: int


class _Run:
    """State of one emulation; the hooks are its methods."""

    def __init__(
        self,
        board: Board,
        image: ElfImage,
        regions: Sequence[str],
        max_instructions: int,
        stop_on_end_line: bool,
        on_line: Callable[[str], None] | None = None,
        cycle_model: CycleModel | None = None,
    ) -> None:
        self.board, self.image = board, image
        self.model = cycle_model or model_for(board, "table")
        self.last_cost = BlockCost(0, 0, False)
        self.on_line = on_line
        self.max_instructions = max_instructions
        self.stop_on_end_line = stop_on_end_line
        self.instructions = 0
        self.cycles = 0
        self.fallthrough = -1
        self.blocks: dict[int, tuple[int, BlockCost]] = {}
        self.uart = bytearray()
        self.line_start = 0
        self.end_status: int | None = None
        self.end_deadline: int | None = None
        self.stop_reason: str | None = None
        self.exit_status: int | None = None
        self.error: str | None = None
        self.entries = {image.function_address(name): name for name in regions}
        self.frames: list[_Frame] = []
        self.stats = {name: [0, 0, 0] for name in regions}
        self.uc = self._machine()
        self.entry_reg = unicorn_register_reader(self.uc)

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
        uc.mem_map(flash.origin, flash.length, uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC)
        uc.mem_map(ram.origin, ram.length, uc_mod.UC_PROT_ALL)
        for segment in self.image.segments:
            uc.mem_write(segment.address, segment.data)
        for periph in peripherals_for(self.board, self._on_uart_byte, lambda: self.cycles):
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
    def _where(self, pc: int | None = None) -> str:
        pc = self.uc.reg_read(R.UC_ARM_REG_PC) if pc is None else pc
        return f"pc 0x{pc:08x}, in function {self.image.function_at(pc)}"

    def _fail(self, message: str) -> None:
        if self.error is None:
            self.error = message
        self.uc.emu_stop()

    def _stop(self, reason: str, status: int | None) -> None:
        self.stop_reason, self.exit_status = reason, status
        self.uc.emu_stop()

    # ---- hooks -----------------------------------------------------------------------------
    def _on_uart_byte(self, byte: int) -> None:
        self.uart.append(byte)
        if byte != 0x0A:
            return
        line = self.uart[self.line_start :].decode("ascii", "replace").strip()
        self.line_start = len(self.uart)
        if self.on_line is not None:
            self.on_line(line)
        match = _END_RE.match(line)
        if match and self.end_status is None:
            self.end_status = int(match.group(1))
            if self.stop_on_end_line:
                self.end_deadline = self.instructions + END_GRACE_INSTRUCTIONS

    def _block(self, address: int, size: int) -> BlockCost:
        cached = self.blocks.get(address)
        if cached is not None and cached[0] == size:
            return cached[1]
        cost = self.model.block(bytes(self.uc.mem_read(address, size)), address, self.entry_reg)
        self.cycles += cost.cold_cycles  # e.g. I-cache fills, once per block
        self.blocks[address] = (size, cost)
        return cost

    def _on_block(self, uc: uc_mod.Uc, address: int, size: int, _data: object) -> None:
        cost = self._block(address, size)
        if cost.idle:  # not counted, as on the qemu backend
            reason = "end-line" if self.end_deadline is not None else "idle"
            self._stop(reason, self.end_status)
            return
        if address != self.fallthrough:  # how the previous block was left (cycle_models.py)
            self.cycles += self.last_cost.taken_penalty + cost.entry_penalty
        else:
            self.cycles += self.last_cost.fall_penalty
        self.last_cost = cost
        if self.entries or self.frames:
            self._track_regions(address)
        self.instructions += cost.instructions
        self.cycles += cost.cycles
        self.fallthrough = address + size
        if self.end_deadline is not None and self.instructions >= self.end_deadline:
            self._stop("end-line", self.end_status)
        elif self.instructions > self.max_instructions:
            self._fail(
                f"no end after {self.max_instructions} instructions (infinite loop?); "
                f"{self._where(address)}"
            )

    def _track_regions(self, address: int) -> None:
        sp = None
        while self.frames and address == self.frames[-1].ret:
            sp = self.uc.reg_read(R.UC_ARM_REG_SP) if sp is None else sp
            if sp < self.frames[-1].sp:
                break
            frame = self.frames.pop()
            totals = self.stats[frame.name]
            totals[0] += 1
            totals[1] += self.instructions - frame.instructions
            totals[2] += self.cycles - frame.cycles
        name = self.entries.get(address)
        if name is not None:
            ret = self.uc.reg_read(R.UC_ARM_REG_LR) & ~1
            sp = self.uc.reg_read(R.UC_ARM_REG_SP)
            self.frames.append(_Frame(name, ret, sp, self.instructions, self.cycles))

    def _on_invalid(
        self, uc: uc_mod.Uc, access: int, address: int, size: int, value: int, _data: object
    ) -> bool:
        sp = uc.reg_read(R.UC_ARM_REG_SP)
        ram = self.board.ram
        writes = (uc_mod.UC_MEM_WRITE_UNMAPPED, uc_mod.UC_MEM_WRITE_PROT)
        if access in writes and address < ram.origin <= sp + 0x10000 and sp < ram.origin + 0x100:
            self.error = (
                f"stack overflow: write of {size} bytes at 0x{address:08x}, below the start of "
                f"RAM 0x{ram.origin:08x} (sp 0x{sp:08x}, {self._where()}); "
                f"the stack is {self._stack_size()} bytes at the bottom of RAM"
            )
        elif access == uc_mod.UC_MEM_WRITE_PROT:
            self.error = (
                f"write of {size} bytes to read-only flash at 0x{address:08x} ({self._where()})"
            )
        elif access in (uc_mod.UC_MEM_FETCH_UNMAPPED, uc_mod.UC_MEM_FETCH_PROT):
            self.error = f"hard fault: instruction fetch from invalid address 0x{address:08x}"
        else:
            kind = "write" if access in writes else "read"
            self.error = f"invalid {kind} of {size} bytes at 0x{address:08x} ({self._where()})"
        return False

    def _stack_size(self) -> str:
        bottom, top = (
            self.image.symbols.get("__stack_bottom"),
            self.image.symbols.get("__stack_top"),
        )
        return str(top - bottom) if bottom is not None and top is not None else "?"

    def _on_interrupt(self, uc: uc_mod.Uc, intno: int, _data: object) -> None:
        pc = uc.reg_read(R.UC_ARM_REG_PC)
        if intno == _EXCP_BKPT:
            imm = uc.mem_read(pc, 2)[0]
            if imm == 0xAB:
                self._semihost(pc)
                return
            self._fail(f"breakpoint bkpt #{imm} hit ({self._where(pc)})")
            return
        what = _EXCP_NAMES.get(intno, f"exception {intno}")
        self._fail(f"hard fault: {what} ({self._where(pc)})")

    def _semihost(self, pc: int) -> None:
        op = self.uc.reg_read(R.UC_ARM_REG_R0)
        arg = self.uc.reg_read(R.UC_ARM_REG_R1)
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
        vector = bytes(self.uc.mem_read(self.board.flash.origin, 8))
        sp, reset = int.from_bytes(vector[:4], "little"), int.from_bytes(vector[4:], "little")
        if not self.board.flash.contains(reset & ~1):
            raise UsageError(
                f"{self.image.path.name}: reset vector 0x{reset:08x} at "
                f"0x{self.board.flash.origin + 4:08x} is not in flash; "
                f"no vector table at the start of flash?"
            )
        self.uc.reg_write(R.UC_ARM_REG_SP, sp)
        self.fallthrough = reset & ~1
        try:
            self.uc.emu_start(reset | 1, _NEVER)
        except uc_mod.UcError as exc:
            if self.error is None:
                self.error = f"emulation stopped: {exc} ({self._where()})"
        if self.error is not None:
            raise EmulationError(f"{self.image.path.name} on {self.board.name}: {self.error}")
        return self._result()

    def _result(self) -> RunResult:
        if self.stop_reason is None:
            raise EmulationError(
                f"{self.image.path.name}: emulation stopped without an end ({self._where()})"
            )
        regions = {name: RegionStats(*totals) for name, totals in self.stats.items()}
        return RunResult(
            backend="unicorn",
            board=self.board.name,
            stop_reason=self.stop_reason,
            exit_status=self.exit_status,
            uart=self.uart.decode("ascii", "replace"),
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
    max_instructions: int = 500_000_000,
    stop_on_end_line: bool = True,
    on_line: Callable[[str], None] | None = None,
    cycle_model: str | None = None,
) -> RunResult:
    """Run ``image`` on unicorn for ``board``; see :func:`tinyprune.emulator.run_elf`."""
    check_fits(image, board)
    model = model_for(board, cycle_model)
    run = _Run(board, image, regions, max_instructions, stop_on_end_line, on_line, model)
    result = run.run()
    log.info(
        "unicorn: %s after %d instructions, %d cycles (estimate)",
        result.stop_reason,
        result.instructions,
        result.cycles,
    )
    return result
