"""Dataset loading and its checks (no TensorFlow needed)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyprune.data import load_dataset, random_inputs
from tinyprune.errors import UsageError

SHAPE = (8, 8, 1)
EXAMPLE = Path(__file__).parents[2] / "examples" / "digits" / "digits.npz"


def _arrays(n_train: int = 12, n_test: int = 6, shape: tuple[int, ...] = SHAPE) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.random((n_train, *shape), dtype=np.float32),
        "y_train": rng.integers(0, 10, n_train),
        "x_test": rng.random((n_test, *shape), dtype=np.float32),
        "y_test": rng.integers(0, 10, n_test),
    }


def _write(tmp_path: Path, **arrays: Any) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, **arrays)
    return path


def test_full_dataset(tmp_path: Path) -> None:
    arrays = _arrays()
    data = load_dataset(_write(tmp_path, **arrays), SHAPE)
    assert data.has_train and data.x_train is not None and data.y_train is not None
    assert data.x_train.shape == (12, 8, 8, 1) and data.x_test.dtype == np.float32
    assert data.y_test.dtype == np.int64
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])
    assert data.source == tmp_path / "data.npz"


def test_test_only_dataset(tmp_path: Path) -> None:
    arrays = _arrays()
    data = load_dataset(_write(tmp_path, x=arrays["x_test"], y=arrays["y_test"]), SHAPE)
    assert data.x_train is None and data.y_train is None and not data.has_train
    assert len(data.x_test) == 6


def test_missing_channel_is_added(tmp_path: Path) -> None:
    arrays = _arrays(shape=(8, 8))
    data = load_dataset(_write(tmp_path, **arrays), SHAPE)
    assert data.x_test.shape == (6, 8, 8, 1)


def test_one_hot_labels(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    arrays = _arrays()
    labels = arrays["y_train"]
    arrays["y_train"] = np.eye(10, dtype=np.float32)[labels]
    with caplog.at_level(logging.INFO, logger="tinyprune.data"):
        data = load_dataset(_write(tmp_path, **arrays), SHAPE)
    np.testing.assert_array_equal(data.y_train, labels)
    assert "y_train is one-hot" in caplog.text


def test_unknown_dims_accept_any_size(tmp_path: Path) -> None:
    data = load_dataset(_write(tmp_path, **_arrays(shape=(20, 3))), (None, 3))
    assert data.x_test.shape == (6, 20, 3)


def _with(**changes: Any) -> dict[str, Any]:
    arrays = _arrays()
    arrays.update(changes)
    return {k: v for k, v in arrays.items() if v is not None}


_BAD: dict[str, tuple[dict[str, Any], str]] = {
    "missing keys": (
        {"a": np.zeros(3), "b": np.zeros(3)},
        "expected arrays x_train, y_train, x_test, y_test or x, y; received: a, b",
    ),
    "half the keys": (_with(y_test=None), "received: x_test, x_train, y_train"),
    "shape": (
        _with(x_test=np.zeros((6, 64), np.float32)),
        r"x_test has per-sample shape \(64\), expected \(8, 8, 1\) \(the model input\)",
    ),
    "length": (_with(y_train=np.zeros(11, np.int64)), "x_train has 12 samples but y_train has 11"),
    "nan": (
        _with(x_train=np.full((12, 8, 8, 1), np.nan, np.float32)),
        r"x_train contains NaN or infinite values \(first at sample 0\)",
    ),
    "3-D labels": (_with(y_test=np.zeros((6, 2, 2))), "y_test must be 1-D class indices"),
    "string labels": (_with(y_test=np.array(list("abcdef"))), "y_test must be 1-D class indices"),
    "fractional labels": (
        _with(y_test=np.array([1.0, 2.0, 0.5, 1.0, 0.0, 3.0])),
        r"y_test holds label 0\.5 \(sample 2\); expected integer class indices$",
    ),
    "nan labels": (
        _with(y_train=np.array([1.0] * 11 + [np.nan])),
        r"y_train holds label nan \(sample 11\); expected integer class indices$",
    ),
    "nan one-hot labels": (
        _with(y_train=np.full((12, 10), np.nan)), r"y_train \(one-hot\) contains NaN"
    ),
    "negative labels": (
        _with(y_test=np.array([0, 1, 2, -1, 0, 0])),
        r"y_test holds label -1 \(sample 3\); expected class indices >= 0$",
    ),
    "empty": (_with(x_test=np.zeros((0, 8, 8, 1)), y_test=np.zeros(0)), "x_test is empty"),
}


@pytest.mark.parametrize("case", sorted(_BAD))
def test_bad_arrays(tmp_path: Path, case: str) -> None:
    arrays, expected = _BAD[case]
    path = _write(tmp_path, **arrays)
    with pytest.raises(UsageError, match=expected) as info:
        load_dataset(path, SHAPE)
    assert str(info.value).startswith(f"{path}: ")
    assert info.value.exit_code == 2 and "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"none\.npz: no such file"):
        load_dataset(tmp_path / "none.npz", SHAPE)


def test_not_npz(tmp_path: Path) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(UsageError, match=r"data\.npz: not a readable \.npz file"):
        load_dataset(path, SHAPE)


def test_wrong_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("1,2\n")
    with pytest.raises(UsageError, match=r"expected a \.npz dataset"):
        load_dataset(path, SHAPE)


def test_pickled_objects_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    with pytest.raises(UsageError, match=r"data\.npz: x holds Python objects \(pickled\)"):
        load_dataset(path, SHAPE)


def test_random_inputs_are_seeded() -> None:
    a = random_inputs((8, 8, 1), 5, seed=3)
    assert a.shape == (5, 8, 8, 1) and a.dtype == np.float32
    assert a.min() >= -1.0 and a.max() < 1.0
    np.testing.assert_array_equal(a, random_inputs((8, 8, 1), 5, seed=3))
    assert not np.array_equal(a, random_inputs((8, 8, 1), 5, seed=4))
    assert random_inputs((None, 3), 2).shape == (2, 1, 3)


def test_example_digits_dataset() -> None:
    data = load_dataset(EXAMPLE, SHAPE)
    assert data.x_train is not None and data.y_train is not None
    assert (len(data.x_train), len(data.x_test)) == (1347, 450)
    assert data.x_test.min() >= 0.0 and data.x_test.max() <= 1.0
    assert data.num_classes == 10
    assert np.bincount(data.y_test).min() >= 43  # stratified: ~25% of each class (>= 174)


# ---------------------------------------------------------------- labels against the model


@pytest.mark.parametrize(("name", "value", "sample"), [("y_train", 12, 4), ("y_test", 10, 5)])
def test_labels_beyond_the_model_classes_refused(tmp_path: Path, name: str, value: int,
                                                 sample: int) -> None:
    arrays = _arrays()
    arrays[name][sample] = value
    path = _write(tmp_path, **arrays)
    load_dataset(path, SHAPE)  # without the model's output shape there is nothing to compare
    with pytest.raises(UsageError) as info:
        load_dataset(path, SHAPE, (10,))
    assert str(info.value) == (
        f"{path}: {name} holds label {value} (sample {sample}); expected class indices 0..9 "
        "(the model's output has 10 classes); check the labels, or give the model trained on "
        "them")
    assert info.value.exit_code == 2


def test_column_labels_and_squeezed_outputs_are_checked(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["y_train"] %= 3
    arrays["y_test"] = np.full((6, 1), 3)
    path = _write(tmp_path, **arrays)
    assert load_dataset(path, SHAPE, (1, 1, 10)).y_test.tolist() == [3] * 6
    with pytest.raises(UsageError, match=r"y_test holds label 3 \(sample 0\); expected class "
                                         r"indices 0\.\.2 \(the model's output has 3 classes\)"):
        load_dataset(path, SHAPE, (1, 1, 3))


def test_one_hot_width_must_match_the_model(tmp_path: Path) -> None:
    arrays = _arrays()
    arrays["y_train"] = np.eye(12, dtype=np.float32)[arrays["y_train"]]
    path = _write(tmp_path, **arrays)
    with pytest.raises(UsageError, match=r"y_train is one-hot with 12 columns, but the model's "
                                         r"output has 10 classes"):
        load_dataset(path, SHAPE, (10,))


@pytest.mark.parametrize(("output", "input_shape"), [
    ((64,), (64,)),  # autoencoder: reconstructs its input, labels are not classes of it
    ((1,), SHAPE),  # a single value: regression or a binary sigmoid
    ((4, 4, 2), SHAPE),  # a map, not a class vector
    ((None,), SHAPE),
])
def test_outputs_that_are_not_class_vectors_are_not_checked(tmp_path: Path, output: Any,
                                                            input_shape: Any) -> None:
    arrays = _arrays(shape=input_shape)
    arrays["y_test"][0] = 100
    data = load_dataset(_write(tmp_path, **arrays), input_shape, output)
    assert data.y_test[0] == 100


# ---------------------------------------------------------------- sizes read before loading


def _npz_with_header(path: Path, shape: tuple[int, ...], payload: bytes = b"") -> Path:
    """An .npz whose x array header declares ``shape`` (float64) over ``payload`` bytes."""
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", header.getvalue() + payload)
        buf = io.BytesIO()
        np.save(buf, np.zeros(2, np.int64))
        zf.writestr("y.npy", buf.getvalue())
    return path


def test_huge_declared_array_refused_before_allocation(tmp_path: Path) -> None:
    # 233 TiB declared, 16 bytes held: numpy would try to allocate it ("MemoryError").
    path = _npz_with_header(tmp_path / "data.npz", (2, 2**44), b"\0" * 16)
    with pytest.raises(UsageError) as info:
        load_dataset(path, (None,))
    assert str(info.value) == (
        f"{path}: not a readable .npz file (x declares shape (2, 17592186044416) of float64, "
        "more than the 144 bytes it holds)")


def test_size_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tinyprune.data as data_module

    arrays = {"x": np.zeros((100, 8, 8, 1), np.uint8), "y": np.zeros(100, np.int64)}
    path = _write(tmp_path, **arrays)
    monkeypatch.setattr(data_module, "MAX_DATA_BYTES", 20_000)  # holds 8.6 KB, 25.6 KB as float
    with pytest.raises(UsageError, match=r"data\.npz: its inputs take as float32 25\.0 KiB, over "
                                         r"tinyprune's limit of 19\.5 KiB \(use a subset of the "
                                         r"samples; see docs/models\.md, 'Size limits'\)"):
        load_dataset(path, SHAPE)
    monkeypatch.setattr(data_module, "MAX_DATA_BYTES", 5_000)
    with pytest.raises(UsageError, match=r"its arrays unpack to 7\.3 KiB, over tinyprune's "
                                         r"limit of 4\.9 KiB"):
        load_dataset(path, SHAPE)
