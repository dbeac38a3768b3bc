"""A real board's results as a report: the emulator's report of the same build, with the
figures the board measured in place of the emulated ones.

``tinyprune monitor --out BUILD`` reads the build's ``report.json`` and its
``firmware/reference_outputs.json`` (the TFLite Micro outputs of the inputs compiled into the
firmware) and writes ``BUILD/board/report.json`` and its renderings: the outputs compared byte
for byte, cycles from the board's DWT (measured, not estimated) at the board's clock, per-layer
cycles, the stack peak, and the budgets evaluated again on those figures.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from tinyprune import verify
from tinyprune.config import Budgets
from tinyprune.errors import CheckFailed
from tinyprune.protocol import ExpectedOutputs, HarnessResults

TARGET = "hardware"  # run.emulator of a report from a real board
CYCLE_SOURCE = "DWT CYCCNT (measured on the board)"


def check_same_firmware(results: HarnessResults, expected: ExpectedOutputs, where: str) -> None:
    """The board runs the build's firmware: same board, model and number of inputs.

    Raises:
        CheckFailed: it runs something else (flash the build first).
    """
    ran = (results.board, results.model, len(results.samples))
    built = (expected.board, expected.model, len(expected.outputs))
    if ran != built:
        raise CheckFailed(
            f"the board runs firmware of model {ran[1]} for {ran[0]} with {ran[2]} inputs, but "
            f"the build in {where} is model {built[1]} for {built[0]} with {built[2]} inputs; "
            f"flash the build first: tinyprune flash --board {built[0]} --out {where}")


def compare_outputs(results: HarnessResults, expected: ExpectedOutputs) -> verify.Comparison:
    """The board's outputs against the reference, byte for byte (a size mismatch too)."""
    want = np.frombuffer(b"".join(expected.outputs), np.uint8).reshape(
        len(expected.outputs), expected.output_bytes)
    rows = [np.frombuffer(o, np.uint8) for o in results.outputs]
    if any(len(r) != expected.output_bytes for r in rows):
        return verify.Comparison(len(want), (verify.Mismatch(
            0, 0, f"{expected.output_bytes} output bytes",
            f"{sorted({len(r) for r in rows})} output bytes"),))
    got = np.stack(rows) if rows else np.zeros((0, expected.output_bytes), np.uint8)
    return verify.compare(want, got)


def _mismatches(cmp: verify.Comparison, expected: ExpectedOutputs) -> list[dict[str, Any]]:
    out = []
    for m in cmp.mismatches:
        kind, row = expected.inputs[m.sample] if m.sample < len(expected.inputs) else ("", -1)
        out.append({**m.__dict__, "input": kind, "row": row})
    return out


def _budgets_of(report: dict[str, Any]) -> Budgets:
    limits = {name: entry.get("limit") for name, entry in (report.get("budgets") or {}).items()
              if name in Budgets.__dataclass_fields__}
    return Budgets(**limits)


def board_report(build: dict[str, Any], expected: ExpectedOutputs, results: HarnessResults,
                 *, port: str) -> dict[str, Any]:
    """The build's report with the board's measurements (module docstring).

    ``accuracy`` stays the build's: the board runs only the compiled-in inputs, and their
    outputs equal the host build's exactly when ``run.bit_exact`` is true.
    """
    from tinyprune.report import evaluate_budgets

    report = copy.deepcopy(build)
    cmp = compare_outputs(results, expected)
    n = max(len(results.samples), 1)
    cycles = results.total_cycles // n
    clock = report["board"]["clock_hz"]
    random = sum(1 for kind, _ in expected.inputs if kind == "random")
    old = report["run"]
    report["run"] = {
        "emulator": TARGET, "port": port, "check": "firmware",
        "samples": len(expected.inputs) - random, "random_samples": random,
        "cycles_per_inference": cycles, "cycles_are_estimate": False,
        "cycle_model": CYCLE_SOURCE, "latency_ms_at_clock": cycles / clock * 1000.0,
        "instructions_per_inference": None, "bit_exact": cmp.bit_exact,
        "mismatches": _mismatches(cmp, expected), "host": old.get("host", {}),
        "emulated": {k: old.get(k) for k in ("emulator", "cycles_per_inference",
                                              "cycles_are_estimate", "cycle_model",
                                              "memory_model", "bit_exact")},
    }
    report["firmware"]["stack_peak_bytes"] = results.stack_peak
    for layer, cyc in zip(report["layers"], results.mean_layer_cycles, strict=False):
        layer["cycles"] = cyc
    report["budgets"] = evaluate_budgets(_budgets_of(build), report)
    host_ok = bool((old.get("host") or {}).get("bit_exact", True))
    report["ok"] = bool(cmp.bit_exact and host_ok and
                        all(b["ok"] for b in report["budgets"].values()))
    return report


def results_lines(results: HarnessResults, clock_hz: int | None, port: str) -> list[str]:
    """A summary of the results alone (no build to compare with)."""
    n = max(len(results.samples), 1)
    cycles = results.total_cycles // n
    at = f" = {cycles / clock_hz * 1000.0:.3f} ms at {clock_hz / 1e6:g} MHz" if clock_hz else ""
    lines = [
        f"board     {results.board} on {port}: model {results.model}, "
        f"{len(results.samples)} inputs, {results.layers} layers, status {results.status}",
        f"cycles    {cycles:,} per inference (DWT, measured){at}",
        f"stack     peak {results.stack_peak:,} of {results.stack_size:,} bytes",
        "",
        f"{'#':>3}  {'cycles':>11}",
    ]
    lines += [f"{i:>3}  {c:>11,}" for i, c in enumerate(results.mean_layer_cycles)]
    lines.append("")
    lines += [f"out {s.index:>3}  {s.output.hex()}" for s in results.samples]
    return lines
