"""tinyprune.toml and command-line options: merging, sizes, validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyprune.config import Budgets, parse_size, resolve
from tinyprune.errors import UsageError


@pytest.mark.parametrize(("value", "expected"), [
    (65536, 65536), ("64K", 65536), ("64KiB", 65536), ("1M", 1048576), ("256k", 262144),
    ("1.5K", 1536), ("100", 100),
])
def test_sizes(value, expected: int) -> None:
    assert parse_size(value, "x") == expected


@pytest.mark.parametrize("value", ["64Q", "", "K", -1, True, "1G"])
def test_bad_sizes_name_the_field(value) -> None:
    with pytest.raises(UsageError, match=r"budgets\.flash"):
        parse_size(value, "budgets.flash")


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "tinyprune.toml"
    p.write_text(text)
    return p


def test_project_file_and_cli_override(tmp_path: Path) -> None:
    cfg = _write(tmp_path, 'model = "m.keras"\ndata = "d.npz"\nboard = "nucleo_f746"\nsamples = 5\n'
                 '[prune]\nchannels = 0.5\n[budgets]\nflash = "256K"\nram = 65536\n'
                 'min_accuracy = 0.9\n')
    opts = resolve({"samples": 7, "board": None, "budgets": {"ram": 1000}}, cfg)
    assert opts.model == tmp_path / "m.keras"  # relative to the project file
    assert opts.board == "nucleo_f746" and opts.samples == 7 and opts.prune_channels == 0.5
    assert opts.budgets == Budgets(flash=262144, ram=1000, min_accuracy=0.9)


@pytest.mark.parametrize(("text", "message"), [
    ('modle = "x"\n', "unknown field 'modle'"),
    ('model = "x"\n[budgets]\nflahs = 1\n', r"\[budgets\]\.flahs: unknown field"),
    ('model = "x"\nsamples = "many"\n', "samples: expected int"),
    ('model = "x"\ncycle_model = "m9"\n', "--cycle-model: expected one of m7, m4"),
    ('model = "x"\n[budgets]\nflash = "lots"\n', "flash: expected a size"),
    ("model = \n", "not valid TOML"),
])
def test_bad_project_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve({"board": "b"}, _write(tmp_path, text))


@pytest.mark.parametrize(("cli", "message"), [
    ({"model": Path("m.keras")}, "no board given"),
    ({"board": "b"}, "no model given"),
    ({"board": "b", "model": Path("m"), "emulator": "gem5"}, "--emulator"),
    ({"board": "b", "model": Path("m"), "cycle_model": "m4", "emulator": "qemu"},
     "--cycle-model m4 prices runs on the unicorn emulator only"),
    ({"board": "b", "model": Path("m"), "cycle_model": "m3"},
     "--cycle-model: expected one of m7, m4, m0plus, table, received 'm3'"),
    ({"board": "b", "model": Path("m"), "samples": 0}, "--samples"),
    ({"board": "b", "model": Path("m"), "prune_channels": 1.5}, "--prune-channels"),
])
def test_cli_validation(cli: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(cli, None)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="config file not found"):
        resolve({}, tmp_path / "nope.toml")


def test_prune_round_to_from_the_project_file_and_validated(tmp_path: Path) -> None:
    cfg = _write(tmp_path, 'model = "m.keras"\nboard = "b"\n[prune]\nchannels = 0.5\n'
                 'round_to = 8\n')
    assert resolve({}, cfg).prune_round_to == 8
    assert resolve({"prune_round_to": 2}, cfg).prune_round_to == 2  # the option wins
    with pytest.raises(UsageError, match=r"--prune-round-to: expected at least 1 \(1: no "
                                         r"rounding\), received 0"):
        resolve({"board": "b", "model": Path("m"), "prune_round_to": 0}, None)
    with pytest.raises(UsageError, match="round_to: expected int"):
        resolve({}, _write(tmp_path, 'model = "m"\nboard = "b"\n[prune]\nround_to = "four"\n'))
