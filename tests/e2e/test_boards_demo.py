"""The demo model (the digits CNN, int8) on every shipped board: built for the board's core and
kernel path, run on the default emulator, its outputs equal to the TFLite Micro reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyprune import pipeline, verify
from tinyprune.codegen import generate
from tinyprune.emulator import parse_results, run_elf
from tinyprune.firmware import board_names, load_board
from tinyprune.ir import read_tflite
from tinyprune.models import load_model
from tinyprune.plan import plan
from tinyprune.quantize import quantize

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, np.ndarray, np.ndarray]:
    """The demo model as int8 .tflite, four random full-range inputs and the reference outputs."""
    raw = quantize(load_model(DIGITS / "digits_cnn.keras"), None, samples=8)
    graph = read_tflite(raw)
    inputs = verify.random_inputs(graph, 4, seed=11)
    return raw, inputs, verify.reference_outputs(raw, graph, inputs)


@pytest.mark.parametrize("board_name", board_names())
def test_demo_model_runs_bit_exact_on_every_board(
    board_name: str, demo: tuple[bytes, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    raw, inputs, expected = demo
    board = load_board(board_name)
    project = generate(plan(read_tflite(raw), dsp=board.dsp), tmp_path / "src",
                       model_name="digits", source_name="digits_int8.tflite",
                       samples=inputs)
    fw = pipeline.make_firmware(project, board, tmp_path / "fw", stack_bytes=8192, name="demo")
    assert fw.flash_used_bytes <= board.flash.length and fw.ram_used_bytes <= board.ram.length
    run = run_elf(board, fw.elf)
    results = parse_results(run.uart)
    assert results.status == 0 and results.board == board_name
    assert results.outputs == [row.tobytes() for row in expected]
    assert all(s.cycles > 0 for s in results.samples)
