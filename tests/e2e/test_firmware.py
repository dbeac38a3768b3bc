"""Firmware builds for every board with the real cross toolchain (marked e2e)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tinyprune.errors import CheckFailed, DoesNotFit, ToolMissing
from tinyprune.firmware import Firmware, board_names, build_firmware, load_board, render_harness
from tinyprune.firmware.paths import data_dir

FIXTURES = Path(__file__).parent / "fixtures"
FAKE_MODEL = FIXTURES / "fake_model"
BOARDS = tuple(board_names())  # every shipped board

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("arm-none-eabi-gcc") is None,
        reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)",
    ),
]


def build_fake_model(board_name: str, out: Path, **kwargs: object) -> Firmware:
    """The harness + the two-layer fake model, built for ``board_name`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    main = render_harness(out / "main.c")
    return build_firmware(
        [main, FAKE_MODEL / "model.c"], [FAKE_MODEL], load_board(board_name), out, **kwargs
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("board_name", BOARDS)
def test_build_every_board(board_name: str, tmp_path: Path) -> None:
    fw = build_fake_model(board_name, tmp_path / board_name)
    for artifact in (fw.elf, fw.bin, fw.hex, fw.map):
        assert artifact.is_file() and artifact.stat().st_size > 0
    assert 1000 < fw.flash_used_bytes < 16 * 1024
    assert fw.samples_bytes == 32  # 2 samples x 16 bytes, reported apart
    assert fw.ram_used_bytes >= fw.stack_bytes == 8192
    assert len(fw.elf_sha256) == 64
    assert "-Werror" in fw.flags and "-O2" in fw.flags
    assert ("-DTP_USE_DSP=1" in fw.flags) is load_board(board_name).dsp


def test_stack_sits_at_bottom_of_ram(tmp_path: Path) -> None:
    fw = build_fake_model("nucleo_f401re", tmp_path, stack_bytes=2048)
    with fw.elf.open("rb") as handle:
        symbols = {
            s.name: s["st_value"]
            for s in ELFFile(handle).get_section_by_name(".symtab").iter_symbols()
        }
    assert symbols["__stack_bottom"] == 0x20000000
    assert symbols["__stack_top"] == 0x20000000 + 2048
    assert symbols["__data_start"] >= symbols["__stack_top"]


def _artifacts(out: Path) -> list[Path]:
    return sorted(f for f in out.rglob("*") if f.is_file())


def _leaks(out: Path, needles: list[Path]) -> list[str]:
    """Files under ``out`` that hold one of ``needles`` (absolute paths)."""
    return [
        f"{f.relative_to(out)} holds {needle}"
        for f in _artifacts(out)
        for needle in needles
        if str(needle).encode() in f.read_bytes()
    ]


def test_build_is_reproducible_and_has_no_build_paths(tmp_path: Path) -> None:
    """Same sources, output folders inside each other and sharing name prefixes (as the default
    ``build/...`` sits inside the checkout): one ELF hash, one map, and no artifact names the
    output folder, the sources' folder or the checkout."""
    sources = tmp_path / "p"  # the model's folder holds the output folders, like a checkout
    sources.mkdir()
    for name in ("model.c", "model.h"):
        shutil.copy(FAKE_MODEL / name, sources / name)
    outs = [
        sources / "build" / "one",
        sources / "build" / "one-two",  # "one" is a prefix of its name
        sources / "build" / "one-two" / "nested" / "deeper",  # inside another output folder
        tmp_path / "pp",  # "p" is a prefix of its name
    ]
    builds = []
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
        main = render_harness(out / "main.c")
        builds.append(
            build_firmware([main, sources / "model.c"], [sources], load_board("nucleo_f746"), out)
        )
    assert len({fw.elf_sha256 for fw in builds}) == 1
    assert len({fw.map.read_bytes() for fw in builds}) == 1
    needles = [tmp_path, data_dir(), Path(__file__).resolve().parent, Path.cwd()]
    leaks = [leak for fw in builds for leak in _leaks(fw.elf.parent, needles)]
    assert leaks == []
    assert all(not line.startswith("/") for line in builds[0].map.read_text().splitlines())


def test_build_inside_the_checkout_is_reproducible(tmp_path: Path) -> None:
    """The default output folder, ``build/<model>-<board>`` in the checkout, gives the same ELF
    as a folder elsewhere."""
    build_root = data_dir() / "build"
    try:
        build_root.mkdir(exist_ok=True)
        inside = Path(tempfile.mkdtemp(prefix="tp-repro-", dir=build_root))
    except OSError as exc:
        pytest.skip(f"the checkout is not writable ({exc})")
    try:
        first = build_fake_model("nucleo_f746", inside / "fw")
        second = build_fake_model("nucleo_f746", tmp_path / "fw")
        assert first.elf_sha256 == second.elf_sha256
        assert _leaks(inside, [inside, data_dir()]) == []
    finally:
        shutil.rmtree(inside, ignore_errors=True)


def test_image_too_big_names_both_numbers(tmp_path: Path) -> None:
    board = load_board("nucleo_f401re")
    big = 600 * 1024
    with pytest.raises(DoesNotFit) as info:
        build_firmware(
            [FIXTURES / "big" / "big.c"], [], board, tmp_path, defines={"TP_BIG_BYTES": str(big)}
        )
    assert (info.value.region, info.value.available) == ("FLASH", board.flash.length)
    message = str(info.value)
    assert "FLASH" in message and f"available {board.flash.length} bytes" in message
    used = int(message.split("needs ")[1].split(" bytes")[0])
    assert used > big


def test_compile_error_gives_first_error_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.c"
    bad.write_text("int main(void) { return undefined_thing; }\n")
    with pytest.raises(CheckFailed, match=r"compiling bad.c failed: .*undefined_thing"):
        build_firmware([bad], [], load_board("mps2_an500"), tmp_path / "out")


def test_missing_toolchain_is_tool_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(
        ToolMissing, match=r"apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi"
    ):
        build_fake_model("mps2_an500", tmp_path / "out")


@pytest.mark.e2e
def test_rp2040_second_stage_boots_the_vector_table(tmp_path: Path) -> None:
    """The Pico's first 256 bytes carry a valid CRC and, run from SRAM as the boot ROM runs them,
    set the flash interface up for 03h reads and enter the reset handler with the initial SP."""
    import unicorn as uc_mod
    import unicorn.arm_const as R

    from tinyprune.firmware.boot2 import crc32_mpeg2

    board = load_board("rpi_pico")
    fw = build_fake_model("rpi_pico", tmp_path / "pico")
    image = fw.bin.read_bytes()
    stage2 = image[:256]
    assert int.from_bytes(stage2[252:], "little") == crc32_mpeg2(stage2[:252]) != 0
    sp, reset = (int.from_bytes(image[0x100 + i:0x104 + i], "little") for i in (0, 4))
    assert board.ram.contains(sp - 4) and board.flash.contains(reset & ~1)

    uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB)
    uc.ctl_set_cpu_model(R.UC_CPU_ARM_CORTEX_M0)
    for base, size in ((board.flash.origin, board.flash.length), (board.ram.origin, 0x42000),
                       (0x18000000, 0x1000), (0xE000E000, 0x1000)):
        uc.mem_map(base, size)
    uc.mem_write(board.flash.origin, image)
    sram_copy = 0x20041F00  # where the boot ROM copies the stage before running it
    uc.mem_write(sram_copy, stage2)
    uc.emu_start(sram_copy | 1, reset & ~1, count=200)
    assert uc.reg_read(R.UC_ARM_REG_PC) == reset & ~1 and uc.reg_read(R.UC_ARM_REG_SP) == sp

    def word(address: int) -> int:
        return int.from_bytes(uc.mem_read(address, 4), "little")

    assert word(0xE000ED08) == 0x10000100  # VTOR at the vector table
    assert (word(0x18000000), word(0x180000F4)) == (0x001F0300, 0x03000218)  # 32-bit frames, 03h
    assert (word(0x18000008), word(0x18000014)) == (1, 4)  # SSI enabled, SCK = clk_sys / 4
