"""Read a real board's ``@tp`` result lines from its serial port (pyserial).

The firmware prints its results once, after reset, on the board's result UART (on a Nucleo the
ST-LINK's virtual COM port). :func:`read_results` opens the port, optionally resets the board
once the port is open (so the run is captured from its first line), and feeds every line to the
same parser as the emulators (:class:`tinyprune.protocol.ResultStream`, serial mode) until the
``@tp end`` line or the timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tinyprune.errors import CheckFailed, HardwareError, ToolMissing, UsageError
from tinyprune.protocol import HarnessResults, ResultStream

log = logging.getLogger(__name__)

DEFAULT_BAUD = 115200
DEFAULT_TIMEOUT_S = 60.0
READ_SLICE_S = 0.1  # one read call waits at most this long, so the timeout is kept to it
LIST_PORTS = "python -m serial.tools.list_ports"


class SerialPort(Protocol):
    """What :func:`read_results` needs of a port (a ``serial.Serial``)."""

    in_waiting: int

    def read(self, size: int = 1) -> bytes: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Capture:
    """What one monitored run produced: the parsed results and every line received."""

    port: str
    results: HarnessResults
    lines: tuple[str, ...]
    seconds: float


def open_port(port: str, baud: int) -> Any:
    """Opens ``port`` at ``baud`` (8N1) with a short read timeout.

    Raises:
        ToolMissing: pyserial is not installed.
        UsageError: no such port, no permission, or a baud rate the port refuses.
    """
    try:
        import serial
    except ImportError:
        raise ToolMissing("pyserial is not installed; install it with `pip install pyserial` "
                          "(a tinyprune dependency: reinstall tinyprune)") from None
    if baud <= 0:
        raise UsageError(f"--baud: expected a baud rate > 0 such as 115200, received {baud}")
    try:
        return serial.serial_for_url(port, baudrate=baud, timeout=READ_SLICE_S)
    except serial.SerialException as exc:
        hint = (f"list the ports with `{LIST_PORTS}`" if "No such file" in str(exc) or
                "could not open" in str(exc) else "")
        if "Permission denied" in str(exc):
            hint = ("add yourself to the group that owns it (`sudo usermod -aG dialout $USER`, "
                    "then log in again)")
        raise UsageError(f"--port {port}: cannot open the serial port ({exc})"
                         + (f"; {hint}" if hint else "")) from None
    except ValueError as exc:
        raise UsageError(f"--port {port} --baud {baud}: {exc}") from None


def _timeout_error(port: str, timeout: float, stream: ResultStream, lines: list[str],
                   baud: int) -> HardwareError:
    waited = f"within {timeout:g} s on {port}"
    if not lines:
        return HardwareError(
            f"no result lines {waited} (nothing received); is this the board's serial port, and "
            "does it run tinyprune firmware? The firmware prints its results once, after reset: "
            f"pass --reset (needs the debug probe) or press the board's reset button right after "
            f"starting the monitor; check --baud (now {baud})")
    last = lines[-1][:80]
    if not stream.started:
        return HardwareError(
            f"no '@tp begin' line {waited} (received {len(lines)} lines, the last {last!r}); "
            "the results were printed before the port was opened: pass --reset or press the "
            f"board's reset button; unreadable lines mean a wrong --baud (now {baud})")
    return HardwareError(
        f"the firmware started but sent no '@tp end' line {waited} (received {len(lines)} "
        f"lines, the last {last!r}); a slow model needs a longer --timeout, or the firmware hung")


def _split_lines(buffer: bytearray) -> list[str]:
    """Removes the complete lines from ``buffer`` and returns them decoded (bad bytes -> U+FFFD)."""
    *complete, rest = bytes(buffer).split(b"\n")
    buffer[:] = rest
    return [line.decode("utf-8", errors="replace").rstrip("\r") for line in complete]


def read_results(port: str, *, baud: int = DEFAULT_BAUD, timeout: float = DEFAULT_TIMEOUT_S,
                 after_open: Callable[[], None] | None = None,
                 on_line: Callable[[str], None] | None = None,
                 opener: Callable[[str, int], SerialPort] = open_port,
                 clock: Callable[[], float] = time.monotonic) -> Capture:
    """Reads result lines from ``port`` until the ``@tp end`` line.

    Args:
        port: a serial device (``/dev/ttyACM0``, ``COM3``) or a pyserial URL.
        baud: the board's baud rate (its board file's ``uart.baud``).
        timeout: seconds from opening the port to the end line.
        after_open: called once the port is open, e.g. to reset the board.
        on_line: called with every line received (for progress or a log).
        opener: opens the port (tests pass a fake; the product path uses pyserial).
        clock: monotonic seconds.

    Raises:
        UsageError: the port cannot be opened.
        HardwareError: no end line before the timeout, a garbled or malformed result line, the
            port failed while reading.
        CheckFailed: the firmware reported a fault.
    """
    if timeout <= 0:
        raise UsageError(f"--timeout: expected seconds > 0, received {timeout:g}")
    handle = opener(port, baud)
    start = clock()
    stream, buffer = ResultStream(serial=True), bytearray()
    lines: list[str] = []
    try:
        if after_open is not None:
            after_open()
        while not stream.done:
            if clock() - start > timeout:
                raise _timeout_error(port, timeout, stream, lines, baud)
            buffer += _read_some(handle, port)
            for line in _split_lines(buffer):
                lines.append(line)
                if on_line is not None:
                    on_line(line)
                _feed(stream, line, port, baud)
                if stream.done:
                    break
        results = stream.result()
    finally:
        handle.close()
    log.info("read %d lines from %s in %.1f s", len(lines), port, clock() - start)
    return Capture(port, _checked(results, port), tuple(lines), clock() - start)


def _read_some(handle: SerialPort, port: str) -> bytes:
    try:
        return handle.read(max(1, handle.in_waiting))
    except OSError as exc:  # serial.SerialException is an OSError (IOError)
        raise HardwareError(f"{port}: reading the serial port failed ({exc}); was the board "
                            "unplugged?") from None


def _feed(stream: ResultStream, line: str, port: str, baud: int) -> None:
    try:
        stream.feed(line)
    except CheckFailed as exc:
        if str(exc).startswith("firmware faulted"):
            raise
        raise HardwareError(f"{port}: {exc}: the line arrived garbled or the firmware is not "
                            f"tinyprune's; check --baud (now {baud}) and the cable, then "
                            "rerun") from None


def _checked(results: HarnessResults, port: str) -> HarnessResults:
    if results.status != 0:
        raise CheckFailed(f"the firmware on {port} reported status {results.status} (a kernel "
                          f"refused its arguments in layer {results.status - 1})")
    return results
