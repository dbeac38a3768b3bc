"""Accuracy of block-sparse models: one-shot, gradual and IMP with rewinding, 50-95% sparsity.

For each model (DS-CNN- and ResNet-8-shaped, sized for the data set's input) and seed: train the
dense model from a seeded initialisation; sparsify it one-shot (+ fine-tune) and gradually
(Zhu & Gupta, during the same number of fine-tune epochs) at each sparsity; run IMP with weight
rewinding (lottery ticket: the same dense training from the same initialisation, rewind point
epoch k, one round per sparsity level, each retraining to the end of the dense schedule). Every
sparse model is converted to int8 and checked (removed weights are 0 in the int8 weights; the
real int8 sparsity is recorded) and its int8 accuracy is measured with the TFLite Micro
reference interpreter. Optional tables (on ``--extra-seeds``): other patterns at 75% (gradual),
the criteria at 90% (one-shot + fine-tune), and pruning before training at 90% (SNIP, SynFlow:
masks on the initialisation, then the dense training under them). Target of issue #6: at 75%
``1x4`` after fine-tuning, at most 1 point below the dense model (mean over seeds).

Results go to ``bench/results/sparsify_accuracy.{md,json}`` with the machine, date and settings
(``--out`` changes the stem; ``--resume`` keeps the finished (model, seed) runs of the JSON).

usage: python bench/sparsify_accuracy.py [--data examples/digits/digits.npz]
           [--models dscnn,resnet8] [--seeds 0,1,2] [--sparsities 0.5,0.75,0.9,0.95]
           [--pattern 1x4] [--epochs 30] [--finetune-epochs 15] [--rewind-epoch 1]
           [--dscnn-filters 32]
           [--patterns 1x1,2x4,4x4,2:4,1:4] [--criteria l1,l2,lookahead,snip,synflow,random]
           [--init-criteria snip,synflow,l1,random] [--extra-seeds 0]
           [--extra-models resnet8,dscnn] [--resume] [--merge OTHER.json ...]

``--data`` takes any ``.npz`` with ``x_train, y_train, x_test, y_test`` (e.g. the keyword-spotting
set once it exists): inputs larger than 16x16 get the MLPerf DS-CNN first layer (10x4, stride 2).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TOLERANCE = 0.01  # the target: at most 1 point below the dense model
HEADLINE = 0.75


def machine() -> dict[str, str]:
    import keras
    import tensorflow as tf
    from machine import machine as base  # bench/machine.py

    return base(tensorflow=tf.__version__, keras=keras.__version__)


@dataclass(frozen=True)
class Settings:
    """What every run shares."""

    data: str = "examples/digits/digits.npz"
    models: tuple[str, ...] = ("dscnn", "resnet8")
    seeds: tuple[int, ...] = (0, 1, 2)
    sparsities: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95)
    pattern: str = "1x4"
    criterion: str = "l1"
    allocation: str = "uniform"
    epochs: int = 30  # dense training, IMP's training run and each IMP round (to the end)
    learning_rate: float = 1e-2
    finetune_epochs: int = 15  # one-shot fine-tune, gradual (ramp over the first 2/3)
    finetune_learning_rate: float = 2e-3
    batch_size: int = 64
    rewind_epoch: int = 1
    dscnn_filters: int = 32
    patterns: tuple[str, ...] = ()
    criteria: tuple[str, ...] = ()
    init_criteria: tuple[str, ...] = ()  # pruning before training (SNIP, SynFlow)
    extra_seeds: tuple[int, ...] = (0,)  # seeds of the patterns and criteria tables
    extra_models: tuple[str, ...] = ("resnet8", "dscnn")  # models of those tables
    criteria_sparsity: float = 0.9

    def train(self) -> Any:
        from tinyprune.prune import FineTune

        return FineTune(epochs=self.epochs, batch_size=self.batch_size,
                        learning_rate=self.learning_rate, lr_schedule="cosine",
                        validation_split=0.0)

    def finetune(self) -> Any:
        from tinyprune.prune import FineTune

        return FineTune(epochs=self.finetune_epochs, batch_size=self.batch_size,
                        learning_rate=self.finetune_learning_rate, lr_schedule="cosine",
                        validation_split=0.0)


# ---------------------------------------------------------------- data and models


def load_data(path: Path) -> tuple[Any, tuple[int, ...], int]:
    from tinyprune.data import load_dataset
    from tinyprune.prune.data import as_dataset

    with np.load(path) as arrays:
        shape = tuple(int(d) for d in arrays["x_train"].shape[1:])
    if len(shape) == 2:
        shape = (*shape, 1)
    checked = load_dataset(path, shape)
    data = as_dataset({"x_train": checked.x_train, "y_train": checked.y_train,
                       "x_test": checked.x_test, "y_test": checked.y_test})
    return data, shape, checked.num_classes


def build(name: str, seed: int, shape: tuple[int, ...], classes: int, settings: Settings) -> Any:
    from tinyprune.models.zoo import SMALL

    if name == "dscnn":
        large = shape[0] > 16
        return SMALL[name](seed=seed, input_shape=shape, classes=classes,
                           filters=settings.dscnn_filters,
                           first_kernel=(10, 4) if large else (3, 3),
                           first_stride=(2, 2) if large else (1, 1))
    return SMALL[name](seed=seed, input_shape=shape, classes=classes)


def seeded(seed: int) -> None:
    import keras

    keras.utils.set_random_seed(seed)


def train_dense(init: Any, data: Any, settings: Settings, seed: int) -> Any:
    from tinyprune.prune.finetune import finetune
    from tinyprune.sparsify import copy_model

    seeded(seed)
    model = copy_model(init)
    finetune(model, data, settings.train())
    return model


# ---------------------------------------------------------------- one run


def int8_figures(result: Any, data: Any) -> dict[str, Any]:
    """Convert, check that the sparsity survives, measure int8 accuracy (TFLM reference)."""
    from tinyprune.ir import read_tflite
    from tinyprune.models.load import wrap_model
    from tinyprune.quantize import quantize
    from tinyprune.sparsify import check_int8
    from tinyprune.verify import accuracy, encode_inputs, reference_outputs

    tflite = quantize(wrap_model(result.model), data, samples=200)
    graph = read_tflite(tflite)
    checked = check_int8(result.masks, graph)
    outputs = reference_outputs(tflite, graph, encode_inputs(graph, data.x_test))
    return {"int8_sparsity": checked.sparsity,
            "int8_unit_sparsity": float(np.mean([x.unit_sparsity for x in checked.layers])),
            "int8_accuracy": accuracy(graph, outputs, data.y_test), "int8_check": "passed"}


def sparse_run(dense: Any, data: Any, settings: Settings, seed: int, **config: Any) -> dict:
    from tinyprune.sparsify import SparsifyConfig, sparsify

    seeded(seed)
    start = time.monotonic()
    options = {"pattern": settings.pattern, "criterion": settings.criterion,
               "allocation": settings.allocation, "finetune": settings.finetune(),
               "progress": False, "seed": seed, **config}
    result = sparsify(dense, SparsifyConfig(**options), data=data)
    row = {"sparsity": result.sparsity, "masked": result.accuracy.after_prune,
           "accuracy": result.accuracy.after_finetune, **int8_figures(result, data),
           "layers": {x.name: round(x.sparsity, 4) for x in result.layers},
           "seconds": round(time.monotonic() - start, 1)}
    return row


def imp_run(init: Any, data: Any, settings: Settings, seed: int) -> dict[str, Any]:
    from tinyprune.sparsify import Iterative, SparsifyConfig, sparsify

    seeded(seed)
    start = time.monotonic()
    schedule = Iterative(levels=settings.sparsities, rewind_epoch=settings.rewind_epoch,
                         train_first=True)
    result = sparsify(init, SparsifyConfig(
        sparsity=settings.sparsities[-1], pattern=settings.pattern,
        criterion=settings.criterion, allocation=settings.allocation, schedule=schedule,
        finetune=settings.train(), progress=False, seed=seed,
        max_layer_sparsity=max(0.95, settings.sparsities[-1])), data=data)
    return {"levels": {str(s.target): {"sparsity": s.sparsity, "accuracy": s.accuracy}
                       for s in result.history},
            "final": int8_figures(result, data), "seconds": round(time.monotonic() - start, 1)}


def one_seed(name: str, seed: int, data: Any, shape: tuple[int, ...], classes: int,
             settings: Settings) -> dict[str, Any]:
    from tinyprune.models.stats import count_macs, count_params
    from tinyprune.prune.data import accuracy
    from tinyprune.sparsify import Gradual, OneShot

    init = build(name, seed, shape, classes, settings)
    dense = train_dense(init, data, settings, seed)
    out: dict[str, Any] = {"params": count_params(dense), "macs": count_macs(dense),
                           "dense": accuracy(dense, data), "oneshot": {}, "gradual": {},
                           "patterns": {}, "criteria": {}, "init": {}}
    ceiling = max(0.95, *settings.sparsities)
    for s in settings.sparsities:
        for key, schedule in (("oneshot", OneShot()), ("gradual", Gradual())):
            out[key][str(s)] = sparse_run(dense, data, settings, seed, sparsity=s,
                                          schedule=schedule, max_layer_sparsity=ceiling)
            log(f"{name} seed {seed} {key} {s:.0%}: {out[key][str(s)]['accuracy']:.4f}")
    out["imp"] = imp_run(init, data, settings, seed)
    log(f"{name} seed {seed} imp: {out['imp']['levels']}")
    extra = seed in settings.extra_seeds and name in settings.extra_models
    for pattern in settings.patterns if extra else ():
        out["patterns"][pattern] = sparse_run(dense, data, settings, seed, pattern=pattern,
                                              sparsity=None if ":" in pattern else HEADLINE,
                                              schedule=Gradual())
        log(f"{name} seed {seed} pattern {pattern}: {out['patterns'][pattern]['accuracy']:.4f}")
    for criterion in settings.criteria if extra else ():
        out["criteria"][criterion] = sparse_run(dense, data, settings, seed, criterion=criterion,
                                                sparsity=settings.criteria_sparsity,
                                                schedule=OneShot())
        log(f"{name} seed {seed} criterion {criterion}: "
            f"{out['criteria'][criterion]['accuracy']:.4f}")
    for criterion in settings.init_criteria if extra else ():
        schedule = OneShot(steps=100 if criterion == "synflow" else 1)
        out["init"][criterion] = sparse_run(init, data, settings, seed, criterion=criterion,
                                            sparsity=settings.criteria_sparsity,
                                            schedule=schedule, finetune=settings.train())
        log(f"{name} seed {seed} at init {criterion}: {out['init'][criterion]['accuracy']:.4f}")
    return out


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- tables


def pct(x: float) -> str:
    return f"{100 * x:.2f}"


def stat(values: list[float]) -> str:
    """mean ± sample std (min-max) in percent."""
    if not values:
        return "-"
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
    return f"{pct(arr.mean())} ± {100 * std:.2f} ({pct(arr.min())}-{pct(arr.max())})"


def collect(runs: dict[str, Any], name: str, path: tuple[str, ...]) -> list[float]:
    out = []
    for seed_run in runs[name].values():
        value: Any = seed_run
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            out.append(float(value))
    return out


def headline_rows(runs: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    s = str(HEADLINE)
    rows = []
    for name in runs:
        dense = collect(runs, name, ("dense",))
        for label, path in (("one-shot + fine-tune", ("oneshot", s, "accuracy")),
                            ("gradual", ("gradual", s, "accuracy")),
                            (f"IMP, rewind to epoch {settings.rewind_epoch}",
                             ("imp", "levels", s, "accuracy"))):
            accs = collect(runs, name, path)
            if not accs:
                continue
            drop = float(np.mean(dense) - np.mean(accs))
            rows.append({"model": name, "schedule": label, "dense": dense, "sparse": accs,
                         "drop": drop, "within_1_point": drop <= TOLERANCE})
    return rows


def markdown(info: dict[str, Any], runs: dict[str, Any], settings: Settings) -> str:
    lines = [f"# Block-sparse accuracy ({Path(settings.data).name})", "",
             *[f"- {k}: {v}" for k, v in info["machine"].items()],
             f"- pattern {settings.pattern}, criterion {settings.criterion}, allocation "
             f"{settings.allocation}; seeds {list(settings.seeds)}; accuracy on the test split "
             "(Keras float; int8 columns: TFLite Micro reference interpreter)",
             f"- dense: {settings.epochs} epochs from the seeded initialisation, Adam lr "
             f"{settings.learning_rate}, cosine, batch {settings.batch_size}",
             f"- one-shot: mask the dense model, fine-tune {settings.finetune_epochs} epochs "
             f"(Adam lr {settings.finetune_learning_rate}, cosine); gradual: the same "
             f"{settings.finetune_epochs} epochs, sparsity ramped (cubic) over the first 2/3, "
             "masks updated every 10 steps",
             f"- IMP: the dense training again from the same initialisation, weights of epoch "
             f"{settings.rewind_epoch} kept; one round per level {list(settings.sparsities)}, "
             f"each retraining epochs {settings.rewind_epoch}..{settings.epochs} of the dense "
             f"schedule ({len(settings.sparsities)} x {settings.epochs - settings.rewind_epoch} "
             "epochs: IMP gets more training than the others)",
             f"- wall time {info['seconds']:.0f} s (summed over the bench processes, on a shared "
             "machine); cell = mean ± std (min-max) over seeds, %",
             ""]
    lines += _headline(runs, settings) + _sweep(runs, settings) + _int8(runs, settings)
    lines += _extra(runs, "patterns", f"Other patterns at {HEADLINE:.0%} (N:M at its own "
                    "sparsity), gradual") + _extra(
        runs, "criteria", f"Criteria at {settings.criteria_sparsity:.0%}, one-shot on the "
        "trained model + fine-tune") + _extra(
        runs, "init", f"Pruning before training at {settings.criteria_sparsity:.0%}: masks on "
        f"the initialisation, then the dense training recipe ({settings.epochs} epochs) under "
        "them (SynFlow: 100 rescoring steps)")
    return "\n".join(lines) + "\n"


def _headline(runs: dict[str, Any], settings: Settings) -> list[str]:
    lines = [f"## Target: {HEADLINE:.0%} {settings.pattern}, at most 1 point below dense", "",
             "| model | schedule | dense | sparse | drop (points) | within 1 point |",
             "|---|---|---|---|---|---|"]
    for r in headline_rows(runs, settings):
        lines.append(f"| {r['model']} | {r['schedule']} | {stat(r['dense'])} | "
                     f"{stat(r['sparse'])} | {100 * r['drop']:+.2f} | "
                     f"{'yes' if r['within_1_point'] else 'no'} |")
    return [*lines, ""]


def _sweep(runs: dict[str, Any], settings: Settings) -> list[str]:
    lines = ["## Sparsity sweep", "",
             "| model | sparsity | dense | one-shot, no fine-tune | one-shot + fine-tune | "
             "gradual | IMP + rewinding |", "|---|---|---|---|---|---|---|"]
    for name in runs:
        dense = stat(collect(runs, name, ("dense",)))
        for s in map(str, settings.sparsities):
            cells = [stat(collect(runs, name, p)) for p in (
                ("oneshot", s, "masked"), ("oneshot", s, "accuracy"),
                ("gradual", s, "accuracy"), ("imp", "levels", s, "accuracy"))]
            lines.append(f"| {name} | {float(s):.0%} | {dense} | {' | '.join(cells)} |")
    return [*lines, ""]


def _int8(runs: dict[str, Any], settings: Settings) -> list[str]:
    lines = ["## After int8 conversion", "",
             "Every sparse model passed `check_int8` (each removed weight is 0 in the int8 "
             "weights) unless marked. Real sparsity = zero int8 weights / weights of the sparse "
             "layers; blocks = all-zero units.", "",
             "| model | schedule | sparsity | float | int8 | int8 sparsity | int8 blocks |",
             "|---|---|---|---|---|---|---|"]
    for name in runs:
        for key in ("oneshot", "gradual"):
            for s in map(str, settings.sparsities):
                lines.append(_int8_row(runs, name, key, s, (key, s)))
        last = str(settings.sparsities[-1])
        lines.append(_int8_row(runs, name, "imp", last, ("imp", "final"),
                               ("imp", "levels", last, "accuracy")))
    return [*lines, ""]


def _int8_row(runs: dict[str, Any], name: str, label: str, s: str, path: tuple[str, ...],
              float_path: tuple[str, ...] | None = None) -> str:
    fl = collect(runs, name, float_path or (*path, "accuracy"))
    cells = [stat(collect(runs, name, (*path, key)))
             for key in ("int8_accuracy", "int8_sparsity", "int8_unit_sparsity")]
    return f"| {name} | {label} | {float(s):.0%} | {stat(fl)} | {' | '.join(cells)} |"


def _extra(runs: dict[str, Any], key: str, title: str) -> list[str]:
    names = sorted({k for r in runs.values() for seed in r.values() for k in seed.get(key, {})})
    if not names:
        return []
    label = {"patterns": "pattern", "criteria": "criterion", "init": "criterion"}[key]
    lines = [f"## {title}", "", f"| model | {label} | sparsity | float | int8 | int8 blocks |",
             "|---|---|---|---|---|---|"]
    for name in runs:
        for item in names:
            cells = [stat(collect(runs, name, (key, item, f)))
                     for f in ("sparsity", "accuracy", "int8_accuracy", "int8_unit_sparsity")]
            lines.append(f"| {name} | {item} | {' | '.join(cells)} |")
    return [*lines, ""]


# ---------------------------------------------------------------- main


def parse(argv: list[str] | None) -> tuple[Settings, Path, bool, list[Path]]:
    d = Settings()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=d.data, help="npz with x_train, y_train, x_test, y_test")
    ap.add_argument("--models", default=",".join(d.models))
    ap.add_argument("--seeds", default=",".join(map(str, d.seeds)))
    ap.add_argument("--sparsities", default=",".join(map(str, d.sparsities)))
    ap.add_argument("--pattern", default=d.pattern)
    ap.add_argument("--criterion", default=d.criterion)
    ap.add_argument("--allocation", default=d.allocation)
    ap.add_argument("--epochs", type=int, default=d.epochs)
    ap.add_argument("--learning-rate", type=float, default=d.learning_rate)
    ap.add_argument("--finetune-epochs", type=int, default=d.finetune_epochs)
    ap.add_argument("--finetune-learning-rate", type=float, default=d.finetune_learning_rate)
    ap.add_argument("--rewind-epoch", type=int, default=d.rewind_epoch)
    ap.add_argument("--dscnn-filters", type=int, default=d.dscnn_filters,
                    help="DS-CNN width (64: the MLPerf Tiny KWS model)")
    ap.add_argument("--patterns", default="", help="extra patterns at 75%% (gradual)")
    ap.add_argument("--criteria", default="", help="criteria compared at 90%% (one-shot)")
    ap.add_argument("--init-criteria", default="", help="criteria pruning before training")
    ap.add_argument("--extra-seeds", default="0", help="seeds of the patterns/criteria tables")
    ap.add_argument("--extra-models", default=",".join(d.extra_models),
                    help="models of the patterns/criteria tables")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="JSON results of other runs (e.g. one model per process) to include")
    ap.add_argument("--out", type=Path, default=RESULTS / "sparsify_accuracy")
    ap.add_argument("--resume", action="store_true", help="keep finished runs of the JSON")
    a = ap.parse_args(argv)
    split = lambda text: tuple(x for x in text.split(",") if x)  # noqa: E731
    settings = replace(
        d, data=a.data, models=split(a.models), seeds=tuple(map(int, split(a.seeds))),
        sparsities=tuple(map(float, split(a.sparsities))), pattern=a.pattern,
        criterion=a.criterion, allocation=a.allocation, epochs=a.epochs,
        learning_rate=a.learning_rate, finetune_epochs=a.finetune_epochs,
        finetune_learning_rate=a.finetune_learning_rate, rewind_epoch=a.rewind_epoch,
        patterns=split(a.patterns), criteria=split(a.criteria),
        init_criteria=split(a.init_criteria),
        extra_seeds=tuple(map(int, split(a.extra_seeds))),
        extra_models=split(a.extra_models), dscnn_filters=a.dscnn_filters)
    return settings, a.out, a.resume, a.merge


SEED_KEYS = frozenset({"seeds", "models", "extra_seeds", "extra_models"})
"""Settings a resumed or merged run may change: which seeds and models it adds."""


def different_settings(earlier: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """The settings (other than :data:`SEED_KEYS`) in which an earlier run's differ."""
    return [k for k in wanted if k not in SEED_KEYS and earlier.get(k) != wanted[k]]


