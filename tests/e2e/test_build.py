"""`tinyprune build` end to end: real converter, cross compiler, emulator and TFLM oracle."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinyprune.cli import main

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def build(*args: str) -> int:
    return main(["build", *args])


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


SPEC_KEYS = {
    "board": {"name", "cpu", "clock_hz", "flash_bytes", "ram_bytes"},
    "model": {"source", "params_before", "params_after", "macs_before", "macs_after", "sparsity"},
    "firmware": {"flash_used_bytes", "ram_used_bytes", "arena_bytes", "stack_peak_bytes",
                 "elf_sha256"},
    "run": {"emulator", "samples", "cycles_per_inference", "cycles_are_estimate",
            "latency_ms_at_clock", "instructions_per_inference", "bit_exact", "mismatches"},
    "accuracy": {"float", "int8_reference", "firmware", "test_samples"},
}


def test_demo_build_with_pruning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    rc = build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
               "--data", str(DIGITS / "digits.npz"), "--prune-channels", "0.5",
               "--finetune-epochs", "3", "--out", str(out), "--samples", "8")
    r = report_of(out)
    assert rc == 0, capsys.readouterr().err
    for section, keys in SPEC_KEYS.items():
        assert keys <= set(r[section]), section
    assert {"schema_version", "tinyprune_version", "layers", "memory", "budgets", "ok"} <= set(r)
    memory = r["memory"]  # the arena over the ops, one timeline entry per layer
    assert memory["arena_bytes"] + memory["scratch_bytes"] == r["firmware"]["arena_bytes"]
    assert [t["layer"] for t in memory["timeline"]] == [x["name"] for x in r["layers"]]
    assert max(t["live_bytes"] for t in memory["timeline"]) <= memory["arena_bytes"]
    assert r["ok"] and r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"]
    assert r["run"]["samples"] == 8 and r["run"]["mismatches"] == []
    assert r["run"]["host"]["dsp_path_bit_exact"] is True
    assert r["model"]["params_after"] < r["model"]["params_before"]
    assert r["model"]["macs_after"] < r["model"]["macs_before"]
    assert 0 < r["firmware"]["flash_used_bytes"] < r["board"]["flash_bytes"]
    assert 0 < r["firmware"]["stack_peak_bytes"] < r["firmware"]["stack_reserved_bytes"]
    assert r["run"]["cycles_per_inference"] > sum(1 for _ in r["layers"])
    assert sum(layer["cycles"] for layer in r["layers"]) <= r["run"]["cycles_per_inference"]
    # Host build equals the reference, so int8-reference and firmware accuracy are the same.
    assert r["accuracy"]["firmware"] == r["accuracy"]["int8_reference"] > 0.5
    assert r["accuracy"]["test_samples"] == 450
    assert not (out / ".tinyprune-partial").exists()
    names = {p.name for p in out.iterdir()}
    assert {"report.json", "model_int8.tflite", "src", "firmware"} <= names
    printed = capsys.readouterr().out
    assert "bit-exact True" in printed
    assert all(layer["kernel"] in printed for layer in r["layers"])


def _functional_tf_keras():
    import tf_keras as k

    inp = k.Input((16, 16, 3))
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    a = k.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    b = k.layers.Conv2D(8, 1)(x)
    x = k.layers.Add()([a, b])
    x = k.layers.AveragePooling2D()(x)
    y = k.layers.Conv2D(4, 1, activation="relu")(x)
    x = k.layers.Concatenate()([x, y])
    x = k.layers.ZeroPadding2D(1)(x)
    x = k.layers.Conv2D(6, 3, strides=2)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    out = k.layers.Dense(3, activation="sigmoid")(x)
    return k.Model(inp, out)


def _sequential_tf_keras_1d():
    import tf_keras as k

    return k.Sequential([
        k.layers.Input((40, 3)),
        k.layers.Conv1D(8, 5, activation="relu"),
        k.layers.MaxPooling1D(2),
        k.layers.Conv1D(12, 3, padding="same", activation="relu"),
        k.layers.Flatten(),
        k.layers.Dense(16, activation="relu"),
        k.layers.Dense(5, activation="softmax"),
    ])


def _functional_keras3():
    import keras

    inp = keras.Input((12, 12, 1))
    x = keras.layers.Conv2D(6, 3, activation="relu")(inp)
    y = keras.layers.Multiply()([x, x])
    x = keras.layers.Add()([x, y])
    x = keras.layers.MaxPooling2D(3, strides=2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(4, activation="softmax")(x))


@pytest.mark.parametrize(("builder", "suffix"), [
    (_functional_tf_keras, ".h5"),
    (_sequential_tf_keras_1d, ".keras"),
    (_sequential_tf_keras_1d, ""),  # a SavedModel folder
    (_functional_keras3, ".keras"),
])
def test_untuned_models_are_bit_exact(builder, suffix: str, tmp_path: Path) -> None:
    from tinyprune.models.load import save_model

    path = save_model(builder(), tmp_path / f"model{suffix}")
    out = tmp_path / "out"
    assert build("--board", "nucleo_f746", "--model", str(path), "--out", str(out),
                 "--samples", "4") == 0
    r = report_of(out)
    assert r["run"]["bit_exact"] and r["run"]["samples"] == 4
    assert r["accuracy"]["firmware"] is None  # no data: random inputs, no accuracy


def test_tflite_input_skips_quantize_and_qemu_cross_check(tmp_path: Path) -> None:
    first = tmp_path / "first"
    assert build("--board", "mps2_an500", "--model", str(DIGITS / "digits_cnn.keras"),
                 "--out", str(first), "--samples", "2", "--emulator", "qemu") == 0
    r = report_of(first)
    assert r["run"]["emulator"] == "qemu" and r["run"]["bit_exact"]
    assert all(layer["cycles"] is None for layer in r["layers"])  # QEMU has no cycle counter
    tfl = tmp_path / "digits_int8.tflite"
    tfl.write_bytes((first / "model_int8.tflite").read_bytes())
    second = tmp_path / "second"
    assert build("--board", "nucleo_f746", "--model", str(tfl), "--out", str(second),
                 "--samples", "2") == 0
    r2 = report_of(second)
    assert r2["model"]["source"] == "digits_int8.tflite" and r2["run"]["bit_exact"]
    assert r2["model"]["params_before"] is None


def test_mlperf_kws_from_its_tflite(tmp_path: Path) -> None:
    """A reference architecture given as an int8 .tflite (what many users already have)."""
    from tests_support import int8_tflite_of

    from tinyprune.models.zoo import ZOO

    tfl = tmp_path / "kws_int8.tflite"
    tfl.write_bytes(int8_tflite_of(ZOO["kws"]()))
    out = tmp_path / "kws"
    assert build("--board", "nucleo_f746", "--model", str(tfl), "--out", str(out),
                 "--samples", "2") == 0
    r = report_of(out)
    assert r["run"]["bit_exact"] and r["model"]["macs_after"] == 2_656_768
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"} <= {
        layer["op"] for layer in r["layers"]}


def test_budget_broken_exits_1_with_report(tmp_path: Path, capsys) -> None:
    out = tmp_path / "b"
    rc = build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
               "--out", str(out), "--samples", "2", "--flash-budget", "4K", "--ram-budget", "1M")
    assert rc == 1
    r = report_of(out)
    assert r["ok"] is False
    assert r["budgets"]["flash"]["ok"] is False and r["budgets"]["flash"]["limit"] == 4096
    assert r["budgets"]["ram"]["ok"] is True
    err = capsys.readouterr().err
    assert "budget broken: flash" in err and "--prune-channels auto" in err


def _error(capsys, *args: str) -> tuple[int, str]:
    """Runs the CLI; returns the exit code and its one error line (progress lines precede it)."""
    rc = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("tinyprune: ")]
    assert len(errors) == 1, err
    return rc, errors[0]


def _bad_npz(tmp_path: Path) -> Path:
    p = tmp_path / "bad.npz"
    np.savez(p, x=np.zeros((5, 9, 9, 1), np.float32), y=np.zeros(5, np.int64))
    return p


def _corrupt(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@pytest.mark.parametrize(("case", "code", "needle"), [
    ("missing model", 2, "nope.keras"),
    ("corrupt tflite", 2, "broken.tflite"),
    ("corrupt keras", 2, "broken.keras"),
    ("wrong board", 2, "board 'nucleo_f999' not found"),
    ("dataset shape", 2, "(9, 9, 1)"),
    ("bad budget", 2, "--flash-budget"),
    ("unknown option", 2, "unrecognized arguments"),
])
def test_bad_inputs(case: str, code: int, needle: str, tmp_path: Path, capsys) -> None:
    model = str(DIGITS / "digits_cnn.keras")
    args = {
        "missing model": ["--model", str(tmp_path / "nope.keras")],
        "corrupt tflite": ["--model", str(_corrupt(tmp_path, "broken.tflite",
                                                   b"\0\0\0\0TFL3" + b"\1" * 64))],
        "corrupt keras": ["--model", str(_corrupt(tmp_path, "broken.keras", b"PK\3\4garbage"))],
        "wrong board": ["--model", model, "--board", "nucleo_f999"],
        "dataset shape": ["--model", model, "--data", str(_bad_npz(tmp_path))],
        "bad budget": ["--model", model, "--flash-budget", "lots"],
        "unknown option": ["--model", model, "--frobnicate"],
    }[case]
    if "--board" not in args:
        args += ["--board", "nucleo_f746"]
    out = tmp_path / "out"
    rc, err = _error(capsys, "build", *args, "--out", str(out))
    assert rc == code, err
    assert needle in err
    assert not (out / "report.json").exists()


def test_unsupported_op_names_op_and_layer(tmp_path: Path, capsys) -> None:
    import keras

    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, name="hidden"),
                          keras.layers.Activation("gelu", name="squash")])
    path = tmp_path / "gelu.keras"
    m.save(path)
    rc, err = _error(capsys, "build", "--board", "nucleo_f746", "--model", str(path),
                     "--out", str(tmp_path / "o"))
    assert rc == 2 and "GELU" in err and "squash" in err and "supported ops" in err
    assert not (tmp_path / "o").exists()


def test_lstm_is_refused_naming_the_layer(tmp_path: Path, capsys) -> None:
    import keras

    m = keras.Sequential([keras.Input((10, 4)), keras.layers.LSTM(8, name="rnn"),
                          keras.layers.Dense(2)])
    path = tmp_path / "lstm.keras"
    m.save(path)
    rc, err = _error(capsys, "build", "--board", "nucleo_f746", "--model", str(path),
                     "--out", str(tmp_path / "o"))
    assert rc == 2 and "rnn" in err and "LSTM" in err


def test_rolled_tf_keras_lstm_builds_bit_exact(tmp_path: Path) -> None:
    """A rolled tf_keras LSTM (fixed batch of 1) becomes UNIDIRECTIONAL_SEQUENCE_LSTM and runs
    on tp_lstm_s8, bit-exact with TFLM on the emulated board (each sample from a zero state)."""
    import tf_keras as k

    from tinyprune.models.load import save_model

    k.utils.set_random_seed(3)
    inp = k.Input((8, 4), batch_size=1)
    m = k.Model(inp, k.layers.Dense(3)(k.layers.LSTM(8, name="rnn")(inp)))
    path = save_model(m, tmp_path / "lstm.h5")
    out = tmp_path / "out"
    assert build("--board", "nucleo_f746", "--model", str(path), "--out", str(out),
                 "--samples", "4") == 0
    r = report_of(out)
    assert r["run"]["bit_exact"] and r["run"]["samples"] == 4 and r["run"]["mismatches"] == []
    assert r["run"]["host"]["bit_exact"]
    lstm = [x for x in r["layers"] if x["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM"]
    assert [x["kernel"] for x in lstm] == ["tp_lstm_s8"] and lstm[0]["macs"] == 8 * 4 * 8 * 12
    assert lstm[0]["name"] == "rnn"  # named after its Keras layer (ir/names.py)


def test_model_too_big_for_board(tmp_path: Path, capsys) -> None:
    import keras

    m = keras.Sequential([keras.Input((720,)), keras.layers.Dense(720), keras.layers.Dense(10)])
    path = tmp_path / "big.keras"
    m.save(path)
    rc, err = _error(capsys, "build", "--board", "nucleo_f401re", "--model", str(path),
                     "--out", str(tmp_path / "o"), "--samples", "1")
    assert rc == 1, err
    assert "FLASH" in err.upper() and "524288" in err.replace(",", "")
    assert "--prune-channels auto --flash-budget 512K" in err  # the next step
    assert not (tmp_path / "o" / "report.json").exists()


def test_weights_bigger_than_flash_are_refused_before_code_is_generated(
        tmp_path: Path, capsys) -> None:
    """The official AD autoencoder's weights (270 KB) alone exceed nucleo_l432kc's 256 KiB of
    flash: refused right after the plan, with the numbers and the next step, before any C is
    generated or compiled."""
    model = Path(__file__).parents[1] / "fixtures" / "mlperf_tiny" / "ad01_int8.tflite"
    out = tmp_path / "o"
    rc = main(["build", "--board", "nucleo_l432kc", "--model", str(model), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err, err
    line = [ln for ln in err.splitlines() if ln.startswith("tinyprune: ")]
    assert len(line) == 1, err
    needs = re.search(r"FLASH needs (\d+) bytes, available 262144 bytes \(the weights alone, "
                      r"before any code\); choose a board with more flash", line[0])
    assert needs and int(needs.group(1)) > 262144, line[0]
    assert "[6/10] codegen" not in err and "[5/10] plan done" not in err, err
    assert not (out / "report.json").exists() and not (out / "src").exists()


def _path_without(tmp_path: Path, prefix: str) -> str:
    """A PATH with every tool of the current one except those whose name starts with prefix."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            link = bindir / name
            if not name.startswith(prefix) and not link.exists():
                os.symlink(os.path.join(d, name), link)
    return str(bindir)


