"""`--cycle-model` end to end: a real build is priced and labelled by the model it names, and the
same firmware run under each model says which one priced it (docs/cycle_models.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.tflite_builder import TensorSpec, single_op
from tinyprune.cli import main

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def _conv_model(path: Path) -> Path:
    rng = np.random.default_rng(3)
    x = TensorSpec("x", (1, 8, 8, 8), scale=(0.05,), zero_point=(-3,))
    w = TensorSpec("w", (16, 3, 3, 8), scale=(0.01,) * 16, zero_point=(0,) * 16,
                   data=rng.integers(-127, 128, (16, 3, 3, 8), dtype=np.int8))
    b = TensorSpec("b", (16,), dtype="int32", scale=(0.0005,) * 16, zero_point=(0,) * 16,
                   data=rng.integers(-500, 500, 16).astype(np.int32))
    y = TensorSpec("y", (1, 8, 8, 16), scale=(0.1,), zero_point=(2,))
    path.write_bytes(single_op("CONV_2D", [x, w, b], [y], {"padding": "SAME", "strideW": 1,
                                                          "strideH": 1}))
    return path


@pytest.fixture(scope="module")
def m4_build(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, str]:
    """One build on the M7 board priced with the non-default m4 model (report, summary)."""
    work = tmp_path_factory.mktemp("cycle-models")
    out = work / "out"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(_conv_model(work / "c.tflite")),
               "--out", str(out), "--samples", "1", "--random-samples", "0",
               "--cycle-model", "m4"])
    assert rc == 0
    return out, json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_build_reports_the_chosen_model(m4_build: tuple[Path, dict, str]) -> None:
    _, report, markdown = m4_build
    run = report["run"]
    assert run["cycle_model"] == "m4" and run["cycles_per_inference"] > 0 and run["bit_exact"]
    assert run["memory_model"] == {"flash_wait_states": 7, "flash_line_bytes": 32, "icache": True,
                                   "dcache": True, "ram_wait_states": 0, "tcm_wait_states": 0}
    assert "m4 model: flash 7 wait states, I-cache on, D-cache on" in markdown


@pytest.mark.parametrize("model", ["m7", "m4", "m0plus", "table", None])
def test_each_model_prices_the_firmware(model: str | None, m4_build: tuple[Path, dict, str],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out, report, _ = m4_build
    rc = main(["run", "--board", "nucleo_f746", "--elf", str(out / "firmware" / "firmware.elf"),
               "--region", "tp_model_invoke", *(["--cycle-model", model] if model else [])])
    printed = capsys.readouterr().out
    assert rc == 0
    memory = "no memory costs" if model == "table" else "flash 7 wait states"
    assert f"(estimate, {model or 'm7'} model: {memory}" in printed  # m7: the board's core
    if model == "m4":  # the same model prices the same firmware alike in a build and a run
        line = next(x for x in printed.splitlines() if x.startswith("region tp_model_invoke"))
        cycles = int(line.split("instructions, ")[1].split(" cycles")[0].replace(",", ""))
        assert cycles == pytest.approx(report["run"]["cycles_per_inference"], rel=0.01)
