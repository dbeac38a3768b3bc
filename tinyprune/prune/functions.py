"""Per-layer prune functions: slice a layer's weights and config to the kept channels.

A registry keyed by Keras class name (Torch-Pruning's first layer). Each entry knows, for one
layer class, how its weights are laid out along the input channel axis and the output channel
axis. ``keep_in`` holds the kept indices along the last axis of the layer's input tensor and
``keep_out`` those along the last axis of its output tensor; the dependency graph computes both.
Layers without weights and without a size in their config need no entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Weights = list[np.ndarray]
Config = dict[str, Any]


@dataclass(frozen=True)
class Keep:
    """Kept indices along the channel axis of a layer's input and output tensors."""

    in_: np.ndarray
    out: np.ndarray


@dataclass(frozen=True)
class PruneFunctions:
    """How one layer class is sliced and scored.

    Attributes:
        slice: ``(weights, config, keep) -> (weights, config)``, the physical removal.
        out_params: ``weights -> matrix (n, out_width)``: the parameters of each output channel
            (a filter), used by magnitude and gradient criteria. None when the layer has none.
        in_params: ``weights -> matrix (n, in_width)``: the parameters that read each input
            channel. None when the layer has none.
        kernels: indices into ``weights`` of the arrays that multiply (for MAC counts).
        scale: index of the BN-like scale vector (gamma), for the ``bn_scale`` criterion.
        zero_in: ``(weights, indices) -> weights`` with the parameters that read input channels
            ``indices`` set to zero (what "these channels contribute nothing" means).
    """

    slice: Callable[[Weights, Config, Keep], tuple[Weights, Config]]
    out_params: Callable[[Weights], np.ndarray] | None = None
    in_params: Callable[[Weights], np.ndarray] | None = None
    kernels: tuple[int, ...] = ()
    scale: Callable[[Config], int | None] | None = None
    zero_in: Callable[[Weights, np.ndarray], Weights] | None = None


PRUNE_FUNCTIONS: dict[str, PruneFunctions] = {}


def register(*class_names: str) -> Callable[[PruneFunctions], PruneFunctions]:
    """Register ``functions`` for every class in ``class_names``."""

    def add(functions: PruneFunctions) -> PruneFunctions:
        for name in class_names:
            PRUNE_FUNCTIONS[name] = functions
        return functions

    return add


def expand(indices: np.ndarray, multiplier: int) -> np.ndarray:
    """Indices of channel ``i``'s ``multiplier`` outputs (``i*m .. i*m+m-1``), in order."""
    return (indices[:, None] * multiplier + np.arange(multiplier)[None, :]).reshape(-1)


# ---- convolution and dense: kernel (..., in, out), optional bias (out) ----------------------

def _slice_dense_like(weights: Weights, config: Config, keep: Keep, size_key: str) -> tuple[
    Weights, Config
]:
    kernel = weights[0][..., keep.in_, :][..., keep.out]
    rest = [w[keep.out] for w in weights[1:]]
    return [kernel, *rest], {**config, size_key: len(keep.out)}


def _kernel_out(weights: Weights) -> np.ndarray:
    return weights[0].reshape(-1, weights[0].shape[-1])


def _kernel_in(weights: Weights) -> np.ndarray:
    kernel = np.moveaxis(weights[0], -2, -1)
    return kernel.reshape(-1, kernel.shape[-1])


def _zero_first_in(weights: Weights, indices: np.ndarray) -> Weights:
    first = weights[0].copy()
    first[..., indices, :] = 0.0
    return [first, *weights[1:]]


register("Conv1D", "Conv2D", "Conv3D")(PruneFunctions(
    slice=lambda w, c, k: _slice_dense_like(w, c, k, "filters"),
    out_params=_kernel_out, in_params=_kernel_in, kernels=(0,), zero_in=_zero_first_in,
))
register("Dense")(PruneFunctions(
    slice=lambda w, c, k: _slice_dense_like(w, c, k, "units"),
    out_params=_kernel_out, in_params=_kernel_in, kernels=(0,), zero_in=_zero_first_in,
))


