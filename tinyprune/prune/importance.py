"""Importance criteria: ``Importance(group, ctx) -> scores`` (one score per group channel).

Each criterion scores the channels of every member of a group from the member's own
parameters (and, for the data-driven ones, gradient statistics gathered once per pruning step),
then the per-member scores are aggregated across the group with ``sum``, ``mean`` or ``max``.
Higher means more important; the pruner keeps the highest.

Criteria (``PruneConfig.criterion``):

- ``l1`` / ``l2``: filter magnitude (Li et al. 2017).
- ``bn_scale``: ``|gamma|`` of the BatchNormalization layers in the group (network slimming).
- ``taylor``: first-order Taylor, ``(sum w * g)^2`` per filter, ``g`` the mean gradient of the
  loss on the data (Molchanov et al. 2019).
- ``fisher``: second order, ``sum 1/2 w^2 F`` with ``F`` the diagonal empirical Fisher (mean of
  squared batch gradients), the optimal-brain-damage saliency.
- ``snip``: connection sensitivity ``sum |w * g|`` (Lee et al. 2019).
- ``synflow``: data-free ``sum |w * dR/dw|`` with ``R`` the sum of the outputs of the network with
  absolute weights on an all-ones input (Tanaka et al. 2020; BN and activations are kept, so it is
  an approximation of the linearised network).
- ``random``: a seeded baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.prune.functions import PRUNE_FUNCTIONS, Weights
from tinyprune.prune.graph import Group, Member

AGGREGATES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sum": lambda m: m.sum(axis=0),
    "mean": lambda m: m.mean(axis=0),
    "max": lambda m: m.max(axis=0),
}


@dataclass(frozen=True, eq=False)
class ImportanceContext:
    """What criteria may read.

    Attributes:
        weights: current weights per layer name (``get_weights()`` order).
        configs: layer configs per layer name.
        stats: gradient statistics per kind (``"grad"``, ``"grad_sq"``, ``"synflow"``), each a
            mapping layer name -> arrays shaped like the weights. Empty for data-free criteria.
        aggregate: ``"sum"``, ``"mean"`` or ``"max"`` across the group's members.
        seed: seed of the random criterion.
    """

    weights: Mapping[str, Weights]
    configs: Mapping[str, dict[str, Any]]
    stats: Mapping[str, Mapping[str, Weights]] = field(default_factory=dict)
    aggregate: str = "sum"
    seed: int = 0


class Importance(Protocol):
    """A criterion: one score per channel of ``group``; ``needs`` names the statistics used."""

    @property
    def needs(self) -> str:
        """``"weights"``, ``"gradients"`` or ``"synflow"`` (read-only, so frozen dataclasses
        implement it)."""

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray: ...


def channel_sum(member: Member, per_index: np.ndarray) -> np.ndarray:
    """Sum a per-axis-index score over every index where each group channel appears."""
    return per_index[member.indices].sum(axis=1)


def _aggregate(rows: list[np.ndarray], group: Group, how: str) -> np.ndarray:
    if not rows:
        return np.zeros(group.size)
    return AGGREGATES[how](np.stack(rows))


def _param_scores(
    group: Group, ctx: ImportanceContext, per_weight: Callable[[str, Weights], Weights],
    reduce: Callable[[np.ndarray], np.ndarray], include_inputs: bool = False,
) -> np.ndarray:
    """Score members from a per-weight quantity: ``reduce`` maps a (n, width) matrix to (width,)."""
    rows: list[np.ndarray] = []
    for member in group.members:
        functions = PRUNE_FUNCTIONS.get(member.class_name)
        if functions is None:
            continue
        extract = functions.out_params if member.role == "out" else functions.in_params
        if extract is None or (member.role == "in" and not include_inputs):
            continue
        matrix = extract(per_weight(member.layer, ctx.weights[member.layer]))
        rows.append(channel_sum(member, reduce(matrix)))
    return _aggregate(rows, group, ctx.aggregate)


@dataclass(frozen=True)
class Magnitude:
    """Lp norm of each filter (``p=1``: L1, ``p=2``: L2)."""

    p: int = 1
    include_inputs: bool = False
    needs: str = "weights"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        if self.p == 1:
            return _param_scores(group, ctx, lambda _, w: w, lambda m: np.abs(m).sum(axis=0),
                                 self.include_inputs)
        return _param_scores(group, ctx, lambda _, w: w,
                             lambda m: np.sqrt((m.astype(np.float64) ** 2).sum(axis=0)),
                             self.include_inputs)


@dataclass(frozen=True)
class BNScale:
    """``|gamma|`` of the group's BatchNormalization layers (network slimming)."""

    needs: str = "weights"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        rows: list[np.ndarray] = []
        for member in group.members:
            functions = PRUNE_FUNCTIONS.get(member.class_name)
            if functions is None or functions.scale is None:
                continue
            index = functions.scale(ctx.configs[member.layer])
            if index is not None:
                rows.append(channel_sum(member, np.abs(ctx.weights[member.layer][index])))
        return _aggregate(rows, group, ctx.aggregate)