@pytest.mark.parametrize(("prefix", "args", "tool"), [
    ("arm-none-eabi-", [], "arm-none-eabi-gcc"),
    ("qemu-system-", ["--board", "mps2_an500", "--emulator", "qemu"], "qemu-system-arm"),
])
def test_missing_tool_exits_3(prefix: str, args: list[str], tool: str, tmp_path: Path, capsys,
                              monkeypatch) -> None:
    monkeypatch.setenv("PATH", _path_without(tmp_path, prefix))
    out = tmp_path / "o"
    rc, err = _error(capsys, "build", "--board", "nucleo_f746", "--model",
                     str(DIGITS / "digits_cnn.keras"), "--out", str(out), "--samples", "1", *args)
    assert rc == 3, err
    assert tool in err and "apt-get install" in err
    assert not out.exists()  # nothing written


def test_run_command_profiles_regions(tmp_path: Path, capsys) -> None:
    out = tmp_path / "o"
    assert build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
                 "--out", str(out), "--samples", "2") == 0
    capsys.readouterr()
    layers = report_of(out)["layers"]
    kernel = layers[0]["kernel"]
    rc = main(["run", "--board", "nucleo_f746", "--elf", str(out / "firmware" / "firmware.elf"),
               "--region", "tp_model_invoke", "--region", kernel])
    text = capsys.readouterr().out
    assert rc == 0
    assert "region tp_model_invoke: 2 calls" in text
    assert "@tp end status=0" in text
    calls = int(text.split(f"region {kernel}: ")[1].split(" calls")[0])
    assert calls == 2 * sum(1 for layer in layers if layer["kernel"] == kernel)


