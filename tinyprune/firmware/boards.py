"""Board descriptions: ``boards/<name>.toml`` read into frozen dataclasses.

A board file names the core, the memory map, the UART that carries the result lines, the flash tool
target and the emulators that can run its firmware. See ``docs/boards.md`` for every field.
"""

from __future__ import annotations

import difflib
import os
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
UART_BUSES = ("apb1", "apb2", "apb1_2")  # apb1_2: STM32L4/L5 RCC_APB1ENR2 (LPUART1)
# STM32 "PD8" (port letter, pin 0-15), nRF "P0.06" (port number, pin 0-31), RP2040 "GP0" (0-29).
_PIN_FORMS = (
    (re.compile(r"^P([A-K])(\d{1,2})$"), lambda p: ord(p) - ord("A"), 15),
    (re.compile(r"^P([0-1])\.(\d{2})$"), int, 31),
    (re.compile(r"^G(P)(\d{1,2})$"), lambda p: 0, 29),
)
BOARDS_DIR_ENV = "TINYPRUNE_BOARDS_DIR"  # the CLI names it too (tinyprune/cli.py)
_NAME_RE = re.compile(r"^[a-z0-9_]+$")

T = TypeVar("T")


@dataclass(frozen=True)
class MemoryRegion:
    """A contiguous memory region of the board."""

    origin: int
    length: int
    vector_offset: int = 0

    @property
    def vector_table(self) -> int:
        """Address of the vector table: ``origin`` plus ``vector_offset`` (RP2040: after the
        256-byte second-stage boot loader)."""
        return self.origin + self.vector_offset

    @property
    def end(self) -> int:
        """First address past the region."""
        return self.origin + self.length

    def contains(self, address: int) -> bool:
        """Return whether ``address`` lies inside the region."""
        return self.origin <= address < self.end


@dataclass(frozen=True)
class Pin:
    """A GPIO pin: port index (STM32 A=0, nRF P0/P1; RP2040 always 0) and pin number."""

    port: int
    number: int
    label: str = ""

    @property
    def name(self) -> str:
        """The pin name as the board file spells it, e.g. ``PD8`` or ``P0.06``."""
        return self.label or f"P{chr(ord('A') + self.port)}{self.number}"


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
    rx_af: int | None = None

    @property
    def rx_function(self) -> int | None:
        """The RX pin's alternate function (``rx_af``, else ``af``)."""
        return self.af if self.rx_af is None else self.rx_af


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
class MemoryTiming:
    """What memory costs the cycle models charge (the board file's ``[timing]`` table).

    Without the table every access is zero-wait (TCM/SRAM-like, as on the MPS2 FPGA boards).

    Attributes:
        flash_mhz_per_wait_state: flash speed: wait states = ceil(clock / this) - 1, the value
            the BSP programs (0: flash is zero-wait at any clock).
        flash_line_bytes: bytes one flash read delivers (STM32F7: 32, STM32F4: 16).
        icache: instruction fetches from flash go through a cache (L1 I-cache, ART).
        dcache: data reads from flash go through a cache (L1 D-cache, ART D-cache).
        multiplier: ``fast`` (single-cycle) or ``small`` (32-cycle) multiplier (Cortex-M0+).
    """

    flash_mhz_per_wait_state: int = 0
    flash_line_bytes: int = 16
    icache: bool = False
    dcache: bool = False
    multiplier: str = "fast"

    def flash_wait_states(self, clock_hz: int) -> int:
        """Wait states of a flash read at ``clock_hz``."""
        if self.flash_mhz_per_wait_state <= 0:
            return 0
        return (clock_hz - 1) // (self.flash_mhz_per_wait_state * 1_000_000)


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
    timing: MemoryTiming = MemoryTiming()
    itcm: MemoryRegion | None = None  # instruction TCM (zero-wait code), ``[memory.itcm]``
    dtcm: MemoryRegion | None = None  # data TCM (zero-wait data), ``[memory.dtcm]``

    @property
    def dtcm_in_ram(self) -> bool:
        """Whether the DTCM is the start of the ``ram`` region (STM32F7: one contiguous RAM)."""
        return self.dtcm is not None and self.dtcm.origin == self.ram.origin

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
    offset = reader.get(f"memory.{name}.vector_offset", int, "a multiple of 256 below the "
                        "region's length", required=False) or 0
    if offset < 0 or offset % 256 or offset >= length or (offset and name != "flash"):
        raise reader.fail(f"memory.{name}.vector_offset",
                          "a multiple of 256 below the region's length (flash only)", offset)
    return MemoryRegion(origin, length, offset)


def _tcm(reader: _Reader, name: str, flash: MemoryRegion,
         ram: MemoryRegion) -> MemoryRegion | None:
    """An optional ``[memory.itcm]`` / ``[memory.dtcm]``: disjoint from flash; the ITCM disjoint
    from RAM too; the DTCM either disjoint from RAM or the start of it (STM32F7)."""
    if reader.get(f"memory.{name}", dict, "a table with origin and length",
                  required=False) is None:
        return None
    region = _region(reader, name)

    def overlaps(other: MemoryRegion) -> bool:
        return region.origin < other.end and other.origin < region.end

    inside_ram = (name == "dtcm" and region.origin == ram.origin and region.end <= ram.end)
    if overlaps(flash) or (overlaps(ram) and not inside_ram):
        where = "the start of [memory.ram] or " if name == "dtcm" else ""
        raise reader.fail(f"memory.{name}.origin", f"{where}a range outside [memory.flash] and "
                          "[memory.ram]", region.origin)
    return region


