"""Board files: every shipped board loads; invalid files give one-line messages naming the field."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinyprune.errors import UsageError
from tinyprune.firmware import boards, paths
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
    "disco_f746ng": ("cortex-m7", 216_000_000, 0x08000000, 1 << 20, 320 << 10, "stm32f7",
                     0x40011000),
    "nucleo_h743zi": ("cortex-m7", 480_000_000, 0x08000000, 2 << 20, 512 << 10, "stm32h7",
                      0x40004800),
    "nucleo_l432kc": ("cortex-m4", 80_000_000, 0x08000000, 256 << 10, 64 << 10, "stm32l4",
                      0x40004400),
    "nucleo_l4r5zi": ("cortex-m4", 120_000_000, 0x08000000, 2 << 20, 640 << 10, "stm32l4",
                      0x40008000),
    "nucleo_l552ze_q": ("cortex-m33", 110_000_000, 0x08000000, 512 << 10, 256 << 10, "stm32l5",
                        0x40008000),
    "nrf52840dk": ("cortex-m4", 64_000_000, 0x0, 1 << 20, 256 << 10, "nrf52", 0x40002000),
    "rpi_pico": ("cortex-m0plus", 125_000_000, 0x10000000, 2 << 20, 264 << 10, "rp2040",
                 0x40034000),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_board_loads(name: str) -> None:
    board = load_board(name)
    core, clock, flash_origin, flash_length, ram_length, family, uart = EXPECTED[name]
    assert (board.core, board.clock_hz, board.family) == (core, clock, family)
    assert (board.flash.origin, board.flash.length) == (flash_origin, flash_length)
    ram_origin = 0x24000000 if family == "stm32h7" else 0x20000000  # H7: AXI SRAM
    assert (board.ram.origin, board.ram.length) == (ram_origin, ram_length)
    assert board.uart.base == uart
    full = core != "cortex-m0plus"
    assert (board.dsp, board.has_fpu) == (full, full)


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
        ('tx_pin = "PD8"', 'tx_pin = "PD16"', r"field uart.tx_pin: expected a pin name"),
        ('tx_pin = "PD8"', 'tx_pin = "P0.32"', r"field uart.tx_pin: expected a pin name"),
        ("af = 7\n", "af = 16\n", r"field uart.af: expected an alternate function number"),
        ("af = 7\n", "af = 7\nrx_af = -1\n", r"field uart.rx_af: expected an alternate func"),
        ('bus = "apb1"', 'bus = "ahb"', r"field uart.bus: expected one of apb1, apb2, apb1_2"),
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


def test_pin_forms_and_rx_function() -> None:
    nrf = load_board("nrf52840dk")
    assert nrf.uart.tx_pin is not None and (nrf.uart.tx_pin.port, nrf.uart.tx_pin.number) == (0, 6)
    assert nrf.uart.tx_pin.name == "P0.06" and nrf.uart.af is None
    l432 = load_board("nucleo_l432kc")
    assert (l432.uart.af, l432.uart.rx_function) == (7, 3)  # PA15 is USART2_RX on AF3
    f746 = load_board("nucleo_f746")
    assert f746.uart.rx_function == f746.uart.af == 7


def test_issue_boards_are_shipped() -> None:
    cores = {b.name: b.core for b in list_boards()}
    for name in ("nucleo_f746", "disco_f746ng", "nucleo_h743zi", "nucleo_f401re",
                 "nucleo_l432kc", "nucleo_l4r5zi", "nrf52840dk", "mps2_an500", "mps2_an386"):
        assert name in cores
    assert "cortex-m33" in cores.values()


def _own_board(folder: Path, name: str, clock: str = "216_000_000") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (paths.boards_dir() / "nucleo_f746.toml").read_text()
    path = folder / f"{name}.toml"
    path.write_text(text.replace('name = "nucleo_f746"', f'name = "{name}"')
                    .replace("clock_hz = 216_000_000", f"clock_hz = {clock}"))
    return path


@pytest.fixture
def clean_search(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(boards.BOARDS_DIR_ENV, raising=False)
    monkeypatch.setattr(boards, "_user_dirs", [])


def test_boards_dir_env_adds_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           clean_search: None) -> None:
    _own_board(tmp_path / "a", "my_board")
    _own_board(tmp_path / "b", "nucleo_f746", clock="200_000_000")
    monkeypatch.setenv(boards.BOARDS_DIR_ENV, f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    assert load_board("my_board").path == tmp_path / "a" / "my_board.toml"
    assert load_board("nucleo_f746").clock_hz == 200_000_000  # the user's file hides the shipped
    assert "my_board" in board_names() and "nrf52840dk" in board_names()
    monkeypatch.setenv(boards.BOARDS_DIR_ENV, str(tmp_path / "missing"))
    with pytest.raises(UsageError, match=r"TINYPRUNE_BOARDS_DIR=.*missing: not a folder"):
        load_board("nucleo_f746")


def test_boards_dir_option_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       clean_search: None) -> None:
    _own_board(tmp_path / "env", "my_board", clock="100_000_000")
    _own_board(tmp_path / "opt", "my_board", clock="50_000_000")
    monkeypatch.setenv(boards.BOARDS_DIR_ENV, str(tmp_path / "env"))
    boards.add_boards_dir(tmp_path / "opt")
    assert load_board("my_board").clock_hz == 50_000_000
    with pytest.raises(UsageError, match=r"--boards-dir .*nope: not a folder"):
        boards.add_boards_dir(tmp_path / "nope")


def test_misspelled_board_did_you_mean(clean_search: None) -> None:
    with pytest.raises(UsageError, match=r"board 'nucleo_h743' not found; did you mean "
                       r"nucleo_h743zi\?"):
        load_board("nucleo_h743")


def test_cli_boards_lists_core_clock_memory_dsp(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                clean_search: None) -> None:
    from tinyprune.cli import main

    _own_board(tmp_path, "my_board")
    assert main(["boards", "--boards-dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:7] == ["board", "MCU", "core", "clock", "flash", "RAM", "DSP"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "cortex-m0plus" not in rows["nucleo_h743zi"]
    h7 = rows["nucleo_h743zi"].split()
    assert h7[2:10] == ["cortex-m7", "480", "MHz", "2048", "KiB", "512", "KiB", "yes"]
    assert str(tmp_path / "my_board.toml") in rows["my_board"]
    assert str(paths.boards_dir()) not in rows["nucleo_f746"]


def test_cli_wrong_board_file_in_boards_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            clean_search: None) -> None:
    from tinyprune.cli import main

    path = _own_board(tmp_path, "my_board", clock='"fast"')
    rc = main(["boards", "--boards-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{path}: field clock_hz: expected the core clock in Hz" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_boot2_crc_is_the_mpeg2_variant() -> None:
    from tinyprune.firmware.boot2 import crc32_mpeg2

    assert crc32_mpeg2(b"123456789") == 0x0376E6E7  # the catalogued check value of CRC-32/MPEG-2
    assert crc32_mpeg2(b"") == 0xFFFFFFFF


def test_vector_offset_is_checked(tmp_path: Path) -> None:
    path = _write_variant(tmp_path, "length = 0x10_0000      # 1 MiB",
                          "length = 0x10_0000\nvector_offset = 0x80")
    with pytest.raises(UsageError, match=r"field memory.flash.vector_offset: expected a multiple "
                       r"of 256"):
        load_board(path)
    pico = load_board("rpi_pico")
    assert pico.flash.vector_table == 0x10000100 and not pico.dsp and pico.core == "cortex-m0plus"
