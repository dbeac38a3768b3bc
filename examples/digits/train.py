"""Train the demo digits CNN on digits.npz and save digits_cnn.keras (Keras 3, CPU, seconds).

The architecture is :func:`tinyprune.models.zoo.digits_cnn` (conv 16/32/32 with BatchNorm,
global average pooling, dense 10). Seeds are fixed and TensorFlow runs deterministic ops.
Run after make_data.py: ``python examples/digits/train.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 0
EPOCHS = 15
BATCH = 32
HERE = Path(__file__).resolve().parent

log = logging.getLogger("train")


def train(data: Path, epochs: int) -> tuple[object, float]:
    """Train from scratch; return the uncompiled model (no optimizer state) and test accuracy."""
    import keras
    import tensorflow as tf

    from tinyprune.models.zoo import digits_cnn

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    arrays = np.load(data)
    model = digits_cnn("keras3", seed=SEED)
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        arrays["x_train"],
        arrays["y_train"],
        batch_size=BATCH,
        epochs=epochs,
        verbose=0,
        shuffle=True,
    )
    _, accuracy = model.evaluate(arrays["x_test"], arrays["y_test"], verbose=0)
    clean = digits_cnn("keras3", seed=SEED)  # same graph, uncompiled: keeps the file small
    clean.set_weights(model.get_weights())
    return clean, float(accuracy)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "digits.npz")
    parser.add_argument("--out", type=Path, default=HERE / "digits_cnn.keras")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model, accuracy = train(args.data, args.epochs)
    model.save(args.out)
    log.info("test accuracy %.4f; wrote %s (%d bytes)", accuracy, args.out, args.out.stat().st_size)


if __name__ == "__main__":
    main()
