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
    assert out == {"flash": {"limit": 1000, "actual": 1000, "ok": True},
                   "ram": {"limit": 499, "actual": 500, "ok": False}}


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
    assert out["latency_ms"] == {"limit": 10.0, "actual": None, "ok": False}
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
