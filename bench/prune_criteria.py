"""Pruning criteria: MACs, params and accuracy at 30/50/70% of channels removed, per data set.

For every criterion of the engine and every ratio, the model is pruned one-shot (without and
with least-squares compensation); each pruned model is then fine-tuned with the same settings
for every criterion (same epochs, learning rate, schedule, seeds), once per seed (the seed also
draws the ``random`` criterion's ranking). Columns: accuracy right after the cut, after
compensation (no fine-tune), after fine-tune (mean, spread and per seed), and optionally after
compensation + fine-tune. Criteria whose fine-tuned means differ by more than the seed noise
are listed. On digits a second table tries fine-tune and schedule settings at 50% (the
2x-fewer-MACs point) against the target of issue #3: accuracy within 1 point of the unpruned
model. Results go to ``bench/results/<name>.{md,json}`` with the machine, date and settings.

Data sets (``--dataset``): ``digits`` (examples/digits, results ``prune_criteria``) and ``kws``
(the DS-CNN on the synthetic speech of examples/kws, results ``prune_criteria_kws``; make the
data and model first: ``make demo-kws`` or examples/kws/README.md). ``--model``/``--data``
override the files.

usage: python bench/prune_criteria.py [--dataset digits|kws] [--model M] [--data D]
                                      [--epochs 20] [--seeds 0] [--ratios 0.3,0.5,0.7]
                                      [--criteria l1,l2,...] [--no-settings]
                                      [--compensated-finetune | --no-compensated-finetune]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CRITERIA = ("l1", "l2", "bn_scale", "taylor", "fisher", "snip", "synflow", "random")
RATIOS = (0.3, 0.5, 0.7)  # the default grid: every criterion at these fractions of channels
SEEDED = frozenset({"random"})  # criteria whose ranking the seed draws
TOLERANCE = 0.01  # the target: within 1 point of the unpruned model
NOISE_SIGMAS = 2.0  # "differs by more than the seed noise": |mean difference| > 2 standard errors


@dataclass(frozen=True)
class Preset:
    """A data set the benchmark knows: its files, title and output name."""

    model: Path
    data: Path
    title: str
    name: str
    trials: bool  # run the settings table of issue #3
    compensated_finetune: bool  # fine-tune the compensated models too
    make: str  # how to make missing files


DATASETS = {
    "digits": Preset(ROOT / "examples" / "digits" / "digits_cnn.keras",
                     ROOT / "examples" / "digits" / "digits.npz", "the digits CNN",
                     "prune_criteria", trials=True, compensated_finetune=True,
                     make="they ship in examples/digits"),
    "kws": Preset(ROOT / "build" / "kws" / "kws_dscnn.keras", ROOT / "build" / "kws" / "kws.npz",
                  "the KWS DS-CNN (synthetic speech, held-out voices)", "prune_criteria_kws",
                  trials=False, compensated_finetune=False,
                  make="make demo-kws (or examples/kws/make_data.py and train.py)"),
}


def machine() -> dict[str, str]:
    import keras
    import tensorflow as tf
    from machine import machine as base  # bench/machine.py

    return base(tensorflow=tf.__version__, keras=keras.__version__)


@dataclass(frozen=True)
class Settings:
    """What every row shares."""

    epochs: int = 20
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    batch_size: int = 64
    validation_split: float = 0.1
    seeds: tuple[int, ...] = (0,)
    round_to: int = 4
    samples: int = 256  # gradient and compensation samples

    def finetune(self) -> Any:
        from tinyprune.prune import FineTune

        return FineTune(epochs=self.epochs, batch_size=self.batch_size,
                        learning_rate=self.learning_rate, lr_schedule=self.lr_schedule,
                        validation_split=self.validation_split)


@dataclass
class Row:
    """One criterion at one ratio (test accuracies; fine-tuned ones per seed, with their mean
    and sample standard deviation; None where not measured)."""

    criterion: str
    ratio: float
    macs: int
    params: int
    macs_reduction: float
    acc_pruned: float
    acc_compensated: float
    acc_finetuned: float
    acc_compensated_finetuned: float | None
    finetuned_per_seed: list[float] = field(default_factory=list)
    compensated_finetuned_per_seed: list[float] = field(default_factory=list)
    finetuned_std: float = 0.0
    seconds: float = 0.0


def load(model_path: Path, data_path: Path, make: str) -> tuple[Any, Any]:
    import keras

    from tinyprune.prune.data import as_dataset

    for path in (model_path, data_path):
        if not path.exists():
            raise SystemExit(f"error: {path}: no such file ({make})")
    model = keras.models.load_model(model_path)
    return model, as_dataset(dict(np.load(data_path)))


def finetuned_accuracy(pruned: Any, data: Any, ft: Any, seed: int) -> float:
    """Fine-tune a fresh copy of ``pruned`` (as ``prune(..., finetune=ft)`` would) with a seed
    and return its test accuracy."""
    import keras

    from tinyprune.prune.data import accuracy
    from tinyprune.prune.finetune import finetune

    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(pruned)
    copy.set_weights(pruned.get_weights())
    finetune(copy, data, ft)
    return float(accuracy(copy, data) or 0.0)


def prune_once(model: Any, data: Any, settings: Settings, seed: int, **config: Any) -> Any:
    import keras

    from tinyprune.prune import PruneConfig, prune

    keras.utils.set_random_seed(seed)
    return prune(model, PruneConfig(progress=False, round_to=settings.round_to,
                                    samples=settings.samples, seed=seed, **config), data=data)


def std(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def measure(model: Any, data: Any, criterion: str, ratio: float, settings: Settings,
            compensated_finetune: bool) -> Row:
    """Prune per seed (only once for the criteria the seed does not change: the cut is the
    same), fine-tune each with that seed."""
    start = time.monotonic()
    ft = settings.finetune()
    pruned_acc, refit_acc, tuned, tuned_refit = [], [], [], []
    plain = None
    for i, seed in enumerate(settings.seeds):
        if plain is None or criterion in SEEDED:
            plain = prune_once(model, data, settings, seed, ratio=ratio, criterion=criterion)
        pruned_acc.append(float(plain.accuracy.after_prune or 0.0))
        tuned.append(finetuned_accuracy(plain.model, data, ft, seed))
        if i == 0 or compensated_finetune:  # compensation without fine-tune: first seed only
            refit = prune_once(model, data, settings, seed, ratio=ratio, criterion=criterion,
                               compensate=True)
            refit_acc.append(float(refit.accuracy.after_prune or 0.0))
        if compensated_finetune:
            tuned_refit.append(finetuned_accuracy(refit.model, data, ft, seed))
    assert plain is not None
    return Row(criterion=criterion, ratio=ratio, macs=plain.macs_after, params=plain.params_after,
               macs_reduction=round(plain.macs_before / plain.macs_after, 2),
               acc_pruned=float(np.mean(pruned_acc)),
               acc_compensated=float(np.mean(refit_acc)),
               acc_finetuned=float(np.mean(tuned)),
               acc_compensated_finetuned=float(np.mean(tuned_refit)) if tuned_refit else None,
               finetuned_per_seed=tuned, compensated_finetuned_per_seed=tuned_refit,
               finetuned_std=std(tuned), seconds=round(time.monotonic() - start, 1))


def distinct(rows: list[Row]) -> dict[str, list[dict[str, Any]]]:
    """Per ratio, the pairs of criteria whose fine-tuned means differ by more than the seed
    noise: ``|mean_a - mean_b| > NOISE_SIGMAS * sqrt(s_a^2 / n_a + s_b^2 / n_b)``."""
    out: dict[str, list[dict[str, Any]]] = {}
    for ratio in sorted({r.ratio for r in rows}):
        at = sorted((r for r in rows if r.ratio == ratio), key=lambda r: -r.acc_finetuned)
        pairs = []
        for i, a in enumerate(at):
            for b in at[i + 1:]:
                se = float(np.sqrt(a.finetuned_std ** 2 / len(a.finetuned_per_seed)
                                   + b.finetuned_std ** 2 / len(b.finetuned_per_seed)))
                diff = a.acc_finetuned - b.acc_finetuned
                if len(a.finetuned_per_seed) > 1 and diff > NOISE_SIGMAS * se:
                    pairs.append({"better": a.criterion, "worse": b.criterion,
                                  "difference": diff, "noise": NOISE_SIGMAS * se})
        out[str(ratio)] = pairs
    return out


# ---------------------------------------------------------------- settings at the target point


@dataclass(frozen=True)
class Trial:
    """One way to reach the target at 50% with L1: fine-tune and schedule settings."""

    name: str
    epochs: int
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    compensate: bool = False
    steps: int = 1
    step_epochs: int = 0
    round_to: int = 4


TRIALS = (
    Trial("engine default FineTune() (1 epoch, constant)", 1, lr_schedule="constant"),
    Trial("build default (10 epochs, cosine)", 10),
    Trial("10 epochs, cosine, lr 3e-3", 10, learning_rate=3e-3),
    Trial("10 epochs, cosine, compensation", 10, compensate=True),
    Trial("iterative: 2 steps, 5 + 10 epochs", 10, steps=2, step_epochs=5),
    Trial("15 epochs, cosine", 15),
    Trial("20 epochs, cosine (the table's setting)", 20),
    Trial("20 epochs, cosine, compensation", 20, compensate=True),
)


def run_trial(model: Any, data: Any, trial: Trial, settings: Settings) -> dict[str, Any]:
    from tinyprune.prune import FineTune

    start = time.monotonic()
    base = replace(settings, epochs=trial.epochs, learning_rate=trial.learning_rate,
                   lr_schedule=trial.lr_schedule, round_to=trial.round_to)
    step_ft = None
    if trial.steps > 1:
        step_ft = FineTune(epochs=trial.step_epochs, learning_rate=trial.learning_rate,
                           lr_schedule=trial.lr_schedule)
    pruned = prune_once(model, data, base, settings.seeds[0], ratio=0.5, criterion="l1",
                        steps=trial.steps, step_finetune=step_ft, compensate=trial.compensate)
    accs = [finetuned_accuracy(pruned.model, data, base.finetune(), seed)
            for seed in settings.seeds]
    return {**asdict(trial), "macs": pruned.macs_after,
            "macs_reduction": round(pruned.macs_before / pruned.macs_after, 2),
            "acc_before_finetune": float(pruned.accuracy.after_prune or 0.0),
            "acc_per_seed": accs, "acc_mean": float(np.mean(accs)), "acc_min": float(min(accs)),
            "seconds": round(time.monotonic() - start, 1)}


# ---------------------------------------------------------------- output


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def points(x: float) -> str:
    """A signed difference in accuracy points (no "-0.00")."""
    return f"{round(100 * x, 2) + 0.0:+.2f}"


def summary(rows: list[Row], baseline: float) -> dict[str, Any]:
    """Compensation gain per ratio (mean over criteria), the rows that reach the target and
    the criteria that differ by more than the seed noise."""
    gains = {}
    for ratio in sorted({r.ratio for r in rows}):
        at = [r for r in rows if r.ratio == ratio]
        both = [r.acc_compensated_finetuned - r.acc_finetuned for r in at
                if r.acc_compensated_finetuned is not None]
        gains[str(ratio)] = {
            "no_finetune": float(np.mean([r.acc_compensated - r.acc_pruned for r in at])),
            "after_finetune": float(np.mean(both)) if both else None,
        }
    floor = baseline - TOLERANCE
    reached = [{"criterion": r.criterion, "ratio": r.ratio, "compensate": comp, "acc": acc}
               for r in rows if r.macs_reduction >= 2.0
               for comp, acc in ((False, r.acc_finetuned), (True, r.acc_compensated_finetuned))
               if acc is not None and acc >= floor]
    return {"compensation_gain": gains, "target_floor": floor, "target_reached_by": reached,
            "distinct": distinct(rows)}


def _header(info: dict[str, Any], base: dict[str, Any], summ: dict[str, Any]) -> list[str]:
    s = info["settings"]
    return [f"# Pruning criteria on {info['title']}", "",
            *[f"- {k}: {v}" for k, v in info["machine"].items()],
            f"- command: `{info['command']}`",
            f"- model `{info['model']}`, data `{info['data']}` ({base['train_samples']:,} "
            f"training, {base['test_samples']:,} test samples)",
            f"- fine-tune (every row): {s['epochs']} epoch{'s' * (s['epochs'] != 1)}, "
            f"Adam lr {s['learning_rate']}, {s['lr_schedule']} schedule, batch "
            f"{s['batch_size']}, validation split {s['validation_split']}, seeds "
            f"{list(s['seeds'])} (each seed fine-tunes its own copy of the cut; the cut is made "
            "once per seed only for random, whose ranking the seed draws)",
            f"- one-shot, local scope, keep_first, round_to {s['round_to']}; gradients and "
            f"compensation on {s['samples']} training samples; accuracy on the test set",
            f"- unpruned: {base['macs']:,} MACs, {base['params']:,} params, accuracy "
            f"{pct(base['accuracy'])}%; target (issue #3): >= {pct(summ['target_floor'])}% at "
            "2x fewer MACs",
            _time_line(info), ""]


def _time_line(info: dict[str, Any]) -> str:
    parts = info.get("part_seconds")
    if not parts:
        return f"- total time {info['seconds']:.0f} s"
    return (f"- total time {info['seconds']:.0f} s wall: {len(parts)} processes over disjoint "
            f"criteria in parallel ({', '.join(f'{p:.0f}' for p in parts)} s), then merged")


def _rows_table(rows: list[Row]) -> list[str]:
    both = any(r.acc_compensated_finetuned is not None for r in rows)
    head = ("| criterion | removed | MACs | MACs ÷ | params | pruned | compensated | "
            "fine-tuned (mean ± sd) | per seed |" + (" compensated + fine-tuned |" if both else ""))
    lines = [head, "|---" * (9 + both) + "|"]
    for r in rows:
        line = (f"| {r.criterion} | {r.ratio:.0%} | {r.macs:,} | {r.macs_reduction} | "
                f"{r.params:,} | {pct(r.acc_pruned)} | {pct(r.acc_compensated)} | "
                f"{pct(r.acc_finetuned)} ± {pct(r.finetuned_std)} | "
                f"{' / '.join(pct(a) for a in r.finetuned_per_seed)} |")
        if both:
            comp = r.acc_compensated_finetuned
            line += f" {'-' if comp is None else pct(comp)} |"
        lines.append(line)
    return lines


def _distinct_lines(rows: list[Row], summ: dict[str, Any]) -> list[str]:
    if max(len(r.finetuned_per_seed) for r in rows) < 2:
        return ["", "One seed: no estimate of the seed noise."]
    lines = ["", f"Differences beyond the seed noise (fine-tuned means; a pair counts when the "
             f"difference exceeds {NOISE_SIGMAS:g} standard errors of the two means):", ""]
    for ratio, pairs in summ["distinct"].items():
        at = sorted((r for r in rows if r.ratio == float(ratio)), key=lambda r: -r.acc_finetuned)
        order = ", ".join(f"{r.criterion} {pct(r.acc_finetuned)}" for r in at)
        lines.append(f"- {float(ratio):.0%} removed ({order}): " + (
            "; ".join(f"{p['better']} > {p['worse']} by {points(p['difference'])} "
                      f"(noise {100 * p['noise']:.2f})" for p in pairs) or "none"))
    return lines


def missing(rows: list[Row]) -> list[tuple[str, float]]:
    """The rows of the default grid (every criterion at RATIOS) that were not measured."""
    done = {(r.criterion, r.ratio) for r in rows}
    return [(c, ratio) for ratio in RATIOS for c in CRITERIA if (c, ratio) not in done]


def _missing_lines(rows: list[Row]) -> list[str]:
    gaps = missing(rows)
    if not gaps:
        return []
    by_ratio = {ratio: [c for c, r in gaps if r == ratio] for ratio in RATIOS}
    return ["", f"Not measured ({len(gaps)} of the {len(CRITERIA) * len(RATIOS)} rows of the "
            "full grid): " + "; ".join(f"{ratio:.0%}: {', '.join(cs)}"
                                        for ratio, cs in by_ratio.items() if cs) + "."]


def markdown(info: dict[str, Any], rows: list[Row], trials: list[dict[str, Any]],
             base: dict[str, Any], summ: dict[str, Any]) -> str:
    lines = [*_header(info, base, summ), *_rows_table(rows)]
    reached = sorted({f"{r['criterion']}{' + compensation' if r['compensate'] else ''}"
                      for r in summ["target_reached_by"]})
    lines += ["", f"Reached the target at >= 2x fewer MACs after fine-tune: "
              f"{', '.join(reached) or 'none'}."]
    lines += _distinct_lines(rows, summ)
    lines += _missing_lines(rows)
    lines += ["", "Compensation gain (mean over criteria, accuracy points):", "",
              "| removed | without fine-tune | after fine-tune |", "|---|---|---|"]
    for ratio, g in summ["compensation_gain"].items():
        after = "-" if g["after_finetune"] is None else points(g["after_finetune"])
        lines.append(f"| {float(ratio):.0%} | {points(g['no_finetune'])} | {after} |")
    if trials:
        lines += ["", f"Settings at 50% with L1 (accuracy after fine-tune per seed; target "
                  f"{pct(summ['target_floor'])}%):", "",
                  "| settings | MACs ÷ | before fine-tune | per seed | mean | reached |",
                  "|---|---|---|---|---|---|"]
        for t in trials:
            ok = "yes" if t["acc_min"] >= summ["target_floor"] else "no"
            lines.append(f"| {t['name']} | {t['macs_reduction']} | {pct(t['acc_before_finetune'])}"
                         f" | {' / '.join(pct(a) for a in t['acc_per_seed'])} | "
                         f"{pct(t['acc_mean'])} | {ok} |")
    return "\n".join(lines) + "\n"


def baseline(model: Any, data: Any) -> dict[str, Any]:
    from tinyprune.models.stats import count_macs, count_params
    from tinyprune.prune.data import accuracy

    return {"macs": count_macs(model), "params": count_params(model),
            "accuracy": float(accuracy(model, data) or 0.0),
            "train_samples": len(data.x_train), "test_samples": len(data.x_test)}


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="digits")
    ap.add_argument("--model", type=Path, help="the trained Keras model (default: the preset's)")
    ap.add_argument("--data", type=Path, help="its .npz (default: the preset's)")
    ap.add_argument("--name", help="results file stem (default: the preset's)")
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of the results files")
    ap.add_argument("--epochs", type=int, default=Settings.epochs)
    ap.add_argument("--learning-rate", type=float, default=Settings.learning_rate)
    ap.add_argument("--batch-size", type=int, default=Settings.batch_size)
    ap.add_argument("--seeds", default="0", help="comma-separated prune and fine-tune seeds")
    ap.add_argument("--trial-seeds", default="0,1,2", help="seeds of the settings table")
    ap.add_argument("--ratios", default=",".join(str(r) for r in RATIOS))
    ap.add_argument("--criteria", default=",".join(CRITERIA))
    ap.add_argument("--no-settings", action="store_true", help="skip the settings table")
    ap.add_argument("--compensated-finetune", action=argparse.BooleanOptionalAction,
                    help="also fine-tune the compensated models (default: on for digits)")
    ap.add_argument("--resume", action="store_true",
                    help="keep the rows of an earlier run with the same settings (the results "
                         "are written after every row)")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="PART_JSON",
                    help="measure nothing: join the rows of runs over disjoint criteria (same "
                         "settings, e.g. run in parallel with --results elsewhere)")
    return ap.parse_args()


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return path.name


def _portable(command: str) -> str:
    """A command line without machine paths: absolute paths relative to the repository (or
    their last part when outside it)."""
    return " ".join(_relative(Path(word)) if word.startswith("/") else word
                    for word in command.split(" "))


def _command() -> str:
    return _portable(" ".join(["python", "bench/prune_criteria.py", *sys.argv[1:]]))


def write_results(folder: Path, name: str, info: dict[str, Any], base: dict[str, Any],
                  rows: list[Row], trials: list[dict[str, Any]]) -> str:
    """Render and write ``<name>.md`` and ``<name>.json``; returns the Markdown."""
    order = {c: i for i, c in enumerate(CRITERIA)}
    rows = sorted(rows, key=lambda r: (order.get(r.criterion, len(order)), r.ratio))
    summ = summary(rows, base["accuracy"])
    text = markdown(info, rows, trials, base, summ)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(text)
    (folder / f"{name}.json").write_text(json.dumps(
        {**info, "baseline": base, "rows": [asdict(r) for r in rows], "settings_trials": trials,
         "summary": summ}, indent=2) + "\n")
    return text


_SAME = ("title", "settings", "model", "data", "compensated_finetune")


def merge(args: argparse.Namespace, preset: Preset) -> str:
    """Join part results (same settings, disjoint rows) into one table."""
    parts = [json.loads(path.read_text()) for path in args.merge]
    first = parts[0]
    for path, part in zip(args.merge, parts, strict=True):
        for key in _SAME:
            if part[key] != first[key]:
                raise SystemExit(f"error: {path}: {key} differs from {args.merge[0]}")
    rows = [Row(**r) for part in parts for r in part["rows"]]
    keys = [(r.criterion, r.ratio) for r in rows]
    if len(set(keys)) != len(keys):
        raise SystemExit("error: the parts measure some rows twice")
    info = {**{k: first[k] for k in _SAME}, "machine": first["machine"],
            "command": "; ".join([*(_portable(p["command"]) for p in parts), _command()]),
            "seconds": max(p["seconds"] for p in parts),
            "part_seconds": [p["seconds"] for p in parts]}
    return write_results(args.results, args.name or preset.name, info, first["baseline"],
                         rows, [t for p in parts for t in p["settings_trials"]])


def _resume(path: Path, info: dict[str, Any]) -> list[Row]:
    """The rows of an earlier run with the same settings; its time and command go into
    ``info``."""
    if not path.is_file():
        return []
    doc = json.loads(path.read_text())
    if any(doc.get(k) != info[k] for k in _SAME):
        raise SystemExit(f"error: {path}: earlier results have other settings; remove it or "
                         "drop --resume")
    info["command"] = f"{doc['command']}; {info['command']}"
    info["seconds_before"] = doc["seconds"]
    return [Row(**r) for r in doc["rows"]]


def main() -> int:
    args = _args()
    preset = DATASETS[args.dataset]
    if args.merge:
        print(merge(args, preset))
        return 0
    model_path, data_path = args.model or preset.model, args.data or preset.data
    comp_ft = (preset.compensated_finetune if args.compensated_finetune is None
               else args.compensated_finetune)
    from tinyprune.quiet import quiet_third_party

    quiet_third_party()  # before TensorFlow loads: no CUDA-stub or absl lines
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()
    start = time.monotonic()
    settings = Settings(epochs=args.epochs, learning_rate=args.learning_rate,
                        batch_size=args.batch_size,
                        seeds=tuple(int(s) for s in args.seeds.split(",")))
    name = args.name or preset.name
    info: dict[str, Any] = {
        "title": preset.title, "machine": machine(),
        "settings": json.loads(json.dumps(asdict(settings))),  # tuples as lists, as on disk
        "command": _command(), "model": _relative(model_path), "data": _relative(data_path),
        "compensated_finetune": comp_ft, "seconds": 0.0}
    rows = _resume(args.results / f"{name}.json", info) if args.resume else []
    before = float(info.pop("seconds_before", 0.0))
    done = {(r.criterion, r.ratio) for r in rows}
    model, data = load(model_path, data_path, preset.make)
    base = baseline(model, data)
    for criterion in args.criteria.split(","):
        for ratio in (float(r) for r in args.ratios.split(",")):
            if (criterion, ratio) in done:
                continue
            rows.append(measure(model, data, criterion, ratio, settings, comp_ft))
            r = rows[-1]
            both = "-" if r.acc_compensated_finetuned is None else pct(
                r.acc_compensated_finetuned)
            print(f"{criterion:9s} {ratio:.0%}: pruned {pct(r.acc_pruned)} compensated "
                  f"{pct(r.acc_compensated)} fine-tuned {pct(r.acc_finetuned)} ± "
                  f"{pct(r.finetuned_std)} both {both} ({r.seconds} s)", file=sys.stderr,
                  flush=True)
            info["seconds"] = round(before + time.monotonic() - start, 1)
            write_results(args.results, name, info, base, rows, [])
    trial_settings = replace(settings, seeds=tuple(int(s) for s in args.trial_seeds.split(",")))
    trials = [] if args.no_settings or not preset.trials else [
        run_trial(model, data, t, trial_settings) for t in TRIALS]
    info["seconds"] = round(before + time.monotonic() - start, 1)
    print(write_results(args.results, name, info, base, rows, trials))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
