"""Cross-compile firmware for a board: startup + linker script from the board, BSP, user sources.

The result is the artifact that would be flashed: ``.elf`` (with a ``.map``), ``.bin`` and
``.hex``, with sizes read back from the ELF.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from elftools.elf.elffile import ELFFile

import tinyprune
from tinyprune.errors import (
    CheckFailed,
    DoesNotFit,
    ToolMissing,
    UsageError,
    first_compiler_error,
)
from tinyprune.firmware.boards import Board
from tinyprune.firmware.boot2 import seal_boot2
from tinyprune.firmware.paths import data_dir, runtime_dir, template_environment
from tinyprune.firmware.placement import DTCM_RODATA, ITCM_TEXT, Placement, Placer

log = logging.getLogger(__name__)

GCC = "arm-none-eabi-gcc"
OBJCOPY = "arm-none-eabi-objcopy"
INSTALL_HINT = (
    "install it with `sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi`"
    " or `make setup`"
)
SAMPLES_SECTION = ".tp_samples"
_OVERFLOW_RE = re.compile(r"region `(\w+)' overflowed by (\d+) bytes")
_NOFIT_RE = re.compile(r"will not fit in region `(\w+)'")
_SHF_ALLOC = 0x2


@dataclass(frozen=True)
class Firmware:
    """A linked firmware image and its sizes.

    Attributes:
        flash_used_bytes: code, constants and the .data load image in flash, without the samples.
        samples_bytes: the ``.tp_samples`` section (compiled-in inputs), in flash too.
        ram_used_bytes: .data + .bss + the reserved stack.
        flags: the compiler flags used (recorded because they swing performance).
        placement: what the build placed in ITCM/DTCM and why (None: no placement was asked).
        itcm_used_bytes / dtcm_used_bytes: the ``.itcm_text`` / ``.dtcm_rodata`` sections (their
            load images are in flash too; a DTCM inside RAM counts in ``ram_used_bytes``).
    """

    board: str
    elf: Path
    bin: Path
    hex: Path
    map: Path
    flash_used_bytes: int
    samples_bytes: int
    ram_used_bytes: int
    stack_bytes: int
    elf_sha256: str
    flags: tuple[str, ...]
    placement: Placement | None = None
    itcm_used_bytes: int = 0
    dtcm_used_bytes: int = 0


# Steps a family needs on the linked ELF before .bin/.hex are made (RP2040: the boot stage's CRC).
POST_LINK: dict[str, Callable[[Path], object]] = {"rp2040": seal_boot2}


def board_defines(board: Board) -> dict[str, str]:
    """The ``-D`` macros through which the BSP and the harness learn about the board."""
    defines = {
        "TP_BOARD_NAME": f'"{board.name}"',
        "TP_BOARD_CLOCK_HZ": f"{board.clock_hz}u",
        "TP_CORE_" + board.core.upper().replace("-", "_"): "1",
        "TP_HAS_FPU": "1" if board.has_fpu else "0",
        "TP_USE_DSP": "1" if board.dsp else "0",
        "TP_UART_BASE": f"0x{board.uart.base:08X}u",
        "TP_UART_BAUD": f"{board.uart.baud}u",
    }
    uart = board.uart
    if uart.instance.startswith("LPUART"):
        defines["TP_UART_LPUART"] = "1"  # BRR = 256 * clock / baud
    if uart.bus is not None and uart.enable_bit is not None:
        defines |= {
            "TP_UART_BUS_APB2": "1" if uart.bus == "apb2" else "0",
            "TP_UART_BUS_APB1_2": "1" if uart.bus == "apb1_2" else "0",
            "TP_UART_ENABLE_BIT": f"{uart.enable_bit}u",
        }
    if uart.tx_pin is not None and uart.rx_pin is not None:
        defines |= {
            "TP_UART_TX_PORT": f"{uart.tx_pin.port}u",
            "TP_UART_TX_PIN": f"{uart.tx_pin.number}u",
            "TP_UART_RX_PORT": f"{uart.rx_pin.port}u",
            "TP_UART_RX_PIN": f"{uart.rx_pin.number}u",
        }
    if uart.af is not None:
        defines |= {"TP_UART_AF": f"{uart.af}u", "TP_UART_RX_AF": f"{uart.rx_function}u"}
    return defines


def bsp_sources(board: Board) -> list[Path]:
    """The board-support C files for the board's family (plus the shared writers)."""
    bsp = runtime_dir() / "bsp"
    return sorted(bsp.glob("*.c")) + sorted((bsp / board.family).glob("*.c"))


