"""Board files: every shipped board loads; invalid files give one-line messages naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyprune.errors import UsageError
from tinyprune.firmware import paths
from tinyprune.firmware.boards import Board, board_names, list_boards, load_board

EXPECTED = {
    # name: (core, clock_hz, flash origin, flash length, ram length, family, uart base)
    "nucleo_f746": (
        "cortex-m7",
        216_000_000,
        0x08000000,
        1 << 20,
        320 << 10,
        "stm32f7",
        0x40004800,
    ),
    "nucleo_f401re": (
        "cortex-m4",
        84_000_000,
        0x08000000,
        512 << 10,
        96 << 10,
        "stm32f4",
        0x40004400,
    ),
    "mps2_an500": ("cortex-m7", 25_000_000, 0x0, 4 << 20, 4 << 20, "mps2", 0x40004000),
    "mps2_an386": ("cortex-m4", 25_000_000, 0x0, 4 << 20, 4 << 20, "mps2", 0x40004000),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_board_loads(name: str) -> None:
    board = load_board(name)
    core, clock, flash_origin, flash_length, ram_length, family, uart = EXPECTED[name]
    assert (board.core, board.clock_hz, board.family) == (core, clock, family)
    assert (board.flash.origin, board.flash.length) == (flash_origin, flash_length)
    assert (board.ram.origin, board.ram.length) == (0x20000000, ram_length)
    assert board.uart.base == uart
    assert board.dsp and board.has_fpu


def test_list_boards_matches_names() -> None:
    assert [b.name for b in list_boards()] == board_names()
    assert set(EXPECTED) <= set(board_names())


def test_stm32_board_details() -> None:
    board = load_board("nucleo_f746")
    assert board.uart.tx_pin is not None and board.uart.tx_pin.name == "PD8"
    assert board.uart.af == 7 and board.uart.enable_bit == 18
    assert board.flash_tool is not None and board.flash_tool.target == "stm32f746zgtx"
    assert board.cpu_flags == (
        "-mcpu=cortex-m7",
        "-mfpu=fpv5-sp-d16",
        "-mfloat-abi=hard",
        "-mthumb",
    )
    assert "unicorn" in board.emulator.backends


def test_mps2_has_qemu_machine() -> None:
    assert load_board("mps2_an500").emulator.qemu_machine == "mps2-an500"
    assert load_board("mps2_an386").emulator.qemu_machine == "mps2-an386"


def test_unknown_board_lists_available() -> None:
    with pytest.raises(UsageError, match=r"board 'nope' not found; available: .*nucleo_f746"):
        load_board("nope")


def test_data_dirs_exist() -> None:
    for folder in (paths.runtime_dir(), paths.templates_dir(), paths.boards_dir()):
        assert folder.is_dir()
    assert (paths.runtime_dir() / "bsp" / "tp_bsp.h").is_file()


def _write_variant(tmp_path: Path, old: str, new: str, name: str = "nucleo_f746") -> Path:
    text = (paths.boards_dir() / "nucleo_f746.toml").read_text()
    assert old in text
    target = tmp_path / f"{name}.toml"
    target.write_text(text.replace(old, new))
    return target


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "length = 0x10_0000",
            'length = "1M"',
            r"field memory.flash.length: expected a size in bytes",
        ),
        (
            "length = 0x10_0000",
            "length = 1000",
            r"field memory.flash.length: expected a positive multiple of 1024",
        ),
        (
            'core = "cortex-m7"',
            'core = "cortex-a9"',
            r"field core: expected one of cortex-m0plus.*received 'cortex-a9'",
        ),
        (
            'family = "stm32f7"',
            'family = "esp32"',
            r"field family: expected one of .*received 'esp32'",
        ),
        ("dsp = true", "dsp = 1", r"field dsp: expected true or false, received 1"),
        (
            "clock_hz = 216_000_000",
            "clock_hz = true",
            r"field clock_hz: expected the core clock in Hz, received True",
        ),
        ('tx_pin = "PD8"', 'tx_pin = "D8"', r"field uart.tx_pin: expected a pin name"),
        ("af = 7\n", "\n", r"field uart.af: expected a value \(required for family stm32f7\)"),
        ('backends = ["unicorn", "renode"]', 'backends = ["gem5"]', r"field emulator.backends"),
        ("flash_line_bytes = 32", "flash_line_bytes = 24",
         r"field timing.flash_line_bytes: expected 4, 8, 16, 32 or 64, received 24"),
        ("flash_mhz_per_wait_state = 30", "flash_mhz_per_wait_state = -1",
         r"field timing.flash_mhz_per_wait_state: expected an integer >= 0"),
        ("icache = true", 'icache = "yes"', r"field timing.icache: expected true or false"),
        ("dcache = true", 'dcache = true\nmultiplier = "tiny"',
         r"field timing.multiplier: expected fast or small, received 'tiny'"),
        (
            "[memory.ram]\norigin = 0x2000_0000\n",
            "[memory.ram]\n",
            r"field memory.ram.origin: expected an address.*missing",
        ),
    ],
)
def test_invalid_field_is_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _write_variant(tmp_path, old, new)
    with pytest.raises(UsageError, match=message) as info:
        load_board(path)
    assert str(path) in str(info.value)


def test_name_must_match_file(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, "x", "x", name="other_board")
    with pytest.raises(UsageError, match=r"field name: expected 'other_board'"):
        load_board(path)


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(UsageError, match=r"broken.toml: not valid TOML"):
        load_board(path)


def test_missing_file() -> None:
    with pytest.raises(UsageError, match=r"board file 'no/such.toml' not found"):
        load_board("no/such.toml")


def test_board_is_frozen() -> None:
    board: Board = load_board("nucleo_f746")
    with pytest.raises(AttributeError):
        board.clock_hz = 1  # type: ignore[misc]
