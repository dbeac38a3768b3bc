"""The models users bring: keras.applications backbones and two decoders, down to firmware.

Each row of ``ZOO`` is built from ``tests/zoo`` (``weights=None``: nothing is downloaded), saved
in its Keras flavor and built in-process, dense or pruned to 50% of its channels (L1, no data:
random calibration and inputs), for the board it fits: nucleo_f746 (1 MiB flash, 320 KiB RAM)
when it fits, else mps2_an500 (an emulated Cortex-M7 with 4 MiB of code memory), in which case
the row also checks that the firmware is indeed larger than the nucleo's flash. Every build must
be bit-exact with TFLite Micro on the host (portable and DSP paths) and on the emulated board.

Rows marked ``slow`` (one conversion of a large backbone takes a minute or more on a loaded
2-core machine) are what ``-m "not slow"`` leaves out; ``bench/backbones.py`` runs the whole
matrix, including the nucleo attempt of every row, and records flash, RAM and times.
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

NUCLEO_FLASH = 1 << 20


@dataclass(frozen=True)
class Row:
    model: str
    flavor: str = "keras3"
    prune: float | None = None
    board: str = "nucleo_f746"


SLOW = pytest.mark.slow
ZOO = [
    pytest.param(Row("mobilenet_v3_small", prune=0.5), id="mobilenet_v3_small-pruned50"),
    pytest.param(Row("conv_autoencoder"), id="conv_autoencoder-dense"),
    pytest.param(Row("conv_autoencoder", prune=0.5), id="conv_autoencoder-pruned50"),
    pytest.param(Row("upsampling_net"), id="upsampling_net-keras3-dense"),
    pytest.param(Row("upsampling_net", "tf_keras", prune=0.5),
                 id="upsampling_net-tf_keras-pruned50"),
    pytest.param(Row("mobilenet_v3_small", board="mps2_an500"), id="mobilenet_v3_small-dense",
                 marks=SLOW),
    pytest.param(Row("mobilenet_v2"), id="mobilenet_v2-dense", marks=SLOW),
    pytest.param(Row("mobilenet_v2", prune=0.5), id="mobilenet_v2-pruned50", marks=SLOW),
    pytest.param(Row("mobilenet_v3_small", "tf_keras", prune=0.5),
                 id="mobilenet_v3_small-tf_keras-pruned50", marks=SLOW),
    pytest.param(Row("mobilenet_v3_small_minimalistic", prune=0.5),
                 id="mobilenet_v3_small_minimalistic-pruned50", marks=SLOW),
    pytest.param(Row("mobilenet_v3_large", prune=0.5), id="mobilenet_v3_large-pruned50",
                 marks=SLOW),
    pytest.param(Row("mobilenet_v3_large_minimalistic", prune=0.5),
                 id="mobilenet_v3_large_minimalistic-pruned50", marks=SLOW),
    pytest.param(Row("efficientnet_b0", prune=0.5, board="mps2_an500"),
                 id="efficientnet_b0-pruned50", marks=SLOW),
]


def _build(row: Row, tmp_path: Path) -> dict:
    suffix = ".keras" if row.flavor == "keras3" else ".h5"
    model = BACKBONES[row.model](keras_module(row.flavor))
    path = save_model(model, tmp_path / f"{row.model}{suffix}")
    opts = BuildOptions(board=row.board, model=path, out=tmp_path / "out",
                        prune_channels=row.prune, samples=2, emulator="unicorn")
    return build(opts, progress=lambda _: None).report


@pytest.mark.parametrize("row", ZOO)
def test_backbone_builds_bit_exact(row: Row, tmp_path: Path) -> None:
    report = _build(row, tmp_path)
    run, model = report["run"], report["model"]
    assert run["samples"] == 2 and run["bit_exact"], run["mismatches"]
    assert run["host"]["bit_exact"] and run["host"]["dsp_path_bit_exact"] is True
    assert report["ok"]
    if row.board != "nucleo_f746":  # the premise of the larger board: it does not fit the nucleo
        assert report["firmware"]["flash_used_bytes"] > NUCLEO_FLASH
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
    with pytest.raises(UnsupportedError, match=r"layer 'up': TILE is not supported: TFLite "
                                               r"Micro has no TILE kernel.*bilinear"):
        build(opts, progress=lambda _: None)
    assert not (tmp_path / "out" / "report.json").exists()
