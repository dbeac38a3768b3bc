"""Parameter, MAC and memory figures of a pruning plan, computed without building the model.

Conventions follow :mod:`tinyprune.models.stats` (the figures of report.json): BatchNormalization
folds into the layer before it in the int8 model, so its parameters are not counted; MACs are
those of the layers that multiply (convolutions, depthwise and separable convolutions, dense),
per inference. Flash and RAM are estimates for the budget search: int8 weights plus int32 biases,
and the largest sum of input and output activations of one layer (int8); the built firmware's
real figures come from the linker map and the memory planner.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.prune.functions import PRUNE_FUNCTIONS, Weights
from tinyprune.prune.graph import DependencyGraph, KeepMap
from tinyprune.prune.layout import kept_indices
from tinyprune.prune.trace import TensorRef

_FOLDED = frozenset({"BatchNormalization"})


@dataclass(frozen=True)
class LayerFigures:
    """One layer of a plan: output channels, deployed params, MACs, int8 weight bytes."""

    name: str
    class_name: str
    channels: int
    params: int
    macs: int
    weight_bytes: int


@dataclass(frozen=True)
class Figures:
    """A whole plan: per-layer figures and totals."""

    layers: tuple[LayerFigures, ...]
    params: int
    macs: int
    flash_bytes: int
    ram_bytes: int


def _positions(shape: tuple[int | None, ...]) -> int:
    return math.prod(d or 1 for d in shape[1:-1])


def _layer_figures(
    name: str, class_name: str, weights: Weights, channels: int, out_shape: tuple[Any, ...]
) -> LayerFigures:
    if class_name in _FOLDED:
        return LayerFigures(name, class_name, channels, 0, 0, 0)
    functions = PRUNE_FUNCTIONS.get(class_name)
    kernels = functions.kernels if functions is not None else ()
    params = sum(int(w.size) for w in weights)
    macs = sum(int(weights[k].size) for k in kernels) * _positions(out_shape)
    weight_bytes = sum(int(w.size) * (1 if i in kernels else 4) for i, w in enumerate(weights))
    return LayerFigures(name, class_name, channels, params, macs, weight_bytes)


def figures(
    dep: DependencyGraph, keep: KeepMap, sliced: Mapping[str, tuple[Weights, Any]]
) -> Figures:
    """Figures of the model ``dep`` describes after keeping ``keep`` (sliced weights given).

    Args:
        dep: the dependency graph.
        keep: kept channels per group root.
        sliced: the output of :func:`tinyprune.prune.rebuild.sliced_layers` for ``keep``.
    """
    widths: dict[TensorRef, int] = {
        ref: len(kept_indices(layout, dep.root, keep)) for ref, layout in dep.layouts.items()
    }
    layers: dict[str, LayerFigures] = {}
    ram = 0
    for node in dep.graph.nodes:
        acts = [_bytes(dep.graph.nodes[r.node].out_shapes[r.index], widths[r]) for r in node.inputs]
        out_ref = TensorRef(node.index, 0)
        ram = max(ram, sum(acts) + _bytes(node.out_shapes[0], widths[out_ref]))
        if node.layer is None or node.name in layers:
            continue
        layers[node.name] = _layer_figures(
            node.name, node.class_name, sliced[node.name][0], widths[out_ref], node.out_shapes[0])
    values = tuple(layers.values())
    return Figures(
        layers=values, params=sum(f.params for f in values), macs=sum(f.macs for f in values),
        flash_bytes=sum(f.weight_bytes for f in values), ram_bytes=ram,
    )


def _bytes(shape: tuple[int | None, ...], width: int) -> int:
    return int(np.prod([d or 1 for d in shape[1:-1]], dtype=np.int64)) * width if shape else 0
