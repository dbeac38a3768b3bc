"""The emulator's fault checks without an emulator: block plans, compiled checks, fault lines,
instruction budgets. Code snippets are Thumb-2 bytes from arm-none-eabi-as (source beside)."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from capstone import arm_const as A

from tinyprune.emulator import checks
from tinyprune.emulator.checks import DIVIDE, REG_BIT, SP_BIT, Config, Expr
from tinyprune.emulator.cycles import disassembler
from tinyprune.emulator.elf import _bl_target
from tinyprune.emulator.faults import BUS, HARD, MEMMANAGE, USAGE, fault_from_line, uart_tail
from tinyprune.emulator.limits import (
    BOOT_INSTRUCTIONS,
    FIRST_INFERENCE_INSTRUCTIONS,
    OTHER_PROGRAM_INSTRUCTIONS,
    SAMPLE_FACTOR,
    SAMPLE_FLOOR,
    Budget,
    Limits,
)

BASE = 0x0800_0100
R0, R1, R2, R3 = (A.ARM_REG_R0 + i for i in range(4))
CODE = {
    "ldrd_offset": "d2e90201",  # ldrd r0, r1, [r2, #8]
    "indexed": "00eb8103d3e90045",  # add.w r3, r0, r1, lsl #2; ldrd r4, r5, [r3]
    "spilled": "049af2e80201f2e80245",  # ldr r2, [sp, #16]; ldrd r0, r1, [r2], #8 (x2)
    "after_store": "0093019ad2e90001",  # str r3, [sp]; ldr r2, [sp, #4]; ldrd r0, r1, [r2]
    "conditional": "002808bf0132d2e90001",  # cmp r0, #0; it eq; addeq r2, #1; ldrd [r2]
    "sp_based": "dde90201",  # ldrd r0, r1, [sp, #8]
    "constant": "0122d2e90001",  # movs r2, #1; ldrd r0, r1, [r2]
    "sdiv": "91fbf2f0",  # sdiv r0, r1, r2
    "fpu": "b7ee000a",  # vmov.f32 s0, #1.0
    "ldr_off2": "d1f80200",  # ldr r0, [r1, #2]
    "steps": "083202332c68",  # adds r2, #8; adds r3, #2; ldr r4, [r5]
    "push": "10b5",  # push {r4, lr}
    "subsp": "84b0",  # sub sp, #16
    "movsp": "8546",  # mov sp, r0
    "ldm_db": "31e90c00",  # ldmdb r1!, {r2, r3}
    "ldrd_only": "d2e90001",  # ldrd r0, r1, [r2]
}


def insns(name: str) -> list:
    return list(disassembler().disasm(bytes.fromhex(CODE[name]), BASE))


NO_TRAPS = Config()


def plan(name: str, config: Config = NO_TRAPS, **kwargs: object) -> checks.BlockFacts:
    return checks.plan_block(insns(name), config, lambda _a: None, **kwargs)  # type: ignore[arg-type]


# ---- expressions ---------------------------------------------------------------------------
def test_expr_is_affine_modulo_2_32() -> None:
    e = Expr.of(R0).plus(Expr.of(R1), 4).add(-8)
    assert e.value({R0: 0x10, R1: 3}.__getitem__) == 0x10 + 12 - 8
    assert Expr.of(R0).plus(Expr.of(R0), -1) == Expr(0)
    assert Expr(0xFFFFFFFF).add(1) == Expr(0)


# ---- plans ---------------------------------------------------------------------------------
def test_ldrd_with_offset_is_a_simple_check_on_its_base() -> None:
    facts = plan("ldrd_offset")
    assert facts.plan is not None
    assert facts.plan.regs == (R2,) and facts.plan.simple and facts.plan.need == REG_BIT[R2]
    ((pcs, mask, const, terms),) = facts.plan.runtime
    assert (pcs, mask, const, terms) == ((BASE,), 3, 8 & 3, ((0, 1),))


def test_scaled_index_drops_out_of_an_alignment_check() -> None:
    """r0 + 4*r1 is aligned when r0 is: the check reads r0 only."""
    p = plan("indexed").plan
    assert p is not None and p.regs == (R0,) and p.simple


def test_pointer_loaded_from_the_stack_is_read_from_memory() -> None:
    p = plan("spilled").plan
    assert p is not None and not p.simple and not p.dynamic
    assert p.regs == (A.ARM_REG_SP,) and p.loads == ((16, ((0, 1),)),)
    ((pcs, mask, const, terms),) = p.runtime  # both LDRDs: one outcome, checked once
    assert pcs == (BASE + 2, BASE + 6) and terms == ((1, 1),) and (mask, const) == (3, 0)


def test_load_after_a_store_is_left_to_an_exact_hook() -> None:
    p = plan("after_store").plan
    assert p is not None and p.dynamic == (BASE + 4,) and not p.runtime


def test_conditional_write_makes_the_base_unknown() -> None:
    p = plan("conditional").plan
    assert p is not None and p.dynamic == (BASE + 6,)


def test_block_entered_inside_an_it_block_trusts_no_write() -> None:
    p = plan("indexed", starts_in_it_block=True).plan
    assert p is not None and p.dynamic  # the add may not have executed


@pytest.mark.parametrize("name", ["sp_based", "push", "steps"])
def test_aligned_by_construction_needs_no_check(name: str) -> None:
    assert plan(name).plan is None  # SP is word-aligned; LDR may be unaligned without the trap


def test_constant_unaligned_address_always_faults() -> None:
    p = plan("constant").plan
    assert p is not None and p.predicted == (BASE + 2,) and not p.simple


@pytest.mark.parametrize(
    ("name", "config", "expect"),
    [
        ("sdiv", Config(), None),
        ("sdiv", Config(div_0_trp=True), DIVIDE),
        ("ldr_off2", Config(), None),
        ("ldr_off2", Config(unalign_trp=True), 3),
    ],
)
def test_trap_bits_add_checks(name: str, config: Config, expect: int | None) -> None:
    p = plan(name, config).plan
    if expect is None:
        assert p is None
    else:
        assert p is not None and [m for _p, m, _c, _t in p.runtime] == [expect]
        assert not p.simple  # a divisor, or a base + 2: not "register aligned"


def test_fpu_instruction_faults_only_with_the_fpu_off() -> None:
    assert plan("fpu", Config(fpu_enabled=True)).plan is None
    p = plan("fpu").plan
    assert p is not None and p.predicted == (BASE,)


def test_unsafe_mask_and_sp_step() -> None:
    steps = plan("steps")
    assert not steps.unsafe & REG_BIT[R2]  # moved by 8: stays aligned
    assert steps.unsafe & REG_BIT[R3] and steps.unsafe & REG_BIT[A.ARM_REG_R4]
    assert not steps.unsafe & SP_BIT
    assert plan("push").sp_step == -8 and plan("subsp").sp_step == -16
    assert plan("movsp").sp_step is None and plan("steps").sp_step == 0


def test_decrement_before_addresses_the_lowest_word() -> None:
    (insn,) = insns("ldm_db")
    addr = checks.address(insn)
    assert addr == Expr.of(R1).add(-8)


def test_exact_level_checks_use_the_registers_at_the_instruction() -> None:
    (insn,) = insns("ldrd_only")
    (check,) = checks.checks_of(insn, Config())
    assert check.violated({R2: 0x2000_0002}.__getitem__)
    assert not check.violated({R2: 0x2000_0008}.__getitem__)


# ---- compiled checks -----------------------------------------------------------------------
def compiled(name: str, regs: dict[int, int], memory: bytes = b"") -> tuple[Callable, list]:
    facts = plan(name)
    assert facts.plan is not None
    reads: list[int] = []

    def read(reg: int) -> int:
        reads.append(reg)
        return regs[reg]

    buffer = bytearray(memory)
    mem = ((0x2000_0000, 0x2000_0000 + len(buffer) - 4, buffer),) if buffer else ()
    return checks.compile_checks(facts.plan, read, mem, ~facts.unsafe), reads


def test_compiled_check_reads_only_unknown_registers() -> None:
    check, reads = compiled("ldrd_offset", {R2: 0x2000_0010})
    after = check(lambda: 0, SP_BIT)
    assert reads == [R2] and isinstance(after, int) and after & REG_BIT[R2]
    reads.clear()
    assert check(lambda: 0, SP_BIT | REG_BIT[R2]) == SP_BIT | REG_BIT[R2] and reads == []


def test_compiled_check_returns_the_failing_pcs() -> None:
    check, _ = compiled("ldrd_offset", {R2: 0x2000_0011})
    assert check(lambda: 0, SP_BIT) == (BASE,)


def test_compiled_check_reads_the_spilled_pointer_from_memory() -> None:
    stack = bytearray(64)
    struct.pack_into("<I", stack, 16, 0x2000_0103)  # the word at sp + 16: a misaligned pointer
    check, reads = compiled("spilled", {}, bytes(stack))
    assert check(lambda: 0x2000_0000, SP_BIT) == (BASE + 2, BASE + 6) and reads == []
    struct.pack_into("<I", stack, 16, 0x2000_0100)
    check, _ = compiled("spilled", {}, bytes(stack))
    after = check(lambda: 0x2000_0000, SP_BIT)
    assert isinstance(after, int) and after & REG_BIT[R2]  # r2 = pointer + 16 after the block


def test_compiled_check_refuses_to_read_a_peripheral() -> None:
    check, _ = compiled("spilled", {}, bytes(64))
    assert check(lambda: 0x4000_0000, SP_BIT) == (BASE + 2, BASE + 6)


# ---- fault lines (QEMU, a real board) ----------------------------------------------------
def line(**fields: int | str) -> dict[str, str]:
    return {k: v if isinstance(v, str) else f"0x{v:08x}" for k, v in fields.items()}


def test_fault_line_unaligned_address_from_the_registers() -> None:
    code = bytes.fromhex(CODE["ldrd_offset"])

    def memory(address: int, size: int) -> bytes | None:
        return code[address - BASE : address - BASE + size] if address == BASE else None

    fields = line(kind="usage", pc=BASE, cfsr=1 << 24, r2=0x2000_0003)
    fault = fault_from_line(fields, lambda _pc: "tp_ldrd", memory)
    assert (fault.kind, fault.reason, fault.pc, fault.function) == (
        USAGE,
        "unaligned access",
        BASE,
        "tp_ldrd",
    )
    assert fault.address == 0x2000_000B and fault.instruction == "ldrd r0, r1, [r2, #8]"
    assert "LDRD always needs word alignment" in (fault.note or "")


@pytest.mark.parametrize(
    ("fields", "kind", "reason", "address"),
    [
        (line(pc=0x100, cfsr=0x8200, bfar=0x5000_0000), BUS, "precise data bus error", 0x5000_0000),
        (line(pc=0x4000_0000, cfsr=0x1), MEMMANAGE, "instruction access violation", 0x4000_0000),
        (line(pc=0, cfsr=0x1000), BUS, "stack overflow", None),
        (line(pc=0x100, cfsr=1 << 25), USAGE, "divide by zero", None),
        (line(kind="hard", pc=0x100, cfsr=0, hfsr=1 << 31), HARD, "breakpoint", None),
        (line(kind="unexpected", pc=0x100, cfsr=0), HARD, "unexpected exception", None),
    ],
)
def test_fault_line_decoding(fields: dict, kind: str, reason: str, address: int | None) -> None:
    fault = fault_from_line(fields)
    assert fault.kind == kind and fault.reason.startswith(reason) and fault.address == address


def test_uart_tail_shows_the_last_lines() -> None:
    text = "".join(f"line {i}\n" for i in range(30))
    tail = uart_tail(text)
    assert "last 20 of 30 lines" in tail and "| line 29" in tail and "| line 9\n" not in tail
    assert uart_tail("") == "\nUART output so far: (none)"


# ---- budgets -------------------------------------------------------------------------------
def test_budget_follows_the_harness_lines() -> None:
    budget = Budget(Limits())
    assert budget.deadline == BOOT_INSTRUCTIONS
    budget.on_line("@tp begin v=1 model=m board=b samples=3 layers=1", 1_000)
    assert budget.deadline == 1_000 + FIRST_INFERENCE_INSTRUCTIONS
    budget.on_line("@tp out s=0 cyc=1 hex=00", 1_000 + 2_000_000)
    assert budget.deadline == 1_000 + 2_000_000 + SAMPLE_FACTOR * 2_000_000
    budget.on_line("@tp out s=1 cyc=1 hex=00", 30_000_000)
    assert budget.deadline == 30_000_000 + SAMPLE_FACTOR * 2_000_000
    assert "10 x the first inference's 2,000,000" in budget.instructions_message(60_000_000)


def test_budget_floor_for_tiny_inferences_and_fixed_limit() -> None:
    budget = Budget(Limits())
    budget.on_line("@tp begin v=1 model=m board=b samples=3 layers=1", 0)
    budget.on_line("@tp out s=0 cyc=1 hex=00", 500)
    assert budget.deadline == 500 + SAMPLE_FLOOR
    fixed = Budget(Limits(max_instructions=1234))
    fixed.on_line("@tp begin v=1 model=m board=b samples=3 layers=1", 0)
    assert fixed.deadline == 1234


def test_budget_of_a_program_without_harness_lines() -> None:
    other = Budget(Limits(), harness=False)
    other.on_line("@tp out s=0 cyc=1 hex=00", 500)  # not a harness: lines change nothing
    assert other.deadline == OTHER_PROGRAM_INSTRUCTIONS
    assert "prints no '@tp' result lines" in other.instructions_message(OTHER_PROGRAM_INSTRUCTIONS)
    assert Budget(Limits(max_instructions=99), harness=False).deadline == 99


# ---- ELF helpers ---------------------------------------------------------------------------
def test_bl_target_decoding() -> None:
    # bl forwards and backwards, as arm-none-eabi-as encodes them
    assert _bl_target(0xF000, 0xF87E, 0x0800_0100) == 0x0800_0200
    assert _bl_target(0xF7FF, 0xFF7A, 0x0800_0104) == 0x07FF_FFFC
    assert _bl_target(0xF000, 0xE87E, 0x0800_0100) is None  # BLX (bit 12 clear)
