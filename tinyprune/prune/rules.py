"""Graph rules: how each Keras layer class moves channels from its inputs to its outputs.

A registry keyed by class name (Torch-Pruning's dependency rules). A rule receives the layouts
of a call's inputs and returns the layouts of its outputs, creating new channel spaces
(convolutions, dense), tying spaces together (residual ``Add``) or marking them fixed (a layer
that mixes channels in a way the engine cannot follow). A class without a rule is a barrier:
all channels it touches are kept, and the report names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tinyprune.prune.layout import Layout, Segment
from tinyprune.prune.trace import FlatNode


class Builder(Protocol):
    """What a rule may ask of the dependency graph under construction."""

    allow_inexact: bool

    def new_space(self, node: FlatNode, size: int) -> Layout:
        """A fresh prunable space owned by ``node``'s layer (the same one on every call)."""
        ...

    def fixed_space(self, size: int, reason: str) -> Layout:
        """A fresh space whose channels are never cut."""
        ...

    def union(self, a: Layout, b: Layout) -> bool:
        """Tie two layouts channel by channel; False when their structures differ."""
        ...

    def barrier(self, node: FlatNode, ins: Sequence[Layout], reason: str) -> list[Layout]:
        """Keep every channel ``node`` touches; return fixed layouts for its outputs."""
        ...

    def fix(self, layout: Layout, reason: str) -> None:
        """Never cut any channel of ``layout``."""
        ...


Rule = Callable[[FlatNode, list[Layout], Builder], list[Layout]]
RULES: dict[str, Rule] = {}
# Rules of tensor operations (FlatNode.op: Keras 3 operations, tf_keras TFOpLambda), keyed by
# the operation's normalized name; filled by tinyprune.prune.op_rules.
OP_RULES: dict[str, Rule] = {}

_SOFTMAX = frozenset({"softmax", "log_softmax"})


def rule(*class_names: str) -> Callable[[Rule], Rule]:
    """Register a rule for every class in ``class_names``."""

    def add(fn: Rule) -> Rule:
        for name in class_names:
            RULES[name] = fn
        return fn

    return add


def op_rule(*names: str) -> Callable[[Rule], Rule]:
    """Register a rule for every tensor operation in ``names`` (see :attr:`FlatNode.op`)."""

    def add(fn: Rule) -> Rule:
        for name in names:
            OP_RULES[name] = fn
        return fn

    return add


def rule_for(node: FlatNode) -> Rule | None:
    """The rule of ``node``: by operation name for tensor operations, else by class name."""
    return OP_RULES.get(node.op) if node.op else RULES.get(node.class_name)


def _channels_first(config: dict[str, Any]) -> bool:
    return config.get("data_format") == "channels_first"


def _activation(config: dict[str, Any]) -> str:
    act = config.get("activation")
    if isinstance(act, dict):  # serialized activation object
        act = act.get("config", {}).get("name", act.get("class_name"))
    return str(act or "linear")


def _rank(node: FlatNode) -> int:
    return len(node.in_shapes[0])


def _is_last_axis(axis: Any, rank: int) -> bool:
    axes = list(axis) if isinstance(axis, list | tuple) else [axis]
    return [a % rank for a in axes] == [rank - 1]


