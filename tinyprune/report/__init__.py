"""The report stage: ``report.json`` (versioned, SPEC.md keys), its renderings, the budget gate
and the terminal summary.

``report.json`` is the record; ``report.md`` (a pull-request comment), ``junit.xml`` (CI test
results) and ``report.html`` (plots) are rendered from the report dict alone, by one module each
(:mod:`~tinyprune.report.markdown`, :mod:`~tinyprune.report.junit`,
:mod:`~tinyprune.report.html`), so ``tinyprune report`` re-renders an old build byte for byte.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tinyprune.outputs import atomic_write
from tinyprune.report.budgets import (
    BUDGET_RULES,
    budget_margin,
    budget_unit,
    evaluate_budgets,
    margin_text,
)
from tinyprune.report.compare import baseline_lines
from tinyprune.report.figures import estimate_label, fmt_number, fmt_signed, fmt_unit
from tinyprune.report.figures import fmt_int as _fmt_int

__all__ = ["BUDGET_RULES", "RENDERINGS", "SCHEMA_VERSION", "baseline_lines", "evaluate_budgets",
           "failure_reason", "fmt_number", "read_report", "render", "summary_lines",
           "write_outputs", "write_report"]

SCHEMA_VERSION = 1

Variants = Sequence[tuple[str, dict[str, Any]]]
Renderer = Callable[[dict[str, Any], "dict[str, Any] | None", Variants], str]


def _markdown(report: dict[str, Any], baseline: dict[str, Any] | None, variants: Variants) -> str:
    from tinyprune.report.markdown import render_markdown

    return render_markdown(report, baseline, variants)


def _junit(report: dict[str, Any], baseline: dict[str, Any] | None, variants: Variants) -> str:
    from tinyprune.report.junit import render_junit

    return render_junit(report)


def _html(report: dict[str, Any], baseline: dict[str, Any] | None, variants: Variants) -> str:
    from tinyprune.report.html import render_html

    return render_html(report, baseline, variants)


# The renderings written next to report.json: file name -> renderer. The output folder moves
# them into place before report.json (tinyprune.outputs.REPORTS).
RENDERINGS: dict[str, Renderer] = {"report.md": _markdown, "report.html": _html,
                                   "junit.xml": _junit}


def render(name: str, report: dict[str, Any], baseline: dict[str, Any] | None = None,
           variants: Variants = ()) -> str:
    """One rendering of ``report`` by its file name (``report.md``, ``report.html``,
    ``junit.xml``)."""
    return RENDERINGS[name](report, baseline, variants)


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    """Writes ``report.json`` atomically (a temporary file renamed into place)."""
    path = out_dir / "report.json"
    atomic_write(path, (json.dumps(report, indent=2) + "\n").encode())
    return path


def write_outputs(report: dict[str, Any], out_dir: Path,
                  baseline: dict[str, Any] | None = None) -> list[Path]:
    """Writes every rendering, then ``report.json``, into ``out_dir``; returns their paths."""
    paths = []
    for name in RENDERINGS:
        path = out_dir / name
        atomic_write(path, render(name, report, baseline).encode("utf-8"))
        paths.append(path)
    paths.append(write_report(report, out_dir))
    return paths


def read_report(path: Path) -> dict[str, Any]:
    """A report.json (or the folder holding one), checked to be a tinyprune report.

    Raises:
        UsageError: no such file, not JSON, or not a report (names the file and what is wrong).
    """
    from tinyprune.errors import UsageError

    file = path / "report.json" if path.is_dir() else path
    if not file.is_file():
        raise UsageError(f"{file}: no report.json; run 'tinyprune build' first, or name the "
                         "report.json of a build")
    try:
        report = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{file}: not a tinyprune report ({type(exc).__name__}: {exc})") \
            from None
    needed = ("board", "model", "firmware", "run")
    missing = [k for k in needed if not isinstance(report, dict) or
               not isinstance(report.get(k), dict)]
    if missing:
        raise UsageError(f"{file}: not a tinyprune report (expected the sections "
                         f"{', '.join(needed)}; missing {', '.join(missing)})")
    version = report.get("schema_version", SCHEMA_VERSION)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise UsageError(f"{file}: report schema_version {version!r} is not one this tinyprune "
                         f"reads (up to {SCHEMA_VERSION}); upgrade tinyprune")
    return report


def failure_reason(report: dict[str, Any]) -> str:
    """Why a completed build's report has ``ok`` false, with what to do next."""
    broken = [f"{k} (limit {fmt_number(v['limit'])}, actual {fmt_number(v['actual'])}: "
              f"{margin_text(k, v)})" for k, v in report["budgets"].items() if not v["ok"]]
    if broken:
        hint = ""
        model = report["model"]
        prunable = {"flash", "ram", "latency_ms"} & {
            k for k, v in report["budgets"].items() if not v["ok"]}
        if prunable and model.get("kind") != "tflite" and not model.get("pruning"):
            hint = "; add --prune-channels auto to prune the model until it meets them"
        return "budget broken: " + ", ".join(broken) + hint
    run = report["run"]
    host = run.get("host", {})
    if run.get("bit_exact") is False:
        return (f"firmware outputs differ from the TFLite Micro reference on {run['emulator']} "
                f"({len(run['mismatches'])} of {_inputs(run)} mismatching; see report.json "
                "run.mismatches)")
    if host.get("bit_exact") is False:
        tail = "; no firmware was run (--emulator none)" if run.get("check") == "host-only" \
            else ""
        return ("the generated C differs from the TFLite Micro reference on the host build "
                f"({host.get('mismatch_count', '?')} of {_inputs(host)} mismatching; see "
                f"report.json run.host.mismatches){tail}")
    return "the DSP kernel path differs from the reference on the host (see report.json run.host)"


