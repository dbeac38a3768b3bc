"""Dataset input: ``.npz`` files checked against the model, and seeded random inputs.

Format (SPEC.md): arrays ``x_train, y_train, x_test, y_test`` (Keras convention), or ``x, y`` as
test-only data. Labels are class indices; one-hot labels are accepted (argmax). A missing trailing
channel of 1 (e.g. 8x8 images for an 8x8x1 input) is added. Given the model's output shape, every
label must be one of the model's classes. Array sizes are read from the ``.npy`` headers before
anything is loaded (:data:`MAX_DATA_BYTES`). Every failure is a one-line
:class:`~tinyprune.errors.UsageError` naming the file and the array.
"""

from __future__ import annotations

import logging
import math
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.models.limits import GiB, check_size

log = logging.getLogger(__name__)

Shape = Sequence[int | None]
_FULL_KEYS = ("x_train", "y_train", "x_test", "y_test")
_TEST_KEYS = ("x", "y")
MAX_DATA_BYTES = 4 * GiB
"""What a dataset file may unpack to, and what its inputs may take as float32 (the whole dataset
is held in memory)."""
_DATA_HINT = "use a subset of the samples"
_NPY_MAGIC = b"\x93NUMPY"


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


def _bad_label(source: Path | str, name: str, y: np.ndarray, bad: np.ndarray, expected: str
               ) -> UsageError:
    i = int(np.flatnonzero(bad)[0])
    value = y[i].item()
    shown = f"{value:g}" if isinstance(value, float) else str(value)
    return UsageError(f"{source}: {name} holds label {shown} (sample {i}); expected {expected}")


def _check_y(path: Path, name: str, y: np.ndarray) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    elif y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise UsageError(f"{path}: {name} (one-hot) contains NaN or infinite values")
        log.info(
            "%s: %s is one-hot (%d columns); using argmax as class indices", path, name, y.shape[1]
        )
        y = np.argmax(y, axis=1)
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        raise UsageError(
            f"{path}: {name} must be 1-D class indices, received dtype {y.dtype} "
            f"with shape {y.shape}"
        )
    if y.dtype.kind == "f":
        bad = ~(np.isfinite(y) & (y == np.round(y)))
        if bad.any():
            raise _bad_label(path, name, y, bad, "integer class indices")
    if len(y) and y.min() < 0:
        raise _bad_label(path, name, y, y < 0, "class indices >= 0")
    return y.astype(np.int64)


def model_classes(output_shape: Shape | None, input_shape: Shape | None = None) -> int | None:
    """The class count of a model whose output is a class vector, else None.

    The output is a class vector when exactly one dimension is larger than 1 (``(10,)``,
    ``(1, 1, 10)``); an output shaped like the input (an autoencoder) or a single value
    (regression, binary sigmoid) is not, and its labels are not checked against it.
    """
    if output_shape is None or any(d is None for d in output_shape):
        return None
    big = [int(d) for d in output_shape if d is not None and d != 1]
    if len(big) != 1 or big[0] < 2:
        return None
    if input_shape is not None and tuple(output_shape) == tuple(input_shape):
        return None
    return big[0]


def check_labels(source: Path | str, name: str, y: np.ndarray, classes: int) -> None:
    """Raise a UsageError naming ``source`` and ``name`` when a label is not in ``0..classes-1``.

    Args:
        source: the file (or a description of the data) the message names.
        name: the array, e.g. ``"y_train"``.
        y: integer class indices.
        classes: the model's class count (:func:`model_classes`).
    """
    y = np.asarray(y).reshape(-1)
    bad = (y < 0) | (y >= classes)
    if bad.any():
        raise _bad_label(source, name, y, bad,
                         f"class indices 0..{classes - 1} (the model's output has {classes} "
                         "classes); check the labels, or give the model trained on them")


