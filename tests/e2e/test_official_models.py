"""The official MLPerf Tiny int8 models (tests/fixtures/mlperf_tiny): bit-exact for any input.

Regression: the per-tensor FULLY_CONNECTED multiplier of ad01_int8.tflite (an old converter's
model) differed from the reference interpreter's rounding, 1 LSB on about 1% of random inputs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyprune import verify
from tinyprune.cli import main
from tinyprune.codegen import generate
from tinyprune.ir import read_tflite
from tinyprune.plan import plan

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mlperf_tiny"
AD01 = FIXTURES / "ad01_int8.tflite"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def test_ad01_repro_inputs_are_bit_exact_on_the_emulator(tmp_path: Path) -> None:
    out = tmp_path / "ad01"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(AD01), "--data",
               str(FIXTURES / "ad01_mismatch.npz"), "--samples", "5", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["samples"] == 5
    assert report["run"]["mismatches"] == []
    assert report["run"]["bit_exact"] and report["run"]["host"]["bit_exact"]
    assert rc == 0


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_ad01_bit_exact_on_1000_random_full_range_inputs(tmp_path: Path, dsp: bool) -> None:
    raw = AD01.read_bytes()
    graph = read_tflite(raw)
    project = generate(plan(graph, dsp=dsp), tmp_path / "src", model_name="ad01",
                       source_name=AD01.name)
    inputs = np.concatenate([verify.random_inputs(graph, 1000, seed=123),
                             verify.random_inputs(graph, 1000, seed=7)])
    expected = verify.reference_outputs(raw, graph, inputs)
    exe = verify.host_compile(project, tmp_path, dsp=dsp)
    actual = verify.host_outputs(exe, inputs, project.output_bytes, tmp_path)
    cmp = verify.compare(expected, actual)
    assert cmp.samples == 2000
    assert cmp.mismatches == ()
