"""Per-layer sparsity from a global target: how many units each layer loses.

The target is the fraction of zero weights over the kernels of the sparse layers that have no
per-layer override (overridden layers are set to their own value and left out of the target).
Methods (``SparsifyConfig.allocation``):

- ``uniform``: every layer at the target.
- ``erk``: Erdős–Rényi-Kernel (Evci et al. 2020, RigL): density proportional to
  ``sum(kernel dims) / prod(kernel dims)``, so large layers get sparser than small ones.
- ``global``: one ranking of the units of every layer by score (magnitude pruning as in
  Han et al. 2015 and the lottery-ticket papers); layers find their own sparsity.

Every method respects a per-layer ceiling (``max_layer_sparsity``) so that no layer collapses,
and the pattern's own limit (dense tails). Where a ceiling binds, ``uniform`` and ``erk`` give
the other layers more (one scale factor, found by bisection, under the bounds), and ``global``
skips the capped layer's units. A target the bounds cannot reach is a ``UsageError``.
N:M patterns have one sparsity per layer (``1 - N/M``): every method is ``uniform`` for them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from tinyprune.errors import UsageError

ALLOCATIONS = ("uniform", "erk", "global")


@dataclass(frozen=True)
class Budget:
    """One sparse layer as the allocation sees it.

    Attributes:
        name: layer name.
        kernel_shape: Keras kernel shape (for ERK).
        weights: kernel weights.
        units: removable units under the pattern.
        per_unit: weights zeroed per unit.
    """

    name: str
    kernel_shape: tuple[int, ...]
    weights: int
    units: int
    per_unit: int

    @property
    def max_sparsity(self) -> float:
        return self.units * self.per_unit / self.weights

    @property
    def erk(self) -> float:
        return sum(self.kernel_shape) / math.prod(self.kernel_shape)

    def units_for(self, sparsity: float) -> int:
        return min(self.units, math.floor(sparsity * self.weights / self.per_unit + 0.5))

    def cap(self, ceiling: float) -> int:
        return min(self.units, math.floor(ceiling * self.weights / self.per_unit + 1e-9))


@dataclass(frozen=True)
class Request:
    """What to allocate.

    Attributes:
        sparsity: the target over the layers without an override.
        method: one of :data:`ALLOCATIONS`.
        ceiling: no layer above this sparsity.
        overrides: sparsity per layer name.
        full_sparsity: the pattern's fixed sparsity (N:M), else None.
    """

    sparsity: float
    method: str = "uniform"
    ceiling: float = 0.95
    overrides: Mapping[str, float] | None = None
    full_sparsity: float | None = None


def allocate(budgets: tuple[Budget, ...], request: Request,
             scores: Mapping[str, np.ndarray] | None = None) -> dict[str, int]:
    """Units to remove per layer name.

    Args:
        budgets: the sparse layers.
        request: target, method, ceiling, overrides.
        scores: unit scores per layer (needed by ``global``).

    Raises:
        UsageError: the target cannot be reached under the ceiling and the pattern's limits.
    """
    overrides = dict(request.overrides or {})
    if request.full_sparsity is not None:  # N:M: a fraction of each layer's groups
        full = request.full_sparsity
        return {b.name: round(b.units * min(overrides.get(b.name, request.sparsity) / full, 1.0))
                for b in budgets}
    out = {b.name: b.units_for(overrides[b.name]) for b in budgets if b.name in overrides}
    free = tuple(b for b in budgets if b.name not in overrides)
    if not free:
        return out
    _check_reachable(free, request)
    if request.method == "global":
        out.update(_global(free, request, scores or {}))
    else:
        out.update(_scaled(free, request, _ratio(request.method)))
    return out


def _ratio(method: str) -> Callable[[Budget], float]:
    return (lambda b: b.erk) if method == "erk" else (lambda b: 1.0)


def _check_reachable(free: tuple[Budget, ...], request: Request) -> None:
    total = sum(b.weights for b in free)
    reachable = sum(b.cap(request.ceiling) * b.per_unit for b in free) / total
    slack = sum(b.per_unit for b in free) / total  # whole units: one short per layer is fine
    if request.sparsity > reachable + slack + 1e-9:
        raise UsageError(
            f"expected sparsity at most {reachable:.4f} (max_layer_sparsity "
            f"{request.ceiling:g}, dense tails of the block), received: "
            f"sparsity={request.sparsity:g}; lower sparsity or raise max_layer_sparsity")


def _scaled(free: tuple[Budget, ...], request: Request,
            ratio: Callable[[Budget], float]) -> dict[str, int]:
    """One density scale ``eps`` with ``density = clip(eps * ratio, 1 - cap, 1)``, bisected so
    the kept weights match the target."""
    total = sum(b.weights for b in free)
    lows = [1.0 - b.cap(request.ceiling) * b.per_unit / b.weights for b in free]

    def kept(eps: float) -> float:
        return sum(b.weights * min(max(eps * ratio(b), lo), 1.0)
                   for b, lo in zip(free, lows, strict=True))

    want = (1.0 - request.sparsity) * total
    lo_eps, hi_eps = 0.0, max(1.0 / ratio(b) for b in free)
    for _ in range(100):
        mid = 0.5 * (lo_eps + hi_eps)
        lo_eps, hi_eps = (mid, hi_eps) if kept(mid) < want else (lo_eps, mid)
    eps = 0.5 * (lo_eps + hi_eps)
    return {b.name: min(b.cap(request.ceiling),
                        b.units_for(1.0 - min(max(eps * ratio(b), lo), 1.0)))
            for b, lo in zip(free, lows, strict=True)}


def _global(free: tuple[Budget, ...], request: Request,
            scores: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Remove units in ascending score order across layers, skipping capped layers."""
    missing = [b.name for b in free if b.name not in scores]
    if missing:
        raise ValueError(f"global allocation needs unit scores, missing for {missing}")
    names = np.concatenate([np.full(b.units, i) for i, b in enumerate(free)])
    values = np.concatenate([np.asarray(scores[b.name], np.float64) for b in free])
    order = np.lexsort((names, values))
    target = request.sparsity * sum(b.weights for b in free)
    caps = [b.cap(request.ceiling) for b in free]
    taken = [0] * len(free)
    removed = 0.0
    for i in names[order]:
        if removed + free[i].per_unit / 2 > target:
            break
        if taken[i] < caps[i]:
            taken[i] += 1
            removed += free[i].per_unit
    return {b.name: taken[i] for i, b in enumerate(free)}
