"""Model loading (both Keras flavors, .tflite), safe mode, saving, counts and the zoo."""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyprune.errors import UsageError
from tinyprune.models import count_macs, count_params, load_model, save_model, wrap_model
from tinyprune.models._backend import keras_module
from tinyprune.models.safety import find_unsafe
from tinyprune.models.zoo import REFERENCE, ZOO

FLAVORS = ("keras3", "tf_keras")


def _lambda_model(flavor: str) -> Any:
    lib = keras_module(flavor)  # type: ignore[arg-type]
    inputs = lib.Input((4,), name="input")
    x = lib.layers.Dense(3, name="dense")(inputs)
    x = lib.layers.Lambda(lambda t: t * 2.0, name="lambda_1")(x)
    return lib.Model(inputs, x, name="with_lambda")


def _custom_model(flavor: str) -> Any:
    lib = keras_module(flavor)  # type: ignore[arg-type]

    class Doubler(lib.layers.Layer):  # type: ignore[name-defined,misc]
        def call(self, x: Any) -> Any:
            return x * 2.0

    inputs = lib.Input((4,), name="input")
    x = Doubler(name="doubler")(lib.layers.Dense(3, name="dense")(inputs))
    return lib.Model(inputs, x, name="with_custom")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind of model file the tests load, written once."""
    d = tmp_path_factory.mktemp("models")
    out: dict[str, Path] = {}
    for flavor in FLAVORS:
        model = ZOO["digits"](flavor, seed=1)
        out[f"{flavor}.keras"] = save_model(model, d / f"{flavor}.keras")
        out[f"{flavor}.h5"] = save_model(model, d / f"{flavor}.h5")
        _lambda_model(flavor).save(str(d / f"lambda_{flavor}.keras"))
        _custom_model(flavor).save(str(d / f"custom_{flavor}.keras"))
    out["tf_keras.savedmodel"] = save_model(ZOO["digits"]("tf_keras", seed=1), d / "digits_sm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf_keras calls .h5 legacy
        _lambda_model("tf_keras").save(str(d / "lambda_tf_keras.h5"))
    _lambda_model("tf_keras").save(str(d / "lambda_sm"))
    for name in (
        "lambda_keras3.keras",
        "lambda_tf_keras.keras",
        "lambda_tf_keras.h5",
        "lambda_sm",
        "custom_keras3.keras",
        "custom_tf_keras.keras",
    ):
        out[name] = d / name
    return out


# ---------------------------------------------------------------- loading and round trip


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("keras3.keras", "keras3"),
        ("keras3.h5", "keras3"),
        ("tf_keras.keras", "tf_keras"),
        ("tf_keras.h5", "tf_keras"),
        ("tf_keras.savedmodel", "tf_keras"),
    ],
)
def test_load_detects_flavor_and_shapes(files: dict[str, Path], key: str, kind: str) -> None:
    loaded = load_model(files[key])
    assert loaded.kind == kind
    assert loaded.input_shapes == ((8, 8, 1),)
    assert loaded.output_shapes == ((10,),)
    assert loaded.params == count_params(ZOO["digits"]("keras3")) == 14_378
    assert loaded.macs == 451_904
    assert loaded.tflite_bytes is None


@pytest.mark.parametrize("flavor", FLAVORS)
def test_round_trip_keeps_predictions(tmp_path: Path, flavor: str) -> None:
    model = ZOO["digits"](flavor, seed=3)
    x = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
    expected = np.asarray(model(x, training=False))
    again = load_model(save_model(model, tmp_path / "m.keras"))
    assert again.kind == flavor
    assert type(again.model).__module__.split(".")[0] == type(model).__module__.split(".")[0]
    np.testing.assert_allclose(np.asarray(again.model(x, training=False)), expected, atol=1e-6)


def test_example_model_loads() -> None:
    path = Path(__file__).parents[2] / "examples" / "digits" / "digits_cnn.keras"
    loaded = load_model(path)
    assert (loaded.kind, loaded.name, loaded.input_shape) == ("keras3", "digits_cnn", (8, 8, 1))


# ---------------------------------------------------------------- safe mode


@pytest.mark.parametrize(
    "key",
    ["lambda_keras3.keras", "lambda_tf_keras.keras", "lambda_tf_keras.h5", "lambda_sm"],
)
def test_lambda_refused_without_trust(files: dict[str, Path], key: str) -> None:
    with pytest.raises(UsageError) as info:
        load_model(files[key])
    message = str(info.value)
    assert info.value.exit_code == 2
    assert message.startswith(str(files[key]))
    assert "layer 'lambda_1' is a Lambda layer (arbitrary code)" in message
    assert "--trust-model" in message and "\n" not in message


@pytest.mark.parametrize("key", ["custom_keras3.keras", "custom_tf_keras.keras"])
def test_custom_object_refused(files: dict[str, Path], key: str) -> None:
    with pytest.raises(UsageError, match=r"layer 'doubler' uses custom object 'Doubler'"):
        load_model(files[key])


@pytest.mark.parametrize("key", ["lambda_keras3.keras", "lambda_tf_keras.h5"])
def test_lambda_loads_with_trust(files: dict[str, Path], key: str) -> None:
    loaded = load_model(files[key], trust_model=True)
    out = np.asarray(loaded.model(np.ones((1, 4), np.float32)))
    assert out.shape == (1, 3)


def test_custom_object_with_trust_still_needs_the_code(files: dict[str, Path]) -> None:
    with pytest.raises(UsageError, match=r"custom_keras3\.keras: could not load"):
        load_model(files["custom_keras3.keras"], trust_model=True)


# ---------------------------------------------------------------- bad files

_BAD_CONTENT: dict[str, Callable[[Path], None]] = {
    "garbage.keras": lambda p: p.write_bytes(b"not a zip at all"),
    "empty_zip.keras": lambda p: zipfile.ZipFile(p, "w").close(),
    "garbage.h5": lambda p: p.write_bytes(b"\x00" * 64),
    "truncated.h5": lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 32),
    "garbage.tflite": lambda p: p.write_bytes(b"0123456789abcdef"),
    "short.tflite": lambda p: p.write_bytes(b"TF"),
    "damaged.tflite": lambda p: p.write_bytes(b"\xff\xff\xff\x7fTFL3" + b"\x00" * 8),
}


@pytest.mark.parametrize("name", sorted(_BAD_CONTENT))
def test_not_a_model(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    _BAD_CONTENT[name](path)
    with pytest.raises(UsageError) as info:
        load_model(path)
    assert str(info.value).startswith(f"{path}: not a")
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"nope\.keras: no such file"):
        load_model(tmp_path / "nope.keras")


def test_unsupported_extension(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"x")
    with pytest.raises(UsageError, match=r"model\.onnx: unsupported model format '\.onnx'"):
        load_model(path)


def test_plain_savedmodel_refused(tmp_path: Path) -> None:
    (tmp_path / "saved_model.pb").write_bytes(b"")
    with pytest.raises(UsageError, match="saved by tf_keras"):
        load_model(tmp_path)


def test_save_refuses_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"keras3 model saves to \.keras, \.h5"):
        save_model(ZOO["digits"]("keras3"), tmp_path / "m.pb")


# ---------------------------------------------------------------- tflite input


@pytest.fixture(scope="module")
def float_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinyprune.models._backend import tf

    model = ZOO["digits"]("tf_keras")
    path = tmp_path_factory.mktemp("tfl") / "float.tflite"
    path.write_bytes(tf().lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_float_tflite_refused(float_tflite: Path) -> None:
    with pytest.raises(UsageError) as info:
        load_model(float_tflite)
    message = str(info.value)
    assert message.startswith(f"{float_tflite}: expected a full-integer int8 TFLite model")
    assert "float32" in message and "give the Keras model or a full-integer int8 .tflite" in message


def test_int8_tflite_loads(tmp_path: Path) -> None:
    from tinyprune.quantize import quantize

    path = tmp_path / "digits.tflite"
    path.write_bytes(quantize(wrap_model(ZOO["digits"]("keras3")), None, samples=8))
    loaded = load_model(path)
    assert (loaded.kind, loaded.model) == ("tflite", None)
    assert loaded.input_shapes == ((8, 8, 1),) and loaded.output_shapes == ((10,),)
    assert loaded.params == 14_378 and loaded.macs == 451_904
    assert loaded.tflite_bytes == path.read_bytes()


# ---------------------------------------------------------------- zoo


@pytest.mark.parametrize("name", sorted(REFERENCE))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_zoo_matches_published_figures(name: str, flavor: str) -> None:
    model = ZOO[name](flavor)
    ref = REFERENCE[name]
    assert count_params(model) == pytest.approx(ref.params, rel=0.01)
    assert count_macs(model) == pytest.approx(ref.macs, rel=0.01)
    assert tuple(model.inputs[0].shape[1:]) == ref.input_shape
    assert model.outputs[0].shape[-1] == ref.classes


def test_zoo_is_seeded_and_flavor_independent() -> None:
    a, b, c = ZOO["ic"]("keras3", seed=5), ZOO["ic"]("tf_keras", seed=5), ZOO["ic"]("keras3")
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])


# ---------------------------------------------------------------- safety scan on configs


@pytest.mark.parametrize("name", sorted(ZOO))
@pytest.mark.parametrize("flavor", FLAVORS)
def test_zoo_configs_are_safe(name: str, flavor: str) -> None:
    config = json.loads(ZOO[name](flavor).to_json())
    assert find_unsafe(config, flavor) == []  # type: ignore[arg-type]


def test_lambda_activation_found() -> None:
    lib = keras_module("keras3")
    inputs = lib.Input((4,), name="input")
    outputs = lib.layers.Dense(2, activation=lambda t: t, name="fc")(inputs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that it serializes a lambda
        config = json.loads(lib.Model(inputs, outputs).to_json())
    (found,) = find_unsafe(config, "keras3")
    assert found.describe() == "layer 'fc' holds a lambda function (arbitrary code)"
