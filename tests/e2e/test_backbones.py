"""The models users bring: keras.applications backbones and two decoders, down to firmware.

Each row of ``ZOO`` is built from ``tests/zoo`` (``weights=None``: nothing is downloaded), saved
in its Keras flavor and built in-process, dense or pruned to 50% of its channels (L1, no data:
random calibration and inputs), for nucleo_f746 (1 MiB flash, 320 KiB RAM). Every build must
be bit-exact with TFLite Micro on the host (portable and DSP paths), and on the emulated board
when the row runs it.

``make test`` builds six rows: here (``ZOO``) the Conv2DTranspose autoencoder and the
UpSampling2D network dense and pruned (and the latter as tf_keras), on the emulated board; in
``tests/e2e/test_backbone_mobilenet_v3.py`` MobileNetV3Small pruned, the longest build of the
suite, in a file of its own so that the test workers share the rows. One conversion of a larger
backbone takes a minute or more on a loaded 2-core machine, so ``bench/backbones.py`` runs the
whole matrix (every backbone dense and pruned, on the emulated board, mps2_an500 with 4 MiB of
code memory when the nucleo refuses it) and records flash, RAM, bit-exactness and times in
``bench/results/backbones.md``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from tests_support import BackboneRow, check_backbone_build
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


ZOO = [
    # Conv2DTranspose decoder, dense and pruned, on the emulated board
    pytest.param(BackboneRow("conv_autoencoder"), id="conv_autoencoder-dense"),
    pytest.param(BackboneRow("conv_autoencoder", prune=0.5), id="conv_autoencoder-pruned50"),
    # UpSampling2D: bilinear in Keras 3 (RESIZE_BILINEAR), nearest in tf_keras
    # (RESIZE_NEAREST_NEIGHBOR), dense and pruned, on the emulated board
    pytest.param(BackboneRow("upsampling_net"), id="upsampling_net-dense"),
    pytest.param(BackboneRow("upsampling_net", prune=0.5), id="upsampling_net-pruned50"),
    pytest.param(BackboneRow("upsampling_net", flavor="tf_keras"),
                 id="upsampling_net-tf_keras-dense"),
]
"""The decoder rows of ``make test`` (MobileNetV2, five minutes of one worker under load, is
bench/backbones.py's). The whole matrix (every backbone dense and pruned, on the emulated board,
the nucleo tried first) is ``bench/backbones.py``, recorded in ``bench/results/backbones.md``."""


LARGEST_BOARDS = ("nucleo_f746", "mps2_an500")
"""1 MiB of flash, then 4 MiB of code memory (as bench/backbones.py)."""

FULL_ZOO = [
    pytest.param(BackboneRow(name, prune=prune, boards=LARGEST_BOARDS),
                 id=f"{name}-{'pruned50' if prune else 'dense'}-largest-board")
    for name in sorted(BACKBONES) if name not in ("conv_autoencoder", "upsampling_net")
    for prune in (None, 0.5)
] if os.environ.get("TINYPRUNE_TEST_FULL") == "1" else []
"""``make test-full`` (``TINYPRUNE_TEST_FULL=1``) adds every keras.applications backbone dense
and pruned, each on the first board it fits or refused by the largest with its numbers: about
25 minutes of one worker on a loaded 2-core machine (bench/results/backbones.md has the times),
too long for ``make test``."""


@pytest.mark.parametrize("row", ZOO + FULL_ZOO)
def test_backbone_builds_bit_exact(row: BackboneRow, tmp_path: Path) -> None:
    check_backbone_build(row, tmp_path)


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
