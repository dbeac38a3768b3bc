"""Flatten a Keras model (either flavor) into a list of layer calls in topological order.

The pruning engine never works on the Keras object graph directly: it first walks the model
backwards from its outputs through each tensor's ``_keras_history`` and records every layer call
as a :class:`FlatNode`. Nested models (a Sequential or functional model used as a layer) are
inlined, so the graph contains only leaf layers. Sequential models are walked through their
functional form. A subclassed model has no layer graph and is refused with a ``UsageError``.

Tensor operations are recorded like layers: Keras 3 records ``x + 3.0`` or ``keras.ops.relu(x)``
as an ``Operation`` (no weights, not a ``Layer``), tf_keras as a ``TFOpLambda`` /
``SlicingOpLambda`` layer. Their node carries :attr:`FlatNode.op`, the operation's name in one
spelling for both flavors (``"add"``, ``"multiply"``, ``"relu6"``, ``"hard_silu"``...), which the
graph rules dispatch on; a Keras 3 operation's ``class_name`` is prefixed with ``ops.`` so it never
shares a registry key with the layer of the same name (``ops.Add`` against the ``Add`` layer).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tinyprune.errors import UsageError
from tinyprune.models._backend import Flavor, flavor_of

Shape = tuple[int | None, ...]


@dataclass(frozen=True)
class TensorRef:
    """One output tensor of a flat node: ``node`` is the node index, ``index`` the output index."""

    node: int
    index: int = 0


@dataclass(frozen=True)
class Slot:
    """Placeholder for the ``position``-th input tensor inside a recorded call structure."""

    position: int


@dataclass(frozen=True, eq=False)
class FlatNode:
    """One call of a leaf layer (or a model input when ``layer`` is None).

    Attributes:
        index: position in :attr:`FlatGraph.nodes` (topological order).
        name: unique layer name in the flattened model (nested layers get their model's prefix
            only when their name collides).
        class_name: Keras class name of the layer, ``"InputLayer"`` for a model input.
        layer: the original layer object (None for an input).
        inputs: the tensors this call reads, in call order.
        in_shapes: shapes of ``inputs`` (batch axis included).
        out_shapes: shapes of the outputs (batch axis included).
        args: positional call structure with :class:`Slot` placeholders for the input tensors.
        kwargs: keyword call structure with :class:`Slot` placeholders.
        dtype: dtype of an input node (None for layers).
        op: for a tensor operation (a Keras 3 ``Operation`` or a tf_keras ``TFOpLambda``), its
            normalized name, e.g. ``"add"``; empty for layers and inputs.
    """

    index: int
    name: str
    class_name: str
    layer: Any
    inputs: tuple[TensorRef, ...]
    in_shapes: tuple[Shape, ...]
    out_shapes: tuple[Shape, ...]
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    dtype: Any = None
    op: str = ""

    @property
    def config(self) -> dict[str, Any]:
        """The layer's ``get_config()`` (an empty dict for inputs)."""
        return {} if self.layer is None else dict(self.layer.get_config())

    def weights(self) -> list[Any]:
        """The layer's ``get_weights()``; empty for inputs and Keras 3 operations."""
        getter = getattr(self.layer, "get_weights", None)
        return [] if getter is None else list(getter())

    def variables(self) -> list[Any]:
        """The layer's weight variables; empty for inputs and Keras 3 operations."""
        return list(getattr(self.layer, "weights", None) or [])


