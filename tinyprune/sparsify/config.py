"""Options of the sparsify stage (frozen, validated on construction).

:class:`SparsifyConfig` holds what to sparsify and how; the schedule is one of
:class:`OneShot`, :class:`Gradual` or :class:`Iterative`. :meth:`SparsifyConfig.from_options`
builds one from flat option values (command line, ``[sparsify]`` in ``tinyprune.toml``) and
names the option at fault in its ``UsageError``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

from tinyprune.errors import UsageError
from tinyprune.prune.config import FineTune
from tinyprune.sparsify.allocate import ALLOCATIONS
from tinyprune.sparsify.criteria import CRITERIA
from tinyprune.sparsify.patterns import Pattern, get_pattern

DEFAULT_SPARSITY = 0.75


def _check(ok: bool, expected: str, field: str, value: Any) -> None:
    if not ok:
        raise UsageError(f"expected {field} {expected}, received: {field}={value!r}")


def _fraction(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class OneShot:
    """Remove everything at once, then fine-tune (if ``SparsifyConfig.finetune`` is set).

    Attributes:
        steps: rescoring steps without training in between, the sparsity growing
            exponentially ``1 - (1 - s)^(t/steps)`` (SynFlow's iterative form, Tanaka et al.
            2020, uses about 100); 1 is plain one-shot.
    """

    steps: int = 1
    name: ClassVar[str] = "oneshot"

    def __post_init__(self) -> None:
        _check(isinstance(self.steps, int) and self.steps >= 1, ">= 1", "steps", self.steps)


@dataclass(frozen=True)
class Gradual:
    """Gradual pruning during fine-tuning (Zhu & Gupta 2017).

    The sparsity follows ``s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (t1 - t0))^exponent`` from
    optimizer step ``t0`` (start of ``start_epoch``) to ``t1`` (start of ``end_epoch``); the masks
    are recomputed every ``frequency`` steps and at ``t1``, and held in between. The remaining
    epochs of ``SparsifyConfig.finetune`` train at the final sparsity (its ``patience`` is not
    used: the best epoch could be a less sparse one).

    Attributes:
        initial_sparsity: ``s_i``.
        start_epoch: first epoch of the ramp.
        end_epoch: the ramp ends at the start of this epoch (None: two thirds of the
            fine-tune epochs, at least 1).
        frequency: optimizer steps between mask updates.
        exponent: 3 in the paper.
    """

    initial_sparsity: float = 0.0
    start_epoch: int = 0
    end_epoch: int | None = None
    frequency: int = 10
    exponent: float = 3.0
    name: ClassVar[str] = "gradual"

    def __post_init__(self) -> None:
        _check(_fraction(self.initial_sparsity) and 0.0 <= self.initial_sparsity < 1.0,
               "in [0, 1)", "initial_sparsity", self.initial_sparsity)
        _check(self.start_epoch >= 0, ">= 0", "start_epoch", self.start_epoch)
        _check(self.end_epoch is None or self.end_epoch > self.start_epoch,
               f"> start_epoch ({self.start_epoch}) or None", "end_epoch", self.end_epoch)
        _check(self.frequency >= 1, ">= 1", "frequency", self.frequency)
        _check(self.exponent > 0, "> 0", "exponent", self.exponent)

    def ramp_end(self, epochs: int) -> int:
        """The epoch at whose start the final sparsity is reached, for ``epochs`` in total."""
        return self.end_epoch if self.end_epoch is not None else max(
            self.start_epoch + 1, round(epochs * 2 / 3))

    def sparsity_at(self, step: int, t0: int, t1: int, final: float) -> float:
        """``s_t`` of the polynomial at optimizer step ``step``."""
        if step <= t0:
            return self.initial_sparsity
        if step >= t1:
            return final
        return final + (self.initial_sparsity - final) * (1 - (step - t0) / (t1 - t0)) ** \
            self.exponent


@dataclass(frozen=True)
class Iterative:
    """Iterative magnitude pruning with weight rewinding (the lottery-ticket procedure).

    Each round removes a fraction of the surviving weights (ranked on the trained weights),
    rewinds the survivors (and every other weight) to the weights of epoch ``rewind_epoch``,
    and retrains from that epoch to the end of ``SparsifyConfig.finetune`` (the learning-rate
    schedule resumes at ``rewind_epoch``), Frankle & Carbin 2019, Frankle et al. 2020.

    Attributes:
        rounds: prune-rewind-retrain rounds; the sparsity after round r is
            ``1 - (1 - s)^(r/rounds)`` (the same fraction of survivors each round).
        rewind_epoch: k. With ``train_first``, the weights after k epochs of the first training
            run; without it, k must be 0 and the rewind point is the model as given.
        train_first: train the model as given (e.g. freshly initialised) before the first
            round, keeping the weights of epoch k; False for a model that is already trained.
        levels: explicit sparsity after each round (increasing, the last one the target);
            replaces ``rounds``.
    """

    rounds: int = 3
    rewind_epoch: int = 0
    train_first: bool = False
    levels: tuple[float, ...] | None = None
    name: ClassVar[str] = "imp"

    def __post_init__(self) -> None:
        _check(self.rounds >= 1, ">= 1", "rounds", self.rounds)
        _check(self.rewind_epoch >= 0, ">= 0", "rewind_epoch", self.rewind_epoch)
        _check(self.train_first or self.rewind_epoch == 0,
               "0 unless train_first=True (there is no training run to rewind into)",
               "rewind_epoch", self.rewind_epoch)
        if self.levels is not None:
            levels = tuple(float(v) for v in self.levels)
            ok = bool(levels) and all(0 < v < 1 for v in levels) and all(
                a < b for a, b in itertools.pairwise(levels))
            _check(ok, "increasing fractions in (0, 1)", "levels", self.levels)
            object.__setattr__(self, "levels", levels)
            object.__setattr__(self, "rounds", len(levels))

    def targets(self, final: float) -> tuple[float, ...]:
        """The sparsity after each round."""
        if self.levels is not None:
            return self.levels
        return tuple(1 - (1 - final) ** (r / self.rounds) for r in range(1, self.rounds + 1))


Schedule = OneShot | Gradual | Iterative
SCHEDULES: dict[str, type[OneShot] | type[Gradual] | type[Iterative]] = {
    "oneshot": OneShot, "gradual": Gradual, "imp": Iterative,
}
_ALIASES = {"one-shot": "oneshot", "one_shot": "oneshot", "iterative": "imp"}


@dataclass(frozen=True)
class SparsifyConfig:
    """What to sparsify, how to rank blocks, how to get there.

    Attributes:
        sparsity: target fraction of zero weights over the kernels of the sparse layers
            without an override (None: 0.75 for blocks, ``1 - N/M`` for N:M, which is also the
            only value N:M accepts).
        pattern: ``"1x4"``, ``"2x4"``, ``"4x4"``, ``"1x1"``, ``"2:4"``, ``"1:4"`` (see
            :mod:`tinyprune.sparsify.patterns`) or a :class:`Pattern`.
        criterion: ``l1``, ``l2``, ``lookahead``, ``snip``, ``synflow``, ``random`` (see
            :mod:`tinyprune.sparsify.criteria`) or a callable ``(layer, ctx) -> saliency``.
        schedule: :class:`OneShot`, :class:`Gradual` or :class:`Iterative`.
        allocation: ``uniform``, ``erk`` or ``global`` (see :mod:`tinyprune.sparsify.allocate`).
        max_layer_sparsity: no layer sparser than this.
        layer_sparsity: sparsity per layer name, outside the global target (0 keeps a layer
            dense).
        depthwise: sparsify the depthwise layers too (``1x4``: four channels at one tap);
            without it they stay dense unless named in ``layer_sparsity``.
        finetune: training after one-shot pruning, during gradual pruning, and per IMP round
            (None: none; gradual and IMP need it).
        samples: data samples for gradient criteria.
        recalibrate: re-estimate BatchNormalization statistics on the training inputs after
            masking and after training, before accuracy is measured (see
            :meth:`~tinyprune.sparsify.engine.Sparsifier.recalibrate`).
        bn_samples: training inputs used for that.
        batch_size: batch size for gradients, evaluation and recalibration.
        seed: seed of the random criterion.
        progress: show tqdm progress bars.
    """

    sparsity: float | None = None
    pattern: str | Pattern = "1x4"
    criterion: Any = "l1"
    schedule: Schedule = OneShot()
    allocation: str = "uniform"
    max_layer_sparsity: float = 0.95
    layer_sparsity: Mapping[str, float] | None = None
    depthwise: bool = False
    finetune: FineTune | None = None
    samples: int = 256
    recalibrate: bool = True
    bn_samples: int = 2048
    batch_size: int = 64
    seed: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        pattern = get_pattern(self.pattern, "pattern")
        full = pattern.full_sparsity
        if self.sparsity is None:
            object.__setattr__(self, "sparsity", DEFAULT_SPARSITY if full is None else full)
        _check(_fraction(self.sparsity) and 0.0 < self.sparsity < 1.0,  # type: ignore[operator]
               "in (0, 1)", "sparsity", self.sparsity)
        _check(_fraction(self.max_layer_sparsity) and 0.0 < self.max_layer_sparsity < 1.0,
               "in (0, 1)", "max_layer_sparsity", self.max_layer_sparsity)
        if full is None:
            _check(self.sparsity <= self.max_layer_sparsity,  # type: ignore[operator]
                   f"<= max_layer_sparsity ({self.max_layer_sparsity:g})", "sparsity",
                   self.sparsity)
        else:
            _check(abs(self.sparsity - full) < 1e-9,  # type: ignore[operator]
                   f"{full:g} for pattern {pattern.name} (at most {pattern.name.split(':')[0]} "
                   f"non-zeros in every {pattern.name.split(':')[1]})", "sparsity", self.sparsity)
        _check((isinstance(self.criterion, str) and self.criterion in CRITERIA)
               or callable(self.criterion), f"one of {', '.join(CRITERIA)}", "criterion",
               self.criterion)
        _check(self.allocation in ALLOCATIONS, f"one of {', '.join(ALLOCATIONS)}", "allocation",
               self.allocation)
        _check(isinstance(self.schedule, OneShot | Gradual | Iterative),
               "OneShot(), Gradual() or Iterative()", "schedule", self.schedule)
        _check(self.samples >= 1, ">= 1", "samples", self.samples)
        _check(self.bn_samples >= 1, ">= 1", "bn_samples", self.bn_samples)
        _check(self.batch_size >= 1, ">= 1", "batch_size", self.batch_size)
        self._check_layers(full)
        self._check_training()

    def _check_layers(self, full: float | None) -> None:
        if self.layer_sparsity is None:
            return
        for layer, value in self.layer_sparsity.items():
            field = f"layer_sparsity[{layer!r}]"
            if full is None:
                _check(_fraction(value) and 0.0 <= value < 1.0, "in [0, 1)", field, value)
            else:
                _check(_fraction(value) and (value == 0 or abs(value - full) < 1e-9),
                       f"0 or {full:g} (N:M layers are all or nothing)", field, value)
        object.__setattr__(self, "layer_sparsity", MappingProxyType(dict(self.layer_sparsity)))

    def _check_training(self) -> None:
        if isinstance(self.schedule, Gradual | Iterative):
            ft = self.finetune
            _check(ft is not None and ft.epochs > 0, f"FineTune(epochs > 0) for the "
                   f"{self.schedule.name} schedule", "finetune", ft)
            assert ft is not None
        if isinstance(self.schedule, Gradual) and self.finetune is not None:
            end = self.schedule.ramp_end(self.finetune.epochs)
            _check(end <= self.finetune.epochs, f"<= the fine-tune epochs "
                   f"({self.finetune.epochs})", "end_epoch", end)
        if isinstance(self.schedule, Iterative) and self.finetune is not None:
            _check(self.schedule.rewind_epoch < self.finetune.epochs,
                   f"< the fine-tune epochs ({self.finetune.epochs})", "rewind_epoch",
                   self.schedule.rewind_epoch)

    @property
    def target(self) -> float:
        """The resolved sparsity (never None after construction)."""
        assert self.sparsity is not None
        return float(self.sparsity)

    @property
    def schedule_name(self) -> str:
        return self.schedule.name

    @property
    def criterion_name(self) -> str:
        c = self.criterion
        return c if isinstance(c, str) else type(c).__name__

    @property
    def pattern_name(self) -> str:
        return get_pattern(self.pattern).name

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None = None, *, where: str = "",
                     **kwargs: Any) -> SparsifyConfig:
        """A config from flat option values (``None`` values are ignored).

        Keys: ``sparsity``, ``block`` (the pattern), ``criterion``, ``schedule`` (``oneshot``,
        ``gradual``, ``imp``), ``allocation``, ``max_layer_sparsity``, ``layers`` (per-layer
        sparsity), ``epochs`` (fine-tune epochs; cosine learning rate), ``learning_rate``,
        ``batch_size``, ``initial_sparsity``, ``end_epoch``, ``frequency`` (gradual),
        ``rounds``, ``rewind_epoch`` (imp), ``steps`` (oneshot), ``seed``, ``progress``,
        ``depthwise`` (sparsify the depthwise layers too).

        Args:
            options: e.g. the ``[sparsify]`` table of ``tinyprune.toml``.
            where: prefix of error messages (e.g. ``"tinyprune.toml [sparsify] "``).
            **kwargs: more options (e.g. from the command line); they win over ``options``.

        Raises:
            UsageError: an unknown key or a bad value; the message names the option.
        """
        values = {k: v for k, v in {**dict(options or {}), **kwargs}.items() if v is not None}
        try:
            return _from_options(values)
        except UsageError as exc:
            raise UsageError(f"{where}{exc}") from None


_OPTION_KEYS = ("sparsity", "block", "criterion", "schedule", "allocation", "max_layer_sparsity",
                "layers", "epochs", "learning_rate", "batch_size", "initial_sparsity",
                "end_epoch", "frequency", "rounds", "rewind_epoch", "steps", "seed", "progress",
                "depthwise")
_SCHEDULE_KEYS = {"oneshot": ("steps",), "gradual": ("initial_sparsity", "end_epoch", "frequency"),
                  "imp": ("rounds", "rewind_epoch")}


def _number(values: dict[str, Any], key: str, kind: type) -> Any:
    value = values[key]
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is int:
        ok = ok and float(value).is_integer()
    _check(ok, f"a{'n integer' if kind is int else ' number'}", key, value)
    return kind(value)


def _from_options(values: dict[str, Any]) -> SparsifyConfig:
    unknown = sorted(set(values) - set(_OPTION_KEYS))
    if unknown:
        raise UsageError(f"expected options from {', '.join(_OPTION_KEYS)}, received: "
                         f"{unknown[0]}={values[unknown[0]]!r}")
    name = str(values.get("schedule", "oneshot")).strip().lower()
    name = _ALIASES.get(name, name)
    _check(name in SCHEDULES, f"one of {', '.join(SCHEDULES)}", "schedule",
           values.get("schedule"))
    for other, keys in _SCHEDULE_KEYS.items():
        for key in keys:
            if other != name and key in values:
                _check(False, f"only with schedule={other!r}", key, values[key])
    ints = {"epochs", "batch_size", "end_epoch", "frequency", "rounds", "rewind_epoch", "steps",
            "seed"}
    floats = {"sparsity", "max_layer_sparsity", "learning_rate", "initial_sparsity"}
    for key in values.keys() & (ints | floats):
        values[key] = _number(values, key, int if key in ints else float)
    schedule_args = {k: values[k] for k in _SCHEDULE_KEYS[name] if k in values}
    if name == "imp":
        schedule_args["train_first"] = False
    schedule = SCHEDULES[name](**schedule_args)
    finetune = None
    if values.get("epochs", 0) > 0:
        finetune = FineTune(epochs=values["epochs"], lr_schedule="cosine",
                            **{k: values[k] for k in ("learning_rate", "batch_size")
                               if k in values})
    layers = values.get("layers")
    _check(layers is None or isinstance(layers, Mapping), "a table of layer = sparsity",
           "layers", layers)
    if "depthwise" in values:
        _check(isinstance(values["depthwise"], bool), "true or false", "depthwise",
               values["depthwise"])
    config_args: dict[str, Any] = {k: values[k] for k in ("sparsity", "criterion", "allocation",
                                          "max_layer_sparsity", "seed", "progress", "depthwise")
                   if k in values}
    if "block" in values:
        config_args["pattern"] = get_pattern(str(values["block"]), "block").name
    return SparsifyConfig(schedule=schedule, finetune=finetune, layer_sparsity=layers,
                          **config_args)


__all__ = ["SCHEDULES", "FineTune", "Gradual", "Iterative", "OneShot", "Schedule",
           "SparsifyConfig"]
