"""The sparsity survives int8 conversion (real converter, both flavors): check_int8 passes on a
sparsified model (depthwise layers and BatchNormalization after them included), names the layer
when a removed weight is not 0, and measure_int8 finds the zero blocks of a .tflite without
masks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests_support import int8_tflite_of

from tinyprune.errors import CheckFailed
from tinyprune.ir import read_tflite
from tinyprune.models._backend import FLAVORS, keras_module
from tinyprune.sparsify import SparsifyConfig, check_int8, measure_int8, sparsify

OPS = {"conv3x3": "CONV_2D", "conv1x1": "CONV_2D", "sep": "CONV_2D", "conv1d": "CONV_2D",
       "fc": "FULLY_CONNECTED", "fc2": "FULLY_CONNECTED", "dw": "DEPTHWISE_CONV_2D"}


def model_with_bn(k):
    """Every sparse layer type; BatchNormalization with non-trivial statistics after the convs
    (folded into their weights by the converter), and two dense layers of the same shape."""
    k.utils.set_random_seed(1)
    inp = k.Input((8, 8, 4))
    x = k.layers.Conv2D(8, 3, padding="same", name="conv3x3")(inp)
    x = k.layers.BatchNormalization(name="bn1")(x)
    x = k.layers.ReLU()(x)
    x = k.layers.Conv2D(8, 1, name="conv1x1")(x)
    x = k.layers.BatchNormalization(name="bn2")(x)
    x = k.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = k.layers.BatchNormalization(name="bn3")(x)
    x = k.layers.SeparableConv2D(8, 3, padding="same", name="sep")(x)
    x = k.layers.Reshape((64, 8))(x)
    x = k.layers.Conv1D(8, 3, padding="same", name="conv1d")(x)
    x = k.layers.GlobalAveragePooling1D()(x)
    x = k.layers.Dense(8, name="fc", activation="relu")(x)
    out = k.layers.Dense(8, name="fc2")(x)
    model = k.Model(inp, out)
    rng = np.random.default_rng(0)
    for name in ("bn1", "bn2", "bn3"):
        gamma, beta, mean, var = model.get_layer(name).get_weights()
        model.get_layer(name).set_weights([rng.uniform(0.5, 2, gamma.shape).astype(np.float32),
                                           rng.normal(0, 0.5, beta.shape).astype(np.float32),
                                           rng.normal(0, 0.5, mean.shape).astype(np.float32),
                                           rng.uniform(0.2, 3, var.shape).astype(np.float32)])
    return model


@pytest.fixture(scope="module", params=FLAVORS)
def converted(request):
    result = sparsify(model_with_bn(keras_module(request.param)),
                      SparsifyConfig(sparsity=0.75, depthwise=True, progress=False))
    return result, int8_tflite_of(result.model)


def test_check_passes_and_reports_the_real_int8_sparsity(converted) -> None:
    result, tflite = converted
    graph = read_tflite(tflite)
    checked = check_int8(result.masks, graph)
    assert [x.layer for x in checked.layers] == [x.name for x in result.layers]
    for row, layer in zip(checked.layers, result.layers, strict=True):
        op = graph.ops[row.op_index]
        assert row.opcode == op.opcode == OPS[row.layer]
        assert row.masked == layer.removed and row.zeros >= layer.removed
        assert row.unit_sparsity >= 0.75 - 1e-9 and row.sparsity >= layer.sparsity
    assert checked.sparsity >= result.sparsity
    assert checked.to_dict()["layers"][0]["layer"] == "conv3x3"


def test_int8_zeros_are_the_mask_in_tflite_order(converted) -> None:
    """Independent of the check: the Keras mask, transposed by hand, is zero in the weights."""
    result, tflite = converted
    graph = read_tflite(tflite)
    checked = {x.layer: x for x in check_int8(result.masks, graph).layers}
    for name, mask in result.masks.layers.items():
        op = graph.ops[checked[name].op_index]
        weights = graph.tensor(op.inputs[1]).data
        keep = mask.keep
        if name == "dw":  # [KH, KW, C, 1] -> DEPTHWISE_CONV_2D [1, KH, KW, C]
            keep = keep.reshape(1, *keep.shape[:3])[None]
        expected = {5: lambda m: m[0], 4: lambda m: np.transpose(m, (3, 0, 1, 2)),
                    3: lambda m: np.transpose(m, (2, 0, 1))[:, None],
                    2: lambda m: m.T}[keep.ndim](keep)
        assert weights.shape == expected.shape, name
        assert not weights[~expected].any(), name
        blocks = (weights.reshape(*weights.shape[:-1], -1, 4) != 0).any(axis=-1)
        assert (~blocks).mean() >= 0.75 - 1e-9, name  # 1x4 along IN in the kernel's order


def test_unzeroed_block_fails_naming_the_layer(converted) -> None:
    result, _ = converted
    layer = result.model.get_layer("conv1x1")
    kernel, *rest = layer.get_weights()
    o = int(np.nonzero(~result.masks["conv1x1"].keep)[-1][0])
    i = int(np.nonzero(~result.masks["conv1x1"].keep[0, 0, :, o])[0][0])
    kernel[0, 0, i, o] = 0.5
    layer.set_weights([kernel, *rest])
    try:
        graph = read_tflite(int8_tflite_of(result.model))
        with pytest.raises(CheckFailed, match=r"layer 'conv1x1': expected the \d+ removed "
                           r"weights to be 0 .* received 1 non-zero \(first at output channel "
                           f"{o}, kernel position 0, input channel {i}\\)") as info:
            check_int8(result.masks, graph)
        assert info.value.exit_code == 1
    finally:
        kernel[0, 0, i, o] = 0.0
        layer.set_weights([kernel, *rest])


def test_a_layer_missing_from_the_graph_is_named(converted) -> None:
    result, tflite = converted
    graph = read_tflite(tflite)
    fc = next(op for op in graph.ops if op.opcode == "FULLY_CONNECTED")
    without = dataclasses.replace(graph, ops=tuple(op for op in graph.ops if op is not fc))
    with pytest.raises(CheckFailed, match=r"layer 'fc2?' \(Dense, kernel \(8, 8\)\): expected "
                       "a FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D op"):
        check_int8(result.masks, without)


def test_measure_finds_the_blocks_without_masks(converted) -> None:
    result, tflite = converted
    measured = measure_int8(read_tflite(tflite), "1x4")
    # every sparsified layer, and the dense depthwise half of the separable conv
    assert len(measured.layers) == len(result.layers) + 1
    sparse = [x for x in measured.layers if x.unit_sparsity >= 0.75 - 1e-9]
    assert len(sparse) == len(result.layers) and all(x.layer is None for x in sparse)
    [dense_half] = [x for x in measured.layers if x not in sparse]
    assert dense_half.opcode == "DEPTHWISE_CONV_2D" and dense_half.unit_sparsity < 0.1
    dense = measure_int8(read_tflite(tflite), "4x4")  # (no depthwise op has 4 rows)
    assert all(x.unit_sparsity < 0.75 for x in dense.layers)  # 1x4 blocks are not 4x4 blocks
    assert "DEPTHWISE_CONV_2D" not in {x.opcode for x in dense.layers}
