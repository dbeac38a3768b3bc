"""Cycle model: instruction classes priced as documented, decoded from real Thumb-2 bytes."""

from __future__ import annotations

import pytest

from tinyprune.emulator.cycles import block_cost, disassembler, instruction_cycles

# (hex bytes as in memory, expected mnemonic, expected cycles)
TABLE = [
    ("0130", "adds", 1),
    ("21fb0230", "smlad", 1),
    ("2ffa81f0", "sxtb16", 1),
    ("81fb0201", "smull", 1),
    ("01fb02f0", "mul", 1),
    ("0868", "ldr", 2),
    ("0878", "ldrb", 2),
    ("0860", "str", 1),
    ("d2e90001", "ldrd", 3),
    ("c2e90001", "strd", 3),
    ("30b5", "push", 4),
    ("10bd", "pop", 3),
    ("90e80e00", "ldm", 4),
    ("91fbf2f0", "sdiv", 6),
    ("b1fbf2f0", "udiv", 6),
    ("fee7", "b", 1),
]


@pytest.mark.parametrize(("code", "mnemonic", "cycles"), TABLE)
def test_instruction_class(code: str, mnemonic: str, cycles: int) -> None:
    insns = list(disassembler().disasm(bytes.fromhex(code), 0x1000))
    assert len(insns) == 1
    assert insns[0].mnemonic.split(".")[0] == mnemonic
    assert instruction_cycles(insns[0]) == cycles


def test_block_sums_classes() -> None:
    # push {r4, r5, lr}; ldr r0, [r1]; smlad r0, r1, r2, r3
    cost = block_cost(bytes.fromhex("30b5086821fb0230"), 0x100)
    assert (cost.instructions, cost.cycles, cost.idle) == (3, 4 + 2 + 1, False)


def test_it_block_counts_every_instruction() -> None:
    # ite ge; movge r0, #1; movlt r0, #2 -> three instructions whatever the condition
    cost = block_cost(bytes.fromhex("acbf01200220"), 0x200)
    assert cost.instructions == 3


@pytest.mark.parametrize(
    ("code", "idle"),
    [
        ("fee7", True),  # b .
        ("30bffde7", True),  # 1: wfi; b 1b
        ("0130fde7", False),  # 1: adds r0, #1; b 1b (work in the loop)
        ("fed0", False),  # beq . (conditional)
    ],
)
def test_idle_detection(code: str, idle: bool) -> None:
    assert block_cost(bytes.fromhex(code), 0x300).idle is idle


def _trace(pcs: list[int]) -> bytes:
    return b"".join(b"Trace 0: 0x7f00 [00800408/%08x/00000010/ff020201] f\n" % pc for pc in pcs)


def test_qemu_trace_budget_boundary_duplicate_counts_once() -> None:
    from tinyprune.emulator.qemu_backend import _Pricer, _TraceCounter

    # movs r0, #0 ; adds r0, #1 ; b . (0x0, 0x2, 0x4), Thumb encodings
    pricer = _Pricer({0: bytes.fromhex("00200130fee7")})
    counter = _TraceCounter(pricer)
    counter.feed(_trace([0x0, 0x2, 0x2, 0x4]))  # 0x2 logged twice at a budget boundary
    assert counter.instructions == 3 and not counter.idle
    counter.feed(_trace([0x4, 0x4, 0x4]))  # the `b .` idle loop
    assert counter.idle
    assert counter.instructions == 2  # the idle loop itself is not counted, as on unicorn
