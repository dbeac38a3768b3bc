"""``report.md``: the report as a pull-request comment (GitHub-flavoured Markdown).

The verdict and headline figures first, then the budgets (limit, actual, margin), the checks, the
change against a baseline report when one is given, the per-layer table, and the variants when
several reports are rendered together. Reads only report dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tinyprune.report.budgets import budget_margin, budget_unit
from tinyprune.report.checks import FAILED, PASSED, Check, report_checks, verdict
from tinyprune.report.compare import figure_changes, layer_changes
from tinyprune.report.figures import (
    MISSING,
    estimate_label,
    fmt_bytes,
    fmt_int,
    fmt_ms,
    fmt_percent,
    fmt_signed,
    fmt_unit,
    share,
)

# The first line of the comment: a CI step can find and update its own earlier comment by it.
MARKER = "<!-- tinyprune-report -->"
STATUS_ICON = {PASSED: "✅", FAILED: "❌"}
SKIPPED_ICON = "⚪"
UNEXPLAINED = "the report says ok: false, with no failed budget or check in it"


def cell(text: Any) -> str:
    """Text safe inside a table cell: no pipe, no HTML, no line break."""
    s = MISSING if text is None else str(text)
    return (s.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
            .replace(">", "&gt;").replace("\n", " "))


def _table(header: Sequence[str], align: str, rows: Sequence[Sequence[Any]]) -> list[str]:
    """A table; ``align`` has one letter per column: l(eft), r(ight), c(entre)."""
    marks = {"l": "---", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _icon(check: Check) -> str:
    return STATUS_ICON.get(check.status, SKIPPED_ICON)


def _title(report: dict[str, Any], checks: list[Check]) -> str:
    model = (report.get("model") or {}).get("source", "model")
    board = (report.get("board") or {}).get("name", "board")
    icon = "✅" if report.get("ok") and not any(c.failed for c in checks) else "❌"
    return f"## {icon} tinyprune: {cell(model)} on {cell(board)}: {verdict(checks)}"


def _cycles(run: dict[str, Any], board: dict[str, Any]) -> str:
    cycles = run.get("cycles_per_inference")
    if cycles is None:
        emulator = run.get("emulator")
        return (f"not measured on {emulator} (no cycle counter)" if emulator not in
                (None, "none") else "not measured (no firmware run)")
    est = estimate_label(run)
    clock = board.get("clock_hz")
    at = f" at {clock / 1e6:.0f} MHz" if clock else ""
    return f"{fmt_int(cycles)}{est} = {fmt_ms(run.get('latency_ms_at_clock'))}{at}"


def _tcm_row(tcm: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The headline's TCM line (docs/tcm.md): what was placed where, or why nothing was."""
    if not tcm:
        return []
    placed = [d for d in tcm.get("decisions", []) if d.get("placed")]
    if not placed:
        why = tcm.get("note") or "nothing pays and fits"
        return [("TCM placement", f"none ({why})" if tcm.get("enabled") else f"off ({why})")]
    parts = ", ".join(f"{d.get('layer') or d['kernel']} {d['kind']} in {d['memory'].upper()} "
                      f"({fmt_bytes(d['bytes'])})" for d in placed)
    return [("TCM placement", f"ITCM {fmt_bytes(tcm.get('itcm_bytes'))}, DTCM "
             f"{fmt_bytes(tcm.get('dtcm_bytes'))}: {parts}; est. "
             f"{fmt_int(tcm.get('est_saved_cycles'))} cycles saved per inference")]


def _headline(report: dict[str, Any]) -> list[str]:
    b, fw = report.get("board") or {}, report.get("firmware") or {}
    run, acc = report.get("run") or {}, report.get("accuracy") or {}
    rows = [
        ("flash", f"{fmt_bytes(fw.get('flash_used_bytes'))} of "
                  f"{fmt_bytes(b.get('flash_bytes'))} "
                  f"({share(fw.get('flash_used_bytes'), b.get('flash_bytes'))})"),
        ("RAM", f"{fmt_bytes(fw.get('ram_used_bytes'))} of {fmt_bytes(b.get('ram_bytes'))} "
                f"({share(fw.get('ram_used_bytes'), b.get('ram_bytes'))}); arena "
                f"{fmt_bytes(fw.get('arena_bytes'))}, stack peak "
                f"{fmt_bytes(fw.get('stack_peak_bytes'))}"),
        ("cycles per inference", _cycles(run, b)),
        *_tcm_row(fw.get("tcm")),
        ("accuracy", f"firmware {fmt_percent(acc.get('firmware'))}, int8 reference "
                     f"{fmt_percent(acc.get('int8_reference'))}, float "
                     f"{fmt_percent(acc.get('float'))}" if acc.get("firmware") is not None
         else "not measured (no --data)"),
    ]
    return _table(["measured", "value"], "ll", rows)


def _budgets(report: dict[str, Any], checks: list[Check]) -> list[str]:
    budgets = report.get("budgets") or {}
    lines = ["### Budgets", ""]
    if not budgets:
        return [*lines, "No budgets set (`--flash-budget`, `--ram-budget`, `--latency-budget`, "
                "`--min-accuracy`, `--max-accuracy-drop`, or `[budgets]` in tinyprune.toml).", ""]
    rows = []
    for name, entry in budgets.items():
        unit = budget_unit(name)
        rows.append((name, fmt_unit(entry.get("limit"), unit),
                     fmt_unit(entry.get("actual"), unit),
                     fmt_signed(budget_margin(name, entry), unit),
                     "✅ ok" if entry.get("ok") else "❌ **broken**"))
    return [*lines, *_table(["budget", "limit", "actual", "margin", "result"], "lrrrc", rows),
            "", "margin: how far inside the limit (negative: broken by that much).", ""]


