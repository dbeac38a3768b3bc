"""Data for data-driven criteria, compensation, fine-tuning and accuracy.

``prune(..., data=...)`` accepts any of: a mapping or ``.npz`` result with ``x_train, y_train,
x_test, y_test`` (or ``x, y``), an object with those attributes, a tuple ``(x, y)`` or
``(x_train, y_train, x_test, y_test)``. Labels that are integers (class indices) make a
classification task (accuracy is reported); float targets a regression task; ``y=None`` an
autoencoder (the target is the input).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.errors import UsageError


@dataclass(frozen=True, eq=False)
class Dataset:
    """Training and test arrays (either split may be missing)."""

    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None

    @property
    def x_fit(self) -> np.ndarray:
        """The inputs used for statistics and fine-tuning (train split, else test split)."""
        x = self.x_train if self.x_train is not None else self.x_test
        assert x is not None
        return x

    @property
    def y_fit(self) -> np.ndarray | None:
        return self.y_train if self.x_train is not None else self.y_test

    @property
    def classification(self) -> bool:
        y = self.y_fit
        return y is not None and np.issubdtype(np.asarray(y).dtype, np.integer)


def _get(data: Any, key: str) -> Any:
    if isinstance(data, Mapping) or hasattr(data, "files"):
        return data.get(key, None)
    return getattr(data, key, None)


def as_dataset(data: Any) -> Dataset | None:
    """Normalize the accepted data forms to a :class:`Dataset` (None stays None).

    Raises:
        UsageError: the object has none of the accepted shapes.
    """
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, tuple | list):
        if len(data) == 2:
            return Dataset(np.asarray(data[0]), _array(data[1]), np.asarray(data[0]),
                           _array(data[1]))
        if len(data) == 4:
            return Dataset(*(_array(a) for a in data))
    if _get(data, "x_train") is not None or _get(data, "x_test") is not None:
        return Dataset(*(_array(_get(data, key)) for key in ("x_train", "y_train", "x_test",
                                                               "y_test")))
    if _get(data, "x") is not None:
        return Dataset(None, None, _array(_get(data, "x")), _array(_get(data, "y")))
    raise UsageError(
        "expected data with x_train, y_train, x_test, y_test (or x, y), or a tuple (x, y), "
        f"received: {type(data).__name__}"
    )


def _array(value: Any) -> np.ndarray | None:
    return None if value is None else np.asarray(value)


def is_probability(outputs: np.ndarray) -> bool:
    """True when ``outputs`` look like softmax probabilities (rows in [0, 1] summing to 1)."""
    return bool(
        outputs.ndim == 2 and outputs.min() >= 0.0 and outputs.max() <= 1.0
        and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-3)
    )


def loss_fn(tf: Any, dataset: Dataset, probabilities: bool) -> Any:
    """A TensorFlow loss ``(outputs, x, y) -> scalar`` suited to the task."""
    if dataset.classification:
        if probabilities:
            def loss(out: Any, x: Any, y: Any) -> Any:
                picked = tf.gather(out, tf.cast(y, tf.int32), batch_dims=1)
                return -tf.reduce_mean(tf.math.log(picked + 1e-7))
        else:
            def loss(out: Any, x: Any, y: Any) -> Any:
                return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=tf.cast(y, tf.int32), logits=out))
        return loss

    def mse(out: Any, x: Any, y: Any) -> Any:
        target = x if y is None else y
        target = tf.reshape(tf.cast(target, out.dtype), tf.shape(out))
        return tf.reduce_mean(tf.square(out - target))

    return mse


def accuracy(model: Any, dataset: Dataset | None, batch_size: int = 256) -> float | None:
    """Top-1 accuracy on the test split (None without labelled classification data)."""
    if dataset is None or dataset.x_test is None or dataset.y_test is None:
        return None
    if not np.issubdtype(dataset.y_test.dtype, np.integer):
        return None
    outputs = predict(model, dataset.x_test, batch_size)
    labels = dataset.y_test.reshape(-1)
    return float(np.mean(outputs.reshape(len(labels), -1).argmax(axis=1) == labels))


def predict(model: Any, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Model outputs on ``x`` in inference mode, batch by batch, as one array."""
    parts = [np.asarray(model(x[i:i + batch_size], training=False))
             for i in range(0, len(x), batch_size)]
    return np.concatenate(parts, axis=0)
