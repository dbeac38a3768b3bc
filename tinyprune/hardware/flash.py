"""Put a firmware ELF on a real board through pyOCD's Python API: find the debug probe, program
the ELF into flash, reset the core so the firmware runs (and prints its result lines).

The board file names pyOCD's target (``[flash_tool] target``). Everything pyOCD is reached
through :class:`Pyocd`, so a test can put a fake in its place and check the calls; the product
path always uses the real pyOCD.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tinyprune.errors import HardwareError, ToolMissing, UsageError
from tinyprune.firmware.boards import Board

log = logging.getLogger(__name__)

FIRMWARE_ELF = Path("firmware") / "firmware.elf"  # inside a build folder
PROBE_KINDS = "CMSIS-DAP (DAPLink, picoprobe) and ST-Link"
PYOCD_INSTALL = "install it with `pip install pyocd` (a tinyprune dependency: reinstall tinyprune)"
_ELF_MAGIC = b"\x7fELF"


@dataclass(frozen=True)
class Probe:
    """A debug probe pyOCD found: its unique id and what it says it is."""

    unique_id: str
    description: str


@dataclass(frozen=True)
class Flashed:
    """What :func:`flash_elf` did."""

    board: str
    target: str
    elf: Path
    probe: Probe
    bytes_programmed: int


class Session(Protocol):
    """An open pyOCD session: program a file, reset the target."""

    def program(self, elf: Path) -> None: ...

    def reset(self) -> None: ...


class PyocdApi(Protocol):
    """The few pyOCD calls tinyprune makes (a fake stands in for them in unit tests)."""

    errors: tuple[type[BaseException], ...]

    def probes(self, unique_id: str | None) -> list[Probe]: ...

    def probe_kinds(self) -> str: ...

    def supports(self, target: str) -> bool: ...

    def session(self, probe: Probe, target: str) -> AbstractContextManager[Session]: ...


class Pyocd:
    """:class:`PyocdApi` over the real pyOCD."""

    def __init__(self) -> None:
        try:
            from pyocd.core.helpers import ConnectHelper
        except ImportError:
            raise ToolMissing(f"pyocd is not installed; {PYOCD_INSTALL}") from None
        from pyocd.core import exceptions

        self._helper = ConnectHelper
        self._probes: dict[str, Any] = {}
        self.errors: tuple[type[BaseException], ...] = (exceptions.Error,)

    def probes(self, unique_id: str | None) -> list[Probe]:
        """The connected probes (matching ``unique_id``); never waits, never prompts."""
        found = self._helper.get_all_connected_probes(
            blocking=False, unique_id=unique_id, print_wait_message=False)
        self._probes = {p.unique_id: p for p in found}
        return [Probe(p.unique_id, p.description) for p in found]

    def probe_kinds(self) -> str:
        """The probe kinds this pyOCD installation looks for."""
        from pyocd.probe.aggregator import PROBE_CLASSES

        names = {"cmsisdap": "CMSIS-DAP", "stlink": "ST-Link", "jlink": "J-Link",
                 "picoprobe": "picoprobe"}
        kinds = [names[k] for k in PROBE_CLASSES if k in names]
        return " / ".join(kinds) if kinds else PROBE_KINDS

    def supports(self, target: str) -> bool:
        """Whether pyOCD knows ``target``: built in, or from an installed CMSIS pack."""
        from pyocd.target import TARGET

        if target.lower() in TARGET:
            return True
        try:
            from pyocd.target.pack.pack_target import ManagedPacks

            return any(dev.part_number.lower() == target.lower()
                       for dev in ManagedPacks.get_installed_targets())
        except Exception as exc:  # the pack index unreadable: let the session say more
            log.debug("could not read pyocd's installed packs: %s", exc)
            return False

    @contextmanager
    def session(self, probe: Probe, target: str) -> Iterator[Session]:
        """An open session on ``probe`` for ``target`` (connects and halts the core)."""
        from pyocd.core.session import Session as PyocdSession

        options = {"target_override": target, "hide_programming_progress": True,
                   "project_dir": os.getcwd()}  # pyOCD would chdir to its project dir
        with PyocdSession(self._probes[probe.unique_id], options=options) as session:
            yield _PyocdSession(session)



class _PyocdSession:
    def __init__(self, session: Any) -> None:
        self._session = session

    def program(self, elf: Path) -> None:
        from pyocd.flash.file_programmer import FileProgrammer

        FileProgrammer(self._session, no_reset=True).program(str(elf), file_format="elf")

    def reset(self) -> None:
        self._session.board.target.reset()


def flash_target(board: Board) -> str:
    """pyOCD's target name of ``board``; UsageError for a board that cannot be flashed."""
    tool = board.flash_tool
    if tool is None:
        raise UsageError(f"board {board.name} has no [flash_tool] in {board.path.name}: it cannot "
                         "be flashed (an emulator-only board?); choose a real board (tinyprune "
                         "boards) or add `[flash_tool] tool = \"pyocd\"`, `target = ...` to its "
                         "file")
    if tool.tool != "pyocd":
        raise UsageError(f"{board.path.name}: field flash_tool.tool: expected 'pyocd', received "
                         f"{tool.tool!r}")
    return tool.target


