"""Helpers shared by test files (importable because tests/ is on sys.path)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
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


@dataclass(frozen=True)
class BackboneRow:
    """One zoo backbone build (tests/e2e/test_backbones*.py): ``tests/zoo`` model, flavor,
    channel pruning, and the emulator (``none``: host checks only)."""

    model: str
    flavor: str = "keras3"
    prune: float | None = None
    emulator: str = "unicorn"
    boards: tuple[str, ...] = ("nucleo_f746",)
    """Tried in order: a build the first refuses as too big goes to the next (the last board's
    refusal must be the one-line "does not fit" a user can act on)."""


def check_backbone_build(row: BackboneRow, tmp_path: Path) -> None:
    """Save ``row``'s model, build it for the first of ``row.boards`` it fits (2 samples + 2
    random inputs, no data) and check it bit-exact on the host (portable and DSP) and on the
    board when it runs there; pruned rows lose over half their parameters with no barrier. A
    model no board holds must be refused with the one-line "does not fit" and its numbers."""
    from zoo import BACKBONES

    from tinyprune.api import build
    from tinyprune.config import BuildOptions
    from tinyprune.errors import DoesNotFit
    from tinyprune.models._backend import keras_module
    from tinyprune.models.load import save_model

    suffix = ".keras" if row.flavor == "keras3" else ".h5"
    model = BACKBONES[row.model](keras_module(row.flavor))
    path = save_model(model, tmp_path / f"{row.model}{suffix}")
    for board in row.boards:
        opts = BuildOptions(board=board, model=path, out=tmp_path / board,
                            prune_channels=row.prune, samples=2, random_samples=2,
                            emulator=row.emulator)
        try:
            report = build(opts, progress=lambda _: None).report
            break
        except DoesNotFit as exc:
            message = str(exc)
            assert "\n" not in message and f"board {board}" in message, message
            assert re.search(r"needs \d+ bytes, available \d+ bytes", message), message
            if board == row.boards[-1]:
                return  # refused by the largest board, with the numbers: the expected result
    run, info = report["run"], report["model"]
    assert run["host"]["bit_exact"] and run["host"]["dsp_path_bit_exact"] is True, run["host"]
    if row.emulator != "none":
        assert run["samples"] == 2 and run["bit_exact"], run["mismatches"]
    assert report["ok"]
    if row.prune is not None:
        assert info["pruning"]["barriers"] == []
        assert info["params_after"] < 0.5 * info["params_before"]
        assert info["macs_after"] < info["macs_before"]
