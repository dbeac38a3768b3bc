"""Train the MLPerf Tiny DS-CNN on kws.npz and save it as a .keras file (Keras 3, CPU).

The architecture is :func:`tinyprune.models.zoo.kws_dscnn` (49x10x1 MFCC -> 12 classes). Adam
with a cosine learning rate, seeds fixed, TensorFlow's deterministic ops. Run after
make_data.py: ``python examples/kws/train.py`` (about 20 s per epoch on 2 idle cores).

Next to the model it writes ``<out>.json``: the data file's SHA-256, the epochs, the seed and the
test accuracy. With ``--reuse`` an existing model whose record matches is kept (``make demo-kws``
trains once).

usage: python examples/kws/train.py [--data build/kws/kws.npz] [--out build/kws/kws_dscnn.keras]
                                    [--epochs 16] [--seed 0] [--reuse]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SEED = 0
EPOCHS = 16
BATCH = 100  # the reference's batch size
LEARNING_RATE = 3e-3

log = logging.getLogger("train")


def cosine(epochs: int, lr: float) -> Any:
    def schedule(epoch: int, _: float) -> float:
        return float(0.5 * lr * (1 + math.cos(math.pi * epoch / epochs)))

    return schedule


def train(data: Path, epochs: int, seed: int = SEED) -> tuple[Any, float]:
    """Train from scratch; return the uncompiled model (no optimizer state) and test accuracy."""
    import keras
    import tensorflow as tf

    from tinyprune.models.zoo import kws_dscnn

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    arrays = np.load(data)
    model = kws_dscnn("keras3", seed=seed)
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(arrays["x_train"], arrays["y_train"], batch_size=BATCH, epochs=epochs, verbose=2,
              shuffle=True, callbacks=[keras.callbacks.LearningRateScheduler(
                  cosine(epochs, LEARNING_RATE))])
    _, accuracy = model.evaluate(arrays["x_test"], arrays["y_test"], verbose=0)
    clean = kws_dscnn("keras3", seed=seed)  # same graph, uncompiled: keeps the file small
    clean.set_weights(model.get_weights())
    return clean, float(accuracy)


def record(data: Path, epochs: int, seed: int) -> dict[str, object]:
    """What the model depends on (compared by ``--reuse``)."""
    return {"data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(), "epochs": epochs,
            "seed": seed, "batch": BATCH, "learning_rate": LEARNING_RATE}


def _reusable(out: Path, wanted: dict[str, object]) -> bool:
    sidecar = out.with_name(out.name + ".json")
    if not (out.exists() and sidecar.is_file()):
        return False
    try:
        saved = json.loads(sidecar.read_text())
    except ValueError:
        return False
    return all(saved.get(k) == v for k, v in wanted.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "build" / "kws" / "kws.npz")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "kws" / "kws_dscnn.keras")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--reuse", action="store_true",
                        help="keep an existing model trained on the same data and settings")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.data.is_file():
        print(f"error: {args.data}: no such file; make it with python examples/kws/make_data.py",
              file=sys.stderr)
        return 2
    wanted = record(args.data, args.epochs, args.seed)
    if args.reuse and _reusable(args.out, wanted):
        log.info("%s is trained on this data with these settings: kept", args.out)
        return 0
    from tinyprune.quiet import quiet_third_party

    quiet_third_party()  # no TensorFlow/CUDA log lines, no ~/.keras (as the CLI)
    start = time.monotonic()
    model, accuracy = train(args.data, args.epochs, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    args.out.with_name(args.out.name + ".json").write_text(json.dumps(
        {**wanted, "test_accuracy": accuracy}, indent=2) + "\n")
    log.info("float test accuracy %.4f (held-out voices); %d epochs in %.0f s; wrote %s "
             "(%d bytes)", accuracy, args.epochs, time.monotonic() - start, args.out,
             args.out.stat().st_size)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
