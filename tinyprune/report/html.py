"""``report.html``: one self-contained page (inline CSS and SVG, no script, no network) with
plots a person would rather look at than read.

Sections: the verdict and headline figures; budgets and checks; flash and RAM against the board;
cycles and weight bytes per layer; the arena's use over the ops and the buffers' placement (from
``memory``, when the report has it); the change against a baseline; accuracy against size when
several variants are rendered together; the per-layer table. A figure a report lacks (no cycles on
QEMU, no accuracy without data, no firmware run) shows as a sentence saying why, never an error.

Python computes every number, label and coordinate (:mod:`tinyprune.report.charts`); the Jinja
templates in ``templates/report/`` only loop and substitute, with HTML escaping on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import jinja2

from tinyprune.report import charts
from tinyprune.report.budgets import budget_margin, budget_title, budget_unit, margin_text
from tinyprune.report.checks import BUDGETS, FAILED, report_checks, verdict, why_no_cycles
from tinyprune.report.compare import figure_changes, layer_changes
from tinyprune.report.figures import (
    MISSING,
    estimate_label,
    fmt_bytes,
    fmt_compact,
    fmt_int,
    fmt_kib,
    fmt_ms,
    fmt_percent,
    fmt_signed,
    fmt_unit,
    share,
)
from tinyprune.report.markdown import UNEXPLAINED

TEMPLATE = "report.html.j2"


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    from tinyprune.firmware.paths import templates_dir

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates_dir() / "report")),
                              autoescape=True, undefined=jinja2.StrictUndefined,
                              trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@dataclass(frozen=True)
class Plot:
    """A section's chart, or the sentence saying why it is not there."""

    id: str
    title: str
    chart: charts.Chart | None
    missing: str = ""
    note: str = ""


def _sec(report: dict[str, Any], key: str) -> dict[str, Any]:
    value = report.get(key)
    return value if isinstance(value, dict) else {}


