"""Which kernels go to ITCM and which weights to DTCM: a linker-section choice (docs/tcm.md).

The policy, per memory, is greedy by estimated cycles saved per byte: a candidate is placed
when it **pays** (it saves at least :data:`MIN_SAVED_CYCLES` per inference under the board's
memory costs) and it **fits** (what is left of the TCM, and for a DTCM inside RAM what is left
of RAM and of the RAM budget). Nothing else changes: the same objects are linked again with the
chosen input sections (``.text.<function>``, ``.rodata.<array>``: the build compiles with
``-ffunction-sections -fdata-sections``) moved into ``.itcm_text`` / ``.dtcm_rodata``, which the
startup code copies from flash like ``.data``.

Candidates are **layers** for the DTCM (the constant arrays one call reads; an array two layers
share goes with the first) and **kernels** for the ITCM (one per C function the plan calls). The
emulator prices a kernel's loads again at every layer's call (``unicorn_backend``), so a kernel
whose layers read some weights from DTCM and some from flash is priced per layer.

Estimates (they decide, the emulated run measures):
- **weights** (DTCM): a layer reads its arrays ``max(1, MACs / (2 x weight elements))`` times per
  inference (each weight is used once per output pixel; the conv kernels take two pixels per
  pass); a layer without MACs (a lookup table: ADD, activations) reads
  :data:`TABLE_BYTES_PER_OUTPUT` bytes per output element. Saved: those bytes' flash cost,
  ``bytes / line x (wait states + 1)`` through the D-cache, ``bytes / 4 x wait states`` without
  it.
- **code** (ITCM): with the I-cache (ART) on a kernel in flash pays its line fills once per run,
  not per inference: it never pays. Without it, a kernel fetches about
  :data:`FETCH_BYTES_PER_CYCLE` bytes per estimated cycle (the plan's estimate, else
  :data:`UNESTIMATED_CYCLES_PER_MAC` per MAC), each line a fill. Only the kernel's own function
  moves: helpers it calls stay in flash (reached through linker veneers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyprune.firmware.boards import Board

if TYPE_CHECKING:
    from tinyprune.plan import Plan

log = logging.getLogger(__name__)

MIN_SAVED_CYCLES = 1000  # per inference: below this a placement does not pay
FETCH_BYTES_PER_CYCLE = 2.0  # Thumb-2 code, ~1.5 instructions of 2-4 bytes per M7 cycle
UNESTIMATED_CYCLES_PER_MAC = 2  # a call the plan has no estimate for (depthwise: ~2-5 measured)
TABLE_BYTES_PER_OUTPUT = 4  # a table kernel (no MACs): about one word read per output element
ALIGN = 4
RAM_MARGIN = 256  # bytes of RAM left free after the placement (heap start alignment, slack)
ITCM_TEXT, DTCM_RODATA = ".itcm_text", ".dtcm_rodata"


@dataclass(frozen=True)
class Candidate:
    """One kernel: its code (``kind="code"``) or the constant arrays its calls read."""

    kernel: str
    kind: str  # "code" (ITCM) or "weights" (DTCM)
    symbols: tuple[str, ...]
    nbytes: int
    saved_cycles: float  # estimated, per inference
    layer: str = ""  # the layer whose arrays these are ("" for code)

    @property
    def memory(self) -> str:
        return "itcm" if self.kind == "code" else "dtcm"


@dataclass(frozen=True)
class Decision:
    candidate: Candidate
    placed: bool
    reason: str

    def to_report(self) -> dict[str, Any]:
        c = self.candidate
        return {"kernel": c.kernel, "layer": c.layer, "kind": c.kind, "memory": c.memory,
                "placed": self.placed,
                "bytes": c.nbytes, "est_saved_cycles": round(c.saved_cycles),
                "symbols": list(c.symbols), "reason": self.reason}


@dataclass(frozen=True)
class Placement:
    """The build's TCM choice, for the linker script and ``report.json``'s ``firmware.tcm``."""

    decisions: tuple[Decision, ...] = ()
    enabled: bool = True
    note: str = ""  # why nothing was placed, or why the placement was dropped

    @property
    def itcm_functions(self) -> tuple[str, ...]:
        return self._placed("code")

    @property
    def dtcm_arrays(self) -> tuple[str, ...]:
        return self._placed("weights")

    def _placed(self, kind: str) -> tuple[str, ...]:
        return tuple(s for d in self.decisions if d.placed and d.candidate.kind == kind
                     for s in d.candidate.symbols)

    def bytes_in(self, memory: str) -> int:
        return sum(d.candidate.nbytes for d in self.decisions
                   if d.placed and d.candidate.memory == memory)

    @property
    def any(self) -> bool:
        return any(d.placed for d in self.decisions)

    def dropped(self, why: str) -> Placement:
        """The same decisions, none placed (the link did not fit)."""
        return Placement(tuple(Decision(d.candidate, False, why if d.placed else d.reason)
                               for d in self.decisions), self.enabled, why)

    def to_report(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "itcm_bytes": self.bytes_in("itcm"),
                "dtcm_bytes": self.bytes_in("dtcm"),
                "est_saved_cycles": round(sum(d.candidate.saved_cycles for d in self.decisions
                                              if d.placed)),
                "note": self.note, "decisions": [d.to_report() for d in self.decisions]}


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def choose(candidates: Iterable[Candidate], free: Mapping[str, int],
           min_saved: float = MIN_SAVED_CYCLES) -> Placement:
    """Greedy by saved cycles per byte, per memory: place what pays and fits.

    Args:
        candidates: kernels' code and weights.
        free: bytes available per memory (``itcm``, ``dtcm``); a memory not named has none.
        min_saved: estimated cycles per inference below which a candidate does not pay.
    """
    left = dict(free)
    order = sorted(candidates, key=lambda c: (-c.saved_cycles / max(c.nbytes, 1), c.kernel,
                                              c.layer))
    decisions = []
    for c in order:
        room = left.get(c.memory, 0)
        if c.saved_cycles < min_saved:
            reason = (f"does not pay: est. {c.saved_cycles:,.0f} cycles saved per inference "
                      f"(< {min_saved:,.0f})")
            decisions.append(Decision(c, False, reason))
        elif c.nbytes > room:
            reason = f"does not fit: {c.nbytes:,} bytes, {room:,} left in {c.memory.upper()}"
            decisions.append(Decision(c, False, reason))
        else:
            left[c.memory] = room - c.nbytes
            reason = (f"est. {c.saved_cycles:,.0f} cycles saved per inference "
                      f"({c.saved_cycles / max(c.nbytes, 1):.2f} per byte)")
            decisions.append(Decision(c, True, reason))
    return Placement(tuple(decisions))


def _symbols_in(value: Any, known: set[str]) -> Iterable[str]:
    if isinstance(value, str):
        if value in known:
            yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _symbols_in(v, known)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _symbols_in(v, known)


def _flash_cost_per_byte(board: Board) -> tuple[float, float]:
    """(data, fetch) cycles per byte read from flash under the board's ``[timing]``."""
    t = board.timing
    ws = t.flash_wait_states(board.clock_hz)
    if ws == 0:
        return 0.0, 0.0
    data = (ws + 1) / t.flash_line_bytes if t.dcache else ws / 4
    fetch = 0.0 if t.icache else (ws + 1) / t.flash_line_bytes
    return data, fetch


