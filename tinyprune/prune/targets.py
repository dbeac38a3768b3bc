"""Targets: search the smallest ratio whose plan meets a params, MACs, flash or RAM budget."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np

from tinyprune.errors import CheckFailed
from tinyprune.prune.config import PruneConfig
from tinyprune.prune.graph import DependencyGraph
from tinyprune.prune.metrics import Figures
from tinyprune.prune.pruner import Pruner

log = logging.getLogger(__name__)

_FIELDS = (("target_params", "params"), ("target_macs", "macs"),
           ("target_flash", "flash_bytes"), ("target_ram", "ram_bytes"))


def misses(config: PruneConfig, figures: Figures) -> list[str]:
    """The targets ``figures`` does not meet, as ``"name: actual > limit"`` strings."""
    out = []
    for field, attr in _FIELDS:
        limit = getattr(config, field)
        if limit is not None and getattr(figures, attr) > limit:
            out.append(f"{field}: {getattr(figures, attr)} > {limit}")
    return out


def search_ratio(
    pruner: Pruner, dep: DependencyGraph, scores: Mapping[int, np.ndarray], iterations: int = 14
) -> float:
    """Smallest ratio in ``[0, max_ratio]`` whose one-shot plan meets every target (bisection).

    Raises:
        CheckFailed: even ``max_ratio`` misses a target (the message names it).
    """
    config = pruner.config
    if not misses(config, pruner.plan(dep, scores, 0.0).figures()):
        return 0.0
    worst = misses(config, pruner.plan(dep, scores, config.max_ratio).figures())
    if worst:
        raise CheckFailed(
            f"expected pruning to reach the target, received: at max_ratio={config.max_ratio} "
            f"{'; '.join(worst)} (model '{dep.graph.name}'); raise max_ratio, lower "
            "min_channels or keep fewer layers"
        )
    low, high = 0.0, config.max_ratio
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        if misses(config, pruner.plan(dep, scores, mid).figures()):
            low = mid
        else:
            high = mid
    log.info("ratio %.4f meets the targets", high)
    return high
