"""Per-core cycle models: each rule of docs/cycle_models.md on a hand-written sequence.

Sequences are real Thumb-2 encodings (assembled with arm-none-eabi-as; the test checks that
capstone decodes the expected mnemonics), and every expected count follows from the rule named
in the case: dropping the rule changes the count.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from capstone import arm_const as A

from tinyprune.emulator import cycle_m0plus, cycle_m4, cycle_m7
from tinyprune.emulator.cycle_models import model_for
from tinyprune.emulator.cycle_ops import Kind, Op, decode_block
from tinyprune.emulator.cycles import block_cost
from tinyprune.emulator.faults import FirmwareStopped
from tinyprune.emulator.limits import Limits
from tinyprune.errors import UsageError
from tinyprune.firmware.boards import load_board

ENC = {
    "adds r0, #1": "0130", "adds r1, #1": "0131", "adds r4, #4": "0434", "adds r5, #4": "0435",
    "adds r6, #1": "0136", "adds r7, #1": "0137", "adds r2, r0, #1": "421c",
    "adds r4, r0, #1": "441c", "adds.w r0, r0, #1": "10f10100", "mov r4, r8": "4446",
    "smlad r0, r1, r2, r3": "21fb0230", "smlad r4, r5, r6, r7": "25fb0674",
    "smlad r0, r1, r2, r0": "21fb0200", "smlad r0, r3, r4, r0": "23fb0400",
    "sxtb16 r1, r2": "2ffa82f1", "sxtb16 r3, r4": "2ffa84f3", "muls r0, r1, r0": "4843",
    "ldr r0, [r4]": "2068", "ldr r1, [r4, #4]": "6168", "ldr r1, [r4, #8]": "a168",
    "ldr r1, [r5]": "2968", "ldrb r0, [r4]": "2078", "ldrd r0, r1, [r4]": "d4e90001",
    "str r0, [r4]": "2060", "str r2, [r5]": "2a60", "str.w r8, [sb]": "c9f80080",
    "ldm.w r4, {r0, r1, r2}": "94e80700", "push {r4, r5, r6, r7, lr}": "f0b5",
    "pop {r4, pc}": "10bd", "it eq": "08bf", "moveq r1, #1": "0121", "bx lr": "7047",
    "blx r3": "9847", "tbb [pc, r0]": "dfe800f0", "sdiv r0, r1, r2": "91fbf2f0",
}


def ops(*lines: str, address: int = 0x1000) -> list[Op]:
    """Decode the encodings of ``lines`` at ``address``, checking capstone agrees on each."""
    code = bytes.fromhex("".join(ENC[line] for line in lines))
    decoded, undecoded = decode_block(code, address)
    assert undecoded == 0 and len(decoded) == len(lines)
    for op, line in zip(decoded, lines, strict=True):
        assert line.startswith(op.mnemonic)  # ``adds`` decodes as add, ``moveq`` as mov
    return decoded


def m7(*lines: str) -> int:
    return cycle_m7.schedule(ops(*lines))


# ---- Cortex-M7 ---------------------------------------------------------------------------------
M7_CASES = [
    # (rule, sequence, cycles)
    ("dual issue of independent ALU ops", ["adds r0, #1", "adds r1, #1"], 1),
    ("one MAC per cycle", ["smlad r0, r1, r2, r3", "smlad r4, r5, r6, r7"], 2),
    ("MAC never pairs with a younger store", ["smlad r0, r1, r2, r3", "str r2, [r5]"], 2),
    ("MAC never pairs with an older store", ["str r2, [r5]", "smlad r4, r5, r6, r7"], 2),
    ("an ALU op pairs with a store", ["adds r0, #1", "str r2, [r5]"], 1),
    ("DSP only in the older slot", ["adds r0, #1", "sxtb16 r1, r2"], 2),
    ("DSP in the older slot pairs", ["sxtb16 r1, r2", "adds r0, #1"], 1),
    ("never two DSP ops in a cycle", ["sxtb16 r1, r2", "sxtb16 r3, r4"], 2),
    ("SMLAD pairs with an older DSP op", ["sxtb16 r1, r2", "smlad r4, r5, r6, r7"], 1),
    ("MAC result latency 2", ["smlad r0, r1, r2, r3", "adds r4, r0, #1"], 3),
    ("accumulator chaining", ["smlad r0, r1, r2, r0", "smlad r0, r3, r4, r0"], 2),
    ("load-use latency 2", ["ldr r0, [r4]", "adds r2, r0, #1"], 3),
    ("a MAC cannot consume the previous cycle's load", ["ldr r1, [r5]",
                                                         "smlad r0, r1, r2, r0"], 3),
    ("two loads pair on different banks", ["ldr r0, [r4]", "ldr r1, [r4, #4]"], 1),
    ("two loads on the same bank do not", ["ldr r0, [r4]", "ldr r1, [r4, #8]"], 2),
    ("loads through different bases are not paired", ["ldr r0, [r4]", "ldr r1, [r5]"], 2),
    ("a load pairs with a store", ["ldr r0, [r4]", "str r2, [r5]"], 1),
    ("two stores never pair", ["str r2, [r5]", "str.w r8, [sb]"], 2),
    ("LDRD uses both load ports", ["ldrd r0, r1, [r4]", "ldr r1, [r5]"], 2),
    ("LDM issues alone for ceil(n/2)", ["adds r7, #1", "ldm.w r4, {r0, r1, r2}",
                                         "adds r6, #1"], 4),
    ("PUSH of 5 registers: ceil(5/2)", ["push {r4, r5, r6, r7, lr}"], 3),
    ("SDIV issues alone", ["adds r7, #1", "sdiv r0, r1, r2", "adds r6, #1"], 1 + 6 + 1),
]


@pytest.mark.parametrize(("rule", "lines", "cycles"), M7_CASES, ids=[c[0] for c in M7_CASES])
def test_m7_rule(rule: str, lines: list[str], cycles: int) -> None:
    assert m7(*lines) == cycles, rule


@pytest.mark.parametrize(
    ("code", "penalties"),
    [
        ("0130fdd1", (0, cycle_m7.MISPREDICT)),  # 1: adds; bne 1b -> backward: predicted taken
        ("013000d1", (cycle_m7.MISPREDICT, 0)),  # adds; bne forward -> predicted not taken
        ("00e0", (0, 0)),  # b (direct): predicted
        ("7047", (0, 0)),  # bx lr: a return, predicted
        ("10bd", (0, 0)),  # pop {r4, pc}: a return
        ("9847", (cycle_m7.MISPREDICT, 0)),  # blx r3: indirect, not predicted
        ("dfe800f0", (cycle_m7.MISPREDICT, 0)),  # tbb: indirect
        ("0130", (0, 0)),  # no branch at the end
    ],
)
def test_m7_branch_prediction(code: str, penalties: tuple[int, int]) -> None:
    decoded, _ = decode_block(bytes.fromhex(code), 0x1000)
    assert cycle_m7.branch(decoded[-1], 0x1000 + len(code) // 2) == penalties


# ---- Cortex-M4 ---------------------------------------------------------------------------------
M4_CASES = [
    ("loads through one base pipeline (2 + 1)", ["ldr r0, [r4]", "ldr r1, [r4, #4]"], 3),
    ("loads through two bases do not (2 + 2)", ["ldr r0, [r4]", "ldr r1, [r5]"], 4),
    ("address written just before: +1", ["adds r4, #4", "ldr r0, [r4]"], 1 + 2 + 1),
    ("no stall without the dependency", ["adds r5, #4", "ldr r0, [r4]"], 1 + 2),
    ("a load after a store: +1", ["str r0, [r4]", "ldr r1, [r5]"], 1 + 2 + 1),
    ("IT folds after a 16-bit op", ["adds r0, #1", "it eq", "moveq r1, #1"], 2),
    ("IT does not fold after a 32-bit op", ["adds.w r0, r0, #1", "it eq", "moveq r1, #1"], 3),
    ("single-cycle MAC, no dual issue", ["smlad r0, r1, r2, r3", "smlad r4, r5, r6, r7"], 2),
    ("LDM 1 + N", ["ldm.w r4, {r0, r1, r2}"], 4),
    ("LDRD 3", ["ldrd r0, r1, [r4]"], 3),
]


@pytest.mark.parametrize(("rule", "lines", "cycles"), M4_CASES, ids=[c[0] for c in M4_CASES])
def test_m4_rule(rule: str, lines: list[str], cycles: int) -> None:
    assert cycle_m4.schedule(ops(*lines)) == cycles, rule


@pytest.mark.parametrize(
    ("line", "address", "refill"),
    [("adds.w r0, r0, #1", 0x1000, 1), ("adds.w r0, r0, #1", 0x1002, 2),
     ("adds r0, #1", 0x1002, 1)],
)
def test_m4_branch_refill_from_target_alignment(line: str, address: int, refill: int) -> None:
    first = ops(line, address=address)[0]
    assert cycle_m4.entry(first, address) == refill
    assert cycle_m4.branch(ops("bx lr")[0]) == (1, 0)  # taken: 1 + P; not taken: 1


# ---- Cortex-M0+ --------------------------------------------------------------------------------
def test_m0plus_two_stage_timings() -> None:
    assert cycle_m0plus.schedule(ops("adds r0, #1", "ldr r0, [r4]", "str r2, [r5]")) == 5
    assert cycle_m0plus.schedule(ops("ldm.w r4, {r0, r1, r2}")) == 4


def test_m0plus_multiplier_option() -> None:
    mul = ops("muls r0, r1, r0")
    assert cycle_m0plus.schedule(mul) == 1
    assert cycle_m0plus.schedule(mul, small_multiplier=True) == cycle_m0plus.SMALL_MULTIPLIER


def test_m0plus_taken_branches() -> None:
    pop = ops("pop {r4, pc}")
    assert cycle_m0plus.schedule(pop) + cycle_m0plus.branch(pop[-1])[0] == 3 + 2  # 3 + N
    b = decode_block(bytes.fromhex("00e0"), 0x1000)[0]
    assert cycle_m0plus.schedule(b) + cycle_m0plus.branch(b[-1])[0] == 2
    bl = decode_block(bytes.fromhex("00f000f8"), 0x1000)[0]
    assert bl[0].kind is Kind.BRANCH
    assert cycle_m0plus.schedule(bl) + cycle_m0plus.branch(bl[-1])[0] == 3


# ---- memory from the board file ----------------------------------------------------------------
@pytest.mark.parametrize(("board", "wait_states"),
                         [("nucleo_f746", 7), ("nucleo_f401re", 2), ("mps2_an500", 0)])
def test_flash_wait_states_at_the_board_clock(board: str, wait_states: int) -> None:
    b = load_board(board)
    assert b.timing.flash_wait_states(b.clock_hz) == wait_states


def _regs(**values: int) -> object:
    ids = {name: getattr(A, f"ARM_REG_{name.upper()}") for name in values}
    table = {ids[n]: v for n, v in values.items()}
    return lambda reg: table.get(reg, 0x2000_0000)


FLASH, RAM = 0x0800_1000, 0x2000_0000


def test_icache_fills_once_or_every_time() -> None:
    board = load_board("nucleo_f746")  # 7 wait states: a 32-byte line fill costs 8
    code = bytes.fromhex("01300131")
    on = model_for(board, "m7").block(code, FLASH)
    off_board = dataclasses.replace(board, timing=dataclasses.replace(board.timing, icache=False))
    off = model_for(off_board, "m7").block(code, FLASH)
    assert (on.cycles, on.cold_cycles) == (1, 8)
    assert (off.cycles, off.cold_cycles) == (1 + 8, 0)
    in_ram = model_for(board, "m7").block(code, RAM)
    assert (in_ram.cycles, in_ram.cold_cycles) == (1, 0)


@pytest.mark.parametrize(
    ("lines", "r4", "dcache", "extra"),
    [
        (["ldr r0, [r4]"], FLASH, True, 1),  # 4/32 of a line fill of 8
        (["ldrd r0, r1, [r4]"], FLASH, True, 2),
        (["ldr r0, [r4]"], FLASH, False, 7),  # every access waits
        (["ldr r0, [r4]"], RAM, True, 0),  # SRAM/TCM: zero wait
        (["adds r4, #4", "ldr r0, [r4]"], FLASH, True, 1),  # the pointer stays in flash
        (["mov r4, r8", "ldr r0, [r4]"], FLASH, True, 0),  # r8 points to RAM
    ],
)
def test_flash_data_reads(lines: list[str], r4: int, dcache: bool, extra: int) -> None:
    board = load_board("nucleo_f746")
    board = dataclasses.replace(board, timing=dataclasses.replace(board.timing, dcache=dcache))
    code = bytes.fromhex("".join(ENC[line] for line in lines))
    base = model_for(board, "m7").block(code, RAM).cycles
    priced = model_for(board, "m7").block(code, RAM, _regs(r4=r4, r8=RAM))  # type: ignore[arg-type]
    assert priced.cycles - base == extra


def test_table_model_is_the_facts_table() -> None:
    board = load_board("nucleo_f746")
    code = bytes.fromhex("30b5086821fb0230")
    assert model_for(board, "table").block(code, FLASH) == block_cost(code, FLASH)
    assert model_for(board, "table").describe() == {}


def test_default_model_follows_the_core() -> None:
    assert model_for(load_board("nucleo_f746")).name == "m7"
    assert model_for(load_board("nucleo_f401re")).name == "m4"
    with pytest.raises(UsageError, match="expected one of m7, m4, m0plus, table"):
        model_for(load_board("nucleo_f746"), "m3")


def test_block_cost_carries_how_the_block_is_left_and_entered() -> None:
    board = dataclasses.replace(load_board("nucleo_f746"), timing=load_board("mps2_an500").timing)
    loop = model_for(board, "m7").block(bytes.fromhex("0130fdd1"), 0x1000)  # adds; bne back
    assert (loop.instructions, loop.cycles) == (2, 1)  # the branch pairs with the add
    assert (loop.taken_penalty, loop.fall_penalty) == (0, cycle_m7.MISPREDICT)
    m4_block = model_for(board, "m4").block(bytes.fromhex("10f10100"), 0x1002)  # adds.w
    assert m4_block.entry_penalty == 2
    table = model_for(board, "table").block(bytes.fromhex("0130fdd1"), 0x1000)
    assert (table.cycles, table.taken_penalty, table.fall_penalty) == (2, 2, 0)


# ---- the unicorn hook: blocks priced once, left and entered as the model says -------------------
def _loop_image(origin: int = 0) -> object:
    from tinyprune.emulator.elf import ElfImage, Segment

    # movs r0, #3; 1: subs r0, #1; bne 1b; adds r1, #1; b .   (then the idle `b .` ends the run)
    code = bytes.fromhex("0320" "0138" "fdd1" "0131" "fee7")
    reset = origin + 0x100
    vectors = (0x2000_1000).to_bytes(4, "little") + (reset | 1).to_bytes(4, "little")
    return ElfImage(Path("loop.elf"), (Segment(origin, vectors), Segment(reset, code)), {}, {},
                    (), (), ())


@pytest.mark.parametrize(
    ("model", "cycles"),
    [
        # A = movs, subs (needs r0), bne paired with subs: 2; B = subs + bne: 1, entered twice
        # by the predicted-taken branch (0); leaving B by fall-through is a mispredict (6);
        # C = adds, b .: 1 (the branch pairs); the idle `b .` is not counted.
        ("m7", 2 + 1 + 1 + cycle_m7.MISPREDICT + 1),
        # table: 1 per instruction, +2 per taken branch (A->B, B->B, C->idle is not counted)
        ("table", 3 + 2 + 2 + 2 + 2 + 2),
    ],
)
def test_unicorn_hook_applies_block_costs_and_branch_penalties(model: str, cycles: int) -> None:
    from tinyprune.emulator.unicorn_backend import _Run

    board = load_board("mps2_an500")  # zero-wait memory: only the core's rules count
    run = _Run(board, _loop_image(), (), Limits(10_000), True, None,  # type: ignore[arg-type]
               model_for(board, model))
    with pytest.raises(FirmwareStopped, match="parked in a branch-to-self loop"):
        run.run()  # no end-of-run line: parking is a failure, but the counts stand
    assert run.instructions == 9
    assert (run.model.name, run.cycles) == (model, cycles)


def test_unicorn_hook_charges_icache_fills_once_per_block() -> None:
    from tinyprune.emulator.unicorn_backend import _Run

    board = load_board("nucleo_f746")  # code in flash, 7 wait states, I-cache on
    run = _Run(board, _loop_image(board.flash.origin), (), Limits(10_000), True,
               None, model_for(board, "m7"))  # type: ignore[arg-type]
    with pytest.raises(FirmwareStopped):
        run.run()
    # the m7 figure of the zero-wait test plus one 32-byte line fill (8 cycles) for each of the
    # three blocks that run (A, B, C), though B runs twice
    assert run.cycles == 2 + 1 + 1 + cycle_m7.MISPREDICT + 1 + 3 * 8



def test_qemu_runs_refuse_another_cycle_model(tmp_path: Path) -> None:
    from tinyprune.emulator.runner import run_elf

    with pytest.raises(UsageError, match="--cycle-model m7 needs the unicorn backend"):
        run_elf(load_board("mps2_an500"), tmp_path / "never-read.elf", backend="qemu",
                cycle_model="m7")
