"""Budget evaluation: limits, unmeasured figures, the accuracy drop from the original model."""

from __future__ import annotations

import pytest

from tinyprune.config import Budgets
from tinyprune.report import evaluate_budgets, fmt_number


def _report(**acc: float | None) -> dict:
    return {"firmware": {"flash_used_bytes": 1000, "ram_used_bytes": 500},
            "run": {"latency_ms_at_clock": 2.5},
            "accuracy": {"float": 0.97, "float_original": 0.99, "firmware": 0.96, **acc}}


def test_only_set_budgets_are_checked() -> None:
    out = evaluate_budgets(Budgets(flash=1000, ram=499), _report())
    assert out == {"flash": {"limit": 1000, "actual": 1000, "ok": True, "margin": 0},
                   "ram": {"limit": 499, "actual": 500, "ok": False, "margin": -1}}


def test_accuracy_drop_counts_from_the_model_as_given() -> None:
    # pruning cost 2 points and quantization 1: the drop is 3 points, not 1
    out = evaluate_budgets(Budgets(max_accuracy_drop=0.02, min_accuracy=0.95), _report())
    assert out["max_accuracy_drop"]["actual"] == pytest.approx(0.03)
    assert out["max_accuracy_drop"]["ok"] is False
    assert out["min_accuracy"]["ok"] is True


def test_unmeasured_figure_fails_its_budget() -> None:
    report = _report(firmware=None)
    report["run"]["latency_ms_at_clock"] = None  # e.g. --emulator none
    out = evaluate_budgets(Budgets(latency_ms=10.0, min_accuracy=0.5), report)
    assert out["latency_ms"] == {"limit": 10.0, "actual": None, "ok": False, "margin": None}
    assert out["min_accuracy"]["ok"] is False


@pytest.mark.parametrize(("value", "text"), [(2.5152175925, "2.515"), (65536, "65536"),
                                             (None, "-"), (0.01, "0.01")])
def test_numbers_in_messages(value, text: str) -> None:
    assert fmt_number(value) == text


def _built(**run: object) -> dict:
    base_run = {"emulator": "unicorn", "check": "firmware", "samples": 20, "random_samples": 5,
                "bit_exact": True, "mismatches": [], "cycles_per_inference": 1000,
                "cycles_are_estimate": True, "latency_ms_at_clock": 0.01,
                "instructions_per_inference": 800,
                "host": {"samples": 450, "random_samples": 2000, "bit_exact": True,
                         "mismatch_count": 0, "mismatches": [], "dsp_path_bit_exact": True}}
    return {"board": {"name": "b", "cpu": "cortex-m7", "clock_hz": 216e6, "flash_bytes": 1,
                      "ram_bytes": 1},
            "model": {"source": "m.keras", "params_after": 1, "macs_after": 1},
            "firmware": {"flash_used_bytes": 1, "ram_used_bytes": 1, "arena_bytes": 1,
                         "stack_peak_bytes": 1},
            "run": {**base_run, **run}, "accuracy": {}, "layers": [], "budgets": {}, "ok": True}


def test_summary_says_what_was_checked() -> None:
    from tinyprune.report import summary_lines

    text = "\n".join(summary_lines(_built()))
    assert "bit-exact True (25 inputs on the firmware on unicorn, 5 of them random" in text
    assert "host build 2,450 inputs, 2,000 of them seeded random full-range: True" in text
    host_only = _built(emulator="none", check="host-only", samples=0, random_samples=0,
                       bit_exact=None, cycles_per_inference=None)
    lines = summary_lines(host_only)
    text = "\n".join(lines)
    assert "bit-exact on the host build only: True (host build 2,450 inputs" in text
    assert "no firmware was run" in text and "on none" not in text
    assert "bit-exact True" not in text and not any(ln.startswith("cycles") for ln in lines)


def test_failure_messages_name_what_differed() -> None:
    from tinyprune.report import failure_reason

    host_only = _built(emulator="none", check="host-only", samples=0, random_samples=0,
                       bit_exact=None)
    host_only["run"]["host"].update(bit_exact=False, mismatch_count=3)
    why = failure_reason(host_only)
    assert "host build (3 of 2,450 inputs mismatching" in why and "no firmware was run" in why
    assert "firmware outputs" not in why
    firmware = _built(bit_exact=False, mismatches=[{"sample": 21}])
    assert failure_reason(firmware).startswith("firmware outputs differ from the TFLite Micro "
                                               "reference on unicorn (1 of 25 inputs")


# --- the budget gate: one byte over fails, exactly at the limit passes ---------------------------

@pytest.mark.parametrize(("budgets", "name", "ok", "margin"), [
    (Budgets(flash=999), "flash", False, -1),  # one byte over
    (Budgets(flash=1000), "flash", True, 0),  # exactly at the limit
    (Budgets(ram=501), "ram", True, 1),
    (Budgets(ram=499), "ram", False, -1),
    (Budgets(min_accuracy=0.96), "min_accuracy", True, 0.0),  # a floor: exactly at it passes
    (Budgets(min_accuracy=0.961), "min_accuracy", False, pytest.approx(-0.001)),
    (Budgets(latency_ms=2.5), "latency_ms", True, 0.0),
    (Budgets(max_accuracy_drop=0.03), "max_accuracy_drop", True, 0.0),
])
def test_budget_gate_at_the_edge(budgets: Budgets, name: str, ok: bool, margin) -> None:
    entry = evaluate_budgets(budgets, _report())[name]
    assert entry["ok"] is ok and entry["margin"] == margin
    assert (entry["margin"] >= 0) is ok  # the margin's sign is the verdict


def test_margin_never_rounds_across_the_limit() -> None:
    from tinyprune.report.budgets import margin_of

    assert margin_of("latency_ms", 2.5, 2.5 + 1e-12) < 0
    assert margin_of("min_accuracy", 0.9, 0.9 - 1e-12) < 0
    assert margin_of("max_accuracy_drop", 0.03, 0.01) == 0.02  # not 0.019999999999999997


def test_old_entries_without_margin_get_one() -> None:
    from tinyprune.report.budgets import budget_margin, margin_text

    assert budget_margin("flash", {"limit": 10, "actual": 11, "ok": False}) == -1
    assert budget_margin("min_accuracy", {"limit": 0.5, "actual": 0.75, "ok": True}) == 0.25
    assert margin_text("flash", {"limit": 10, "actual": 11}) == "1 B over"
    assert margin_text("ram", {"limit": 10, "actual": 10}) == "exactly at the limit"
    assert margin_text("min_accuracy", {"limit": 0.5, "actual": 0.25}) == \
        "25.00% below the limit"
    assert margin_text("latency_ms", {"limit": 1.0, "actual": None}) == "not measured"


def test_terminal_shows_the_budget_table_and_why() -> None:
    from tinyprune.report import failure_reason, summary_lines

    report = _built()
    report["budgets"] = evaluate_budgets(Budgets(flash=0, ram=1), {**report, "accuracy": {}})
    report["ok"] = False
    lines = summary_lines(report)
    head = next(i for i, ln in enumerate(lines) if ln.startswith("budget "))
    assert lines[head].split() == ["budget", "limit", "actual", "margin", "result"]
    assert lines[head + 1].split() == ["flash", "0", "B", "1", "B", "-1", "B", "BROKEN"]
    assert lines[head + 2].split() == ["ram", "1", "B", "1", "B", "0", "ok"]
    assert failure_reason(report).startswith("budget broken: flash (limit 0, actual 1: 1 B over)")
