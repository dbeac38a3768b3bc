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
