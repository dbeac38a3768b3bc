"""TCMs: board fields, their pricing in the cycle models, and the placement policy (docs/tcm.md).

Cycle figures are hand-computed from the rules of docs/cycle_models.md: nucleo_f746 has 7 flash
wait states (a 32-byte line fill costs 8), nucleo_h743zi 9 at 480 MHz (a fill costs 10).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from capstone import arm_const as A

from tinyprune.emulator.cycle_models import model_for
from tinyprune.errors import UsageError
from tinyprune.firmware import paths
from tinyprune.firmware.boards import load_board

ITCM, DTCM_F7, DTCM_H7, AXI, FLASH = 0x0000_0100, 0x2000_4000, 0x2000_4000, 0x2400_1000, 0x0800_1000
ADDS = bytes.fromhex("01300131")  # adds r0, #1; adds r1, #1: one cycle on the M7 (dual issue)
LDR_R4 = bytes.fromhex("2068")  # ldr r0, [r4]


def _regs(r4: int) -> object:
    return lambda reg: r4 if reg == A.ARM_REG_R4 else 0x2000_0000


# ---- board fields ------------------------------------------------------------------------------
def test_shipped_tcms() -> None:
    f7, h7 = load_board("nucleo_f746"), load_board("nucleo_h743zi")
    assert f7.itcm is not None and (f7.itcm.origin, f7.itcm.length) == (0, 16 << 10)
    assert f7.dtcm is not None and (f7.dtcm.origin, f7.dtcm.length) == (0x2000_0000, 64 << 10)
    assert f7.dtcm_in_ram and not h7.dtcm_in_ram
    assert h7.itcm is not None and h7.itcm.length == 64 << 10
    assert h7.dtcm is not None and (h7.dtcm.origin, h7.dtcm.length) == (0x2000_0000, 128 << 10)
    assert load_board("nucleo_f401re").itcm is None  # optional: boards without TCM stay valid


def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (paths.boards_dir() / "nucleo_f746.toml").read_text()
    assert old in text
    target = tmp_path / "nucleo_f746.toml"
    target.write_text(text.replace(old, new))
    return target


@pytest.mark.parametrize(("old", "new", "message"), [
    ("origin = 0x0000_0000\nlength = 0x4000", "origin = 0x0800_0000\nlength = 0x4000",
     r"field memory.itcm.origin: expected a range outside \[memory.flash\]"),
    ("origin = 0x0000_0000\nlength = 0x4000", "origin = 0x2000_0000\nlength = 0x4000",
     r"field memory.itcm.origin: expected a range outside"),
    ("origin = 0x0000_0000\nlength = 0x4000", "origin = 0x0000_0000\nlength = 100",
     r"field memory.itcm.length: expected a positive multiple of 1024"),
    ("origin = 0x2000_0000\nlength = 0x1_0000", "origin = 0x2000_4000\nlength = 0x1_0000",
     r"field memory.dtcm.origin: expected the start of \[memory.ram\] or a range outside"),
    ("[memory.dtcm]           # DTCM RAM: the first 64 KiB of the RAM region above\n"
     "origin = 0x2000_0000\n", "[memory.dtcm]\n",
     r"field memory.dtcm.origin: expected an address.*missing"),
])
def test_bad_tcm_field_is_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _variant(tmp_path, old, new)
    with pytest.raises(UsageError, match=message) as info:
        load_board(path)
    assert str(path) in str(info.value)


def test_bad_tcm_field_exits_2(tmp_path: Path) -> None:
    import subprocess
    import sys

    _variant(tmp_path, "origin = 0x0000_0000\nlength = 0x4000",
             "origin = 0x0800_0000\nlength = 0x4000")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "tinyprune.cli", "boards", "--boards-dir",
                           str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "memory.itcm.origin" in proc.stderr and "Traceback" not in proc.stderr


# ---- pricing -----------------------------------------------------------------------------------
def _no_icache(board_name: str) -> object:
    board = load_board(board_name)
    return dataclasses.replace(board, timing=dataclasses.replace(board.timing, icache=False))


@pytest.mark.parametrize(("board", "fill"), [("nucleo_f746", 8), ("nucleo_h743zi", 10)])
def test_itcm_fetch_is_zero_wait(board: str, fill: int) -> None:
    uncached = _no_icache(board)
    flash = model_for(uncached, "m7").block(ADDS, FLASH)  # type: ignore[arg-type]
    itcm = model_for(uncached, "m7").block(ADDS, ITCM)  # type: ignore[arg-type]
    assert (flash.cycles, flash.cold_cycles) == (1 + fill, 0)  # one line fill every execution
    assert (itcm.cycles, itcm.cold_cycles) == (1, 0)
    cached_flash = model_for(load_board(board), "m7").block(ADDS, FLASH)
    cached_itcm = model_for(load_board(board), "m7").block(ADDS, ITCM)
    assert (cached_flash.cold_cycles, cached_itcm.cold_cycles) == (fill, 0)


@pytest.mark.parametrize(("board", "address", "dcache", "extra"), [
    ("nucleo_f746", FLASH, True, 1),  # 4 bytes of a 32-byte line fill of 8
    ("nucleo_f746", FLASH, False, 7),  # every uncached flash read waits 7
    ("nucleo_f746", DTCM_F7, False, 0),  # DTCM: zero wait, cache or not
    ("nucleo_h743zi", FLASH, False, 9),
    ("nucleo_h743zi", DTCM_H7, False, 0),
    ("nucleo_h743zi", AXI, True, 0),  # AXI SRAM behind the D-cache: priced as hits
])
def test_dtcm_loads_are_zero_wait(board: str, address: int, dcache: bool, extra: int) -> None:
    b = load_board(board)
    b = dataclasses.replace(b, timing=dataclasses.replace(b.timing, dcache=dcache))
    base = model_for(b, "m7").block(LDR_R4, 0x0800_0000).cycles
    priced = model_for(b, "m7").block(LDR_R4, 0x0800_0000, _regs(address))  # type: ignore[arg-type]
    assert priced.cycles - base == extra


def test_memory_of_names_the_memories() -> None:
    memory = model_for(load_board("nucleo_h743zi"), "m7").memory
    assert memory is not None
    assert [memory.memory_of(a) for a in (FLASH, ITCM, DTCM_H7, AXI)] == \
        ["flash", "itcm", "dtcm", "ram"]
    assert memory.describe()["tcm_wait_states"] == 0
