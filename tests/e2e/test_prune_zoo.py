"""The test zoo, pruned at 50% of channels, in both Keras flavors, down to bit-exact firmware.

Every model (the four MLPerf Tiny references and the MobileNetV2-style, SqueezeNet-style,
Conv1D and MLP test architectures) is saved in its flavor and built in-process for nucleo_f746
with ``prune_channels=0.5`` (L1, no data: random calibration and inputs): the pruned model must
convert to int8, fit the board, and be bit-exact with the TFLite Micro reference on the host and
on the emulated board, with fewer MACs than the original.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from zoo import ARCHITECTURES

from tinyprune.api import build
from tinyprune.config import BuildOptions
from tinyprune.models import zoo as mlperf
from tinyprune.models._backend import FLAVORS, Flavor, keras_module
from tinyprune.models.load import save_model

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]

Builder = Callable[[Flavor], Any]


def _test_zoo(name: str) -> Builder:
    return lambda flavor: ARCHITECTURES[name](keras_module(flavor))


def _reference(name: str) -> Builder:
    return lambda flavor: mlperf.ZOO[name](flavor=flavor, seed=0)


MODELS: dict[str, Builder] = {
    **{name: _reference(name) for name in ("kws", "vww", "ic", "ad")},
    **{name: _test_zoo(name) for name in ("mobilenet_v2", "squeezenet", "conv1d_series", "mlp")},
}

@pytest.mark.parametrize("flavor", FLAVORS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_pruned_model_builds_bit_exact(name: str, flavor: Flavor, tmp_path: Path) -> None:
    suffix = ".keras" if flavor == "keras3" else ".h5"
    path = save_model(MODELS[name](flavor), tmp_path / f"{name}{suffix}")
    opts = BuildOptions(board="nucleo_f746", model=path, out=tmp_path / "out",
                        prune_channels=0.5, samples=2, emulator="unicorn")
    report = build(opts, progress=lambda _: None).report
    model, run = report["model"], report["run"]
    assert run["samples"] == 2 and run["bit_exact"], run["mismatches"]
    assert run["host"]["bit_exact"] and run["host"]["dsp_path_bit_exact"] is not False
    pruning = model["pruning"]
    assert pruning["flavor"] == flavor and pruning["barriers"] == []
    assert any(g["channels_after"] < g["channels_before"] for g in pruning["groups"])
    assert model["macs_after"] < model["macs_before"]
    assert model["params_after"] < model["params_before"]
    assert report["ok"]