def bsp_include_dirs(board: Board) -> list[Path]:
    """Include folders of the board support (``tp_bsp.h`` and the family headers)."""
    bsp = runtime_dir() / "bsp"
    return [bsp, bsp / board.family]


def _tcm_context(board: Board, placement: Placement | None) -> dict[str, object]:
    """The linker script's TCM sections (always there on a board with TCM, maybe empty)."""
    itcm = dtcm = None
    if board.itcm is not None:
        itcm = {"origin": f"0x{board.itcm.origin:08X}", "length": f"0x{board.itcm.length:X}",
                "functions": placement.itcm_functions if placement else ()}
    if board.dtcm is not None:
        dtcm = {"origin": f"0x{board.dtcm.origin:08X}", "length": f"0x{board.dtcm.length:X}",
                "end": f"0x{board.dtcm.end:08X}", "in_ram": board.dtcm_in_ram,
                "arrays": placement.dtcm_arrays if placement else ()}
    return {"itcm": itcm, "dtcm": dtcm, "tcm": itcm is not None or dtcm is not None}


def render_linker_script(board: Board, out_dir: Path, stack_bytes: int,
                         placement: Placement | None = None) -> Path:
    """Write ``linker.ld`` for the board (with the placement's TCM sections) into ``out_dir``."""
    linker = out_dir / "linker.ld"
    text = template_environment().get_template("linker.ld.j2").render(
        _board_context(board, stack_bytes) | _tcm_context(board, placement))
    linker.write_text(text, encoding="utf-8")
    return linker


def render_board_files(board: Board, out_dir: Path, stack_bytes: int) -> tuple[Path, Path]:
    """Write ``startup.c`` and ``linker.ld`` for the board into ``out_dir``."""
    env = template_environment()
    context = _board_context(board, stack_bytes) | _tcm_context(board, None)
    startup = out_dir / "startup.c"
    startup.write_text(env.get_template("startup.c.j2").render(context), encoding="utf-8")
    return startup, render_linker_script(board, out_dir, stack_bytes)


def _board_context(board: Board, stack_bytes: int) -> dict[str, object]:
    return {
        "version": tinyprune.__version__,
        "board_name": board.name,
        "core": board.core,
        "has_fpu": board.has_fpu,
        "flash_origin": f"0x{board.flash.origin:08X}",
        "flash_length": f"0x{board.flash.length:X}",
        "vector_offset": board.flash.vector_offset,
        "armv6m": board.core == "cortex-m0plus",
        "ram_origin": f"0x{board.ram.origin:08X}",
        "ram_length": f"0x{board.ram.length:X}",
        "stack_bytes": f"0x{stack_bytes:X}",
    }


def render_harness(out_path: Path) -> Path:
    """Write the firmware harness ``main.c`` (it includes the generated ``model.h``)."""
    text = template_environment().get_template("main.c.j2").render(version=tinyprune.__version__)
    out_path.write_text(text, encoding="utf-8")
    return out_path


def require_tool(name: str) -> str:
    """The path of a cross-toolchain program; ToolMissing (exit 3) with the install command."""
    path = shutil.which(name)
    if path is None:
        raise ToolMissing(f"{name} not found; {INSTALL_HINT}")
    return path


def require_toolchain() -> None:
    """Checks that the cross compiler and objcopy are installed."""
    require_tool(GCC)
    require_tool(OBJCOPY)


