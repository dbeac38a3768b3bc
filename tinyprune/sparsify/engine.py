"""The sparsifier: score a model's units, allocate, build masks, apply them, train under them.

It works on one model (the stage's private copy) under one configuration; the schedules
(:mod:`tinyprune.sparsify.schedules`) call :meth:`Sparsifier.plan`, :meth:`Sparsifier.apply`
and :meth:`Sparsifier.train` in their own order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.prune.data import Dataset
from tinyprune.prune.finetune import finetune
from tinyprune.prune.gradients import gradient_stats, synflow_stats
from tinyprune.prune.graph import DependencyGraph
from tinyprune.prune.trace import trace_model
from tinyprune.sparsify.allocate import Budget, Request, allocate
from tinyprune.sparsify.config import FineTune, SparsifyConfig
from tinyprune.sparsify.criteria import ScoreContext, get_criterion, neighbour_norms
from tinyprune.sparsify.layers import canonical, find_layers, from_canonical
from tinyprune.sparsify.masks import LayerMask, Masks, Update, apply_masks, mask_callback
from tinyprune.sparsify.patterns import get_pattern

log = logging.getLogger(__name__)


class Sparsifier:
    """Masks for one model.

    Args:
        model: the model to sparsify in place (the stage passes a copy of the user's).
        config: the stage's options.
        dataset: data for gradient criteria and training (None for data-free use).

    Raises:
        UsageError: no layer can take the pattern, a per-layer override names an unknown layer
            or one that cannot take the pattern, or a gradient criterion has no data.
    """

    def __init__(self, model: Any, config: SparsifyConfig, dataset: Dataset | None) -> None:
        self.model = model
        self.config = config
        self.dataset = dataset
        self.pattern = get_pattern(config.pattern, "pattern")
        self.criterion = get_criterion(config.criterion)
        self.graph = trace_model(model)
        self.overrides = dict(config.layer_sparsity or {})
        self.layers, self.skipped = find_layers(
            self.graph, self.pattern, frozenset(k for k, v in self.overrides.items() if v > 0),
            depthwise=config.depthwise)
        self._check_layers()
        self.budgets = tuple(
            Budget(x.name, x.kernel_shape, x.size, self.pattern.units(x.shape),
                   self.pattern.per_unit) for x in self.layers)
        self._check_overrides()
        needs = getattr(self.criterion, "needs", "weights")
        if needs == "gradients" and dataset is None:
            raise UsageError(f"expected data for criterion {config.criterion_name!r} (it needs "
                             "gradients), received: data=None; pass --data or use l1")
        if config.schedule_name in ("gradual", "imp") and dataset is None:
            raise UsageError(f"expected data for the {config.schedule_name} schedule (it "
                             "trains), received: data=None; pass --data or use oneshot")

    def _check_layers(self) -> None:
        if not self.layers:
            why = "; ".join(f"{s.layer}: {s.reason}" for s in self.skipped) or "no kernels"
            raise UsageError(f"expected a layer that can take pattern {self.pattern.name} in "
                             f"model '{self.graph.name}', received none ({why})")
        names = {x.name for x in self.layers}
        skipped = {s.layer: s.reason for s in self.skipped}
        for layer in self.overrides:
            if layer in skipped and self.overrides[layer] > 0:
                raise UsageError(f"layer_sparsity[{layer!r}]: layer '{layer}' cannot take "
                                 f"pattern {self.pattern.name}: {skipped[layer]}")
            if layer not in names and layer not in skipped:
                raise UsageError(f"layer_sparsity[{layer!r}]: expected a layer of model "
                                 f"'{self.graph.name}' that can take pattern "
                                 f"{self.pattern.name} ({', '.join(sorted(names))}), "
                                 f"received: {layer!r}")
        self.overrides = {k: v for k, v in self.overrides.items() if k in names}

    def _check_overrides(self) -> None:
        for b in self.budgets:
            value = self.overrides.get(b.name)
            if (value is not None and self.pattern.full_sparsity is None
                    and value > min(b.max_sparsity, self.config.max_layer_sparsity) + 1e-9):
                raise UsageError(f"layer_sparsity[{b.name!r}]: expected at most "
                                 f"{min(b.max_sparsity, self.config.max_layer_sparsity):.4f} "
                                 f"(max_layer_sparsity, and the dense tails of pattern "
                                 f"{self.pattern.name}), received: {value:g}")

    # ---- scoring and masks -------------------------------------------------------------------
    def context(self) -> ScoreContext:
        """Current kernels and whatever statistics the criterion needs (see :data:`_NEEDS`)."""
        kernels = {x.name: x.kernel() for x in self.layers}
        gather = _NEEDS.get(getattr(self.criterion, "needs", "weights"))
        extra = gather(self) if gather is not None else {}
        return ScoreContext(kernels, seed=self.config.seed, **extra)

    def plan(self, sparsity: float, previous: Masks | None = None) -> Masks:
        """Masks at ``sparsity`` (on the schedule's way to the target), keeping every unit
        ``previous`` removed removed."""
        ctx = self.context()
        saliency, keeps, scores = {}, {}, {}
        for x in self.layers:
            sal = np.asarray(self.criterion(x, ctx), dtype=np.float64)
            if sal.shape != x.kernel_shape:
                raise UsageError(f"expected a saliency shaped {x.kernel_shape} for layer "
                                 f"{x.name}, received: {sal.shape} from criterion "
                                 f"{self.config.criterion_name}")
            saliency[x.name] = canonical(np.nan_to_num(sal, nan=0.0), x.class_name)
            keeps[x.name] = (previous.layers[x.name].canonical() if previous is not None
                             else np.ones(x.shape, dtype=bool))
            scores[x.name] = self.pattern.unit_scores(saliency[x.name], keeps[x.name])
        fraction = sparsity / self.config.target
        request = Request(sparsity, self.config.allocation, self.config.max_layer_sparsity,
                          {k: v * fraction for k, v in self.overrides.items()},
                          self.pattern.full_sparsity)
        counts = allocate(self.budgets, request, scores)
        layers = {}
        for x in self.layers:
            done = self.pattern.removed_units(keeps[x.name])
            count = max(counts[x.name], done)
            removed = np.argsort(scores[x.name], kind="stable")[:count]
            keep = self.pattern.mask(saliency[x.name], keeps[x.name], removed)
            kept = _keras(keep, x.kernel_shape, x.class_name)
            layers[x.name] = LayerMask(x.name, x.class_name, kept, self.pattern.units(x.shape),
                                       count)
        return Masks(self.pattern.name, layers)

    def apply(self, masks: Masks) -> None:
        """Zero the removed weights of the model."""
        apply_masks(self.layers, masks)

    def recalibrate(self) -> None:
        """Re-estimate every BatchNormalization's moving mean and variance on the training
        inputs (``config.recalibrate``; no-op without data or BN layers).

        Masking changes what each BN sees, and its moving averages (momentum 0.99) lag for
        hundreds of steps after the masks last changed; the stage re-estimates them with the
        final weights (the "adaptive BN" of Li et al. 2020, EagleEye) before it measures
        accuracy. One pass in training mode with the momentum set for a cumulative average.
        """
        bns = {n.name: n.layer for n in self.graph.layer_nodes()
               if n.class_name == "BatchNormalization"}
        if not self.config.recalibrate or not bns or self.dataset is None:
            return
        x = np.asarray(self.dataset.x_fit[: self.config.bn_samples])
        saved = {name: layer.momentum for name, layer in bns.items()}
        try:
            for i, start in enumerate(range(0, len(x), self.config.batch_size)):
                for layer in bns.values():
                    layer.momentum = i / (i + 1)
                self.model(x[start:start + self.config.batch_size], training=True)
        finally:
            for name, layer in bns.items():
                layer.momentum = saved[name]

    def free_sparsity(self, masks: Masks) -> float:
        """Sparsity over the layers without an override (what the target is about)."""
        return masks.sparsity_of(x.name for x in self.layers if x.name not in self.overrides)

    # ---- training ----------------------------------------------------------------------------
    def train(self, ft: FineTune, masks: Masks | None, *, update: Update | None = None,
              initial_epoch: int = 0, extra: Sequence[Any] = (),
              on_begin: Callable[[dict[str, Any]], Masks | None] | None = None) -> Any:
        """Fine-tune the model with ``masks`` held after every optimizer step (and changed by
        ``update``); returns the Keras History (None when nothing was trained)."""
        if self.dataset is None:
            raise UsageError("expected data to fine-tune the sparse model, received: data=None")
        hold = mask_callback(self.graph.flavor, self.layers, masks, update, on_begin)
        return finetune(self.model, self.dataset, ft, self.config.progress,
                        callbacks=[hold, *extra], initial_epoch=initial_epoch)


def _gradients(sp: Sparsifier) -> dict[str, Any]:
    assert sp.dataset is not None
    return {"stats": gradient_stats(sp.model, sp.graph, sp.dataset, samples=sp.config.samples,
                                    batch_size=sp.config.batch_size)}


_NEEDS: dict[str, Callable[[Sparsifier], dict[str, Any]]] = {
    "gradients": _gradients,
    "synflow": lambda sp: {"stats": synflow_stats(sp.model, sp.graph)},
    "neighbours": lambda sp: {"neighbours": neighbour_norms(DependencyGraph(sp.graph),
                                                            sp.layers)},
}
"""What each kind of criterion reads besides the kernels: ``needs`` -> ScoreContext fields."""


def _keras(keep: np.ndarray, kernel_shape: tuple[int, ...], class_name: str) -> np.ndarray:
    return np.ascontiguousarray(from_canonical(keep, kernel_shape, class_name))


def describe(masks: Masks) -> str:
    """One line per layer, for the log."""
    return ", ".join(f"{m.name} {m.sparsity:.3f}" for m in masks)
