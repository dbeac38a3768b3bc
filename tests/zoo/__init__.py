"""Small model builders for tests, in both Keras flavors.

Every builder takes the flavor's module (``keras`` or ``tf_keras``) as ``k`` and returns a built
model. Activations are zero-preserving (ReLU, ReLU6, linear) wherever a coupled channel flows, so
the zero-channel equivalence tests hold exactly. ``COUPLINGS`` maps a coupling name to a builder
that exercises it; ``ARCHITECTURES`` lists the larger example networks; ``BACKBONES`` the
``keras.applications`` models users bring (no weights: nothing is downloaded) and two decoders.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType, SimpleNamespace
from typing import Any

Builder = Callable[[ModuleType], Any]


def digits_cnn(k: ModuleType, sequential: bool = True) -> Any:
    """The demo network: Conv2D/BN/ReLU/pool/Conv2D/BN/ReLU/GAP/Dense on 8x8 digits."""
    layers = [
        k.layers.Conv2D(8, 3, padding="same"), k.layers.BatchNormalization(), k.layers.ReLU(),
        k.layers.MaxPooling2D(), k.layers.Conv2D(16, 3, padding="same"),
        k.layers.BatchNormalization(), k.layers.ReLU(), k.layers.GlobalAveragePooling2D(),
        k.layers.Dense(10, activation="softmax"),
    ]
    if sequential:
        return k.Sequential([k.Input((8, 8, 1)), *layers], name="digits")
    x = inp = k.Input((8, 8, 1))
    for layer in layers:
        x = layer(x)
    return k.Model(inp, x, name="digits_functional")


def _conv_bn(k: ModuleType, x: Any, filters: int, kernel: int = 3, strides: int = 1) -> Any:
    x = k.layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = k.layers.BatchNormalization()(x)
    return k.layers.ReLU(6.0)(x)


def _inverted_residual(k: ModuleType, x: Any, expand: int, out: int, strides: int) -> Any:
    channels = x.shape[-1]
    y = _conv_bn(k, x, channels * expand, 1)
    y = k.layers.DepthwiseConv2D(3, strides=strides, padding="same", use_bias=False)(y)
    y = k.layers.BatchNormalization()(y)
    y = k.layers.ReLU(6.0)(y)
    y = k.layers.Conv2D(out, 1, use_bias=False)(y)
    y = k.layers.BatchNormalization()(y)
    if strides == 1 and channels == out:
        y = k.layers.Add()([x, y])
    return y


def mobilenet_v2(k: ModuleType) -> Any:
    """MobileNetV2-style: stem, inverted residual blocks with Add, GAP, classifier."""
    inp = k.Input((16, 16, 3))
    x = _conv_bn(k, inp, 8, strides=2)
    x = _inverted_residual(k, x, 2, 8, 1)
    x = _inverted_residual(k, x, 2, 12, 2)
    x = _inverted_residual(k, x, 2, 12, 1)
    x = _conv_bn(k, x, 16, 1)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Dense(4, activation="softmax")(x), name="mobilenet_v2_tiny")


def _fire(k: ModuleType, x: Any, squeeze: int, expand: int) -> Any:
    s = k.layers.Conv2D(squeeze, 1, activation="relu")(x)
    e1 = k.layers.Conv2D(expand, 1, activation="relu")(s)
    e3 = k.layers.Conv2D(expand, 3, padding="same", activation="relu")(s)
    return k.layers.Concatenate()([e1, e3])


def squeezenet(k: ModuleType) -> Any:
    """SqueezeNet-style: fire modules (squeeze, two expands joined by Concatenate)."""
    inp = k.Input((16, 16, 3))
    x = k.layers.Conv2D(12, 3, strides=2, padding="same", activation="relu")(inp)
    x = _fire(k, x, 4, 8)
    x = k.layers.MaxPooling2D()(x)
    x = _fire(k, x, 6, 12)
    x = k.layers.Conv2D(5, 1)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    return k.Model(inp, k.layers.Activation("softmax")(x), name="squeezenet_tiny")


def conv1d_series(k: ModuleType) -> Any:
    """Time-series classifier: Conv1D/BN/ReLU/pool, separable and depthwise 1D, GAP, Dense."""
    inp = k.Input((32, 3))
    x = k.layers.Conv1D(8, 5, padding="same")(inp)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU()(x)
    x = k.layers.MaxPooling1D()(x)
    x = k.layers.SeparableConv1D(12, 3, padding="same", activation="relu")(x)
    x = k.layers.Conv1D(12, 3, padding="same", activation="relu")(x)
    x = k.layers.GlobalAveragePooling1D()(x)
    return k.Model(inp, k.layers.Dense(3, activation="softmax")(x), name="conv1d_series")


def mlp(k: ModuleType) -> Any:
    """Multi-layer perceptron with dropout (Sequential)."""
    return k.Sequential([
        k.Input((20,)), k.layers.Dense(32, activation="relu"), k.layers.Dropout(0.2),
        k.layers.Dense(16, activation="relu"), k.layers.Dense(4, activation="softmax"),
    ], name="mlp")


# ---- one model per coupling ---------------------------------------------------------------

def _head(k: ModuleType, x: Any) -> Any:
    return k.layers.Dense(3)(k.layers.GlobalAveragePooling2D()(x))


def _stem(k: ModuleType, shape: tuple[int, ...] = (8, 8, 2)) -> tuple[Any, Any]:
    inp = k.Input(shape)
    return inp, k.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)


def merge(name: str) -> Builder:
    """A residual pair of branches joined by the merge layer ``name``."""

    def build(k: ModuleType) -> Any:
        inp, x = _stem(k)
        a = k.layers.Conv2D(8, 3, padding="same")(x)
        b = k.layers.Conv2D(8, 1)(x)
        y = getattr(k.layers, name)()([a, b])
        y = k.layers.Conv2D(6, 1, activation="relu")(y)
        return k.Model(inp, _head(k, y), name=f"merge_{name.lower()}")

    return build


def _chain(*make: Callable[[ModuleType], Any], shape: tuple[int, ...] = (8, 8, 2),
           head: bool = True) -> Builder:
    def build(k: ModuleType) -> Any:
        inp, x = _stem(k, shape)
        for fn in make:
            x = fn(k)(x)
        return k.Model(inp, _head(k, x) if head else x)

    return build


def depthwise_multiplier(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.DepthwiseConv2D(3, depth_multiplier=2, padding="same")(x)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.Conv2D(6, 1, activation="relu")(x)
    return k.Model(inp, _head(k, x))


def separable(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.SeparableConv2D(8, 3, depth_multiplier=2, padding="same", activation="relu")(x)
    x = k.layers.Conv2D(6, 1)(x)
    return k.Model(inp, _head(k, x))


def concatenate(k: ModuleType) -> Any:
    inp, x = _stem(k)
    a = k.layers.Conv2D(4, 1, activation="relu")(x)
    b = k.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = k.layers.Concatenate()([a, x, b])
    y = k.layers.Conv2D(6, 1)(y)
    return k.Model(inp, _head(k, y))


def flatten_dense(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.MaxPooling2D()(x)
    x = k.layers.Flatten()(x)
    x = k.layers.Dense(8, activation="relu")(x)
    return k.Model(inp, k.layers.Dense(3)(x))


def reshape_dense(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.AveragePooling2D(2)(x)
    x = k.layers.Reshape((-1,))(x)
    return k.Model(inp, k.layers.Dense(3)(k.layers.Dense(8, activation="relu")(x)))


def reshape_keep_channels(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.Reshape((64, 8))(x)
    x = k.layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = k.layers.GlobalMaxPooling1D()(x)
    return k.Model(inp, k.layers.Dense(3)(x))


def squeeze_excite(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    s = k.layers.GlobalAveragePooling2D()(x)
    s = k.layers.Dense(4, activation="relu")(s)
    s = k.layers.Dense(8, activation="sigmoid")(s)
    x = k.layers.Multiply()([x, k.layers.Reshape((1, 1, 8))(s)])
    return k.Model(inp, _head(k, k.layers.Conv2D(6, 1)(x)))


def nested(k: ModuleType) -> Any:
    block = k.Sequential([
        k.Input((8, 8, 8)), k.layers.Conv2D(8, 3, padding="same"),
        k.layers.BatchNormalization(), k.layers.ReLU(),
    ], name="block")
    inp, x = _stem(k)
    x = block(x)
    x = k.layers.Conv2D(6, 1)(x)
    return k.Model(inp, _head(k, x))


def spatial_ops(k: ModuleType) -> Any:
    inp, x = _stem(k)
    x = k.layers.ZeroPadding2D(1)(x)
    x = k.layers.Cropping2D(1)(x)
    x = k.layers.UpSampling2D()(x)
    x = k.layers.SpatialDropout2D(0.1)(x)
    x = k.layers.AveragePooling2D(2)(x)
    x = k.layers.Conv2D(6, 3, padding="same")(x)
    x = k.layers.GlobalMaxPooling2D()(x)
    return k.Model(inp, k.layers.Dense(3)(x))


def concat_then_add(k: ModuleType) -> Any:
    inp, x = _stem(k)
    a = k.layers.Conv2D(4, 1)(x)
    b = k.layers.Conv2D(4, 1)(x)
    y = k.layers.Concatenate()([a, b])
    z = k.layers.Add()([y, k.layers.Conv2D(8, 1)(x)])
    return k.Model(inp, _head(k, k.layers.Conv2D(6, 1)(z)))


def conv1d(k: ModuleType) -> Any:
    return conv1d_series(k)


def conv_transpose(k: ModuleType) -> Any:
    """A decoder: strided conv down, Conv2DTranspose back up, a bilinear Resizing."""
    inp, x = _stem(k)
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = k.layers.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(x)
    x = k.layers.Resizing(12, 12, interpolation="bilinear")(x)
    return k.Model(inp, _head(k, k.layers.Conv2D(4, 1)(x)))


def tensor_ops_of(k: ModuleType) -> Any:
    """Functions on symbolic tensors: ``keras.ops`` (Keras 3 records ``Operation`` nodes) or
    TensorFlow's (tf_keras records ``TFOpLambda`` layers)."""
    if k.__name__ == "keras":
        return k.ops
    import tensorflow as tf

    return SimpleNamespace(
        relu6=tf.nn.relu6, relu=tf.nn.relu, transpose=tf.transpose,
        mean=lambda x, axis, keepdims: tf.reduce_mean(x, axis=axis, keepdims=keepdims),
    )


