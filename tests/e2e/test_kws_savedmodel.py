"""The official MLPerf Tiny KWS SavedModel (saved by TF 2.3, Keras metadata inside
saved_model.pb) builds end to end in safe mode, bit-exact on the emulated board."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tinyprune.cli import main

KWS = Path(__file__).resolve().parents[1] / "fixtures" / "mlperf_tiny" / "kws_ref_model"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def test_official_kws_savedmodel_builds_bit_exact(tmp_path: Path) -> None:
    out = tmp_path / "kws"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(KWS), "--samples", "3",
               "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["kind"] == "tf_keras"
    assert report["model"]["params_before"] == 22_604
    assert report["run"]["samples"] == 3 and report["run"]["mismatches"] == []
    assert report["run"]["bit_exact"] and report["run"]["host"]["bit_exact"]
    names = [layer["name"] for layer in report["layers"]]
    assert names[:3] == ["conv2d", "depthwise_conv2d", "conv2d_1"]
    assert len(set(names)) == len(names) - 1  # FC and its softmax share the Dense layer's name
    assert rc == 0
