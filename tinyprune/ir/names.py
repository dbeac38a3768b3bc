"""Names the ops of a converted graph after the Keras layers that produced them.

The converter names each output tensor after the ops fused into it, output side first:
``model/activation_1/Relu;model/batch_normalization_1/FusedBatchNormV3;model/depthwise_conv2d/
depthwise``. The scopes (``activation_1``, ...) are layer names, in one of two spellings:

- tf_keras: the layer names themselves (``conv2d``, ``conv2d_1``, ...);
- Keras 3: the layer name plus a uniquifying ``_N`` suffix (``conv1_1`` for ``conv1``, and
  ``conv2d_1`` for the layer ``conv2d``, which is another layer's name in tf_keras spelling).

Matching both spellings at once names tf_keras ops after the wrong layers (``conv2d_1`` ->
``conv2d``, ``batch_normalization_1`` -> ``batch_normalization``), so the spelling is decided once
per graph, by which one matches more scopes. Each op then takes the earliest layer of the model
(in ``model.layers`` order, which is topological) among its scopes: the conv of a conv + BN + ReLU,
the Add of an add + ReLU.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from tinyprune.ir.graph import Graph

_SUFFIX = re.compile(r"_\d+$")


def _scopes(tensor_name: str) -> list[str]:
    """The path components of each fused part except the op itself (the last one)."""
    out: list[str] = []
    for part in tensor_name.split(";"):
        out.extend(c for c in part.split("/")[:-1] if c)
    return out


def _strip(scope: str) -> str | None:
    stripped = _SUFFIX.sub("", scope)
    return stripped if stripped != scope else None


def _suffixed(scopes: list[list[str]], order: dict[str, int]) -> bool:
    """True when the graph spells layers Keras 3's way (more scopes match once stripped)."""
    flat = [s for op_scopes in scopes for s in op_scopes]
    exact = sum(s in order for s in flat)
    stripped = sum(_strip(s) in order for s in flat)
    return stripped > exact


WHOLE_LAYER_OPS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": "LSTM"}
"""Ops that are one whole Keras layer and that the converter names after themselves
(``tfl.unidirectional_sequence_lstm``, no layer scope), by the layer type they come from."""


def _whole_layers(graph: Graph, layer_names: Sequence[str],
                  layer_types: Sequence[str]) -> dict[int, str]:
    """op index -> layer name for the ops of :data:`WHOLE_LAYER_OPS`: the k-th such op takes the
    k-th layer of its type, when the model has as many of those layers as the graph such ops."""
    named: dict[int, str] = {}
    for opcode, kind in WHOLE_LAYER_OPS.items():
        ops = [op.index for op in graph.ops if op.opcode == opcode]
        layers = [n for n, t in zip(layer_names, layer_types, strict=False) if t == kind]
        if ops and len(ops) == len(layers):
            named.update(zip(ops, layers, strict=True))
    return named


def keras_layer_names(graph: Graph, layer_names: Sequence[str],
                      layer_types: Sequence[str] = ()) -> Graph:
    """Renames ops after the Keras layers they came from.

    Args:
        graph: the graph read from the converted ``.tflite``.
        layer_names: ``[layer.name for layer in model.layers]`` of the Keras model converted.
        layer_types: their class names (``type(layer).__name__``), for the ops of
            :data:`WHOLE_LAYER_OPS`; empty: those ops are matched by scope only.

    Returns:
        The graph with each op named after its layer; an op producing a graph output with no
        match (e.g. the softmax of ``Dense(activation="softmax")``) takes the model's last layer
        name, an op of :data:`WHOLE_LAYER_OPS` its layer of that type, any other op without a
        match keeps its name.
    """
    whole = _whole_layers(graph, layer_names, layer_types)
    order = {name: i for i, name in enumerate(layer_names)}
    scopes = [_scopes(graph.tensors[op.outputs[0]].name) if op.outputs else []
              for op in graph.ops]
    suffixed = _suffixed(scopes, order)
    renamed = []
    for op, op_scopes in zip(graph.ops, scopes, strict=True):
        exact = [s for s in op_scopes if s in order]
        stripped = [t for s in op_scopes if (t := _strip(s)) in order]
        found = (stripped or exact) if suffixed else (exact or stripped)
        if found:
            name = min(found, key=order.__getitem__)
        elif op.index in whole:
            name = whole[op.index]
        elif op.outputs and op.outputs[0] in graph.outputs and layer_names:
            name = layer_names[-1]
        else:
            name = op.name
        renamed.append(dataclasses.replace(op, name=name))
    return dataclasses.replace(graph, ops=tuple(renamed))
