"""Post-training full-integer int8 quantization of a Keras model to a TFLite flatbuffer.

TensorFlow's converter, with default optimizations, per-channel weights, only int8 builtin ops and
int8 inputs and outputs. Calibration uses up to ``samples`` inputs from the training data (else the
test data, else seeded random inputs). The converter's console noise goes to the debug log. The
same model and data give the same bytes, once the converter's one known nondeterminism is retried
away (:func:`convert_full_int8`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from tinyprune.data import Dataset, random_inputs
from tinyprune.errors import UnsupportedError, UsageError
from tinyprune.models._backend import flavor_of, tf
from tinyprune.models.load import LoadedModel, wrap_model
from tinyprune.models.stats import iter_layers

log = logging.getLogger(__name__)

CALIBRATION_SEED = 0
CONVERT_ATTEMPTS = 5  # see convert_full_int8
# Keras layer types known to convert to int8 TFLite builtins (TF 2.21).
SUPPORTED_LAYERS = (
    "Activation",
    "Add",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Dense",
    "DepthwiseConv1D",
    "DepthwiseConv2D",
    "Dropout",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "InputLayer",
    "LeakyReLU",
    "MaxPooling1D",
    "MaxPooling2D",
    "Multiply",
    "ReLU",
    "Reshape",
    "SeparableConv1D",
    "SeparableConv2D",
    "Softmax",
    "Subtract",
    "UpSampling2D",
    "ZeroPadding1D",
    "ZeroPadding2D",
)
# Layer types that the converter cannot lower to int8 builtins (TensorList / stateful ops).
_KNOWN_UNCONVERTIBLE = frozenset(
    {
        "LSTM",
        "GRU",
        "SimpleRNN",
        "RNN",
        "Bidirectional",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "ConvLSTM3D",
        "TimeDistributed",
    }
)


_RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN"})
_CONV_RECURRENT = frozenset({"ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"})


_NOT_UNROLLED = ("is a recurrent layer that is not unrolled; build it with unroll=True and a "
                 "fixed sequence length (the converter then emits FULLY_CONNECTED, LOGISTIC, "
                 "TANH, MUL and ADD per step)")


def _sequence_lstm(layer: Any) -> str | None:
    """None when a rolled recurrent layer converts to an int8 UNIDIRECTIONAL_SEQUENCE_LSTM (a
    tf_keras LSTM with a fixed batch and biases, TF 2.21), else why it does not."""
    if type(layer).__name__ != "LSTM" or flavor_of(layer) != "tf_keras":
        return (f"{_NOT_UNROLLED}, or use a tf_keras LSTM with a fixed batch "
                "(UNIDIRECTIONAL_SEQUENCE_LSTM)")
    shape = getattr(layer, "input_shape", None)
    batch = shape[0] if shape else None
    if batch != 1:
        why = ("a TensorList loop the int8 converter cannot lower" if batch is None else
               "tinyprune calibrates and runs one sequence per inference")
        return (f"is a rolled tf_keras LSTM without a fixed batch of 1 (received batch "
                f"{batch}: {why}); give the model Input(..., batch_size=1)")
    if getattr(layer, "stateful", False):
        return ("is a stateful LSTM (stateful=True): tinyprune runs every inference from a "
                "zero state, so the state would not carry over; build it with stateful=False")
    crash = _lstm_crash(layer)
    if crash is not None:
        return (f"is a rolled tf_keras LSTM with {crash}, on which TensorFlow 2.21's converter "
                "crashes (a segmentation fault); use the defaults (activation='tanh', "
                "recurrent_activation='sigmoid', use_bias=True, recurrent_dropout=0), or build "
                "it with unroll=True")
    return None


def _activation_name(fn: Any) -> str:
    return str(getattr(fn, "__name__", fn))


def _lstm_crash(layer: Any) -> str | None:
    """The non-default setting of a rolled tf_keras LSTM that crashes the converter, or None
    (measured with TF 2.21 and a fixed batch: use_bias=False, activation='relu',
    recurrent_activation='hard_sigmoid' and recurrent_dropout=0.2 each end in a segmentation
    fault; dropout=0.2 converts)."""
    if not getattr(layer, "use_bias", True):
        return "use_bias=False"
    for attr, default in (("activation", "tanh"), ("recurrent_activation", "sigmoid")):
        name = _activation_name(getattr(layer, attr, default))
        if name != default:
            return f"{attr}='{name}'"
    if float(getattr(layer, "recurrent_dropout", 0.0) or 0.0) > 0:
        return f"recurrent_dropout={layer.recurrent_dropout}"
    return None


def _rolled_recurrent(model: Any) -> tuple[Any, str] | None:
    """The first recurrent layer the int8 converter cannot take, and why. A recurrent layer
    converts to int8 builtins unrolled (``unroll=True``: FULLY_CONNECTED, LOGISTIC, TANH,
    MUL, ADD per step), and a rolled tf_keras LSTM with a fixed batch to a stateful
    UNIDIRECTIONAL_SEQUENCE_LSTM (tinyprune/kernels/recurrent.py). Other rolled layers become
    a TensorList loop (an error without a fixed batch) or, TensorFlow 2.21 with a fixed batch
    (Keras 3 LSTM/GRU/SimpleRNN, tf_keras GRU, a tf_keras LSTM without biases), a segmentation
    fault inside the converter, which no error handling can catch: so they are refused before
    the converter runs. A Bidirectional wrapper is refused whatever it holds."""
    for layer in iter_layers(model):
        kind = type(layer).__name__
        if kind in _CONV_RECURRENT:
            return layer, "has no int8 TFLite builtin form (no unrolled variant)"
        bidirectional = kind == "Bidirectional"
        cells = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
        for cell in cells:
            if type(cell).__name__ in _RECURRENT and not getattr(cell, "unroll", False):
                why = _NOT_UNROLLED if bidirectional else _sequence_lstm(cell)
                if why is not None:
                    return layer, why
    return None


@contextlib.contextmanager
def _captured_output() -> Iterator[io.StringIO]:
    """Capture everything written to stdout/stderr, Python and C++ alike (fd level)."""
    captured = io.StringIO()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            for fd in saved:
                os.dup2(sink.fileno(), fd)
            with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(captured):
                yield captured
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            sink.seek(0)
            captured.write(sink.read().decode(errors="replace"))


def calibration_inputs(loaded: LoadedModel, data: Dataset | None, samples: int) -> np.ndarray:
    """The inputs used to calibrate activation ranges: a seeded subset of the data, or random."""
    pool = None
    if data is not None:
        pool = data.x_train if data.x_train is not None else data.x_test
    if pool is None:
        log.info("no data: calibrating %s on %d seeded random inputs", loaded.name, samples)
        return random_inputs(loaded.input_shape, samples, CALIBRATION_SEED)
    rng = np.random.default_rng(CALIBRATION_SEED)
    picked = np.sort(rng.permutation(len(pool))[: min(samples, len(pool))])
    return pool[picked]


def _representative(inputs: np.ndarray) -> Callable[[], Iterator[list[np.ndarray]]]:
    def generate() -> Iterator[list[np.ndarray]]:
        for sample in inputs:
            yield [sample[np.newaxis].astype(np.float32)]

    return generate


def _converter(model: Any, inputs: np.ndarray) -> Any:
    lite = tf().lite
    converter = _traced(model) or lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(inputs)
    converter.target_spec.supported_ops = [lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf().int8
    converter.inference_output_type = tf().int8
    return converter


def _traced(model: Any) -> Any | None:
    """A converter of one traced inference call of a single-input, single-output Keras 3 model.

    ``from_keras_model`` exports a Keras 3 model as a SavedModel first (every endpoint traced,
    then written out and read back): 23 of the 26 s of converting MobileNetV3Small, 1.8 of the
    2.3 s of a small CNN. Tracing ``model(x, training=False)`` once over the model's own input
    spec gives the converter the same graph: the same ops, weights and quantization parameters
    (compared tensor by tensor on the backbone zoo); only the names of the graph's input, output
    and constant tensors differ (``x``, ``Identity``), which the reader does not take for layer
    names. None for other models (tf_keras models are traced by ``from_keras_model`` already;
    several inputs or outputs keep the SavedModel's signature order).
    """
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if flavor_of(model) != "keras3" or not inputs or len(inputs) != 1 or not outputs or \
            len(outputs) != 1:
        return None  # (a subclassed model has neither inputs nor outputs)
    spec = inputs[0]
    signature = tf().TensorSpec(tuple(spec.shape), spec.dtype, name="x")
    # autograph off, as Keras's own SavedModel export traces its endpoints
    call = tf().function(lambda x: model(x, training=False),
                         autograph=False).get_concrete_function(signature)
    return tf().lite.TFLiteConverter.from_concrete_functions([call])


def _culprit(model: Any, message: str) -> Any | None:
    """The layer most likely to have made the converter fail, by type and by name."""
    layers = list(iter_layers(model))
    for layer in layers:
        if type(layer).__name__ in _KNOWN_UNCONVERTIBLE:
            return layer
    unknown = [layer for layer in layers if type(layer).__name__ not in SUPPORTED_LAYERS]
    for layer in unknown:
        if f"/{layer.name}/" in message or f"/{layer.name}_1/" in message:
            return layer
    return unknown[0] if unknown else None


def _conversion_error(loaded: LoadedModel, exc: Exception) -> UnsupportedError:
    message = str(exc)
    layer = _culprit(loaded.model, message)
    if layer is None:
        first = next(
            (ln.strip() for ln in message.splitlines() if "error" in ln.lower()),
            message.strip().splitlines()[0] if message.strip() else type(exc).__name__,
        )
        return UnsupportedError(
            f"model '{loaded.path}': the TFLite converter could not convert "
            f"it to int8 builtins: {first[:300]}"
        )
    return UnsupportedError(
        f"model '{loaded.path}': layer '{layer.name}' ({type(layer).__name__}) cannot be "
        f"converted to int8 TFLite builtins; supported layer types: {', '.join(SUPPORTED_LAYERS)}"
    )


def quantize(
    loaded: LoadedModel, data: Dataset | None, *, samples: int = 200, model: Any | None = None
) -> bytes:
    """Convert a Keras model to a full-integer int8 TFLite flatbuffer.

    Args:
        loaded: the model (either Keras flavor). An int8 ``.tflite`` model is returned unchanged.
        data: calibration data (train, else test), or None for seeded random inputs.
        samples: at most this many calibration inputs.
        model: a Keras model to convert instead of ``loaded.model`` (e.g. the pruned one);
            messages still name ``loaded.path``.

    Returns:
        The ``.tflite`` bytes: int8 input and output tensors, int8 per-channel weights, int32
        biases, int8 builtin ops only.

    Raises:
        UnsupportedError: a layer cannot be converted to int8 builtins (the message names it;
            recurrent layers that are not unrolled are refused before the converter runs).
        UsageError: samples < 1, or the model has more than one input.
    """
    if model is not None:
        loaded = dataclasses.replace(wrap_model(model, loaded.path), path=loaded.path)
    if not loaded.is_keras:
        log.info("%s is already int8 TFLite: quantization skipped", loaded.path)
        return bytes(loaded.tflite_bytes or b"")
    if samples < 1:
        raise UsageError(f"expected samples >= 1, received: samples={samples}")
    if len(loaded.input_shapes) != 1:
        raise UsageError(
            f"model '{loaded.path}': expected one input, received {len(loaded.input_shapes)}"
        )
    rolled = _rolled_recurrent(loaded.model)
    if rolled is not None:
        layer, why = rolled
        raise UnsupportedError(f"model '{loaded.path}': layer '{layer.name}' "
                               f"({type(layer).__name__}) {why}")
    inputs = calibration_inputs(loaded, data, samples)
    result = _convert(loaded, inputs)
    log.info(
        "quantized %s to int8 TFLite (%d bytes, %d calibration inputs)",
        loaded.path,
        len(result),
        len(inputs),
    )
    return result


RETRIED_OPS = frozenset({"SPLIT", "SPLIT_V", "UNPACK"})
"""Ops with several outputs, one of which can be dead: the ones the quantizer's nondeterminism
leaves in float (convert_full_int8). A float op of another kind (e.g. COS, which has no int8
kernel) is left for the reader to name, without converting again."""


def float_ops(buf: bytes) -> list[str]:
    """The ops of a converted model that compute in float32 (QUANTIZE/DEQUANTIZE aside), as
    ``"OPCODE 'name'"``; empty for a clean full-int8 conversion (or bytes that do not parse)."""
    from tinyprune.ir.reader import read_tflite

    try:
        graph = read_tflite(buf)
    except Exception:  # the reader's own message comes later, where the model is used
        return []
    found = []
    for op in graph.ops:
        if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if any(t >= 0 and graph.tensors[t].dtype == "float32" for t in (*op.inputs, *op.outputs)):
            found.append(f"{op.opcode} '{op.name}'")
    return found


def convert_full_int8(convert: Callable[[], bytes], label: str) -> bytes:
    """``convert()`` until its result has no float op, at most :data:`CONVERT_ATTEMPTS` times.

    TensorFlow 2.21's quantizer is not deterministic on a SPLIT with an unused output (the
    first step of an unrolled LSTM from a zero state: the forget gate is dead): about one
    conversion in five leaves that SPLIT in float between a DEQUANTIZE and QUANTIZEs, the same
    model and data converting cleanly the next time. Only float ops of :data:`RETRIED_OPS` are
    converted again; a result that is still not full int8 after the last attempt (or has a
    float op of another kind) is returned as it is, and the reader names the float op.
    """
    result = convert()
    for attempt in range(2, CONVERT_ATTEMPTS + 1):
        left = float_ops(result)
        if not left or any(f.split()[0] not in RETRIED_OPS for f in left):
            break
        log.info(
            "converter left %s in float for %s; converting again (attempt %d of %d)",
            ", ".join(left[:3]), label, attempt, CONVERT_ATTEMPTS,
        )
        result = convert()
    return result


def _convert(loaded: LoadedModel, inputs: np.ndarray) -> bytes:
    def once() -> bytes:
        with _captured_output() as noise:
            try:
                result = _converter(loaded.model, inputs).convert()
            except Exception as exc:  # ConverterError and friends: find the layer at fault
                error: Exception | None = exc
            else:
                error = None
        log.debug("converter output for %s:\n%s", loaded.path, noise.getvalue())
        if error is not None:
            raise _conversion_error(loaded, error) from None
        return bytes(result)

    return convert_full_int8(once, str(loaded.path))
