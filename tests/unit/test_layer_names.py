"""Ops are named after the Keras layer that produced them (tinyprune.ir.names)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.ir.names import keras_layer_names

# Output tensor names of the official MLPerf Tiny vww_96.h5 and pretrainedResnet.h5 (tf_keras,
# default layer names), converted by TF 2.21: the first ops, as read from the .tflite.
_VWW_LAYERS = ["input_1", "conv2d", "batch_normalization", "activation", "depthwise_conv2d",
               "batch_normalization_1", "activation_1", "conv2d_1", "batch_normalization_2",
               "activation_2", "average_pooling2d", "flatten", "dense"]
_VWW_OPS = [
    ("CONV_2D", "model/activation/Relu;model/batch_normalization/FusedBatchNormV3;"
     "model/conv2d/BiasAdd/ReadVariableOp;model/conv2d/BiasAdd;model/conv2d/Conv2D1", "conv2d"),
    ("DEPTHWISE_CONV_2D", "model/activation_1/Relu;model/batch_normalization_1/FusedBatchNormV3;"
     "model/depthwise_conv2d/depthwise;model/depthwise_conv2d/BiasAdd;"
     "model/depthwise_conv2d/BiasAdd/ReadVariableOp1", "depthwise_conv2d"),
    ("CONV_2D", "model/activation_2/Relu;model/batch_normalization_2/FusedBatchNormV3;"
     "model/conv2d_1/BiasAdd/ReadVariableOp;model/conv2d_1/BiasAdd;model/conv2d_1/Conv2D1",
     "conv2d_1"),
    ("AVERAGE_POOL_2D", "model/average_pooling2d/AvgPool", "average_pooling2d"),
    ("RESHAPE", "model/flatten/Reshape", "flatten"),
    ("FULLY_CONNECTED", "model/dense/MatMul;model/dense/BiasAdd", "dense"),
    ("SOFTMAX", "StatefulPartitionedCall:0", "dense"),
]
_RESNET_LAYERS = ["input_1", "conv2d", "batch_normalization", "activation", "conv2d_1",
                  "batch_normalization_1", "activation_1", "conv2d_2", "batch_normalization_2",
                  "add", "activation_2", "conv2d_3", "batch_normalization_3", "activation_3",
                  "conv2d_4", "conv2d_5", "batch_normalization_4", "add_1", "activation_4"]
_RESNET_OPS = [
    ("CONV_2D", "model/activation_1/Relu;model/batch_normalization_1/FusedBatchNormV3;"
     "model/conv2d_1/BiasAdd/ReadVariableOp;model/conv2d_1/BiasAdd;model/conv2d_1/Conv2D1",
     "conv2d_1"),
    ("CONV_2D", "model/batch_normalization_2/FusedBatchNormV3;model/conv2d_2/BiasAdd/"
     "ReadVariableOp;model/conv2d_2/BiasAdd;model/conv2d_2/Conv2D1", "conv2d_2"),
    ("ADD", "model/activation_2/Relu;model/add/add", "add"),
    ("CONV_2D", "model/batch_normalization_4/FusedBatchNormV3;model/conv2d_4/BiasAdd/"
     "ReadVariableOp;model/conv2d_4/BiasAdd;model/conv2d_4/Conv2D1", "conv2d_4"),
    ("CONV_2D", "model/conv2d_5/BiasAdd;model/conv2d_5/Conv2D;model/conv2d_5/BiasAdd/"
     "ReadVariableOp1", "conv2d_5"),
    ("ADD", "model/activation_4/Relu;model/add_1/add", "add_1"),
]
# The same kind of model in Keras 3: scopes carry a uniquifying suffix (conv2d -> conv2d_1).
_K3_LAYERS = ["input_1", "conv2d", "batch_normalization", "activation", "depthwise_conv2d",
              "batch_normalization_1", "activation_1", "conv2d_1", "batch_normalization_2",
              "add", "activation_2", "global_average_pooling2d", "dense"]
_K3_OPS = [
    ("CONV_2D", "functional_1/activation_1/Relu;functional_1/conv2d_1/convolution", "conv2d"),
    ("DEPTHWISE_CONV_2D", "functional_1/activation_1_2/Relu;functional_1/batch_normalization_1_2"
     "/batchnorm/mul_1;functional_1/depthwise_conv2d_1/depthwise1", "depthwise_conv2d"),
    ("CONV_2D", "functional_1/conv2d_1_2/convolution1", "conv2d_1"),
    ("ADD", "functional_1/activation_2_1/Relu;functional_1/add_1/Add", "add"),
    ("MEAN", "functional_1/global_average_pooling2d_1/Mean", "global_average_pooling2d"),
    ("FULLY_CONNECTED", "functional_1/dense_1/MatMul2", "dense"),
    ("SOFTMAX", "StatefulPartitionedCall_1:0", "dense"),
]


def _graph(ops: list[tuple[str, str, str]]) -> Graph:
    tensors = tuple(Tensor(index=i, name=name, shape=(1,), dtype="int8")
                    for i, (_, name, _) in enumerate(ops))
    graph_ops = tuple(Op(index=i, opcode=code, inputs=(), outputs=(i,), name=f"op{i}")
                      for i, (code, _, _) in enumerate(ops))
    return Graph(tensors=tensors, ops=graph_ops, inputs=(), outputs=(len(ops) - 1,))


@pytest.mark.parametrize(("layers", "ops"), [(_VWW_LAYERS, _VWW_OPS),
                                             (_RESNET_LAYERS, _RESNET_OPS),
                                             (_K3_LAYERS, _K3_OPS)],
                         ids=["vww_h5", "resnet_h5", "keras3"])
def test_each_op_takes_the_layer_that_produced_it(layers: list[str],
                                                  ops: list[tuple[str, str, str]]) -> None:
    named = keras_layer_names(_graph(ops), layers)
    assert [op.name for op in named.ops] == [expected for _, _, expected in ops]


def test_unmatched_inner_op_keeps_its_name() -> None:
    ops = [("RESHAPE", "something/else", "?"), ("SOFTMAX", "out", "?")]
    named = keras_layer_names(_graph(ops), ["fc"])
    assert [op.name for op in named.ops] == ["op0", "fc"]


def test_a_sequence_lstm_takes_its_lstm_layer() -> None:
    """The converter names the op after itself; the model's LSTM layers name them in order."""
    ops = [("UNIDIRECTIONAL_SEQUENCE_LSTM", "tfl.unidirectional_sequence_lstm", "?"),
           ("UNIDIRECTIONAL_SEQUENCE_LSTM", "tfl.unidirectional_sequence_lstm1", "?"),
           ("FULLY_CONNECTED", "model/fc/MatMul", "?")]
    names, types = ["input_1", "rnn_a", "rnn_b", "fc"], ["InputLayer", "LSTM", "LSTM", "Dense"]
    named = keras_layer_names(_graph(ops), names, types)
    assert [op.name for op in named.ops] == ["rnn_a", "rnn_b", "fc"]
    one_layer = keras_layer_names(_graph(ops), names[:2] + names[3:], types[:2] + types[3:])
    assert [op.name for op in one_layer.ops][:2] == ["op0", "op1"]  # counts differ: unnamed


