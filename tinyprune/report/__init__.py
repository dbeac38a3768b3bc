"""The report stage: ``report.json`` (versioned, SPEC.md keys), budgets, terminal summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyprune.config import Budgets
from tinyprune.outputs import atomic_write

SCHEMA_VERSION = 1


def evaluate_budgets(budgets: Budgets, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each set budget -> {limit, actual, ok}. A figure that could not be measured fails it."""
    fw, run, acc = report["firmware"], report["run"], report["accuracy"]
    drop = None
    baseline = acc.get("float_original", acc.get("float"))  # the model as given, before pruning
    if baseline is not None and acc.get("firmware") is not None:
        drop = round(baseline - acc["firmware"], 6)
    checks = {
        "flash": (budgets.flash, fw.get("flash_used_bytes"), "max"),
        "ram": (budgets.ram, fw.get("ram_used_bytes"), "max"),
        "latency_ms": (budgets.latency_ms, run.get("latency_ms_at_clock"), "max"),
        "min_accuracy": (budgets.min_accuracy, acc.get("firmware"), "min"),
        "max_accuracy_drop": (budgets.max_accuracy_drop, drop, "max"),
    }
    out = {}
    for name, (limit, actual, kind) in checks.items():
        if limit is None:
            continue
        ok = actual is not None and (actual <= limit if kind == "max" else actual >= limit)
        out[name] = {"limit": limit, "actual": actual, "ok": bool(ok)}
    return out


def write_report(report: dict[str, Any], out_dir: Path) -> Path:
    """Writes ``report.json`` atomically (a temporary file renamed into place)."""
    path = out_dir / "report.json"
    atomic_write(path, (json.dumps(report, indent=2) + "\n").encode())
    return path


def failure_reason(report: dict[str, Any]) -> str:
    """Why a completed build's report has ``ok`` false, with what to do next."""
    broken = [f"{k} (limit {fmt_number(v['limit'])}, actual {fmt_number(v['actual'])})"
              for k, v in report["budgets"].items() if not v["ok"]]
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


def fmt_number(v: Any) -> str:
    """Budgets for messages: integers as they are, floats to 4 significant digits."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def _fmt_int(v: Any) -> str:
    return "-" if v is None else f"{int(v):,}"


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
    for name, bud in report["budgets"].items():
        lines.append(f"budget {name}: limit {fmt_number(bud['limit'])}, actual "
                     f"{fmt_number(bud['actual'])} -> {'ok' if bud['ok'] else 'BROKEN'}")
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
        est = " (estimate)" if run.get("cycles_are_estimate") else ""
        lines.append(f"cycles    {_fmt_int(run['cycles_per_inference'])}{est} = "
                     f"{run['latency_ms_at_clock']:.2f} ms at clock; "
                     f"{_fmt_int(run['instructions_per_inference'])} instructions")
    random = run.get("random_samples") or 0
    lines.append(f"bit-exact {run.get('bit_exact')} ({_inputs(run)} on the firmware on "
                 f"{emulator}, {random} of them random, {len(run.get('mismatches', []))} "
                 f"mismatching; {host_part}: {host.get('bit_exact')})")
    return lines
