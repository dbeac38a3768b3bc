"""Emulator backends on real firmware: results, errors, and unicorn vs QEMU instruction counts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinyprune.emulator import RunResult, parse_results, run_elf
from tinyprune.emulator.cycles import disassembler
from tinyprune.emulator.elf import read_elf
from tinyprune.errors import CheckFailed, EmulationError, UsageError
from tinyprune.firmware import Firmware, build_firmware, load_board, render_harness

FIXTURES = Path(__file__).parent / "fixtures"
BOARDS = ("nucleo_f746", "nucleo_f401re", "mps2_an500", "mps2_an386")

needs_gcc = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)",
)
needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None,
    reason="qemu-system-arm not installed (apt-get install qemu-system-arm)",
)
WEIGHTS = (3, -5, 7, -11)
SAMPLES = (
    bytes(range(1, 17)),
    bytes(
        [
            0x80,
            0x7F,
            0xFF,
            0x01,
            0x10,
            0xF0,
            0x22,
            0xDE,
            0x33,
            0xCC,
            0x44,
            0xBB,
            0x55,
            0xAA,
            0x66,
            0x99,
        ]
    ),
)


def fake_model_reference(sample: bytes) -> bytes:
    """What fixtures/fake_model/model.c computes, in Python."""
    signed = [b - 256 if b > 127 else b for b in sample]
    out = []
    for j in range(4):
        acc = sum(x * w for x, w in zip(signed[4 * j : 4 * j + 4], WEIGHTS, strict=True))
        out.append(max(-128, min(127, acc >> 2)) & 0xFF)
    return bytes(out)


def build_fake_model(board_name: str, out: Path) -> Firmware:
    """The harness + the two-layer fake model (fixtures/fake_model), built for ``board_name``."""
    out.mkdir(parents=True, exist_ok=True)
    main = render_harness(out / "main.c")
    model = FIXTURES / "fake_model"
    return build_firmware([main, model / "model.c"], [model], load_board(board_name), out)


def build_fixture(source: str, board_name: str, out: Path, **defines: str) -> Firmware:
    return build_firmware(
        [FIXTURES / source], [], load_board(board_name), out, defines=defines, stack_bytes=1024
    )


# ---- protocol (pure) ---------------------------------------------------------------------------
GOOD = """boot noise
@tp begin v=1 model=m board=b samples=1 layers=2
@tp layer s=0 i=0 cyc=10
@tp layer s=0 i=1 cyc=20
@tp out s=0 cyc=31 hex=00ff7f
@tp stack peak=120 size=8192
@tp end status=0
"""


def test_parse_results() -> None:
    results = parse_results(GOOD.replace("\n", "\r\n"))
    assert results.outputs == [b"\x00\xff\x7f"]
    assert results.samples[0].layer_cycles == (10, 20)
    assert (results.total_cycles, results.stack_peak, results.stack_size, results.status) == (
        31,
        120,
        8192,
        0,
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"no '@tp begin' line"),
        (GOOD.replace("@tp end status=0\n", ""), r"no '@tp end' line"),
        (GOOD.replace("hex=00ff7f", "hex=0g"), r"line 5: field hex: expected hex bytes"),
        (GOOD.replace("cyc=20", "cyc=x"), r"line 4: field cyc: expected an integer"),
        (GOOD.replace("i=1 ", ""), r"line 4: expected fields i"),
        (
            GOOD.replace("@tp out s=0 cyc=31 hex=00ff7f\n", ""),
            r"expected 1 '@tp out' lines, received 0",
        ),
        ("@tp fault kind=hard pc=0x08000100 cfsr=0x00000400\n", r"firmware faulted: kind=hard"),
    ],
)
def test_parse_results_errors(text: str, message: str) -> None:
    with pytest.raises(CheckFailed, match=message):
        parse_results(text)


# ---- unicorn on every board --------------------------------------------------------------------
@pytest.fixture(scope="module")
def fake_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Firmware]:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    root = tmp_path_factory.mktemp("fake")
    return {name: build_fake_model(name, root / name) for name in BOARDS}


@pytest.mark.e2e
@pytest.mark.parametrize("board_name", BOARDS)
def test_unicorn_runs_harness(board_name: str, fake_builds: dict[str, Firmware]) -> None:
    board = load_board(board_name)
    run = run_elf(board, fake_builds[board_name].elf, regions=["tp_model_invoke"])
    assert (run.backend, run.stop_reason, run.exit_status) == ("unicorn", "end-line", 0)
    results = parse_results(run.uart)
    assert results.board == board_name and results.model == "fake2"
    assert results.outputs == [fake_model_reference(s) for s in SAMPLES]
    assert 0 < results.stack_peak < results.stack_size == 8192
    assert all(s.cycles > 0 and all(c > 0 for c in s.layer_cycles) for s in results.samples)
    # the board's core model prices it; dual issue (M7) retires at most 2 instructions a cycle
    assert run.cycle_model == {"cortex-m7": "m7", "cortex-m4": "m4"}[board.core]
    assert run.instructions > 0 and run.cycles >= run.instructions / 2 and run.cycles_are_estimate
    invoke = run.regions["tp_model_invoke"]
    assert invoke.calls == 2 and 0 < invoke.instructions < run.instructions
    # CYCCNT is served by the cycle model: what the firmware measured is what the model priced.
    # (to one basic block, plus the cost of reading the counter itself)
    assert abs(results.total_cycles - invoke.cycles) <= 0.2 * invoke.cycles


@pytest.mark.e2e
def test_smlad_path_is_exercised(fake_builds: dict[str, Firmware]) -> None:
    """DSP spot check: the firmware's inner loop uses SMLAD, and its results match Python."""
    fw = fake_builds["nucleo_f746"]
    image = read_elf(fw.elf)
    start = image.function_address("tp_model_invoke")
    code = next(seg for seg in image.segments if seg.address <= start < seg.address + len(seg.data))
    body = code.data[start - code.address : start - code.address + 256]
    assert "smlad" in {insn.mnemonic for insn in disassembler().disasm(body, start)}
    run = run_elf(load_board("nucleo_f746"), fw.elf)
    assert parse_results(run.uart).outputs == [fake_model_reference(s) for s in SAMPLES]


