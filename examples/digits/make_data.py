"""Write digits.npz: scikit-learn's 8x8 handwritten digits (shipped offline with scikit-learn).

Inputs are 8x8x1 float32 in [0, 1] (pixel / 16), labels int64 class indices 0..9, split 75/25
stratified by class with a fixed seed. Run from anywhere: ``python examples/digits/make_data.py``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

SEED = 0
TEST_FRACTION = 0.25
HERE = Path(__file__).resolve().parent

log = logging.getLogger("make_data")


def make_digits() -> dict[str, np.ndarray]:
    """Return the arrays x_train, y_train, x_test, y_test."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, stratify=y, random_state=SEED
    )
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "digits.npz")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    arrays = make_digits()
    np.savez_compressed(args.out, **arrays)
    log.info(
        "wrote %s: %d train, %d test samples",
        args.out,
        len(arrays["x_train"]),
        len(arrays["x_test"]),
    )


if __name__ == "__main__":
    main()
