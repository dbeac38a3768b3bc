"""The engine never changes a model's outputs when the channels it removes were already zero.

For every supported coupling, in both Keras flavors: random weights, then the channels about to
be cut are made exactly zero (their filters, biases and BN scale/shift, in every layer of the
group), so L1 picks them; the pruned model must then compute what the original computes.
"""

from __future__ import annotations

import numpy as np
import pytest
from zoo import COUPLINGS

from tinyprune.models._backend import FLAVORS, keras_module
from tinyprune.prune import DependencyGraph, PruneConfig, prune, trace_model
from tinyprune.prune.functions import expand
from tinyprune.prune.select import round_keep

RATIO = 0.5


def randomize(model, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for sub in getattr(layer, "layers", None) or [layer]:
            weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in sub.get_weights()]
            if type(sub).__name__ == "BatchNormalization":
                weights[-1] = rng.uniform(0.5, 1.5, weights[-1].shape).astype(np.float32)
            sub.set_weights(weights)


def _zero_member(class_name: str, weights: list[np.ndarray], idx: np.ndarray) -> None:
    """Make output channels ``idx`` of one layer exactly zero."""
    if class_name.startswith("Depthwise"):
        in_, mult = weights[0].shape[-2:]
        flat = weights[0].reshape(-1, in_ * mult)
        flat[:, idx] = 0.0
        weights[0] = flat.reshape(weights[0].shape)
        rest = weights[1:]
    elif class_name.endswith("Transpose"):  # kernel (..., out, in)
        weights[0][..., idx, :] = 0.0
        rest = weights[1:]
    elif class_name == "BatchNormalization":
        rest = weights[:2]  # gamma, beta
    elif class_name.startswith("Separable"):
        rest = weights[1:]
    else:
        rest = weights
    for w in rest:
        w[..., idx] = 0.0


def zero_removed_channels(model) -> int:
    """Zero the first-to-go channels of every group; returns how many channels were zeroed."""
    dep = DependencyGraph(trace_model(model))
    rng = np.random.default_rng(1)
    layers = {n.name: n.layer for n in dep.graph.layer_nodes()}
    total = 0
    for group in dep.groups:
        count = group.size - round_keep(group.size * (1 - RATIO), group.size, 1, 1)
        removed = np.sort(rng.choice(group.size, count, replace=False))
        total += count
        for member in group.members:
            if member.role != "out":
                continue
            weights = layers[member.layer].get_weights()
            _zero_member(member.class_name, weights, member.indices[removed].reshape(-1))
            layers[member.layer].set_weights(weights)
    return total


def _inputs(model, seed: int = 2) -> np.ndarray:
    shape = tuple(model.inputs[0].shape)[1:]
    return np.random.default_rng(seed).normal(size=(3, *shape)).astype(np.float32)


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("coupling", sorted(COUPLINGS))
def test_zero_channels_are_removed_exactly(coupling: str, flavor: str) -> None:
    model = COUPLINGS[coupling](keras_module(flavor))
    randomize(model)
    zeroed = zero_removed_channels(model)
    x = _inputs(model)
    expected = np.asarray(model(x, training=False))
    config = PruneConfig(ratio=RATIO, criterion="l1", round_to=1, keep_first=False,
                         progress=False)
    result = prune(model, config)
    assert zeroed > 0
    removed = sum(g.channels_before - g.channels_after for g in result.groups)
    assert removed == zeroed
    assert result.params_after < result.params_before
    np.testing.assert_allclose(np.asarray(result.model(x, training=False)), expected,
                               rtol=1e-4, atol=1e-5)


def test_expand_lists_each_channels_copies_in_order() -> None:
    np.testing.assert_array_equal(expand(np.array([0, 2]), 3), [0, 1, 2, 6, 7, 8])
