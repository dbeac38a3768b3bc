"""The generated C and every kernel it uses, under AddressSanitizer and UndefinedBehaviorSanitizer.

Models with many op types run on random inputs over the whole int8 range on the host; any
out-of-bounds access or undefined behaviour aborts the run, and the outputs must still equal the
TFLite Micro reference. Both the portable and the DSP (emulated intrinsics) paths are checked.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from tests_support import int8_tflite_of

from tinyprune import verify
from tinyprune.codegen import generate
from tinyprune.ir import read_tflite
from tinyprune.plan import plan

SANITIZE = ("-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer")

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")


def _many_ops():
    import keras

    inp = keras.Input((11, 9, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6")(inp)
    a = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    b = keras.layers.Conv2D(8, 1, strides=2)(x)
    x = keras.layers.Add()([a, b])
    y = keras.layers.Multiply()([x, keras.layers.Conv2D(8, 1, activation="sigmoid")(x)])
    x = keras.layers.Concatenate()([x, y])
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)))(x)
    x = keras.layers.AveragePooling2D(2, padding="same")(x)
    x = keras.layers.Conv2D(5, (3, 2))(x)
    x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(7, activation="softmax")(x))


def _conv1d():
    import keras

    return keras.Sequential([
        keras.Input((30, 5)), keras.layers.Conv1D(6, 4, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])


@pytest.mark.parametrize("builder", [_many_ops, _conv1d])
@pytest.mark.parametrize("dsp", [False, True])
def test_generated_code_is_clean_under_sanitizers(builder, dsp: bool, tmp_path: Path) -> None:
    tflite = int8_tflite_of(builder())
    graph = read_tflite(tflite)
    planned = plan(graph, dsp=dsp)
    project = generate(planned, tmp_path / "src", model_name="m", source_name="m.keras")
    exe = verify.host_compile(project, tmp_path, dsp=dsp, extra_flags=SANITIZE)
    inputs = verify.random_inputs(graph, 12, seed=3)
    inputs[0, :] = 0x80  # -128 everywhere
    inputs[1, :] = 0x7F  # 127 everywhere
    outputs = verify.host_outputs(exe, inputs, project.output_bytes, tmp_path)
    reference = verify.reference_outputs(tflite, graph, inputs)
    assert verify.compare(reference, outputs).bit_exact
    assert np.any(outputs != outputs[0])  # the inputs really reached the outputs
