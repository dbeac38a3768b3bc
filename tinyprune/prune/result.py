"""What the pruning stage returns: the pruned model and its report."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tinyprune.prune.graph import Barrier
from tinyprune.prune.metrics import Figures


@dataclass(frozen=True)
class LayerReport:
    """One layer before and after (params exclude folded BatchNormalization, see metrics)."""

    name: str
    class_name: str
    channels_before: int
    channels_after: int
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int


@dataclass(frozen=True)
class GroupReport:
    """One group of coupled channels: its owner layers and channel counts."""

    name: str
    channels_before: int
    channels_after: int


@dataclass(frozen=True)
class Accuracy:
    """Top-1 test accuracy before pruning, right after it, and after fine-tuning (or None)."""

    before: float | None
    after_prune: float | None
    after_finetune: float | None


@dataclass(frozen=True, eq=False)
class PruneResult:
    """The pruned model (same Keras flavor as the input) and the figures of the report.

    Attributes:
        model: the pruned Keras model.
        flavor: ``"keras3"`` or ``"tf_keras"``.
        ratio: the ratio used (searched when a target was set).
        criterion: the criterion's name.
        steps: pruning steps run.
        layers: per-layer channels, params and MACs before and after.
        groups: coupled channel groups and their sizes before and after.
        barriers: layers whose channels were never cut, with the reason.
        params_before / params_after: deployed parameter counts.
        macs_before / macs_after: MACs per inference.
        flash_before / flash_after: estimated int8 weight bytes.
        ram_before / ram_after: estimated peak activation bytes (int8).
        accuracy: test accuracies (None without labelled data).
    """

    model: Any
    flavor: str
    ratio: float
    criterion: str
    steps: int
    layers: tuple[LayerReport, ...]
    groups: tuple[GroupReport, ...]
    barriers: tuple[Barrier, ...]
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    flash_before: int
    flash_after: int
    ram_before: int
    ram_after: int
    accuracy: Accuracy

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as JSON-ready values."""
        out = {k: v for k, v in self.__dict__.items() if k != "model"}
        out["layers"] = [asdict(x) for x in self.layers]
        out["groups"] = [asdict(x) for x in self.groups]
        out["barriers"] = [asdict(x) for x in self.barriers]
        out["accuracy"] = asdict(self.accuracy)
        return out

    def summary(self) -> dict[str, Any]:
        """The report's ``prune`` section (same as :meth:`to_dict`)."""
        return self.to_dict()


def layer_reports(before: Figures, after: Figures) -> tuple[LayerReport, ...]:
    """Pair the layers of two plans by name (layers are never removed, only narrowed)."""
    after_by_name = {f.name: f for f in after.layers}
    rows = []
    for b in before.layers:
        a = after_by_name.get(b.name, b)
        rows.append(LayerReport(b.name, b.class_name, b.channels, a.channels, b.params, a.params,
                                b.macs, a.macs))
    return tuple(rows)
