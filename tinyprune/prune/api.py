"""The pruning stage's entry point: ``prune(model, config, data) -> PruneResult``."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinyprune.models._backend import flavor_of
from tinyprune.prune.compensate import compensate
from tinyprune.prune.config import PruneConfig
from tinyprune.prune.data import Dataset, accuracy, as_dataset
from tinyprune.prune.finetune import finetune
from tinyprune.prune.graph import DependencyGraph
from tinyprune.prune.metrics import Figures
from tinyprune.prune.pruner import Plan, Pruner
from tinyprune.prune.rebuild import sliced_layers
from tinyprune.prune.result import Accuracy, GroupReport, PruneResult, layer_reports
from tinyprune.prune.targets import search_ratio

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class _Start:
    """The analysis of the input model, shared by the target search and the first step."""

    dep: DependencyGraph
    scores: dict[int, np.ndarray]
    ratio: float


def _start(pruner: Pruner, model: Any) -> _Start:
    dep = pruner.analyze(model)
    scores = pruner.scores(model, dep)
    ratio = search_ratio(pruner, dep, scores) if pruner.config.has_target else pruner.config.ratio
    return _Start(dep, scores, ratio)


def _schedule(pruner: Pruner, model: Any, start: _Start, data: Dataset | None) -> Any:
    """Run the one-shot or iterative schedule; returns the pruned model."""
    config = pruner.config
    reference = {g.name: g.size for g in start.dep.groups}
    current = model
    steps = tqdm(range(config.steps), desc="prune", disable=None if config.progress else True,
                 leave=False)
    for step in steps:
        ratio = start.ratio * (step + 1) / config.steps
        if step == 0:
            dep, scores = start.dep, start.scores
        else:
            dep = pruner.analyze(current)
            scores = pruner.scores(current, dep)
        plan = pruner.plan(dep, scores, ratio, reference)
        pruned = pruner.apply(plan)
        if config.compensate:
            compensate(current, pruned, plan, data, samples=config.samples)
        current = pruned
        log.info("step %d/%d: ratio %.3f, groups %s", step + 1, config.steps, ratio,
                 plan.group_sizes())
        if step < config.steps - 1 and config.step_finetune is not None and data is not None:
            finetune(current, data, config.step_finetune, config.progress)
    return current


def prune(model: Any, config: PruneConfig | None = None, data: Any = None) -> PruneResult:
    """Structurally prune the channels of a Keras model.

    Args:
        model: a built Sequential or functional model, Keras 3 or tf_keras (nested models are
            flattened into the result). It is not modified.
        config: what to prune and how (default: ``PruneConfig()``, 50% of the channels by L1).
        data: data for data-driven criteria, compensation, fine-tuning and accuracy (see
            :func:`tinyprune.prune.data.as_dataset` for the accepted forms), or None.

    Returns:
        The pruned model, in the same flavor, with the per-layer and total figures.

    Raises:
        UsageError: not a model with a layer graph (subclassed), bad options, or a
            data-driven criterion without data.
        CheckFailed: a target cannot be met within ``max_ratio``.
    """
    config = config or PruneConfig()
    dataset = as_dataset(data)
    pruner = Pruner(config, dataset)
    start = _start(pruner, model)
    accuracy_before = accuracy(model, dataset)
    pruned = _schedule(pruner, model, start, dataset)
    accuracy_pruned = accuracy(pruned, dataset)
    accuracy_tuned = None
    if config.finetune is not None and dataset is not None and config.finetune.epochs > 0:
        finetune(pruned, dataset, config.finetune, config.progress)
        accuracy_tuned = accuracy(pruned, dataset)
    return _result(pruner, start, pruned, Accuracy(accuracy_before, accuracy_pruned,
                                                   accuracy_tuned))


def _figures(dep: DependencyGraph) -> Figures:
    return Plan(dep, {}, sliced_layers(dep, {})).figures()


def estimate(model: Any) -> Figures:
    """The engine's figures (params, MACs, estimated flash and RAM bytes) of an unpruned model:
    the units its targets are in."""
    return _figures(Pruner(PruneConfig(), None).analyze(model))


def _result(pruner: Pruner, start: _Start, pruned: Any, acc: Accuracy) -> PruneResult:
    before = _figures(start.dep)
    end = pruner.analyze(pruned)
    after = _figures(end)
    sizes_after = {g.name: g.size for g in end.groups}
    groups = tuple(GroupReport(g.name, g.size, sizes_after.get(g.name, g.size))
                   for g in start.dep.groups)
    result = PruneResult(
        model=pruned, flavor=flavor_of(pruned), ratio=float(start.ratio),
        criterion=pruner.criterion, steps=pruner.config.steps,
        layers=layer_reports(before, after), groups=groups, barriers=start.dep.barriers,
        params_before=before.params, params_after=after.params, macs_before=before.macs,
        macs_after=after.macs, flash_before=before.flash_bytes, flash_after=after.flash_bytes,
        ram_before=before.ram_bytes, ram_after=after.ram_bytes, accuracy=acc,
    )
    log.info("pruned %s: params %d -> %d, MACs %d -> %d", start.dep.graph.name,
             result.params_before, result.params_after, result.macs_before, result.macs_after)
    return result