def _pin(reader: _Reader, field: str) -> Pin | None:
    expected = "a pin name such as 'PD8' (STM32), 'P0.06' (nRF) or 'GP0' (RP2040)"
    text = reader.get(field, str, expected, required=False)
    if text is None:
        return None
    for pattern, port_of, highest in _PIN_FORMS:
        match = pattern.match(text)
        if match and int(match.group(2)) <= highest:
            return Pin(port_of(match.group(1)), int(match.group(2)), text)
    raise reader.fail(field, expected, text)


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
        rx_af=reader.get("uart.rx_af", int, "an alternate function number 0..15",
                         required=False),
    )
    for name, number in (("af", uart.af), ("rx_af", uart.rx_af)):
        if number is not None and not 0 <= number <= 15:
            raise reader.fail(f"uart.{name}", "an alternate function number 0..15", number)
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


def _timing(reader: _Reader) -> MemoryTiming:
    per_ws = reader.get("timing.flash_mhz_per_wait_state", int, "MHz per flash wait state "
                        "(integer >= 0)", required=False)
    line = reader.get("timing.flash_line_bytes", int, "4, 8, 16, 32 or 64", required=False)
    if per_ws is not None and per_ws < 0:
        raise reader.fail("timing.flash_mhz_per_wait_state", "an integer >= 0", per_ws)
    if line is not None and line not in (4, 8, 16, 32, 64):
        raise reader.fail("timing.flash_line_bytes", "4, 8, 16, 32 or 64", line)
    multiplier = reader.get("timing.multiplier", str, "fast or small", required=False)
    if multiplier is not None and multiplier not in ("fast", "small"):
        raise reader.fail("timing.multiplier", "fast or small", multiplier)
    default = MemoryTiming()
    return MemoryTiming(
        flash_mhz_per_wait_state=per_ws or 0,
        flash_line_bytes=line or default.flash_line_bytes,
        icache=bool(reader.get("timing.icache", bool, "true or false", required=False)),
        dcache=bool(reader.get("timing.dcache", bool, "true or false", required=False)),
        multiplier=multiplier or default.multiplier,
    )


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
    flash, ram = _region(reader, "flash"), _region(reader, "ram")
    return Board(
        name=name,
        vendor=reader.req("vendor", str, "a vendor name"),
        mcu=reader.req("mcu", str, "an MCU part number"),
        core=reader.choice("core", CORES),
        fpu=reader.choice("fpu", FPUS),
        dsp=reader.req("dsp", bool, "true or false"),
        clock_hz=clock,
        family=family,
        flash=flash,
        ram=ram,
        uart=_uart(reader, family),
        flash_tool=FlashTool(tool, target) if tool and target else None,
        emulator=_emulator(reader),
        path=path,
        timing=_timing(reader),
        itcm=_tcm(reader, "itcm", flash, ram),
        dtcm=_tcm(reader, "dtcm", flash, ram),
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


_user_dirs: list[Path] = []


def add_boards_dir(folder: str | Path) -> None:
    """Search ``folder`` for board files before the shipped ones (the CLI's ``--boards-dir``).

    Raises:
        UsageError: ``folder`` is not a folder.
    """
    path = Path(folder)
    if not path.is_dir():
        raise UsageError(f"--boards-dir {folder}: not a folder; give the folder that holds "
                         "your <board>.toml files")
    if path not in _user_dirs:
        _user_dirs.insert(0, path)


def search_dirs() -> list[Path]:
    """The board folders in search order: ``--boards-dir`` folders, then the folders of the
    ``TINYPRUNE_BOARDS_DIR`` environment variable (separated like ``PATH``), then the shipped
    ``boards/``. A board name found in an earlier folder hides the same name further on."""
    from_env = [Path(p) for p in os.environ.get(BOARDS_DIR_ENV, "").split(os.pathsep) if p]
    for folder in from_env:
        if not folder.is_dir():
            raise UsageError(f"{BOARDS_DIR_ENV}={folder}: not a folder; set it to the folder "
                             "that holds your <board>.toml files, or unset it")
    return [*_user_dirs, *from_env, boards_dir()]


def _board_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for folder in search_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def board_names() -> list[str]:
    """Return the names of every board (user folders and shipped), sorted."""
    return sorted(_board_files())


def list_boards() -> list[Board]:
    """Return every board (user folders and shipped), sorted by name."""
    files = _board_files()
    return [_read_board_file(files[name]) for name in sorted(files)]


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
    found = _board_files().get(text) if _NAME_RE.match(text) else None
    if found is None:
        known = board_names()
        close = difflib.get_close_matches(text.lower(), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise UsageError(f"board {text!r} not found; {hint}available: "
                         f"{', '.join(known) or '(none)'}")
    return _read_board_file(found)
