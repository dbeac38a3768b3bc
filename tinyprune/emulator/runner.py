"""``run_elf``: one entry point over the emulator backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tinyprune.emulator.elf import read_elf
from tinyprune.emulator.result import RunResult
from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board

BACKENDS = ("unicorn", "qemu")
DEFAULT_MAX_INSTRUCTIONS = 2_000_000_000


def run_elf(
    board: Board,
    elf: str | Path,
    *,
    backend: str = "unicorn",
    regions: Sequence[str] = (),
    max_instructions: int = DEFAULT_MAX_INSTRUCTIONS,
    stop_on_end_line: bool = True,
    on_line: Callable[[str], None] | None = None,
    cycle_model: str | None = None,
) -> RunResult:
    """Run any ELF built for ``board`` on an emulator, from reset until it ends.

    The run ends at the harness's ``@tp end`` line (then the firmware is let run into its idle
    loop, at most 100k instructions more, so counts are comparable between backends), at a
    semihosting exit, or when the firmware parks in a branch-to-self loop.

    Args:
        board: the board the ELF was built for; its memory map is emulated exactly.
        elf: path of the ELF file.
        backend: ``unicorn`` (every board) or ``qemu`` (boards with a QEMU machine).
        regions: function names to profile (calls, instructions, cycles incl. callees);
            unicorn only.
        max_instructions: the run fails past this many instructions.
        stop_on_end_line: stop at the ``@tp end`` line (else run until exit or idle).
        on_line: called with each UART line as it is printed (unicorn; e.g. for progress).
        cycle_model: ``m7``, ``m4``, ``m0plus`` or ``table`` (docs/cycle_models.md); None: the
            board's core. QEMU runs are always priced with ``table``.

    Raises:
        UsageError: unknown backend, backend not available for the board, unknown region.
        ToolMissing: qemu-system-arm is not installed (qemu backend).
        EmulationError: the firmware faulted, overflowed its stack or did not end.
    """
    if backend == "qemu" and cycle_model not in (None, "table"):
        raise UsageError(f"--cycle-model {cycle_model} needs the unicorn backend (QEMU runs are "
                         "priced with the table model)")
    image = read_elf(elf)
    if backend == "unicorn":
        from tinyprune.emulator.unicorn_backend import run_unicorn

        return run_unicorn(
            board,
            image,
            regions=regions,
            max_instructions=max_instructions,
            stop_on_end_line=stop_on_end_line,
            on_line=on_line,
            cycle_model=cycle_model,
        )
    if backend == "qemu":
        from tinyprune.emulator.qemu_backend import run_qemu

        if regions:
            raise UsageError("--region needs the unicorn backend (QEMU has no call hooks here)")
        return run_qemu(
            board, image, max_instructions=max_instructions, stop_on_end_line=stop_on_end_line
        )
    raise UsageError(
        f"emulator backend: expected one of {', '.join(BACKENDS)}, received {backend!r}"
    )
