"""Small register models of the peripherals the tinyprune BSPs touch, per MCU family.

Each model answers reads and takes writes in its window; the unicorn backend maps the windows
with ``mmio_map``. Anything outside these windows and the board memory is an invalid access.
Models only do what firmware polls for: ready bits mirror their enable bits, UARTs are always
ready and capture what is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tinyprune.firmware.boards import Board

ByteSink = Callable[[int], None]
CycleSource = Callable[[], int]


@dataclass
class Peripheral:
    """A register window with read-back storage. Subclasses override ``read``/``write``."""

    name: str
    base: int
    size: int
    regs: dict[int, int] = field(default_factory=dict)

    def read(self, offset: int, size: int) -> int:
        word = self.regs.get(offset & ~3, 0)
        return (word >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        shift = 8 * (offset & 3)
        mask = ((1 << (8 * size)) - 1) << shift
        word = self.regs.get(offset & ~3, 0)
        self.regs[offset & ~3] = (word & ~mask) | ((value << shift) & mask)


@dataclass
class StmRcc(Peripheral):
    """STM32 RCC: oscillator/PLL ready bits follow their ON bits, SWS follows SW."""

    def read(self, offset: int, size: int) -> int:
        value = super().read(offset, size)
        if offset == 0x00:  # CR: HSI, HSE, PLL, PLLI2S, PLLSAI ready = on << 1
            for on_bit in (0, 16, 24, 26, 28):
                if value & (1 << on_bit):
                    value |= 1 << (on_bit + 1)
        elif offset == 0x08:  # CFGR: SWS = SW
            value = (value & ~0xC) | ((value & 0x3) << 2)
        return value


@dataclass
class StmPwr(Peripheral):
    """STM32 PWR: VOS ready always; on F7 the over-drive ready bits follow ODEN/ODSWEN."""

    def read(self, offset: int, size: int) -> int:
        if offset == 0x04:
            cr = self.regs.get(0x00, 0)
            return (1 << 14) | (cr & (0x3 << 16))
        return super().read(offset, size)


@dataclass
class StmUsart(Peripheral):
    """STM32 USART: status always TXE|TC; bytes written to the data register go to ``sink``."""

    status_offset: int = 0x1C
    data_offset: int = 0x28
    sink: ByteSink | None = None

    def read(self, offset: int, size: int) -> int:
        if offset == self.status_offset:
            return 0xC0
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == self.data_offset and self.sink is not None:
            self.sink(value & 0xFF)
            return
        super().write(offset, size, value)


@dataclass
class CmsdkUart(Peripheral):
    """Arm CMSDK APB UART: never full; DATA writes go to ``sink``."""

    sink: ByteSink | None = None

    def read(self, offset: int, size: int) -> int:
        return 0 if offset == 0x04 else super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x00 and self.sink is not None:
            self.sink(value & 0xFF)
            return
        super().write(offset, size, value)


CPUID = {"cortex-m4": 0x410FC241, "cortex-m7": 0x411FC272}
# 4 KiB, 4-way, 32-byte lines (STM32F7 D-cache): sets-1=31, ways-1=3, line=1, WT|WB|RA|WA.
CCSIDR_M7 = 0xF003E019


SCS_CCR, SCS_CPACR = 0xD14, 0xD88
CCR_RESET = 0x200  # STKALIGN; UNALIGN_TRP (bit 3) and DIV_0_TRP (bit 4) clear
CCR_UNALIGN_TRP, CCR_DIV_0_TRP = 1 << 3, 1 << 4
CPACR_CP10_ENABLED = 1 << 20  # 0b01 (privileged) or 0b11 (full): the firmware runs privileged


@dataclass
class Scs(Peripheral):
    """System control space 0xE000E000: SCB, NVIC, SysTick, CPACR, cache maintenance (read-back).

    ``on_config`` is called after a write to CCR or CPACR: the fault checks depend on them.
    """

    core: str = "cortex-m4"
    ccsidr: int = 0
    on_config: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.regs.setdefault(SCS_CCR, CCR_RESET)

    def read(self, offset: int, size: int) -> int:
        if offset == 0xD00:
            return CPUID.get(self.core, 0)
        if offset == 0xD80:
            return self.ccsidr
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        super().write(offset, size, value)
        if offset & ~3 in (SCS_CCR, SCS_CPACR) and self.on_config is not None:
            self.on_config()

    @property
    def ccr(self) -> int:
        return self.regs.get(SCS_CCR, 0)

    @property
    def cpacr(self) -> int:
        return self.regs.get(SCS_CPACR, 0)


@dataclass
class Dwt(Peripheral):
    """DWT 0xE0001000: CYCCNT runs from the cycle model while CTRL.CYCCNTENA is set."""

    now: CycleSource | None = None
    _offset: int = 0
    _frozen: int = 0

    def _count(self) -> int:
        assert self.now is not None
        if self.regs.get(0x000, 0) & 1:
            return (self.now() - self._offset) & 0xFFFFFFFF
        return self._frozen

    def read(self, offset: int, size: int) -> int:
        if offset == 0x004:
            return self._count()
        if offset == 0xFB4:  # LSR: lock implemented, unlocked
            return 0x1
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        assert self.now is not None
        if offset == 0x004:
            self._frozen = value
            self._offset = (self.now() - value) & 0xFFFFFFFF
            return
        if offset == 0x000:
            was_on = self.regs.get(0x000, 0) & 1
            if value & 1 and not was_on:
                self._offset = (self.now() - self._frozen) & 0xFFFFFFFF
            elif was_on and not value & 1:
                self._frozen = self._count()
        super().write(offset, size, value)


# Cache geometry the core reports: the STM32F7 caches; QEMU's MPS2 Cortex-M7 reports none (0),
# and the unicorn model must read what QEMU reads for instruction counts to match.
FAMILY_CCSIDR = {"stm32f7": CCSIDR_M7}


def _core_peripherals(
    board: Board, now: CycleSource, on_config: Callable[[], None] | None
) -> list[Peripheral]:
    ccsidr = FAMILY_CCSIDR.get(board.family, 0) if board.core == "cortex-m7" else 0
    return [
        Scs("SCS", 0xE000E000, 0x1000, core=board.core, ccsidr=ccsidr, on_config=on_config),
        Dwt("DWT", 0xE0001000, 0x1000, now=now),
    ]


def _stm32_common() -> list[Peripheral]:
    gpios: list[Peripheral] = [
        Peripheral(f"GPIO{chr(ord('A') + port)}", 0x40020000 + 0x400 * port, 0x400)
        for port in range(11)
    ]
    return [
        StmRcc("RCC", 0x40023800, 0x400),
        Peripheral("FLASH", 0x40023C00, 0x400),
        StmPwr("PWR", 0x40007000, 0x400),
        *gpios,
    ]


def _stm32f7(board: Board, sink: ByteSink) -> list[Peripheral]:
    uart = StmUsart(
        board.uart.instance, board.uart.base, 0x400, status_offset=0x1C, data_offset=0x28, sink=sink
    )
    uart.regs[0x1C] = 0xC0
    return [*_stm32_common(), uart]


def _stm32f4(board: Board, sink: ByteSink) -> list[Peripheral]:
    uart = StmUsart(
        board.uart.instance, board.uart.base, 0x400, status_offset=0x00, data_offset=0x04, sink=sink
    )
    return [*_stm32_common(), uart]


def _mps2(board: Board, sink: ByteSink) -> list[Peripheral]:
    return [CmsdkUart(board.uart.instance, board.uart.base, 0x1000, sink=sink)]


FAMILY_MODELS: dict[str, Callable[[Board, ByteSink], list[Peripheral]]] = {
    "stm32f7": _stm32f7,
    "stm32f4": _stm32f4,
    "mps2": _mps2,
}


def peripherals_for(
    board: Board,
    sink: ByteSink,
    now: CycleSource,
    on_config: Callable[[], None] | None = None,
) -> list[Peripheral]:
    """Register models for the board: core (SCS, DWT) plus the family's peripherals."""
    family = FAMILY_MODELS.get(board.family)
    extra = family(board, sink) if family is not None else []
    return _core_peripherals(board, now, on_config) + extra
