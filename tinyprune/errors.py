"""Error types, one per exit code of the product contract (SPEC.md).

Every user-facing failure is raised as a subclass of :class:`TinypruneError` whose message is one
line naming the file, layer or field at fault and what to do.  The CLI prints the message and exits
with ``exit_code``; no traceback is shown for these.
"""

from __future__ import annotations


class TinypruneError(Exception):
    """Base class: a failure the user can act on. ``exit_code`` follows SPEC.md."""

    exit_code = 1


class CheckFailed(TinypruneError):
    """Exit 1: a budget, an accuracy or a bit-exactness check failed, or the image does not fit."""

    exit_code = 1


class DoesNotFit(CheckFailed):
    """Exit 1: the linked image needs more flash or RAM than the board has.

    ``region`` is ``"FLASH"`` or ``"RAM"``, ``available`` the region's size in bytes."""

    def __init__(self, message: str, region: str, available: int) -> None:
        super().__init__(message)
        self.region = region
        self.available = available


class EmulationError(CheckFailed):
    """Exit 1: the firmware faulted, hung or overflowed its stack on the emulated board."""


class HardwareError(CheckFailed):
    """Exit 1: a real board, its debug probe or its serial port failed during ``flash`` or
    ``monitor`` (programming failed, no result lines before the timeout, a garbled line)."""


class UsageError(TinypruneError):
    """Exit 2: bad input or usage (missing file, corrupt model, unknown board, bad option)."""

    exit_code = 2


class UnsupportedError(UsageError):
    """Exit 2: an op or a layer tinyprune cannot handle.

    The message names it and lists what is supported.
    """


class ToolMissing(TinypruneError):
    """Exit 3: a required external tool is missing; the message says how to install it."""

    exit_code = 3


def first_compiler_error(stderr: str) -> str:
    """The line of a C compiler's or linker's output that says what failed: the first
    ``error:`` line, else the first undefined reference, else any line naming an error, else the
    first line (one line, for a message)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for marker in (" error: ", "undefined reference", "error"):
        for line in lines:
            if marker in line:
                return line
    return lines[0] if lines else "(no message)"
