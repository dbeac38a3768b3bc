"""A small ResNet (identity and projection shortcuts) built end to end: each residual ADD runs
inside the conv that produces one operand (tp_conv_interleaved_add_s8), the identity block's on
the narrow DSP path (tp_conv_interleaved_add_narrow_s8), and the firmware on the emulator, the
host's portable build and its DSP build all equal the TFLite Micro reference byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from tests_support import small_resnet_tflite

from tinyprune.cli import main

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def test_fused_residual_adds_are_bit_exact(tmp_path: Path) -> None:
    model = tmp_path / "resnet.tflite"
    model.write_bytes(small_resnet_tflite())
    out = tmp_path / "out"
    assert main(["build", "--board", "nucleo_f746", "--model", str(model), "--out", str(out),
                 "--samples", "2", "--random-samples", "200"]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"]
    assert r["run"]["host"]["dsp_path_bit_exact"] is True
    fused = [x for x in r["layers"] if x["fused"]]
    assert [x["kernel"] for x in fused] == ["tp_conv_interleaved_add_narrow_s8",
                                            "tp_conv_interleaved_add_s8"]
    assert all(x["op"] == "CONV_2D" and len(x["fused"]) == 1 for x in fused)
    assert "narrow scratch" in fused[0]["reason"] and "narrow" not in fused[1]["reason"]
    assert all(x["op"] != "ADD" for x in r["layers"])  # no ADD runs on its own
    memory = r["memory"]
    assert [t["layer"] for t in memory["timeline"]] == [x["name"] for x in r["layers"]]
    assert memory["arena_bytes"] + memory["scratch_bytes"] == r["firmware"]["arena_bytes"]
    scratch = [b for b in memory["buffers"] if b["scratch"]]
    assert scratch and all(b["first_op"] == b["last_op"] for b in scratch)
