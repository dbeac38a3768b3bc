"""IR reader: a real converted model parses; corrupt files give one-line UsageErrors."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from tinyprune.errors import UsageError
from tinyprune.ir import fold_constants, read_tflite
from tinyprune.ir.reader import layer_name


def test_reads_converted_model(flatten_model_tflite: bytes) -> None:
    g = read_tflite(flatten_model_tflite)
    codes = [op.opcode for op in g.ops]
    assert codes[:2] == ["CONV_2D", "MAX_POOL_2D"]
    assert "SHAPE" in codes and "FULLY_CONNECTED" in codes
    conv = g.ops[0]
    w = g.tensor(conv.inputs[1])
    assert w.dtype == "int8" and w.is_const and w.quant is not None and w.quant.per_channel
    assert g.tensor(g.inputs[0]).dtype == "int8"
    assert conv.options["padding"] in ("SAME", "VALID")
    assert conv.options["fused_activation_function"] == "RELU"


def test_flatten_shape_chain_folds_away(flatten_model_tflite: bytes) -> None:
    g = fold_constants(read_tflite(flatten_model_tflite))
    codes = [op.opcode for op in g.ops]
    assert not {"SHAPE", "STRIDED_SLICE", "PACK"} & set(codes)
    reshape = next(op for op in g.ops if op.opcode == "RESHAPE")
    shape = g.tensor(reshape.inputs[1]).data
    assert shape is not None and list(shape) == [1, 72]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:3], "not a TFLite flatbuffer"),
        (lambda b: b[:4] + b"XXXX" + b[8:], "not a TFLite flatbuffer"),
        (lambda b: b[:200], "corrupt TFLite flatbuffer"),
    ],
)
def test_corrupt_bytes_are_usage_errors(flatten_model_tflite: bytes, mutate, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        read_tflite(mutate(flatten_model_tflite))


def test_missing_file(tmp_path) -> None:
    with pytest.raises(UsageError, match="file not found"):
        read_tflite(tmp_path / "nope.tflite")


def test_random_garbage_after_header_never_crashes(flatten_model_tflite: bytes) -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        data = bytearray(flatten_model_tflite)
        for pos in rng.integers(8, len(data), 30):
            data[pos] = int(rng.integers(0, 256))
        with contextlib.suppress(UsageError):
            read_tflite(bytes(data))


@pytest.mark.parametrize(
    ("tensor", "expected"),
    [
        ("sequential_1/conv2d_1/Relu;sequential_1/conv2d_1/BiasAdd", "conv2d_1"),
        ("model/fc/MatMul", "fc"),
        ("StatefulPartitionedCall_1:0", "fallback"),
        ("Identity", "fallback"),  # a traced function's output (quantize._traced)
        ("Identity_2", "fallback"),
        ("identity_block", "identity_block"),  # a layer's own name stays
        ("conv1/BiasAdd", "conv1"),
    ],
)
def test_layer_names(tensor: str, expected: str) -> None:
    assert layer_name(tensor, "fallback") == expected


def test_old_models_with_deprecated_builtin_code(flatten_model_tflite: bytes) -> None:
    """MLPerf Tiny's files keep the op code in deprecated_builtin_code only: read the larger."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatten_model_tflite, 0))
    for code in model.operatorCodes:
        code.deprecatedBuiltinCode = min(int(code.builtinCode), 127)
        code.builtinCode = 0  # ADD, as old writers left it
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    old = read_tflite(bytes(builder.Output()))
    new = read_tflite(flatten_model_tflite)
    assert [op.opcode for op in old.ops] == [op.opcode for op in new.ops]