def _check_pair(
    path: Path, names: tuple[str, str], arrays: dict[str, np.ndarray], expected: Shape,
    classes: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    x = _check_x(path, names[0], arrays[names[0]], expected)
    raw_y = arrays[names[1]]
    y = _check_y(path, names[1], raw_y)
    if len(x) != len(y):
        raise UsageError(
            f"{path}: {names[0]} has {len(x)} samples but {names[1]} has {len(y)} labels"
        )
    if classes is not None:
        if raw_y.ndim == 2 and raw_y.shape[1] > 1 and raw_y.shape[1] != classes:
            raise UsageError(
                f"{path}: {names[1]} is one-hot with {raw_y.shape[1]} columns, but the model's "
                f"output has {classes} classes; give labels for this model"
            )
        check_labels(path, names[1], y, classes)
    return x, y


# ---------------------------------------------------------------- reading, sizes first


def _array_header(path: Path, archive: zipfile.ZipFile, member: zipfile.ZipInfo
                  ) -> tuple[tuple[int, ...], np.dtype] | None:
    """Shape and dtype a ``.npy`` member declares (None if it is not one), checked against the
    member's size; nothing is allocated."""
    fmt = np.lib.format
    name = member.filename.removesuffix(".npy")
    with archive.open(member) as f:
        if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            return None
        f.seek(0)
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = fmt.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = fmt.read_array_header_2_0(f)
        else:
            raise UsageError(f"{path}: {name} is a .npy version {version[0]}.{version[1]} array "
                             "(structured types); expected a numeric array")
        header = f.tell()
    if dtype.hasobject:
        raise UsageError(f"{path}: {name} holds Python objects (pickled); expected a numeric "
                         "array")
    dims = tuple(int(d) for d in shape)
    declared = math.prod(dims) * dtype.itemsize
    if declared > member.file_size - header:
        raise UsageError(f"{path}: not a readable .npz file ({name} declares shape {dims} of "
                         f"{dtype}, more than the {member.file_size} bytes it holds)")
    return dims, dtype


def _keys(path: Path, names: Sequence[str]) -> tuple[str, ...]:
    arrays = {n.removesuffix(".npy") for n in names if n.endswith(".npy")}
    for keys in (_FULL_KEYS, _TEST_KEYS):
        if all(k in arrays for k in keys):
            return keys
    raise UsageError(
        f"{path}: expected arrays {', '.join(_FULL_KEYS)} or x, y; received: "
        f"{', '.join(sorted(arrays)) or 'no arrays'}"
    )


def _check_sizes(path: Path, archive: zipfile.ZipFile, keys: Sequence[str]) -> None:
    total = sum(m.file_size for m in archive.infolist())
    check_size(path, "its arrays unpack to", total, MAX_DATA_BYTES, _DATA_HINT)
    values = 0
    for key in keys:
        header = _array_header(path, archive, archive.getinfo(key + ".npy"))
        if header is None:
            raise UsageError(f"{path}: {key} is not a .npy array")
        if key.startswith("x"):
            values += math.prod(header[0])
    check_size(path, "its inputs take as float32", values * 4, MAX_DATA_BYTES, _DATA_HINT)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays a dataset needs, their declared sizes checked before they are read."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    if path.suffix != ".npz":
        raise UsageError(f"{path}: expected a .npz dataset, received '{path.suffix}'")
    try:
        with zipfile.ZipFile(path) as archive:
            keys = _keys(path, archive.namelist())
            _check_sizes(path, archive, keys)
        with np.load(path, allow_pickle=False) as npz:
            return {key: npz[key] for key in keys}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise UsageError(f"{path}: not a readable .npz file ({exc})") from None


def load_dataset(
    path: str | Path, model_input_shape: Shape, model_output_shape: Shape | None = None
) -> Dataset:
    """Load and check an ``.npz`` dataset for a model.

    Args:
        path: the ``.npz`` file.
        model_input_shape: the model input shape without the batch dimension (None = any size).
        model_output_shape: the model output shape without the batch dimension; when it is a
            class vector (:func:`model_classes`), every label must be one of its classes.

    Returns:
        The checked :class:`Dataset` (inputs float32, labels int64).

    Raises:
        UsageError: missing file or arrays, shape or length mismatch, bad labels (negative,
            non-integer, NaN, not a class of the model), NaN inputs, arrays over the size limit.
    """
    path = Path(path)
    arrays = _read_npz(path)
    classes = model_classes(model_output_shape, model_input_shape)
    x_train: np.ndarray | None
    y_train: np.ndarray | None
    if "x_train" in arrays:
        x_train, y_train = _check_pair(path, ("x_train", "y_train"), arrays, model_input_shape,
                                       classes)
        x_test, y_test = _check_pair(path, ("x_test", "y_test"), arrays, model_input_shape,
                                     classes)
    else:
        x_train = y_train = None
        x_test, y_test = _check_pair(path, ("x", "y"), arrays, model_input_shape, classes)
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
