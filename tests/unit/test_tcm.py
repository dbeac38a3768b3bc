"""TCMs: board fields, their pricing in the cycle models, and the placement policy (docs/tcm.md).

Cycle figures are hand-computed from the rules of docs/cycle_models.md: nucleo_f746 has 7 flash
wait states (a 32-byte line fill costs 8), nucleo_h743zi 9 at 480 MHz (a fill costs 10).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from capstone import arm_const as A

from tinyprune.emulator.cycle_models import model_for
from tinyprune.errors import UsageError
from tinyprune.firmware import paths
from tinyprune.firmware.boards import load_board
from tinyprune.firmware.build import render_linker_script
from tinyprune.firmware.placement import Candidate, candidates, choose, free_bytes

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


# ---- placement policy --------------------------------------------------------------------------
def _weights(kernel: str, nbytes: int, saved: float) -> Candidate:
    return Candidate(kernel, "weights", (f"tp_c_{kernel}",), nbytes, saved)


def test_greedy_by_saved_cycles_per_byte() -> None:
    cands = [_weights("a", 40_000, 400_000),  # 10 per byte
             _weights("b", 10_000, 200_000),  # 20 per byte: first
             _weights("c", 8_000, 40_000)]  # 5 per byte: what is left no longer holds it
    placement = choose(cands, {"dtcm": 52_000})
    placed = {d.candidate.kernel: d.placed for d in placement.decisions}
    assert placed == {"b": True, "a": True, "c": False}
    assert [d.candidate.kernel for d in placement.decisions] == ["b", "a", "c"]
    assert placement.bytes_in("dtcm") == 50_000
    assert placement.dtcm_arrays == ("tp_c_b", "tp_c_a")
    assert "does not fit: 8,000 bytes, 2,000 left in DTCM" in placement.decisions[2].reason


def test_what_does_not_pay_stays_in_flash() -> None:
    placement = choose([_weights("fc", 836, 209.0),
                        Candidate("conv", "code", ("conv",), 1184, 0.0)],
                       {"dtcm": 60_000, "itcm": 16_384})
    assert not placement.any
    assert all(d.reason.startswith("does not pay") for d in placement.decisions)


def test_a_memory_the_board_lacks_holds_nothing() -> None:
    placement = choose([Candidate("conv", "code", ("conv",), 1184, 1e6)], {"dtcm": 60_000})
    assert not placement.any and "0 left in ITCM" in placement.decisions[0].reason


@pytest.mark.parametrize(("board", "stack", "ram_used", "budget", "dtcm"), [
    ("nucleo_f746", 8192, 17_452, None, 65_536 - 8192),  # DTCM minus the stack below it
    ("nucleo_f746", 8192, 17_452, 20_000, 20_000 - 17_452 - 256),  # the RAM budget binds
    ("nucleo_f746", 8192, 327_500, None, 0),  # RAM is full: nothing may move into it
    ("nucleo_f746", 72 << 10, 90_000, None, 0),  # the stack alone fills the DTCM
    ("nucleo_h743zi", 8192, 500_000, None, 131_072),  # a separate DTCM: all of it
])
def test_free_dtcm_never_overflows_ram(board: str, stack: int, ram_used: int,
                                       budget: int | None, dtcm: int) -> None:
    free = free_bytes(load_board(board), stack_bytes=stack, ram_used=ram_used, ram_budget=budget)
    assert free["dtcm"] == dtcm


def _plan(macs: int, filter_elems: int) -> object:
    class Call:
        kernel, params, est_cycles = "tp_conv_s8", {"filter": "tp_c0_w", "bias": "tp_c1_b"}, 500_000

    Call.macs = macs  # type: ignore[attr-defined]
    consts = [SimpleNamespace(symbol="tp_c0_w", nbytes=filter_elems,
                              values=np.zeros(filter_elems, np.int8)),
              SimpleNamespace(symbol="tp_c1_b", nbytes=256, values=np.zeros(64, np.int32))]
    return SimpleNamespace(consts=consts, code_ops=[SimpleNamespace(call=Call,
                                                                     op=SimpleNamespace(name="c1"))])


def test_candidates_price_weights_and_code_from_the_board() -> None:
    plan = _plan(macs=4096 * 125, filter_elems=4096)  # 125 pixels: 62 passes over 4,352 bytes
    f7 = load_board("nucleo_f746")
    found = {c.kind: c for c in candidates(plan, f7, {"tp_conv_s8": 1000})}  # type: ignore[arg-type]
    assert found["weights"].nbytes == 4096 + 256 and found["weights"].layer == "c1"
    assert found["weights"].saved_cycles == pytest.approx(62 * 4352 * 8 / 32)  # D-cache fills
    assert found["code"].saved_cycles == 0.0  # I-cache on: fills once per run, not per inference
    uncached = _no_icache("nucleo_f746")
    found = {c.kind: c for c in candidates(plan, uncached, {"tp_conv_s8": 1000})}  # type: ignore[arg-type]
    code = found["code"]
    assert code.saved_cycles == pytest.approx(500_000 * 2.0 * 8 / 32)
    table = candidates(plan, f7, {"tp_conv_s8": 1000}, memory_costs=False)  # type: ignore[arg-type]
    assert all(c.saved_cycles == 0 for c in table)
    assert candidates(plan, load_board("nucleo_f401re"), {}) == []  # type: ignore[arg-type]


def test_linker_script_places_the_chosen_sections(tmp_path: Path) -> None:
    placement = choose([Candidate("k", "code", ("tp_k",), 100, 1e6),
                        _weights("k", 4000, 1e5)], {"itcm": 16_384, "dtcm": 50_000})
    f7 = render_linker_script(load_board("nucleo_f746"), tmp_path, 8192, placement).read_text()
    assert "*(.text.tp_k)" in f7 and "*(.rodata.tp_c_k)" in f7
    assert "} > RAM AT > FLASH" in f7 and "DTCM  (rw)" not in f7  # F7: the DTCM starts RAM
    assert f7.index(".stack (NOLOAD)") < f7.index(".dtcm_rodata :") < f7.index(".data :")
    assert f7.index(".dtcm_rodata :") < f7.index(".text :")  # matched before .text's wildcard
    h7 = render_linker_script(load_board("nucleo_h743zi"), tmp_path, 8192, placement).read_text()
    assert "DTCM  (rw)  : ORIGIN = 0x20000000, LENGTH = 0x20000" in h7
    assert "} > DTCM AT > FLASH" in h7
    plain = render_linker_script(load_board("nucleo_f401re"), tmp_path, 8192).read_text()
    assert ".itcm_text" not in plain and ".dtcm_rodata" not in plain


# ---- the option ----------------------------------------------------------------------------
def test_no_tcm_option_and_project_file(tmp_path: Path) -> None:
    import argparse

    from tinyprune.cli import _add_build_options, _build_options
    from tinyprune.config import resolve

    parser = argparse.ArgumentParser()
    _add_build_options(parser)
    base = ["--board", "nucleo_f746", "--model", "m.tflite", "--config", str(tmp_path / "t.toml")]
    (tmp_path / "t.toml").write_text("tcm = false\n")
    assert _build_options(parser.parse_args(base)).tcm is False
    (tmp_path / "t.toml").write_text("")
    assert _build_options(parser.parse_args(base)).tcm is True  # the default
    assert _build_options(parser.parse_args([*base, "--no-tcm"])).tcm is False
    (tmp_path / "t.toml").write_text('tcm = "no"\n')
    with pytest.raises(UsageError, match=r"tcm: expected bool, received 'no'"):
        resolve({}, tmp_path / "t.toml")


def test_weights_are_per_layer_and_a_shared_array_goes_with_the_first() -> None:
    plan = _plan(macs=4096 * 125, filter_elems=4096)
    second = SimpleNamespace(call=SimpleNamespace(kernel="tp_conv_s8", params={
        "filter": "tp_c2_w", "bias": "tp_c1_b"}, est_cycles=None, macs=4096 * 8),
        op=SimpleNamespace(name="c2"))
    plan.consts.append(SimpleNamespace(symbol="tp_c2_w", nbytes=4096,  # type: ignore[attr-defined]
                                       values=np.zeros(4096, np.int8)))
    plan.code_ops.append(second)  # type: ignore[attr-defined]
    found = [c for c in candidates(plan, load_board("nucleo_f746"), {})  # type: ignore[arg-type]
             if c.kind == "weights"]
    assert [(c.layer, c.symbols) for c in found] == [("c1", ("tp_c0_w", "tp_c1_b")),
                                                     ("c2", ("tp_c2_w",))]
    assert found[1].saved_cycles == pytest.approx(4 * 4096 * 8 / 32)  # 4 passes


# ---- the emulator prices a kernel's loads per layer --------------------------------------------
_MOV_R4 = {"flash": "40f20004c0f60004",  # movw r4, #0; movt r4, #0x0800
           "dtcm": "40f20014c2f20004"}  # movw r4, #0x100; movt r4, #0x2000
_BL_K = ("00f007f8", "00f001f8")  # bl k (from offset 8 and from offset 0x14)


def _two_layers(first: str, second: str) -> object:
    """``tp_model_invoke`` calls kernel ``k`` (``ldr r0, [r4]; bx lr``) twice, with r4 pointing
    to ``first`` then to ``second``; then parks in ``b .``."""
    from tinyprune.emulator.elf import ElfImage, Segment

    origin = 0x0800_0000
    code = bytes.fromhex(_MOV_R4[first] + _BL_K[0] + _MOV_R4[second] + _BL_K[1] + "fee7"
                         + "2068" + "7047")
    invoke, k = origin + 0x100, origin + 0x100 + 0x1A
    vectors = (0x2000_1000).to_bytes(4, "little") + (invoke | 1).to_bytes(4, "little")
    return ElfImage(Path("layers.elf"), (Segment(origin, vectors), Segment(invoke, code)),
                    {"tp_model_invoke": invoke, "k": k}, {}, (invoke, k), (k, k + 4),
                    ("tp_model_invoke", "k"))


def _cycles(first: str, second: str) -> int:
    from tinyprune.emulator.faults import FirmwareStopped
    from tinyprune.emulator.limits import Limits
    from tinyprune.emulator.unicorn_backend import _Run

    board = load_board("nucleo_f746")
    run = _Run(board, _two_layers(first, second), (), Limits(10_000), True,  # type: ignore[arg-type]
               None, model_for(board, "m7"))
    with pytest.raises(FirmwareStopped):
        run.run()
    return int(run.cycles)


def test_a_kernel_is_priced_again_at_each_layer_call() -> None:
    from tinyprune.emulator.elf import layer_calls

    assert layer_calls(_two_layers("flash", "dtcm")) == {0x0800_011A}  # type: ignore[arg-type]
    both_dtcm = _cycles("dtcm", "dtcm")
    # one 4-byte flash load through the D-cache: 4/32 of a line fill of 8 = 1 cycle per call
    assert _cycles("flash", "dtcm") == both_dtcm + 1  # the second call is priced for DTCM
    assert _cycles("dtcm", "flash") == both_dtcm + 1  # and for flash after a DTCM call
    assert _cycles("flash", "flash") == both_dtcm + 2


def test_a_lookup_table_is_priced_per_output_element() -> None:
    call = SimpleNamespace(kernel="tp_add_table_s8", params={"table": "tp_c0_t"}, est_cycles=None,
                           macs=0)
    plan = SimpleNamespace(
        consts=[SimpleNamespace(symbol="tp_c0_t", nbytes=512, values=np.zeros(256, np.int16))],
        code_ops=[SimpleNamespace(call=call, op=SimpleNamespace(name="add", outputs=(1,)))],
        graph=SimpleNamespace(tensors=(None, SimpleNamespace(shape=(1, 32, 32, 16)))))
    (table,) = candidates(plan, load_board("nucleo_f746"), {})  # type: ignore[arg-type]
    assert table.saved_cycles == pytest.approx(4 * 16_384 * 8 / 32)  # 4 bytes per output
