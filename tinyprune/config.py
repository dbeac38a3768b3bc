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
CYCLE_MODELS = ("m7", "m4", "m0plus", "table")  # tinyprune/emulator/cycle_models.py
# 20 epochs bring the 50%-pruned digits CNN within 1 point of the unpruned accuracy
# (bench/results/prune_criteria.md); 10 did not.
DEFAULT_FINETUNE_EPOCHS = 20
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
    # kept channel counts rounded to a multiple of this; None: what the kernels tile best
    # (tinyprune.kernels.base.channel_multiple)
    prune_round_to: int | None = None
    finetune_epochs: int | None = None
    emulator: str = "unicorn"
    cycle_model: str | None = None  # m7|m4|m0plus|table; None: the board's core
    tcm: bool = True  # place hot kernels/weights in the board's ITCM/DTCM when it pays (--no-tcm)
    samples: int = 20
    stack_bytes: int = 8192
    trust_model: bool = False
    seed: int = 0
    random_samples: int | None = None  # seeded random inputs on the host build; None: automatic
    force: bool = False  # write into a non-empty folder tinyprune did not create
    budgets: Budgets = field(default_factory=Budgets)
    # Fine-grained sparsity (``--sparsity``/``--block``, ``[sparsify]``): the options of
    # :meth:`tinyprune.sparsify.SparsifyConfig.from_options`; None: no sparsify stage.
    sparsify: dict[str, Any] | None = None
    sparsify_from: str = ""  # where the options came from, for error messages

    def output_dir(self) -> Path:
        if self.out is not None:
            return self.out
        stem = self.model.stem if self.model is not None else "model"
        return Path("build") / f"{stem}-{self.board}"


_TOP = {"model": Path, "data": Path, "board": str, "emulator": str, "cycle_model": str,
        "samples": int, "out": Path, "tcm": bool,
        "stack": "size", "trust_model": bool, "seed": int, "random_samples": int}
_PRUNE = {"channels": "ratio", "criterion": str, "finetune_epochs": int, "round_to": int}
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
    if "sparsify" in doc:
        top["sparsify"] = dict(tables["sparsify"])
        top["sparsify_from"] = f"{path} [sparsify]"
    return top


def resolve(cli: dict[str, Any], config: Path | None) -> BuildOptions:
    """Merges project-file values with command-line values (non-None wins) and validates."""
    values: dict[str, Any] = load_project_file(config) if config is not None else {}
    budgets = values.pop("budgets", Budgets())
    cli_budgets = {k: v for k, v in cli.pop("budgets", {}).items() if v is not None}
    cli_sparsify = {k: v for k, v in (cli.pop("sparsify", None) or {}).items() if v is not None}
    if cli_sparsify:
        where = values.get("sparsify_from")
        values["sparsify"] = {**values.get("sparsify", {}), **cli_sparsify}
        values["sparsify_from"] = SPARSIFY_CLI if where is None else f"{SPARSIFY_CLI} and {where}"
    values.update({k: v for k, v in cli.items() if v is not None})
    opts = BuildOptions(**values, budgets=dataclasses.replace(budgets, **cli_budgets))
    validate(opts)
    return opts


SPARSIFY_CLI = "--sparsity/--block"
# The schedules that fine-tune while they prune (need training data).
TRAINING_SCHEDULES = ("gradual", "imp", "iterative")


def sparsify_schedule(options: dict[str, Any], epochs: Any) -> str:
    """The schedule asked for, else gradual when the build fine-tunes (SPEC: masks on a gradual
    schedule; digits CNN at 75% 1x4, one seed: 96.7% gradual, 95.6% one-shot + the same 20
    epochs), else one-shot (no training, or one-shot's own ``steps`` given)."""
    if "schedule" in options:
        return str(options["schedule"]).strip().lower()
    return "gradual" if epochs and "steps" not in options else "oneshot"


def sparsify_config(opts: BuildOptions, epochs: int, progress: bool = False) -> Any:
    """The :class:`~tinyprune.sparsify.SparsifyConfig` of the build; ``epochs`` of fine-tuning
    unless ``[sparsify] epochs`` sets its own; the schedule of :func:`sparsify_schedule`.
    UsageError naming the option and its origin."""
    from tinyprune.sparsify import SparsifyConfig

    assert opts.sparsify is not None
    values = {"epochs": epochs, "progress": progress, **opts.sparsify}
    values["schedule"] = schedule = sparsify_schedule(opts.sparsify, values["epochs"])
    if schedule in TRAINING_SCHEDULES and not values["epochs"]:
        raise UsageError(f"{opts.sparsify_from}: schedule {schedule!r} fine-tunes while it "
                         "prunes: pass --data with x_train, y_train (and epochs > 0), or use "
                         "schedule \"oneshot\"")
    return SparsifyConfig.from_options(values, where=f"{opts.sparsify_from}: ")


def _sparsify_options(opts: BuildOptions) -> None:
    if opts.sparsify is None:
        return
    if _is_tflite(opts):
        raise UsageError(f"{opts.model}: {opts.sparsify_from} needs a Keras model; an int8 "
                         ".tflite is built as it is (its zero blocks are found and the sparse "
                         "kernels chosen where they pay)")
    if opts.prune_channels == "auto":
        raise UsageError(f"--prune-channels auto with {opts.sparsify_from}: the budget search "
                         "measures dense candidates only; give --prune-channels a fraction "
                         "(e.g. 0.5)")
    if opts.data is None and opts.finetune_epochs:
        return  # _finetune_needs_data says it
    if opts.data is None and opts.sparsify.get("criterion") == "snip":
        raise UsageError(f"{opts.sparsify_from}: criterion 'snip' ranks blocks by gradients on "
                         "data; pass --data, or use l1, lookahead or synflow (data-free)")
    epochs_set = opts.sparsify.get("epochs")
    if opts.data is None and isinstance(epochs_set, int) and epochs_set > 0:
        raise UsageError(f"{opts.sparsify_from}: epochs = {epochs_set}: fine-tuning needs "
                         "training data; pass --data with x_train and y_train")
    # Judged with the epochs the stage will use if --data has x_train (known once loaded).
    epochs = 0 if opts.data is None else (
        opts.finetune_epochs if opts.finetune_epochs is not None else DEFAULT_FINETUNE_EPOCHS)
    sparsify_config(opts, epochs)


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
    if opts.cycle_model is not None and opts.cycle_model not in CYCLE_MODELS:
        raise UsageError(f"--cycle-model: expected one of {', '.join(CYCLE_MODELS)}, "
                         f"received {opts.cycle_model!r}")
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
    if opts.prune_round_to is not None and opts.prune_round_to < 1:
        raise UsageError(f"--prune-round-to: expected at least 1 (1: no rounding), received "
                         f"{opts.prune_round_to}")
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


def _cycle_model_needs_unicorn(opts: BuildOptions) -> None:
    if opts.cycle_model is not None and opts.emulator != "unicorn":
        raise UsageError(f"--cycle-model {opts.cycle_model} prices runs on the unicorn emulator "
                         f"only (--emulator {opts.emulator} has its own timing or none); drop "
                         "--cycle-model or use --emulator unicorn")


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


_COMBINATIONS = (_latency_needs_cycles, _cycle_model_needs_unicorn, _accuracy_needs_data,
                 _pruning_needs_keras, _finetune_needs_data, _sparsify_options)
