"""Reference architectures: the four MLPerf Tiny models and a small CNN for the 8x8 digits demo.

Each builder takes ``flavor`` (``"keras3"`` or ``"tf_keras"``) and ``seed`` and returns an
uncompiled model with seeded random weights (the same weights in both flavors for the same seed).
The MLPerf Tiny topologies follow the reference training code of mlcommons/tiny
(benchmark/training): same layers, kernel sizes, strides, padding, biases and L2(1e-4)
regularizers. Layer names are fixed so that builds are reproducible byte for byte.

Published figures (params with BatchNorm folded, MACs per inference) are in :data:`REFERENCE`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.models._backend import Flavor, keras_module

L2 = 1e-4


@dataclass(frozen=True)
class Reference:
    """Published figures of a reference model."""

    params: int
    macs: int
    input_shape: tuple[int, ...]
    classes: int


REFERENCE: dict[str, Reference] = {
    "kws": Reference(22_600, 2_660_000, (49, 10, 1), 12),
    "vww": Reference(210_900, 7_490_000, (96, 96, 3), 2),
    "ic": Reference(77_700, 12_500_000, (32, 32, 3), 10),
    "ad": Reference(265_900, 264_000, (640,), 640),
}


# ---------------------------------------------------------------- seeded weights


def _init_value(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    if name in ("gamma", "moving_variance"):
        return rng.uniform(0.5, 1.5, shape)
    if name in ("beta", "moving_mean", "bias"):
        return rng.normal(0.0, 0.05, shape)
    fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    if name == "depthwise_kernel":  # (kh, kw, in, mult): fan-in is the window only
        fan_in = int(np.prod(shape[:-2]))
    limit = np.sqrt(6.0 / max(fan_in, 1))  # He uniform
    return rng.uniform(-limit, limit, shape)


def seed_weights(model: Any, seed: int) -> Any:
    """Set every weight of ``model`` from a NumPy generator seeded with ``seed``; returns model."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        for weight in layer.weights:
            name = weight.name.split("/")[-1].split(":")[0]
            shape = tuple(int(d) for d in weight.shape)
            weight.assign(_init_value(name, shape, rng).astype(np.float32))
    return model


# ---------------------------------------------------------------- small layer helpers


class _Blocks:
    """Layer factories for one flavor with the reference defaults (same padding, L2 1e-4)."""

    def __init__(self, flavor: Flavor) -> None:
        self.lib = keras_module(flavor)
        self.L = self.lib.layers

    def reg(self) -> Any:
        return self.lib.regularizers.l2(L2)

    def conv(self, x: Any, filters: int, kernel: Any, name: str, strides: Any = 1) -> Any:
        return self.L.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=self.reg(),
            name=name,
        )(x)

    def dw(self, x: Any, name: str, strides: int = 1) -> Any:
        return self.L.DepthwiseConv2D(
            3,
            strides=strides,
            padding="same",
            depthwise_initializer="he_normal",
            depthwise_regularizer=self.reg(),
            name=name,
        )(x)

    def bn_relu(self, x: Any, name: str, relu: bool = True) -> Any:
        x = self.L.BatchNormalization(name=f"{name}_bn")(x)
        return self.L.Activation("relu", name=f"{name}_relu")(x) if relu else x

    def model(self, inputs: Any, outputs: Any, name: str, seed: int) -> Any:
        return seed_weights(self.lib.Model(inputs, outputs, name=name), seed)


# ---------------------------------------------------------------- builders


