"""Dependency graph: groups found per coupling, barriers named, models without a graph refused."""

from __future__ import annotations

import pytest
from zoo import ARCHITECTURES, COUPLINGS

from tinyprune.errors import UsageError
from tinyprune.models._backend import FLAVORS, keras_module
from tinyprune.prune import DependencyGraph, PruneConfig, prune, trace_model


def groups_of(model, **kwargs) -> dict[tuple[str, ...], int]:
    dep = DependencyGraph(trace_model(model), **kwargs)
    return {g.owners: g.size for g in dep.groups}


# coupling -> (owner sets that must form one group with their size)
EXPECTED_GROUPS = {
    "merge_add": {("conv2d",): 8, ("conv2d_1", "conv2d_2"): 8, ("conv2d_3",): 6},
    "merge_multiply": {("conv2d",): 8, ("conv2d_1", "conv2d_2"): 8, ("conv2d_3",): 6},
    "depthwise_multiplier": {("conv2d",): 8, ("conv2d_1",): 6},
    "separable": {("conv2d",): 8, ("separable_conv2d",): 8, ("conv2d_1",): 6},
    "squeeze_excite": {("conv2d",): 8, ("conv2d_1", "dense_1"): 8, ("dense",): 4,
                       ("conv2d_2",): 6},
    "concatenate": {("conv2d",): 8, ("conv2d_1",): 4, ("conv2d_2",): 8, ("conv2d_3",): 6},
    "flatten_dense": {("conv2d",): 8, ("dense",): 8},
    "tensor_ops": {("conv2d", "conv2d_1", "conv2d_3"): 8, ("conv2d_2",): 4, ("conv2d_4",): 6},
    "conv_transpose": {("conv2d",): 8, ("conv2d_1",): 8, ("conv2d_transpose",): 6,
                       ("conv2d_2",): 4},
}


def _canonical(model) -> dict[tuple[str, ...], int]:
    """Group owners renamed to the class-order names a fresh Keras session would give."""
    names = {n.name: n for n in trace_model(model).layer_nodes()}
    counters: dict[str, int] = {}
    rename = {}
    for name, node in names.items():
        base = {"Conv2D": "conv2d", "Dense": "dense", "SeparableConv2D": "separable_conv2d",
                "Conv2DTranspose": "conv2d_transpose"}.get(node.class_name)
        if base is None:
            continue
        i = counters.get(base, 0)
        rename[name] = base if i == 0 else f"{base}_{i}"
        counters[base] = i + 1
    return {tuple(sorted(rename[o] for o in owners)): size
            for owners, size in groups_of(model).items()}


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("coupling", sorted(EXPECTED_GROUPS))
def test_coupled_channels_form_one_group(coupling: str, flavor: str) -> None:
    found = _canonical(COUPLINGS[coupling](keras_module(flavor)))
    assert found == EXPECTED_GROUPS[coupling]


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_has_groups_and_no_barrier(name: str, flavor: str) -> None:
    dep = DependencyGraph(trace_model(ARCHITECTURES[name](keras_module(flavor))))
    assert dep.groups
    assert dep.barriers == ()
    assert all(any(m.role == "out" for m in g.members) for g in dep.groups)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_mobilenet_residual_blocks_tie_the_projection_to_the_block_input(flavor: str) -> None:
    dep = DependencyGraph(trace_model(ARCHITECTURES["mobilenet_v2"](keras_module(flavor))))
    tied = [g for g in dep.groups if len(g.owners) > 1]
    assert len(tied) == 2  # stem + first projection; second + third projections
    assert all(sum(m.class_name == "Add" for m in g.members) == 0 for g in tied)
    depthwise = [g for g in dep.groups if any(m.class_name == "DepthwiseConv2D"
                                              for m in g.members)]
    assert len(depthwise) == 3  # each expansion is tied through its depthwise convolution