@rule("Conv1D", "Conv2D", "Conv3D", "Dense", "SeparableConv1D", "SeparableConv2D",
      "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
def producer(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Filters or units form a new space; the input channels are read by the kernel."""
    config = node.config
    if _channels_first(config):
        return b.barrier(node, ins, "channels_first data format")
    if config.get("groups", 1) != 1:
        return b.barrier(node, ins, f"grouped convolution (groups={config['groups']})")
    if ins[0].outer != 1 and len(node.in_shapes[0]) != 2:
        return b.barrier(node, ins, "reads a flattened tensor that was reshaped back")
    size = int(node.out_shapes[0][-1] or 0)
    if _activation(config) in _SOFTMAX:
        return [b.fixed_space(size, "softmax across channels")]
    return [b.new_space(node, size)]


@rule("DepthwiseConv1D", "DepthwiseConv2D")
def depthwise(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Each output channel ``i*m + j`` belongs to input channel ``i``: the spaces pass through."""
    config = node.config
    if _channels_first(config) or ins[0].outer != 1:
        return b.barrier(node, ins, "channels_first data format")
    return [ins[0].with_inner(int(config.get("depth_multiplier", 1)))]


@rule(
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "ThresholdedReLU", "Identity",
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "Resizing",
)
def passthrough(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Channel ``c`` of the output is computed from channel ``c`` of the input only."""
    config = node.config
    if _channels_first(config):
        return b.barrier(node, ins, "channels_first data format")
    if node.class_name == "PReLU" and node.layer.get_weights()[0].shape[-1] != 1:
        return b.barrier(node, ins, "per-channel PReLU slopes are not sliced")
    if _activation(config) in _SOFTMAX:
        return softmax(node, ins, b)
    if ins[0].outer != 1 and node.class_name.startswith(("Global", "Max", "Average", "Up")):
        return b.barrier(node, ins, "pools a flattened tensor")
    return [ins[0]]


@rule("Softmax")
def softmax(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Normalizes across channels: understood, but none of its channels may be cut."""
    axis = node.config.get("axis", -1)
    if not _is_last_axis(axis, _rank(node)):
        return [ins[0]]
    b.fix(ins[0], f"softmax across channels in {node.name}")
    return [ins[0]]


@rule("BatchNormalization")
def batch_norm(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """One scale, shift, mean and variance per channel: tied in and out."""
    if not _is_last_axis(node.config.get("axis", -1), _rank(node)):
        return b.barrier(node, ins, "normalizes an axis other than the channel axis")
    return [ins[0]]


@rule("LayerNormalization")
def layer_norm(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Normalizes across channels: removing one changes the statistics (inexact, opt-in)."""
    if not _is_last_axis(node.config.get("axis", -1), _rank(node)):
        return b.barrier(node, ins, "normalizes axes other than the channel axis alone")
    if not b.allow_inexact:
        return b.barrier(node, ins, "normalizes across channels (pass allow_inexact=True)")
    return [ins[0]]


@rule("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
def elementwise(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Residual merges: channel ``c`` of every input meets channel ``c`` of the others."""
    width = max(layout.width for layout in ins)
    full = [layout for layout in ins if layout.width == width]
    if any(layout.width not in (1, width) for layout in ins):
        return b.barrier(node, ins, "inputs of different channel counts")
    for other in full[1:]:
        if not b.union(full[0], other):
            return b.barrier(node, ins, "inputs whose channel structures differ")
    return [full[0]]


@rule("Concatenate")
def concatenate(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Along the channel axis the spaces follow each other; along another axis they are tied."""
    rank = _rank(node)
    if _is_last_axis(node.config.get("axis", -1), rank):
        return concat_layouts(node, ins, b)
    return elementwise(node, ins, b)


def concat_layouts(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """The layouts of ``ins`` one after the other (a concatenation along the channel axis)."""
    if any(layout.outer != 1 for layout in ins):
        return b.barrier(node, ins, "concatenates flattened tensors")
    return [Layout(tuple(seg for layout in ins for seg in layout.segments))]


def _known_size(dims: Sequence[int | None]) -> int | None:
    """Product of ``dims``, or None when one of them is unknown."""
    known = [d for d in dims if d is not None]
    return math.prod(known) if len(known) == len(dims) else None


@rule("Flatten")
def flatten(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Folds the spatial positions in front of the channels: feature = position * C + c."""
    if _channels_first(node.config):
        return b.barrier(node, ins, "channels_first data format")
    shape = node.in_shapes[0]
    if len(shape) == 2:
        return [ins[0]]
    positions = _known_size(shape[1:-1])
    if ins[0].outer != 1 or positions is None:
        return b.barrier(node, ins, "flattens a tensor of unknown spatial size")
    return [ins[0].with_outer(positions)]


@rule("Reshape")
def reshape(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Keeping the last axis keeps the channels; reshaping to one axis is a ``Flatten``."""
    shape_in, shape_out = node.in_shapes[0], node.out_shapes[0]
    if shape_in[-1] == shape_out[-1] and ins[0].outer == 1:
        return [ins[0]]
    positions = _known_size(shape_in[1:-1])
    if len(shape_out) == 2 and ins[0].outer == 1 and positions is not None:
        return [ins[0].with_outer(positions)]
    return b.barrier(node, ins, "reshape that moves the channel axis")


@rule("Rescaling")
def rescaling(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """``x * scale + offset``: passthrough; per-channel constants keep the channels."""
    config = node.config
    if any(isinstance(config.get(k), list | tuple) and len(config[k]) > 1
           for k in ("scale", "offset")):
        b.fix(ins[0], f"per-channel rescaling in {node.name}")
    return [ins[0]]


@rule("Normalization")
def normalization(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """Per-channel mean and variance (not sliced): understood, its channels kept."""
    b.fix(ins[0], f"per-channel normalization in {node.name}")
    return [ins[0]]


@rule("InputLayer")
def model_input(node: FlatNode, ins: list[Layout], b: Builder) -> list[Layout]:
    """A model input: its channels are the data's, never cut."""
    return [b.fixed_space(int(node.out_shapes[0][-1] or 1), "model input")]


def _segment_sizes(layout: Layout) -> tuple[tuple[int, int], ...]:
    return tuple((s.size, s.inner) for s in layout.segments)


def same_structure(a: Layout, b: Layout) -> bool:
    """True when two layouts can be tied segment by segment."""
    return a.outer == b.outer and _segment_sizes(a) == _segment_sizes(b)


__all__ = ["OP_RULES", "RULES", "Builder", "Rule", "Segment", "concat_layouts", "op_rule", "rule",
           "rule_for", "same_structure"]
