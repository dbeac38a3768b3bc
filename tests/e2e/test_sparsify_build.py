"""``tinyprune build`` with the sparsify stage, end to end: the real sparsify engine, converter,
planner, cross compiler, emulator and TFLite Micro oracle.

1. Keras 3 digits CNN, command line ``--sparsity 0.75 --block 1x4`` (no data: calibrated on
   seeded random inputs, no fine-tuning, to keep the test short): the removed weights are 0
   in the int8 model, the planner picks block-sparse kernels by itself, their weights are
   smaller than the dense encoding, the firmware is bit-exact; the report's layers carry the
   planner's figures.
2. tf_keras model, ``tinyprune.toml`` with ``[prune]`` and ``[sparsify]`` (4x4 blocks after
   structural pruning): both stages run, bit-exact, sparse kernels chosen.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tinyprune.cli import main

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
LAYER_KEYS = {"format", "density", "weight_bytes_dense", "est_cycles", "est_cycles_dense",
              "est_cycles_sparse", "reason"}
FAST = ["--samples", "2", "--random-samples", "20"]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def _sparse_layers(r: dict[str, Any]) -> list[dict[str, Any]]:
    return [x for x in r["layers"] if x["format"] not in (None, "dense")]


def _check_bit_exact(r: dict[str, Any]) -> None:
    assert r["ok"] and r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"]
    assert r["run"]["host"]["dsp_path_bit_exact"] is True


def test_cli_sparsity_builds_bit_exact_with_block_sparse_kernels(tmp_path: Path,
                                                                  capsys) -> None:
    out = tmp_path / "sparse"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
               "--sparsity", "0.75", "--block", "1x4", "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "[3/10] sparsify 75% 1x4, l1, oneshot" in captured.err
    assert "every removed weight is 0 in the int8 weights" in captured.err
    r = _report(out)
    _check_bit_exact(r)
    s = r["model"]["sparsify"]
    assert s["pattern"] == "1x4" and s["schedule"] == "oneshot" and s["target"] == 0.75
    assert {x["name"] for x in s["layers"]} == {"conv2", "conv3", "fc"}
    assert [x["layer"] for x in s["skipped"]] == ["conv1"]  # one input channel: no 1x4 block
    int8 = {x["layer"]: x for x in s["int8"]["layers"]}
    assert all(x["zeros"] >= x["masked"] and x["unit_sparsity"] >= 0.75 for x in int8.values())
    for x in r["layers"]:
        assert set(x) >= LAYER_KEYS
    by_name = {x["name"]: x for x in r["layers"] if x["op"] == "CONV_2D"}
    for name in ("conv2", "conv3"):  # 32 -> 32 3x3 and 32 -> 64: the block kernels pay
        x = by_name[name]
        assert x["kernel"] == "tp_conv_bsr_s8" and x["format"].startswith("bsr")
        assert x["density"] <= 0.26 and x["weight_bytes"] < 0.5 * x["weight_bytes_dense"]
        assert x["est_cycles"] == x["est_cycles_sparse"] < 0.5 * x["est_cycles_dense"]
        assert "the dense kernel's" in x["reason"]
    sparse = _sparse_layers(r)
    assert sum(x["weight_bytes"] for x in sparse) < sum(x["weight_bytes_dense"] for x in sparse)
    md = (out / "report.md").read_text()
    assert "weights as" in md and "bsr 1x4" in md


def _tf_keras_model(path: Path) -> Path:
    import tf_keras as k

    k.utils.set_random_seed(1)
    inp = k.Input((8, 8, 1))
    x = k.layers.Conv2D(16, 3, padding="same", activation="relu", name="c1")(inp)
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2")(x)
    x = k.layers.Conv2D(32, 3, padding="same", activation="relu", name="c3")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    out = k.layers.Dense(10, activation="softmax", name="fc")(x)
    model = k.Model(inp, out)
    model.save(path)
    return path


def test_project_file_prunes_then_sparsifies_a_tf_keras_model(tmp_path: Path, capsys) -> None:
    model = _tf_keras_model(tmp_path / "tfk.h5")
    config = tmp_path / "tinyprune.toml"
    config.write_text(f'model = "{model.name}"\nboard = "nucleo_f746"\n'
                      '[prune]\nchannels = 0.25\n[sparsify]\nsparsity = 0.75\nblock = "4x4"\n'
                      'criterion = "l2"\n')
    out = tmp_path / "out"
    rc = main(["build", "--config", str(config), "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    r = _report(out)
    _check_bit_exact(r)
    assert r["model"]["pruning"]["ratio"] > 0
    assert r["model"]["params_after"] < r["model"]["params_before"]
    s = r["model"]["sparsify"]
    assert s["flavor"] == "tf_keras" and s["pattern"] == "4x4" and s["criterion"] == "l2"
    assert s["int8"]["sparsity"] >= 0.74
    c3 = next(x for x in r["layers"] if x["name"] == "c3")
    assert c3["format"] == "bsr 4x4" and c3["weight_bytes"] < c3["weight_bytes_dense"]
    dense = {x["name"]: x for x in r["layers"] if x["op"] == "CONV_2D"}["c1"]
    assert dense["format"] == "dense" and dense["density"] > 0.9  # one input channel: skipped
    assert "a sparse format needs" in dense["reason"]
    assert all(x["density"] <= 0.26 for x in r["layers"] if x["name"] in ("c2", "c3"))


def test_a_ds_cnn_at_75_percent_runs_its_depthwise_layers_block_sparse(tmp_path: Path,
                                                                       capsys) -> None:
    """DS-CNN-shaped (four depthwise 3x3 + pointwise blocks over 8x8, 32 channels) at 75% 1x4
    with --sparsify-depthwise: the depthwise layers are sparsified (4 channels at one tap), stay
    zero in int8, run tp_depthwise_conv_bsr_s8 by the planner's choice, and the firmware is
    bit-exact (emulator, host, both C paths)."""
    from tinyprune.models import zoo
    from tinyprune.models.load import save_model

    model = save_model(zoo.dscnn_small(seed=2, filters=32), tmp_path / "dscnn.keras")
    out = tmp_path / "out"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(model), "--sparsity", "0.75",
               "--block", "1x4", "--sparsify-depthwise", "--out", str(out), *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    r = _report(out)
    _check_bit_exact(r)
    s = r["model"]["sparsify"]
    dws = [f"dw{i}" for i in range(1, 5)]
    assert {x["name"] for x in s["layers"]} >= set(dws)
    int8 = {x["layer"]: x for x in s["int8"]["layers"]}
    assert all(int8[n]["opcode"] == "DEPTHWISE_CONV_2D" and int8[n]["unit_sparsity"] >= 0.74
               for n in dws)
    layers = [x for x in r["layers"] if x["op"] == "DEPTHWISE_CONV_2D"]
    assert len(layers) == 4
    for x in layers:
        assert x["kernel"] == "tp_depthwise_conv_bsr_s8" and x["format"] == "bsr 1x4", x
        assert x["density"] <= 0.26 and x["weight_bytes"] < x["weight_bytes_dense"]
        assert x["est_cycles"] == x["est_cycles_sparse"] < x["est_cycles_dense"]
        assert "depthwise blocks" in x["reason"] and x["cycles"] > 0
