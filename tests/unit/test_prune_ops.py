"""Pruning through tensor operations (Keras 3 ``Operation`` nodes, tf_keras ``TFOpLambda``).

``x + 3.0``, ``keras.ops.relu6(x)`` or ``tf.nn.relu6(x)`` are coupling rules like the layers
they stand for; an operation the graph cannot follow is a named barrier, never an error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from zoo import tensor_ops_of

from tinyprune.models._backend import FLAVORS, keras_module
from tinyprune.prune import DependencyGraph, PruneConfig, prune, trace_model


def _model(k: Any, body: Any) -> Any:
    """conv 'before' (8) -> body(x) -> conv 'after' (8) -> GAP -> Dense."""
    inp = k.Input((6, 6, 3))
    x = k.layers.Conv2D(8, 3, padding="same", name="before")(inp)
    x = body(x)
    x = k.layers.Conv2D(8, 1, name="after")(x)
    return k.Model(inp, k.layers.Dense(2)(k.layers.GlobalAveragePooling2D()(x)))


def _channels(result: Any) -> dict[str, tuple[int, int]]:
    return {row.name: (row.channels_before, row.channels_after) for row in result.layers}


def _prune(model: Any) -> Any:
    return prune(model, PruneConfig(ratio=0.5, keep_first=False, progress=False))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_operations_are_named_in_one_spelling_for_both_flavors(flavor: str) -> None:
    k = keras_module(flavor)
    ops = tensor_ops_of(k)
    model = _model(k, lambda x: ops.relu6(x - 1.0) * (x / 2.0))
    nodes = trace_model(model).nodes
    assert [n.op for n in nodes if n.op] == ["subtract", "relu6", "true_divide", "multiply"]
    kinds = {n.class_name for n in nodes if n.op}
    assert kinds == ({"TFOpLambda"} if flavor == "tf_keras" else
                     {"ops.Subtract", "ops.Relu6", "ops.TrueDivide", "ops.Multiply"})


@pytest.mark.parametrize("flavor", FLAVORS)
def test_pointwise_operations_pass_channels_through(flavor: str) -> None:
    k = keras_module(flavor)
    ops = tensor_ops_of(k)
    result = _prune(_model(k, lambda x: x * ops.relu6(x + 3.0) * (1.0 / 6.0)))
    assert result.barriers == ()
    assert _channels(result)["before"] == (8, 4)
    assert _channels(result)["after"] == (8, 4)


def _transpose(k: Any) -> Any:
    ops = tensor_ops_of(k)
    return lambda x: ops.transpose(ops.transpose(x, (0, 2, 1, 3)), (0, 2, 1, 3))


BARRIERS = {
    "unknown operation": (_transpose, "tensor operation 'transpose' not understood"),
    "per-channel constant": (
        lambda k: lambda x: x + np.arange(8, dtype=np.float32),
        "tensor operation 'add' with a constant of 8 values per channel",
    ),
    "channel reduction": (
        lambda k: lambda x: x * tensor_ops_of(k).mean(x, axis=-1, keepdims=True),
        "tensor operation 'mean' over the channel axis",
    ),
    "channel slice": (
        lambda k: lambda x: k.layers.Concatenate()([x[:, :, :, :4], x[:, :, :, 4:]]),
        "tensor slicing along the channel axis",
    ),
}


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("case", sorted(BARRIERS))
def test_operation_the_graph_cannot_follow_is_a_named_barrier(case: str, flavor: str) -> None:
    k = keras_module(flavor)
    make, reason = BARRIERS[case]
    result = _prune(_model(k, make(k)))
    assert result.barriers, "expected a barrier"
    assert reason in result.barriers[0].reason
    assert _channels(result)["before"] == (8, 8)  # read by the barrier: never cut
    assert _channels(result)["after"] == (8, 4)  # past it: cut


@pytest.mark.parametrize("flavor", FLAVORS)
def test_spatial_slice_passes_channels_through(flavor: str) -> None:
    k = keras_module(flavor)
    result = _prune(_model(k, lambda x: x[:, 1:5, ::2]))
    assert result.barriers == ()
    assert _channels(result)["before"] == (8, 4)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_mobilenet_v3_small_prunes_through_its_operations(flavor: str) -> None:
    """keras.applications' MobileNetV3Small: hard-swish and squeeze-excite from operations."""
    k = keras_module(flavor)
    model = k.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=4,
        classifier_activation=None,
    )
    dep = DependencyGraph(trace_model(model))
    assert dep.barriers == ()
    assert any(n.op == "add" for n in dep.graph.nodes)  # the premise: hard-sigmoid's x + 3
    result = prune(model, PruneConfig(ratio=0.5, progress=False))  # verify=True: exact
    assert result.barriers == ()
    assert result.params_after < 0.5 * result.params_before
    x = np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    assert np.asarray(result.model(x, training=False)).shape == (2, 4)


def test_a_rule_that_cannot_read_a_layer_is_a_barrier(monkeypatch: pytest.MonkeyPatch) -> None:
    """A config or call a rule does not expect (a newer Keras) is a named barrier, not a crash."""
    from tinyprune.prune import rules

    def unreadable(node: Any, ins: Any, b: Any) -> Any:
        return node.config["no_such_field"]

    monkeypatch.setitem(rules.RULES, "ReLU", unreadable)
    k = keras_module("keras3")
    result = _prune(_model(k, lambda x: k.layers.ReLU(name="odd")(x)))
    assert [(b.layer, b.class_name) for b in result.barriers] == [("odd", "ReLU")]
    assert "KeyError" in result.barriers[0].reason
    assert _channels(result)["before"] == (8, 8)
