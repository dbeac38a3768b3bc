"""Run a firmware ELF on ``qemu-system-arm`` (MPS2 boards) with an exact instruction count.

QEMU here has no TCG plugins and no DWT, so the count comes from its execution trace: one
translation block per instruction (``-singlestep``), every execution logged (``-d exec,nochain``)
into a FIFO that is counted as it streams. Under ``-icount`` an instruction that touches a device
in mid-block is rewound and executed again; the log says so (``cpu_io_recompile: rewound``) and
the first, abandoned execution is not counted. The run ends at the firmware's idle loop (the same
instruction three times in a row; twice is an -icount budget boundary), at a semihosting exit, or
past the instruction limit. Cycles are
priced from the traced PCs with the same model as the unicorn backend.
"""

from __future__ import annotations

import logging
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tinyprune.emulator.cycles import TAKEN_BRANCH_PENALTY, disassembler, instruction_cycles
from tinyprune.emulator.elf import (
    ElfImage,
    check_fits,
    main_return_addresses,
    prints_harness_lines,
)
from tinyprune.emulator.faults import Fault, FirmwareStopped, fault_from_line
from tinyprune.emulator.limits import Budget, Limits
from tinyprune.emulator.result import RunResult
from tinyprune.errors import ToolMissing, UsageError
from tinyprune.firmware.boards import Board

log = logging.getLogger(__name__)

QEMU = "qemu-system-arm"
INSTALL_HINT = "install it with `sudo apt-get install qemu-system-arm` or `make setup`"
END_GRACE_INSTRUCTIONS = 100_000
_LINE_RE = re.compile(
    rb"^(?:Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/|cpu_io_recompile: rewound)", re.M
)
_END_RE = re.compile(r"^@tp end status=(-?\d+)", re.M)
_END_LINE = "the end-of-run line '@tp end'"


@dataclass
class _Pricer:
    """Cost of the instruction at each PC, decoded once from the ELF's load image."""

    memory: dict[int, bytes]
    function_at: Callable[[int], str] = lambda _pc: "?"
    cache: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_image(cls, image: ElfImage) -> _Pricer:
        return cls({seg.address: seg.data for seg in image.segments}, image.function_at)

    def cost(self, pc: int) -> tuple[int, int]:
        """Return (size in bytes, cycles) of the instruction at ``pc``."""
        hit = self.cache.get(pc)
        if hit is None:
            hit = (2, 1)
            for base, data in self.memory.items():
                if base <= pc < base + len(data):
                    insn = next(disassembler().disasm(data[pc - base : pc - base + 4], pc), None)
                    if insn is not None:
                        hit = (insn.size, instruction_cycles(insn))
                    break
            self.cache[pc] = hit
        return hit


@dataclass
class _TraceCounter:
    """Counts executed instructions and prices them while the trace streams in."""

    pricer: _Pricer
    watch: frozenset[int] = frozenset()
    instructions: int = 0
    cycles: int = 0
    idle: bool = False
    returned: bool = False  # reached a return address of main (``watch``)
    stop_pc: int = -1  # where the run stopped (the idle loop, main's return address)
    _tail: bytes = b""
    _prev_pc: int = -1
    _next_pc: int = -1
    _undo: tuple[int, int, int] = (-1, -1, 0)
    _repeats: int = 0

    def feed(self, data: bytes) -> None:
        data = self._tail + data
        cut = data.rfind(b"\n") + 1
        self._consume(data[:cut])
        self._tail = data[cut:]

    def finish(self) -> None:
        self._consume(self._tail)
        self._tail = b""

    def _consume(self, block: bytes) -> None:
        for match in _LINE_RE.finditer(block):
            if self.idle:
                return
            if match.group(1) is None:
                self._undo_last()  # the rewound execution did not complete
                continue
            pc = int(match.group(1), 16)
            if pc == self._prev_pc:
                # -icount runs in budgets of 0xffff instructions; the block at a budget boundary
                # is logged once when it is entered and abandoned, and again when it runs. So
                # twice in a row is one execution; three times is a `b .` idle loop.
                self._repeats += 1
                if self._repeats >= 2:
                    self.idle, self.stop_pc = True, pc
                    self._undo_last()  # the idle loop's first pass is not counted (as on unicorn)
                    return
                continue
            self._repeats = 0
            if pc in self.watch:
                self.returned = self.idle = True  # main returned: stop here, not counted
                self.stop_pc = pc
                return
            size, cost = self.pricer.cost(pc)
            if self._next_pc not in (-1, pc):
                cost += TAKEN_BRANCH_PENALTY
            self._undo = (self._prev_pc, self._next_pc, cost)
            self.instructions += 1
            self.cycles += cost
            self._prev_pc, self._next_pc = pc, pc + size

    @property
    def pc(self) -> int:
        """Where the run stopped, or the last instruction counted."""
        return self.stop_pc if self.stop_pc >= 0 else self._prev_pc

    def _undo_last(self) -> None:
        self._prev_pc, self._next_pc, cost = self._undo
        self.instructions -= 1
        self.cycles -= cost


