"""Fine-tuning refuses labels that are not classes of the model (Keras failed deep in fit)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune.errors import UsageError
from tinyprune.models.zoo import ZOO
from tinyprune.prune import FineTune, PruneConfig, prune
from tinyprune.prune.data import Dataset
from tinyprune.prune.finetune import finetune


def _data(bad_label: int | None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((32, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 32)
    if bad_label is not None:
        y[7] = bad_label
    return x, y


def test_label_beyond_the_classes_refused_before_training() -> None:
    x, y = _data(12)
    with pytest.raises(UsageError) as info:
        finetune(ZOO["digits"]("keras3"), Dataset(x, y, x, y), FineTune(epochs=1))
    assert str(info.value) == (
        "fine-tuning data: y_train holds label 12 (sample 7); expected class indices 0..9 (the "
        "model's output has 10 classes); check the labels, or give the model trained on them")


def test_prune_with_bad_labels_is_a_usage_error() -> None:
    x, y = _data(10)
    config = PruneConfig(ratio=0.25, finetune=FineTune(epochs=1))
    with pytest.raises(UsageError, match=r"y_train holds label 10 \(sample 7\)"):
        prune(ZOO["digits"]("tf_keras"), config, data=(x, y, x[:4], y[:4]))

