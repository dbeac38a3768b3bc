"""The models users bring: keras.applications backbones and two decoders, down to firmware.

Each row of ``ZOO`` is built from ``tests/zoo`` (``weights=None``: nothing is downloaded), saved
in its Keras flavor and built in-process, dense or pruned to 50% of its channels (L1, no data:
random calibration and inputs), for nucleo_f746 (1 MiB flash, 320 KiB RAM). Every build must
be bit-exact with TFLite Micro on the host (portable and DSP paths), and on the emulated board
when the row runs it.

``make test`` builds six rows (``ZOO``): MobileNetV3Small pruned, checked on
the host only (the portable and DSP builds of the generated C against TFLite Micro, 2 samples +
2 random inputs; the emulator run of the same C is what the decoder rows and the other e2e tests
cover), and the Conv2DTranspose autoencoder and the UpSampling2D network dense and pruned (and
the latter as tf_keras), on the emulated board. One conversion of a larger
backbone takes a minute or more on a loaded 2-core machine, so ``bench/backbones.py`` runs the
whole matrix (every backbone dense and pruned, on the emulated board, mps2_an500 with 4 MiB of
code memory when the nucleo refuses it) and records flash, RAM, bit-exactness and times in
``bench/results/backbones.md``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from zoo import BACKBONES

from tinyprune.api import build
from tinyprune.config import BuildOptions
from tinyprune.errors import UnsupportedError
from tinyprune.models._backend import keras_module
from tinyprune.models.load import save_model

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


@dataclass(frozen=True)
class Row:
    model: str
    flavor: str = "keras3"
    prune: float | None = None
    emulator: str = "unicorn"


ZOO = [
    # MobileNetV3Small at 32x32: hard-swish, squeeze-excite from tensor ops, pruned through
    # them; checked on the host (portable and DSP builds of the firmware's C against TFLM)
    pytest.param(Row("mobilenet_v3_small", prune=0.5, emulator="none"),
                 id="mobilenet_v3_small-pruned50-host"),
    # Conv2DTranspose decoder, dense and pruned, on the emulated board
    pytest.param(Row("conv_autoencoder"), id="conv_autoencoder-dense"),
    pytest.param(Row("conv_autoencoder", prune=0.5), id="conv_autoencoder-pruned50"),
    # UpSampling2D: bilinear in Keras 3 (RESIZE_BILINEAR), nearest in tf_keras
    # (RESIZE_NEAREST_NEIGHBOR), dense and pruned, on the emulated board
    pytest.param(Row("upsampling_net"), id="upsampling_net-dense"),
    pytest.param(Row("upsampling_net", prune=0.5), id="upsampling_net-pruned50"),
    pytest.param(Row("upsampling_net", flavor="tf_keras"), id="upsampling_net-tf_keras-dense"),
]
"""What ``make test`` builds (about 9 min of test time measured on 2 cores loaded to 7-8 by
other jobs, a few minutes idle; MobileNetV3Small takes most of it; MobileNetV2, 5 more minutes
under that load, is bench/backbones.py's). The whole
matrix (every
backbone dense and pruned, on the emulated board, the nucleo tried first) is
``bench/backbones.py``, recorded in ``bench/results/backbones.md``."""


def _build(row: Row, tmp_path: Path) -> dict:
    suffix = ".keras" if row.flavor == "keras3" else ".h5"
    model = BACKBONES[row.model](keras_module(row.flavor))
    path = save_model(model, tmp_path / f"{row.model}{suffix}")
    opts = BuildOptions(board="nucleo_f746", model=path, out=tmp_path / "out",
                        prune_channels=row.prune, samples=2, random_samples=2,
                        emulator=row.emulator)
    return build(opts, progress=lambda _: None).report


@pytest.mark.parametrize("row", ZOO)
def test_backbone_builds_bit_exact(row: Row, tmp_path: Path) -> None:
    report = _build(row, tmp_path)
    run, model = report["run"], report["model"]
    assert run["host"]["bit_exact"] and run["host"]["dsp_path_bit_exact"] is True, run["host"]
    if row.emulator != "none":
        assert run["samples"] == 2 and run["bit_exact"], run["mismatches"]
    assert report["ok"]
    if row.prune is not None:
        pruning = model["pruning"]
        assert pruning["barriers"] == []
        assert model["params_after"] < 0.5 * model["params_before"]
        assert model["macs_after"] < model["macs_before"]


def test_keras3_nearest_upsampling_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """Keras 3's UpSampling2D(interpolation='nearest') becomes TILE, which TFLite Micro lacks."""
    k = keras_module("keras3")
    inp = k.Input((6, 6, 2))
    x = k.layers.UpSampling2D(name="up")(k.layers.Conv2D(4, 3, padding="same")(inp))
    path = save_model(k.Model(inp, x), tmp_path / "up.keras")
    opts = BuildOptions(board="nucleo_f746", model=path, out=tmp_path / "out", samples=1,
                        emulator="none")
    with pytest.raises(UnsupportedError, match=r"layer 'up': op TILE is not supported: TFLite "
                                               r"Micro has no TILE kernel.*bilinear"):
        build(opts, progress=lambda _: None)
    assert not (tmp_path / "out" / "report.json").exists()
