"""Helpers shared by test files (importable because tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any


def int8_tflite_of(model: Any) -> bytes:
    """The product path's int8 conversion of an in-memory Keras model (random calibration)."""
    from tinyprune.models.load import wrap_model
    from tinyprune.quantize import quantize

    return quantize(wrap_model(model), None, samples=16)


def small_resnet_tflite() -> bytes:
    """16x16x3 -> conv 16 -> identity block (two 3x3 convs, ADD, ReLU) -> projection block
    (3x3/2 to 32, 3x3, 1x1/2 shortcut, ADD, ReLU) -> GAP -> dense 10 (ResNet-8's first two
    stages on a smaller image: the identity block is the memory peak, as in ResNet-8)."""
    import keras
    from conftest import convert_int8
    from keras import layers

    keras.utils.set_random_seed(3)
    x = inp = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = layers.Conv2D(16, 3, padding="same")(y)
    x = layers.ReLU()(layers.Add()([x, y]))
    y = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(x)
    y = layers.Conv2D(32, 3, padding="same")(y)
    s = layers.Conv2D(32, 1, strides=2)(x)
    x = layers.ReLU()(layers.Add()([s, y]))
    x = layers.GlobalAveragePooling2D()(x)
    return convert_int8(keras.Model(inp, layers.Dense(10)(x)), (16, 16, 3))
