"""Compensation: refit the layers that lost input channels by least squares.

After a cut, a convolution or dense layer that read the removed channels is refit so that, on
calibration data, its pre-activation output from the pruned model's (narrower) input matches its
output in the model before the cut (as in ThiNet / He et al. 2017):
``min ||[X_pruned, 1] [W; b] - (X_before W_before + b_before)||^2 + ridge``. Convolutions are
unrolled into patches (``tf.image.extract_patches``). Shared layers, grouped and causal
convolutions are left as they are.

Layers are refit in topological order, in waves: a layer's pruned-model input is computed after
every refit layer upstream of it has been refit, so a refit never targets activations that an
earlier refit then changes (refitting a chain from one pass of activations fits each later layer
to inputs it never sees). Layers that do not depend on each other share a pass.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.models._backend import Flavor, keras_module
from tinyprune.models._backend import tf as tf_module
from tinyprune.prune.data import Dataset
from tinyprune.prune.rebuild import rebuild
from tinyprune.prune.trace import FlatGraph, FlatNode

log = logging.getLogger(__name__)

_REFIT = frozenset({"Conv1D", "Conv2D", "Dense"})
_MAX_ROWS = 20000


def _targets(plan: Any) -> list[FlatNode]:
    """Layers that read a group that lost channels and can be refit."""
    names: set[str] = set()
    for group in plan.dep.groups:
        if len(plan.keep.get(group.root, range(group.size))) < group.size:
            names.update(m.layer for m in group.members
                         if m.role == "in" and m.class_name in _REFIT)
    counts: dict[str, int] = {}
    for node in plan.dep.graph.layer_nodes():
        counts[node.name] = counts.get(node.name, 0) + 1
    nodes = [n for n in plan.dep.graph.layer_nodes() if n.name in names and counts[n.name] == 1]
    return [n for n in nodes if n.config.get("groups", 1) == 1
            and n.config.get("padding") != "causal"]


def _layer_inputs(
    model: Any, names: list[str], x: np.ndarray, flavor: Flavor
) -> list[np.ndarray]:
    k = keras_module(flavor)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    extractor = k.Model(inputs, [model.get_layer(n).input for n in names])
    outs = extractor(x, training=False)
    return [np.asarray(o) for o in (outs if isinstance(outs, list | tuple) else [outs])]


def _rows(node: FlatNode, x: np.ndarray) -> np.ndarray:
    """The layer's input as a (rows, fan_in) matrix (patches for convolutions)."""
    config = node.config
    if node.class_name == "Dense":
        return x.reshape(-1, x.shape[-1])
    tf = tf_module()
    if node.class_name == "Conv1D":
        x = x[:, None]
    kernel = tuple(config["kernel_size"])
    strides = tuple(config["strides"])
    rates = tuple(config["dilation_rate"])
    if len(kernel) == 1:
        kernel, strides, rates = (1, *kernel), (1, *strides), (1, *rates)
    patches = tf.image.extract_patches(
        x, sizes=[1, *kernel, 1], strides=[1, *strides, 1], rates=[1, *rates, 1],
        padding=str(config["padding"]).upper())
    return np.asarray(patches).reshape(-1, patches.shape[-1])


def _solve(a: np.ndarray, y: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    a = np.concatenate([a, np.ones((len(a), 1))], axis=1).astype(np.float64)
    gram = a.T @ a
    gram += np.eye(len(gram)) * ridge * (np.trace(gram) / len(gram) + 1e-12)
    return np.linalg.solve(gram, a.T @ y.astype(np.float64))


def _refit(
    node: FlatNode, before: np.ndarray, after: np.ndarray, layer: Any, kept_out: np.ndarray,
    seed: int,
) -> None:
    old_kernel, *old_rest = node.layer.get_weights()
    new_weights = layer.get_weights()
    x_before, x_after = _rows(node, before), _rows(node, after)
    if len(x_before) > _MAX_ROWS:
        pick = np.random.default_rng(seed).choice(len(x_before), _MAX_ROWS, replace=False)
        x_before, x_after = x_before[pick], x_after[pick]
    target = x_before @ old_kernel.reshape(-1, old_kernel.shape[-1])[:, kept_out]
    if old_rest:
        target = target + old_rest[0][kept_out]
    solution = _solve(x_after, target)
    new_weights[0] = solution[:-1].reshape(new_weights[0].shape).astype(np.float32)
    if len(new_weights) > 1:
        new_weights[1] = solution[-1].astype(np.float32)
    layer.set_weights(new_weights)


def _ancestors(graph: FlatGraph) -> dict[int, set[int]]:
    """Node index -> indices of every node upstream of it (nodes are in topological order)."""
    out: dict[int, set[int]] = {}
    for node in graph.nodes:
        up: set[int] = set()
        for ref in node.inputs:
            up.add(ref.node)
            up |= out[ref.node]
        out[node.index] = up
    return out


def _waves(graph: FlatGraph, nodes: list[FlatNode]) -> list[list[FlatNode]]:
    """Split ``nodes`` (topological order) into runs where no node is downstream of another."""
    ancestors = _ancestors(graph)
    waves: list[list[FlatNode]] = []
    for node in nodes:
        if waves and not any(n.index in ancestors[node.index] for n in waves[-1]):
            waves[-1].append(node)
        else:
            waves.append([node])
    return waves


def compensate(
    before: Any, pruned: Any, plan: Any, data: Dataset | None, *, samples: int = 256,
    seed: int = 0,
) -> list[str]:
    """Refit, in place in ``pruned``, the layers of ``plan`` that lost input channels.

    Args:
        before: the model the plan was made from.
        pruned: the model built from the plan (modified in place).
        plan: the :class:`~tinyprune.prune.pruner.Plan`.
        data: calibration inputs (the first ``samples`` of the fit split).
        samples: how many calibration samples.
        seed: seed of the row subsampling.

    Returns:
        The names of the refit layers, in the order they were refit.

    Raises:
        UsageError: no data.
    """
    if data is None:
        raise UsageError("expected data for compensate=True (calibration activations), "
                         "received: data=None")
    nodes = _targets(plan)
    if not nodes:
        return []
    x = np.asarray(data.x_fit[:samples])
    flavor = plan.dep.graph.flavor
    names = [n.name for n in nodes]
    ins_before = dict(zip(names, _layer_inputs(rebuild(plan.dep, {}), names, x, flavor),
                          strict=True))
    for wave in _waves(plan.dep.graph, nodes):
        wave_names = [n.name for n in wave]
        ins_after = _layer_inputs(pruned, wave_names, x, flavor)
        for node, xa in zip(wave, ins_after, strict=True):
            kept_out = plan.dep.layer_keep(node, plan.keep).out
            _refit(node, ins_before[node.name], xa, pruned.get_layer(node.name), kept_out, seed)
    log.info("compensated %s", ", ".join(names))
    return names
