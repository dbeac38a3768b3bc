"""Full-integer int8 quantization: tensor types, per-channel weights, determinism, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyprune.data import Dataset, load_dataset
from tinyprune.errors import UnsupportedError, UsageError
from tinyprune.ir import Graph, read_tflite
from tinyprune.models import LoadedModel, load_model, wrap_model
from tinyprune.models._backend import keras_module
from tinyprune.models.zoo import ZOO
from tinyprune.quantize import (
    CONVERT_ATTEMPTS,
    calibration_inputs,
    convert_full_int8,
    float_ops,
    quantize,
)

EXAMPLE = Path(__file__).parents[2] / "examples" / "digits"


@pytest.fixture(scope="module")
def digits() -> tuple[LoadedModel, Dataset]:
    loaded = load_model(EXAMPLE / "digits_cnn.keras")
    return loaded, load_dataset(EXAMPLE / "digits.npz", loaded.input_shape)


@pytest.fixture(scope="module")
def digits_int8(digits: tuple[LoadedModel, Dataset]) -> bytes:
    return quantize(digits[0], digits[1], samples=100)


@pytest.fixture(scope="module")
def tf_keras_int8() -> bytes:
    return quantize(wrap_model(ZOO["digits"]("tf_keras", seed=2)), None, samples=20)


@pytest.fixture(params=["digits_int8", "tf_keras_int8"])
def graph(request: pytest.FixtureRequest) -> Graph:
    """The int8 model of each flavor, read with the IR reader."""
    return read_tflite(request.getfixturevalue(request.param))


def test_int8_inputs_outputs(graph: Graph) -> None:
    for index in [*graph.inputs, *graph.outputs]:
        tensor = graph.tensor(index)
        assert tensor.dtype == "int8"
        assert tensor.quant is not None and not tensor.quant.per_channel


def test_conv_weights_per_channel(graph: Graph) -> None:
    convs = [op for op in graph.ops if op.opcode == "CONV_2D"]
    assert len(convs) == 3
    for op in convs:
        _, weights, bias = graph.op_inputs(op)
        assert weights is not None and bias is not None
        assert (weights.dtype, bias.dtype) == ("int8", "int32")
        assert weights.quant is not None and weights.quant.axis == 0
        assert len(weights.quant.scale) == weights.shape[0] > 1


def test_only_int8_builtin_ops(graph: Graph) -> None:
    assert {op.opcode for op in graph.ops} <= {
        "CONV_2D",
        "MAX_POOL_2D",
        "MEAN",
        "FULLY_CONNECTED",
        "SOFTMAX",
    }


def test_deterministic(digits: tuple[LoadedModel, Dataset], digits_int8: bytes) -> None:
    assert quantize(digits[0], digits[1], samples=100) == digits_int8


def test_int8_accuracy_close_to_float(
    digits: tuple[LoadedModel, Dataset], digits_int8: bytes
) -> None:
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(digits_int8)
    details = interpreter.get_input_details(0)["quantization_parameters"]
    scale, zero = float(details["scales"][0]), int(details["zero_points"][0])
    data = digits[1]
    hits = 0
    for x, y in zip(data.x_test[:100], data.y_test[:100], strict=True):
        q = np.clip(np.round(x / scale) + zero, -128, 127).astype(np.int8)[np.newaxis]
        interpreter.set_input(q, 0)
        interpreter.invoke()
        hits += int(np.argmax(interpreter.get_output(0)) == y)
    assert hits >= 95


def test_calibration_sources(digits: tuple[LoadedModel, Dataset]) -> None:
    loaded, data = digits
    picked = calibration_inputs(loaded, data, 50)
    assert picked.shape == (50, 8, 8, 1)
    assert all(any(np.array_equal(p, x) for x in data.x_train) for p in picked[:5])
    test_only = Dataset(None, None, data.x_test, data.y_test, data.source)
    assert calibration_inputs(loaded, test_only, 10000).shape == data.x_test.shape
    random = calibration_inputs(loaded, None, 7)
    assert random.shape == (7, 8, 8, 1)
    np.testing.assert_array_equal(random, calibration_inputs(loaded, None, 7))


def test_a_layer_the_converter_fails_on_is_refused_with_its_name_and_the_supported_types(
) -> None:
    import tensorflow as tf

    lib = keras_module("keras3")
    inputs = lib.Input((4,), name="input")
    # MatrixInverse has no TFLite builtin: the converter fails
    x = lib.layers.Lambda(lambda t: tf.linalg.inv(lib.ops.reshape(t, (-1, 2, 2))),
                          name="odd")(inputs)
    model = lib.Model(inputs, lib.layers.Dense(3, name="fc")(lib.layers.Flatten()(x)))
    with pytest.raises(UnsupportedError) as info:
        quantize(wrap_model(model, "m.keras"), None, samples=4)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert message.startswith("model 'm.keras': layer 'odd' (Lambda) cannot be converted"), message
    assert "supported layer types: " in message and "Conv2D" in message and "\n" not in message


@pytest.mark.parametrize(("flavor", "layer", "batch"), [
    ("keras3", "LSTM", None),  # a TensorList loop: a converter error
    ("keras3", "GRU", 1),  # a segmentation fault in TF 2.21's converter, were it called
    ("keras3", "SimpleRNN", 1),  # the same
    ("keras3", "LSTM", 1),  # the same
    ("tf_keras", "GRU", 1),  # the same
    ("keras3", "Bidirectional", 1),  # a rolled LSTM inside
])
def test_rolled_recurrent_layers_are_refused_before_the_converter_runs(
        flavor: str, layer: str, batch: int | None) -> None:
    lib = keras_module(flavor)
    inputs = lib.Input((5, 3), batch_size=batch)
    if layer == "Bidirectional":
        rnn = lib.layers.Bidirectional(lib.layers.LSTM(4), name="rnn")
    else:
        rnn = getattr(lib.layers, layer)(4, name="rnn")
    model = lib.Model(inputs, lib.layers.Dense(3)(rnn(inputs)))
    with pytest.raises(UnsupportedError, match=rf"^model 'm.keras': layer 'rnn' \({layer}\) is "
                       r"a recurrent layer that is not unrolled; build it with unroll=True"):
        quantize(wrap_model(model, "m.keras"), None, samples=2)


@pytest.mark.parametrize(("kwargs", "batch", "needle"), [
    ({}, None, "is a rolled tf_keras LSTM without a fixed batch of 1 (received batch None: a "
               "TensorList loop"),
    ({}, 2, "without a fixed batch of 1 (received batch 2: tinyprune calibrates and runs one "
            "sequence per inference); give the model Input(..., batch_size=1)"),
    ({"use_bias": False}, 1, "with use_bias=False, on which TensorFlow 2.21's converter crashes"),
    ({"activation": "relu"}, 1, "with activation='relu', on which"),
    ({"recurrent_activation": "hard_sigmoid"}, 1, "with recurrent_activation='hard_sigmoid'"),
    ({"recurrent_dropout": 0.2}, 1, "with recurrent_dropout=0.2, on which"),
    ({"stateful": True}, 1, "is a stateful LSTM (stateful=True)"),
])
def test_tf_keras_lstm_settings_the_converter_cannot_take_are_refused(
        kwargs: dict, batch: int | None, needle: str) -> None:
    lib = keras_module("tf_keras")
    inputs = lib.Input((5, 3), batch_size=batch)
    model = lib.Model(inputs, lib.layers.Dense(3)(lib.layers.LSTM(4, name="rnn", **kwargs)(
        inputs)))
    with pytest.raises(UnsupportedError) as info:
        quantize(wrap_model(model, "m.h5"), None, samples=2)
    message = str(info.value)
    assert message.startswith("model 'm.h5': layer 'rnn' (LSTM) ") and needle in message, message
    assert info.value.exit_code == 2 and "\n" not in message


def test_tflite_passes_through(tmp_path: Path, tf_keras_int8: bytes) -> None:
    path = tmp_path / "m.tflite"
    path.write_bytes(tf_keras_int8)
    assert quantize(load_model(path), None) == tf_keras_int8


def test_bad_samples(digits: tuple[LoadedModel, Dataset]) -> None:
    with pytest.raises(UsageError, match="samples >= 1"):
        quantize(digits[0], digits[1], samples=0)


def test_model_override_converts_the_given_model(digits: tuple[LoadedModel, Dataset]) -> None:
    other = ZOO["digits"]("keras3", seed=9)
    expected = quantize(wrap_model(other, digits[0].path), digits[1], samples=10)
    assert quantize(digits[0], digits[1], samples=10, model=other) == expected


@pytest.fixture(scope="module")
def float_tflite() -> bytes:
    """A float32 TFLite model (no quantization) of one Dense layer."""
    import tensorflow as tf

    k = keras_module("keras3")
    model = k.Sequential([k.Input((5,)), k.layers.Dense(3, name="head")])
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def test_float_ops_names_what_computes_in_float(float_tflite: bytes, digits_int8: bytes) -> None:
    found = float_ops(float_tflite)
    assert len(found) == 1 and found[0].startswith("FULLY_CONNECTED '")
    assert float_ops(digits_int8) == []
    assert float_ops(b"not a flatbuffer") == []


@pytest.fixture(scope="module")
def float_split_tflite() -> bytes:
    """A float32 TFLite model of one SPLIT (two outputs)."""
    import tensorflow as tf

    k = keras_module("keras3")
    inputs = k.Input((6,))
    halves = k.layers.Lambda(lambda t: k.ops.split(t, 2, axis=-1), name="halves")(inputs)
    model = k.Model(inputs, list(halves))
    return bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())


def test_conversion_retried_while_the_converter_leaves_a_split_in_float(
    float_split_tflite: bytes, float_tflite: bytes, digits_int8: bytes
) -> None:
    """The converter's float SPLIT (unrolled LSTM) comes and goes between identical runs."""
    assert [f.split()[0] for f in float_ops(float_split_tflite)] == ["SPLIT"]
    results = iter([float_split_tflite, float_split_tflite, digits_int8, float_split_tflite])
    calls = []

    def convert() -> bytes:
        calls.append(1)
        return next(results)

    assert convert_full_int8(convert, "m.keras") == digits_int8
    assert len(calls) == 3
    calls.clear()
    # never clean: the last result is returned (the reader refuses it, naming the op)
    split = float_split_tflite
    assert convert_full_int8(lambda: calls.append(1) or split, "m.keras") == split
    assert len(calls) == CONVERT_ATTEMPTS
    calls.clear()
    # a float op of another kind (no int8 form) is not converted again
    assert convert_full_int8(lambda: calls.append(1) or float_tflite, "m.keras") == float_tflite
    assert len(calls) == 1


