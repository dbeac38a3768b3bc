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
from dataclasses import dataclass, field
from pathlib import Path

from tinyprune.emulator.cycles import TAKEN_BRANCH_PENALTY, disassembler, instruction_cycles
from tinyprune.emulator.elf import ElfImage, check_fits
from tinyprune.emulator.result import RunResult
from tinyprune.errors import EmulationError, ToolMissing, UsageError
from tinyprune.firmware.boards import Board

log = logging.getLogger(__name__)

QEMU = "qemu-system-arm"
INSTALL_HINT = "install it with `sudo apt-get install qemu-system-arm` or `make setup`"
END_GRACE_INSTRUCTIONS = 100_000
_LINE_RE = re.compile(
    rb"^(?:Trace \d+: \S+ \[[0-9a-f]+/([0-9a-f]+)/|cpu_io_recompile: rewound)", re.M
)
_END_RE = re.compile(r"^@tp end status=(-?\d+)", re.M)


@dataclass
class _Pricer:
    """Cost of the instruction at each PC, decoded once from the ELF's load image."""

    memory: dict[int, bytes]
    cache: dict[int, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def from_image(cls, image: ElfImage) -> _Pricer:
        return cls({seg.address: seg.data for seg in image.segments})

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
    instructions: int = 0
    cycles: int = 0
    idle: bool = False
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
                    self.idle = True
                    self._undo_last()  # the idle loop's first pass is not counted (as on unicorn)
                    return
                continue
            self._repeats = 0
            size, cost = self.pricer.cost(pc)
            if self._next_pc not in (-1, pc):
                cost += TAKEN_BRANCH_PENALTY
            self._undo = (self._prev_pc, self._next_pc, cost)
            self.instructions += 1
            self.cycles += cost
            self._prev_pc, self._next_pc = pc, pc + size

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
    counter: _TraceCounter
    max_instructions: int
    stop_on_end_line: bool
    deadline: int | None = None

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
            if self.counter.instructions > self.max_instructions:
                return f"no end after {self.max_instructions} instructions (infinite loop?)"
            if (
                self.deadline is None
                and self.stop_on_end_line
                and _END_RE.search(self.serial_text())
            ):
                self.deadline = self.counter.instructions + END_GRACE_INSTRUCTIONS
            if self.deadline is not None and self.counter.instructions >= self.deadline:
                return None


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    """Kill QEMU if it still runs; return its exit code if it had exited by itself."""
    code = proc.poll()
    if code is None:
        proc.kill()
        proc.wait()
    return code


def _classify(
    uart: str, exited_code: int | None, idle: bool, stderr: str
) -> tuple[str, int | None]:
    if "@tp fault" in uart:
        line = next(ln for ln in uart.splitlines() if "@tp fault" in ln)
        raise EmulationError(f"firmware faulted on qemu: {line.strip()}")
    end = _END_RE.search(uart)
    if exited_code is not None and not idle:
        if "Lockup" in stderr or "fatal" in stderr:
            raise EmulationError(f"qemu: {stderr.strip().splitlines()[0]}")
        return "exit", exited_code
    if end is not None:
        return "end-line", int(end.group(1))
    return "idle", None


def run_qemu(
    board: Board,
    image: ElfImage,
    *,
    max_instructions: int = 500_000_000,
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
        session = _Session(
            proc,
            fd,
            serial,
            _TraceCounter(_Pricer.from_image(image)),
            max_instructions,
            stop_on_end_line,
        )
        try:
            error = session.pump()
        finally:
            code = _stop(proc)
            os.close(fd)
        uart = session.serial_text()
        if error is not None:
            raise EmulationError(f"{image.path.name} on {board.name} (qemu): {error}")
        reason, status = _classify(
            uart, code, session.counter.idle, stderr.read_text(errors="replace")
        )
    counter = session.counter
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
