"""Renode, for users who have it: a self-contained platform for the board, a ``.resc`` to run the
firmware interactively and a ``.robot`` suite that ``renode-test`` runs; the firmware's UART goes
to a file that the same result-line parser reads (:mod:`tinyprune.protocol`).

The platform (``<board>.repl``) is written from the board file: its flash and RAM exactly, the
core, NVIC, a DWT whose cycle counter runs at the board's clock (Renode's shipped platforms leave
the DWT a tag that reads 0, shared/FACTS.md), the result UART, and per MCU family the register
windows the tinyprune BSP touches (:data:`FAMILIES`). Nothing is included from Renode's tree and
no SVD is fetched, so the scripts work offline and do not change with Renode's platforms.

Renode's time is instructions scaled by ``PerformanceInMips``; the platform sets it to the clock
in MHz, so DWT cycles there are executed instructions (one per cycle), an estimate labelled so.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyprune import __version__
from tinyprune.errors import CheckFailed, ToolMissing, UsageError
from tinyprune.firmware.boards import Board
from tinyprune.firmware.paths import template_environment, templates_dir
from tinyprune.protocol import PROTOCOL_VERSION

log = logging.getLogger(__name__)

RENODE_TEST = "renode-test"
SCRIPTS_DIR = "renode"  # in a build folder, beside firmware/
UART_LOG = "uart.log"
TIMEOUT_S = 600
CYCLE_MODEL = "renode: one instruction per cycle (PerformanceInMips = clock in MHz)"
INSTALL_HINT = ("Renode is in neither PyPI nor Debian: install it from https://renode.io "
                "(a .deb or the portable Linux package; renode-test also needs "
                "`pip install -r <renode>/tests/requirements.txt`) and put renode-test on PATH")


@dataclass(frozen=True)
class Peripheral:
    """One entry of a ``.repl``: ``name: model @ where``, its parameters (``key: value``), its
    connections (``IRQ -> cpu@0``) and an inline Python script."""

    name: str
    model: str
    where: str
    params: tuple[tuple[str, str], ...] = ()
    script: str | None = None
    comment: str | None = None
    connections: tuple[str, ...] = ()


@dataclass(frozen=True)
class RenodeScripts:
    """The files :func:`write_scripts` wrote (absolute paths)."""

    folder: Path
    repl: Path
    resc: Path
    robot: Path
    uart: str  # the UART's name on the system bus, e.g. sysbus.usart3

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.repl, self.resc, self.robot)


def _hex(value: int) -> str:
    return f"0x{value:08X}"


def _script(name: str) -> str:
    return (templates_dir() / "renode" / name).read_text(encoding="utf-8").rstrip() + "\n"


def _stm32(board: Board, uart_model: str, uart_sized: bool) -> list[Peripheral]:
    """``uart_sized``: the UART model knows its size (IKnownSize); otherwise it is registered
    with a range, as Renode requires."""
    uart_name = board.uart.instance.lower()
    base = _hex(board.uart.base)
    return [
        Peripheral(uart_name, uart_model,
                   f"sysbus {base}" if uart_sized else f"sysbus <{base}, +0x400>",
                   (("frequency", str(board.clock_hz)),),
                   comment=f"the result UART ({board.uart.instance})"),
        Peripheral("rcc", "Python.PythonPeripheral", "sysbus 0x40023800",
                   (("size", "0x400"), ("initable", "true")), _script("stm32_rcc.py"),
                   "RCC: ready bits follow their enable bits, so the BSP's clock setup completes"),
        Peripheral("pwr", "Python.PythonPeripheral", "sysbus 0x40007000",
                   (("size", "0x400"), ("initable", "true")), _script("stm32_pwr.py"),
                   "PWR: voltage scaling and over-drive ready"),
        Peripheral("flash_interface", "Memory.ArrayMemory", "sysbus 0x40023C00",
                   (("size", "0x400"),), comment="flash interface (ACR latency reads back)"),
        Peripheral("gpio", "Memory.ArrayMemory", "sysbus 0x40020000", (("size", "0x2C00"),),
                   comment="GPIO ports A..K (alternate functions of the UART pins)"),
    ]


FAMILIES: dict[str, Callable[[Board], list[Peripheral]]] = {
    "stm32f7": lambda board: _stm32(board, "UART.STM32F7_USART", uart_sized=True),
    "stm32f4": lambda board: _stm32(board, "UART.STM32_UART", uart_sized=False),
}


def renode_support(board: Board) -> Callable[[Board], list[Peripheral]]:
    """The family's peripherals; UsageError when the board cannot run on Renode."""
    if "renode" not in board.emulator.backends:
        raise UsageError(f"--emulator renode: board {board.name} supports "
                         f"{', '.join(board.emulator.backends)} (or none)")
    family = FAMILIES.get(board.family)
    if family is None:
        raise UsageError(f"--emulator renode: no Renode platform for the {board.family} family "
                         f"of {board.name} (described: {', '.join(FAMILIES)}); use --emulator "
                         "unicorn")
    return family


def cpu_type(board: Board) -> str:
    """Renode's name of the board's core (a Cortex-M4 with its FPU is ``cortex-m4f``)."""
    if board.core == "cortex-m4" and board.has_fpu:
        return "cortex-m4f"
    return {"cortex-m0plus": "cortex-m0+"}.get(board.core, board.core)


