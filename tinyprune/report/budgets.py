"""The budget gate: each budget set in the options or ``tinyprune.toml`` against the report.

A budget entry is ``{limit, actual, ok, margin}``. ``margin`` is how far the figure is inside its
limit in the budget's unit: ``limit - actual`` for a ceiling (flash, RAM, latency, accuracy drop),
``actual - limit`` for a floor (minimum accuracy). So a margin of 0 is exactly at the limit and
passes, -1 is one unit (one byte) over and fails; a figure that could not be measured fails its
budget with ``actual`` and ``margin`` null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyprune.config import Budgets
from tinyprune.report.figures import fmt_unit


@dataclass(frozen=True)
class BudgetRule:
    """What a budget limits: the report figure, ceiling or floor, the unit, a title."""

    title: str
    kind: str  # "max": the figure must not exceed the limit; "min": not fall below it
    unit: str  # a unit of tinyprune.report.figures.UNITS


BUDGET_RULES: dict[str, BudgetRule] = {
    "flash": BudgetRule("flash used", "max", "bytes"),
    "ram": BudgetRule("RAM used", "max", "bytes"),
    "latency_ms": BudgetRule("latency at the board clock", "max", "ms"),
    "min_accuracy": BudgetRule("firmware accuracy", "min", "percent"),
    "max_accuracy_drop": BudgetRule("accuracy drop from the model as given", "max", "points"),
}


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    """The measured figure of each budget (None when it was not measured)."""
    fw, run, acc = report["firmware"], report["run"], report["accuracy"]
    drop = None
    baseline = acc.get("float_original", acc.get("float"))  # the model as given, before pruning
    if baseline is not None and acc.get("firmware") is not None:
        drop = round(baseline - acc["firmware"], 6)
    return {"flash": fw.get("flash_used_bytes"), "ram": fw.get("ram_used_bytes"),
            "latency_ms": run.get("latency_ms_at_clock"), "min_accuracy": acc.get("firmware"),
            "max_accuracy_drop": drop}


def margin_of(name: str, limit: Any, actual: Any) -> Any:
    """How far ``actual`` is inside ``limit`` (negative: broken by that much); None unmeasured."""
    if actual is None or limit is None:
        return None
    rule = BUDGET_RULES.get(name)
    margin = actual - limit if rule is not None and rule.kind == "min" else limit - actual
    if not isinstance(margin, float):
        return margin
    rounded = round(margin, 9)  # 0.030000000000000027 -> 0.03, but never across zero
    return rounded if (rounded < 0) == (margin < 0) and (rounded == 0) == (margin == 0) else margin


def evaluate_budgets(budgets: Budgets, report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each set budget -> ``{limit, actual, ok, margin}``. An unmeasured figure fails it."""
    figures = _figures(report)
    out = {}
    for name, rule in BUDGET_RULES.items():
        limit = getattr(budgets, name)
        if limit is None:
            continue
        actual = figures[name]
        ok = actual is not None and (actual <= limit if rule.kind == "max" else actual >= limit)
        out[name] = {"limit": limit, "actual": actual, "ok": bool(ok),
                     "margin": margin_of(name, limit, actual)}
    return out


def budget_margin(name: str, entry: dict[str, Any]) -> Any:
    """The entry's margin; computed for reports written before margins were recorded."""
    if "margin" in entry:
        return entry["margin"]
    return margin_of(name, entry.get("limit"), entry.get("actual"))


def budget_unit(name: str) -> str:
    rule = BUDGET_RULES.get(name)
    return rule.unit if rule is not None else "count"


def budget_title(name: str) -> str:
    rule = BUDGET_RULES.get(name)
    return rule.title if rule is not None else name


def margin_text(name: str, entry: dict[str, Any]) -> str:
    """``708 B to spare``, ``exactly at the limit``, ``1 B over``; ``not measured``."""
    margin = budget_margin(name, entry)
    if margin is None:
        return "not measured"
    unit = budget_unit(name)
    if margin == 0:
        return "exactly at the limit"
    if margin > 0:
        return f"{fmt_unit(margin, unit)} to spare"
    rule = BUDGET_RULES.get(name)
    below = rule is not None and rule.kind == "min"
    return f"{fmt_unit(-margin, unit)} {'below the limit' if below else 'over'}"
