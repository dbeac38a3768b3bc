"""Shared fixtures: small converted models built once per session."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def convert_int8(model, input_shape, *, n: int = 16, seed: int = 0) -> bytes:
    """Full-int8 conversion of a Keras 3 model with random representative data."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.uniform(-1, 1, (1, *input_shape)).astype(np.float32)] for _ in range(n))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


@pytest.fixture(scope="session")
def flatten_model_tflite() -> bytes:
    import keras

    keras.utils.set_random_seed(0)
    m = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="c1"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="fc"),
        keras.layers.Softmax(),
    ])
    return convert_int8(m, (8, 8, 1))


def have_cross_toolchain() -> bool:
    return shutil.which("arm-none-eabi-gcc") is not None
