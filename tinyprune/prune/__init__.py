"""Structural pruning of Keras models (Keras 3 and tf_keras).

Four layers, after Torch-Pruning's DepGraph:

1. :mod:`~tinyprune.prune.functions`: per-layer prune functions (a registry keyed by Keras
   class name) that slice weights and configs.
2. :mod:`~tinyprune.prune.graph`: the :class:`DependencyGraph` over the flattened model
   (:mod:`~tinyprune.prune.trace`), with :mod:`~tinyprune.prune.rules` per layer class, giving
   the :class:`Group` s of channels that must be cut together.
3. :mod:`~tinyprune.prune.importance`: criteria, ``Importance(group, ctx) -> scores``.
4. :mod:`~tinyprune.prune.pruner`: channel choice under the constraints and physical removal
   (:mod:`~tinyprune.prune.rebuild`).

The stage's entry point is :func:`prune`. See docs/pruning.md.
"""

from tinyprune.prune.api import estimate, prune
from tinyprune.prune.config import FineTune, PruneConfig
from tinyprune.prune.graph import Barrier, DependencyGraph, Group, Member
from tinyprune.prune.importance import CRITERIA, Importance, ImportanceContext
from tinyprune.prune.result import Accuracy, GroupReport, LayerReport, PruneResult
from tinyprune.prune.trace import trace_model

__all__ = [
    "CRITERIA",
    "Accuracy",
    "Barrier",
    "DependencyGraph",
    "FineTune",
    "Group",
    "GroupReport",
    "Importance",
    "ImportanceContext",
    "LayerReport",
    "Member",
    "PruneConfig",
    "PruneResult",
    "estimate",
    "prune",
    "trace_model",
]
