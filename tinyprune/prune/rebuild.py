"""Physical removal: build a new model, in the original's Keras flavor, with sliced weights.

Every layer is re-created from its own class with ``from_config`` (so Keras 3 layers stay
Keras 3 and tf_keras layers stay tf_keras; Keras 3 tensor operations such as the ``Add`` of
``x + 3.0`` too, called again with their recorded constant arguments), its size fields
(filters, units, reshape targets) set to the kept channel counts; the sliced weights are then
copied in. A Sequential whose graph is a chain comes back as a Sequential; everything else as a
functional model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from tinyprune.models._backend import keras_module
from tinyprune.prune.functions import Weights, slice_layer
from tinyprune.prune.graph import DependencyGraph, KeepMap
from tinyprune.prune.trace import FlatGraph, FlatNode, Slot, TensorRef

_SHAPE_KEYS = ("batch_input_shape", "batch_shape", "input_shape", "input_dim")


def sliced_layers(
    dep: DependencyGraph, keep: KeepMap, weights: Mapping[str, Weights] | None = None
) -> dict[str, tuple[Weights, dict[str, Any]]]:
    """Sliced weights and config of every layer, keyed by layer name.

    Args:
        dep: the dependency graph of the model.
        keep: kept channel indices per group root (groups not listed keep everything).
        weights: replacement weights per layer name (default: the layers' current weights).
    """
    out: dict[str, tuple[Weights, dict[str, Any]]] = {}
    for node in dep.graph.layer_nodes():
        if node.name in out:
            continue
        base = (weights or {}).get(node.name)
        current = list(base) if base is not None else node.weights()
        config = {k: v for k, v in node.config.items() if k not in _SHAPE_KEYS}
        config["name"] = node.name
        out[node.name] = slice_layer(node.class_name, current, config, dep.layer_keep(node, keep))
    return out


def _new_input(k: Any, node: FlatNode) -> Any:
    shape = node.out_shapes[0]
    return k.Input(shape=shape[1:], batch_size=shape[0], dtype=node.dtype, name=node.name)


def _is_chain(graph: FlatGraph) -> bool:
    if len(graph.inputs) != 1 or len(graph.outputs) != 1:
        return False
    nodes = graph.layer_nodes()
    prev = graph.inputs[0]
    for node in nodes:
        if node.inputs != (prev,) or len(node.out_shapes) != 1 or node.kwargs:
            return False
        prev = TensorRef(node.index, 0)
    return graph.outputs[0] == prev


def _substitute(value: Any, tensors: list[Any]) -> Any:
    if isinstance(value, Slot):
        return tensors[value.position]
    if isinstance(value, list):
        return [_substitute(v, tensors) for v in value]
    if isinstance(value, tuple):
        return tuple(_substitute(v, tensors) for v in value)
    if isinstance(value, dict):
        return {key: _substitute(v, tensors) for key, v in value.items()}
    return value


def _wire_functional(k: Any, graph: FlatGraph, layers: dict[str, Any]) -> Any:
    tensors: dict[TensorRef, Any] = {}
    for node in graph.nodes:
        if node.layer is None:
            tensors[TensorRef(node.index)] = _new_input(k, node)
            continue
        ins = [tensors[ref] for ref in node.inputs]
        result = layers[node.name](*_substitute(node.args, ins), **_substitute(node.kwargs, ins))
        results = list(result) if isinstance(result, list | tuple) else [result]
        for i, tensor in enumerate(results):
            tensors[TensorRef(node.index, i)] = tensor
    inputs = [tensors[ref] for ref in graph.inputs]
    outputs = [tensors[ref] for ref in graph.outputs]
    return k.Model(
        inputs=inputs[0] if len(inputs) == 1 else inputs,
        outputs=outputs[0] if len(outputs) == 1 else outputs, name=graph.name,
    )


def build_model(graph: FlatGraph, sliced: Mapping[str, tuple[Weights, dict[str, Any]]]) -> Any:
    """Create the model of ``graph`` from sliced layer configs and copy the sliced weights in."""
    k = keras_module(graph.flavor)
    classes = {node.name: type(node.layer) for node in graph.layer_nodes()}
    layers = {name: classes[name].from_config(cfg) for name, (_, cfg) in sliced.items()}
    if graph.sequential and _is_chain(graph):
        seq = [_new_input(k, graph.nodes[graph.inputs[0].node])]
        seq += [layers[n.name] for n in graph.layer_nodes()]
        model = k.Sequential(seq, name=graph.name)
    else:
        model = _wire_functional(k, graph, layers)
    for name, (weights, _) in sliced.items():
        if weights:  # tensor operations (Keras 3) have no set_weights
            layers[name].set_weights([np.asarray(w) for w in weights])
    return model


def rebuild(
    dep: DependencyGraph, keep: KeepMap, weights: Mapping[str, Weights] | None = None
) -> Any:
    """The model of ``dep`` with only the kept channels (see :func:`sliced_layers`)."""
    return build_model(dep.graph, sliced_layers(dep, keep, weights))
