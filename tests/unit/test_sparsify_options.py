"""``--sparsity``/``--block``, ``[sparsify]`` and ``tinyprune sparsify``: options merged and
checked before any work, one line naming the option and its origin, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyprune.cli import main
from tinyprune.config import resolve, sparsify_config
from tinyprune.errors import UsageError

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tinyprune.toml"
    path.write_text('model = "m.keras"\nboard = "nucleo_f746"\n' + text)
    return path


def test_cli_options_win_over_the_project_file(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[sparsify]\nsparsity = 0.5\nblock = "4x4"\ncriterion = "l2"\n')
    opts = resolve({"sparsify": {"sparsity": 0.75, "block": None}}, config)
    assert opts.sparsify == {"sparsity": 0.75, "block": "4x4", "criterion": "l2"}
    assert opts.sparsify_from == f"--sparsity/--block and {config} [sparsify]"
    sc = sparsify_config(opts, epochs=0)
    assert (sc.target, sc.pattern_name, sc.criterion_name, sc.finetune) == (0.75, "4x4", "l2",
                                                                           None)


def test_no_sparsify_stage_without_options(tmp_path: Path) -> None:
    assert resolve({"sparsify": {"sparsity": None}}, _toml(tmp_path, "")).sparsify is None


def test_an_empty_table_means_the_defaults(tmp_path: Path) -> None:
    opts = resolve({}, _toml(tmp_path, "[sparsify]\n"))
    sc = sparsify_config(opts, epochs=3)
    assert (sc.target, sc.pattern_name, sc.finetune is not None) == (0.75, "1x4", True)


def test_own_epochs_win_over_the_build_default(tmp_path: Path) -> None:
    opts = resolve({"data": Path("d.npz")},
                   _toml(tmp_path, '[sparsify]\nschedule = "gradual"\nepochs = 4\n'))
    sc = sparsify_config(opts, epochs=20)
    assert sc.finetune is not None and sc.finetune.epochs == 4 and sc.schedule_name == "gradual"


@pytest.mark.parametrize(("text", "needle"), [
    ("[sparsify]\nsparsity = 1.5\n", "[sparsify]: expected sparsity in (0, 1)"),
    ('[sparsify]\nsparsity = "lots"\n', "[sparsify]: expected sparsity a number"),
    ('[sparsify]\nblock = "3x3"\n', "[sparsify]: "),
    ("[sparsify]\nspars = 0.5\n", "received: spars=0.5"),
    ('[sparsify]\nblock = "2:4"\nsparsity = 0.75\n', "expected sparsity 0.5 for pattern 2:4"),
    ('[sparsify]\nschedule = "gradual"\n', "schedule 'gradual' fine-tunes while it prunes"),
    ("[sparsify]\nepochs = 3\n", "epochs = 3: fine-tuning needs training data"),
    ('[sparsify]\ncriterion = "snip"\n', "criterion 'snip' ranks blocks by gradients"),
    ('[sparsify]\nrounds = 3\n', "expected rounds only with schedule='imp'"),
    ("sparsify = 3\n", "[sparsify] must be a table"),
])
def test_bad_sparsify_tables(tmp_path: Path, text: str, needle: str) -> None:
    config = _toml(tmp_path, text)
    with pytest.raises(UsageError) as exc:
        resolve({}, config)
    assert needle in str(exc.value) and str(config) in str(exc.value)


@pytest.mark.parametrize(("args", "needle"), [
    (["--sparsity", "1.5"], "--sparsity/--block: expected sparsity in (0, 1), received: "
                            "sparsity=1.5"),
    (["--sparsity", "0.99"], "expected sparsity <= max_layer_sparsity (0.95)"),
    (["--block", "3x3"], "--sparsity/--block: expected block"),
    (["--block", "2:4", "--sparsity", "0.75"], "expected sparsity 0.5 for pattern 2:4"),
    (["--sparsity", "0.5", "--sparsify-schedule", "gradual"],
     "schedule 'gradual' fine-tunes while it prunes: pass --data"),
    (["--sparsity", "0.5", "--sparsify-schedule", "imp"], "schedule 'imp' fine-tunes"),
    (["--sparsity", "0.5", "--sparsify-criterion", "snip"], "criterion 'snip' ranks blocks"),
    (["--sparsity", "0.5", "--prune-channels", "auto", "--flash-budget", "64K"],
     "--prune-channels auto with --sparsity/--block: the budget search"),
    (["--sparsify-criterion", "magic"], "invalid choice"),
])
def test_build_options_are_checked_before_any_work(args: list[str], needle: str,
                                                   tmp_path: Path, capsys, monkeypatch) -> None:
    """The model file does not exist: an error about anything but the option would mean work
    started before the options were checked."""
    monkeypatch.chdir(tmp_path)
    rc = main(["build", "--board", "nucleo_f746", "--model", "missing.keras", "--out", "o", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_a_tflite_cannot_be_sparsified_by_build(tmp_path: Path, capsys) -> None:
    assert main(["build", "--board", "b", "--model", "m.tflite", "--sparsity", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "m.tflite: --sparsity/--block needs a Keras model" in err and "zero blocks" in err


@pytest.mark.parametrize(("args", "needle"), [
    (["--model", "missing.keras"], "missing.keras: no such file"),
    (["--model", "MODEL", "--sparsity", "1.5"], "expected sparsity in (0, 1)"),
    (["--model", "MODEL", "--block", "2:4", "--sparsity", "0.6"], "for pattern 2:4"),
    (["--model", "MODEL", "--schedule", "gradual"], "--schedule gradual fine-tunes"),
    (["--model", "MODEL", "--criterion", "snip"], "--criterion snip ranks blocks"),
    (["--model", "MODEL", "--epochs", "2"], "--epochs 2: fine-tuning needs training data"),
    (["--model", "MODEL", "--data", "missing.npz"], "missing.npz: no such file"),
])
def test_sparsify_command_usage_errors(args: list[str], needle: str, tmp_path: Path, capsys,
                                       monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = [str(DIGITS / "digits_cnn.keras") if a == "MODEL" else a for a in args]
    assert main(["sparsify", *args, "--out", "s.keras"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and err.startswith("tinyprune: error:")
    assert not (tmp_path / "s.keras").exists()


def test_sparsify_command_refuses_a_tflite(tmp_path: Path, capsys) -> None:
    model = ROOT / "tests" / "fixtures" / "mlperf_tiny" / "ad01_int8.tflite"
    assert main(["sparsify", "--model", str(model), "--out", str(tmp_path / "s.keras")]) == 2
    assert "an int8 .tflite cannot be sparsified" in capsys.readouterr().err
    assert not (tmp_path / "s.keras").exists()


def test_sparsify_command_writes_a_sparse_model(tmp_path: Path, capsys) -> None:
    import numpy as np

    from tinyprune.models.load import load_model

    out = tmp_path / "sparse.keras"
    assert main(["sparsify", "--model", str(DIGITS / "digits_cnn.keras"), "--sparsity", "0.5",
                 "--block", "1x4", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "conv2" in text and "50.0%" in text and f"wrote {out}" in text
    model = load_model(out).model
    kernel = model.get_layer("conv2").get_weights()[0]
    assert 0.49 <= float(np.mean(kernel == 0)) <= 0.51


@pytest.mark.parametrize(("options", "epochs", "schedule"), [
    ({}, 20, "gradual"),            # the build fine-tunes: gradual (SPEC)
    ({}, 0, "oneshot"),             # no training data
    ({"steps": 5}, 20, "oneshot"),  # one-shot's own option
    ({"schedule": "imp"}, 20, "imp"),
    ({"schedule": "oneshot"}, 20, "oneshot"),
])
def test_the_schedule_is_gradual_when_the_build_fine_tunes(options: dict, epochs: int,
                                                           schedule: str) -> None:
    from tinyprune.config import BuildOptions

    opts = BuildOptions(board="b", model=Path("m.keras"), sparsify=options, sparsify_from="x")
    assert sparsify_config(opts, epochs).schedule_name == schedule


def test_gradual_options_are_judged_with_the_default_epochs(tmp_path: Path) -> None:
    """end_epoch 15 fits the 20 default epochs of a build with --data."""
    config = _toml(tmp_path, "[sparsify]\nend_epoch = 15\n")
    opts = resolve({"data": Path("d.npz")}, config)
    assert sparsify_config(opts, 20).schedule_name == "gradual"
    with pytest.raises(UsageError, match="end_epoch"):
        resolve({"data": Path("d.npz"), "finetune_epochs": 10}, config)
