"""Which Keras layers take a sparsity pattern, and how their kernels map to the TFLite order.

A registry keyed by Keras class name (like :data:`tinyprune.prune.functions.PRUNE_FUNCTIONS`):
each entry names the weight that becomes the int8 filter the sparse kernels read, and the config
fields that make a layer ineligible. Every registered kernel has the Keras layout
``[..spatial.., IN, OUT]``; its canonical form ``[OUT, P, IN]`` is the TFLite memory order:

==================  ==========================  ==================================
Keras layer         Keras kernel                TFLite op and weights
==================  ==========================  ==================================
Dense               ``[IN, OUT]``               FULLY_CONNECTED ``[OUT, IN]``
Conv2D (kxk, 1x1)   ``[KH, KW, IN, OUT]``       CONV_2D ``[OUT, KH, KW, IN]``
Conv1D              ``[K, IN, OUT]``            CONV_2D ``[OUT, 1, K, IN]``
SeparableConv1D/2D  pointwise ``[1, (1,) IN, OUT]``  CONV_2D 1x1 (after the depthwise op)
DepthwiseConv2D     ``[KH, KW, C, 1]``          DEPTHWISE_CONV_2D ``[1, KH, KW, C]``
==================  ==========================  ==================================

Depthwise kernels (depth multiplier 1) take the ``1x4`` pattern only: their canonical form is
``[1, KH * KW, C]`` (one "output row", the TFLite filter's memory order), so a 1x4 block is one
tap of four consecutive channels, one word that tp_depthwise_conv_bsr_s8 skips. Patterns with
several rows (2x4, 4x4), N:M (no kernel skips a lane of a word) and 1x1 (single weights do not
empty words) leave them dense with that reason, as does a depth multiplier other than 1 (the
sparse kernel takes 1). The depthwise half of a SeparableConv2D stays dense (one mask per layer:
its pointwise half is the sparsified kernel). docs/sparsity.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.prune.trace import FlatGraph
from tinyprune.sparsify.patterns import Pattern, Shape3

Config = dict[str, Any]


DEPTHWISE_CLASSES = ("DepthwiseConv2D",)
"""Keras classes whose registered kernel is depthwise (canonical ``[1, KH * KW, C * M]``)."""


def canonical(kernel: np.ndarray, class_name: str = "") -> np.ndarray:
    """A Keras ``[..spatial.., IN, OUT]`` kernel as ``[OUT, P, IN]`` (the TFLite order); a
    depthwise ``[KH, KW, C, M]`` one (``class_name`` in DEPTHWISE_CLASSES) as
    ``[1, KH * KW, C * M]``."""
    if class_name in DEPTHWISE_CLASSES:
        k = np.asarray(kernel)
        return k.reshape(1, int(np.prod(k.shape[:-2], dtype=np.int64)), -1)
    out = np.moveaxis(np.asarray(kernel), -1, 0)
    return out.reshape(out.shape[0], -1, out.shape[-1])


def from_canonical(array: np.ndarray, kernel_shape: tuple[int, ...],
                   class_name: str = "") -> np.ndarray:
    """The inverse of :func:`canonical` for a kernel of Keras shape ``kernel_shape``."""
    if class_name in DEPTHWISE_CLASSES:
        return np.asarray(array).reshape(kernel_shape)
    spatial = kernel_shape[:-2]
    full = array.reshape(kernel_shape[-1], *spatial, kernel_shape[-2])
    return np.moveaxis(full, 0, -1)


def canonical_shape(kernel_shape: tuple[int, ...], class_name: str = "") -> Shape3:
    """The canonical ``(OUT, P, IN)`` of a Keras kernel shape."""
    p = int(np.prod(kernel_shape[:-2], dtype=np.int64))
    if class_name in DEPTHWISE_CLASSES:
        return 1, p, kernel_shape[-2] * kernel_shape[-1]
    return kernel_shape[-1], p, kernel_shape[-2]


def _conv_reason(config: Config) -> str | None:
    if int(config.get("groups", 1) or 1) != 1:
        return f"grouped convolution (groups={config.get('groups')})"
    if config.get("data_format", "channels_last") not in (None, "channels_last"):
        return f"data_format={config.get('data_format')!r} (only channels_last converts)"
    return None


def _depthwise_reason(config: Config) -> str | None:
    why = _conv_reason(config)
    if why is None and int(config.get("depth_multiplier", 1) or 1) != 1:
        return (f"depth_multiplier={config.get('depth_multiplier')} (the sparse depthwise "
                "kernel takes 1)")
    return why


def _depthwise_pattern_reason(pattern: Pattern, shape: Shape3) -> str | None:
    if pattern.name != "1x4":
        return (f"depthwise kernels take 1x4 blocks only (4 channels at one tap, one weight "
                f"word the sparse kernel skips), received pattern {pattern.name}")
    if shape[2] < 4:  # (a block along the taps would not be one word of the kernel)
        return f"{shape[2]} channels, fewer than the block's 4"
    return pattern.reason(shape)


@dataclass(frozen=True)
class SparseKernel:
    """How one layer class carries a sparsifiable kernel.

    Attributes:
        index: position of the kernel in ``layer.get_weights()``.
        reason: ``config -> why not`` (None when the layer can be sparsified).
        tflite: the TFLite op the kernel becomes.
        pattern_reason: ``(pattern, canonical shape) -> why not`` (default: the pattern's own).
    """

    index: int
    reason: Callable[[Config], str | None] = lambda _: None
    tflite: str = "CONV_2D"
    pattern_reason: Callable[[Pattern, Shape3], str | None] = (
        lambda pattern, shape: pattern.reason(shape))


SPARSE_LAYERS: dict[str, SparseKernel] = {
    "Dense": SparseKernel(0, tflite="FULLY_CONNECTED"),
    "Conv1D": SparseKernel(0, _conv_reason),
    "Conv2D": SparseKernel(0, _conv_reason),
    "SeparableConv1D": SparseKernel(1, _conv_reason),
    "SeparableConv2D": SparseKernel(1, _conv_reason),
    "DepthwiseConv2D": SparseKernel(0, _depthwise_reason, "DEPTHWISE_CONV_2D",
                                    _depthwise_pattern_reason),
}
"""Keras class name -> its sparsifiable kernel."""

_DENSE_REASONS = {
    "DepthwiseConv1D": "1-D depthwise convolutions stay dense (the sparsify stage takes "
                       "DepthwiseConv2D only)",
}


@dataclass(frozen=True, eq=False)
class SparseLayer:
    """One layer of a model that takes the pattern.

    Attributes:
        name: layer name (as in the traced graph).
        class_name: Keras class name.
        layer: the layer object of the model being sparsified.
        index: position of the kernel in ``get_weights()``.
        kernel_shape: Keras shape of the kernel.
    """

    name: str
    class_name: str
    layer: Any
    index: int
    kernel_shape: tuple[int, ...]

    @property
    def shape(self) -> Shape3:
        """Canonical ``(OUT, P, IN)``."""
        return canonical_shape(self.kernel_shape, self.class_name)

    @property
    def size(self) -> int:
        return int(np.prod(self.kernel_shape, dtype=np.int64))

    @property
    def variable(self) -> Any:
        return self.layer.weights[self.index]

    def kernel(self) -> np.ndarray:
        return np.asarray(self.layer.get_weights()[self.index])


@dataclass(frozen=True)
class Skipped:
    """A layer with weights that stays dense, and why."""

    layer: str
    class_name: str
    reason: str


def find_layers(graph: FlatGraph, pattern: Pattern, named: frozenset[str] = frozenset(),
                depthwise: bool = False) -> tuple[tuple[SparseLayer, ...], tuple[Skipped, ...]]:
    """The layers of ``graph`` that can take ``pattern``, and those with weights that cannot.

    Depthwise layers take ``1x4`` blocks (four channels at one tap) only with ``depthwise`` or
    when ``named``: on 8x8 digits a DS-CNN-shaped model at 75% ``1x4`` one-shot + fine-tune kept
    97.6% with its depthwise layers dense and 82.9% with them sparse (dense 99.6%), for 0.69x of
    a depthwise layer's cycles. A first layer (fewer input channels than the pattern's block is
    wide: a conv over 1 or 3 image channels) can take blocks along its filter row, but stays
    dense unless ``named``
    holds it (a per-layer sparsity): it holds few weights that every later layer depends on,
    and pruning it costs accuracy out of proportion (on 8x8 digits, a DS-CNN-shaped model at
    75% ``1x4`` lost 5 more points with its 3x3x1 first conv sparse), as the pruning
    literature's habit of keeping the first layer dense reflects.
    """
    found: list[SparseLayer] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for node in graph.layer_nodes():
        if node.name in seen or not node.layer.weights:
            continue
        seen.add(node.name)
        entry = SPARSE_LAYERS.get(node.class_name)
        if entry is None:
            if node.class_name in _DENSE_REASONS or _has_kernel(node.layer):
                reason = _DENSE_REASONS.get(node.class_name, "no sparse kernel for this layer "
                                            f"type (supported: {', '.join(SPARSE_LAYERS)})")
                skipped.append(Skipped(node.name, node.class_name, reason))
            continue
        shape = tuple(int(d) for d in node.layer.weights[entry.index].shape)
        why = entry.reason(node.config) or entry.pattern_reason(
            pattern, canonical_shape(shape, node.class_name))
        width = getattr(pattern, "cols", 1)
        if (why is None and node.class_name in DEPTHWISE_CLASSES and not depthwise
                and node.name not in named):
            why = ("depthwise layers stay dense unless asked for (depthwise=true in "
                   "[sparsify], --sparsify-depthwise, or a per-layer sparsity): their few taps "
                   "cost accuracy out of proportion (docs/sparsity.md)")
        if (why is None and node.class_name not in DEPTHWISE_CLASSES and shape[-2] < width
                and node.name not in named):
            why = (f"a first layer over {shape[-2]} input channel{'s' * (shape[-2] > 1)} stays "
                   f"dense unless given a per-layer sparsity (layer_sparsity / [sparsify.layers]"
                   f"); its {pattern.name} blocks then run along the filter row")
        if why is not None:
            skipped.append(Skipped(node.name, node.class_name, why))
            continue
        found.append(SparseLayer(node.name, node.class_name, node.layer, entry.index, shape))
    return tuple(found), tuple(skipped)


def _has_kernel(layer: Any) -> bool:
    return any("kernel" in w.name for w in layer.weights)