def _with_odd_layer(k, kind: str):
    inp = k.Input((8, 8, 2))
    x = k.layers.Conv2D(8, 3, padding="same")(inp)
    x = k.layers.Conv2D(8, 3, padding="same", name="before")(x)
    odd = {"permute": k.layers.Permute((2, 1, 3), name="odd"),
           "layernorm": k.layers.LayerNormalization(name="odd"),
           "softmax": k.layers.Softmax(name="odd")}[kind]
    x = odd(x)
    x = k.layers.Conv2D(8, 3, padding="same", name="after")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(2)(x))


def _channels(result) -> dict[str, tuple[int, int]]:
    return {row.name: (row.channels_before, row.channels_after) for row in result.layers}


@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("kind", ["permute", "layernorm"])
def test_unsupported_layer_is_a_barrier_named_in_the_result(kind: str, flavor: str) -> None:
    model = _with_odd_layer(keras_module(flavor), kind)
    result = prune(model, PruneConfig(ratio=0.5, keep_first=False, progress=False))
    assert [b.layer for b in result.barriers] == ["odd"]
    assert result.barriers[0].reason
    assert _channels(result)["before"] == (8, 8)  # read by the barrier: never cut
    assert _channels(result)["after"] == (8, 4)   # past the barrier: cut


@pytest.mark.parametrize("flavor", FLAVORS)
def test_softmax_across_channels_keeps_its_input_channels(flavor: str) -> None:
    model = _with_odd_layer(keras_module(flavor), "softmax")
    result = prune(model, PruneConfig(ratio=0.5, keep_first=False, progress=False))
    assert result.barriers == ()
    assert _channels(result)["before"] == (8, 8)
    assert _channels(result)["after"] == (8, 4)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_layernorm_is_coupled_when_inexact_pruning_is_allowed(flavor: str) -> None:
    model = _with_odd_layer(keras_module(flavor), "layernorm")
    config = PruneConfig(ratio=0.5, keep_first=False, allow_inexact=True, progress=False)
    result = prune(model, config)
    assert result.barriers == ()
    assert {r.name: r.channels_after for r in result.layers}["odd"] == 4


@pytest.mark.parametrize("flavor", FLAVORS)
def test_concatenated_tensor_added_to_one_conv_is_a_barrier(flavor: str) -> None:
    dep = DependencyGraph(trace_model(COUPLINGS["concat_then_add"](keras_module(flavor))))
    assert [b.class_name for b in dep.barriers] == ["Add"]


@pytest.mark.parametrize("flavor", FLAVORS)
def test_subclassed_model_is_refused_with_a_clear_message(flavor: str) -> None:
    k = keras_module(flavor)

    class Net(k.Model):
        def __init__(self) -> None:
            super().__init__(name="net")
            self.dense = k.layers.Dense(4)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(k.ops.ones((1, 3)) if hasattr(k, "ops") else __import__("numpy").ones((1, 3)))
    with pytest.raises(UsageError, match="expected a Sequential or functional Keras model"):
        prune(net, PruneConfig(progress=False))


def test_non_model_is_refused() -> None:
    with pytest.raises(UsageError):
        prune(object(), PruneConfig(progress=False))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_nested_model_is_flattened(flavor: str) -> None:
    graph = trace_model(COUPLINGS["nested"](keras_module(flavor)))
    classes = [n.class_name for n in graph.nodes]
    assert "Sequential" not in classes
    assert classes.count("BatchNormalization") == 1


@pytest.mark.parametrize("flavor", FLAVORS)
def test_keep_first_and_keep_names_fix_their_groups(flavor: str) -> None:
    model = ARCHITECTURES["digits_cnn"](keras_module(flavor))
    names = [n.name for n in trace_model(model).layer_nodes() if n.class_name == "Conv2D"]
    assert set(groups_of(model, keep_first=False)) == {(names[0],), (names[1],)}
    assert set(groups_of(model, keep_first=True)) == {(names[1],)}
    assert set(groups_of(model, keep=(names[1],))) == {(names[0],)}