# ---- transposed convolution: kernel (..., out, in), optional bias (out) ---------------------

def _slice_transpose(weights: Weights, config: Config, keep: Keep) -> tuple[Weights, Config]:
    kernel = weights[0][..., keep.out, :][..., keep.in_]
    rest = [w[keep.out] for w in weights[1:]]
    return [kernel, *rest], {**config, "filters": len(keep.out)}


def _transpose_out(weights: Weights) -> np.ndarray:
    kernel = np.moveaxis(weights[0], -2, -1)
    return kernel.reshape(-1, kernel.shape[-1])


def _transpose_in(weights: Weights) -> np.ndarray:
    return weights[0].reshape(-1, weights[0].shape[-1])


def _zero_transpose_in(weights: Weights, indices: np.ndarray) -> Weights:
    first = weights[0].copy()
    first[..., indices] = 0.0
    return [first, *weights[1:]]


register("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")(PruneFunctions(
    slice=_slice_transpose, out_params=_transpose_out, in_params=_transpose_in, kernels=(0,),
    zero_in=_zero_transpose_in,
))


# ---- depthwise: kernel (..., in, m), bias (in*m); output o = i*m + j -------------------------

def _slice_depthwise(weights: Weights, config: Config, keep: Keep) -> tuple[Weights, Config]:
    kernel = weights[0][..., keep.in_, :]
    return [kernel, *(w[keep.out] for w in weights[1:])], config


def _depthwise_out(weights: Weights) -> np.ndarray:
    kernel = weights[0]
    return kernel.reshape(-1, kernel.shape[-2] * kernel.shape[-1])


register("DepthwiseConv1D", "DepthwiseConv2D")(PruneFunctions(
    slice=_slice_depthwise, out_params=_depthwise_out, kernels=(0,),
))


# ---- separable: depthwise (..., in, m), pointwise (..., in*m, out), bias (out) --------------

def _slice_separable(weights: Weights, config: Config, keep: Keep) -> tuple[Weights, Config]:
    depthwise, pointwise = weights[0], weights[1]
    middle = expand(keep.in_, depthwise.shape[-1])
    depthwise = depthwise[..., keep.in_, :]
    pointwise = pointwise[..., middle, :][..., keep.out]
    rest = [w[keep.out] for w in weights[2:]]
    return [depthwise, pointwise, *rest], {**config, "filters": len(keep.out)}


def _separable_in(weights: Weights) -> np.ndarray:
    depthwise = np.moveaxis(weights[0], -2, -1)
    return depthwise.reshape(-1, depthwise.shape[-1])


register("SeparableConv1D", "SeparableConv2D")(PruneFunctions(
    slice=_slice_separable, out_params=lambda w: _kernel_out(w[1:]),
    in_params=_separable_in, kernels=(0, 1), zero_in=_zero_first_in,
))


# ---- normalisation over the channel axis: every weight is a (C,) vector ---------------------

def _slice_vectors(weights: Weights, config: Config, keep: Keep) -> tuple[Weights, Config]:
    return [w[keep.out] for w in weights], config


def _gamma_index(config: Config) -> int | None:
    return 0 if config.get("scale", True) else None


register("BatchNormalization", "LayerNormalization")(PruneFunctions(
    slice=_slice_vectors, scale=_gamma_index,
))


# ---- reshape: the target shape names the channel count --------------------------------------

def _slice_reshape(weights: Weights, config: Config, keep: Keep) -> tuple[Weights, Config]:
    target = list(config["target_shape"])
    if len(target) == 1:
        target = [len(keep.out)]
    elif target[-1] != -1:
        target[-1] = len(keep.out)
    return weights, {**config, "target_shape": tuple(target)}


register("Reshape")(PruneFunctions(slice=_slice_reshape))


def slice_layer(
    class_name: str, weights: Weights, config: Config, keep: Keep
) -> tuple[Weights, Config]:
    """Slice one layer's weights and config; layers without an entry are returned unchanged."""
    functions = PRUNE_FUNCTIONS.get(class_name)
    if functions is None:
        return weights, config
    return functions.slice(weights, config, keep)
