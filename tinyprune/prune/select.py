"""Choosing the channels to keep: scope (per-layer ratio or global ranking) and constraints."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tinyprune.prune.graph import Group


@dataclass(frozen=True)
class Constraints:
    """Rules every group obeys.

    Attributes:
        round_to: kept channel counts are rounded to a multiple of this (nearest, at least one
            multiple); a group smaller than one multiple is left whole.
        min_channels: no group keeps fewer channels.
        layer_ratios: ratio per owner layer name, overriding the global ratio (local scope).
    """

    round_to: int = 4
    min_channels: int = 1
    layer_ratios: Mapping[str, float] | None = None


def round_keep(n: float, size: int, round_to: int, minimum: int) -> int:
    """Kept channel count: ``n`` rounded to the nearest multiple of ``round_to`` (half up), at
    least one multiple and at least ``minimum``, at most ``size``."""
    count = max(float(n), float(minimum), 1.0)
    count = max(round_to, math.floor(count / round_to + 0.5) * round_to)
    if count < minimum:
        count = math.ceil(minimum / round_to) * round_to
    return int(min(size, count))


def top(scores: np.ndarray, count: int) -> np.ndarray:
    """Indices of the ``count`` highest scores (ties keep the lower index), sorted."""
    order = np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))
    return np.sort(order[:count]).astype(np.int64)


def _ratio_for(group: Group, ratio: float, rules: Constraints) -> float:
    for owner in group.owners:
        if rules.layer_ratios and owner in rules.layer_ratios:
            return float(rules.layer_ratios[owner])
    return ratio


def select_local(
    groups: Sequence[Group], scores: Mapping[int, np.ndarray], ratio: float,
    rules: Constraints, reference: Mapping[str, int] | None = None,
) -> dict[int, np.ndarray]:
    """Keep ``1 - ratio`` of each group's channels (of its ``reference`` size when given).

    Args:
        groups: the groups to cut.
        scores: scores per group root.
        ratio: fraction of channels removed.
        rules: rounding, minimum and per-layer ratios.
        reference: original channel count per group name (iterative schedules cut relative to
            the model before the first step).
    """
    keep: dict[int, np.ndarray] = {}
    for group in groups:
        base = (reference or {}).get(group.name, group.size)
        target = base * (1.0 - _ratio_for(group, ratio, rules))
        count = round_keep(target, group.size, rules.round_to, rules.min_channels)
        keep[group.root] = top(scores[group.root], count)
    return keep


def select_global(
    groups: Sequence[Group], scores: Mapping[int, np.ndarray], ratio: float,
    rules: Constraints, reference: Mapping[str, int] | None = None,
) -> dict[int, np.ndarray]:
    """Rank every channel of every group together and remove the lowest ``ratio`` of them.

    Scores are divided by their group's mean first, so groups of different scales compare.
    Channels are removed lowest first, skipping a group once it is down to its floor (the
    minimum, rounded), so the floors do not eat the global budget; counts are rounded last.
    """
    if not groups:
        return {}
    total = sum((reference or {}).get(g.name, g.size) for g in groups)
    remaining = {g.root: g.size for g in groups}
    cut = round(sum(remaining.values()) - total * (1.0 - ratio))
    pooled = sorted(
        (float(s), g.root)
        for g in groups
        for s in scores[g.root] / (np.mean(scores[g.root]) + 1e-12)
    )
    floors = {g.root: round_keep(0, g.size, rules.round_to, rules.min_channels) for g in groups}
    for _, root in pooled:
        if cut <= 0:
            break
        if remaining[root] > floors[root]:
            remaining[root] -= 1
            cut -= 1
    return {
        g.root: top(scores[g.root], round_keep(remaining[g.root], g.size, rules.round_to,
                                               rules.min_channels))
        for g in groups
    }
