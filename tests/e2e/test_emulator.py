"""Emulator backends on real firmware: results, errors, and unicorn vs QEMU instruction counts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from tinyprune.emulator import RunResult, parse_results, run_elf
from tinyprune.emulator.cycle_models import DEFAULT_FOR_CORE
from tinyprune.emulator.cycles import disassembler
from tinyprune.emulator.elf import prints_harness_lines, read_elf
from tinyprune.emulator.faults import Fault, FirmwareStopped
from tinyprune.errors import CheckFailed, EmulationError, UsageError
from tinyprune.firmware import Firmware, board_names, build_firmware, load_board, render_harness

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
BOARDS = tuple(board_names())  # every shipped board

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
        (
            "@tp fault kind=hard pc=0x08000100 cfsr=0x00000400\n",
            r"firmware faulted: BusFault: imprecise data bus error; pc 0x08000100",
        ),
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
    assert run.cycle_model == DEFAULT_FOR_CORE[board.core]
    assert run.instructions > 0 and run.cycles >= run.instructions / 2 and run.cycles_are_estimate
    invoke = run.regions["tp_model_invoke"]
    assert invoke.calls == 2 and 0 < invoke.instructions < run.instructions
    # CYCCNT is served by the cycle model: what the firmware measured is what the model priced.
    # (to one basic block, plus the cost of reading the counter itself)
    assert abs(results.total_cycles - invoke.cycles) <= 0.2 * invoke.cycles


@pytest.mark.e2e
@pytest.mark.parametrize("board_name", [b for b in BOARDS if load_board(b).family != "mps2"])
def test_bsp_sets_the_boards_clock_and_baud(board_name: str, fake_builds: dict[str, Firmware],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The board support's clock tree reaches the board file's clock_hz, and its UART divider the
    baud rate, as decoded from the registers the firmware wrote (the emulator's RCC models)."""
    from tinyprune.emulator import peripherals as P
    from tinyprune.emulator import unicorn_backend

    made: list[P.Peripheral] = []

    def capture(*args: object, **kwargs: object) -> list[P.Peripheral]:
        made[:] = P.peripherals_for(*args, **kwargs)  # type: ignore[arg-type]
        return made

    monkeypatch.setattr(unicorn_backend, "peripherals_for", capture)
    board = load_board(board_name)
    run = run_elf(board, fake_builds[board_name].elf)
    assert run.exit_status == 0
    by_type = {type(p): p for p in made}
    if board.family == "nrf52":
        assert by_type[P.NrfClock].hfxo_started  # type: ignore[attr-defined]
        baud = by_type[P.NrfUart].baud()  # type: ignore[attr-defined]
    elif board.family == "rp2040":
        clk_sys = by_type[P.Rp2040Clocks].sysclk_hz()  # type: ignore[attr-defined]
        assert clk_sys == board.clock_hz
        baud = by_type[P.Pl011].baud(clk_sys)  # type: ignore[attr-defined]
    else:
        rcc = next(p for p in made if isinstance(p, P.StmRcc))
        assert rcc.sysclk_hz() == board.clock_hz
        uart = next(p for p in made if isinstance(p, P.StmUsart))
        assert board.uart.bus is not None
        baud = uart.baud(rcc.uart_clock_hz(board.uart.bus))
    assert abs(baud - board.uart.baud) <= 0.01 * board.uart.baud


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


# ---- faults and stops --------------------------------------------------------------------------
# One image per board holds every case (fixtures/faults/faults.c); a case is picked by patching
# the word `tp_case` in a copy of the ELF.
FAULT_BOARDS = ("nucleo_f746", "mps2_an500")


@pytest.fixture(scope="module")
def fault_images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Firmware]:
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    root = tmp_path_factory.mktemp("faults")
    return {name: build_fixture("faults/faults.c", name, root / name) for name in FAULT_BOARDS}


