"""Memory costs for the cycle models: flash wait states, I-cache/ART and D-cache, from the board.

A deliberately simple model, priced once per basic block (so the emulator keeps its speed):

- **Instruction fetch** from flash: with the I-cache (or ART) on, each flash line the block spans
  costs one line fill (``wait states + 1`` cycles) the first time the block runs, never again
  (an infinite cache: no capacity or conflict misses). With it off, every execution of the block
  pays those fills (no prefetch overlap).
- **Data reads** from flash (weights, constants, literal pools): which loads read flash is found
  at the block's first execution from the base registers' values at its entry (a pointer stays
  in its region when the block only adds to it). With the D-cache on, a flash load of ``s`` bytes
  costs ``s / line x (wait states + 1)``: weights stream through the cache with no reuse (an upper
  bound when a filter fits in the cache). With it off, every flash access pays the wait states.
- **TCM** (the board's ``[memory.itcm]`` / ``[memory.dtcm]``) is zero-wait for fetches and data:
  code the build placed in ITCM pays no fills, weights placed in DTCM no flash wait states.
- **SRAM** (the rest of RAM; on the STM32H7 the AXI SRAM behind the D-cache) is zero-wait too,
  i.e. every access a D-cache hit: an optimistic bound. Stores never stall (write buffer); no bus
  contention.

The block's decision is cached with its cost until the next call of a kernel from
``tp_model_invoke`` (the unicorn backend prices such blocks again then): a block that later reads
other memory through the same registers within one layer keeps its first pricing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from capstone import arm_const as A

from tinyprune.emulator.cycle_ops import Kind, Op
from tinyprune.firmware.boards import Board, MemoryRegion

RegRead = Callable[[int], int]
_LOAD_BYTES = {"ldrb": 1, "ldrsb": 1, "ldrbt": 1, "ldrsbt": 1, "ldrexb": 1, "ldab": 1, "tbb": 1,
               "ldrh": 2, "ldrsh": 2, "ldrht": 2, "ldrsht": 2, "ldrexh": 2, "ldah": 2, "tbh": 2}


@dataclass(frozen=True)
class MemoryCosts:
    """The memory settings of one run, as the report shows them next to the cycle figures."""

    flash: MemoryRegion
    wait_states: int
    line_bytes: int
    icache: bool
    dcache: bool
    itcm: MemoryRegion | None = None
    dtcm: MemoryRegion | None = None

    @classmethod
    def for_board(cls, board: Board) -> MemoryCosts:
        t = board.timing
        return cls(board.flash, t.flash_wait_states(board.clock_hz), t.flash_line_bytes,
                   t.icache, t.dcache, board.itcm, board.dtcm)

    def describe(self) -> dict[str, object]:
        """The report's ``run.memory_model``."""
        out: dict[str, object] = {"flash_wait_states": self.wait_states,
                                  "flash_line_bytes": self.line_bytes, "icache": self.icache,
                                  "dcache": self.dcache, "ram_wait_states": 0}
        if self.itcm is not None or self.dtcm is not None:
            out["tcm_wait_states"] = 0
        return out

    def memory_of(self, address: int) -> str:
        """Which memory ``address`` is priced as: ``flash``, ``itcm``, ``dtcm`` or ``ram``."""
        for name, region in (("flash", self.flash), ("itcm", self.itcm), ("dtcm", self.dtcm)):
            if region is not None and region.contains(address):
                return name
        return "ram"

    @property
    def line_fill(self) -> int:
        return self.wait_states + 1

    def fetch(self, address: int, size: int) -> tuple[int, int]:
        """(cycles every execution, cycles once) of fetching a block of code."""
        if self.wait_states == 0 or size <= 0 or not self.flash.contains(address):
            return 0, 0
        lines = (address + size - 1) // self.line_bytes - address // self.line_bytes + 1
        fills = lines * self.line_fill
        return (0, fills) if self.icache else (fills, 0)

    def data(self, ops: Sequence[Op], reg: RegRead | None) -> float:
        """Extra cycles of one execution of ``ops`` for their loads from flash."""
        if self.wait_states == 0 or reg is None:
            return 0.0
        extra = 0.0
        in_flash: dict[int, bool] = {}
        for op in ops:
            if op.kind in (Kind.LOAD, Kind.LOAD2, Kind.MULTI) and op.mnemonic not in ("pld",
                                                                                      "pli"):
                extra += self._load(op, self._flash_base(op, in_flash, reg))
            for w in op.writes:  # a pointer keeps its region only when it updates itself
                if w not in op.reads or (op.kind in (Kind.LOAD, Kind.LOAD2) and w != op.base):
                    in_flash[w] = False
        return extra

    def data_bases(self, ops: Sequence[Op]) -> tuple[int, ...]:
        """The base registers :meth:`data` reads at the block's entry (a load through a pointer;
        empty when the flash is zero-wait)."""
        if self.wait_states == 0:
            return ()
        bases: dict[int, None] = {}
        for op in ops:
            if op.kind in (Kind.LOAD, Kind.LOAD2) and op.mnemonic not in ("pld", "pli"):
                bases[op.base] = None
            elif op.kind is Kind.MULTI and op.mnemonic.startswith(("ldm", "vldm")):
                bases[min(op.reads)] = None
        return tuple(b for b in bases if b not in (0, A.ARM_REG_PC, A.ARM_REG_SP))

    def signature(self, bases: Sequence[int], reg: RegRead) -> tuple[bool, ...]:
        """Which of ``bases`` point into flash now: equal signatures give equal prices."""
        flash = self.flash
        return tuple(flash.contains(reg(b)) for b in bases)

    def _flash_base(self, op: Op, known: dict[int, bool], reg: RegRead) -> bool:
        if op.kind is Kind.MULTI:
            if op.mnemonic.startswith(("push", "vpush")) or not op.mnemonic.startswith(
                    ("ldm", "pop", "vldm", "vpop")):
                return False  # stores
            base = A.ARM_REG_SP if op.mnemonic.startswith(("pop", "vpop")) else min(op.reads)
        else:
            base = op.base
        if base == A.ARM_REG_PC:
            return self.flash.contains(op.address)
        if base not in known:
            known[base] = self.flash.contains(reg(base))
        return known[base]

    def _load(self, op: Op, from_flash: bool) -> float:
        if not from_flash:
            return 0.0
        if op.kind is Kind.MULTI:
            size, accesses = 4 * op.nregs, (op.nregs + 1) // 2
        elif op.kind is Kind.LOAD2:
            size, accesses = 8, 1
        else:
            size, accesses = _LOAD_BYTES.get(op.mnemonic, 4), 1
        if self.dcache:
            return size / self.line_bytes * self.line_fill
        return float(accesses * self.wait_states)