def _checks(checks: list[Check]) -> list[str]:
    rows = [(c.title, f"{_icon(c)} {c.status}", c.message) for c in checks
            if c.group != "budgets"]
    return ["### Checks", "", *_table(["check", "result", "details"], "lcl", rows), ""]


def _baseline(report: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    rows = [(c.title, c.before_text(), c.after_text(), c.delta_text, c.verdict)
            for c in figure_changes(report, baseline)]
    lines = ["### Change against the baseline", "",
             *_table(["figure", "baseline", "this build", "change", ""], "lrrrl", rows), ""]
    layers = layer_changes(report, baseline)
    if layers:
        layer_rows = [(i, lc.name, lc.op, lc.cycles.before_text(), lc.cycles.after_text(),
                       lc.cycles.delta_text if lc.status == "both" else lc.status)
                      for i, lc in enumerate(layers)]
        lines += ["<details><summary>Per-layer cycles against the baseline</summary>", "",
                  *_table(["#", "layer", "op", "baseline", "this build", "change"], "rllrrr",
                          layer_rows), "", "</details>", ""]
    return lines


def _layers(report: dict[str, Any]) -> list[str]:
    layers = report.get("layers") or []
    if not layers:
        return []
    total = sum(x.get("cycles") or 0 for x in layers) or None
    macs = sum(x.get("macs") or 0 for x in layers)
    weights = sum(x.get("weight_bytes") or 0 for x in layers)
    rows = [(i, x.get("name"), x.get("op"), x.get("kernel"), x.get("format") or "",
             fmt_int(x.get("macs")), fmt_int(x.get("weight_bytes")),
             fmt_int(x.get("weight_bytes_dense")) if x.get("format") not in (None, "dense")
             else "", fmt_int(x.get("cycles")), share(x.get("cycles"), total))
            for i, x in enumerate(layers)]
    summary = (f"{len(layers)} layers: {fmt_int(macs)} MACs, {fmt_int(weights)} weight bytes, "
               f"{fmt_int(total)} cycles")
    return ["### Layers", "", f"<details><summary>{summary}</summary>", "",
            *_table(["#", "layer", "op", "kernel", "weights as", "MACs", "weights (B)",
                     "dense (B)", "cycles", "share"], "rllllrrrrr", rows), "", "</details>",
            ""]


def _variants(variants: Sequence[tuple[str, dict[str, Any]]]) -> list[str]:
    rows = []
    for label, r in variants:
        fw, run, acc = r.get("firmware") or {}, r.get("run") or {}, r.get("accuracy") or {}
        pruning = (r.get("model") or {}).get("pruning") or {}
        sparse = (r.get("model") or {}).get("sparsify") or {}
        rows.append((label, fmt_percent(pruning.get("ratio")) if pruning.get("ratio") else "0%",
                     f"{fmt_percent(sparse.get('sparsity'))} {sparse.get('pattern')}"
                     if sparse else "-",
                     fmt_bytes(fw.get("flash_used_bytes")), fmt_bytes(fw.get("ram_used_bytes")),
                     fmt_int(run.get("cycles_per_inference")), fmt_percent(acc.get("firmware")),
                     "✅" if r.get("ok") else "❌"))
    return ["### Variants", "", *_table(["variant", "pruned", "sparse", "flash", "RAM",
                                         "cycles", "accuracy", "ok"], "llrrrrrc", rows), ""]


def _footer(report: dict[str, Any]) -> list[str]:
    run = report.get("run") or {}
    model = run.get("cycle_model")
    est = (f"cycles are estimates{f' from the {model} model' if model else ''}; instruction "
           "counts are exact. " if run.get("cycles_are_estimate") else "")
    return [f"<sub>{cell(est)}tinyprune {cell(report.get('tinyprune_version'))}, report schema "
            f"{cell(report.get('schema_version'))}.</sub>"]


def render_markdown(report: dict[str, Any], baseline: dict[str, Any] | None = None,
                    variants: Sequence[tuple[str, dict[str, Any]]] = ()) -> str:
    """The Markdown of ``report``, with its change against ``baseline`` and the table of
    ``variants`` (label, report) when there are two or more."""
    checks = report_checks(report)
    lines = [MARKER, _title(report, checks), ""]
    failed = [c for c in checks if c.failed]
    if failed:
        lines += [f"> **Failed:** {cell(c.title)}: {cell(c.message)}  " for c in failed]
        lines.append("")
    elif not report.get("ok"):
        lines += [f"> **Failed:** {UNEXPLAINED}", ""]
    lines += [*_headline(report), ""]
    lines += _budgets(report, checks)
    lines += _checks(checks)
    if baseline is not None:
        lines += _baseline(report, baseline)
    lines += _layers(report)
    if len(variants) >= 2:
        lines += _variants(variants)
    lines += [f"> warning: {cell(w)}" for w in report.get("warnings") or []]
    if report.get("warnings"):
        lines.append("")
    lines += _footer(report)
    return "\n".join(lines) + "\n"