def _command(board: Board, elf: Path, fifo: Path) -> list[str]:
    machine = board.emulator.qemu_machine
    assert machine is not None
    return [
        QEMU,
        "-M",
        machine,
        "-display",
        "none",
        "-monitor",
        "none",
        "-chardev",
        "stdio,id=tpout,mux=on",
        "-serial",
        "chardev:tpout",
        "-semihosting-config",
        "enable=on,target=native,chardev=tpout",
        "-kernel",
        str(elf),
        "-icount",
        "shift=0,align=off,sleep=off",
        "-singlestep",
        "-d",
        "exec,nochain",
        "-D",
        str(fifo),
    ]


def require_qemu() -> None:
    """ToolMissing (exit 3) with the install command when qemu-system-arm is absent."""
    if shutil.which(QEMU) is None:
        raise ToolMissing(f"{QEMU} not found; {INSTALL_HINT}")


def _check_board(board: Board) -> None:
    if "qemu" not in board.emulator.backends or board.emulator.qemu_machine is None:
        raise UsageError(
            f"board {board.name} cannot run on qemu (no QEMU machine); "
            f"use the unicorn backend, or a board with [emulator] qemu_machine"
        )
    require_qemu()


@dataclass
class _Session:
    proc: subprocess.Popen[bytes]
    fifo_fd: int
    serial: Path
    stderr: Path
    counter: _TraceCounter
    budget: Budget
    stop_on_end_line: bool
    deadline: int | None = None
    _lines_done: int = 0
    _end_seen: bool = False

    def serial_text(self) -> str:
        return self.serial.read_bytes().decode("ascii", "replace")

    def pump(self) -> str | None:
        """Read the trace until the firmware stops; return an error message or None."""
        while True:
            ready, _, _ = select.select([self.fifo_fd], [], [], 0.05)
            data = os.read(self.fifo_fd, 1 << 20) if ready else b""
            if data:
                self.counter.feed(data)
            elif self.proc.poll() is not None:
                self.counter.finish()
                return None
            else:
                time.sleep(0.005)
            if self.counter.idle:
                return None
            stop = self._lines()
            if stop is None:
                stop = self._limits(asleep=not data)
            if stop is not None:
                return stop or None  # "": a normal stop

    def _lines(self) -> str | None:
        """Feed new UART lines to the budget; "" to stop (fault line, end reached)."""
        lines = self.serial_text().split("\n")
        for line in lines[self._lines_done : len(lines) - 1]:
            line = line.strip()
            self.budget.on_line(line, self.counter.instructions)
            if line.startswith("@tp fault"):
                return ""
            if _END_RE.match(line):
                self._end_seen = True
                if self.stop_on_end_line and self.deadline is None:
                    self.deadline = self.counter.instructions + END_GRACE_INSTRUCTIONS
        self._lines_done = max(self._lines_done, len(lines) - 1)
        if self.deadline is not None and self.counter.instructions >= self.deadline:
            return ""
        return None

    def _limits(self, asleep: bool) -> str | None:
        instructions = self.counter.instructions
        where = self._where()
        if instructions > self.budget.deadline:
            return f"{self.budget.instructions_message(instructions)}; {where}"
        if self.budget.out_of_time():
            return f"{self.budget.time_message()}; {where}"
        if asleep and "no active timers" in self.stderr.read_text(errors="replace"):
            if self._end_seen:
                return ""
            return (
                f"the firmware sleeps in WFI/WFE with no interrupt to wake it, before "
                f"{_END_LINE}; {where}"
            )
        return None

    def _where(self) -> str:
        pc = self.counter.pc
        return f"pc 0x{pc:08x}, in function {self.counter.pricer.function_at(pc)}"


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """Kill QEMU if it still runs; return its exit code if it had exited by itself."""
    code = proc.poll()
    if code is None:
        proc.kill()
        proc.wait()
    return code


