"""Board descriptions: ``boards/<name>.toml`` read into frozen dataclasses.

A board file names the core, the memory map, the UART that carries the result lines, the flash tool
target and the emulators that can run its firmware. See ``docs/boards.md`` for every field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import tomllib

from tinyprune.errors import UsageError
from tinyprune.firmware.paths import boards_dir, runtime_dir

CORES = ("cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
FPUS = ("none", "fpv4-sp-d16", "fpv5-sp-d16", "fpv5-d16")
BACKENDS = ("unicorn", "qemu", "renode")
UART_BUSES = ("apb1", "apb2")
_PIN_RE = re.compile(r"^P([A-K])(\d{1,2})$")
_NAME_RE = re.compile(r"^[a-z0-9_]+$")

T = TypeVar("T")


@dataclass(frozen=True)
class MemoryRegion:
    """A contiguous memory region of the board."""

    origin: int
    length: int

    @property
    def end(self) -> int:
        """First address past the region."""
        return self.origin + self.length

    def contains(self, address: int) -> bool:
        """Return whether ``address`` lies inside the region."""
        return self.origin <= address < self.end


@dataclass(frozen=True)
class Pin:
    """A GPIO pin such as ``PD8``: port index (A=0) and pin number."""

    port: int
    number: int

    @property
    def name(self) -> str:
        """The pin name, e.g. ``PD8``."""
        return f"P{chr(ord('A') + self.port)}{self.number}"


@dataclass(frozen=True)
class Uart:
    """The UART that carries the result lines.

    ``bus``/``enable_bit`` (the RCC clock-enable register and bit), the pins and the alternate
    function are needed by STM32 families only.
    """

    instance: str
    base: int
    baud: int
    bus: str | None = None
    enable_bit: int | None = None
    tx_pin: Pin | None = None
    rx_pin: Pin | None = None
    af: int | None = None


@dataclass(frozen=True)
class FlashTool:
    """How to flash a real board (``pyocd flash -t <target>``)."""

    tool: str
    target: str


@dataclass(frozen=True)
class EmulatorSupport:
    """Which emulator backends can run firmware for this board."""

    backends: tuple[str, ...]
    qemu_machine: str | None = None
    renode_platform: str | None = None


@dataclass(frozen=True)
class Board:
    """One board, as described by its ``boards/<name>.toml``."""

    name: str
    vendor: str
    mcu: str
    core: str
    fpu: str
    dsp: bool
    clock_hz: int
    family: str
    flash: MemoryRegion
    ram: MemoryRegion
    uart: Uart
    flash_tool: FlashTool | None
    emulator: EmulatorSupport
    path: Path

    @property
    def has_fpu(self) -> bool:
        """Whether the core has a floating-point unit."""
        return self.fpu != "none"

    @property
    def cpu_flags(self) -> tuple[str, ...]:
        """The ``-mcpu``/``-mfpu``/``-mfloat-abi`` flags for arm-none-eabi-gcc."""
        if self.has_fpu:
            return (f"-mcpu={self.core}", f"-mfpu={self.fpu}", "-mfloat-abi=hard", "-mthumb")
        return (f"-mcpu={self.core}", "-mfloat-abi=soft", "-mthumb")


class _Reader:
    """Typed access to a parsed TOML table with messages naming the file and the field."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self._data = data
        self._where = where

    def fail(self, field: str, expected: str, received: object) -> UsageError:
        return UsageError(
            f"{self._where}: field {field}: expected {expected}, received {received!r}"
        )

    def get(self, field: str, kind: type[T], expected: str, *, required: bool = True) -> T | None:
        node: Any = self._data
        for part in field.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if required:
                    raise self.fail(field, expected, "nothing (the field is missing)")
                return None
            node = node[part]
        if (kind is int and isinstance(node, bool)) or not isinstance(node, kind):
            raise self.fail(field, expected, node)
        return node

    def req(self, field: str, kind: type[T], expected: str) -> T:
        value = self.get(field, kind, expected)
        assert value is not None
        return value

    def choice(self, field: str, choices: tuple[str, ...]) -> str:
        value = self.req(field, str, "one of " + ", ".join(choices))
        if value not in choices:
            raise self.fail(field, "one of " + ", ".join(choices), value)
        return value


def _region(reader: _Reader, name: str) -> MemoryRegion:
    origin = reader.req(f"memory.{name}.origin", int, "an address (integer >= 0)")
    length = reader.req(f"memory.{name}.length", int, "a size in bytes (integer > 0)")
    if origin < 0 or origin % 4:
        raise reader.fail(f"memory.{name}.origin", "a 4-byte aligned address >= 0", origin)
    if length <= 0 or length % 1024:
        raise reader.fail(f"memory.{name}.length", "a positive multiple of 1024 bytes", length)
    if origin + length > 1 << 32:
        raise reader.fail(f"memory.{name}.length", "a region inside the 32-bit space", length)
    return MemoryRegion(origin, length)


