"""Block criteria: a per-weight saliency (>= 0) that each pattern sums over its units.

``Criterion(layer, ctx) -> saliency`` returns an array shaped like the layer's Keras kernel;
:meth:`~tinyprune.sparsify.patterns.Pattern.unit_scores` turns it into one score per block
(the sum over the block) or per N:M group (the sum of the ``M-N`` smallest). Lower scores are
removed first.

Criteria (``SparsifyConfig.criterion``):

- ``l1``: ``|w|``, the block's L1 norm.
- ``l2``: ``w^2``; the block's sum of squares ranks like its L2 norm.
- ``lookahead``: ``(w * ||W_prev[i]|| * ||W_next[o]||)^2`` (Park et al. 2020, "Lookahead: a
  far-sighted alternative of magnitude-based pruning"): the magnitude scaled by the norm of the
  weights that produce input channel ``i`` and of those that read output channel ``o``, found
  through the structural engine's channel groups (so residual adds, depthwise layers and
  Flatten are followed), BatchNormalization scales folded in (their LAP-BN); a missing
  neighbour (first or last layer) counts as 1.
- ``snip``: ``|w * dL/dw|``, connection sensitivity on data (Lee et al. 2019), for pruning
  before training.
- ``synflow``: ``|w * dR/dw|`` on the absolute-weight network with all-ones input, data-free
  (Tanaka et al. 2020); use ``OneShot(steps=...)`` for its iterative form.
- ``random``: a seeded baseline.

The gradient statistics are the structural engine's (:mod:`tinyprune.prune.gradients`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.prune.functions import PRUNE_FUNCTIONS
from tinyprune.prune.graph import DependencyGraph, Group
from tinyprune.prune.trace import FlatGraph, TensorRef
from tinyprune.sparsify.layers import SparseLayer, canonical, from_canonical


@dataclass(frozen=True, eq=False)
class ScoreContext:
    """What criteria may read.

    Attributes:
        kernels: current kernel per sparse layer name (Keras layout).
        stats: gradient statistics per kind (``"grad"``, ``"synflow"``), layer name -> arrays
            shaped like the layer's weights (see :mod:`tinyprune.prune.gradients`).
        neighbours: per layer name, the norms ``(of the producers of each input channel, of the
            consumers of each output channel)``, for ``lookahead``.
        seed: seed of the random criterion.
    """

    kernels: Mapping[str, np.ndarray]
    stats: Mapping[str, Mapping[str, list[np.ndarray]]] = field(default_factory=dict)
    neighbours: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    seed: int = 0


class Criterion(Protocol):
    """A criterion: per-weight saliency of one layer's kernel; ``needs`` names its inputs."""

    @property
    def needs(self) -> str:
        """``"weights"``, ``"gradients"``, ``"synflow"`` or ``"neighbours"``."""

    def __call__(self, layer: SparseLayer, ctx: ScoreContext) -> np.ndarray: ...


@dataclass(frozen=True)
class Magnitude:
    """``|w|^p``: ``p=1`` L1, ``p=2`` squared (L2 ranking)."""

    p: int = 1
    needs: str = "weights"

    def __call__(self, layer: SparseLayer, ctx: ScoreContext) -> np.ndarray:
        return np.abs(ctx.kernels[layer.name].astype(np.float64)) ** self.p


@dataclass(frozen=True)
class Lookahead:
    """Lookahead distortion ``(w * ||W_prev[i]|| * ||W_next[o]||)^2`` (Park et al. 2020): a
    block's score is the distortion its removal causes across the neighbouring layers."""

    needs: str = "neighbours"

    def __call__(self, layer: SparseLayer, ctx: ScoreContext) -> np.ndarray:
        w = canonical(ctx.kernels[layer.name], layer.class_name).astype(np.float64)
        out, _, in_ = w.shape
        prev, nxt = ctx.neighbours.get(layer.name, (np.ones(in_), np.ones(out)))
        lap = (w * nxt[:, None, None] * prev[None, None, :]) ** 2
        return from_canonical(lap, layer.kernel_shape, layer.class_name)


def _gradient_product(kind: str) -> Callable[[SparseLayer, ScoreContext], np.ndarray]:
    def score(layer: SparseLayer, ctx: ScoreContext) -> np.ndarray:
        g = ctx.stats[kind][layer.name][layer.index]
        return np.abs(ctx.kernels[layer.name].astype(np.float64) * g)

    return score


@dataclass(frozen=True)
class Snip:
    """Connection sensitivity ``|w * dL/dw|`` (mean gradient over the data samples)."""

    needs: str = "gradients"

    def __call__(self, layer: SparseLayer, ctx: ScoreContext) -> np.ndarray:
        return _gradient_product("grad")(layer, ctx)


@dataclass(frozen=True)
class SynFlow:
    """Synaptic flow ``|w * dR/dw|`` (data-free)."""

    needs: str = "synflow"

    def __call__(self, layer: SparseLayer, ctx: ScoreContext) -> np.ndarray:
        return _gradient_product("synflow")(layer, ctx)


