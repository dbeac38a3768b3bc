"""Firmware builds for every board with the real cross toolchain (marked e2e)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tinyprune.errors import CheckFailed, DoesNotFit, ToolMissing
from tinyprune.firmware import Firmware, build_firmware, load_board, render_harness
from tinyprune.firmware.paths import data_dir

FIXTURES = Path(__file__).parent / "fixtures"
FAKE_MODEL = FIXTURES / "fake_model"
BOARDS = ("nucleo_f746", "nucleo_f401re", "mps2_an500", "mps2_an386")

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


def test_build_is_reproducible_and_has_no_build_paths(tmp_path: Path) -> None:
    first = build_fake_model("nucleo_f746", tmp_path / "a")
    second = build_fake_model("nucleo_f746", tmp_path / "b")
    assert first.elf_sha256 == second.elf_sha256
    blob = first.elf.read_bytes()
    for path in {tmp_path, data_dir(), Path(__file__).resolve().parent, Path.cwd()}:
        assert str(path).encode() not in blob, f"{path} leaked into the ELF"


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