def _prefix_maps(out_dir: Path, sources: Iterable[Path], include_dirs: Iterable[Path]) -> list[str]:
    """``-ffile-prefix-map`` flags so that no absolute build path ends up in the ELF.

    The output folder becomes ``.``, the tinyprune data folder ``tinyprune``, the compiler's
    own folder ``gcc`` and every other source or include folder ``src``. GCC tries the maps from
    the last given to the first and uses the first that matches, so they are given from the
    shortest prefix to the longest: a file then maps through the most specific folder that holds
    it, whichever folder is inside which (the default ``build/...`` output sits inside the
    checkout, the generated sources inside the output folder).
    """
    maps = {out_dir.resolve(): ".", data_dir().resolve(): "tinyprune"}
    toolchain = _toolchain_prefix()
    if toolchain:  # its own headers (stdint.h) are named in the debug info too
        maps.setdefault(Path(toolchain).resolve(), "gcc")
    for folder in [*(s.resolve().parent for s in sources), *(d.resolve() for d in include_dirs)]:
        maps.setdefault(folder, "src")
    ordered = sorted(maps.items(), key=lambda item: (len(str(item[0])), str(item[0])))
    return [f"-ffile-prefix-map={old}={new}" for old, new in ordered]


def _compile_flags(
    board: Board, include_dirs: Sequence[Path], defines: Mapping[str, str], opt: str
) -> list[str]:
    flags = [
        *board.cpu_flags,
        opt,
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-g",
        "-ffunction-sections",
        "-fdata-sections",
    ]
    flags += [f"-D{key}={value}" for key, value in {**board_defines(board), **defines}.items()]
    flags += [f"-I{folder}" for folder in include_dirs]
    return flags


