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


def _field(word: int, shift: int, bits: int) -> int:
    return (word >> shift) & ((1 << bits) - 1)


def _ahb_div(hpre: int) -> int:
    """AHB prescaler of an HPRE field (0xxx: 1, 1000: 2 ... 1111: 512; no 32)."""
    return 1 if hpre < 8 else (2, 4, 8, 16, 64, 128, 256, 512)[hpre - 8]


def _apb_div(ppre: int) -> int:
    """APB prescaler of a PPRE field (0xx: 1, 100: 2 ... 111: 16)."""
    return 1 if ppre < 4 else 1 << (ppre - 3)


@dataclass
class StmRcc(Peripheral):
    """STM32F4/F7 RCC: oscillator/PLL ready bits follow their ON bits, SWS follows SW.

    ``sysclk_hz``/``uart_clock_hz`` decode what the firmware set up (tests check them against
    the board file)."""

    ready_bits: tuple[tuple[int, int], ...] = ((0, 1), (16, 17), (24, 25), (26, 27), (28, 29))
    cfgr: int = 0x08
    sw_bits: int = 2

    def read(self, offset: int, size: int) -> int:
        value = super().read(offset, size)
        if offset == 0x00:  # CR: each oscillator's / PLL's ready bit follows its ON bit
            for on_bit, ready_bit in self.ready_bits:
                if value & (1 << on_bit):
                    value |= 1 << ready_bit
        elif offset == self.cfgr:  # SWS = SW
            mask = (1 << self.sw_bits) - 1
            value = (value & ~(mask << self.sw_bits)) | ((value & mask) << self.sw_bits)
        return value

    def sysclk_hz(self) -> int:
        """SYSCLK from CFGR.SW and the main PLL (HSI 16 MHz source)."""
        cfgr, pll = self.regs.get(0x08, 0), self.regs.get(0x04, 0)
        if cfgr & 0x3 != 0x2:
            return 16_000_000
        m, n, p = _field(pll, 0, 6), _field(pll, 6, 9), 2 * (_field(pll, 16, 2) + 1)
        return 16_000_000 // m * n // p if m else 0

    def uart_clock_hz(self, bus: str) -> int:
        cfgr = self.regs.get(0x08, 0)
        hclk = self.sysclk_hz() // _ahb_div(_field(cfgr, 4, 4))
        return hclk // _apb_div(_field(cfgr, 13 if bus == "apb2" else 10, 3))


@dataclass
class StmRccL4(StmRcc):
    """STM32L4/L4+/L5 RCC (HSI16 ready at bit 10, the PLL's R output feeds SYSCLK)."""

    ready_bits: tuple[tuple[int, int], ...] = ((0, 1), (8, 10), (16, 17), (24, 25), (26, 27),
                                               (28, 29))

    def sysclk_hz(self) -> int:
        cfgr, pll = self.regs.get(0x08, 0), self.regs.get(0x0C, 0)
        if cfgr & 0x3 != 0x3:
            return 4_000_000  # MSI at reset
        source = {2: 16_000_000}.get(pll & 0x3, 0)
        m, n = _field(pll, 4, 4) + 1, _field(pll, 8, 7)
        r = 2 * (_field(pll, 25, 2) + 1)
        return source // m * n // r if pll & (1 << 24) else 0

    def uart_clock_hz(self, bus: str) -> int:
        cfgr = self.regs.get(0x08, 0)
        hclk = self.sysclk_hz() // _ahb_div(_field(cfgr, 4, 4))
        return hclk // _apb_div(_field(cfgr, 11 if bus == "apb2" else 8, 3))


