"""``run_elf``: one entry point over the emulator backends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from tinyprune.emulator.elf import read_elf
from tinyprune.emulator.limits import DEFAULT_TIMEOUT_S, Limits
from tinyprune.emulator.result import RunResult
from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board

BACKENDS = ("unicorn", "qemu")


def run_elf(
    board: Board,
    elf: str | Path,
    *,
    backend: str = "unicorn",
    regions: Sequence[str] = (),
    max_instructions: int | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    stop_on_end_line: bool = True,
    on_line: Callable[[str], None] | None = None,
    cycle_model: str | None = None,
) -> RunResult:
    """Run any ELF built for ``board`` on an emulator, from reset until it ends.

    The run ends at the harness's ``@tp end`` line (then the firmware is let run into its idle
    loop, at most 100k instructions more, so counts are comparable between backends) or at a
    semihosting exit. Anything else is an error that names the PC and the function and shows the
    UART output so far: a fault (as the Armv7-M core would raise it), a branch-to-self loop or a
    return from ``main`` before the ``@tp end`` line, a run past its limits.

    Args:
        board: the board the ELF was built for; its memory map is emulated exactly.
        elf: path of the ELF file.
        backend: ``unicorn`` (every board) or ``qemu`` (boards with a QEMU machine).
        regions: function names to profile (calls, instructions, cycles incl. callees);
            unicorn only.
        max_instructions: a fixed limit on the run's instructions. None (the default) derives
            the limit from the harness's result lines: ten times the first inference per sample
            (``tinyprune.emulator.limits``), so a firmware that hangs is stopped in seconds.
        timeout_s: wall-clock limit in seconds (None: none).
        stop_on_end_line: stop at the ``@tp end`` line (else run until exit or idle).
        on_line: called with each UART line as it is printed (unicorn; e.g. for progress).
        cycle_model: ``m7``, ``m4``, ``m0plus`` or ``table`` (docs/cycle_models.md); None: the
            board's core. QEMU runs are always priced with ``table``.

    Raises:
        UsageError: unknown backend, backend not available for the board, unknown region, a
            limit that is not positive.
        ToolMissing: qemu-system-arm is not installed (qemu backend).
        EmulationError: (``FirmwareStopped``) the firmware faulted, parked or returned before its
            end line, or ran past a limit.
    """
    if backend == "qemu" and cycle_model not in (None, "table"):
        raise UsageError(f"--cycle-model {cycle_model} needs the unicorn backend (QEMU runs are "
                         "priced with the table model)")
    limits = _limits(max_instructions, timeout_s)
    image = read_elf(elf)
    if backend == "unicorn":
        from tinyprune.emulator.unicorn_backend import run_unicorn

        return run_unicorn(
            board,
            image,
            regions=regions,
            limits=limits,
            stop_on_end_line=stop_on_end_line,
            on_line=on_line,
            cycle_model=cycle_model,
        )
    if backend == "qemu":
        from tinyprune.emulator.qemu_backend import run_qemu

        if regions:
            raise UsageError("--region needs the unicorn backend (QEMU has no call hooks here)")
        return run_qemu(board, image, limits=limits, stop_on_end_line=stop_on_end_line)
    raise UsageError(
        f"emulator backend: expected one of {', '.join(BACKENDS)}, received {backend!r}"
    )


def _limits(max_instructions: int | None, timeout_s: float | None) -> Limits:
    if max_instructions is not None and max_instructions <= 0:
        raise UsageError(
            f"max instructions: expected a positive number, received {max_instructions}"
        )
    if timeout_s is not None and timeout_s <= 0:
        raise UsageError(f"timeout: expected a positive number of seconds, received {timeout_s:g}")
    return Limits(max_instructions=max_instructions, timeout_s=timeout_s)