def candidates(plan: Plan, board: Board, function_bytes: Mapping[str, int],
               memory_costs: bool = True) -> list[Candidate]:
    """Every kernel of ``plan`` as an ITCM (code) candidate, every layer's constant arrays as a
    DTCM (weights) candidate.

    Args:
        function_bytes: code size of each function in the firmware (from the first link).
        memory_costs: False when the run is priced without memory costs (``table``): nothing
            saves cycles.
    """
    data_cost, fetch_cost = _flash_cost_per_byte(board) if memory_costs else (0.0, 0.0)
    sizes = {c.symbol: _aligned(c.nbytes) for c in plan.consts}
    elements = {c.symbol: int(c.values.size) for c in plan.consts}
    known = set(sizes)
    cycles: dict[str, float] = {}
    out: list[Candidate] = []
    taken: set[str] = set()
    for p in plan.code_ops:
        call = p.call
        used = [s for s in dict.fromkeys(_symbols_in(call.params, known)) if s not in taken]
        taken.update(used)
        est = call.est_cycles
        if est is None:
            est = UNESTIMATED_CYCLES_PER_MAC * call.macs
        cycles[call.kernel] = cycles.get(call.kernel, 0.0) + float(est)
        if board.dtcm is not None and used:
            biggest = max(elements[s] for s in used)
            passes = max(1, call.macs // max(2 * biggest, 1))
            nbytes = sum(sizes[s] for s in used)
            read = passes * nbytes
            if call.macs == 0:  # a lookup table: a few bytes read per output element
                read = max(read, TABLE_BYTES_PER_OUTPUT * _outputs(plan, p.op.outputs))
            out.append(Candidate(call.kernel, "weights", tuple(used), nbytes, read * data_cost,
                                 layer=p.op.name))
    if board.itcm is not None:
        for kernel, est_cycles in cycles.items():
            if kernel in function_bytes:
                saved = est_cycles * FETCH_BYTES_PER_CYCLE * fetch_cost
                out.append(Candidate(kernel, "code", (kernel,),
                                     _aligned(function_bytes[kernel]), saved))
    return out


def _outputs(plan: Plan, outputs: Iterable[int]) -> int:
    total = 0
    for index in outputs:
        if index >= 0:
            shape = plan.graph.tensors[index].shape
            total += int(np.prod(shape)) if shape else 1
    return total


def free_bytes(board: Board, *, stack_bytes: int, ram_used: int,
               ram_budget: int | None) -> dict[str, int]:
    """TCM bytes a placement may take, after the first link used ``ram_used`` bytes of RAM.

    A DTCM that starts the RAM region (STM32F7) holds the stack first, then the placed weights,
    then ``.data``/``.bss``: the weights must end inside the DTCM, and RAM as a whole (and the
    RAM budget) must still fit what the first link used plus them.
    """
    free = {"itcm": board.itcm.length if board.itcm is not None else 0, "dtcm": 0}
    if board.dtcm is not None:
        if board.dtcm_in_ram:
            in_dtcm = board.dtcm.length - _aligned8(stack_bytes)
            limit = min(board.ram.length, ram_budget or board.ram.length)
            free["dtcm"] = max(0, min(in_dtcm, limit - ram_used - RAM_MARGIN))
        else:
            free["dtcm"] = board.dtcm.length
    return free


def _aligned8(n: int) -> int:
    return (n + 7) // 8 * 8


Placer = Callable[[Mapping[str, int], int], Placement]


def placer(plan: Plan, board: Board, *, stack_bytes: int, ram_budget: int | None,
           memory_costs: bool = True) -> Placer:
    """What the firmware build calls after its first link: (function sizes, RAM used) -> choice."""

    def place(function_bytes: Mapping[str, int], ram_used: int) -> Placement:
        found = candidates(plan, board, function_bytes, memory_costs)
        free = free_bytes(board, stack_bytes=stack_bytes, ram_used=ram_used,
                          ram_budget=ram_budget)
        chosen = choose(found, free)
        log.info("TCM placement: ITCM %d B, DTCM %d B", chosen.bytes_in("itcm"),
                 chosen.bytes_in("dtcm"))
        return chosen

    return place


def off(why: str) -> Placement:
    """The report's entry when placement is turned off (``--no-tcm``) or the board has no TCM."""
    return Placement((), enabled=False, note=why)
