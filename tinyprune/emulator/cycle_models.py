"""The cycle models a run can be priced with, chosen by name or by the board's core.

``m7`` (dual-issue scheduler, ``cycle_m7``), ``m4`` (TRM timings with load pipelining,
``cycle_m4``), ``m0plus`` (2-stage pipeline, ``cycle_m0plus``) add the board's memory costs
(``cycle_memory``); ``table`` is the flat per-class table of shared/FACTS.md (``cycles.py``), kept
so that figures stay comparable with the ones recorded there (no memory costs).

A model prices one basic block once (``block``); the emulator caches the result, so the model's
work does not grow with the number of executed instructions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tinyprune.config import CYCLE_MODELS
from tinyprune.emulator import cycle_m0plus, cycle_m4, cycle_m7
from tinyprune.emulator.cycle_memory import MemoryCosts, RegRead
from tinyprune.emulator.cycle_ops import Op, decode_block
from tinyprune.emulator.cycles import BlockCost, block_cost
from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board

MODEL_NAMES = CYCLE_MODELS
DEFAULT_FOR_CORE = {"cortex-m7": "m7", "cortex-m4": "m4", "cortex-m3": "m4",
                    "cortex-m33": "m4", "cortex-m55": "m7", "cortex-m0plus": "m0plus"}


@dataclass(frozen=True)
class _Core:
    """What a core model contributes: block issue cycles and the cost of leaving/entering."""

    schedule: Callable[[Sequence[Op], Board], int]
    leave: Callable[[Op | None, int], tuple[int, int]]
    enter: Callable[[Op | None, int], int]


_CORES: dict[str, _Core] = {
    "m7": _Core(lambda ops, _b: cycle_m7.schedule(ops), cycle_m7.branch, lambda _op, _a: 0),
    "m4": _Core(lambda ops, _b: cycle_m4.schedule(ops), lambda op, _f: cycle_m4.branch(op),
                cycle_m4.entry),
    "m0plus": _Core(lambda ops, b: cycle_m0plus.schedule(ops, b.timing.multiplier == "small"),
                    lambda op, _f: cycle_m0plus.branch(op), lambda _op, _a: 0),
}


class CycleModel:
    """One run's pricing: a core model and the board's memory costs.

    Args:
        name: one of :data:`MODEL_NAMES`.
        board: gives the flash region, clock and ``[timing]`` settings.
    """

    def __init__(self, name: str, board: Board) -> None:
        self.name = name
        self.board = board
        self.memory = MemoryCosts.for_board(board) if name != "table" else None

    def describe(self) -> dict[str, Any]:
        """The report's ``run.memory_model`` (None for ``table``: no memory costs)."""
        return {} if self.memory is None else self.memory.describe()

    def block(self, code: bytes, address: int, reg: RegRead | None = None) -> BlockCost:
        """Price the block of Thumb ``code`` at ``address``.

        Args:
            reg: reads a register (capstone id) at the block's entry, for the data-side memory
                model; None prices every load as RAM.
        """
        table = block_cost(code, address)
        if self.memory is None or table.idle:
            return table
        core = _CORES[self.name]
        ops, undecoded = decode_block(code, address)
        fetch_every, fetch_once = self.memory.fetch(address, len(code))
        data = self.memory.data(ops, reg)
        taken, fall = core.leave(ops[-1] if ops else None, address + len(code))
        cycles = core.schedule(ops, self.board) + undecoded + fetch_every + round(data)
        return BlockCost(table.instructions, cycles, False, taken_penalty=taken,
                         fall_penalty=fall, entry_penalty=core.enter(ops[0] if ops else None,
                                                                     address),
                         cold_cycles=fetch_once, data_bases=self.memory.data_bases(ops))


def model_for(board: Board, name: str | None = None) -> CycleModel:
    """The model called ``name``, or the board's core default when None.

    Raises:
        UsageError: an unknown name (the message lists the known ones).
    """
    chosen = name or DEFAULT_FOR_CORE.get(board.core, "table")
    if chosen not in MODEL_NAMES:
        raise UsageError(f"--cycle-model: expected one of {', '.join(MODEL_NAMES)}, "
                         f"received {chosen!r}")
    return CycleModel(chosen, board)


def unicorn_register_reader(uc: Any) -> RegRead:
    """A :data:`RegRead` over a unicorn engine (capstone register ids to unicorn's)."""
    from capstone import arm_const as A
    from unicorn import arm_const as R

    ids = {getattr(A, f"ARM_REG_R{i}"): getattr(R, f"UC_ARM_REG_R{i}") for i in range(13)}
    ids.update({A.ARM_REG_SP: R.UC_ARM_REG_SP, A.ARM_REG_LR: R.UC_ARM_REG_LR,
                A.ARM_REG_PC: R.UC_ARM_REG_PC})

    def read(reg: int) -> int:
        uc_id = ids.get(reg)
        return -1 if uc_id is None else int(uc.reg_read(uc_id))

    return read