def case_elf(fw: Firmware, case: int, folder: Path) -> Path:
    """A copy of the fault image that runs ``case``."""
    data = bytearray(fw.elf.read_bytes())
    with fw.elf.open("rb") as handle:
        elffile = ELFFile(handle)
        symtab = elffile.get_section_by_name(".symtab")
        address = symtab.get_symbol_by_name("tp_case")[0]["st_value"]
        (offset,) = (
            seg["p_offset"] + address - seg["p_vaddr"]
            for seg in elffile.iter_segments()
            if seg["p_type"] == "PT_LOAD"
            and seg["p_vaddr"] <= address < seg["p_vaddr"] + seg["p_filesz"]
        )
    data[offset : offset + 4] = case.to_bytes(4, "little")
    out = folder / f"case{case}.elf"
    out.write_bytes(data)
    return out


def symbol(fw: Firmware, name: str) -> int:
    return read_elf(fw.elf).symbols[name]


@dataclass(frozen=True)
class FaultCase:
    """A case of faults.c: the fault it must raise, where, and at which address."""

    case: int
    kind: str
    reason: str
    function: str
    instruction: str | None  # the mnemonic the faulting instruction starts with
    address: Callable[[Firmware], int | None]
    qemu: bool = True  # QEMU's MPS2 machine raises it too


def words(offset: int) -> Callable[[Firmware], int]:
    return lambda fw: symbol(fw, "tp_words") + offset


FAULTS = [
    FaultCase(1, "BusFault", "precise data bus error", "tp_bad_read", "ldr", lambda _: 0x50000000),
    FaultCase(3, "BusFault", "stack overflow", "tp_recurse", "push", lambda _: None, qemu=False),
    FaultCase(4, "UsageFault", "unaligned access", "tp_ldrd", "ldrd", words(1)),
    FaultCase(5, "UsageFault", "unaligned access", "tp_strd", "strd", words(2)),
    FaultCase(6, "UsageFault", "unaligned access", "tp_ldm", "ldm", words(2)),
    FaultCase(7, "UsageFault", "unaligned access", "tp_stm", "stm", words(1)),
    FaultCase(8, "UsageFault", "unaligned access", "tp_ldr", "ldr", words(1)),
    FaultCase(24, "UsageFault", "unaligned access", "tp_ldrh", "ldrh", words(1)),
    FaultCase(25, "UsageFault", "unaligned access", "tp_vldr", "vldr", words(2)),
    FaultCase(10, "UsageFault", "divide by zero", "tp_sdiv", "sdiv", lambda _: None),
    FaultCase(12, "UsageFault", "undefined instruction", "tp_udf", "udf", lambda _: None),
    FaultCase(13, "UsageFault", "no coprocessor", "tp_fpu", "vmov", lambda _: None),
    FaultCase(14, "MemManage fault", "instruction access violation", "?", None,
              lambda _: 0x40000000),
    FaultCase(15, "BusFault", "instruction bus error", "?", None, lambda _: 0x30000000),
    FaultCase(16, "UsageFault", "invalid state", "tp_nop", None, lambda _: None),
    FaultCase(20, "BusFault", "precise data bus error", "main", "str",
              lambda fw: symbol(fw, "tp_flash_word"), qemu=False),  # MPS2 code memory is RAM
    # 38th pass of a loop stepping by 8 after a step of 2: the loop's checks are not skipped
    FaultCase(21, "UsageFault", "unaligned access", "tp_walk", "ldrd", words(38 * 8 + 2)),
    # the pointer comes from memory in the same block as the access
    FaultCase(22, "UsageFault", "unaligned access", "tp_via_memory", "ldrd", words(19)),
]


_UNICORN_FAULTS: dict[tuple[str, int], Fault] = {}  # (board, case): shared with the QEMU test


def _expect_fault(fw: Firmware, elf: Path, board_name: str, backend: str, case: FaultCase) -> Fault:
    with pytest.raises(FirmwareStopped) as info:
        run_elf(load_board(board_name), elf, backend=backend)
    err, fault = info.value, info.value.fault
    assert err.exit_code == 1 and isinstance(err, EmulationError)
    assert fault is not None, str(err)
    assert (fault.kind, fault.reason, fault.function) == (case.kind, case.reason, case.function)
    assert read_elf(fw.elf).function_at(fault.pc) == case.function
    if case.instruction is not None:
        assert (fault.instruction or "").startswith(case.instruction), fault
    if case.reason == "stack overflow":
        assert fault.address is not None and fault.address < load_board(board_name).ram.origin
    else:
        assert fault.address == case.address(fw)
    message = str(err)
    assert f"{case.kind}: {case.reason}" in message and f"pc 0x{fault.pc:08x}" in message
    assert f"UART output so far (all):\n  | case {case.case}" in message
    if backend == "unicorn":
        _UNICORN_FAULTS[board_name, case.case] = fault
    return fault


