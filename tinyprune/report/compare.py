"""The change of a build against a baseline report (``--baseline OLD/report.json``).

Both sides are report dicts; either may lack a figure (an old schema, QEMU without cycles, a
build without data): the change is then unknown and written ``-``, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyprune.report.figures import fmt_change_pct, fmt_signed, fmt_unit


@dataclass(frozen=True)
class Change:
    """One figure before and after. ``better`` says which way is an improvement."""

    title: str
    unit: str
    before: Any
    after: Any
    better: str = "lower"  # or "higher"

    @property
    def delta(self) -> Any:
        if self.before is None or self.after is None:
            return None
        d = self.after - self.before
        return round(d, 9) if isinstance(d, float) else d

    @property
    def delta_text(self) -> str:
        """``+1,024 B (+4.2%)``; accuracy changes in points, without a percentage."""
        d = self.delta
        text = fmt_signed(d, "points" if self.unit == "percent" else self.unit)
        if d is None or d == 0 or self.unit == "percent":
            return text
        return f"{text} ({fmt_change_pct(self.before, self.after)})"

    @property
    def verdict(self) -> str:
        """``better``, ``worse``, ``same`` or ``""`` (unknown)."""
        d = self.delta
        if d is None:
            return ""
        if d == 0:
            return "same"
        return "better" if (d < 0) == (self.better == "lower") else "worse"

    def before_text(self) -> str:
        return fmt_unit(self.before, self.unit)

    def after_text(self) -> str:
        return fmt_unit(self.after, self.unit)


# (title, section, key, unit, better)
FIGURES: tuple[tuple[str, str, str, str, str], ...] = (
    ("flash", "firmware", "flash_used_bytes", "bytes", "lower"),
    ("RAM", "firmware", "ram_used_bytes", "bytes", "lower"),
    ("arena", "firmware", "arena_bytes", "bytes", "lower"),
    ("cycles per inference", "run", "cycles_per_inference", "count", "lower"),
    ("latency at clock", "run", "latency_ms_at_clock", "ms", "lower"),
    ("instructions per inference", "run", "instructions_per_inference", "count", "lower"),
    ("accuracy (firmware)", "accuracy", "firmware", "percent", "higher"),
    ("parameters", "model", "params_after", "count", "lower"),
    ("MACs", "model", "macs_after", "count", "lower"),
)


def _get(report: dict[str, Any], section: str, key: str) -> Any:
    value = (report.get(section) or {}).get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def figure_changes(report: dict[str, Any], baseline: dict[str, Any]) -> list[Change]:
    """The headline figures; a figure neither side has is left out."""
    out = []
    for title, section, key, unit, better in FIGURES:
        change = Change(title, unit, _get(baseline, section, key), _get(report, section, key),
                        better)
        if change.before is not None or change.after is not None:
            out.append(change)
    return out


def _layer_keys(layers: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """Layers matched by name and op; a repeated pair is told apart by its occurrence."""
    seen: dict[tuple[str, str], int] = {}
    keys = []
    for layer in layers:
        pair = (str(layer.get("name")), str(layer.get("op")))
        seen[pair] = seen.get(pair, 0) + 1
        keys.append((*pair, seen[pair]))
    return keys


@dataclass(frozen=True)
class LayerChange:
    """A layer's cycles before and after; ``before``/``after`` None when a side lacks it."""

    name: str
    op: str
    cycles: Change
    status: str  # "both", "added" (only in this build) or "removed" (only in the baseline)


def layer_changes(report: dict[str, Any], baseline: dict[str, Any]) -> list[LayerChange]:
    """Per-layer cycles, this build's layers in order, then the baseline's removed ones."""
    new, old = report.get("layers") or [], baseline.get("layers") or []
    old_by_key = dict(zip(_layer_keys(old), old, strict=True))
    out = []
    new_keys = _layer_keys(new)
    for key, layer in zip(new_keys, new, strict=True):
        before = old_by_key.get(key)
        out.append(LayerChange(key[0], key[1], Change(
            "cycles", "count", None if before is None else before.get("cycles"),
            layer.get("cycles")), "both" if before is not None else "added"))
    for key, layer in old_by_key.items():
        if key not in set(new_keys):
            out.append(LayerChange(key[0], key[1], Change("cycles", "count", layer.get("cycles"),
                                                          None), "removed"))
    return out


def baseline_lines(report: dict[str, Any], baseline: dict[str, Any]) -> list[str]:
    """The terminal's lines: each headline figure that changed, with its sign and percentage."""
    changes = [c for c in figure_changes(report, baseline) if c.delta not in (None, 0)]
    if not changes:
        return ["baseline  no figure changed"]
    return [f"baseline  {c.title}: {c.before_text()} -> {c.after_text()} ({c.delta_text}, "
            f"{c.verdict})" for c in changes]