def _run(cmd: Sequence[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    log.debug("running %s", " ".join(cmd))
    return subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)


def _compile_all(
    sources: Sequence[Path], flags: Sequence[str], obj_dir: Path, cwd: Path
) -> list[Path]:
    obj_dir.mkdir(parents=True, exist_ok=True)
    objects = [obj_dir / f"{index:03d}_{src.stem}.o" for index, src in enumerate(sources)]

    def compile_one(pair: tuple[Path, Path]) -> subprocess.CompletedProcess[str]:
        src, obj = pair
        return _run([GCC, *flags, "-c", str(src), "-o", str(obj)], cwd)

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        results = list(pool.map(compile_one, zip(sources, objects, strict=True)))
    for src, result in zip(sources, results, strict=True):
        if result.returncode != 0:
            raise CheckFailed(f"compiling {src.name} failed: {first_compiler_error(result.stderr)}")
    return objects


def _region_of(board: Board, name: str) -> tuple[str, int]:
    region = board.flash if name.upper() == "FLASH" else board.ram
    return name.upper(), region.length


def does_not_fit(board: Board, region: str, used: int, why: str = "") -> DoesNotFit:
    """``firmware does not fit board B: REGION needs N bytes, available M bytes`` (+ ``why``)."""
    region, available = _region_of(board, region)
    return DoesNotFit(f"firmware does not fit board {board.name}: {region} needs {used} bytes, "
                      f"available {available} bytes{why}", region, available)


def _link_error(board: Board, stderr: str) -> CheckFailed:
    match = _OVERFLOW_RE.search(stderr)
    if match:
        region, available = _region_of(board, match.group(1))
        used = available + int(match.group(2))
        return does_not_fit(board, region, used)
    match = _NOFIT_RE.search(stderr)
    if match:
        region, available = _region_of(board, match.group(1))
        return DoesNotFit(
            f"firmware does not fit board {board.name}: {region} is {available} bytes "
            f"({first_compiler_error(stderr)})", region, available
        )
    return CheckFailed(f"linking failed: {first_compiler_error(stderr)}")


def _link(
    board: Board, objects: Sequence[Path], linker: Path, elf: Path, cwd: Path, opt: str
) -> list[str]:
    flags = [
        *board.cpu_flags,
        opt,
        "-nostartfiles",
        "--specs=nano.specs",
        "--specs=nosys.specs",
        "-Wl,--gc-sections",
        f"-Wl,-Map={elf.with_suffix('.map').name}",
        "-T",
        linker.name,
    ]
    relative = [str(o.relative_to(cwd)) for o in objects]  # the .map names them as given
    result = _run([GCC, *flags, *relative, "-o", elf.name, "-lm"], cwd)
    if result.returncode != 0:
        raise _link_error(board, result.stderr)
    _normalise_map(elf.with_suffix(".map"))
    return flags


@lru_cache(maxsize=1)
def _toolchain_prefix() -> str | None:
    """The GCC install folder as GCC prints it (``/usr/lib/gcc/arm-none-eabi/12.2.1/``)."""
    result = _run([GCC, "-print-search-dirs"], Path.cwd())
    for line in result.stdout.splitlines():
        if line.startswith("install: "):
            return line.removeprefix("install: ").strip()
    return None


def _normalise_map(path: Path) -> None:
    """Replace the toolchain's install folder in the link map by ``<gcc>/``.

    With relative object paths, the libraries of the toolchain are the only absolute paths the
    linker writes; the map then reads the same on every machine and for every output folder.
    """
    prefix = _toolchain_prefix()
    if prefix and path.is_file():
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        path.write_text(text.replace(prefix, "<gcc>/"), encoding="utf-8", errors="surrogateescape")


def _sizes(board: Board, elf: Path) -> tuple[int, int, int]:
    """Return (flash bytes without samples, samples bytes, RAM bytes) from the section headers."""
    flash = samples = ram = 0
    with elf.open("rb") as handle:
        elffile = ELFFile(handle)
        load_of = _load_addresses(elffile)
        for section in elffile.iter_sections():
            if not section["sh_flags"] & _SHF_ALLOC or section["sh_size"] == 0:
                continue
            size, vma = section["sh_size"], section["sh_addr"]
            lma = load_of.get(section.name, vma)
            if section.name == SAMPLES_SECTION:
                samples += size
            elif board.flash.contains(lma) and section["sh_type"] != "SHT_NOBITS":
                flash += size
            if board.ram.contains(vma):
                ram += size
    return flash, samples, ram


def _load_addresses(elffile: ELFFile) -> dict[str, int]:
    """Map section name -> load address (LMA) through the program headers."""
    result: dict[str, int] = {}
    for segment in elffile.iter_segments():
        if segment["p_type"] != "PT_LOAD":
            continue
        for section in elffile.iter_sections():
            if segment.section_in_segment(section):
                offset = section["sh_addr"] - segment["p_vaddr"]
                result[section.name] = segment["p_paddr"] + offset
    return result


def _check_inputs(sources: Sequence[Path], stack_bytes: int) -> None:
    for src in sources:
        if not src.is_file():
            raise UsageError(f"source file {src} not found")
    if stack_bytes < 256 or stack_bytes % 8:
        raise UsageError(f"stack size: expected a multiple of 8 >= 256, received {stack_bytes}")


def build_firmware(
    sources: Sequence[str | Path],
    include_dirs: Sequence[str | Path],
    board: Board,
    out_dir: str | Path,
    *,
    defines: Mapping[str, str] | None = None,
    opt: str = "-O2",
    stack_bytes: int = 8192,
    name: str = "firmware",
    place: Placer | None = None,
) -> Firmware:
    """Compile and link firmware for ``board`` into ``out_dir``.

    The board's startup code, linker script and BSP are added to ``sources``.

    Args:
        sources: C files of the application (harness, model, kernels).
        include_dirs: extra include folders (the BSP folders are added).
        board: the target board.
        out_dir: where objects, the ELF, ``.bin``, ``.hex`` and ``.map`` go.
        defines: extra ``-D`` macros (name -> value).
        opt: optimisation flag.
        stack_bytes: stack reserved at the bottom of RAM.
        name: file stem of the outputs.
        place: on a board with TCM, chooses what to move to ITCM/DTCM from the first link's
            function sizes and RAM use (``placement.placer``); the same objects are then linked
            again with it. A placement whose link fails is dropped (the first link stands).

    Raises:
        ToolMissing: arm-none-eabi-gcc is not installed.
        CheckFailed: a compile error (first error line), or the image does not fit (used and
            available bytes of the region).
        UsageError: a source file is missing or the stack size is invalid.
    """
    require_toolchain()
    src_paths = [Path(s).resolve() for s in sources]
    _check_inputs(src_paths, stack_bytes)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    startup, linker = render_board_files(board, out, stack_bytes)
    all_sources = [*src_paths, *bsp_sources(board), startup]
    includes = [*(Path(d).resolve() for d in include_dirs), *bsp_include_dirs(board)]
    cflags = _compile_flags(board, includes, defines or {}, opt) + _prefix_maps(
        out, all_sources, includes
    )
    objects = _compile_all(all_sources, cflags, out / "obj", out)
    elf = out / f"{name}.elf"
    ldflags = _link(board, objects, linker, elf, out, opt)
    placement = None
    if place is not None and (board.itcm is not None or board.dtcm is not None):
        placement = place(_function_sizes(elf), _sizes(board, elf)[2])
        if placement.any:
            placement = _link_placed(board, objects, elf, out, opt, stack_bytes, placement)
    post_link = POST_LINK.get(board.family)
    if post_link is not None:
        post_link(elf)
    for fmt, suffix in (("binary", ".bin"), ("ihex", ".hex")):
        result = _run([OBJCOPY, "-O", fmt, elf.name, elf.with_suffix(suffix).name], out)
        if result.returncode != 0:
            raise CheckFailed(f"objcopy failed: {first_compiler_error(result.stderr)}")
    flash, samples, ram = _sizes(board, elf)
    tcm = _section_sizes(elf, (ITCM_TEXT, DTCM_RODATA))
    log.info("built %s: flash %d B (+%d B samples), RAM %d B", elf.name, flash, samples, ram)
    recorded = tuple(f for f in cflags if not f.startswith(("-I", "-ffile-prefix-map")))
    return Firmware(
        board=board.name,
        elf=elf,
        bin=elf.with_suffix(".bin"),
        hex=elf.with_suffix(".hex"),
        map=elf.with_suffix(".map"),
        flash_used_bytes=flash,
        samples_bytes=samples,
        ram_used_bytes=ram,
        stack_bytes=stack_bytes,
        elf_sha256=hashlib.sha256(elf.read_bytes()).hexdigest(),
        flags=recorded + tuple(f for f in ldflags if f not in recorded and "Map" not in f),
        placement=placement,
        itcm_used_bytes=tcm[ITCM_TEXT],
        dtcm_used_bytes=tcm[DTCM_RODATA],
    )


def _link_placed(board: Board, objects: Sequence[Path], elf: Path, out: Path, opt: str,
                 stack_bytes: int, placement: Placement) -> Placement:
    """Link again with the placement; on failure drop it and link as before."""
    linker = render_linker_script(board, out, stack_bytes, placement)
    try:
        _link(board, objects, linker, elf, out, opt)
        return placement
    except CheckFailed as exc:
        log.warning("TCM placement dropped: %s", exc)
        _link(board, objects, render_linker_script(board, out, stack_bytes), elf, out, opt)
        return placement.dropped(f"dropped: the link with it failed ({exc})")


def _function_sizes(elf: Path) -> dict[str, int]:
    """Code bytes of every function symbol of the ELF."""
    from elftools.elf.sections import SymbolTableSection

    sizes: dict[str, int] = {}
    with elf.open("rb") as handle:
        for section in ELFFile(handle).iter_sections():
            if isinstance(section, SymbolTableSection):
                for sym in section.iter_symbols():
                    if sym["st_info"]["type"] == "STT_FUNC" and sym["st_size"] > 0:
                        sizes[sym.name] = int(sym["st_size"])
    return sizes


def _section_sizes(elf: Path, names: Iterable[str]) -> dict[str, int]:
    with elf.open("rb") as handle:
        elffile = ELFFile(handle)
        out = {}
        for name in names:
            section = elffile.get_section_by_name(name)
            out[name] = int(section["sh_size"]) if section is not None else 0
        return out