def tensor_ops(k: ModuleType) -> Any:
    """MobileNetV3's blocks written with tensor operations instead of layers: hard-swish
    ``x * relu6(x + 3) / 6``, a squeeze-excite gate through ``mean`` and a hard-sigmoid, and a
    residual ``+``."""
    ops = tensor_ops_of(k)
    inp, x = _stem(k)
    y = k.layers.Conv2D(8, 3, padding="same")(x)
    y = y * ops.relu6(y + 3.0) * (1.0 / 6.0)
    s = ops.mean(y, axis=(1, 2), keepdims=True)
    s = k.layers.Conv2D(4, 1, activation="relu")(s)
    s = k.layers.Conv2D(8, 1)(s)
    y = y * (ops.relu6(s + 3.0) * (1.0 / 6.0))
    y = ops.relu(y + x)
    return k.Model(inp, _head(k, k.layers.Conv2D(6, 1)(y)))


COUPLINGS: dict[str, Builder] = {
    **{f"merge_{n.lower()}": merge(n)
       for n in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    "sequential_cnn": digits_cnn,
    "functional_cnn": lambda k: digits_cnn(k, sequential=False),
    "depthwise_multiplier": depthwise_multiplier,
    "separable": separable,
    "concatenate": concatenate,
    "concat_then_add": concat_then_add,
    "flatten_dense": flatten_dense,
    "reshape_dense": reshape_dense,
    "reshape_keep_channels": reshape_keep_channels,
    "squeeze_excite": squeeze_excite,
    "nested": nested,
    "spatial_ops": spatial_ops,
    "conv1d": conv1d,
    "mlp": mlp,
    "tensor_ops": tensor_ops,
    "conv_transpose": conv_transpose,
}

ARCHITECTURES: dict[str, Builder] = {
    "mobilenet_v2": mobilenet_v2,
    "squeezenet": squeezenet,
    "conv1d_series": conv1d_series,
    "mlp": mlp,
    "digits_cnn": digits_cnn,
}


# ---- keras.applications backbones and decoders (tests/e2e/test_backbones.py) --------------

def _app(name: str, shape: tuple[int, int, int] = (32, 32, 3), **kwargs: Any) -> Builder:
    """``k.applications.<name>`` without weights, a 10-class head and logits out (an untrained
    softmax head is refused: its logits span almost nothing)."""

    def build(k: ModuleType) -> Any:
        return getattr(k.applications, name)(input_shape=shape, weights=None, classes=10,
                                             classifier_activation=None, **kwargs)

    return build


def conv_autoencoder(k: ModuleType) -> Any:
    """A small convolutional autoencoder: two strided convs down, two Conv2DTranspose up."""
    inp = k.Input((16, 16, 1))
    x = k.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = k.layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    x = k.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu")(x)
    x = k.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu")(x)
    return k.Model(inp, k.layers.Conv2D(1, 3, padding="same")(x), name="conv_autoencoder")


def upsampling_net(k: ModuleType) -> Any:
    """A segmentation-style head: conv features at 1/4 size, UpSampling2D back to the input.

    Keras 3's nearest UpSampling2D becomes TILE, which TFLite Micro lacks (refused with what to
    do); Keras 3 builds use bilinear, tf_keras builds nearest (RESIZE_NEAREST_NEIGHBOR).
    """
    interpolation = "bilinear" if k.__name__ == "keras" else "nearest"
    inp = k.Input((24, 24, 3))
    x = k.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(inp)
    x = k.layers.Conv2D(24, 3, strides=2, padding="same", activation="relu")(x)
    x = k.layers.UpSampling2D(interpolation=interpolation)(x)
    x = k.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = k.layers.UpSampling2D(interpolation=interpolation)(x)
    return k.Model(inp, k.layers.Conv2D(4, 1)(x), name="upsampling_net")


BACKBONES: dict[str, Builder] = {
    "mobilenet_v2": _app("MobileNetV2", alpha=0.35),
    "mobilenet_v3_small": _app("MobileNetV3Small", alpha=0.75),
    "mobilenet_v3_small_minimalistic": _app("MobileNetV3Small", alpha=0.75, minimalistic=True),
    "mobilenet_v3_large": _app("MobileNetV3Large", alpha=0.75),
    "mobilenet_v3_large_minimalistic": _app("MobileNetV3Large", alpha=0.75, minimalistic=True),
    "efficientnet_b0": _app("EfficientNetB0"),
    "conv_autoencoder": conv_autoencoder,
    "upsampling_net": upsampling_net,
}
