"""Where the estimated cycles of a firmware go: per function and per basic block.

Runs an ELF on the unicorn backend exactly as ``tinyprune run`` does (same board map, same cycle
model, docs/emulator.md) and adds a block hook that counts every executed basic block. Prints
the functions by estimated cycles and the hottest blocks with their disassembly and cost, so a
kernel's inner loop can be read next to its price. A development tool for kernel work, not a
product path.

usage: python bench/profile.py --board nucleo_f746 --elf build/x/firmware/firmware.elf
       [--top 12] [--function tp_conv_interleaved_s8]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def profile(board_name: str, elf: Path) -> tuple[Counter[tuple[int, int]], Counter[int], Any]:
    """Runs the ELF; returns block counts {(address, size): n}, taken-branch entries per block
    address, and the finished run (its ``uc`` and ``image``)."""
    from tinyprune.emulator import unicorn_backend as ub
    from tinyprune.emulator.elf import read_elf
    from tinyprune.emulator.limits import Limits
    from tinyprune.firmware.boards import load_board

    run = ub._Run(load_board(board_name), read_elf(elf), (), Limits(20_000_000_000), True)
    counts: Counter[tuple[int, int]] = Counter()
    jumps: Counter[int] = Counter()
    last = [-1]

    def on_block(_uc: Any, address: int, size: int, _data: Any) -> None:
        counts[(address, size)] += 1
        if address != last[0]:
            jumps[address] += 1
        last[0] = address + size

    run.uc.hook_add(ub.uc_mod.UC_HOOK_BLOCK, on_block)
    run.run()
    return counts, jumps, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="nucleo_f746")
    ap.add_argument("--elf", type=Path, required=True)
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--function", default="", help="only blocks of this function")
    args = ap.parse_args()
    from tinyprune.emulator.cycles import TAKEN_BRANCH_PENALTY, block_cost, disassembler

    counts, jumps, run = profile(args.board, args.elf)
    uc, image = run.uc, run.image
    per_fn: Counter[str] = Counter()
    per_block = []
    for (addr, size), n in counts.items():
        code = bytes(uc.mem_read(addr, size))
        cost = block_cost(code, addr)
        cyc = n * cost.cycles + jumps[addr] * TAKEN_BRANCH_PENALTY
        fn = image.function_at(addr)
        per_fn[fn] += cyc
        per_block.append((cyc, addr, size, n, fn, code, cost))
    total = sum(per_fn.values())
    print(f"total estimated cycles: {total:,}")
    for fn, cyc in per_fn.most_common(25):
        print(f"  {cyc:>12,} {100 * cyc / total:5.1f}%  {fn}")
    per_block.sort(reverse=True)
    shown = 0
    for cyc, addr, _size, n, fn, code, cost in per_block:
        if args.function and fn != args.function:
            continue
        print(f"\n-- {fn} 0x{addr:08x} x{n:,}: {cost.cycles} cycles, {cost.instructions} "
              f"instructions per pass; {cyc:,} in all ({100 * cyc / total:.1f}%)")
        for insn in disassembler().disasm(code, addr):
            print(f"   {insn.address:08x}  {insn.mnemonic:8s} {insn.op_str}")
        shown += 1
        if shown >= args.top:
            break
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