@pytest.mark.e2e
def test_unknown_region_is_usage_error(fake_builds: dict[str, Firmware]) -> None:
    with pytest.raises(UsageError, match=r"function 'tp_model_invok' not found.*tp_model_invoke"):
        run_elf(load_board("mps2_an500"), fake_builds["mps2_an500"].elf, regions=["tp_model_invok"])


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.e2e
@needs_gcc
@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (
            "1",
            r"invalid read of 4 bytes at 0x50000000 \(pc 0x[0-9a-f]{8}, in function tp_bad_read\)",
        ),
        ("2", r"no end after 100000 instructions \(infinite loop\?\).*in function tp_spin"),
        ("3", r"stack overflow: write of 4 bytes at 0x1fff.*in function tp_recurse.*1024 bytes"),
    ],
)
@pytest.mark.parametrize("board_name", ["nucleo_f746", "mps2_an386"])
def test_unicorn_errors(fault: str, message: str, board_name: str, tmp_path: Path) -> None:
    fw = build_fixture("faults/faults.c", board_name, tmp_path, TP_FAULT=fault)
    with pytest.raises(EmulationError, match=message):
        run_elf(load_board(board_name), fw.elf, max_instructions=100_000)


@pytest.mark.e2e
@needs_gcc
def test_wrong_board_elf_is_refused(fake_builds: dict[str, Firmware]) -> None:
    with pytest.raises(UsageError, match=r"lies outside board mps2_an500"):
        run_elf(load_board("mps2_an500"), fake_builds["nucleo_f746"].elf)


# ---- unicorn vs QEMU ---------------------------------------------------------------------------
def _both(board_name: str, elf: Path) -> tuple[RunResult, RunResult]:
    board = load_board(board_name)
    # QEMU's trace is priced with the table model: the cross-check uses it on both
    return (run_elf(board, elf, backend="unicorn", cycle_model="table"),
            run_elf(board, elf, backend="qemu"))


@pytest.mark.e2e
@needs_gcc
@needs_qemu
@pytest.mark.parametrize("board_name", ["mps2_an500", "mps2_an386"])
@pytest.mark.parametrize(("semihosting", "reason"), [("0", "end-line"), ("1", "exit")])
@pytest.mark.parametrize("rounds", ["40u", "200u"])
def test_qemu_instruction_count_matches_unicorn(
    board_name: str, semihosting: str, reason: str, rounds: str, tmp_path: Path
) -> None:
    fw = build_fixture(
        "crosscheck/crosscheck.c", board_name, tmp_path, TP_EXIT_SEMIHOSTING=semihosting,
        TP_ROUNDS=rounds,
    )
    uni, qemu = _both(board_name, fw.elf)
    assert qemu.backend == "qemu" and uni.backend == "unicorn"
    assert uni.uart == qemu.uart and "checksum=0x" in uni.uart
    assert uni.stop_reason == qemu.stop_reason == reason
    assert uni.exit_status == qemu.exit_status == 0
    assert uni.instructions == qemu.instructions > 10_000
    assert uni.cycles == qemu.cycles


@pytest.mark.e2e
@needs_qemu
def test_qemu_runs_harness(fake_builds: dict[str, Firmware]) -> None:
    run = run_elf(load_board("mps2_an500"), fake_builds["mps2_an500"].elf, backend="qemu")
    results = parse_results(run.uart)
    assert results.outputs == [fake_model_reference(s) for s in SAMPLES]
    assert run.stop_reason == "end-line" and run.instructions > 0


@pytest.mark.e2e
def test_qemu_refuses_stm32_board(fake_builds: dict[str, Firmware]) -> None:
    with pytest.raises(UsageError, match=r"nucleo_f746 cannot run on qemu"):
        run_elf(load_board("nucleo_f746"), fake_builds["nucleo_f746"].elf, backend="qemu")


def test_unknown_backend(tmp_path: Path) -> None:
    elf = tmp_path / "x.elf"
    elf.write_bytes(b"\x7fELF" + b"\0" * 60)
    with pytest.raises(UsageError):
        run_elf(load_board("mps2_an500"), elf, backend="renode")