def _product(ctx: ImportanceContext, kind: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray]
             ) -> Callable[[str, Weights], Weights]:
    def per_weight(layer: str, weights: Weights) -> Weights:
        grads = ctx.stats[kind][layer]
        return [fn(w, g) for w, g in zip(weights, grads, strict=True)]

    return per_weight


@dataclass(frozen=True)
class Taylor:
    """First-order Taylor: ``(sum over the filter of w * g)^2``."""

    needs: str = "gradients"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        return _param_scores(group, ctx, _product(ctx, "grad", lambda w, g: w * g),
                             lambda m: m.sum(axis=0) ** 2)


@dataclass(frozen=True)
class Fisher:
    """Second order (diagonal empirical Fisher, OBD saliency): ``sum 1/2 w^2 F``."""

    needs: str = "gradients"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        return _param_scores(group, ctx, _product(ctx, "grad_sq", lambda w, f: 0.5 * w * w * f),
                             lambda m: m.sum(axis=0))


@dataclass(frozen=True)
class Snip:
    """Connection sensitivity: ``sum |w * g|``."""

    needs: str = "gradients"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        return _param_scores(group, ctx, _product(ctx, "grad", lambda w, g: np.abs(w * g)),
                             lambda m: m.sum(axis=0))


@dataclass(frozen=True)
class SynFlow:
    """Data-free synaptic flow: ``sum |w * dR/dw|`` on the absolute-weight network."""

    needs: str = "synflow"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        return _param_scores(group, ctx, _product(ctx, "synflow", lambda w, g: np.abs(w * g)),
                             lambda m: m.sum(axis=0))


@dataclass(frozen=True)
class Random:
    """Uniform random scores (seeded by the context and the group's name)."""

    needs: str = "weights"

    def __call__(self, group: Group, ctx: ImportanceContext) -> np.ndarray:
        salt = sum(ord(ch) for ch in group.name)
        return np.random.default_rng((ctx.seed, salt)).random(group.size)


CRITERIA: dict[str, Callable[[], Importance]] = {
    "l1": lambda: Magnitude(p=1),
    "l2": lambda: Magnitude(p=2),
    "bn_scale": BNScale,
    "taylor": Taylor,
    "fisher": Fisher,
    "obd": Fisher,
    "snip": Snip,
    "synflow": SynFlow,
    "random": Random,
}


def get_importance(criterion: str | Importance) -> Importance:
    """The criterion called ``criterion`` (or ``criterion`` itself when it is a callable)."""
    if not isinstance(criterion, str):
        return criterion
    factory = CRITERIA.get(criterion)
    if factory is None:
        raise UsageError(
            f"expected criterion one of {sorted(CRITERIA)}, received: criterion={criterion!r}"
        )
    return factory()
