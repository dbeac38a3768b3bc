"""Thin convs end to end on the emulator: tp_conv_1x1_thin_s8 on every input channel count it
takes (4, 8, 12, 16; stride 2, an odd pixel count, in place) and tp_conv_interleaved_s8 reading
3x3 windows in place (C_IN % 4 == 0), built by ``tinyprune build`` for the M7 board; the
firmware on the emulator (real SMLAD / SXTB16 / SSAT), the host's portable build and its DSP
build all equal the TFLite Micro reference byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import convert_int8

from tinyprune.cli import main

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def _thin_model() -> bytes:
    import keras
    from keras import layers

    keras.utils.set_random_seed(11)
    x = inp = keras.Input((9, 7, 4))
    x = layers.Conv2D(12, 1, activation="relu")(x)  # C_IN 4: passes of 4 pixels, 63 pixels
    x = layers.Conv2D(8, 1, activation="relu6")(x)  # C_IN 12, C_OUT <= C_IN (in place)
    x = layers.Conv2D(16, 1, strides=2)(x)  # C_IN 8, stride 2: 5x4 pixels
    x = layers.Conv2D(8, 3, padding="same", activation="relu")(x)  # windows in place
    x = layers.Conv2D(3, 1)(x)  # C_IN 8, odd C_OUT
    return convert_int8(keras.Model(inp, x), (9, 7, 4))


def test_thin_convs_are_bit_exact_on_the_emulator(tmp_path: Path) -> None:
    model = tmp_path / "thin.tflite"
    model.write_bytes(_thin_model())
    out = tmp_path / "out"
    assert main(["build", "--board", "nucleo_f746", "--model", str(model), "--out", str(out),
                 "--samples", "2", "--random-samples", "100"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"]
    assert r["run"]["host"]["dsp_path_bit_exact"] is True
    kernels = [x["kernel"] for x in r["layers"]]
    assert kernels.count("tp_conv_1x1_thin_s8") == 4, kernels
    assert kernels[3].startswith("tp_conv_interleaved"), kernels