def _uart_name(board: Board) -> str:
    return f"sysbus.{board.uart.instance.lower()}"


def platform(board: Board) -> list[Peripheral]:
    """Every entry of the board's ``.repl``, in order."""
    mhz = board.clock_hz // 1_000_000
    core = [
        Peripheral("flash", "Memory.MappedMemory", f"sysbus {_hex(board.flash.origin)}",
                   (("size", f"0x{board.flash.length:X}"),)),
        Peripheral("sram", "Memory.MappedMemory", f"sysbus {_hex(board.ram.origin)}",
                   (("size", f"0x{board.ram.length:X}"),)),
        *(Peripheral(name, "Memory.MappedMemory", f"sysbus {_hex(tcm.origin)}",
                     (("size", f"0x{tcm.length:X}"),), comment="TCM: code/weights the build "
                     "placed there (docs/tcm.md)")
          for name, tcm in (("itcm", board.itcm), ("dtcm", board.dtcm))
          if tcm is not None and not board.ram.contains(tcm.origin)),
        Peripheral("nvic", "IRQControllers.NVIC", "sysbus 0xE000E000",
                   (("priorityMask", "0xF0"), ("systickFrequency", str(board.clock_hz))),
                   connections=("IRQ -> cpu@0",)),
        Peripheral("cpu", "CPU.CortexM", "sysbus",
                   (("cpuType", f'"{cpu_type(board)}"'),
                    ("PerformanceInMips", str(max(mhz, 1))), ("nvic", "nvic"))),
        Peripheral("dwt", "Miscellaneous.DWT", "sysbus 0xE0001000",
                   (("frequency", str(board.clock_hz)),),
                   comment="DWT: CYCCNT counts at the core clock (tp_bsp_cycles reads it)"),
    ]
    return core + renode_support(board)(board)


def _context(board: Board, elf_rel: str) -> dict[str, object]:
    return {
        "banner": f"Generated by tinyprune {__version__} for {board.name}; do not edit.",
        "board": board.name, "mcu": board.mcu, "core": board.core,
        "clock_mhz": f"{board.clock_hz / 1e6:g}",
        "renode_platform": board.emulator.renode_platform or "Renode's own platform",
        "peripherals": platform(board), "uart": _uart_name(board), "elf": elf_rel,
        "repl": f"{board.name}.repl", "resc": f"{board.name}.resc",
        "robot": f"{board.name}.robot", "uart_log": UART_LOG, "timeout": TIMEOUT_S,
        "protocol_version": PROTOCOL_VERSION,
    }


def write_scripts(board: Board, elf: Path, folder: Path) -> RenodeScripts:
    """Writes ``<board>.repl``, ``<board>.resc`` and ``<board>.robot`` into ``folder``; the
    scripts name the ELF relative to the folder, so the build folder can move.

    Raises:
        UsageError: the board cannot run on Renode (:func:`renode_support`).
    """
    ctx = _context(board, Path(os.path.relpath(elf.resolve(), folder.resolve())).as_posix())
    folder.mkdir(parents=True, exist_ok=True)
    env = template_environment()
    paths = {}
    for suffix, template in (("repl", "platform.repl.j2"), ("resc", "board.resc.j2"),
                             ("robot", "board.robot.j2")):
        path = folder / f"{board.name}.{suffix}"
        path.write_text(env.get_template(f"renode/{template}").render(ctx), encoding="utf-8")
        paths[suffix] = path
    return RenodeScripts(folder, paths["repl"], paths["resc"], paths["robot"], _uart_name(board))


def find_renode_test() -> str | None:
    """The ``renode-test`` program on PATH, or None."""
    return shutil.which(RENODE_TEST)


def require_renode_test() -> str:
    """``renode-test``'s path; ToolMissing (exit 3) saying how to get Renode."""
    path = find_renode_test()
    if path is None:
        raise ToolMissing(f"{RENODE_TEST} not found; {INSTALL_HINT}")
    return path


def run_robot(scripts: RenodeScripts, tool: str | None = None,
              timeout_s: float = TIMEOUT_S + 60) -> str:
    """Runs the suite with ``renode-test`` and returns what the firmware printed on its UART.

    Raises:
        ToolMissing: renode-test is not installed.
        CheckFailed: the suite failed or timed out (its output's last lines in the message).
    """
    tool = tool or require_renode_test()
    log_file = scripts.folder / UART_LOG
    log_file.unlink(missing_ok=True)  # CreateFileBackend would write uart.log.1 beside it
    results = scripts.folder / "results"
    cmd = [tool, str(scripts.robot), "-r", str(results)]
    log.debug("running %s", " ".join(cmd))
    try:
        done = subprocess.run(cmd, cwd=scripts.folder, capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"renode-test did not finish within {timeout_s:g} s on "
                          f"{scripts.robot.name} (a hung firmware?)") from None
    uart = log_file.read_text(encoding="utf-8", errors="replace") if log_file.is_file() else ""
    if done.returncode != 0:
        tail = " | ".join(line.strip() for line in (done.stdout + done.stderr).splitlines()[-4:])
        raise CheckFailed(f"renode-test failed on {scripts.robot.name} (exit {done.returncode}): "
                          f"{tail or 'no output'}; results in {results}")
    return uart