def _pin(reader: _Reader, field: str) -> Pin | None:
    text = reader.get(field, str, "a pin name such as 'PD8'", required=False)
    if text is None:
        return None
    match = _PIN_RE.match(text)
    if not match or int(match.group(2)) > 15:
        raise reader.fail(field, "a pin name such as 'PD8'", text)
    return Pin(ord(match.group(1)) - ord("A"), int(match.group(2)))


def _uart(reader: _Reader, family: str) -> Uart:
    uart = Uart(
        instance=reader.req("uart.instance", str, "a peripheral name such as 'USART3'"),
        base=reader.req("uart.base", int, "the peripheral base address"),
        baud=reader.req("uart.baud", int, "a baud rate such as 115200"),
        bus=reader.get("uart.bus", str, "one of " + ", ".join(UART_BUSES), required=False),
        enable_bit=reader.get("uart.enable_bit", int, "an RCC bit number", required=False),
        tx_pin=_pin(reader, "uart.tx_pin"),
        rx_pin=_pin(reader, "uart.rx_pin"),
        af=reader.get("uart.af", int, "an alternate function number 0..15", required=False),
    )
    if uart.bus is not None and uart.bus not in UART_BUSES:
        raise reader.fail("uart.bus", "one of " + ", ".join(UART_BUSES), uart.bus)
    if family.startswith("stm32"):
        for field, value in (
            ("bus", uart.bus),
            ("enable_bit", uart.enable_bit),
            ("tx_pin", uart.tx_pin),
            ("rx_pin", uart.rx_pin),
            ("af", uart.af),
        ):
            if value is None:
                raise reader.fail(
                    f"uart.{field}",
                    f"a value (required for family {family})",
                    "nothing (the field is missing)",
                )
    return uart


def _emulator(reader: _Reader) -> EmulatorSupport:
    backends = reader.get("emulator.backends", list, "a list of backend names", required=False)
    backends = backends or []
    for backend in backends:
        if backend not in BACKENDS:
            raise reader.fail("emulator.backends", "names among " + ", ".join(BACKENDS), backend)
    machine = reader.get("emulator.qemu_machine", str, "a QEMU machine name", required=False)
    if "qemu" in backends and machine is None:
        raise reader.fail(
            "emulator.qemu_machine",
            "a QEMU machine name (backends has qemu)",
            "nothing (the field is missing)",
        )
    platform = reader.get("emulator.renode_platform", str, "a .repl path", required=False)
    return EmulatorSupport(tuple(backends), machine, platform)


def _families() -> tuple[str, ...]:
    bsp = runtime_dir() / "bsp"
    return tuple(sorted(p.name for p in bsp.iterdir() if p.is_dir())) if bsp.is_dir() else ()


def _board_from_data(data: Mapping[str, Any], path: Path, where: str) -> Board:
    reader = _Reader(data, where)
    name = reader.req("name", str, "the board name")
    if name != path.stem or not _NAME_RE.match(name):
        raise reader.fail("name", f"{path.stem!r} (the file name, [a-z0-9_])", name)
    family = reader.choice("family", _families())
    clock = reader.req("clock_hz", int, "the core clock in Hz")
    if not 1_000_000 <= clock <= 1_000_000_000:
        raise reader.fail("clock_hz", "a clock between 1 MHz and 1 GHz", clock)
    tool = reader.get("flash_tool.tool", str, "a flash tool name", required=False)
    target = reader.get("flash_tool.target", str, "a flash tool target", required=False)
    return Board(
        name=name,
        vendor=reader.req("vendor", str, "a vendor name"),
        mcu=reader.req("mcu", str, "an MCU part number"),
        core=reader.choice("core", CORES),
        fpu=reader.choice("fpu", FPUS),
        dsp=reader.req("dsp", bool, "true or false"),
        clock_hz=clock,
        family=family,
        flash=_region(reader, "flash"),
        ram=_region(reader, "ram"),
        uart=_uart(reader, family),
        flash_tool=FlashTool(tool, target) if tool and target else None,
        emulator=_emulator(reader),
        path=path,
    )


def _read_board_file(path: Path) -> Board:
    where = f"boards/{path.name}" if path.parent == boards_dir() else str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{where}: cannot read the board file ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML ({exc})") from exc
    return _board_from_data(data, path, where)


def board_names() -> list[str]:
    """Return the names of the shipped boards, sorted."""
    folder = boards_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def list_boards() -> list[Board]:
    """Return every shipped board, sorted by name."""
    return [_read_board_file(boards_dir() / f"{name}.toml") for name in board_names()]


def load_board(name_or_path: str | Path) -> Board:
    """Load a board by name (``nucleo_f746``) or from a ``.toml`` file path.

    Raises:
        UsageError: the board does not exist or its file is invalid; the message names the file
            and the field at fault.
    """
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text:
        path = Path(name_or_path)
        if not path.is_file():
            raise UsageError(f"board file {text!r} not found")
        return _read_board_file(path)
    path = boards_dir() / f"{text}.toml"
    if not _NAME_RE.match(text) or not path.is_file():
        known = board_names()
        close = difflib.get_close_matches(text.lower(), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"board {text!r} not found; {hint}available: "
                         f"{', '.join(known) or '(none)'}")
    return _read_board_file(path)