@pytest.mark.e2e
@pytest.mark.parametrize("case", FAULTS, ids=lambda c: f"{c.case}-{c.reason}")
@pytest.mark.parametrize("board_name", FAULT_BOARDS)
def test_unicorn_faults_like_the_core(
    case: FaultCase, board_name: str, fault_images: dict[str, Firmware], tmp_path: Path
) -> None:
    fw = fault_images[board_name]
    _expect_fault(fw, case_elf(fw, case.case, tmp_path), board_name, "unicorn", case)


@pytest.mark.e2e
@needs_qemu
@pytest.mark.parametrize("case", [c for c in FAULTS if c.qemu], ids=lambda c: str(c.case))
def test_qemu_reports_the_same_fault(
    case: FaultCase, fault_images: dict[str, Firmware], tmp_path: Path
) -> None:
    """QEMU vectors the fault to the firmware's handler; its `@tp fault` line decodes into the
    same fault, pc, function and address as unicorn's own detection."""
    fw = fault_images["mps2_an500"]
    elf = case_elf(fw, case.case, tmp_path)
    qemu = _expect_fault(fw, elf, "mps2_an500", "qemu", case)
    uni = _UNICORN_FAULTS.get(("mps2_an500", case.case)) or _expect_fault(
        fw, elf, "mps2_an500", "unicorn", case
    )
    assert (qemu.kind, qemu.reason, qemu.pc, qemu.address, qemu.instruction) == (
        uni.kind,
        uni.reason,
        uni.pc,
        uni.address,
        uni.instruction,
    )


STOPS = [
    (17, r"parked in a branch-to-self loop before the end-of-run line .*; pc 0x[0-9a-f]{8}, "
     r"in function main"),
    (18, r"main returned (3 )?before the end-of-run line .*in function Reset_Handler"),
    (19, r"sleeps in WFI(/WFE)? with no interrupt to wake it, before the end-of-run line .*"
     r"in function main"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("case", "message"), STOPS, ids=lambda x: str(x)[:20])
@pytest.mark.parametrize("backend", ["unicorn", "qemu"])
def test_stops_before_the_end_line_fail(
    case: int, message: str, backend: str, fault_images: dict[str, Firmware], tmp_path: Path
) -> None:
    if backend == "qemu" and shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    elf = case_elf(fault_images["mps2_an500"], case, tmp_path)
    with pytest.raises(FirmwareStopped, match=message) as info:
        run_elf(load_board("mps2_an500"), elf, backend=backend)
    assert info.value.exit_code == 1 and info.value.fault is None
    assert info.value.uart.startswith(f"case {case}\n") and f"| case {case}" in str(info.value)


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "printed"),
    [
        (0, ""),
        (9, "0x55443322"),  # an unaligned LDR without CCR.UNALIGN_TRP reads the bytes
        (11, "0x00000000"),  # a divide by zero without CCR.DIV_0_TRP gives 0
        (26, ""),  # the aligned loop of case 21: no check fires wrongly
        (27, ""),  # main returns after the end line: a normal end
    ],
)
@pytest.mark.parametrize("backend", ["unicorn", "qemu"])
def test_what_the_core_allows_runs_on(
    case: int, printed: str, backend: str, fault_images: dict[str, Firmware], tmp_path: Path
) -> None:
    if backend == "qemu" and shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    elf = case_elf(fault_images["mps2_an500"], case, tmp_path)
    run = run_elf(load_board("mps2_an500"), elf, backend=backend)
    assert (run.stop_reason, run.exit_status) == ("end-line", 0)
    assert run.uart == f"case {case}\n{printed}\n@tp end status=0\n"


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("case", "kwargs", "message"),
    [
        (2, {}, r"no '@tp begin' line within the first 10,000,000 instructions"),
        (23, {}, r"no result line within 5,000,000 instructions of the last one \(the larger of "
         r"5,000,000 and 10 x the first inference's \d[\d,]*\)"),
        (2, {"max_instructions": 100_000}, r"no end after 100,\d{3} instructions: the limit of "
         r"100,000 instructions"),
        (2, {"timeout_s": 0.3}, r"no end after [\d.]+ s, past the wall-clock limit of 0.3 s"),
    ],
    ids=["boot-budget", "sample-budget", "fixed", "wall-clock"],
)
def test_limits_stop_a_loop_that_never_ends(
    case: int, kwargs: dict, message: str, fault_images: dict[str, Firmware], tmp_path: Path
) -> None:
    elf = case_elf(fault_images["nucleo_f746"], case, tmp_path)
    with pytest.raises(FirmwareStopped, match=message) as info:
        run_elf(load_board("nucleo_f746"), elf, **kwargs)
    assert "in function tp_spin" in info.value.summary
    assert f"| case {case}" in str(info.value)
    if case == 23:
        assert "| @tp out s=0 cyc=0 hex=00" in str(info.value)