def write(out: Path, info: dict[str, Any], runs: dict[str, Any], settings: Settings) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(info, runs, settings)
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(json.dumps(
        {**info, "settings": asdict(settings), "headline": headline_rows(runs, settings),
         "runs": runs}, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    settings, out, resume, merge = parse(argv)
    from tinyprune.quiet import quiet_third_party

    quiet_third_party()  # before TensorFlow loads: no CUDA-stub or absl lines
    start = time.monotonic()
    data, shape, classes = load_data(ROOT / settings.data if not Path(settings.data).is_absolute()
                                     else Path(settings.data))
    runs: dict[str, Any] = {}
    earlier = 0.0  # seconds spent by the resumed or merged runs
    sources = ([out.with_suffix(".json")] if resume and out.with_suffix(".json").is_file()
               else []) + list(merge)
    wanted = json.loads(json.dumps(asdict(settings)))  # tuples as lists, as on disk
    for source in sources:
        done = json.loads(source.read_text())
        differ = different_settings(done.get("settings", {}), wanted)
        if differ:
            key = differ[0]
            raise SystemExit(f"error: {source}: its runs have {key} = "
                             f"{done.get('settings', {}).get(key)!r}, this run {wanted[key]!r}; "
                             f"pass the same settings (only the seeds and models may differ) or "
                             f"write elsewhere with --out")
        earlier += float(done.get("seconds", 0.0))
        for name, seeds in done.get("runs", {}).items():
            runs.setdefault(name, {}).update(seeds)
    info = {"machine": machine(), "seconds": earlier}
    for name in settings.models:
        runs.setdefault(name, {})
        for seed in settings.seeds:
            if str(seed) in runs[name]:
                continue
            runs[name][str(seed)] = one_seed(name, seed, data, shape, classes, settings)
            info["seconds"] = round(earlier + time.monotonic() - start, 1)
            write(out, info, runs, settings)
    info["seconds"] = round(earlier + time.monotonic() - start, 1)
    print(write(out, info, runs, settings))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