@dataclass(frozen=True, eq=False)
class FlatGraph:
    """A model as leaf-layer calls in topological order.

    Attributes:
        nodes: every call; inputs first in model input order.
        inputs: the model inputs.
        outputs: the model outputs.
        flavor: ``"keras3"`` or ``"tf_keras"``.
        name: the model's name.
        sequential: the model was a Sequential (rebuilt as one when the graph is a chain).
    """

    nodes: tuple[FlatNode, ...]
    inputs: tuple[TensorRef, ...]
    outputs: tuple[TensorRef, ...]
    flavor: Flavor
    name: str
    sequential: bool

    def layer_nodes(self) -> tuple[FlatNode, ...]:
        """The nodes that call a layer (model inputs left out)."""
        return tuple(n for n in self.nodes if n.layer is not None)

    def consumers(self) -> dict[TensorRef, list[FlatNode]]:
        """Map each tensor to the nodes that read it."""
        out: dict[TensorRef, list[FlatNode]] = {}
        for node in self.nodes:
            for ref in node.inputs:
                out.setdefault(ref, []).append(node)
        return out


def _shape(tensor: Any) -> Shape:
    shape = tensor.shape
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(None if d is None else int(d) for d in dims)


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "_keras_history")


def _map_structure(value: Any, fn: Callable[[Any], Any]) -> Any:
    if _is_tensor(value):
        return fn(value)
    if isinstance(value, list):
        return [_map_structure(v, fn) for v in value]
    if isinstance(value, tuple):
        return tuple(_map_structure(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_structure(v, fn) for k, v in value.items()}
    return value


def _call_structure(node: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword call arguments; ``training`` (recorded as False when a Sequential
    builds itself) and empty masks are dropped so the rebuilt model decides them at call time."""
    if hasattr(node, "arguments"):  # Keras 3
        args, kwargs = tuple(node.arguments.args), dict(node.arguments.kwargs)
    else:  # tf_keras
        args, kwargs = tuple(node.call_args), dict(node.call_kwargs)
    dropped = {k for k, v in kwargs.items() if k == "training" or (k == "mask" and v is None)}
    kwargs = {k: v for k, v in kwargs.items() if k not in dropped}
    return args, kwargs


# tf_keras op-layer symbols (``config["function"]``) spelled like the Keras 3 operation names.
_OP_ALIASES = {
    "sub": "subtract", "mul": "multiply", "truediv": "true_divide", "div": "divide",
    "floordiv": "floor_divide", "neg": "negative", "swish": "silu", "hard_swish": "hard_silu",
    "reduce_mean": "mean", "reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min",
    "reduce_prod": "prod", "getitem": "get_item", "concat": "concatenate", "pow": "power",
}
_TF_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")


def op_name(layer: Any) -> str:
    """The tensor operation ``layer`` stands for (see :attr:`FlatNode.op`), or ``""``.

    Keras 3: an ``Operation`` that is not a layer, named after its class (``HardSilu`` ->
    ``hard_silu``). tf_keras: a ``TFOpLambda`` / ``SlicingOpLambda``, named after the last part of
    its TensorFlow symbol (``__operators__.add`` -> ``add``, ``math.truediv`` -> ``true_divide``).
    """
    kind = type(layer).__name__
    if kind in _TF_OP_LAYERS:
        symbol = str(layer.get_config().get("function", "")).rsplit(".", 1)[-1]
        return _OP_ALIASES.get(symbol, symbol)
    if hasattr(layer, "get_weights"):
        return ""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", kind).lower()


def _is_model(layer: Any) -> bool:
    return hasattr(layer, "layers") and hasattr(layer, "inputs") and hasattr(layer, "outputs")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


class _Tracer:
    """Walks one model; state is kept here so the public function stays small."""

    def __init__(self) -> None:
        self.nodes: list[FlatNode] = []
        self.names: dict[int, str] = {}
        self.used: set[str] = set()

    def unique_name(self, layer: Any, prefix: str) -> str:
        if id(layer) in self.names:
            return self.names[id(layer)]
        name = layer.name
        if name in self.used:
            name = f"{prefix}_{name}" if prefix else name
        base, k = name, 1
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        self.names[id(layer)] = name
        return name

    def add_input(self, tensor: Any, name: str) -> TensorRef:
        node = FlatNode(
            index=len(self.nodes), name=name, class_name="InputLayer", layer=None,
            inputs=(), in_shapes=(), out_shapes=(_shape(tensor),), dtype=tensor.dtype,
        )
        self.used.add(name)
        self.nodes.append(node)
        return TensorRef(node.index)

    def trace(self, tensor: Any, memo: dict[int, TensorRef], prefix: str) -> TensorRef:
        if id(tensor) in memo:
            return memo[id(tensor)]
        layer, node_index = tensor._keras_history[0], tensor._keras_history[1]
        node = layer._inbound_nodes[node_index]
        if node.is_input:
            raise UsageError(
                f"expected every model input to be listed in model.inputs, received: a tensor "
                f"from input layer '{layer.name}' that is not one"
            )
        args, kwargs = _call_structure(node)
        tensors: list[Any] = []
        _map_structure((args, kwargs), tensors.append)
        refs = [self.trace(t, memo, prefix) for t in tensors]
        outputs = _as_list(node.output_tensors if hasattr(node, "output_tensors") else node.outputs)
        if _is_model(layer):
            inner = {id(t): r for t, r in zip(_as_list(layer.inputs), refs, strict=True)}
            sub_prefix = f"{prefix}_{layer.name}" if prefix else layer.name
            results = [self.trace(t, inner, sub_prefix) for t in _as_list(layer.outputs)]
        else:
            results = self.add_layer(layer, prefix, (args, kwargs), tensors, refs, outputs)
        for out_tensor, ref in zip(outputs, results, strict=True):
            memo[id(out_tensor)] = ref
        return memo[id(tensor)]

    def add_layer(
        self, layer: Any, prefix: str, call: tuple[Any, Any], tensors: list[Any],
        refs: list[TensorRef], outputs: list[Any],
    ) -> list[TensorRef]:
        positions = {id(t): i for i, t in enumerate(tensors)}
        args, kwargs = _map_structure(call, lambda t: Slot(positions[id(t)]))
        op = op_name(layer)
        kind = type(layer).__name__
        node = FlatNode(
            index=len(self.nodes), name=self.unique_name(layer, prefix),
            class_name=f"ops.{kind}" if op and kind not in _TF_OP_LAYERS else kind,
            layer=layer, inputs=tuple(refs), in_shapes=tuple(_shape(t) for t in tensors),
            out_shapes=tuple(_shape(t) for t in outputs), args=args, kwargs=kwargs, op=op,
        )
        self.nodes.append(node)
        return [TensorRef(node.index, i) for i in range(len(outputs))]


def _model_io(model: Any) -> tuple[list[Any], list[Any]]:
    kind = type(model).__name__
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs, outputs = None, None
    if not inputs or not outputs:
        raise UsageError(
            f"expected a Sequential or functional Keras model with a layer graph, received: "
            f"model '{model.name}' of class {kind}, which has none (a subclassed model, or a "
            f"Sequential without an Input); rebuild it with keras.Input and the functional API"
        )
    return _as_list(inputs), _as_list(outputs)


def trace_model(model: Any) -> FlatGraph:
    """Flatten ``model`` into a :class:`FlatGraph`.

    Args:
        model: a built Sequential or functional model of Keras 3 or tf_keras.

    Returns:
        The leaf-layer calls in topological order, nested models inlined.

    Raises:
        UsageError: the object is not a Keras model, or has no layer graph (subclassed model,
            unbuilt Sequential).
    """
    try:
        flavor = flavor_of(model)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    inputs, outputs = _model_io(model)
    tracer = _Tracer()
    memo: dict[int, TensorRef] = {}
    for tensor in inputs:
        memo[id(tensor)] = tracer.add_input(tensor, tensor._keras_history[0].name)
    out_refs = tuple(tracer.trace(t, memo, "") for t in outputs)
    return FlatGraph(
        nodes=tuple(tracer.nodes), inputs=tuple(memo[id(t)] for t in inputs),
        outputs=out_refs, flavor=flavor, name=model.name,
        sequential=type(model).__name__ == "Sequential",
    )