def test_reader_reexports_the_function() -> None:
    from tinyprune.ir import reader

    assert reader.keras_layer_names is keras_layer_names


# ---------------------------------------------------------------- real conversions

_CLASS_OF_OP = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D", "ADD": "Add",
                "MEAN": "GlobalAveragePooling2D", "FULLY_CONNECTED": "Dense", "SOFTMAX": "Dense"}


def _default_named_model(flavor: str) -> Any:
    """A MobileNet block and a residual add, with the layer names Keras gives by default."""
    from tinyprune.models._backend import keras_module

    k = keras_module(flavor)  # type: ignore[arg-type]
    L = k.layers
    inputs = L.Input((8, 8, 3), name="input_1")
    x = L.Activation("relu", name="activation")(
        L.BatchNormalization(name="batch_normalization")(
            L.Conv2D(8, 3, padding="same", name="conv2d")(inputs)))
    y = L.Activation("relu", name="activation_1")(
        L.BatchNormalization(name="batch_normalization_1")(
            L.DepthwiseConv2D(3, padding="same", name="depthwise_conv2d")(x)))
    y = L.BatchNormalization(name="batch_normalization_2")(L.Conv2D(8, 1, name="conv2d_1")(y))
    x = L.Activation("relu", name="activation_2")(L.Add(name="add")([x, y]))
    x = L.GlobalAveragePooling2D(name="global_average_pooling2d")(x)
    return k.Model(inputs, L.Dense(4, activation="softmax", name="dense")(x))


@pytest.mark.parametrize("flavor", ["tf_keras", "keras3"])
def test_converted_model_rows_name_their_layers(tmp_path: Path, flavor: str) -> None:
    from tinyprune.ir import read_tflite
    from tinyprune.models import load_model, save_model
    from tinyprune.quantize import quantize

    path = save_model(_default_named_model(flavor), tmp_path / "m.h5")
    loaded = load_model(path)
    graph = read_tflite(quantize(loaded, None, samples=4))
    named = keras_layer_names(graph, [layer.name for layer in loaded.model.layers])
    classes = {layer.name: type(layer).__name__ for layer in loaded.model.layers}
    rows = [(op.opcode, op.name) for op in named.ops]
    assert [code for code, _ in rows] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD",
                                          "MEAN", "FULLY_CONNECTED", "SOFTMAX"]
    assert [classes[name] for _, name in rows] == [_CLASS_OF_OP[code] for code, _ in rows]
    assert [name for _, name in rows[:4]] == ["conv2d", "depthwise_conv2d", "conv2d_1", "add"]
