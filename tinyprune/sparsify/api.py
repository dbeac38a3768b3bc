"""The sparsify stage's entry point: ``sparsify(model, config, data) -> SparsifyResult``."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tinyprune.errors import CheckFailed
from tinyprune.models._backend import flavor_of
from tinyprune.prune.data import accuracy, as_dataset
from tinyprune.prune.graph import DependencyGraph
from tinyprune.prune.rebuild import rebuild
from tinyprune.prune.result import Accuracy, PruneResult
from tinyprune.prune.trace import trace_model
from tinyprune.sparsify.config import SparsifyConfig
from tinyprune.sparsify.engine import Sparsifier
from tinyprune.sparsify.masks import Masks
from tinyprune.sparsify.result import SparsifyResult, layer_sparsity
from tinyprune.sparsify.schedules import run

log = logging.getLogger(__name__)


def copy_model(model: Any) -> Any:
    """A copy of ``model`` in its own flavor (nested models flattened), weights included."""
    return rebuild(DependencyGraph(trace_model(model)), {})


def sparsify(model: Any, config: SparsifyConfig | None = None, data: Any = None
             ) -> SparsifyResult:
    """Zero blocks (or N:M groups, or single weights) of a Keras model's kernels.

    Args:
        model: a built Sequential or functional model, Keras 3 or tf_keras, or the
            :class:`~tinyprune.prune.PruneResult` of structural pruning (its model is used).
            It is not modified.
        config: pattern, target, criterion, schedule, allocation, fine-tuning (default:
            ``SparsifyConfig()``, 75% in ``1x4`` blocks by L1, one-shot, no fine-tuning).
        data: training and test data in any form :func:`tinyprune.prune.data.as_dataset`
            accepts, or None (data-free criteria, no fine-tuning, no accuracy).

    Returns:
        The sparse model in the same flavor (removed weights exactly zero), its masks and the
        per-layer figures.

    Raises:
        UsageError: not a model with a layer graph, no layer can take the pattern, a bad
            per-layer override, an unreachable target, or a criterion or schedule that needs
            data without data.
    """
    config = config or SparsifyConfig()
    if isinstance(model, PruneResult):
        model = model.model
    dataset = as_dataset(data)
    work = copy_model(model)
    sp = Sparsifier(work, config, dataset)
    before = accuracy(model, dataset)
    outcome = run(sp, config.schedule)
    kernels = {x.name: x.kernel() for x in sp.layers}
    _check_zero(outcome.masks, kernels)
    result = SparsifyResult(
        model=work, flavor=flavor_of(work), pattern=sp.pattern.name,
        criterion=config.criterion_name, schedule=config.schedule_name,
        allocation=config.allocation if sp.pattern.full_sparsity is None else "uniform",
        target=config.target, sparsity=outcome.masks.sparsity,
        layers=layer_sparsity(outcome.masks, kernels, sp.overrides), skipped=sp.skipped,
        masks=outcome.masks, history=outcome.history,
        accuracy=Accuracy(before, outcome.accuracy_masked, outcome.accuracy_trained),
    )
    log.info("sparsified %s: %s %.3f over %d weights (accuracy %s -> %s)", sp.graph.name,
             result.pattern, result.sparsity, result.weights, before,
             outcome.accuracy_trained if outcome.accuracy_trained is not None
             else outcome.accuracy_masked)
    return result


def _check_zero(masks: Masks, kernels: dict[str, np.ndarray]) -> None:
    for mask in masks:
        leaked = int(np.count_nonzero(kernels[mask.name][~mask.keep]))
        if leaked:
            raise CheckFailed(f"layer '{mask.name}': expected every removed weight to be zero, "
                              f"received {leaked} non-zero; this is a tinyprune bug, please "
                              "report it with the model")
