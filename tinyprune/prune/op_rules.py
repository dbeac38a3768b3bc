"""Graph rules of tensor operations: ``x + 3.0``, ``keras.ops.relu6(x)``, ``tf.nn.silu(x)``...

Keras 3 records an operation applied to a symbolic tensor as an ``Operation`` node and tf_keras
as a ``TFOpLambda`` layer; MobileNetV3's hard-sigmoid (``ReLU(6)(x + 3) * (1/6)``) and many
hand-written blocks are made of them. The tracer names each one in a single spelling for both
flavors (:attr:`~tinyprune.prune.trace.FlatNode.op`); the rules here say what each does to
channels, exactly as the layer rules in :mod:`tinyprune.prune.rules` do:

- element-wise unary operations (activations, ``abs``, ``square``...): passthrough;
- element-wise binary operations (``add``, ``multiply``, ``maximum``...): tensors tied channel by
  channel like the ``Add`` layer; a constant operand must be a scalar or broadcast along the
  channels (its last axis 1), a per-channel constant is a barrier (it is not sliced);
- reductions (``mean``, ``sum``, ``max``...): passthrough over other axes, a barrier over the
  channel axis; ``softmax`` over channels keeps them;
- ``get_item`` slicing that leaves the channel axis whole: passthrough; ``concatenate``: as the
  layer.

Any other operation is a barrier named after it (its channels are kept), never an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinyprune.prune.layout import Layout
from tinyprune.prune.rules import Builder, concat_layouts, elementwise, op_rule
from tinyprune.prune.trace import FlatNode, Slot

UNARY = (
    "relu", "relu6", "sigmoid", "hard_sigmoid", "hard_silu", "silu", "tanh", "leaky_relu",
    "elu", "selu", "gelu", "celu", "softplus", "softsign", "mish", "log_sigmoid", "sparse_plus",
    "squareplus", "abs", "absolute", "negative", "square", "sqrt", "rsqrt", "reciprocal", "exp",
    "expm1", "log", "log1p", "sign", "round", "floor", "ceil", "erf", "clip", "clip_by_value",
    "cast", "identity", "stop_gradient", "sin", "cos", "logical_not",
)
BINARY = (
    "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "maximum", "minimum",
    "power", "squared_difference", "mod", "add_v2",
)
REDUCTIONS = ("mean", "sum", "max", "min", "prod", "amax", "amin")


def _constants(value: Any) -> Iterator[Any]:
    """Every non-tensor operand inside a recorded call structure (names and None left out)."""
    if isinstance(value, Slot) or value is None or isinstance(value, str | bool):
        return
    if isinstance(value, list | tuple):
        for v in value:
            yield from _constants(v)
    elif isinstance(value, dict):
        for key, v in value.items():
            if key != "name":
                yield from _constants(v)
    else:
        yield value


def _constant_shape(value: Any) -> tuple[int, ...] | None:
    """The shape of a numeric constant, or None when it is not one."""
    try:
        return tuple(int(d) for d in np.shape(np.asarray(value, dtype=np.float64)))
    except (TypeError, ValueError):
        return None


@op_rule(*UNARY)
def unary(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Channel ``c`` of the output is a function of channel ``c`` of the input."""
    if len(ins) != 1:
        return b.barrier(node, ins, f"tensor operation '{node.op}' on {len(ins)} tensors")
    return [ins[0]]


@op_rule(*BINARY)
def binary(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Tensors tied like the ``Add`` layer; constants must broadcast along the channels."""
    if not ins:
        return b.barrier(node, ins, f"tensor operation '{node.op}' on constants only")
    for value in _constants((node.args, node.kwargs)):
        shape = _constant_shape(value)
        if shape is None:
            return b.barrier(node, ins, f"tensor operation '{node.op}' with a non-numeric operand")
        if shape and shape[-1] != 1:
            return b.barrier(
                node, ins,
                f"tensor operation '{node.op}' with a constant of {shape[-1]} values per channel "
                "(not sliced)",
            )
    return elementwise(node, ins, b)


def _argument(node: FlatNode, name: str, position: int, default: Any) -> Any:
    """An operation's argument: from its config (Keras 3), keywords or position (tf_keras)."""
    config = node.config
    if name in config:
        return config[name]
    if name in node.kwargs:
        return node.kwargs[name]
    if len(node.args) > position and not isinstance(node.args[position], Slot):
        return node.args[position]
    return default


def _axes(axis: Any, rank: int) -> list[int] | None:
    """Axes as non-negative ints, or None for "all axes"."""
    if axis is None:
        return None
    values = axis if isinstance(axis, list | tuple) else [axis]
    return [int(a) % rank for a in values]


@op_rule(*REDUCTIONS)
def reduction(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """A reduction over spatial axes keeps the channels; one over the channel axis mixes them."""
    rank = len(node.in_shapes[0])
    axes = _axes(_argument(node, "axis", 1, None), rank)
    if len(ins) != 1 or ins[0].outer != 1 or axes is None or rank - 1 in axes:
        return b.barrier(node, ins, f"tensor operation '{node.op}' over the channel axis")
    return [ins[0]]


@op_rule("softmax", "log_softmax")
def softmax_op(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """As the ``Softmax`` layer: over the channels it keeps them."""
    axis = _argument(node, "axis", 1, -1)
    rank = len(node.in_shapes[0])
    if len(ins) != 1 or _axes(axis, rank) != [rank - 1]:
        return unary(node, ins, b)
    b.fix(ins[0], f"softmax across channels in {node.name}")
    return [ins[0]]


def _whole(key: Any) -> bool:
    """True for a slice that keeps a whole axis (Keras 3 ``slice`` or tf_keras dict form)."""
    if isinstance(key, slice):
        return key == slice(None)
    if isinstance(key, dict):
        return all(key.get(k) is None for k in ("start", "stop", "step"))
    return False


@op_rule("get_item")
def get_item(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Slicing the spatial axes keeps the channels; indexing the channel axis does not."""
    key = node.args[1] if len(node.args) > 1 else node.kwargs.get("slice_spec")
    keys = list(key) if isinstance(key, tuple | list) else [key]
    rank = len(node.in_shapes[0])
    simple = all(isinstance(k, slice | dict | int) and not isinstance(k, bool) for k in keys)
    if len(ins) != 1 or ins[0].outer != 1 or not simple or len(keys) > rank:
        return b.barrier(node, ins, "tensor slicing this graph does not follow")
    if len(keys) == rank and not _whole(keys[-1]):
        return b.barrier(node, ins, "tensor slicing along the channel axis")
    return [ins[0]]


@op_rule("concatenate")
def concatenate_op(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """As the ``Concatenate`` layer."""
    rank = len(node.in_shapes[0])
    axes = _axes(_argument(node, "axis", 1, 0), rank)
    if axes == [rank - 1]:
        return concat_layouts(node, ins, b)
    return elementwise(node, ins, b)
