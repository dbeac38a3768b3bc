"""Prune to a budget: search the channel ratio whose firmware meets flash, RAM and latency limits.

The pruning engine estimates weight and activation bytes from the Keras graph; the firmware adds
code, quantization tables and the stack. So each candidate is measured for real (quantize, plan,
codegen, cross-compile, and for a latency budget one inference on the emulator), and the engine's
target is corrected by the measured difference until the firmware fits (a few rounds).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyprune import pipeline
from tinyprune.config import Budgets
from tinyprune.errors import CheckFailed, DoesNotFit, UsageError
from tinyprune.ir import read_tflite
from tinyprune.pipeline import Loaded, Pruned
from tinyprune.progress import bars_enabled

if TYPE_CHECKING:
    from tinyprune.firmware import Board, Firmware
    from tinyprune.prune import FineTune

log = logging.getLogger("tinyprune")

ROUNDS = 4
MARGIN = 0.98  # aim 2% under a limit: the measured size moves a little with the channel counts


@dataclass(frozen=True)
class Measured:
    flash: int
    ram: int
    latency_ms: float | None
    macs: int


def measure(model: Any, loaded: Loaded, board: Board, work: Path, latency: bool,
            stack_bytes: int, cycle_model: str | None = None,
            budgets: Budgets | None = None) -> Measured:
    """Builds ``model`` into firmware under ``work`` (removed afterwards) and measures it, with
    the same stage calls, plan options (from ``budgets``) and stack size as the build itself."""
    from tinyprune.codegen import generate
    from tinyprune.verify import random_inputs

    try:
        graph = read_tflite(pipeline.quantize(loaded, model, samples=32))
        options = pipeline.plan_options(budgets or Budgets())
        planned = pipeline.make_plan(graph, board, options)
        macs = sum(p.call.macs for p in planned.code_ops)
        project = generate(planned, work / "src", model_name="search", source_name="search",
                           samples=random_inputs(graph, 1))
        try:
            fw = pipeline.make_firmware(project, board, work / "fw", stack_bytes=stack_bytes,
                                        name="search")
        except DoesNotFit as exc:  # too big for the board: measured size is in the map
            log.debug("candidate does not fit the board: %s", exc)
            return Measured(board.flash.length + 1, board.ram.length + 1, None, macs)
        latency_ms = _latency(fw, board, cycle_model) if latency else None
        return Measured(fw.flash_used_bytes, fw.ram_used_bytes, latency_ms, macs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _latency(fw: Firmware, board: Board, cycle_model: str | None) -> float:
    from tinyprune.emulator import run_elf
    from tinyprune.emulator.protocol import parse_results

    res = parse_results(run_elf(board, fw.elf, backend="unicorn", cycle_model=cycle_model).uart)
    return res.total_cycles / max(len(res.samples), 1) / board.clock_hz * 1e3


def broken(budgets: Budgets, m: Measured) -> list[str]:
    out = []
    if budgets.flash is not None and m.flash > budgets.flash:
        out.append(f"flash {m.flash:,} > {budgets.flash:,} bytes")
    if budgets.ram is not None and m.ram > budgets.ram:
        out.append(f"RAM {m.ram:,} > {budgets.ram:,} bytes")
    if budgets.latency_ms is not None and m.latency_ms is not None and \
            m.latency_ms > budgets.latency_ms:
        out.append(f"latency {m.latency_ms:.2f} > {budgets.latency_ms} ms")
    return out


def _targets(budgets: Budgets, m: Measured, est_flash: int, est_ram: int,
             prev: dict[str, int | None]) -> dict[str, int | None]:
    """Engine targets for the next round from the last measurement of a candidate."""
    t: dict[str, int | None] = {"target_flash": None, "target_ram": None, "target_macs": None}
    if budgets.flash is not None:
        target = int((budgets.flash - (m.flash - est_flash)) * MARGIN)
        last = prev.get("target_flash")
        if last is not None and m.flash > budgets.flash:  # still too big: shrink further
            target = min(target, int(last * MARGIN))
        t["target_flash"] = target
    if budgets.ram is not None:
        overhead = m.ram - est_ram
        t["target_ram"] = int((budgets.ram - overhead) * MARGIN)
    if budgets.latency_ms is not None and m.latency_ms:
        t["target_macs"] = int(m.macs * budgets.latency_ms / m.latency_ms * MARGIN)
    overheads: dict[str, tuple[str, int | None]] = {
        "target_flash": ("flash", m.flash - est_flash),
                 "target_ram": ("RAM", m.ram - est_ram), "target_macs": ("latency", None)}
    for key, value in t.items():
        if value is not None and value <= 0:
            name, extra = overheads[key]
            need = f" (about {extra:,} bytes without any weights)" if extra else ""
            raise CheckFailed(f"budgets cannot be met by pruning: the firmware without any "
                              f"weights already needs more {name} than the budget{need}; "
                              f"raise the {name} budget, or choose a board or model that fits")
    return t


def prune_to_budgets(loaded: Loaded, board: Board, budgets: Budgets, *, criterion: str,
                     finetune: FineTune | None, work: Path, stack_bytes: int,
                     round_to: int, cycle_model: str | None = None) -> Pruned:
    """The least-pruned model whose firmware meets the budgets, with the prune summary.

    Raises:
        UsageError: no flash, RAM or latency budget is set.
        CheckFailed: no ratio meets the budgets (the message says what to relax).
    """
    from tinyprune.prune import PruneConfig, estimate, prune

    if budgets.flash is None and budgets.ram is None and budgets.latency_ms is None:
        raise UsageError("--prune-channels auto: set a --flash-budget, --ram-budget or "
                         "--latency-budget (or [budgets] in tinyprune.toml) to prune to")
    given = loaded.model.model
    latency = budgets.latency_ms is not None
    m = measure(given, loaded, board, work / "r0", latency, stack_bytes, cycle_model,
                budgets)
    if not broken(budgets, m):
        log.info("the unpruned model meets the budgets; nothing pruned")
        return Pruned(given, {"ratio": 0.0, "reason": "the unpruned model meets the budgets"})
    before = estimate(given)  # the engine's units: its targets are compared to these
    est_flash, est_ram = before.flash_bytes, before.ram_bytes
    targets: dict[str, int | None] = {}
    for rnd in range(1, ROUNDS + 1):
        targets = _targets(budgets, m, est_flash, est_ram, targets)
        config = PruneConfig(criterion=criterion, round_to=round_to,
                             target_flash=targets["target_flash"],
                             target_ram=targets["target_ram"], target_macs=targets["target_macs"],
                             progress=bars_enabled())
        result = prune(given, config, data=loaded.data)
        m = measure(result.model, loaded, board, work / f"r{rnd}", latency, stack_bytes,
                    cycle_model, budgets)
        est_flash, est_ram = result.flash_after, result.ram_after
        log.info("round %d: ratio %.3f -> %s", rnd, result.ratio, broken(budgets, m) or "fits")
        if not broken(budgets, m):
            final = prune(given, PruneConfig(ratio=result.ratio, criterion=criterion,
                                             round_to=round_to,
                                             finetune=finetune, progress=bars_enabled()),
                          data=loaded.data)
            summary = {**final.summary(), "round_to": round_to}
            summary["reason"] = "searched to meet " + ", ".join(
                k for k in ("flash", "ram", "latency_ms") if getattr(budgets, k) is not None)
            return Pruned(final.model, summary)
    raise CheckFailed("no pruning ratio meets the budgets after "
                      f"{ROUNDS} rounds: {'; '.join(broken(budgets, m))}; relax a budget or "
                      "choose a smaller model")
