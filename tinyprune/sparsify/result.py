"""What the sparsify stage returns: the sparse model, its masks and its report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyprune.prune.result import Accuracy
from tinyprune.sparsify.layers import Skipped
from tinyprune.sparsify.masks import Masks


@dataclass(frozen=True)
class LayerSparsity:
    """One sparse layer after the stage.

    Attributes:
        name: layer name.
        class_name: Keras class name.
        kernel_shape: Keras kernel shape.
        weights: kernel weights.
        removed: weights removed by the mask.
        zeros: weights exactly zero in the final kernel (removed ones and any others).
        sparsity: ``removed / weights``.
        units: units of the pattern (blocks, N:M groups).
        removed_units: units removed.
        override: the per-layer sparsity asked for, or None (the layer follows the target).
    """

    name: str
    class_name: str
    kernel_shape: tuple[int, ...]
    weights: int
    removed: int
    zeros: int
    sparsity: float
    units: int
    removed_units: int
    override: float | None


@dataclass(frozen=True)
class Step:
    """One point of the schedule's history.

    Attributes:
        step: rescoring step (one-shot), optimizer step (gradual) or round (IMP).
        epoch: training epoch at that point (None when not training).
        target: the sparsity the schedule asked for.
        sparsity: the sparsity reached (over the layers without an override).
        accuracy: test accuracy after the round (IMP), else None.
    """

    step: int
    epoch: int | None
    target: float
    sparsity: float
    accuracy: float | None = None


@dataclass(frozen=True, eq=False)
class SparsifyResult:
    """The sparse model (same Keras flavor as the input) and the figures of the report.

    Attributes:
        model: the sparse Keras model (removed weights exactly zero).
        flavor: ``"keras3"`` or ``"tf_keras"``.
        pattern: the pattern's name.
        criterion: the criterion's name.
        schedule: ``"oneshot"``, ``"gradual"`` or ``"imp"``.
        allocation: ``"uniform"``, ``"erk"`` or ``"global"``.
        target: the sparsity asked for (layers without an override).
        sparsity: removed weights over the kernels of every sparse layer.
        layers: per sparse layer figures.
        skipped: layers with weights that stayed dense, and why.
        masks: the masks (for :func:`tinyprune.sparsify.check_int8`).
        history: the schedule's steps.
        accuracy: test accuracy before, right after masking (before fine-tuning) and after
            fine-tuning (None without labelled data or fine-tuning).
    """

    model: Any
    flavor: str
    pattern: str
    criterion: str
    schedule: str
    allocation: str
    target: float
    sparsity: float
    layers: tuple[LayerSparsity, ...]
    skipped: tuple[Skipped, ...]
    masks: Masks
    history: tuple[Step, ...]
    accuracy: Accuracy

    @property
    def weights(self) -> int:
        """Kernel weights of the sparse layers."""
        return sum(x.weights for x in self.layers)

    @property
    def removed(self) -> int:
        return sum(x.removed for x in self.layers)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model and the mask arrays, as JSON-ready values."""
        return {
            "pattern": self.pattern, "criterion": self.criterion, "schedule": self.schedule,
            "allocation": self.allocation, "target": self.target, "sparsity": self.sparsity,
            "weights": self.weights, "removed": self.removed, "flavor": self.flavor,
            "layers": [asdict(x) for x in self.layers],
            "skipped": [asdict(x) for x in self.skipped],
            "history": [asdict(x) for x in self.history],
            "accuracy": asdict(self.accuracy),
        }

    def summary(self) -> dict[str, Any]:
        """The report's ``sparsify`` section (same as :meth:`to_dict`)."""
        return self.to_dict()


def layer_sparsity(masks: Masks, kernels: dict[str, np.ndarray],
                   overrides: dict[str, float]) -> tuple[LayerSparsity, ...]:
    """Per-layer figures of ``masks`` over the final ``kernels``."""
    return tuple(
        LayerSparsity(m.name, m.class_name, m.kernel_shape, m.weights, m.removed,
                      int(kernels[m.name].size - np.count_nonzero(kernels[m.name])),
                      m.sparsity, m.units, m.removed_units, overrides.get(m.name))
        for m in masks)