@dataclass
class StmRccH7(StmRcc):
    """STM32H7 RCC: HSI ready at bit 2, SW/SWS in CFGR at 0x10, PLL1 from PLLCKSELR/PLL1DIVR."""

    ready_bits: tuple[tuple[int, int], ...] = ((0, 2), (7, 8), (12, 13), (16, 17), (24, 25),
                                               (26, 27), (28, 29))
    cfgr: int = 0x10
    sw_bits: int = 3

    def __post_init__(self) -> None:
        self.regs.update({0x028: 0x02020200, 0x02C: 0x01FF0000, 0x030: 0x01010280})

    def sysclk_hz(self) -> int:
        if self.regs.get(0x10, 0) & 0x7 != 0x3:
            return 64_000_000
        sel, div = self.regs.get(0x028, 0), self.regs.get(0x030, 0)
        source = {0: 64_000_000}.get(sel & 0x3, 0)
        m, n, p = _field(sel, 4, 6), _field(div, 0, 9) + 1, _field(div, 9, 7) + 1
        return source // m * n // p if m else 0

    def uart_clock_hz(self, bus: str) -> int:
        d1, d2 = self.regs.get(0x018, 0), self.regs.get(0x01C, 0)
        hclk = self.sysclk_hz() // _ahb_div(_field(d1, 8, 4)) // _ahb_div(_field(d1, 0, 4))
        return hclk // _apb_div(_field(d2, 8 if bus == "apb2" else 4, 3))


@dataclass
class StmPwr(Peripheral):
    """STM32 PWR: VOS ready always; on F7 the over-drive ready bits follow ODEN/ODSWEN."""

    def read(self, offset: int, size: int) -> int:
        if offset == 0x04:
            cr = self.regs.get(0x00, 0)
            return (1 << 14) | (cr & (0x3 << 16))
        return super().read(offset, size)


@dataclass
class StmH7Pwr(Peripheral):
    """STM32H7 PWR: the supply (CSR1.ACTVOSRDY) and voltage scaling (D3CR.VOSRDY) always ready."""

    def __post_init__(self) -> None:
        self.regs[0x0C] = 0x46  # CR3 at reset: SCUEN | LDOEN | (SDLEVEL)

    def read(self, offset: int, size: int) -> int:
        value = super().read(offset, size)
        return value | (1 << 13) if offset in (0x04, 0x18) else value


@dataclass
class StmUsart(Peripheral):
    """STM32 USART: status always TXE|TC; bytes written to the data register go to ``sink``.

    ``brr_offset`` and ``lpuart`` let a test decode the baud rate the firmware set."""

    status_offset: int = 0x1C
    data_offset: int = 0x28
    brr_offset: int = 0x0C
    lpuart: bool = False
    sink: ByteSink | None = None

    def baud(self, clock_hz: int) -> float:
        """The baud rate the BRR value gives at UART clock ``clock_hz`` (0 if BRR is unset)."""
        brr = self.regs.get(self.brr_offset, 0)
        return (256 if self.lpuart else 1) * clock_hz / brr if brr else 0.0

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
class NrfClock(Peripheral):
    """nRF52 CLOCK: the HFXO has started as soon as TASKS_HFCLKSTART is written."""

    def write(self, offset: int, size: int, value: int) -> None:
        super().write(offset, size, value)
        if offset == 0x000 and value & 1:
            self.regs[0x100] = 1  # EVENTS_HFCLKSTARTED

    @property
    def hfxo_started(self) -> bool:
        return bool(self.regs.get(0x100, 0))


@dataclass
class NrfUart(Peripheral):
    """nRF52 UART0 (legacy): TXD writes go to ``sink`` and raise EVENTS_TXDRDY at once."""

    sink: ByteSink | None = None

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x51C:
            if self.sink is not None and self.regs.get(0x500, 0) == 4:
                self.sink(value & 0xFF)
            self.regs[0x11C] = 1
            return
        super().write(offset, size, value)

    def baud(self) -> float:
        """The baud rate of the BAUDRATE register (baud * 2^32 / 16 MHz)."""
        return self.regs.get(0x524, 0) * 16_000_000 / 2**32


@dataclass
class Rp2040Resets(Peripheral):
    """RP2040 RESETS: every block held in reset at boot; RESET_DONE is the complement of RESET."""

    def __post_init__(self) -> None:
        self.regs[0x0] = 0x01FFFFFF

    def read(self, offset: int, size: int) -> int:
        if offset == 0x8:
            return ~self.regs.get(0x0, 0) & 0x01FFFFFF
        return super().read(offset, size)


@dataclass
class Rp2040Xosc(Peripheral):
    """RP2040 XOSC: stable as soon as CTRL.ENABLE is written 0xFAB."""

    def read(self, offset: int, size: int) -> int:
        if offset == 0x4:
            on = _field(self.regs.get(0x0, 0), 12, 12) == 0xFAB
            return (1 << 31) | (1 << 12) if on else 0
        return super().read(offset, size)


