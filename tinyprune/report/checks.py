"""What a build checked, as a list of test cases: one per budget and one per check.

JUnit, Markdown and HTML all render this one list, so they always say the same thing. Each check
reads only the report dict (old reports too: keys a report lacks make a check ``skipped`` with the
reason, never an error). A written report always fits the board (a firmware that does not fit
stops the build before the report), so ``fit`` checks pass there; they carry the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tinyprune.report.budgets import budget_title, budget_unit, margin_text
from tinyprune.report.figures import fmt_bytes, fmt_int, fmt_percent, fmt_unit, share

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"
BUDGETS, CHECKS = "budgets", "checks"


@dataclass(frozen=True)
class Check:
    """One test case: ``group`` (budgets or checks), an id-like ``name``, a ``title`` for people,
    its ``status`` and a one-line ``message`` with the numbers."""

    group: str
    name: str
    title: str
    status: str
    message: str

    @property
    def failed(self) -> bool:
        return self.status == FAILED


def _status(ok: bool | None) -> str:
    return SKIPPED if ok is None else PASSED if ok else FAILED


def budget_checks(report: dict[str, Any]) -> list[Check]:
    out = []
    for name, entry in (report.get("budgets") or {}).items():
        unit = budget_unit(name)
        msg = (f"{budget_title(name)} {fmt_unit(entry.get('actual'), unit)}, limit "
               f"{fmt_unit(entry.get('limit'), unit)}: {margin_text(name, entry)}")
        out.append(Check(BUDGETS, name, f"budget {name}", PASSED if entry.get("ok") else FAILED,
                         msg))
    return out


def _fit(report: dict[str, Any], used_key: str, size_key: str, region: str) -> Check:
    fw, board = report.get("firmware") or {}, report.get("board") or {}
    used, size = fw.get(used_key), board.get(size_key)
    name, title = f"fit.{region.lower()}", f"fits the board's {region}"
    if used is None or size is None:
        return Check(CHECKS, name, title, SKIPPED, f"{region} use not in the report")
    msg = (f"{fmt_bytes(used)} of {fmt_bytes(size)} ({share(used, size)}), "
           f"{fmt_bytes(size - used)} free on {board.get('name', 'the board')}")
    if region == "RAM":
        peak = fw.get("stack_peak_bytes")
        stack = (f"stack peak {fmt_bytes(peak)} of " if peak is not None
                 else "stack peak not measured (no firmware run), ")
        msg += (f"; arena {fmt_bytes(fw.get('arena_bytes'))}, {stack}"
                f"{fmt_bytes(fw.get('stack_reserved_bytes'))} reserved")
    elif fw.get("samples_bytes"):
        msg += f"; the check's compiled-in inputs take {fmt_bytes(fw['samples_bytes'])} more"
    return Check(CHECKS, name, title, _status(used <= size), msg)


def _fit_flash(report: dict[str, Any]) -> Check:
    return _fit(report, "flash_used_bytes", "flash_bytes", "flash")


def _fit_ram(report: dict[str, Any]) -> Check:
    return _fit(report, "ram_used_bytes", "ram_bytes", "RAM")


def _first_mismatch(mismatches: list[dict[str, Any]]) -> str:
    if not mismatches:
        return ""
    m = mismatches[0]
    return (f"; first: {m.get('input', 'input')} {m.get('row', m.get('sample'))}, byte "
            f"{m.get('first_byte')}: expected {m.get('expected')}, got {m.get('actual')}")


def _inputs(section: dict[str, Any]) -> int:
    return int(section.get("samples") or 0) + int(section.get("random_samples") or 0)


def _bit_exact_host(report: dict[str, Any]) -> Check:
    host = (report.get("run") or {}).get("host") or {}
    name, title = "bit_exact.host", "host build bit-exact with TFLite Micro"
    ok = host.get("bit_exact")
    if ok is None:
        return Check(CHECKS, name, title, SKIPPED, "no host check in the report")
    n = _inputs(host)
    bad = host.get("mismatch_count", len(host.get("mismatches") or []))
    msg = (f"{fmt_int(n)} inputs ({fmt_int(host.get('random_samples'))} seeded random "
           f"full-range): {fmt_int(bad)} differ{_first_mismatch(host.get('mismatches') or [])}")
    return Check(CHECKS, name, title, _status(ok), msg)


def _bit_exact_firmware(report: dict[str, Any]) -> Check:
    run = report.get("run") or {}
    name, title = "bit_exact.firmware", "firmware bit-exact with TFLite Micro"
    ok, emulator = run.get("bit_exact"), run.get("emulator")
    if ok is None:
        why = ("no firmware was run (--emulator none): the check is host-only"
               if emulator in (None, "none") or run.get("check") == "host-only"
               else "the firmware's outputs were not compared")
        return Check(CHECKS, name, title, SKIPPED, why)
    mismatches = run.get("mismatches") or []
    msg = (f"{fmt_int(_inputs(run))} inputs on {emulator} "
           f"({fmt_int(run.get('random_samples'))} random): {len(mismatches)} differ"
           f"{_first_mismatch(mismatches)}")
    return Check(CHECKS, name, title, _status(ok), msg)


def _dsp_path(report: dict[str, Any]) -> Check:
    host = (report.get("run") or {}).get("host") or {}
    name, title = "bit_exact.dsp_path", "DSP kernel path bit-exact with TFLite Micro"
    ok = host.get("dsp_path_bit_exact")
    if ok is None:
        return Check(CHECKS, name, title, SKIPPED,
                     "the board has no DSP extension: only the portable path runs")
    msg = f"SMLAD/SXTB16 path on the host over the same {fmt_int(_inputs(host))} inputs"
    return Check(CHECKS, name, title, _status(ok), msg + ("" if ok else ": outputs differ"))


def _accuracy(report: dict[str, Any]) -> Check:
    acc = report.get("accuracy") or {}
    name, title = "accuracy", "firmware accuracy equals the int8 reference"
    fw, ref = acc.get("firmware"), acc.get("int8_reference")
    if fw is None or ref is None:
        return Check(CHECKS, name, title, SKIPPED,
                     "no accuracy measured: the build had no test data (--data)")
    msg = (f"firmware {fmt_percent(fw)}, int8 reference {fmt_percent(ref)}, float "
           f"{fmt_percent(acc.get('float'))} on {fmt_int(acc.get('test_samples'))} test samples")
    return Check(CHECKS, name, title, _status(fw == ref), msg)


# The checks besides the budgets, in the order they are shown.
CHECK_RULES: tuple[Callable[[dict[str, Any]], Check], ...] = (
    _fit_flash, _fit_ram, _bit_exact_host, _bit_exact_firmware, _dsp_path, _accuracy)


def report_checks(report: dict[str, Any]) -> list[Check]:
    """Every test case of the report: the budgets first, then the checks."""
    return budget_checks(report) + [rule(report) for rule in CHECK_RULES]


def verdict(checks: list[Check]) -> str:
    """``7 checks passed, 2 skipped`` or ``2 of 9 checks failed``."""
    failed = sum(c.failed for c in checks)
    skipped = sum(c.status == SKIPPED for c in checks)
    if failed:
        return f"{failed} of {len(checks)} checks failed"
    passed = len(checks) - skipped
    return f"{passed} checks passed" + (f", {skipped} skipped" if skipped else "")


def why_no_cycles(report: dict[str, Any]) -> str:
    """Why a report has no cycle figures, and how to get them."""
    run = report.get("run") or {}
    emulator = run.get("emulator")
    if emulator in (None, "none") or run.get("check") == "host-only":
        return "no firmware was run (--emulator none), so no cycles were counted"
    if emulator == "qemu":
        return ("QEMU has no DWT cycle counter, so no cycles were counted; build with "
                "--emulator unicorn for cycle estimates")
    return f"no cycle figures from {emulator}"
