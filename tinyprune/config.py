"""Build options from the command line and ``tinyprune.toml`` (command line wins), validated."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from tinyprune.errors import UsageError

EMULATORS = ("unicorn", "qemu", "renode", "none")
SIZE_HELP = 'expected a size like 65536, "64K" or "1M"'
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)i?[bB]?\s*$")


def parse_size(value: int | str, where: str) -> int:
    """65536, "64K", "64KiB", "1M" -> bytes. ``where`` names the field for the error."""
    if isinstance(value, bool):
        raise UsageError(f"{where}: {SIZE_HELP}, received {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise UsageError(f"{where}: expected a size >= 0, received {value}")
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise UsageError(f"{where}: {SIZE_HELP}, received {value!r}")
    scale = {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]
    return int(float(m.group(1)) * scale)


@dataclass(frozen=True)
class Budgets:
    """Limits a build must meet (any subset); a broken one makes the build exit 1."""

    flash: int | None = None
    ram: int | None = None
    latency_ms: float | None = None
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None


@dataclass(frozen=True)
class BuildOptions:
    """Everything ``tinyprune build`` takes. Paths are as the user gave them."""

    board: str = ""
    model: Path | None = None
    data: Path | None = None
    out: Path | None = None
    prune_channels: float | str | None = None  # a fraction, or "auto" (search to the budgets)
    prune_criterion: str = "l1"
    finetune_epochs: int | None = None
    emulator: str = "unicorn"
    samples: int = 20
    stack_bytes: int = 8192
    trust_model: bool = False
    seed: int = 0
    random_samples: int | None = None  # seeded random inputs on the host build; None: automatic
    force: bool = False  # write into a non-empty folder tinyprune did not create
    budgets: Budgets = field(default_factory=Budgets)

    def output_dir(self) -> Path:
        if self.out is not None:
            return self.out
        stem = self.model.stem if self.model is not None else "model"
        return Path("build") / f"{stem}-{self.board}"


_TOP = {"model": Path, "data": Path, "board": str, "emulator": str, "samples": int, "out": Path,
        "stack": "size", "trust_model": bool, "seed": int, "random_samples": int}
_PRUNE = {"channels": "ratio", "criterion": str, "finetune_epochs": int}
_BUDGETS = {"flash": "budget_size", "ram": "budget_size", "latency_ms": "positive",
            "min_accuracy": "fraction", "max_accuracy_drop": "fraction"}


def parse_ratio(value: Any, where: str) -> float | str:
    """A channel fraction in [0, 1) or "auto"."""
    if value == "auto":
        return "auto"
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        ratio = -1.0
    if isinstance(value, bool) or not 0.0 <= ratio < 1.0:
        raise UsageError(f"{where}: expected a fraction in [0, 1) or \"auto\", received {value!r}")
    return ratio


def check_fraction(value: float, where: str) -> float:
    """An accuracy (or accuracy drop) as a fraction: 0.9, not 90."""
    if not 0.0 <= value <= 1.0:
        hint = f" (e.g. {value / 100:g} for {value:g}%)" if 1.0 < value <= 100.0 else ""
        raise UsageError(f"{where}: expected a fraction between 0 and 1{hint}, received {value:g}")
    return value


def check_positive(value: float, where: str) -> float:
    if not value > 0.0 or value == float("inf"):
        raise UsageError(f"{where}: expected a number > 0, received {value:g}")
    return value


def check_budget_size(value: int, where: str) -> int:
    if value <= 0:
        raise UsageError(f"{where}: expected a size > 0, received {value}")
    return value


def _typed(value: Any, kind: Any, where: str) -> Any:
    if kind == "size":
        return parse_size(value, where)
    if kind == "budget_size":
        return check_budget_size(parse_size(value, where), where)
    if kind == "ratio":
        return parse_ratio(value, where)
    if kind in ("fraction", "positive"):
        number = _typed(value, float, where)
        return check_fraction(number, where) if kind == "fraction" else \
            check_positive(number, where)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is Path and isinstance(value, str):
        return Path(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UsageError(f"{where}: expected {kind.__name__}, received {value!r}")
    return value


def _section(table: dict[str, Any], spec: dict[str, Any], where: str) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if key not in spec:
            raise UsageError(f"{where}.{key}: unknown field; expected one of: {', '.join(spec)}")
        out[key] = _typed(value, spec[key], f"{where}.{key}")
    return out


def load_project_file(path: Path) -> dict[str, Any]:
    """Reads ``tinyprune.toml`` into flat option names; relative paths resolve from its folder."""
    if not path.is_file():
        raise UsageError(f"{path}: config file not found")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    known = {**{k: None for k in _TOP}, "prune": None, "budgets": None, "sparsify": None}
    for key in doc:
        if key not in known:
            raise UsageError(f"{path}: unknown field '{key}'; expected one of: {', '.join(known)}")
    tables = {k: doc.get(k, {}) for k in ("prune", "budgets", "sparsify")}
    for k, v in tables.items():
        if not isinstance(v, dict):
            raise UsageError(f"{path}: [{k}] must be a table")
    if tables["sparsify"]:
        raise UsageError(f"{path}: [sparsify] (block-sparse pruning) is not available in this "
                         "version yet; remove the table")
    top = _section({k: v for k, v in doc.items() if k in _TOP}, _TOP, str(path))
    for key in ("model", "data", "out"):
        if key in top and not top[key].is_absolute():
            top[key] = path.parent / top[key]
    if "stack" in top:
        top["stack_bytes"] = top.pop("stack")
    prune = _section(tables["prune"], _PRUNE, f"{path} [prune]")
    if "finetune_epochs" in prune:
        top["finetune_epochs"] = prune.pop("finetune_epochs")
    top.update({f"prune_{k}": v for k, v in prune.items()})
    top["budgets"] = Budgets(**_section(tables["budgets"], _BUDGETS, f"{path} [budgets]"))
    return top


def resolve(cli: dict[str, Any], config: Path | None) -> BuildOptions:
    """Merges project-file values with command-line values (non-None wins) and validates."""
    values: dict[str, Any] = load_project_file(config) if config is not None else {}
    budgets = values.pop("budgets", Budgets())
    cli_budgets = {k: v for k, v in cli.pop("budgets", {}).items() if v is not None}
    values.update({k: v for k, v in cli.items() if v is not None})
    opts = BuildOptions(**values, budgets=dataclasses.replace(budgets, **cli_budgets))
    validate(opts)
    return opts


def validate(opts: BuildOptions) -> None:
    """Every option and combination that can be judged before any work; UsageError naming the
    option otherwise. Project-file values were checked when read, so names here are options."""
    if not opts.board:
        raise UsageError("no board given: pass --board NAME (see 'tinyprune boards') "
                         "or set board in tinyprune.toml")
    if opts.model is None:
        raise UsageError("no model given: pass --model FILE or set model in tinyprune.toml")
    if opts.emulator not in EMULATORS:
        raise UsageError(f"--emulator: expected one of {', '.join(EMULATORS)}, "
                         f"received {opts.emulator!r}")
    _validate_counts(opts)
    if opts.prune_channels is not None:
        parse_ratio(opts.prune_channels, "--prune-channels")
    _validate_budgets(opts.budgets)
    for rule in _COMBINATIONS:
        rule(opts)


def _validate_counts(opts: BuildOptions) -> None:
    if opts.samples < 1:
        raise UsageError(f"--samples: expected at least 1, received {opts.samples}")
    if opts.random_samples is not None and opts.random_samples < 0:
        raise UsageError(f"--random-samples: expected 0 or more, received {opts.random_samples}")
    if opts.finetune_epochs is not None and opts.finetune_epochs < 0:
        raise UsageError(f"--finetune-epochs: expected 0 or more, received {opts.finetune_epochs}")
    if opts.stack_bytes < 256 or opts.stack_bytes % 8:
        raise UsageError(f"--stack: expected a multiple of 8 bytes, at least 256, received "
                         f"{opts.stack_bytes}")


def _validate_budgets(b: Budgets) -> None:
    for name, value in (("--flash-budget", b.flash), ("--ram-budget", b.ram)):
        if value is not None:
            check_budget_size(value, name)
    if b.latency_ms is not None:
        check_positive(b.latency_ms, "--latency-budget")
    for name, frac in (("--min-accuracy", b.min_accuracy),
                       ("--max-accuracy-drop", b.max_accuracy_drop)):
        if frac is not None:
            check_fraction(frac, name)


def _latency_needs_cycles(opts: BuildOptions) -> None:
    if opts.budgets.latency_ms is not None and opts.emulator != "unicorn":
        why = "runs no firmware" if opts.emulator == "none" else "has no cycle counter"
        raise UsageError(f"--latency-budget needs cycle estimates, which only --emulator unicorn "
                         f"gives (--emulator {opts.emulator} {why}); drop the latency budget or "
                         "use --emulator unicorn")


def _accuracy_needs_data(opts: BuildOptions) -> None:
    b = opts.budgets
    for name, value in (("--min-accuracy", b.min_accuracy),
                        ("--max-accuracy-drop", b.max_accuracy_drop)):
        if value is not None and opts.data is None:
            raise UsageError(f"{name} needs test data to measure accuracy on: pass --data with "
                             "x_test, y_test (or x, y)")
    if b.max_accuracy_drop is not None and _is_tflite(opts):
        raise UsageError(f"--max-accuracy-drop compares with the float Keras model; {opts.model} "
                         "is an int8 .tflite (use --min-accuracy, or build from the Keras model)")


def _pruning_needs_keras(opts: BuildOptions) -> None:
    if opts.prune_channels and _is_tflite(opts):
        raise UsageError(f"{opts.model}: --prune-channels needs a Keras model; an int8 .tflite "
                         "cannot be pruned (prune the Keras model, then convert)")
    b = opts.budgets
    if opts.prune_channels == "auto" and b.flash is None and b.ram is None and \
            b.latency_ms is None:
        raise UsageError("--prune-channels auto: set a --flash-budget, --ram-budget or "
                         "--latency-budget (or [budgets] in tinyprune.toml) to prune to")


def _finetune_needs_data(opts: BuildOptions) -> None:
    if opts.finetune_epochs and opts.data is None:
        raise UsageError(f"--finetune-epochs {opts.finetune_epochs}: fine-tuning needs training "
                         "data; pass --data with x_train and y_train")


def _is_tflite(opts: BuildOptions) -> bool:
    return opts.model is not None and opts.model.suffix.lower() == ".tflite"


_COMBINATIONS = (_latency_needs_cycles, _accuracy_needs_data, _pruning_needs_keras,
                 _finetune_needs_data)
