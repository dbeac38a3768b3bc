"""``tinyprune monitor``: a real board's results, alone or checked against the build it runs.

Without a build folder the results are summarised (cycles at the board's clock, per layer, the
stack peak, the outputs). With ``--out BUILD`` they become the board's report in
``BUILD/board/`` (:mod:`tinyprune.hardware.report`), written through
:func:`tinyprune.outputs.output_part`: checked before the port is opened, the old board report
deleted first, the new one moved into place at the end, nothing left behind by a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board, load_board
from tinyprune.hardware.monitor import DEFAULT_BAUD, DEFAULT_TIMEOUT_S, Capture, read_results

BOARD_PART = "board"  # the sub-folder of a build folder that holds a real board's report
UART_LOG = "uart.log"  # everything the monitor received, beside the board's report


@dataclass(frozen=True)
class MonitorRequest:
    """What ``tinyprune monitor`` was asked."""

    port: str
    board: str | None = None
    baud: int | None = None
    build: Path | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    reset: bool = False
    probe: str | None = None


@dataclass(frozen=True)
class MonitorOutcome:
    """The capture, the board, and with a build folder the board's report and where it went."""

    capture: Capture
    board: Board | None
    report: dict[str, Any] | None = None
    report_dir: Path | None = None


def _board_of(req: MonitorRequest, build_report: dict[str, Any] | None) -> Board | None:
    built_for = build_report["board"]["name"] if build_report is not None else None
    if req.board is not None and built_for is not None and req.board != built_for:
        raise UsageError(f"--board {req.board}: the build in {req.build} is for {built_for}")
    name = req.board or built_for
    return load_board(name) if name is not None else None


def _capture(req: MonitorRequest, board: Board | None, on_line: Callable[[str], None] | None,
             on_open: Callable[[], None] | None) -> Capture:
    reset: Callable[[], None] | None = None
    if req.reset:
        if board is None:
            raise UsageError("--reset: needs --board (or --out BUILD) to know the probe's target")
        from tinyprune.hardware.flash import flash_target, reset_board

        flash_target(board)  # a board without one is refused before the port is opened
        target = board

        def reset() -> None:
            reset_board(target, probe=req.probe)

    def after_open() -> None:
        if on_open is not None:
            on_open()
        if reset is not None:
            reset()

    baud = req.baud if req.baud is not None else (
        board.uart.baud if board is not None else DEFAULT_BAUD)
    return read_results(req.port, baud=baud, timeout=req.timeout, after_open=after_open,
                        on_line=on_line)


def monitor(req: MonitorRequest, on_line: Callable[[str], None] | None = None,
            on_open: Callable[[], None] | None = None) -> MonitorOutcome:
    """Reads the board's results (and with ``req.build`` writes its report); see the module doc.

    ``on_line`` is called with every line received, ``on_open`` once the port is open.

    Raises:
        UsageError: bad options, a build folder that is not tinyprune's or has no reference
            outputs, a port that cannot be opened.
        ToolMissing: ``--reset`` without a probe.
        HardwareError / CheckFailed: no results before the timeout, a garbled line, a fault, or
            firmware other than the build's.
    """
    if req.build is None:
        board = _board_of(req, None)
        return MonitorOutcome(_capture(req, board, on_line, on_open), board)
    from tinyprune.hardware.flash import FIRMWARE_ELF
    from tinyprune.hardware.report import board_report, check_same_firmware
    from tinyprune.outputs import output_part
    from tinyprune.protocol import EXPECTED_FILE, read_expected
    from tinyprune.report import read_report, write_outputs

    build_report = read_report(req.build)
    expected = read_expected(req.build / FIRMWARE_ELF.parent / EXPECTED_FILE)
    board = _board_of(req, build_report)
    with output_part(req.build, BOARD_PART) as work:
        capture = _capture(req, board, on_line, on_open)
        (work / UART_LOG).write_text("\n".join(capture.lines) + "\n", encoding="utf-8")
        check_same_firmware(capture.results, expected, str(req.build))
        report = board_report(build_report, expected, capture.results, port=req.port)
        write_outputs(report, work)
    return MonitorOutcome(capture, board, report, req.build / BOARD_PART)