def _inputs(section: dict[str, Any]) -> str:
    return f"{section.get('samples', 0) + section.get('random_samples', 0):,} inputs"


def _pct(v: Any) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _pruning_lines(p: dict[str, Any] | None) -> list[str]:
    """Pruning: ratio, totals, accuracy at each stage, channels of the layers that changed."""
    if not p or "params_before" not in p:
        return [] if not p else [f"pruning   {p.get('reason', 'none')}"]
    acc = p.get("accuracy") or {}
    lines = [f"pruning   {p['ratio']:.1%} of channels ({p['criterion']}): params "
             f"{_fmt_int(p['params_before'])} -> {_fmt_int(p['params_after'])}, MACs "
             f"{_fmt_int(p['macs_before'])} -> {_fmt_int(p['macs_after'])}"
             + (f"; {p['reason']}" if p.get("reason") else ""),
             f"          accuracy before {_pct(acc.get('before'))}, after pruning "
             f"{_pct(acc.get('after_prune'))}, after fine-tune {_pct(acc.get('after_finetune'))}"]
    changed = [x for x in p.get("layers", []) if x["channels_before"] != x["channels_after"]
               and x["params_before"]]
    if changed:
        lines.append("          channels: " + ", ".join(
            f"{x['name']} {x['channels_before']}->{x['channels_after']}" for x in changed))
    return lines


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A readable summary: headline figures, then a table per layer."""
    b, m, fw, run, acc = (report[k] for k in ("board", "model", "firmware", "run", "accuracy"))
    lines = [
        f"board     {b['name']} ({b['cpu']}, {b['clock_hz'] / 1e6:.0f} MHz)",
        f"model     {m['source']}: {_fmt_int(m['params_after'])} params, "
        f"{_fmt_int(m['macs_after'])} MACs",
        f"flash     {_fmt_int(fw['flash_used_bytes'])} of {_fmt_int(b['flash_bytes'])} bytes",
        f"ram       {_fmt_int(fw['ram_used_bytes'])} of {_fmt_int(b['ram_bytes'])} bytes "
        f"(arena {_fmt_int(fw['arena_bytes'])}, stack peak {_fmt_int(fw['stack_peak_bytes'])})",
    ]
    lines += _run_lines(run)
    lines.append(f"accuracy  float {_pct(acc.get('float'))}, int8 reference "
                 f"{_pct(acc.get('int8_reference'))}, firmware {_pct(acc.get('firmware'))} "
                 f"({acc.get('test_samples') or 0} test samples)")
    lines += _pruning_lines(m.get("pruning"))
    lines.append("")
    lines.append(f"{'#':>3}  {'layer':<24} {'op':<18} {'kernel':<34} {'MACs':>11} "
                 f"{'weights':>9} {'cycles':>11}")
    for i, layer in enumerate(report["layers"]):
        lines.append(f"{i:>3}  {layer['name'][:24]:<24} {layer['op'][:18]:<18} "
                     f"{layer['kernel'][:34]:<34} {_fmt_int(layer['macs']):>11} "
                     f"{_fmt_int(layer['weight_bytes']):>9} {_fmt_int(layer['cycles']):>11}")
    lines += budget_table(report.get("budgets") or {})
    lines += [f"warning   {w}" for w in report.get("warnings", [])]
    lines.append("result: " + ("OK" if report["ok"] else "FAILED"))
    return lines


def _run_lines(run: dict[str, Any]) -> list[str]:
    """Cycles and the bit-exactness check, saying what ran: firmware or only the host build."""
    emulator, host = run.get("emulator"), run.get("host") or {}
    host_part = (f"host build {_inputs(host)}, {_fmt_int(host.get('random_samples'))} of them "
                 f"seeded random full-range")
    if emulator in (None, "none") or run.get("check") == "host-only":
        return [f"bit-exact on the host build only: {host.get('bit_exact')} ({host_part}); "
                "no firmware was run (--emulator none)"]
    lines = []
    if run.get("cycles_per_inference") is None:
        lines.append(f"cycles    not measured on {emulator} (it has no DWT cycle counter); "
                     "use --emulator unicorn for cycle estimates")
    else:
        est = estimate_label(run)
        lines.append(f"cycles    {_fmt_int(run['cycles_per_inference'])}{est} = "
                     f"{run['latency_ms_at_clock']:.2f} ms at clock; "
                     f"{_fmt_int(run['instructions_per_inference'])} instructions")
    random = run.get("random_samples") or 0
    lines.append(f"bit-exact {run.get('bit_exact')} ({_inputs(run)} on the firmware on "
                 f"{emulator}, {random} of them random, {len(run.get('mismatches', []))} "
                 f"mismatching; {host_part}: {host.get('bit_exact')})")
    return lines


def budget_table(budgets: dict[str, dict[str, Any]]) -> list[str]:
    """The budgets as a table: limit, actual, margin (negative: broken by that much), result."""
    if not budgets:
        return []
    lines = ["", f"{'budget':<18} {'limit':>14} {'actual':>14} {'margin':>14}  result"]
    for name, bud in budgets.items():
        unit = budget_unit(name)
        lines.append(f"{name:<18} {fmt_unit(bud.get('limit'), unit):>14} "
                     f"{fmt_unit(bud.get('actual'), unit):>14} "
                     f"{fmt_signed(budget_margin(name, bud), unit):>14}  "
                     f"{'ok' if bud.get('ok') else 'BROKEN'}")
    return lines
