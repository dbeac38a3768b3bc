"""How the reports write numbers: one formatter per unit, signed changes, percentages.

Every renderer (terminal, Markdown, JUnit, HTML) formats through these, so a figure reads the
same everywhere. A missing figure (None) is always written ``-``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MISSING = "-"


def fmt_number(v: Any) -> str:
    """Budgets for messages: integers as they are, floats to 4 significant digits."""
    if isinstance(v, float):
        return f"{v:.4g}"
    return MISSING if v is None else str(v)


def fmt_int(v: Any) -> str:
    return MISSING if v is None else f"{int(v):,}"


def fmt_bytes(v: Any) -> str:
    return MISSING if v is None else f"{int(v):,} B"


def fmt_kib(v: Any) -> str:
    """Bytes in KiB for axes and headlines: 25,292 -> ``24.7 KiB``."""
    if v is None:
        return MISSING
    if abs(v) >= 1 << 20:
        return f"{v / (1 << 20):.2f} MiB"
    return f"{v / 1024:.1f} KiB" if abs(v) >= 1024 else f"{int(v)} B"


def fmt_ms(v: Any) -> str:
    return MISSING if v is None else f"{v:.3f} ms"


def fmt_percent(v: Any) -> str:
    """A fraction as a percentage: 0.9956 -> ``99.56%``."""
    return MISSING if v is None else f"{100 * v:.2f}%"


def fmt_points(v: Any) -> str:
    """A difference of fractions in percentage points: 0.0044 -> ``0.44 pt``."""
    return MISSING if v is None else f"{100 * v:.2f} pt"


def fmt_cycles(v: Any) -> str:
    return fmt_int(v)


# unit name -> formatter of a value in that unit
UNITS: dict[str, Callable[[Any], str]] = {
    "bytes": fmt_bytes,
    "ms": fmt_ms,
    "percent": fmt_percent,
    "points": fmt_points,
    "count": fmt_int,
}


def memory_label(memory: Any) -> str:
    """``flash 7 wait states, I-cache on, D-cache on`` from ``run.memory_model``."""
    if not isinstance(memory, dict) or not memory:
        return "no memory costs"
    ws = memory.get("flash_wait_states")
    caches = ", ".join(f"{name} {'on' if memory.get(key) else 'off'}"
                       for name, key in (("I-cache", "icache"), ("D-cache", "dcache")))
    return f"flash {ws} wait states, {caches}" if ws else "zero-wait memory"


def estimate_label(run: dict[str, Any]) -> str:
    """`` (estimate, m7 model: flash 7 wait states, ...)`` for a run's cycle figure; ``''`` when
    the cycles are not estimates; `` (estimate)`` for a report without ``cycle_model``."""
    if not run.get("cycles_are_estimate"):
        return ""
    model = run.get("cycle_model")
    if not model:
        return " (estimate)"
    if model not in ("m7", "m4", "m0plus", "table"):  # another emulator's own, e.g. Renode's
        return f" (estimate, {model})"
    return f" (estimate, {model} model: {memory_label(run.get('memory_model'))})"


def fmt_unit(v: Any, unit: str) -> str:
    return UNITS[unit](v)


def fmt_signed(v: Any, unit: str) -> str:
    """A change with its sign: ``+1,024 B``, ``-0.44 pt``, ``+0`` for no change."""
    if v is None:
        return MISSING
    if v == 0:
        return "0"
    text = fmt_unit(abs(v), unit)
    return ("+" if v > 0 else "-") + text


def fmt_change_pct(before: Any, after: Any) -> str:
    """The relative change ``(after - before) / before`` with its sign, or ``-``."""
    if before is None or after is None or before == 0:
        return MISSING
    pct = 100.0 * (after - before) / abs(before)
    return "0.0%" if round(pct, 1) == 0 else f"{pct:+.1f}%"


def share(part: Any, whole: Any) -> str:
    """``part`` as a percentage of ``whole``: ``2.4%``; ``-`` when either is missing."""
    if part is None or not whole:
        return MISSING
    return f"{100.0 * part / whole:.1f}%"


def fmt_compact(v: Any) -> str:
    """Axis labels: 600000 -> ``600k``, 1500000 -> ``1.5M``, 0.5 -> ``0.5``."""
    if v is None:
        return MISSING
    if abs(v) >= 1e6:
        return f"{v / 1e6:.4g}M"
    if abs(v) >= 1e3:
        return f"{v / 1e3:.4g}k"
    return f"{v:.4g}"
