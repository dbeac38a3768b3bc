"""The schedules: one-shot, gradual (Zhu & Gupta) and IMP with rewinding (lottery tickets).

Each runner takes the :class:`~tinyprune.sparsify.engine.Sparsifier` (which owns the model
being sparsified) and its schedule options, and returns an :class:`Outcome`: the final masks
(already applied to the model), the history, and the accuracy right after masking. A registry
maps each schedule class to its runner.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tinyprune.models._backend import keras_module
from tinyprune.prune.data import accuracy
from tinyprune.sparsify.config import Gradual, Iterative, OneShot, Schedule
from tinyprune.sparsify.engine import Sparsifier, describe
from tinyprune.sparsify.masks import Masks
from tinyprune.sparsify.result import Step

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Outcome:
    """What a schedule leaves: final masks, history, accuracy after masking / after training."""

    masks: Masks
    history: tuple[Step, ...]
    accuracy_masked: float | None
    accuracy_trained: float | None


def _finetune(sp: Sparsifier, masks: Masks) -> float | None:
    ft = sp.config.finetune
    if ft is None or ft.epochs == 0 or sp.dataset is None:
        return None
    sp.train(ft, masks)
    sp.apply(masks)
    sp.recalibrate()
    return accuracy(sp.model, sp.dataset)


def run_oneshot(sp: Sparsifier, schedule: OneShot) -> Outcome:
    """Mask at the target (in ``steps`` exponential rescoring steps), then fine-tune."""
    final = sp.config.target
    masks: Masks | None = None
    history = []
    for t in range(1, schedule.steps + 1):
        target = final if t == schedule.steps else 1 - (1 - final) ** (t / schedule.steps)
        masks = sp.plan(target, masks)
        sp.apply(masks)
        history.append(Step(t, None, target, sp.free_sparsity(masks)))
    assert masks is not None
    log.info("one-shot %s: %s", sp.pattern.name, describe(masks))
    sp.recalibrate()
    masked = accuracy(sp.model, sp.dataset)
    return Outcome(masks, tuple(history), masked, _finetune(sp, masks))


class _GradualState:
    """The mask updates of one gradual run (the callback asks it after every step)."""

    def __init__(self, sp: Sparsifier, schedule: Gradual) -> None:
        self.sp, self.schedule = sp, schedule
        self.masks: Masks | None = None
        self.history: list[Step] = []
        self.t0 = self.t1 = self.steps_per_epoch = 0

    def begin(self, params: dict[str, Any]) -> Masks | None:
        ft = self.sp.config.finetune
        assert ft is not None
        self.steps_per_epoch = int(params.get("steps") or 1)
        self.t0 = self.schedule.start_epoch * self.steps_per_epoch
        self.t1 = self.schedule.ramp_end(ft.epochs) * self.steps_per_epoch
        if self.t0 == 0 and self.schedule.initial_sparsity > 0:
            return self._prune(0)
        return None

    def update(self, step: int) -> Masks | None:
        due = step == self.t1 or (self.t0 <= step < self.t1
                                  and (step - self.t0) % self.schedule.frequency == 0)
        return self._prune(step) if due else None

    def _prune(self, step: int) -> Masks | None:
        target = self.schedule.sparsity_at(step, self.t0, self.t1, self.sp.config.target)
        if target <= 0 or (self.history and target <= self.history[-1].target):
            return None
        self.masks = self.sp.plan(target, self.masks)
        self.sp.apply(self.masks)
        self.history.append(Step(step, step // self.steps_per_epoch, target,
                                 self.sp.free_sparsity(self.masks)))
        return self.masks


def run_gradual(sp: Sparsifier, schedule: Gradual) -> Outcome:
    """Prune during fine-tuning, the sparsity following the polynomial, masks held between."""
    ft = sp.config.finetune
    assert ft is not None
    if ft.patience is not None:
        log.info("gradual schedule: patience %d not used (the best epoch could be less sparse)",
                 ft.patience)
    state = _GradualState(sp, schedule)
    sp.train(replace(ft, patience=None), None, update=state.update, on_begin=state.begin)
    if state.masks is None or state.history[-1].target < sp.config.target:
        raise AssertionError("gradual schedule ended before the final sparsity")  # a bug
    sp.apply(state.masks)
    sp.recalibrate()
    trained = accuracy(sp.model, sp.dataset)
    log.info("gradual %s: %s", sp.pattern.name, describe(state.masks))
    return Outcome(state.masks, tuple(state.history), None, trained)


def _snapshot_callback(sp: Sparsifier, epoch: int, store: list[list[Any]]) -> Any:
    k: Any = keras_module(sp.graph.flavor)

    class _Snapshot(k.callbacks.Callback):
        def on_epoch_end(self, e: int, logs: Any = None) -> None:
            if e + 1 == epoch:
                store.append(sp.model.get_weights())

    return _Snapshot()


def _rewind_point(sp: Sparsifier, schedule: Iterative) -> list[Any]:
    """The weights survivors are rewound to (training the model first if asked)."""
    start = sp.model.get_weights()
    if not schedule.train_first:
        return start
    ft = sp.config.finetune
    assert ft is not None
    store: list[list[Any]] = [start] if schedule.rewind_epoch == 0 else []
    sp.train(ft, None, extra=[_snapshot_callback(sp, schedule.rewind_epoch, store)])
    log.info("IMP: trained %d epochs, rewind point epoch %d", ft.epochs, schedule.rewind_epoch)
    return store[0]


def run_iterative(sp: Sparsifier, schedule: Iterative) -> Outcome:
    """Rounds of: rank on the trained weights, remove, rewind to epoch k, retrain."""
    ft = sp.config.finetune
    assert ft is not None
    rewind = _rewind_point(sp, schedule)
    masks: Masks | None = None
    history = []
    masked: float | None = None
    for r, target in enumerate(schedule.targets(sp.config.target), start=1):
        masks = sp.plan(target, masks)
        sp.model.set_weights(rewind)
        sp.apply(masks)
        masked = accuracy(sp.model, sp.dataset)  # the rewound weights' own BN statistics
        sp.train(ft, masks, initial_epoch=schedule.rewind_epoch)
        sp.apply(masks)
        sp.recalibrate()
        acc = accuracy(sp.model, sp.dataset)
        history.append(Step(r, ft.epochs, target, sp.free_sparsity(masks), acc))
        log.info("IMP round %d: sparsity %.3f, accuracy %s", r, history[-1].sparsity, acc)
    assert masks is not None
    return Outcome(masks, tuple(history), masked, history[-1].accuracy)


RUNNERS: dict[type, Callable[[Sparsifier, Any], Outcome]] = {
    OneShot: run_oneshot, Gradual: run_gradual, Iterative: run_iterative,
}


def run(sp: Sparsifier, schedule: Schedule) -> Outcome:
    """Run ``schedule`` on the sparsifier's model."""
    return RUNNERS[type(schedule)](sp, schedule)


__all__ = ["RUNNERS", "Outcome", "run"]