@dataclass(frozen=True)
class Random:
    """Uniform random saliency, seeded by the context and the layer name."""

    needs: str = "weights"

    def __call__(self, layer: SparseLayer, ctx: ScoreContext) -> np.ndarray:
        salt = sum(ord(ch) for ch in layer.name)
        return np.random.default_rng((ctx.seed, salt)).random(layer.kernel_shape)


CRITERIA: dict[str, Callable[[], Criterion]] = {
    "l1": lambda: Magnitude(1),
    "l2": lambda: Magnitude(2),
    "lookahead": Lookahead,
    "snip": Snip,
    "synflow": SynFlow,
    "random": Random,
}


def get_criterion(criterion: str | Criterion, option: str = "criterion") -> Criterion:
    """The criterion called ``criterion`` (a callable is returned as is)."""
    if not isinstance(criterion, str):
        return criterion
    factory = CRITERIA.get(criterion)
    if factory is None:
        raise UsageError(f"expected {option} one of {', '.join(CRITERIA)}, "
                         f"received: {option}={criterion!r}")
    return factory()


# ---- lookahead neighbours through the structural engine's channel groups --------------------

def bn_factors(graph: FlatGraph) -> dict[str, np.ndarray]:
    """Per layer whose output only a BatchNormalization reads: that BN's per-channel scale
    ``gamma / sqrt(moving_variance + epsilon)`` (what folding multiplies the layer's filters by)."""
    consumers = graph.consumers()
    out: dict[str, np.ndarray] = {}
    for node in graph.layer_nodes():
        readers = consumers.get(TensorRef(node.index, 0), [])
        if len(readers) != 1 or readers[0].class_name != "BatchNormalization":
            continue
        bn = readers[0]
        weights, config = bn.layer.get_weights(), bn.config
        if config.get("axis", -1) not in (-1, len(bn.in_shapes[0]) - 1, [-1]):
            continue
        gamma = weights[0] if config.get("scale", True) else np.ones_like(weights[-1])
        out[node.name] = np.asarray(gamma, np.float64) / np.sqrt(
            np.asarray(weights[-1], np.float64) + float(config.get("epsilon", 1e-3)))
    return out


def _channel_sq(group: Group, weights: Mapping[str, list[np.ndarray]], role: str,
                factors: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per group channel, the sum of squares of the members' parameters in ``role`` (producers
    scaled by the BatchNormalization that follows them)."""
    total = np.zeros(group.size)
    for member in group.members:
        functions = PRUNE_FUNCTIONS.get(member.class_name)
        if member.role != role or functions is None or member.layer not in weights:
            continue
        extract = functions.out_params if role == "out" else functions.in_params
        if extract is None:
            continue
        per_index = (extract(weights[member.layer]).astype(np.float64) ** 2).sum(axis=0)
        if role == "out" and member.layer in factors:
            per_index = per_index * factors[member.layer] ** 2
        total += per_index[member.indices].sum(axis=1)
    return total


def neighbour_norms(dep: DependencyGraph, layers: tuple[SparseLayer, ...]
                    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each sparse layer, per input channel the norm of what produces it and per output
    channel the norm of what reads it (1 where the graph has none: model inputs and outputs).

    As in the authors' LAP-BN: a BatchNormalization after a layer scales that layer's filters
    (the producers' norms, and the layer's own next-side norms) by ``gamma / sigma``.
    """
    weights = {n.name: n.layer.get_weights() for n in dep.graph.layer_nodes()}
    factors = bn_factors(dep.graph)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for layer in layers:
        n_out, _, n_in = layer.shape
        prev_sq, next_sq = np.zeros(n_in), np.zeros(n_out)
        separable = layer.class_name.startswith("Separable")
        for group in dep.groups:
            for member in group.members:
                if member.layer != layer.name or member.class_name != layer.class_name:
                    continue
                if member.role == "in" and not separable:
                    _spread(prev_sq, member.indices, _channel_sq(group, weights, "out", factors))
                elif member.role == "out":
                    _spread(next_sq, member.indices, _channel_sq(group, weights, "in", factors))
        if separable:  # the pointwise half reads the layer's own depthwise half
            depthwise = weights[layer.name][0].astype(np.float64)
            prev_sq = (depthwise.reshape(-1, n_in) ** 2).sum(axis=0)
        if layer.name in factors and next_sq.any():
            next_sq = next_sq * factors[layer.name] ** 2
        out[layer.name] = (_norm(prev_sq), _norm(next_sq))
    return out


def _spread(target: np.ndarray, indices: np.ndarray, per_channel: np.ndarray) -> None:
    if indices.size and int(indices.max()) < target.size:
        target[indices] += per_channel[:, None]


def _norm(sq: np.ndarray) -> np.ndarray:
    return np.where(sq > 0, np.sqrt(sq), 1.0)
