"""What the emulators need from an ELF: load segments, the vector table and function symbols."""

from __future__ import annotations

import bisect
import difflib
from dataclasses import dataclass
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from tinyprune.errors import UsageError
from tinyprune.firmware.boards import Board


@dataclass(frozen=True)
class Segment:
    """Bytes to load at a physical (load) address."""

    address: int
    data: bytes


@dataclass(frozen=True)
class ElfImage:
    """A firmware ELF reduced to what the emulator uses."""

    path: Path
    segments: tuple[Segment, ...]
    functions: dict[str, int]  # function name -> entry address (Thumb bit cleared)
    symbols: dict[str, int]  # every named symbol -> value
    _starts: tuple[int, ...]
    _ends: tuple[int, ...]
    _names: tuple[str, ...]

    def function_at(self, address: int) -> str:
        """Name of the function containing ``address``, or ``?`` when unknown."""
        index = bisect.bisect_right(self._starts, address) - 1
        if index >= 0 and address < self._ends[index]:
            return self._names[index]
        return "?"

    def function_entry(self, address: int) -> int | None:
        """Entry address of the function containing ``address``, or None when unknown."""
        index = bisect.bisect_right(self._starts, address) - 1
        if index >= 0 and address < self._ends[index]:
            return self._starts[index]
        return None

    def function_address(self, name: str) -> int:
        """Entry address of function ``name``.

        Raises:
            UsageError: no such function; the message lists the closest names.
        """
        if name in self.functions:
            return self.functions[name]
        close = difflib.get_close_matches(name, self.functions, n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UsageError(f"{self.path.name}: function {name!r} not found in the symbol table{hint}")


def _function_table(
    elffile: ELFFile,
) -> tuple[dict[str, int], dict[str, int], list[tuple[int, int, str]]]:
    functions: dict[str, int] = {}
    symbols: dict[str, int] = {}
    ranges: list[tuple[int, int, str]] = []
    symtab = elffile.get_section_by_name(".symtab")
    if not isinstance(symtab, SymbolTableSection):  # None when stripped
        return functions, symbols, ranges
    for sym in symtab.iter_symbols():
        if not sym.name:
            continue
        symbols[sym.name] = sym["st_value"]
        if sym["st_info"]["type"] == "STT_FUNC":
            start = sym["st_value"] & ~1
            functions.setdefault(sym.name, start)
            ranges.append((start, start + max(sym["st_size"], 2), sym.name))
    ranges.sort()
    return functions, symbols, ranges


def read_elf(path: str | Path) -> ElfImage:
    """Read a 32-bit little-endian Arm ELF.

    Raises:
        UsageError: the file is missing or is not an Arm ELF.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            elffile = ELFFile(handle)
            if elffile["e_machine"] != "EM_ARM" or elffile.elfclass != 32:
                raise UsageError(
                    f"{path}: expected a 32-bit Arm ELF, received {elffile['e_machine']}"
                )
            segments = tuple(
                Segment(seg["p_paddr"], seg.data()[: seg["p_filesz"]])
                for seg in elffile.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0
            )
            functions, symbols, ranges = _function_table(elffile)
    except FileNotFoundError as exc:
        raise UsageError(f"ELF file {path} not found") from exc
    except ELFError as exc:
        raise UsageError(f"{path}: not a valid ELF file ({exc})") from exc
    return ElfImage(
        path=path,
        segments=segments,
        functions=functions,
        symbols=symbols,
        _starts=tuple(r[0] for r in ranges),
        _ends=tuple(r[1] for r in ranges),
        _names=tuple(r[2] for r in ranges),
    )


def check_fits(image: ElfImage, board: Board) -> None:
    """Every load segment must lie inside the board's flash or RAM.

    Raises:
        UsageError: a segment is outside the board's memory (built for another board?).
    """
    for seg in image.segments:
        end = seg.address + len(seg.data)
        inside = any(r.origin <= seg.address and end <= r.end for r in (board.flash, board.ram))
        if not inside:
            flash, ram = board.flash, board.ram
            raise UsageError(
                f"{image.path.name}: segment at 0x{seg.address:08x} ({len(seg.data)} bytes) lies "
                f"outside board {board.name} (flash 0x{flash.origin:08x}-0x{flash.end:08x}, "
                f"RAM 0x{ram.origin:08x}-0x{ram.end:08x}); was it built for this board?"
            )


def _bl_target(hw1: int, hw2: int, pc: int) -> int | None:
    """Target of a Thumb-2 ``BL`` (encoding T1) at ``pc``, or None if it is none."""
    if hw1 & 0xF800 != 0xF000 or hw2 & 0xD000 != 0xD000:
        return None
    s = (hw1 >> 10) & 1
    i1 = 1 - (((hw2 >> 13) & 1) ^ s)
    i2 = 1 - (((hw2 >> 11) & 1) ^ s)
    imm = (s << 24) | (i1 << 23) | (i2 << 22) | ((hw1 & 0x3FF) << 12) | ((hw2 & 0x7FF) << 1)
    imm -= (imm & (1 << 24)) << 1
    return (pc + 4 + imm) & 0xFFFFFFFF


def main_return_addresses(image: ElfImage) -> frozenset[int]:
    """Where a return from ``main`` lands: the address after each ``bl main`` in the image.

    The startup code calls ``main`` once and parks if it returns; the emulators report reaching
    one of these addresses as an error (``main`` returned before the end-of-run line).
    """
    main = image.functions.get("main")
    if main is None:
        return frozenset()
    found = set()
    for seg in image.segments:
        data = seg.data
        for offset in range(0, len(data) - 3, 2):
            pc = seg.address + offset
            hw1 = data[offset] | data[offset + 1] << 8
            if hw1 & 0xF800 != 0xF000:
                continue
            hw2 = data[offset + 2] | data[offset + 3] << 8
            if _bl_target(hw1, hw2, pc) == main and image.function_at(pc) != "?":
                found.add(pc + 4)
    return frozenset(found)


def callees(image: ElfImage, name: str) -> frozenset[int]:
    """Entry addresses of the functions ``name`` calls with ``BL`` (empty without ``name``)."""
    start = image.functions.get(name)
    if start is None:
        return frozenset()
    found = set()
    for seg in image.segments:
        if not seg.address <= start < seg.address + len(seg.data):
            continue
        data, base = seg.data, start - seg.address
        for offset in range(base, len(data) - 3, 2):
            pc = seg.address + offset
            if image.function_entry(pc) != start:
                break
            hw1 = data[offset] | data[offset + 1] << 8
            hw2 = data[offset + 2] | data[offset + 3] << 8
            target = _bl_target(hw1, hw2, pc)
            if target is not None and image.function_entry(pc + 2) == start:
                found.add(target & ~1)
    return frozenset(found)


def layer_calls(image: ElfImage, invoke: str = "tp_model_invoke") -> frozenset[int]:
    """The functions ``invoke`` calls that none of its callees calls: the layers' kernels (and
    the harness's timer), without the helpers a kernel calls in its loops (``memcpy``)."""
    direct = callees(image, invoke)
    inner: set[int] = set()
    for address in direct:
        name = image.function_at(address)
        if name != "?":
            inner |= callees(image, name)
    return direct - inner


HARNESS_MARK = b"@tp begin"


def prints_harness_lines(image: ElfImage) -> bool:
    """Whether the image holds the harness's ``@tp begin`` text (a tinyprune harness, or a
    program that speaks its protocol); the instruction budgets of ``limits.py`` follow it."""
    return any(HARNESS_MARK in seg.data for seg in image.segments)
