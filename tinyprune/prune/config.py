"""Options of the pruning stage (frozen, validated on construction)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from tinyprune.errors import UsageError

SCOPES = ("local", "global")
AGGREGATES = ("sum", "mean", "max")
LR_SCHEDULES = ("constant", "cosine", "step")


def _check(ok: bool, expected: str, field: str, value: Any) -> None:
    if not ok:
        raise UsageError(f"expected {field} {expected}, received: {field}={value!r}")


@dataclass(frozen=True)
class FineTune:
    """Fine-tuning after pruning (and between the steps of an iterative schedule).

    Attributes:
        epochs: training epochs (0 skips fine-tuning).
        batch_size: training batch size.
        learning_rate: initial learning rate (Adam).
        lr_schedule: ``"constant"``, ``"cosine"`` (decays to 0 over ``epochs``) or ``"step"``
            (divided by 10 at 50% and 75% of ``epochs``).
        patience: early stopping after this many epochs without improvement of the validation
            loss (the best weights are restored); None trains every epoch.
        validation_split: fraction of the training data held out for early stopping.
    """

    epochs: int = 1
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    patience: int | None = None
    validation_split: float = 0.1

    def __post_init__(self) -> None:
        _check(self.epochs >= 0, ">= 0", "epochs", self.epochs)
        _check(self.batch_size > 0, "> 0", "batch_size", self.batch_size)
        _check(self.learning_rate > 0, "> 0", "learning_rate", self.learning_rate)
        _check(self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}", "lr_schedule",
               self.lr_schedule)
        _check(self.patience is None or self.patience > 0, "> 0 or None", "patience",
               self.patience)
        _check(0.0 <= self.validation_split < 1.0, "in [0, 1)", "validation_split",
               self.validation_split)


@dataclass(frozen=True)
class PruneConfig:
    """What to prune, how to rank channels, and what to aim for.

    Attributes:
        ratio: fraction of the channels of every prunable group removed (local scope) or of all
            prunable channels (global scope). Ignored when a target is set (the ratio is searched).
        criterion: importance criterion name (see :mod:`tinyprune.prune.importance`) or a callable
            ``(group, ctx) -> scores``.
        aggregate: how member scores combine across a coupled group: sum, mean or max.
        scope: ``"local"`` (the same ratio in every group) or ``"global"`` (one ranking).
        layer_ratios: ratio per layer name (local scope), overriding ``ratio``.
        keep: layer names whose output channels are never cut.
        keep_first: keep the output channels of the layers that read a model input. The model's
            outputs (the last layers) are always kept.
        min_channels: no group keeps fewer channels.
        round_to: kept channel counts are rounded to a multiple of this (4 suits the int8
            kernels; 1 turns rounding off).
        steps: 1 for one-shot; k > 1 for an iterative schedule (the ratio grows linearly).
        finetune: fine-tuning after the last step (None: none).
        step_finetune: fine-tuning between the steps of an iterative schedule (None: none).
        compensate: refit the kernels of the layers after a cut by least squares on calibration
            activations (needs data).
        target_params: search the smallest ratio that brings the deployed params to this.
        target_macs: the same for MACs per inference.
        target_flash: the same for estimated int8 weight bytes (a board's flash budget).
        target_ram: the same for the estimated peak activation bytes (a board's RAM budget).
        max_ratio: upper bound of the ratio search.
        samples: data samples used for gradients and compensation.
        batch_size: batch size for gradients and evaluation.
        allow_inexact: tie channels through LayerNormalization (removing a channel changes its
            statistics, so the result is no longer exact; off by default: a barrier).
        verify: check that the pruned model equals the original with the removed channels'
            contributions zeroed (a few random inputs), before compensation and fine-tuning.
        seed: seed of the random criterion and of the verification inputs.
        progress: show tqdm progress bars (only ever on a terminal).
    """

    ratio: float = 0.5
    criterion: Any = "l1"
    aggregate: str = "sum"
    scope: str = "local"
    layer_ratios: Mapping[str, float] | None = None
    keep: tuple[str, ...] = ()
    keep_first: bool = True
    min_channels: int = 1
    round_to: int = 4
    steps: int = 1
    finetune: FineTune | None = None
    step_finetune: FineTune | None = None
    compensate: bool = False
    target_params: int | None = None
    target_macs: int | None = None
    target_flash: int | None = None
    target_ram: int | None = None
    max_ratio: float = 0.9
    samples: int = 256
    batch_size: int = 64
    allow_inexact: bool = False
    verify: bool = True
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        _check(0.0 <= self.ratio < 1.0, "in [0, 1)", "ratio", self.ratio)
        _check(0.0 < self.max_ratio < 1.0, "in (0, 1)", "max_ratio", self.max_ratio)
        _check(self.aggregate in AGGREGATES, f"one of {AGGREGATES}", "aggregate", self.aggregate)
        _check(self.scope in SCOPES, f"one of {SCOPES}", "scope", self.scope)
        _check(self.min_channels >= 1, ">= 1", "min_channels", self.min_channels)
        _check(self.round_to >= 1, ">= 1", "round_to", self.round_to)
        _check(self.steps >= 1, ">= 1", "steps", self.steps)
        _check(self.samples >= 1, ">= 1", "samples", self.samples)
        _check(self.batch_size >= 1, ">= 1", "batch_size", self.batch_size)
        for name in ("target_params", "target_macs", "target_flash", "target_ram"):
            value = getattr(self, name)
            _check(value is None or value > 0, "> 0 or None", name, value)
        if self.layer_ratios is not None:
            for layer, r in self.layer_ratios.items():
                _check(0.0 <= r < 1.0, "in [0, 1)", f"layer_ratios[{layer!r}]", r)
            object.__setattr__(self, "layer_ratios", MappingProxyType(dict(self.layer_ratios)))
        object.__setattr__(self, "keep", tuple(self.keep))

    @property
    def has_target(self) -> bool:
        """True when a params, MACs, flash or RAM target replaces the ratio."""
        return any(
            v is not None
            for v in (self.target_params, self.target_macs, self.target_flash, self.target_ram)
        )
