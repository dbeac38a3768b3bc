"""How long an emulated run may take, derived from the firmware's own result lines.

An instruction budget per phase of the harness (docs/emulator.md), measured by the emulator:

========================================  ============================================
phase                                     the next line must come within
========================================  ============================================
reset -> ``@tp begin``                    :data:`BOOT_INSTRUCTIONS`
``@tp begin`` -> first ``@tp out``        :data:`FIRST_INFERENCE_INSTRUCTIONS`
each later ``@tp out``, ``@tp end``       ``max(SAMPLE_FLOOR, SAMPLE_FACTOR x`` the first
                                          inference's instructions``)``
========================================  ============================================

So a run of N samples may take about ``10 x N`` times its first inference, and a loop that never
ends is stopped after seconds: within the boot budget, or ten inferences after the last result
line. A program that cannot print the harness's lines (no ``@tp begin`` in its image: a user's own
firmware run with ``tinyprune run``) has one fixed limit, :data:`OTHER_PROGRAM_INSTRUCTIONS`.
``max_instructions`` replaces all of this with one fixed total. A wall-clock limit
(``timeout_s``) covers what no instruction count sees (QEMU asleep, a slow machine).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

BOOT_INSTRUCTIONS = 10_000_000
FIRST_INFERENCE_INSTRUCTIONS = 500_000_000
SAMPLE_FACTOR = 10
SAMPLE_FLOOR = 5_000_000
OTHER_PROGRAM_INSTRUCTIONS = 2_000_000_000  # ~4 min of unicorn; the earlier default of every run
DEFAULT_TIMEOUT_S = 1800.0


@dataclass(frozen=True)
class Limits:
    """Limits of one run.

    Attributes:
        max_instructions: a fixed limit on the whole run; None derives it (module docstring).
        timeout_s: wall-clock limit of the whole run in seconds; None for none.
    """

    max_instructions: int | None = None
    timeout_s: float | None = DEFAULT_TIMEOUT_S


class Budget:
    """The instruction deadline of the current phase, moved on by the harness's lines."""

    def __init__(self, limits: Limits, harness: bool = True) -> None:
        """``harness``: the program can print the harness's lines (see the module docstring)."""
        self.limits = limits
        self.started = time.monotonic()
        self.fixed = limits.max_instructions is not None or not harness
        if limits.max_instructions is not None:
            self.deadline = limits.max_instructions
            self._why = f"the limit of {limits.max_instructions:,} instructions"
        elif not harness:
            self.deadline = OTHER_PROGRAM_INSTRUCTIONS
            self._why = (
                f"the limit of {OTHER_PROGRAM_INSTRUCTIONS:,} instructions of a program that "
                f"prints no '@tp' result lines"
            )
        else:
            self.deadline = BOOT_INSTRUCTIONS
            self._why = f"no '@tp begin' line within the first {BOOT_INSTRUCTIONS:,} instructions"
        self._begin_at = 0
        self._per_sample: int | None = None

    def on_line(self, line: str, instructions: int) -> None:
        """Take one UART line printed after ``instructions`` instructions."""
        if self.fixed:
            return
        if line.startswith("@tp begin"):
            self._begin_at = instructions
            self.deadline = instructions + FIRST_INFERENCE_INSTRUCTIONS
            self._why = (
                f"no '@tp out' line: the first inference took more than "
                f"{FIRST_INFERENCE_INSTRUCTIONS:,} instructions"
            )
        elif line.startswith("@tp out"):
            if self._per_sample is None:
                first = instructions - self._begin_at
                self._per_sample = max(SAMPLE_FLOOR, SAMPLE_FACTOR * first)
                self._why = (
                    f"no result line within {self._per_sample:,} instructions of the last one "
                    f"(the larger of {SAMPLE_FLOOR:,} and {SAMPLE_FACTOR} x the first "
                    f"inference's {first:,})"
                )
            self.deadline = instructions + self._per_sample

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def out_of_time(self) -> bool:
        """Past the wall-clock limit."""
        timeout = self.limits.timeout_s
        return timeout is not None and self.elapsed() > timeout

    def instructions_message(self, instructions: int) -> str:
        """Why the run stopped at ``instructions``: which limit, and how to set another."""
        return (
            f"no end after {instructions:,} instructions: {self._why} (an infinite loop? "
            f"`tinyprune run --max-instructions N` sets a fixed limit)"
        )

    def time_message(self) -> str:
        """Why the run stopped on the wall clock."""
        return (
            f"no end after {self.elapsed():.1f} s, past the wall-clock limit of "
            f"{self.limits.timeout_s:g} s (`tinyprune run --timeout S` sets another)"
        )
