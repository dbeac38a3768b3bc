"""CLI commands that need no cross compiler: help, boards, prune, report, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyprune.cli import main, make_parser

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


def test_every_command_has_help(capsys) -> None:
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    for name in sub.choices:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
        assert "usage: tinyprune " + name in capsys.readouterr().out


def test_no_command_prints_help_and_exits_2(capsys) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_boards_lists_the_board_files(capsys) -> None:
    assert main(["boards"]) == 0
    text = capsys.readouterr().out
    for name in ("nucleo_f746", "nucleo_f401re", "mps2_an500"):
        assert name in text
    assert "STM32F746ZG" in text and "1024 KiB" in text


def test_prune_command_writes_smaller_model(tmp_path: Path, capsys) -> None:
    from tinyprune.models.load import load_model

    out = tmp_path / "small.keras"
    assert main(["prune", "--model", str(DIGITS / "digits_cnn.keras"), "--channels", "0.5",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "conv2" in text and "32 -> 16" in text
    assert load_model(out).params < load_model(DIGITS / "digits_cnn.keras").params


@pytest.mark.parametrize(("args", "needle"), [
    (["prune", "--model", "missing.keras"], "missing.keras"),
    (["prune", "--model", "x.keras", "--criterion", "magic"], "invalid choice"),
    (["report", "nowhere"], "no report.json"),
    (["build", "--board", "nucleo_f746"], "no model given"),
    (["run", "--board", "nucleo_f746", "--elf", "none.elf"], "none.elf"),
    (["codegen", "--board", "nucleo_f999", "--model", "m.tflite"], "nucleo_f999"),
    (["prune", "--model", "x/missing.keras"], "x/missing.keras: no such file"),
    (["quantize", "--model", "missing.keras"], "missing.keras: no such file"),
])
def test_usage_errors_exit_2_with_one_line(args: list[str], needle: str, capsys,
                                            tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1 and err.startswith("tinyprune: error:")


def test_report_command_reprints_summary(tmp_path: Path, capsys) -> None:
    report = {
        "board": {"name": "b", "cpu": "cortex-m7", "clock_hz": 216e6, "flash_bytes": 1,
                  "ram_bytes": 1},
        "model": {"source": "m.keras", "params_after": 10, "macs_after": 20},
        "firmware": {"flash_used_bytes": 1, "ram_used_bytes": 1, "arena_bytes": 1,
                     "stack_peak_bytes": 1},
        "run": {"emulator": "none", "bit_exact": True, "samples": 1, "mismatches": []},
        "accuracy": {}, "layers": [], "budgets": {}, "ok": False,
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    assert main(["report", str(tmp_path)]) == 1  # a failed build's report keeps exit 1
    assert "result: FAILED" in capsys.readouterr().out


def test_report_shows_pruning(tmp_path: Path, capsys) -> None:
    from tinyprune.report import summary_lines

    report = json.loads(json.dumps({
        "board": {"name": "b", "cpu": "m7", "clock_hz": 1e6, "flash_bytes": 1, "ram_bytes": 1},
        "model": {"source": "m", "params_after": 1, "macs_after": 1, "pruning": {
            "ratio": 0.5, "criterion": "l1", "params_before": 100, "params_after": 40,
            "macs_before": 1000, "macs_after": 400,
            "accuracy": {"before": 0.99, "after_prune": 0.5, "after_finetune": 0.98},
            "layers": [{"name": "conv2", "channels_before": 32, "channels_after": 16,
                        "params_before": 9, "params_after": 4},
                       {"name": "bn", "channels_before": 32, "channels_after": 16,
                        "params_before": 0, "params_after": 0}]}},
        "firmware": {"flash_used_bytes": 1, "ram_used_bytes": 1, "arena_bytes": 1,
                     "stack_peak_bytes": 1},
        "run": {"emulator": "none", "bit_exact": True, "samples": 1, "mismatches": []},
        "accuracy": {}, "layers": [], "budgets": {}, "ok": True}))
    text = "\n".join(summary_lines(report))
    assert "50.0% of channels (l1): params 100 -> 40, MACs 1,000 -> 400" in text
    assert "after fine-tune 98.00%" in text
    assert "channels: conv2 32->16" in text and "bn 32" not in text


def test_codegen_output_compiles_on_its_own(tmp_path: Path, capsys,
                                            flatten_model_tflite: bytes) -> None:
    import shutil
    import subprocess

    model = tmp_path / "m.tflite"
    model.write_bytes(flatten_model_tflite)
    out = tmp_path / "gen"
    assert main(["codegen", "--board", "nucleo_f746", "--model", str(model), "--out",
                 str(out)]) == 0
    assert "compile with your firmware" in capsys.readouterr().out
    if shutil.which("cc") is None:
        pytest.skip("no host C compiler to compile the generated project")
    sources = [str(p) for p in (*out.glob("*.c"), *(out / "runtime").glob("*.c"))]
    proc = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", f"-I{out}",
                           f"-I{out / 'runtime'}", *sources, "-o", str(tmp_path / "m"), "-lm"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def _subparsers() -> dict:
    sub = next(a for a in make_parser()._actions if a.dest == "command")
    return dict(sub.choices)


def test_every_command_and_option_is_described() -> None:
    for name, parser in _subparsers().items():
        assert parser.description, name
        for action in parser._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings or action.dest}"


@pytest.mark.parametrize(("args", "needle"), [
    (["biuld"], "did you mean build?"),
    (["prun", "--model", "m.keras"], "did you mean prune?"),
    (["build", "--emulator", "unicron"], "did you mean unicorn?"),
    (["codegen", "--board", "nucleo_f764", "--model", "m.tflite"], "did you mean nucleo_f746?"),
])
def test_did_you_mean(args: list[str], needle: str, capsys) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("args", "needle"), [
    (["--min-accuracy", "90"], "--min-accuracy: expected a fraction between 0 and 1 (e.g. 0.9 "
                               "for 90%)"),
    (["--max-accuracy-drop", "5", "--data", "d.npz"], "--max-accuracy-drop: expected a fraction"),
    (["--latency-budget", "5", "--emulator", "none"], "--latency-budget needs cycle estimates"),
    (["--latency-budget", "5", "--emulator", "qemu"], "--emulator qemu has no cycle counter"),
    (["--latency-budget", "-1"], "--latency-budget: expected a number > 0"),
    (["--flash-budget", "0"], "--flash-budget: expected a size > 0"),
    (["--min-accuracy", "0.9"], "--min-accuracy needs test data"),
    (["--prune-channels", "auto"], "set a --flash-budget"),
    (["--finetune-epochs", "3", "--prune-channels", "0.5"], "fine-tuning needs training data"),
    (["--stack", "100"], "--stack: expected a multiple of 8"),
    (["--random-samples", "-1"], "--random-samples: expected 0 or more"),
    (["--samples", "0"], "--samples: expected at least 1"),
])
def test_options_are_checked_before_any_work(args: list[str], needle: str, tmp_path: Path,
                                             capsys, monkeypatch) -> None:
    """The model file does not exist: an error about anything but the option would mean work
    started before the options were checked."""
    monkeypatch.chdir(tmp_path)
    rc = main(["build", "--board", "nucleo_f746", "--model", "missing.keras", "--out", "o", *args])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and needle in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_a_tflite_cannot_be_pruned_nor_compared_with_its_float_model(tmp_path: Path,
                                                                     capsys) -> None:
    for args, needle in ((["--prune-channels", "0.5"], "--prune-channels needs a Keras model"),
                         (["--max-accuracy-drop", "0.01", "--data", "d.npz"],
                          "is an int8 .tflite")):
        assert main(["build", "--board", "b", "--model", "m.tflite", *args]) == 2
        assert needle in capsys.readouterr().err


@pytest.mark.parametrize(("how", "code", "line"), [
    ("ctrl-c", 130, "tinyprune: interrupted"),
    ("sigterm", 143, "tinyprune: stopped by SIGTERM"),
])
def test_interrupts_print_one_line(how: str, code: int, line: str, capsys, monkeypatch) -> None:
    import signal

    from tinyprune import cli

    def interrupted(args) -> int:
        if how == "sigterm":  # main's handler turns it into an exception that unwinds
            signal.raise_signal(signal.SIGTERM)
        raise KeyboardInterrupt

    before = signal.getsignal(signal.SIGTERM)
    monkeypatch.setitem(cli.COMMANDS, "boards", (*cli.COMMANDS["boards"][:3], interrupted))
    assert main(["boards"]) == code
    assert capsys.readouterr().err.strip() == line
    assert signal.getsignal(signal.SIGTERM) == before  # restored


def test_help_of_build_mentions_force_and_random_samples(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["build", "--help"])
    text = capsys.readouterr().out
    assert "--force" in text and "--random-samples" in text


def test_codegen_refuses_a_users_folder(tmp_path: Path, capsys) -> None:
    out = tmp_path / "myproject"
    out.mkdir()
    (out / "main.c").write_text("int main(void) { return 0; }\n")
    assert main(["codegen", "--board", "nucleo_f746", "--model", str(tmp_path / "m.tflite"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "m.tflite: no such file" in err  # the input is checked first
    (tmp_path / "m.tflite").write_bytes(b"")
    assert main(["codegen", "--board", "nucleo_f746", "--model", str(tmp_path / "m.tflite"),
                 "--out", str(out)]) == 2
    assert f"{out / 'main.c'}" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["main.c"]


def test_labels_are_checked_against_the_models_classes(tmp_path: Path, capsys) -> None:
    import numpy as np

    digits = np.load(DIGITS / "digits.npz")
    bad = tmp_path / "labels.npz"
    y_train = digits["y_train"].copy()
    y_train[5] = 12  # the digits CNN has 10 classes
    np.savez(bad, x_train=digits["x_train"], y_train=y_train, x_test=digits["x_test"],
             y_test=digits["y_test"])
    out = tmp_path / "small.keras"
    assert main(["prune", "--model", str(DIGITS / "digits_cnn.keras"), "--data", str(bad),
                 "--out", str(out), "--finetune-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "y_train holds label 12 (sample 5)" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_entry_leaves_at_once_after_ctrl_c_and_exits_with_mains_code_otherwise(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.entry (the console script and ``python -m``): 130 -> os._exit(130) after flushing,
    so nothing in the interpreter's shutdown can turn it into a death by SIGINT; any other
    code -> sys.exit(code)."""
    from tinyprune import cli

    left: list[int] = []
    monkeypatch.setattr(cli.os, "_exit", left.append)
    monkeypatch.setattr(cli, "main", lambda: 130)
    with pytest.raises(SystemExit):  # only because the stand-in for os._exit returns
        cli.entry()
    assert left == [130]
    monkeypatch.setattr(cli, "main", lambda: 2)
    with pytest.raises(SystemExit) as exc:
        cli.entry()
    assert exc.value.code == 2 and left == [130]
