"""Dataset input: ``.npz`` files checked against the model input, and seeded random inputs.

Format (SPEC.md): arrays ``x_train, y_train, x_test, y_test`` (Keras convention), or ``x, y`` as
test-only data. Labels are class indices; one-hot labels are accepted (argmax). A missing trailing
channel of 1 (e.g. 8x8 images for an 8x8x1 input) is added. Every failure is a one-line
:class:`~tinyprune.errors.UsageError` naming the file and the array.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune.errors import UsageError

log = logging.getLogger(__name__)

Shape = Sequence[int | None]
_FULL_KEYS = ("x_train", "y_train", "x_test", "y_test")
_TEST_KEYS = ("x", "y")


@dataclass(frozen=True, eq=False)
class Dataset:
    """Checked data: float32 inputs shaped like the model input, int64 class indices.

    ``x_train``/``y_train`` are None for test-only data (an ``x, y`` file).
    """

    x_train: np.ndarray | None
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray
    source: Path

    @property
    def has_train(self) -> bool:
        return self.x_train is not None

    @property
    def num_classes(self) -> int:
        """Classes seen in the labels (largest index + 1)."""
        labels = [self.y_test] + ([self.y_train] if self.y_train is not None else [])
        return int(max(int(y.max()) for y in labels)) + 1


def _shape_str(shape: Shape) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _fits(sample_shape: tuple[int, ...], expected: Shape) -> bool:
    return len(sample_shape) == len(expected) and all(
        e is None or e == s for s, e in zip(sample_shape, expected, strict=True)
    )


def _check_x(path: Path, name: str, x: np.ndarray, expected: Shape) -> np.ndarray:
    if x.dtype.kind not in "biuf" or x.ndim == 0:
        raise UsageError(
            f"{path}: {name} must be a numeric array of samples, received dtype "
            f"{x.dtype} with shape {x.shape}"
        )
    if len(x) == 0:
        raise UsageError(f"{path}: {name} is empty")
    sample = tuple(x.shape[1:])
    if not _fits(sample, expected):
        if expected and expected[-1] == 1 and _fits((*sample, 1), expected):
            x = x[..., np.newaxis]
        else:
            raise UsageError(
                f"{path}: {name} has per-sample shape {_shape_str(sample)}, expected "
                f"{_shape_str(expected)} (the model input)"
            )
    x = x.astype(np.float32, copy=False)
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise UsageError(
            f"{path}: {name} contains NaN or infinite values (first at sample "
            f"{int(np.argmax(bad))})"
        )
    return x


def _check_y(path: Path, name: str, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":
        log.info(
            "%s: %s is one-hot (%d columns); using argmax as class indices", path, name, y.shape[1]
        )
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise UsageError(
            f"{path}: {name} must be 1-D class indices, received dtype {y.dtype} "
            f"with shape {y.shape}"
        )
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        raise UsageError(
            f"{path}: {name} must be integer class indices, received non-integer or NaN values"
        )
    if len(y) and y.min() < 0:
        raise UsageError(f"{path}: {name} must be class indices >= 0, received {y.min()}")
    return y.astype(np.int64)


def _check_pair(
    path: Path, names: tuple[str, str], arrays: dict[str, np.ndarray], expected: Shape
) -> tuple[np.ndarray, np.ndarray]:
    x = _check_x(path, names[0], arrays[names[0]], expected)
    y = _check_y(path, names[1], arrays[names[1]])
    if len(x) != len(y):
        raise UsageError(
            f"{path}: {names[0]} has {len(x)} samples but {names[1]} has {len(y)} labels"
        )
    return x, y


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix != ".npz":
        raise UsageError(f"{path}: expected a .npz dataset, received '{path.suffix}'")
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise UsageError(f"{path}: not a readable .npz file ({exc})") from None


def load_dataset(path: str | Path, model_input_shape: Shape) -> Dataset:
    """Load and check an ``.npz`` dataset for a model.

    Args:
        path: the ``.npz`` file.
        model_input_shape: the model input shape without the batch dimension (None = any size).

    Returns:
        The checked :class:`Dataset` (inputs float32, labels int64).

    Raises:
        UsageError: missing file or arrays, shape or length mismatch, bad labels, NaN.
    """
    path = Path(path)
    arrays = _read_npz(path)
    x_train: np.ndarray | None
    y_train: np.ndarray | None
    if all(k in arrays for k in _FULL_KEYS):
        x_train, y_train = _check_pair(path, ("x_train", "y_train"), arrays, model_input_shape)
        x_test, y_test = _check_pair(path, ("x_test", "y_test"), arrays, model_input_shape)
    elif all(k in arrays for k in _TEST_KEYS):
        x_train = y_train = None
        x_test, y_test = _check_pair(path, ("x", "y"), arrays, model_input_shape)
    else:
        raise UsageError(
            f"{path}: expected arrays {', '.join(_FULL_KEYS)} or x, y; received: "
            f"{', '.join(sorted(arrays)) or 'no arrays'}"
        )
    log.info(
        "loaded %s: %s train, %d test samples",
        path,
        "no" if x_train is None else len(x_train),
        len(x_test),
    )
    return Dataset(x_train, y_train, x_test, y_test, path)


def random_inputs(
    shape: Shape, n: int, seed: int = 0, *, low: float = -1.0, high: float = 1.0
) -> np.ndarray:
    """``n`` seeded uniform float32 inputs of ``shape`` (no batch dim) in ``[low, high)``.

    Used when a model is built without data (quantization calibration, firmware run and
    bit-exactness check). Unknown dimensions (None) become 1.
    """
    dims = tuple(1 if d is None else int(d) for d in shape)
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(n, *dims)).astype(np.float32)
