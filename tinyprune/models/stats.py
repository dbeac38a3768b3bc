"""Parameter and MAC counts of a Keras model (either flavor), as deployed.

Counts follow the convention of the MLPerf Tiny figures: BatchNormalization is folded into the
layer before it in the int8 model, so its parameters are not counted; MACs are counted for the
layers that multiply (convolutions, depthwise and separable convolutions, dense), from their
output shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

_FOLDED_LAYERS = frozenset({"BatchNormalization"})


def iter_layers(model: Any) -> Iterator[Any]:
    """Yield the leaf layers of a model, descending into nested models."""
    for layer in model.layers:
        if hasattr(layer, "layers") and layer.layers:
            yield from iter_layers(layer)
        else:
            yield layer


def _shape(tensor: Any) -> tuple[int, ...]:
    shape = tensor.shape
    dims = shape.as_list() if hasattr(shape, "as_list") else list(shape)
    return tuple(int(d) if d is not None else 1 for d in dims[1:])


def _in_channels(layer: Any) -> int:
    return _shape(layer.input)[-1]


def _conv_macs(layer: Any) -> int:
    out = _shape(layer.output)
    taps = int(np.prod(layer.kernel_size)) * _in_channels(layer) // getattr(layer, "groups", 1)
    return int(np.prod(out)) * taps


def _depthwise_macs(layer: Any) -> int:
    return int(np.prod(_shape(layer.output))) * int(np.prod(layer.kernel_size))


def _separable_macs(layer: Any) -> int:
    out = _shape(layer.output)
    mid = _in_channels(layer) * layer.depth_multiplier
    spatial = int(np.prod(out[:-1]))
    return spatial * mid * int(np.prod(layer.kernel_size)) + spatial * mid * out[-1]


def _dense_macs(layer: Any) -> int:
    return int(np.prod(_shape(layer.output))) * _in_channels(layer)


_MAC_RULES: dict[str, Callable[[Any], int]] = {
    "Conv1D": _conv_macs,
    "Conv2D": _conv_macs,
    "DepthwiseConv1D": _depthwise_macs,
    "DepthwiseConv2D": _depthwise_macs,
    "SeparableConv1D": _separable_macs,
    "SeparableConv2D": _separable_macs,
    "Dense": _dense_macs,
}


def count_params(model: Any) -> int:
    """Parameters of the deployed model: all weights except BatchNormalization's (folded)."""
    return sum(
        int(np.prod(w.shape))
        for layer in iter_layers(model)
        if type(layer).__name__ not in _FOLDED_LAYERS
        for w in layer.weights
    )


def layer_macs(layer: Any) -> int:
    """Multiply-accumulates of one layer per inference (0 for layers that do not multiply)."""
    rule = _MAC_RULES.get(type(layer).__name__)
    return rule(layer) if rule is not None else 0


def count_macs(model: Any) -> int:
    """Multiply-accumulates per inference (batch 1) of conv/depthwise/separable/dense layers."""
    return sum(layer_macs(layer) for layer in iter_layers(model))
