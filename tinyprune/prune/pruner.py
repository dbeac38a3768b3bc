"""The pruner: analyze a model, score its groups, choose channels, remove them physically."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.errors import CheckFailed, UsageError
from tinyprune.prune.config import PruneConfig
from tinyprune.prune.data import Dataset, predict
from tinyprune.prune.functions import PRUNE_FUNCTIONS, Weights
from tinyprune.prune.gradients import gradient_stats, synflow_stats
from tinyprune.prune.graph import DependencyGraph, KeepMap
from tinyprune.prune.importance import ImportanceContext, get_importance
from tinyprune.prune.metrics import Figures, figures
from tinyprune.prune.rebuild import build_model, rebuild, sliced_layers
from tinyprune.prune.select import Constraints, select_global, select_local
from tinyprune.prune.trace import trace_model

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Plan:
    """Channels chosen for one model: kept indices per group and the sliced layers."""

    dep: DependencyGraph
    keep: dict[int, np.ndarray]
    sliced: dict[str, tuple[Weights, dict[str, Any]]]

    def figures(self) -> Figures:
        return figures(self.dep, self.keep, self.sliced)

    def group_sizes(self) -> dict[str, tuple[int, int]]:
        """Channels before and after per group name."""
        return {g.name: (g.size, len(self.keep.get(g.root, range(g.size))))
                for g in self.dep.groups}


class Pruner:
    """One pruning step at a time, under one configuration.

    Args:
        config: the stage's options.
        dataset: data for the data-driven criteria (None for data-free ones).
    """

    def __init__(self, config: PruneConfig, dataset: Dataset | None) -> None:
        self.config = config
        self.dataset = dataset
        self.importance = get_importance(config.criterion)
        self.rules = Constraints(config.round_to, config.min_channels, config.layer_ratios)

    def analyze(self, model: Any) -> DependencyGraph:
        """Trace ``model`` and build its dependency graph under the keep rules."""
        return DependencyGraph(
            trace_model(model), keep=self.config.keep, keep_first=self.config.keep_first,
            allow_inexact=self.config.allow_inexact,
        )

    def scores(self, model: Any, dep: DependencyGraph) -> dict[int, np.ndarray]:
        """Score every group of ``dep`` (``model`` is the model it was traced from)."""
        nodes = dep.graph.layer_nodes()
        ctx = ImportanceContext(
            weights={n.name: n.weights() for n in nodes},
            configs={n.name: n.config for n in nodes}, stats=self._stats(model, dep),
            aggregate=self.config.aggregate, seed=self.config.seed,
        )
        out: dict[int, np.ndarray] = {}
        for group in dep.groups:
            scores = np.asarray(self.importance(group, ctx), dtype=np.float64).reshape(-1)
            if scores.shape != (group.size,):
                raise UsageError(f"expected {group.size} scores for group {group.name}, "
                                 f"received: {scores.shape} from criterion {self.criterion}")
            out[group.root] = scores
        return out

    @property
    def criterion(self) -> str:
        c = self.config.criterion
        return c if isinstance(c, str) else type(c).__name__

    def _stats(self, model: Any, dep: DependencyGraph) -> dict[str, dict[str, Weights]]:
        needs = getattr(self.importance, "needs", "weights")
        if needs == "synflow":
            return synflow_stats(model, dep.graph)
        if needs != "gradients":
            return {}
        if self.dataset is None:
            raise UsageError(f"expected data for criterion {self.criterion!r} (it needs "
                             "gradients), received: data=None; pass --data or use l1")
        return gradient_stats(model, dep.graph, self.dataset, samples=self.config.samples,
                              batch_size=self.config.batch_size, progress=self.config.progress)

    def plan(self, dep: DependencyGraph, scores: Mapping[int, np.ndarray], ratio: float,
             reference: Mapping[str, int] | None = None) -> Plan:
        """Choose the channels to keep at ``ratio`` (relative to ``reference`` sizes if given)."""
        select = select_global if self.config.scope == "global" else select_local
        keep = select(dep.groups, scores, ratio, self.rules, reference)
        return Plan(dep, keep, sliced_layers(dep, keep))

    def apply(self, plan: Plan) -> Any:
        """Build the pruned model of ``plan`` and check it (see :func:`check_equivalence`)."""
        model = build_model(plan.dep.graph, plan.sliced)
        if self.config.verify and not self.config.allow_inexact:
            check_equivalence(plan.dep, plan.keep, model, seed=self.config.seed)
        return model


def masked_weights(dep: DependencyGraph, keep: KeepMap) -> dict[str, Weights]:
    """Weights of the original model with every read of a removed channel set to zero."""
    weights = {n.name: n.weights() for n in dep.graph.layer_nodes()}
    for group in dep.groups:
        kept = keep.get(group.root)
        if kept is None:
            continue
        removed = np.setdiff1d(np.arange(group.size), kept)
        for member in group.members:
            zero_in = PRUNE_FUNCTIONS[member.class_name].zero_in
            if member.role == "in" and zero_in is not None and len(removed):
                weights[member.layer] = zero_in(weights[member.layer],
                                                member.indices[removed].reshape(-1))
    return weights


def _random_inputs(dep: DependencyGraph, seed: int, batch: int = 4) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for ref in dep.graph.inputs:
        shape = dep.graph.nodes[ref.node].out_shapes[0]
        out.append(rng.standard_normal((batch, *(d or 1 for d in shape[1:]))).astype(np.float32))
    return out


def check_equivalence(dep: DependencyGraph, keep: KeepMap, pruned: Any, seed: int = 0) -> None:
    """Raise when ``pruned`` differs from the original whose removed channels contribute zero.

    Raises:
        CheckFailed: the outputs differ (an engine bug; the message names the model).
    """
    reference = rebuild(dep, {}, masked_weights(dep, keep))
    inputs = _random_inputs(dep, seed)
    feed = inputs[0] if len(inputs) == 1 else inputs
    expected = [np.asarray(o) for o in _as_list(reference(feed, training=False))]
    actual = [np.asarray(o) for o in _as_list(pruned(feed, training=False))]
    for e, a in zip(expected, actual, strict=True):
        scale = max(1.0, float(np.max(np.abs(e))))
        if e.shape != a.shape or not np.allclose(e, a, rtol=1e-3, atol=1e-4 * scale):
            raise CheckFailed(
                f"expected the pruned model '{dep.graph.name}' to equal the original with the "
                f"removed channels zeroed, received: max difference "
                f"{float(np.max(np.abs(e - a))) if e.shape == a.shape else e.shape}; "
                "this is a tinyprune bug, please report it with the model"
            )
    log.debug("equivalence check passed for %s", dep.graph.name)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


__all__ = ["Plan", "Pruner", "check_equivalence", "masked_weights", "predict"]