def _load_segments(elf: Path) -> list[tuple[int, int]]:
    """(physical address, size) of the ELF's loadable segments with content."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        with elf.open("rb") as handle:
            if handle.read(4) != _ELF_MAGIC:
                raise UsageError(f"{elf}: not an ELF file; pass the .elf of a tinyprune build "
                                 "(firmware/firmware.elf)")
            handle.seek(0)
            image = ELFFile(handle)
            if image["e_machine"] != "EM_ARM":
                raise UsageError(f"{elf}: an ELF for {image['e_machine']}, expected one for Arm "
                                 "Cortex-M (EM_ARM)")
            return [(seg["p_paddr"], seg["p_filesz"]) for seg in image.iter_segments()
                    if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0]
    except (OSError, ELFError) as exc:
        raise UsageError(f"{elf}: cannot read the ELF ({exc})") from None


def check_elf(board: Board, elf: Path) -> int:
    """Checks that ``elf`` is an Arm ELF whose contents all load into ``board``'s flash; returns
    the bytes to program.

    Raises:
        UsageError: missing, not an ELF, or built for another memory map.
    """
    if not elf.is_file():
        raise UsageError(f"--elf {elf}: no such file")
    segments = _load_segments(elf)
    if not segments:
        raise UsageError(f"{elf}: the ELF loads nothing into memory")
    flash = board.flash
    for address, size in segments:
        if not (flash.contains(address) and address + size <= flash.end):
            raise UsageError(
                f"{elf}: loads 0x{address:08X}..0x{address + size:08X}, outside {board.name}'s "
                f"flash 0x{flash.origin:08X}..0x{flash.end:08X}: built for another board? "
                f"(build it with --board {board.name})")
    return sum(size for _, size in segments)


def build_board(build: Path) -> str | None:
    """The board a build folder was made for (from its report.json), or None."""
    import json

    try:
        return str(json.loads((build / "report.json").read_text(encoding="utf-8"))["board"]
                   ["name"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_firmware(board: Board, elf: Path | None, out: Path | None,
                  search: Path = Path("build")) -> Path:
    """The ELF to flash: ``--elf``, the firmware of the build in ``--out``, or the one build for
    the board under ``build/``.

    Raises:
        UsageError: nothing found, several builds to choose from, or a build for another board.
    """
    if elf is not None:
        return elf
    if out is not None:
        path = out / FIRMWARE_ELF
        if not path.is_file():
            raise UsageError(f"--out {out}: no firmware there (expected {path}); build it first: "
                             f"tinyprune build --board {board.name} --model ... --out {out}")
        built_for = build_board(out)
        if built_for is not None and built_for != board.name:
            raise UsageError(f"--out {out} was built for {built_for}, not {board.name}; pass "
                             f"--board {built_for} or build for {board.name}")
        return path
    found = sorted(search.glob(f"*-{board.name}/{FIRMWARE_ELF.as_posix()}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no --elf or --out given and no build for {board.name} under "
                         f"{search}/; pass --elf FILE or --out BUILD_FOLDER")
    names = ", ".join(str(p.parents[1]) for p in found)
    raise UsageError(f"several builds for {board.name} ({names}); choose one with --out")


def _choose_probe(api: PyocdApi, probe_id: str | None) -> Probe:
    probes = api.probes(probe_id)
    if not probes:
        which = f" matching --probe {probe_id}" if probe_id else ""
        raise ToolMissing(
            f"no debug probe found{which} (pyocd looked for {api.probe_kinds()} probes on USB); "
            "connect the board's debug USB port (ST-LINK on a Nucleo or Discovery board), "
            "check that your user may access it (Linux: pyocd's udev rules, "
            "https://pyocd.io/docs/installing), or run `pyocd list` to see what pyocd finds")
    if len(probes) > 1:
        listed = ", ".join(f"{p.unique_id} ({p.description})" for p in probes)
        raise UsageError(f"several debug probes connected: {listed}; choose one with --probe UID")
    return probes[0]


def _check_target(api: PyocdApi, target: str, board: Board) -> None:
    if not api.supports(target):
        raise ToolMissing(
            f"pyocd has no support for target {target} ({board.name}) installed: install its "
            f"CMSIS pack once with `pyocd pack install {target}` (downloads it), then flash again")


def _run(api: PyocdApi, board: Board, probe_id: str | None, actions: Sequence[str],
         elf: Path | None = None, on_start: Callable[[Probe], None] | None = None) -> Probe:
    target = flash_target(board)
    probe = _choose_probe(api, probe_id)
    _check_target(api, target, board)
    log.info("probe %s (%s), target %s", probe.unique_id, probe.description, target)
    if on_start is not None:
        on_start(probe)
    try:
        with api.session(probe, target) as session:
            if "program" in actions:
                assert elf is not None
                session.program(elf)
            session.reset()
    except api.errors as exc:
        what = f"flashing {elf.name} to" if elf is not None else "resetting"
        raise HardwareError(f"{what} {board.name} through {probe.description} failed: {exc}; "
                            "check the USB cable and that the board is powered, then retry") \
            from None
    return probe


def flash_elf(board: Board, elf: Path, *, probe: str | None = None,
              api: PyocdApi | None = None,
              on_start: Callable[[Probe], None] | None = None) -> Flashed:
    """Programs ``elf`` into ``board``'s flash and resets it, so the firmware runs.

    Args:
        board: the board (its ``[flash_tool] target`` names pyOCD's target).
        elf: the firmware; checked to load entirely into the board's flash.
        probe: a probe's unique id (or a part of it) when several are connected.
        api: pyOCD (default: the real one).
        on_start: called with the probe once everything is checked, before programming.

    Raises:
        UsageError: a board without a flash target, a missing or wrong ELF, several probes.
        ToolMissing: pyocd missing, no probe connected, or no support for the target installed.
        HardwareError: programming or the reset failed.
    """
    target = flash_target(board)
    size = check_elf(board, elf)
    found = _run(api or Pyocd(), board, probe, ("program", "reset"), elf, on_start)
    return Flashed(board.name, target, elf, found, size)


def reset_board(board: Board, *, probe: str | None = None, api: PyocdApi | None = None) -> Probe:
    """Resets ``board`` through its debug probe (the firmware starts over and prints again)."""
    flash_target(board)
    return _run(api or Pyocd(), board, probe, ("reset",))
