"""What one emulated run of a firmware produces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

STOP_REASONS = ("end-line", "exit")  # any other stop is an error (faults.FirmwareStopped)


@dataclass(frozen=True)
class RegionStats:
    """Totals over every call of one function (callees included)."""

    calls: int
    instructions: int
    cycles: int


@dataclass(frozen=True)
class RunResult:
    """Outcome of :func:`tinyprune.emulator.run_elf`.

    Attributes:
        backend: ``unicorn`` or ``qemu``.
        stop_reason: ``end-line`` (the harness printed ``@tp end``, then parked) or ``exit``
            (semihosting exit).
        exit_status: status of the end line or the semihosting exit.
        uart: everything the firmware sent on the result UART (and semihosting writes).
        instructions: executed instructions from reset to the stop point (exact).
        cycles: estimated cycles (tinyprune.emulator.cycles model).
        regions: per requested function: calls, instructions and cycles.
        cycle_model: the model that priced ``cycles`` (``m7``, ``m4``, ``m0plus``, ``table``).
        memory_model: its memory settings (flash wait states, caches); empty for ``table``.
    """

    backend: str
    board: str
    stop_reason: str
    exit_status: int | None
    uart: str
    instructions: int
    cycles: int
    cycles_are_estimate: bool = True
    regions: Mapping[str, RegionStats] = field(default_factory=dict)
    cycle_model: str = "table"
    memory_model: Mapping[str, object] = field(default_factory=dict)