def _layers(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [x for x in report.get("layers") or [] if isinstance(x, dict)]


def _label(i: int, layer: dict[str, Any]) -> str:
    return f"#{i} {layer.get('name', '?')} ({layer.get('op', '?')}, {layer.get('kernel', '?')})"


def _cards(report: dict[str, Any]) -> list[dict[str, str]]:
    b, fw, run, acc = (_sec(report, k) for k in ("board", "firmware", "run", "accuracy"))
    flash, ram = fw.get("flash_used_bytes"), fw.get("ram_used_bytes")
    bit = run.get("bit_exact")
    host = _sec(run, "host").get("bit_exact")
    if bit is None:
        exact, exact_sub = ("yes" if host else "no" if host is False else MISSING,
                            "host build only: no firmware was run")
    else:
        exact = "yes" if bit and host is not False else "no"
        exact_sub = f"firmware on {run.get('emulator')} and host build"
    cycles = run.get("cycles_per_inference")
    model = _sec(report, "model")
    ratio = (model.get("pruning") or {}).get("ratio")
    return [
        {"label": "parameters", "value": fmt_int(model.get("params_after")),
         "sub": f"{fmt_int(model.get('macs_after'))} MACs"
         + (f"; {fmt_percent(ratio)} of channels pruned" if ratio else "")},
        {"label": "flash", "value": fmt_kib(flash),
         "sub": f"of {fmt_kib(b.get('flash_bytes'))} ({share(flash, b.get('flash_bytes'))})"},
        {"label": "RAM", "value": fmt_kib(ram),
         "sub": f"of {fmt_kib(b.get('ram_bytes'))} ({share(ram, b.get('ram_bytes'))})"},
        {"label": "latency", "value": fmt_ms(run.get("latency_ms_at_clock")),
         "sub": (f"{fmt_int(cycles)} cycles" + estimate_label(run).split(":")[0]
                 + (")" if run.get("cycle_model") and run.get("cycles_are_estimate") else ""))
         if cycles is not None
         else why_no_cycles(report).split(",")[0]},
        {"label": "accuracy", "value": fmt_percent(acc.get("firmware")),
         "sub": f"firmware, {fmt_int(acc.get('test_samples'))} test samples"
         if acc.get("firmware") is not None else "not measured (no --data)"},
        {"label": "bit-exact", "value": exact, "sub": exact_sub},
    ]


def _usage_plot(report: dict[str, Any]) -> Plot:
    b, fw, budgets = _sec(report, "board"), _sec(report, "firmware"), _sec(report, "budgets")
    title = "Flash and RAM against the board"
    flash, ram = fw.get("flash_used_bytes"), fw.get("ram_used_bytes")
    if flash is None or ram is None or not b.get("flash_bytes") or not b.get("ram_bytes"):
        return Plot("plot-memory", title, None, "the report has no flash and RAM figures")
    weights = min(sum(x.get("weight_bytes") or 0 for x in _layers(report)), flash)
    arena, stack = fw.get("arena_bytes") or 0, fw.get("stack_reserved_bytes")
    peak = fw.get("stack_peak_bytes")
    flash_segs = [charts.Segment("weights", weights, "seg-weights"),
                  charts.Segment("code and other constants", flash - weights, "seg-code")]
    if fw.get("samples_bytes"):
        flash_segs.append(charts.Segment("the check's inputs (not counted)",
                                         fw["samples_bytes"], "seg-extra"))
    if stack is None:
        ram_segs = [charts.Segment("arena", arena, "seg-arena"),
                    charts.Segment("stack and other data", max(ram - arena, 0), "seg-static")]
    else:
        ram_segs = [charts.Segment("static data", max(ram - arena - stack, 0), "seg-static"),
                    charts.Segment("arena", arena, "seg-arena")]
        if peak is None:
            ram_segs.append(charts.Segment("stack reserved (peak not measured)", stack,
                                           "seg-free"))
        else:
            used = min(peak, stack)
            ram_segs += [charts.Segment("stack used (peak)", used, "seg-stack"),
                         charts.Segment("stack reserved, unused", stack - used, "seg-free")]
    rows = [
        charts.UsageRow("flash", b["flash_bytes"], flash_segs,
                        [("budget", budgets["flash"]["limit"])] if "flash" in budgets else [],
                        f"{fmt_bytes(flash)} used ({share(flash, b['flash_bytes'])})"),
        charts.UsageRow("RAM", b["ram_bytes"], ram_segs,
                        [("budget", budgets["ram"]["limit"])] if "ram" in budgets else [],
                        f"{fmt_bytes(ram)} used ({share(ram, b['ram_bytes'])})"),
    ]
    chart = charts.usage_chart("chart-memory", f"{title}: flash {fmt_bytes(flash)} of "
                               f"{fmt_bytes(b['flash_bytes'])}, RAM {fmt_bytes(ram)} of "
                               f"{fmt_bytes(b['ram_bytes'])}", rows, fmt_kib)
    legend = tuple((s.cls, f"{s.name} {fmt_kib(s.value)}") for row in rows for s in row.segments)
    note = (f"flash {fmt_bytes(flash)} of {fmt_bytes(b['flash_bytes'])} "
            f"({share(flash, b['flash_bytes'])}); RAM {fmt_bytes(ram)} of "
            f"{fmt_bytes(b['ram_bytes'])} ({share(ram, b['ram_bytes'])})")
    return Plot("plot-memory", title, replace(chart, legend=legend), note=note)


def _cycles_plot(report: dict[str, Any]) -> Plot:
    layers = _layers(report)
    title = "Cycles per layer"
    if not layers or any(x.get("cycles") is None for x in layers):
        return Plot("plot-cycles", title, None, why_no_cycles(report) if layers
                    else "the report has no layers")
    total = sum(x["cycles"] for x in layers) or 1
    tips = [f"{_label(i, x)}: {fmt_int(x['cycles'])} cycles, {share(x['cycles'], total)} of the "
            f"inference; {fmt_int(x.get('macs'))} MACs"
            + (f", {x['macs'] / x['cycles']:.2f} MACs/cycle" if x.get("macs") and x["cycles"]
               else "") for i, x in enumerate(layers)]
    spec = charts.BarSpec("chart-cycles", f"{title}: {fmt_int(total)} cycles in all",
                          [str(x.get("name")) for x in layers], [x["cycles"] for x in layers],
                          tips, fmt_compact, cls="bar bar-cycles")
    return Plot("plot-cycles", title, charts.bar_chart(spec),
                note=f"{fmt_int(total)} cycles per inference{estimate_label(_sec(report, 'run'))}")


def _weights_plot(report: dict[str, Any]) -> Plot:
    layers = _layers(report)
    title = "Weight bytes per layer"
    if not layers:
        return Plot("plot-weights", title, None, "the report has no layers")
    values = [x.get("weight_bytes") or 0 for x in layers]
    tips = [f"{_label(i, x)}: {fmt_int(v)} weight bytes"
            + (f", {fmt_percent(x['sparsity'])} zero" if x.get("sparsity") else "")
            + (f", stored as {x['format']} (dense: {fmt_int(x.get('weight_bytes_dense'))})"
               if x.get("format") not in (None, "dense") else "")
            for i, (x, v) in enumerate(zip(layers, values, strict=True))]
    spec = charts.BarSpec("chart-weights", f"{title}: {fmt_int(sum(values))} bytes in all",
                          [str(x.get("name")) for x in layers], values, tips, fmt_compact,
                          cls="bar bar-weights")
    return Plot("plot-weights", title, charts.bar_chart(spec),
                note=f"{fmt_bytes(sum(values))} of weights in flash")


def _timeline_plot(report: dict[str, Any]) -> Plot:
    memory, layers = _sec(report, "memory"), _layers(report)
    title = "Arena use over the ops"
    timeline = [t for t in memory.get("timeline") or [] if isinstance(t, dict)]
    if not timeline:
        arena = _sec(report, "firmware").get("arena_bytes")
        return Plot("plot-arena", title, None,
                    f"this report has no memory.timeline (the arena is {fmt_bytes(arena)})")
    total = (memory.get("arena_bytes") or 0) + (memory.get("scratch_bytes") or 0)
    names = [str(t.get("layer", layers[i].get("name") if i < len(layers) else i))
             for i, t in enumerate(timeline)]
    live = [t.get("live_bytes") or 0 for t in timeline]
    scratch = [t.get("scratch_bytes") or 0 for t in timeline]
    spec = charts.BarSpec(
        "chart-arena", f"{title}: peak {fmt_bytes(max(live))} live of an arena of "
        f"{fmt_bytes(memory.get('arena_bytes'))}", names, live,
        [f"#{i} {n}: {fmt_bytes(v)} of activations live" for i, (n, v) in
         enumerate(zip(names, live, strict=True))], fmt_compact, cls="bar bar-arena",
        stacked=scratch, stacked_cls="bar bar-scratch",
        stacked_tips=[f"#{i} {n}: {fmt_bytes(v)} of scratch" for i, (n, v) in
                      enumerate(zip(names, scratch, strict=True))],
        hline=(total, f"arena + scratch {fmt_bytes(total)}"),
        legend=(("bar-arena", "activations live during the op"),
                ("bar-scratch", "the op's scratch buffer")))
    return Plot("plot-arena", title, charts.bar_chart(spec),
                note=f"peak {fmt_bytes(max(live))} of activations live; the planner's arena is "
                     f"{fmt_bytes(memory.get('arena_bytes'))} plus "
                     f"{fmt_bytes(memory.get('scratch_bytes'))} of scratch")


def _short(name: str) -> str:
    head = name.split(";")[0]
    return head if len(head) <= 60 else "..." + head[-57:]


def _unnamed(buffer: dict[str, Any]) -> str:
    """The label of a buffer without tensors: a layer's scratch inside the arena."""
    return "scratch" if buffer.get("scratch") else "?"


def _placement_plot(report: dict[str, Any]) -> Plot | None:
    memory, layers = _sec(report, "memory"), _layers(report)
    buffers = [b for b in memory.get("buffers") or [] if isinstance(b, dict)]
    if not buffers:
        return None
    n_ops = max(len(layers), *(int(b.get("last_op", 0)) + 1 for b in buffers))
    spans = [charts.Span(int(b.get("first_op", 0)), int(b.get("last_op", 0)),
                         b.get("offset") or 0, b.get("size") or 0,
                         f"{_short(str((b.get('tensors') or [_unnamed(b)])[0]))}: "
                         f"{fmt_bytes(b.get('size'))} at offset {fmt_int(b.get('offset'))}, "
                         f"live over ops {b.get('first_op')}-{b.get('last_op')}")
             for b in buffers]
    arena = memory.get("arena_bytes") or 0
    chart = charts.placement_chart("chart-buffers", f"Arena placement: {len(spans)} buffers in "
                                   f"{fmt_bytes(arena)}", n_ops, spans, arena, fmt_kib)
    return Plot("plot-buffers", "Arena placement: each buffer's offset over its lifetime", chart,
                note="buffers that are never live at the same time share bytes")


def _fmt_kib_axis(v: float) -> str:
    return f"{v / 1024:g} KiB"


def _fmt_percent_axis(v: float) -> str:
    return f"{100 * v:.4g}%"


def _variant_plot(variants: Sequence[tuple[str, dict[str, Any]]]) -> Plot | None:
    if len(variants) < 2:
        return None
    title = "Accuracy against size"
    pts = []
    for i, (label, r) in enumerate(variants):
        fw, acc, run = _sec(r, "firmware"), _sec(r, "accuracy"), _sec(r, "run")
        y = acc.get("firmware", acc.get("int8_reference"))
        x = fw.get("flash_used_bytes")
        if x is None or y is None:
            continue
        pts.append(charts.XY(x, y, label, f"{label}: flash {fmt_bytes(x)}, accuracy "
                             f"{fmt_percent(y)}, {fmt_int(run.get('cycles_per_inference'))} "
                             "cycles", highlight=i == 0))
    if len(pts) < 2:
        return Plot("plot-variants", title, None,
                    "fewer than two of these reports have both accuracy and flash figures "
                    "(accuracy needs --data)")
    chart = charts.scatter_chart("chart-variants", f"{title}: {len(pts)} variants", pts,
                                 (_fmt_kib_axis, _fmt_percent_axis), (1024.0, 0.01),
                                 "flash used", y_cap=1.0)
    return Plot("plot-variants", title, chart,
                note="firmware accuracy on the test set against flash used; the first report "
                     "given is ringed")


def _subtitle(report: dict[str, Any], text: str) -> str:
    board, run = _sec(report, "board"), _sec(report, "run")
    clock = board.get("clock_hz")
    cpu = f"{board.get('cpu', '?')}" + (f" at {clock / 1e6:.0f} MHz" if clock else "")
    emulator = run.get("emulator")
    ran = "no firmware run (host-only check)" if emulator in (None, "none") \
        else f"run on {emulator}"
    return f"{text} · {cpu} · {ran}"


def _budget_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, e in _sec(report, "budgets").items():
        unit = budget_unit(name)
        rows.append({"name": name, "title": budget_title(name), "ok": bool(e.get("ok")),
                     "limit": fmt_unit(e.get("limit"), unit),
                     "actual": fmt_unit(e.get("actual"), unit),
                     "margin": fmt_signed(budget_margin(name, e), unit),
                     "margin_text": margin_text(name, e)})
    return rows


def _layer_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    layers = _layers(report)
    total = sum(x.get("cycles") or 0 for x in layers) or None
    return [{"i": i, "name": x.get("name"), "op": x.get("op"), "kernel": x.get("kernel"),
             "macs": fmt_int(x.get("macs")), "weights": fmt_int(x.get("weight_bytes")),
             "cycles": fmt_int(x.get("cycles")), "share": share(x.get("cycles"), total),
             "sparsity": fmt_percent(x.get("sparsity")),
             "format": x.get("format") if x.get("format") not in (None, "dense") else ""}
            for i, x in enumerate(layers)]


def _variant_rows(variants: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for label, r in variants:
        fw, run, acc = _sec(r, "firmware"), _sec(r, "run"), _sec(r, "accuracy")
        ratio = (_sec(r, "model").get("pruning") or {}).get("ratio")
        rows.append({"label": label, "pruned": fmt_percent(ratio) if ratio else "0%",
                     "flash": fmt_bytes(fw.get("flash_used_bytes")),
                     "ram": fmt_bytes(fw.get("ram_used_bytes")),
                     "cycles": fmt_int(run.get("cycles_per_inference")),
                     "accuracy": fmt_percent(acc.get("firmware")), "ok": bool(r.get("ok"))})
    return rows


def page_context(report: dict[str, Any], baseline: dict[str, Any] | None = None,
                 variants: Sequence[tuple[str, dict[str, Any]]] = ()) -> dict[str, Any]:
    """Everything the template substitutes, computed from the report dicts only."""
    checks = report_checks(report)
    model, board = _sec(report, "model"), _sec(report, "board")
    plots = [_usage_plot(report), _cycles_plot(report), _weights_plot(report),
             _timeline_plot(report), _placement_plot(report), _variant_plot(variants)]
    return {
        "title": f"{model.get('source', 'model')} on {board.get('name', 'board')}",
        "ok": bool(report.get("ok")) and not any(c.status == FAILED for c in checks),
        "verdict": verdict(checks),
        "subtitle": _subtitle(report, verdict(checks)),
        "board": board, "model": model,
        "failures": [f"{c.title}: {c.message}" for c in checks if c.status == FAILED]
        or ([] if report.get("ok") else [UNEXPLAINED]),
        "cards": _cards(report),
        "budgets": _budget_rows(report),
        "checks": [c for c in checks if c.group != BUDGETS],
        "plots": [p for p in plots if p is not None],
        "baseline": None if baseline is None else {
            "figures": figure_changes(report, baseline),
            "layers": layer_changes(report, baseline)},
        "layers": _layer_rows(report),
        "variants": _variant_rows(variants) if len(variants) >= 2 else [],
        "warnings": [str(w) for w in report.get("warnings") or []],
        "version": report.get("tinyprune_version"), "schema": report.get("schema_version"),
        "elf_sha256": _sec(report, "firmware").get("elf_sha256"),
        "run": _sec(report, "run"),
    }


def render_html(report: dict[str, Any], baseline: dict[str, Any] | None = None,
                variants: Sequence[tuple[str, dict[str, Any]]] = ()) -> str:
    """The HTML page of ``report``; ``baseline`` adds the change table, two or more
    ``variants`` (label, report) add accuracy against size."""
    return _environment().get_template(TEMPLATE).render(**page_context(report, baseline,
                                                                       variants))