def test_prune_auto_meets_flash_budget(tmp_path: Path, capsys) -> None:
    out = tmp_path / "auto"
    rc = build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
               "--data", str(DIGITS / "digits.npz"), "--prune-channels", "auto",
               "--flash-budget", "20K", "--finetune-epochs", "2", "--out", str(out),
               "--samples", "2")
    err = capsys.readouterr().err
    assert rc == 0, err
    r = report_of(out)
    assert r["budgets"]["flash"]["ok"] and r["firmware"]["flash_used_bytes"] <= 20 * 1024
    ratio = r["model"]["pruning"]["ratio"]
    assert 0.0 < ratio < 0.9
    assert f"chose to remove {ratio:.1%} of channels" in err
    assert r["run"]["bit_exact"]


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--prune-channels", "auto"], 2, "--flash-budget"),
    (["--prune-channels", "auto", "--flash-budget", "2K"], 1, "raise the flash budget"),
    (["--prune-channels", "1.5"], 2, "--prune-channels"),
])
def test_prune_auto_errors(args: list[str], code: int, needle: str, tmp_path: Path,
                           capsys) -> None:
    out = tmp_path / "o"
    rc, err = _error(capsys, "build", "--board", "nucleo_f746", "--model",
                     str(DIGITS / "digits_cnn.keras"), "--out", str(out), *args)
    assert rc == code and needle in err, err
    assert not (out / "report.json").exists()


