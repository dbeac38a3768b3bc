"""Masks per layer, applying them, and holding them through training in both Keras flavors.

A :class:`LayerMask` is a boolean array shaped like the layer's Keras kernel (True = kept).
:func:`mask_callback` re-applies the masks after every optimizer step (a Keras callback at the
end of each training batch), so a removed weight is exactly zero whenever the optimizer hands
control back, whatever Adam's moments say; the masks may change during training (gradual
pruning) through an ``update`` function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np

from tinyprune.models._backend import Flavor, keras_module
from tinyprune.models._backend import tf as tf_module
from tinyprune.sparsify.layers import DEPTHWISE_CLASSES, SparseLayer, canonical, canonical_shape


@dataclass(frozen=True, eq=False)
class LayerMask:
    """The kept weights of one layer's kernel.

    Attributes:
        name: layer name.
        class_name: Keras class name.
        keep: boolean array, Keras kernel layout (True = kept).
        units: units of the pattern in this kernel.
        removed_units: units removed.
    """

    name: str
    class_name: str
    keep: np.ndarray
    units: int
    removed_units: int

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.keep.shape)

    @property
    def weights(self) -> int:
        return int(self.keep.size)

    @property
    def removed(self) -> int:
        """Weights removed (zero by the mask)."""
        return int(self.keep.size - np.count_nonzero(self.keep))

    @property
    def sparsity(self) -> float:
        return self.removed / self.keep.size

    def canonical(self) -> np.ndarray:
        """The keep-mask as ``[OUT, P, IN]`` (TFLite order)."""
        return canonical(self.keep, self.class_name)

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        return canonical_shape(self.kernel_shape, self.class_name)

    @property
    def depthwise(self) -> bool:
        return self.class_name in DEPTHWISE_CLASSES

    def tflite(self, opcode: str) -> np.ndarray:
        """The keep-mask shaped like the TFLite weights: ``[OUT, IN]`` for FULLY_CONNECTED,
        ``[OUT, KH, KW, IN]`` for CONV_2D (a 1-D kernel ``K`` becomes ``1 x K``),
        ``[1, KH, KW, C]`` for DEPTHWISE_CONV_2D."""
        out, _, in_ = self.canonical_shape
        if opcode == "DEPTHWISE_CONV_2D":
            kh, kw = self.kernel_shape[:2]
            return self.canonical().reshape(1, kh, kw, in_)
        if opcode == "FULLY_CONNECTED":
            return self.canonical().reshape(out, in_)
        spatial = self.kernel_shape[:-2]
        kh, kw = (1, spatial[0]) if len(spatial) == 1 else spatial
        return self.canonical().reshape(out, kh, kw, in_)


@dataclass(frozen=True, eq=False)
class Masks:
    """The masks of one model under one pattern, by layer name (graph order)."""

    pattern: str
    layers: Mapping[str, LayerMask]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", MappingProxyType(dict(self.layers)))

    def __iter__(self) -> Iterator[LayerMask]:
        return iter(self.layers.values())

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, name: str) -> LayerMask:
        return self.layers[name]

    @property
    def weights(self) -> int:
        return sum(m.weights for m in self)

    @property
    def removed(self) -> int:
        return sum(m.removed for m in self)

    @property
    def sparsity(self) -> float:
        """Removed weights over the kernels of every masked layer."""
        return self.removed / self.weights if self.weights else 0.0

    def sparsity_of(self, names: Any) -> float:
        """Removed weights over the kernels of the layers ``names``."""
        masks = [self.layers[n] for n in names if n in self.layers]
        total = sum(m.weights for m in masks)
        return sum(m.removed for m in masks) / total if total else 0.0


def apply_masks(layers: tuple[SparseLayer, ...], masks: Masks) -> None:
    """Zero the removed weights of ``layers`` (the model's variables, in place)."""
    for layer in layers:
        mask = masks.layers.get(layer.name)
        if mask is not None:
            layer.variable.assign(np.where(mask.keep, layer.kernel(), 0.0).astype(np.float32))


Update = Callable[[int], Masks | None]
"""``step -> new masks or None``: called after optimizer step ``step`` (1-based)."""


def mask_callback(flavor: Flavor, layers: tuple[SparseLayer, ...], masks: Masks | None,
                  update: Update | None = None,
                  on_begin: Callable[[dict[str, Any]], Masks | None] | None = None) -> Any:
    """A Keras callback (of ``flavor``) that multiplies every masked kernel by its mask after
    each training batch.

    Args:
        flavor: the model's Keras flavor.
        layers: the sparse layers of the model being trained.
        masks: the masks to hold (None: none until ``update`` returns some).
        update: called after every optimizer step with the global step; new masks replace the
            held ones from that step on.
        on_begin: called with the callback's ``params`` (``epochs``, ``steps``) at train begin;
            masks it returns are held from the first step on.
    """
    k: Any = keras_module(flavor)
    tf = tf_module()
    by_name = {layer.name: layer for layer in layers}

    def tensors(current: Masks | None) -> list[tuple[Any, Any]]:
        if current is None:
            return []
        return [(by_name[m.name].variable, tf.constant(m.keep.astype(np.float32)))
                for m in current if m.name in by_name]

    class _HoldMasks(k.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.step = 0
            self.held = tensors(masks)

        def on_train_begin(self, logs: Any = None) -> None:
            if on_begin is not None:
                new = on_begin(dict(self.params or {}))
                if new is not None:
                    self.held = tensors(new)
            self._apply()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.step += 1
            if update is not None:
                new = update(self.step)
                if new is not None:
                    self.held = tensors(new)
            self._apply()

        def _apply(self) -> None:
            for variable, keep in self.held:
                variable.assign(tf.convert_to_tensor(variable) * keep)

    return _HoldMasks()