@pytest.mark.parametrize("name", ["digits_cnn", "squeeze_excite"])
def test_traced_conversion_gives_the_savedmodel_conversions_model(name: str) -> None:
    """A Keras 3 model converts from one traced call (quantize._traced) to the model that
    ``from_keras_model`` (a SavedModel export) gives: the same ops, shapes, weights and
    quantization parameters, tensor by tensor; only tensor names may differ."""
    import zoo

    from tinyprune.models._backend import tf
    from tinyprune.quantize import _converter, _traced

    model = {**zoo.ARCHITECTURES, **zoo.COUPLINGS}[name](keras_module("keras3"))
    assert _traced(model) is not None  # the traced path, not the from_keras_model fallback
    inputs = np.random.default_rng(0).standard_normal(
        (4, *model.inputs[0].shape[1:])).astype(np.float32)
    traced = read_tflite(bytes(_converter(model, inputs).convert()))
    exported = tf().lite.TFLiteConverter.from_keras_model(model)
    for field in ("optimizations", "representative_dataset", "inference_input_type",
                  "inference_output_type"):
        setattr(exported, field, getattr(_converter(model, inputs), field))
    exported.target_spec.supported_ops = [tf().lite.OpsSet.TFLITE_BUILTINS_INT8]
    saved = read_tflite(bytes(exported.convert()))
    assert [(o.opcode, o.inputs, o.outputs) for o in traced.ops] == \
        [(o.opcode, o.inputs, o.outputs) for o in saved.ops]
    assert [op.name for op in traced.ops] == [op.name for op in saved.ops]  # the layer names
    for a, b in zip(traced.tensors, saved.tensors, strict=True):
        assert (a.shape, a.dtype, a.quant) == (b.shape, b.dtype, b.quant), (a.name, b.name)
        assert (a.data is None) == (b.data is None), (a.name, b.name)
        if a.data is not None:
            assert np.array_equal(a.data, b.data), (a.name, b.name)


def test_models_without_one_functional_input_and_output_take_the_savedmodel_path() -> None:
    """quantize._traced only takes single-input, single-output Keras 3 functional models."""
    from tinyprune.quantize import _traced

    k = keras_module("keras3")

    class Subclassed(k.Model):
        def __init__(self) -> None:
            super().__init__()
            self.dense = k.layers.Dense(3)

        def call(self, x: object) -> object:
            return self.dense(x)

    sub = Subclassed()
    sub(k.ops.zeros((1, 4)))
    a, b = k.Input((4,)), k.Input((4,))
    two = k.Model([a, b], k.layers.Dense(2)(k.layers.Add()([a, b])))
    x = k.Input((4,))
    y = k.layers.Dense(2)(x)
    split = k.Model(x, [y, k.layers.ReLU()(y)])
    assert [_traced(m) for m in (sub, two, split)] == [None, None, None]
    assert _traced(wrap_model(ZOO["digits"]("tf_keras", seed=2)).model) is None