def test_builds_are_reproducible(tmp_path: Path) -> None:
    """Same model, two output folders: byte-identical ELF, no build path inside it."""
    shas = []
    for name in ("one", "an-other-folder"):
        out = tmp_path / name
        assert build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
                     "--out", str(out), "--samples", "2", "--emulator", "none") == 0
        r = report_of(out)
        assert r["run"]["emulator"] == "none" and r["run"]["cycles_per_inference"] is None
        assert r["run"]["bit_exact"] is None and r["run"]["check"] == "host-only"
        assert r["run"]["host"]["bit_exact"]  # the only check without an emulator
        shas.append(r["firmware"]["elf_sha256"])
        elf = (out / "firmware" / "firmware.elf").read_bytes()
        assert str(tmp_path).encode() not in elf and str(ROOT).encode() not in elf
    assert shas[0] == shas[1]
    src = (tmp_path / "one" / "src" / "model.c").read_text()
    assert "Generated by tinyprune" in src and str(tmp_path) not in src


def test_nothing_written_outside_out(tmp_path: Path, monkeypatch) -> None:
    """The converter's scratch files go under --out too; the system temp folder is untouched."""
    import tempfile

    tmp = tmp_path / "systemtmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    out = tmp_path / "o"
    assert build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
                 "--out", str(out), "--samples", "1", "--emulator", "none") == 0
    assert list(tmp.iterdir()) == []
    assert tempfile.tempdir == str(tmp)  # restored
    assert sorted(p.name for p in out.iterdir()) == [
        ".tinyprune-manifest.json", "firmware", "host", "junit.xml", "model_int8.tflite",
        "report.html", "report.json", "report.md", "src"]


def test_prune_auto_measures_with_the_users_stack(tmp_path: Path, capsys) -> None:
    """With a 32K stack the unpruned digits CNN needs ~36.5K of RAM: the search must count the
    stack the build will reserve, not the default, to meet a 36,000-byte budget."""
    out = tmp_path / "ram"
    rc = build("--board", "nucleo_f746", "--model", str(DIGITS / "digits_cnn.keras"),
               "--prune-channels", "auto", "--stack", "32K", "--ram-budget", "36000",
               "--out", str(out), "--samples", "1")
    err = capsys.readouterr().err
    assert rc == 0, err
    r = report_of(out)
    assert r["firmware"]["stack_reserved_bytes"] == 32 * 1024
    assert r["budgets"]["ram"]["ok"] and r["firmware"]["ram_used_bytes"] <= 36000
    assert r["model"]["pruning"]["ratio"] > 0.0