@dataclass
class Rp2040Pll(Peripheral):
    """RP2040 PLL: locked once the PLL and its VCO are powered; ``output_hz`` decodes it."""

    def __post_init__(self) -> None:
        self.regs.update({0x0: 1, 0x4: 0x2D, 0xC: 0x77000})

    def read(self, offset: int, size: int) -> int:
        value = super().read(offset, size)
        if offset == 0x0 and not self.regs.get(0x4, 0) & 0x21:
            value |= 1 << 31
        return value

    def output_hz(self) -> int:
        refdiv, fbdiv, prim = self.regs.get(0x0, 0) & 0x3F, self.regs.get(0x8, 0) & 0xFFF, \
            self.regs.get(0xC, 0)
        post = _field(prim, 16, 3) * _field(prim, 12, 3)
        return 12_000_000 // refdiv * fbdiv // post if refdiv and post else 0


@dataclass
class Rp2040Clocks(Peripheral):
    """RP2040 CLOCKS: the SELECTED registers follow the CTRL source fields."""

    pll: Rp2040Pll | None = None

    def read(self, offset: int, size: int) -> int:
        if offset == 0x38:  # CLK_REF_SELECTED
            return 1 << (self.regs.get(0x30, 0) & 0x3)
        if offset == 0x44:  # CLK_SYS_SELECTED
            return 1 << (self.regs.get(0x3C, 0) & 0x1)
        return super().read(offset, size)

    def sysclk_hz(self) -> int:
        """clk_sys: pll_sys through CLK_SYS_DIV when selected, else clk_ref (the crystal)."""
        ctrl, div = self.regs.get(0x3C, 0), _field(self.regs.get(0x40, 1 << 8), 8, 24)
        if ctrl & 1 and _field(ctrl, 5, 3) == 0 and self.pll is not None and div:
            return self.pll.output_hz() // div
        return 12_000_000


