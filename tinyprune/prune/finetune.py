"""Fine-tuning a pruned model in its own Keras flavor (Adam, LR schedule, early stopping)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinyprune.data import check_labels, model_classes
from tinyprune.models._backend import flavor_of, keras_module
from tinyprune.prune.config import FineTune
from tinyprune.prune.data import Dataset, is_probability, predict

log = logging.getLogger(__name__)


def lr_at(ft: FineTune) -> Callable[[int, float], float]:
    """The learning rate of epoch ``e`` under ``ft.lr_schedule``."""

    def schedule(epoch: int, _: float) -> float:
        if ft.lr_schedule == "cosine":
            return float(0.5 * ft.learning_rate * (1 + math.cos(math.pi * epoch / ft.epochs)))
        if ft.lr_schedule == "step":
            return float(ft.learning_rate * 0.1 ** sum(epoch >= f * ft.epochs for f in (.5, .75)))
        return float(ft.learning_rate)

    return schedule


def _loss(k: Any, model: Any, data: Dataset) -> Any:
    if not data.classification:
        return k.losses.MeanSquaredError()
    probabilities = is_probability(predict(model, data.x_fit[:64]))
    return k.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def _progress_callback(k: Any, epochs: int, enabled: bool) -> Any:
    class _Bar(k.callbacks.Callback):
        def on_train_begin(self, logs: Any = None) -> None:
            self.bar = tqdm(total=epochs, desc="fine-tune", disable=None if enabled else True,
                            leave=False)

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            self.bar.update(1)
            self.bar.set_postfix({k_: f"{v:.4f}" for k_, v in (logs or {}).items()})

        def on_train_end(self, logs: Any = None) -> None:
            self.bar.close()

    return _Bar()


def _check_fit_labels(model: Any, data: Dataset) -> None:
    """Class labels must be classes of the model (else Keras fails deep inside ``fit``)."""
    if not data.classification or data.y_fit is None or len(model.outputs) != 1:
        return
    shape = tuple(model.outputs[0].shape[1:])
    classes = model_classes(shape, tuple(model.inputs[0].shape[1:]))
    if classes is not None:
        name = "y_train" if data.x_train is not None else "y_test"
        check_labels("fine-tuning data", name, data.y_fit, classes)


def finetune(model: Any, data: Dataset, ft: FineTune, progress: bool = False, *,
             callbacks: Sequence[Any] = (), initial_epoch: int = 0) -> Any:
    """Train ``model`` in place on ``data``'s fit split; returns the Keras History.

    The model is compiled (Adam, a loss suited to the labels); the user's original model is
    never passed here, only pruned copies. ``callbacks`` are added to the fit (the sparsify
    stage holds its masks with one); ``initial_epoch`` resumes the schedule at that epoch
    (epochs ``initial_epoch .. ft.epochs - 1`` are trained).

    Raises:
        UsageError: a class label is not a class of the model.
    """
    if ft.epochs <= initial_epoch:
        return None
    _check_fit_labels(model, data)
    k = keras_module(flavor_of(model))
    y = data.y_fit if data.y_fit is not None else data.x_fit
    model.compile(optimizer=k.optimizers.Adam(ft.learning_rate), loss=_loss(k, model, data))
    used = [*callbacks, k.callbacks.LearningRateScheduler(lr_at(ft)),
            _progress_callback(k, ft.epochs - initial_epoch, progress)]
    split = ft.validation_split if len(data.x_fit) >= 10 else 0.0
    if ft.patience is not None:
        used.append(k.callbacks.EarlyStopping(
            monitor="val_loss" if split > 0 else "loss", patience=ft.patience,
            restore_best_weights=True))
    history = model.fit(np.asarray(data.x_fit), np.asarray(y), epochs=ft.epochs,
                        initial_epoch=initial_epoch, batch_size=ft.batch_size,
                        validation_split=split, verbose=0, callbacks=used)
    log.info("fine-tuned %d epochs, final loss %.4f", len(history.history["loss"]),
             history.history["loss"][-1])
    return history
