"""The test zoo, pruned at 50% of channels, in both Keras flavors, down to bit-exact firmware.

Every model (the four MLPerf Tiny references and the MobileNetV2-style, SqueezeNet-style,
Conv1D and MLP test architectures) is saved in a Keras flavor and built in-process for nucleo_f746
with ``prune_channels=0.5`` (L1, no data: random calibration and inputs): the pruned model must
convert to int8, fit the board, and be bit-exact with the TFLite Micro reference on the host and
on the emulated board, with fewer MACs than the original.

``make test`` builds each model in one flavor, the flavors alternating so that both cover
reference and test-zoo models (the whole grid took 8.6 of the suite's 21 minutes);
``make test-full`` (``TINYPRUNE_TEST_FULL=1``) builds every model in both.
"""

from __future__ import annotations

import os
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

ONE_FLAVOR: dict[str, Flavor] = {
    "vww": "keras3", "ad": "keras3", "mobilenet_v2": "keras3", "conv1d_series": "keras3",
    "ic": "tf_keras", "kws": "tf_keras", "squeezenet": "tf_keras", "mlp": "tf_keras",
}
"""The flavor each model is built in by ``make test``."""

FULL = os.environ.get("TINYPRUNE_TEST_FULL") == "1"
CASES = [(name, flavor) for name in sorted(MODELS) for flavor in FLAVORS
         if FULL or ONE_FLAVOR[name] == flavor]


def test_both_flavors_cover_reference_and_test_zoo_models() -> None:
    for group in (("kws", "vww", "ic", "ad"), ("mobilenet_v2", "squeezenet", "conv1d_series",
                                                "mlp")):
        assert {ONE_FLAVOR[name] for name in group} == set(FLAVORS), group
    assert set(ONE_FLAVOR) == set(MODELS)


@pytest.mark.parametrize(("name", "flavor"), CASES)
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