def kws_dscnn(flavor: Flavor = "keras3", seed: int = 0) -> Any:
    """MLPerf Tiny keyword spotting DS-CNN: 49x10x1 MFCC -> 12 classes (22.6k params)."""
    b = _Blocks(flavor)
    inputs = b.L.Input((49, 10, 1), name="input")
    x = b.conv(inputs, 64, (10, 4), "conv1", strides=(2, 2))
    x = b.bn_relu(x, "conv1")
    x = b.L.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = b.bn_relu(b.dw(x, f"dw{i}"), f"dw{i}")
        x = b.bn_relu(b.conv(x, 64, (1, 1), f"pw{i}"), f"pw{i}")
    x = b.L.Dropout(0.4, name="drop2")(x)
    x = b.L.AveragePooling2D(pool_size=(24, 5), name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    outputs = b.L.Dense(12, activation="softmax", name="fc")(x)
    return b.model(inputs, outputs, "kws_dscnn", seed)


# (depthwise stride, pointwise filters) of MobileNetV1 at alpha 0.25 after the first conv.
_MOBILENET_BLOCKS = (
    (1, 16),
    (2, 32),
    (1, 32),
    (2, 64),
    (1, 64),
    (2, 128),
    (1, 128),
    (1, 128),
    (1, 128),
    (1, 128),
    (1, 128),
    (2, 256),
    (1, 256),
)


def vww_mobilenet(flavor: Flavor = "keras3", seed: int = 0) -> Any:
    """MLPerf Tiny visual wake words MobileNetV1-0.25: 96x96x3 -> 2 classes (210.9k params)."""
    b = _Blocks(flavor)
    inputs = b.L.Input((96, 96, 3), name="input")
    x = b.bn_relu(b.conv(inputs, 8, 3, "conv1", strides=2), "conv1")
    for i, (stride, filters) in enumerate(_MOBILENET_BLOCKS, start=1):
        x = b.bn_relu(b.dw(x, f"dw{i}", strides=stride), f"dw{i}")
        x = b.bn_relu(b.conv(x, filters, 1, f"pw{i}"), f"pw{i}")
    x = b.L.AveragePooling2D(pool_size=(3, 3), name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    outputs = b.L.Dense(2, activation="softmax", name="fc")(x)
    return b.model(inputs, outputs, "vww_mobilenet", seed)


def _residual_stack(b: _Blocks, x: Any, filters: int, stride: int, name: str) -> Any:
    y = b.bn_relu(b.conv(x, filters, 3, f"{name}_conv1", strides=stride), f"{name}_conv1")
    y = b.bn_relu(b.conv(y, filters, 3, f"{name}_conv2"), f"{name}_conv2", relu=False)
    if stride != 1:  # projection shortcut (1x1 conv, no BatchNorm in the reference)
        x = b.conv(x, filters, 1, f"{name}_proj", strides=stride)
    x = b.L.Add(name=f"{name}_add")([x, y])
    return b.L.Activation("relu", name=f"{name}_relu")(x)


def ic_resnet8(flavor: Flavor = "keras3", seed: int = 0) -> Any:
    """MLPerf Tiny image classification ResNet-8: 32x32x3 -> 10 classes (77.7k params)."""
    b = _Blocks(flavor)
    inputs = b.L.Input((32, 32, 3), name="input")
    x = b.bn_relu(b.conv(inputs, 16, 3, "conv1"), "conv1")
    x = _residual_stack(b, x, 16, 1, "stack1")
    x = _residual_stack(b, x, 32, 2, "stack2")
    x = _residual_stack(b, x, 64, 2, "stack3")
    x = b.L.AveragePooling2D(pool_size=8, name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    outputs = b.L.Dense(10, activation="softmax", kernel_initializer="he_normal", name="fc")(x)
    return b.model(inputs, outputs, "ic_resnet8", seed)


def ad_autoencoder(flavor: Flavor = "keras3", seed: int = 0) -> Any:
    """MLPerf Tiny anomaly detection FC autoencoder: 640 -> 640 (265.9k params)."""
    b = _Blocks(flavor)
    inputs = b.L.Input((640,), name="input")
    x = inputs
    for i, units in enumerate((128, 128, 128, 128, 8, 128, 128, 128, 128), start=1):
        x = b.bn_relu(b.L.Dense(units, name=f"fc{i}")(x), f"fc{i}")
    outputs = b.L.Dense(640, name="fc10")(x)
    return b.model(inputs, outputs, "ad_autoencoder", seed)


def digits_cnn(flavor: Flavor = "keras3", seed: int = 0) -> Any:
    """Demo CNN for the 8x8x1 scikit-learn digits: 3 convs (16/32/32 filters) -> 10 classes."""
    b = _Blocks(flavor)
    inputs = b.L.Input((8, 8, 1), name="input")
    x = b.bn_relu(b.L.Conv2D(16, 3, padding="same", name="conv1")(inputs), "conv1")
    x = b.bn_relu(b.L.Conv2D(32, 3, padding="same", name="conv2")(x), "conv2")
    x = b.L.MaxPooling2D(2, name="pool")(x)
    x = b.bn_relu(b.L.Conv2D(32, 3, padding="same", name="conv3")(x), "conv3")
    x = b.L.GlobalAveragePooling2D(name="gap")(x)
    outputs = b.L.Dense(10, activation="softmax", name="fc")(x)
    return b.model(inputs, outputs, "digits_cnn", seed)


MLPERF_TINY: dict[str, tuple[str, Callable[..., Any]]] = {
    "kws": ("KWS DS-CNN", kws_dscnn),
    "vww": ("VWW MobileNetV1-0.25", vww_mobilenet),
    "ic": ("IC ResNet-8", ic_resnet8),
    "ad": ("AD FC autoencoder", ad_autoencoder),
}
"""The four MLPerf Tiny reference models: key -> (display name, builder)."""

ZOO: dict[str, Callable[..., Any]] = {
    "kws": kws_dscnn,
    "vww": vww_mobilenet,
    "ic": ic_resnet8,
    "ad": ad_autoencoder,
    "digits": digits_cnn,
}


# ---------------------------------------------------------------- MLPerf-shaped, any input size


def _spatial(size: int, stride: int) -> int:
    return -(-size // stride)


def dscnn_small(
    flavor: Flavor = "keras3",
    seed: int = 0,
    input_shape: tuple[int, int, int] = (8, 8, 1),
    classes: int = 10,
    first_kernel: tuple[int, int] = (3, 3),
    first_stride: tuple[int, int] = (1, 1),
    filters: int = 64,
) -> Any:
    """The DS-CNN topology of :func:`kws_dscnn` for any input (default: the 8x8 digits).

    Conv ``first_kernel``/``first_stride`` with ``filters`` filters, four depthwise 3x3 +
    pointwise 1x1 blocks, average pooling over the whole map, dense softmax. With
    ``input_shape=(49, 10, 1), classes=12, first_kernel=(10, 4), first_stride=(2, 2)`` it is
    the MLPerf Tiny KWS model.
    """
    b = _Blocks(flavor)
    inputs = b.L.Input(input_shape, name="input")
    x = b.conv(inputs, filters, first_kernel, "conv1", strides=first_stride)
    x = b.bn_relu(x, "conv1")
    x = b.L.Dropout(0.2, name="drop1")(x)
    for i in range(1, 5):
        x = b.bn_relu(b.dw(x, f"dw{i}"), f"dw{i}")
        x = b.bn_relu(b.conv(x, filters, (1, 1), f"pw{i}"), f"pw{i}")
    x = b.L.Dropout(0.4, name="drop2")(x)
    pool = tuple(_spatial(n, s) for n, s in zip(input_shape[:2], first_stride, strict=True))
    x = b.L.AveragePooling2D(pool_size=pool, name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    outputs = b.L.Dense(classes, activation="softmax", name="fc")(x)
    return b.model(inputs, outputs, "dscnn_small", seed)


def resnet8_small(
    flavor: Flavor = "keras3",
    seed: int = 0,
    input_shape: tuple[int, int, int] = (8, 8, 1),
    classes: int = 10,
) -> Any:
    """The ResNet-8 topology of :func:`ic_resnet8` for any input (default: the 8x8 digits).

    Conv 16 3x3, three residual stacks (16, 32, 64 filters, strides 1, 2, 2), average pooling
    over the whole map, dense softmax. With ``input_shape=(32, 32, 3)`` it is the MLPerf Tiny
    IC model.
    """
    b = _Blocks(flavor)
    inputs = b.L.Input(input_shape, name="input")
    x = b.bn_relu(b.conv(inputs, 16, 3, "conv1"), "conv1")
    x = _residual_stack(b, x, 16, 1, "stack1")
    x = _residual_stack(b, x, 32, 2, "stack2")
    x = _residual_stack(b, x, 64, 2, "stack3")
    pool = tuple(_spatial(n, 4) for n in input_shape[:2])
    x = b.L.AveragePooling2D(pool_size=pool, name="pool")(x)
    x = b.L.Flatten(name="flatten")(x)
    outputs = b.L.Dense(classes, activation="softmax", kernel_initializer="he_normal", name="fc")(x)
    return b.model(inputs, outputs, "resnet8_small", seed)


SMALL: dict[str, Callable[..., Any]] = {
    "dscnn": dscnn_small,
    "resnet8": resnet8_small,
}
"""MLPerf-shaped builders for any input shape and class count (digits-sized by default)."""