def _fault_line(uart: str) -> dict[str, str] | None:
    line = next((ln for ln in uart.splitlines() if ln.strip().startswith("@tp fault")), None)
    if line is None:
        return None
    return dict(tok.split("=", 1) for tok in line.split()[2:] if "=" in tok)


def _classify(
    image: ElfImage, session: _Session, exited_code: int | None, stderr: str
) -> tuple[str, int | None] | str:
    """``(stop reason, status)`` of a run that ended, or the error message of one that failed."""
    uart, counter = session.serial_text(), session.counter
    fields = _fault_line(uart)
    if fields is not None:
        return _fault(image, fields).describe()
    end = _END_RE.search(uart)
    if exited_code is not None and not counter.idle:
        if "Lockup" in stderr or "fatal" in stderr:
            return f"qemu: {stderr.strip().splitlines()[0]}"
        return "exit", exited_code
    if end is not None:
        return "end-line", int(end.group(1))
    pc = counter.pc
    if counter.returned:
        where = f"pc 0x{pc:08x}, in function {image.function_at(pc)}"
        return f"main returned before {_END_LINE}; {where}"
    return (
        f"the firmware parked in a branch-to-self loop before {_END_LINE}; "
        f"pc 0x{pc:08x}, in function {image.function_at(pc)}"
    )


def _fault(image: ElfImage, fields: dict[str, str]) -> Fault:
    memory = {seg.address: seg.data for seg in image.segments}

    def read(address: int, size: int) -> bytes | None:
        for base, data in memory.items():
            if base <= address < base + len(data):
                return data[address - base : address - base + size]
        return None

    return fault_from_line(fields, image.function_at, read, image.function_entry)


def run_qemu(
    board: Board,
    image: ElfImage,
    *,
    limits: Limits | None = None,
    stop_on_end_line: bool = True,
) -> RunResult:
    """Run ``image`` on QEMU for ``board``; see :func:`tinyprune.emulator.run_elf`."""
    _check_board(board)
    check_fits(image, board)
    with tempfile.TemporaryDirectory(prefix="tinyprune-qemu-") as tmp:
        fifo, serial, stderr = Path(tmp) / "trace", Path(tmp) / "serial", Path(tmp) / "stderr"
        os.mkfifo(fifo)
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        with serial.open("wb") as out, stderr.open("wb") as err:
            proc = subprocess.Popen(
                _command(board, image.path.resolve(), fifo),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
            )
        counter = _TraceCounter(_Pricer.from_image(image), main_return_addresses(image))
        budget = Budget(limits or Limits(), prints_harness_lines(image))
        session = _Session(proc, fd, serial, stderr, counter, budget, stop_on_end_line)
        try:
            error = session.pump()
        finally:
            code = _stop(proc)
            os.close(fd)
        outcome = (
            error
            if error is not None
            else _classify(image, session, code, stderr.read_text(errors="replace"))
        )
        uart = session.serial_text()
    if isinstance(outcome, str):
        fault = _fault(image, fields) if (fields := _fault_line(uart)) is not None else None
        raise FirmwareStopped(f"{image.path.name} on {board.name} (qemu): {outcome}", uart, fault)
    reason, status = outcome
    log.info("qemu: %s after %d instructions", reason, counter.instructions)
    return RunResult(
        backend="qemu",
        board=board.name,
        stop_reason=reason,
        exit_status=status,
        uart=uart,
        instructions=counter.instructions,
        cycles=counter.cycles,
    )