@dataclass
class Rp2040Timer(Peripheral):
    """RP2040 TIMER: TIMERAWL counts microseconds of emulated time at ``clock_hz``."""

    now: CycleSource | None = None
    clock_hz: int = 125_000_000

    def read(self, offset: int, size: int) -> int:
        if offset == 0x28 and self.now is not None:
            return (self.now() * 1_000_000 // self.clock_hz) & 0xFFFFFFFF
        return super().read(offset, size)


@dataclass
class Pl011(Peripheral):
    """Arm PL011 UART (RP2040): never full; DR writes go to ``sink`` once UARTEN and TXE are on."""

    sink: ByteSink | None = None

    def read(self, offset: int, size: int) -> int:
        return 0x90 if offset == 0x018 else super().read(offset, size)  # FR: TXFE | RXFE

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x000:
            if self.sink is not None and self.regs.get(0x030, 0) & 0x101 == 0x101:
                self.sink(value & 0xFF)
            return
        super().write(offset, size, value)

    def baud(self, clock_hz: int) -> float:
        """Baud rate of IBRD/FBRD at UART clock ``clock_hz`` (clock / (16 x (IBRD + FBRD/64)))."""
        div = 64 * self.regs.get(0x024, 0) + self.regs.get(0x028, 0)
        return 4 * clock_hz / div if div else 0.0


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


CPUID = {"cortex-m0plus": 0x410CC601, "cortex-m4": 0x410FC241, "cortex-m7": 0x411FC272,
         "cortex-m33": 0x410FD214}
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
    now: CycleSource | None = None
    _systick_start: int = 0

    def __post_init__(self) -> None:
        self.regs.setdefault(SCS_CCR, CCR_RESET)

    def read(self, offset: int, size: int) -> int:
        if offset == 0x018 and self.now is not None and self.regs.get(0x010, 0) & 1:
            reload = (self.regs.get(0x014, 0) & 0xFFFFFF) + 1  # SysTick CVR counts down
            return (self.regs.get(0x018, 0) - (self.now() - self._systick_start)) % reload
        if offset == 0xD00:
            return CPUID.get(self.core, 0)
        if offset == 0xD80:
            return self.ccsidr
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0x018:  # any write clears CVR
            value = 0
        if offset in (0x010, 0x018) and self.now is not None:
            if offset == 0x010 and self.regs.get(0x010, 0) & 1 and not value & 1:
                self.regs[0x018] = self.read(0x018, 4)  # stopping freezes the count
            self._systick_start = self.now()
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
FAMILY_CCSIDR = {"stm32f7": CCSIDR_M7, "stm32h7": 0xF01FE019}  # H7: 16 KiB D-cache


def _core_peripherals(
    board: Board, now: CycleSource, on_config: Callable[[], None] | None
) -> list[Peripheral]:
    ccsidr = FAMILY_CCSIDR.get(board.family, 0) if board.core == "cortex-m7" else 0
    return [
        Scs("SCS", 0xE000E000, 0x1000, core=board.core, ccsidr=ccsidr, on_config=on_config,
            now=now),
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


def _stm32f7(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    return [*_stm32_common(), _new_usart(board, sink)]


def _stm32f4(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    uart = StmUsart(board.uart.instance, board.uart.base, 0x400, status_offset=0x00,
                    data_offset=0x04, brr_offset=0x08, sink=sink)
    return [*_stm32_common(), uart]


def _new_usart(board: Board, sink: ByteSink) -> StmUsart:
    uart = StmUsart(board.uart.instance, board.uart.base, 0x400, status_offset=0x1C,
                    data_offset=0x28, lpuart=board.uart.instance.startswith("LPUART"), sink=sink)
    uart.regs[0x1C] = 0xC0
    return uart


def _gpio_ports(base: int, count: int) -> list[Peripheral]:
    return [Peripheral(f"GPIO{chr(ord('A') + port)}", base + 0x400 * port, 0x400)
            for port in range(count)]


def _stm32l(board: Board, sink: ByteSink, gpio_base: int,
            extra: list[Peripheral]) -> list[Peripheral]:
    return [
        StmRccL4("RCC", 0x40021000, 0x400),
        Peripheral("FLASH", 0x40022000, 0x400),
        Peripheral("PWR", 0x40007000, 0x400),
        *_gpio_ports(gpio_base, 9),
        *extra,
        _new_usart(board, sink),
    ]


def _stm32l4(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    return _stm32l(board, sink, 0x48000000, [])


def _stm32l5(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    return _stm32l(board, sink, 0x42020000, [Peripheral("ICACHE", 0x40030400, 0x400)])


def _stm32h7(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    return [
        StmRccH7("RCC", 0x58024400, 0x400),
        StmH7Pwr("PWR", 0x58024800, 0x400),
        Peripheral("SYSCFG", 0x58000400, 0x400),
        Peripheral("FLASH", 0x52002000, 0x1000),
        *_gpio_ports(0x58020000, 11),
        _new_usart(board, sink),
    ]


def _nrf52(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    return [
        NrfClock("CLOCK", 0x40000000, 0x1000),
        Peripheral("NVMC", 0x4001E000, 0x1000),
        NrfUart(board.uart.instance, board.uart.base, 0x1000, sink=sink),
    ]


def _rp2040(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    pll = Rp2040Pll("PLL_SYS", 0x40028000, 0x1000)
    return [
        Rp2040Resets("RESETS", 0x4000C000, 0x1000),
        Rp2040Xosc("XOSC", 0x40024000, 0x1000),
        pll,
        Rp2040Clocks("CLOCKS", 0x40008000, 0x1000, pll=pll),
        Peripheral("WATCHDOG", 0x40058000, 0x1000),
        Rp2040Timer("TIMER", 0x40054000, 0x1000, now=now, clock_hz=board.clock_hz),
        Peripheral("IO_BANK0", 0x40014000, 0x1000),
        Peripheral("PADS_BANK0", 0x4001C000, 0x1000),
        Pl011(board.uart.instance, board.uart.base, 0x1000, sink=sink),
    ]


def _mps2(board: Board, sink: ByteSink, now: CycleSource) -> list[Peripheral]:
    return [CmsdkUart(board.uart.instance, board.uart.base, 0x1000, sink=sink)]


FAMILY_MODELS: dict[str, Callable[[Board, ByteSink, CycleSource], list[Peripheral]]] = {
    "stm32f7": _stm32f7,
    "stm32f4": _stm32f4,
    "stm32h7": _stm32h7,
    "stm32l4": _stm32l4,
    "stm32l5": _stm32l5,
    "nrf52": _nrf52,
    "rp2040": _rp2040,
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
    extra = family(board, sink, now) if family is not None else []
    return _core_peripherals(board, now, on_config) + extra