@pytest.mark.e2e
@needs_qemu
def test_qemu_limits(fault_images: dict[str, Firmware], tmp_path: Path) -> None:
    elf = case_elf(fault_images["mps2_an500"], 2, tmp_path)
    with pytest.raises(FirmwareStopped, match=r"the limit of 50,000 instructions.*tp_spin"):
        run_elf(load_board("mps2_an500"), elf, backend="qemu", max_instructions=50_000)
    with pytest.raises(FirmwareStopped, match=r"past the wall-clock limit of 0.5 s"):
        run_elf(load_board("mps2_an500"), elf, backend="qemu", timeout_s=0.5)


@pytest.mark.e2e
@pytest.mark.parametrize("bad", [{"max_instructions": 0}, {"timeout_s": -1.0}])
def test_limits_must_be_positive(bad: dict, fault_images: dict[str, Firmware]) -> None:
    with pytest.raises(UsageError, match=r"expected a positive number"):
        run_elf(load_board("mps2_an500"), fault_images["mps2_an500"].elf, **bad)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "tinyprune.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=300,
    )


@pytest.mark.e2e
def test_run_command_reports_the_fault(fault_images: dict[str, Firmware], tmp_path: Path) -> None:
    elf = case_elf(fault_images["mps2_an500"], 4, tmp_path)
    result = _cli("run", "--board", "mps2_an500", "--elf", str(elf))
    assert result.returncode == 1, result.stderr
    assert result.stdout == "case 4\n"  # everything the firmware printed
    (line,) = result.stderr.strip().splitlines()
    assert "UsageFault: unaligned access at address 0x" in line and "in function tp_ldrd" in line
    assert "its UART output is above" in line and "Traceback" not in result.stderr


@pytest.mark.e2e
def test_run_command_limits(fault_images: dict[str, Firmware], tmp_path: Path) -> None:
    elf = case_elf(fault_images["mps2_an500"], 2, tmp_path)
    result = _cli("run", "--board", "mps2_an500", "--elf", str(elf), "--max-instructions", "1000")
    assert result.returncode == 1 and "the limit of 1,000 instructions" in result.stderr
    result = _cli("run", "--board", "mps2_an500", "--elf", str(elf), "--timeout", "0")
    assert result.returncode == 2 and "timeout: expected a positive number" in result.stderr


@pytest.mark.e2e
@needs_gcc
def test_a_program_without_harness_lines_gets_the_fixed_budget(
    fake_builds: dict[str, Firmware], fault_images: dict[str, Firmware], tmp_path: Path
) -> None:
    """The harness budgets (10 M instructions to `@tp begin`) would cut a user's own program
    short: an image without the `@tp begin` text gets one fixed limit (limits.py)."""
    fw = build_fixture("crosscheck/crosscheck.c", "mps2_an500", tmp_path)
    assert not prints_harness_lines(read_elf(fw.elf))
    assert prints_harness_lines(read_elf(fake_builds["mps2_an500"].elf))
    assert prints_harness_lines(read_elf(fault_images["mps2_an500"].elf))


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
