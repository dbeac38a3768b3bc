"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED kernels: bit-exact with TFLite Micro, both C paths.

Each case is a one-layer Keras model converted to full-int8 TFLite; the tflite-micro interpreter
gives the reference output, the IR reader and the handler code give the kernel arguments, and
the C kernel (portable and DSP-emulated builds) must match with tolerance 0.
"""

from __future__ import annotations

import ctypes
import dataclasses
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kernel_host as kh
import numpy as np
import pytest
from conftest import convert_int8

from tinyprune.errors import UnsupportedError
from tinyprune.ir import Graph, Op, fold_constants, read_tflite
from tinyprune.kernels.base import handler_for
from tinyprune.kernels.conv import (
    CONV_KERNELS,
    DEPTHWISE_KERNELS,
    ConvArgs,
    choose_kernel,
    conv_args,
    conv_scratch_bytes,
    depthwise_args,
    rounding_words,
)
from tinyprune.kernels.fully_connected import FcArgs, fc_args

SAMPLES = 3


@pytest.fixture(scope="session")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, ctypes.CDLL]:
    cache = tmp_path_factory.mktemp("kernels")
    return {dsp: kh.build_kernels(kh.CONV_SOURCES, {"TP_USE_DSP": int(dsp)}, cache)
            for dsp in (False, True)}


# ---- the models --------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    input_shape: tuple[int, ...]
    layer: Callable[[], Any]  # returns a fresh Keras layer
    opcode: str
    activation: str = "NONE"
    per_channel_dense: bool = True
    dilation: int = 1  # patched into the flatbuffer (the converter splits dilated convs up)
    kernel: str = ""  # the kernel the handler must choose ("" for FULLY_CONNECTED)


def _init() -> dict[str, Any]:
    import keras

    return {"bias_initializer": keras.initializers.RandomUniform(-0.3, 0.3)}


def _conv(*args: Any, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Conv2D(*args, **{**_init(), **kw})
    return make


def _dw(*args: Any, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.DepthwiseConv2D(*args, **{**_init(), **kw})
    return make


def _dense(*args: Any, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Dense(*args, **{**_init(), **kw})
    return make


CASES = [
    Case("conv1x1", (6, 6, 8), _conv(12, 1, activation="relu"), "CONV_2D", "RELU",
         kernel="tp_conv_1x1_thin_s8"),
    Case("conv1x1_cout_odd", (5, 5, 16), _conv(3, 1), "CONV_2D", kernel="tp_conv_1x1_thin_s8"),
    Case("conv1x1_c6_in_place", (5, 5, 6), _conv(6, 1, activation="relu"), "CONV_2D", "RELU",
         kernel="tp_conv_interleaved_s8"),
    Case("conv1x1_c8_in_place_odd_pixels", (3, 5, 8), _conv(8, 1), "CONV_2D",
         kernel="tp_conv_1x1_thin_s8"),
    Case("conv1x1_cin7_odd_pixels", (5, 5, 7), _conv(9, 1, use_bias=False), "CONV_2D",
         kernel="tp_conv_interleaved_s8"),
    Case("conv1x1_s2_cin6", (7, 7, 6), _conv(5, 1, strides=2, activation="relu"), "CONV_2D",
         "RELU", kernel="tp_conv_interleaved_s8"),
    Case("conv1x1_same_s2_cin4", (6, 6, 4), _conv(4, 1, strides=2, padding="same"), "CONV_2D",
         kernel="tp_conv_1x1_thin_s8"),
    Case("conv1x1_cout1_cin16_odd_pixels", (3, 5, 16), _conv(1, 1), "CONV_2D",
         kernel="tp_conv_1x1_thin_s8"),
    # tp_conv_1x1_thin_s8: every C_IN it takes, pixel counts off its passes (4, 2, 1), stride 2
    Case("thin1x1_cin4_s2_relu6_odd", (7, 9, 4), _conv(7, 1, strides=2, activation="relu6"),
         "CONV_2D", "RELU6", kernel="tp_conv_1x1_thin_s8"),
    Case("thin1x1_cin4_in_place_odd", (3, 3, 4), _conv(3, 1, activation="relu"), "CONV_2D",
         "RELU", kernel="tp_conv_1x1_thin_s8"),
    Case("thin1x1_cin8_s2_cout5", (7, 5, 8), _conv(5, 1, strides=(2, 1)), "CONV_2D",
         kernel="tp_conv_1x1_thin_s8"),
    Case("thin1x1_cin12_relu_odd", (3, 5, 12), _conv(9, 1, activation="relu"), "CONV_2D",
         "RELU", kernel="tp_conv_1x1_thin_s8"),
    Case("thin1x1_cin16_s2_cout20", (6, 6, 16), _conv(20, 1, strides=2, padding="same",
                                                     use_bias=False), "CONV_2D",
         kernel="tp_conv_1x1_thin_s8"),
    # tp_conv_interleaved_s8 reads windows inside the input in place (C_IN % 4 == 0): pairs of
    # in-place windows, in-place + gathered, and an odd last in-place window
    Case("conv3x3_c8_same_odd_pixels", (9, 7, 8), _conv(5, 3, padding="same"), "CONV_2D",
         kernel="tp_conv_interleaved_s8"),
    Case("conv3x3_c4_valid_odd_pixels", (9, 7, 4), _conv(6, 3, activation="relu"), "CONV_2D",
         "RELU", kernel="tp_conv_interleaved_s8"),
    Case("conv3x3_same_cin3", (7, 7, 3), _conv(5, 3, padding="same"), "CONV_2D",
         kernel="tp_conv_interleaved_s8"),
    Case("conv3x3_s2_same_cin3_first", (9, 9, 3), _conv(8, 3, strides=2, padding="same",
                                                        activation="relu"), "CONV_2D", "RELU",
         kernel="tp_conv_interleaved_s8"),
    Case("conv3x3_s2_same_relu6", (8, 8, 4), _conv(8, 3, strides=2, padding="same",
                                                   activation="relu6"), "CONV_2D", "RELU6",
         kernel="tp_conv_interleaved_s8"),
    Case("conv3x3_s2_valid_nobias", (9, 9, 5), _conv(6, 3, strides=2, use_bias=False),
         "CONV_2D", kernel="tp_conv_interleaved_s8"),
    Case("conv5x5_same_relu", (10, 10, 4), _conv(7, 5, padding="same", activation="relu"),
         "CONV_2D", "RELU", kernel="tp_conv_interleaved_s8"),
    Case("conv10x4_kws", (49, 10, 1), _conv(16, (10, 4), strides=2, padding="same",
                                            activation="relu"), "CONV_2D", "RELU",
         kernel="tp_conv_interleaved_s8"),
    Case("conv3x3_dilation2", (9, 9, 4), _conv(4, 3, padding="same"), "CONV_2D", dilation=2,
         kernel="tp_conv_interleaved_s8"),
    Case("conv3x1_stride_hw", (8, 9, 6), _conv(5, (3, 1), strides=(1, 2)), "CONV_2D",
         kernel="tp_conv_interleaved_s8"),
    Case("dw3x3_same_relu", (8, 8, 8), _dw(3, padding="same", activation="relu"),
         "DEPTHWISE_CONV_2D", "RELU", kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_s2_c6_relu6", (9, 9, 6), _dw(3, strides=2, padding="same", activation="relu6"),
         "DEPTHWISE_CONV_2D", "RELU6", kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_c7_dilation2", (9, 8, 7), _dw(3, padding="same"), "DEPTHWISE_CONV_2D",
         dilation=2, kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_c3_valid_nobias", (6, 5, 3), _dw(3, use_bias=False), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_tiny_image_c12", (3, 2, 12), _dw(3, padding="same", activation="relu"),
         "DEPTHWISE_CONV_2D", "RELU", kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_s2_valid_c16", (10, 7, 16), _dw(3, strides=2), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_3x3_s8"),
    # odd sizes, SAME: interior pixels (row pointers) and pixels on every border and corner
    Case("dw3x3_odd_c4_relu", (7, 9, 4), _dw(3, padding="same", activation="relu"),
         "DEPTHWISE_CONV_2D", "RELU", kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_odd_c16", (5, 7, 16), _dw(3, padding="same"), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_s2_odd_c3", (9, 7, 3), _dw(3, strides=2, padding="same"), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_s2_odd_c7_relu6", (11, 9, 7), _dw(3, strides=2, padding="same",
                                                 activation="relu6"),
         "DEPTHWISE_CONV_2D", "RELU6", kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_s2_odd_c16", (7, 9, 16), _dw(3, strides=2, padding="same"), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_s12_valid_c4", (7, 8, 4), _dw(3, strides=(1, 2)), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_3x3_s8"),
    Case("dw3x3_mult2_valid", (7, 7, 3), _dw(3, depth_multiplier=2), "DEPTHWISE_CONV_2D",
         kernel="tp_depthwise_conv_s8"),
    Case("dw5x5_dilation2_c5", (11, 11, 5), _dw(5, padding="same"), "DEPTHWISE_CONV_2D",
         dilation=2, kernel="tp_depthwise_conv_s8"),
    Case("dw3x1_s21_nobias", (8, 8, 4), _dw((3, 1), strides=(2, 1), use_bias=False),
         "DEPTHWISE_CONV_2D", kernel="tp_depthwise_conv_s8"),
    Case("fc_per_tensor", (64,), _dense(10), "FULLY_CONNECTED", per_channel_dense=False),
    Case("fc_per_channel_relu", (37,), _dense(13, activation="relu"), "FULLY_CONNECTED", "RELU"),
    Case("fc_nobias_relu6", (40,), _dense(7, use_bias=False, activation="relu6"),
         "FULLY_CONNECTED", "RELU6", per_channel_dense=False),
    Case("fc_out8_in9", (9,), _dense(8), "FULLY_CONNECTED"),
    Case("fc_out4_in3_per_tensor", (3,), _dense(4), "FULLY_CONNECTED", per_channel_dense=False),
    # the interleaved stream's remainders: a last group of 1-3 rows, IN % 4 and IN / 4 % 8
    Case("fc_out1_in5", (5,), _dense(1), "FULLY_CONNECTED", per_channel_dense=False),
    Case("fc_out2_in70", (70,), _dense(2), "FULLY_CONNECTED"),
    Case("fc_out3_in10_relu", (10,), _dense(3, activation="relu"), "FULLY_CONNECTED", "RELU"),
    Case("fc_out5_in64_per_tensor", (64,), _dense(5), "FULLY_CONNECTED", per_channel_dense=False),
    Case("fc_out12_in70_relu", (70,), _dense(12, activation="relu"), "FULLY_CONNECTED", "RELU"),
]


CASE = {c.id: c for c in CASES}


def _convert(case: Case) -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(zlib.crc32(case.id.encode()))
    model = keras.Sequential([keras.Input(case.input_shape), case.layer()])
    if case.per_channel_dense:
        return convert_int8(model, case.input_shape)
    orig = tf.lite.TFLiteConverter.from_keras_model

    def per_tensor(m: Any) -> Any:
        conv = orig(m)
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
        return conv

    tf.lite.TFLiteConverter.from_keras_model = per_tensor
    try:
        return convert_int8(model, case.input_shape)
    finally:
        tf.lite.TFLiteConverter.from_keras_model = orig


def with_dilation(tflite: bytes, factor: int) -> bytes:
    """The model with the dilation of its first op set to factor (SAME padding: same shapes)."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    opts = model.subgraphs[0].operators[0].builtinOptions
    opts.dilationWFactor = opts.dilationHFactor = factor
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


_MODELS: dict[str, bytes] = {}


def model_bytes(case: Case) -> bytes:
    if case.id not in _MODELS:
        tflite = _convert(case)
        _MODELS[case.id] = tflite if case.dilation == 1 else with_dilation(tflite, case.dilation)
    return _MODELS[case.id]


def reference(tflite: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite)
    outs = []
    for x in inputs:
        interp.set_input(x[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)))
    return outs


def _single_op(graph: Graph, case: Case) -> Op:
    """The case's op; anything else in the graph may only be a reshape (pure data movement)."""
    codes = [op.opcode for op in graph.ops]
    assert codes.count(case.opcode) == 1 and set(codes) <= {case.opcode, "RESHAPE"}, codes
    op = next(op for op in graph.ops if op.opcode == case.opcode)
    assert op.options.get("fused_activation_function", "NONE") == case.activation
    assert op.options.get("dilation_w_factor", 1) == case.dilation
    return op


def _args(graph: Graph, op: Op) -> ConvArgs | FcArgs:
    handler_for(op).check(op, graph)
    if op.opcode == "FULLY_CONNECTED":
        return fc_args(op, graph)
    return depthwise_args(op, graph) if op.opcode == "DEPTHWISE_CONV_2D" else conv_args(op, graph)


IN_PLACE = {"thin1x1_cin4_in_place_odd", "thin1x1_cin12_relu_odd",
            "conv1x1_cout_odd", "conv1x1_cout1_cin16_odd_pixels", "conv1x1_c6_in_place",
            "conv1x1_c8_in_place_odd_pixels", "dw3x3_same_relu", "dw3x3_tiny_image_c12",
            "dw3x3_odd_c4_relu", "dw3x3_odd_c16"}
"""The cases whose layer a kernel can run in place (output over its input): 1x1 stride 1 with
C_OUT <= C_IN, depthwise 3x3 SAME stride 1 (tp_nn_conv.h)."""


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bit_exact_with_tflm(case: Case, libs: dict[bool, ctypes.CDLL]) -> None:
    """Every kernel that accepts the layer (not only the chosen one), both C paths, in place
    and with its least scratch (the narrow DSP path of tp_conv_interleaved_s8) where it can."""
    tflite = model_bytes(case)
    graph = fold_constants(read_tflite(tflite))
    op = _single_op(graph, case)
    args = _args(graph, op)
    if case.opcode == "FULLY_CONNECTED":
        assert isinstance(args, FcArgs) and args.per_channel == case.per_channel_dense
    else:
        assert isinstance(args, ConvArgs) and choose_kernel(args).name == case.kernel
    rng = np.random.default_rng(7)
    inputs = rng.integers(-128, 128, (SAMPLES, *case.input_shape), dtype=np.int8)
    expected = reference(tflite, inputs)
    for dsp in (False, True):
        for x, want in zip(inputs, expected, strict=True):
            if isinstance(args, FcArgs):
                got = kh.fc_outputs(libs[dsp], args, x, dsp)
            else:
                kernels = DEPTHWISE_KERNELS if args.depthwise else CONV_KERNELS
                got = {k.name: kh.run_window(libs[dsp], k, args, x[None], dsp)
                       for k in kernels if k.applies(args)}
                got.update({f"{k.name} in place": kh.run_window(libs[dsp], k, args, x[None],
                                                                dsp, in_place=True)
                            for k in kernels
                            if k.applies(args) and k.in_place(args, dsp) is not None})
                got.update({f"{k.name} narrow": kh.run_window(libs[dsp], k, args, x[None], dsp,
                                                              narrow=True)
                            for k in kernels if k.applies(args) and k.min_scratch(args, dsp)})
            for name, out in got.items():
                assert np.array_equal(out.reshape(want.shape), want), f"{name} dsp={dsp}"
            assert any(n.endswith(" in place") for n in got) == (case.id in IN_PLACE)


@pytest.mark.parametrize("name", ["dw3x3_s2_c6_relu6", "conv3x3_same_cin3", "conv1x1"])
def test_in_place_refused_where_it_would_read_overwritten_input(
        name: str, libs: dict[bool, ctypes.CDLL]) -> None:
    """Output == input on a layer that cannot run in place: TP_ERR_ARG, on both paths."""
    graph = fold_constants(read_tflite(model_bytes(CASE[name])))
    args = _args(graph, _single_op(graph, CASE[name]))
    assert isinstance(args, ConvArgs)
    kernel = choose_kernel(args)
    assert kernel.in_place(args, True) is None
    x = np.zeros((1, *CASE[name].input_shape), np.int8)
    for dsp in (False, True):
        kh.run_window(libs[dsp], kernel, args, x, dsp, in_place=True, expect=kh.TP_ERR_ARG)


def test_folded_bias_past_int32_falls_back() -> None:
    graph = read_tflite(model_bytes(CASE["conv1x1_cin7_odd_pixels"]))
    a = conv_args(graph.ops[0], graph)
    assert choose_kernel(a).name == "tp_conv_interleaved_s8"
    big = np.full(a.output_shape[3], 2**31 - 1, dtype=np.int32)
    low = np.full(a.output_shape[3], -(2**31), dtype=np.int32)
    assert choose_kernel(dataclasses.replace(a, bias=big, input_offset=128)).name == "tp_conv_s8"
    assert choose_kernel(dataclasses.replace(a, bias=low, input_offset=-127)).name == "tp_conv_s8"
    graph = read_tflite(model_bytes(CASE["dw3x3_same_relu"]))
    d = depthwise_args(graph.ops[0], graph)
    huge = dataclasses.replace(d, bias=np.full(d.output_shape[3], 2**31 - 1, dtype=np.int32),
                               input_offset=128, weights=np.full_like(d.weights, 127))
    assert choose_kernel(huge).name == "tp_depthwise_conv_s8"


# ---- handler behaviour ------------------------------------------------------------------------

class FakeCtx:
    """A LowerContext that records constants."""

    cost_model = "table"

    def __init__(self, dsp: bool) -> None:
        self.dsp = dsp
        self.consts: dict[str, tuple[np.ndarray, str]] = {}

    def act(self, tensor_index: int) -> str:
        return f"act{tensor_index}"

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        sym = f"c{len(self.consts)}"
        self.consts[sym] = (np.asarray(values), ctype)
        return sym

    @property
    def scratch(self) -> str:
        return "scratch_buf"


def _render_and_compile(case: Case, dsp: bool, tmp_path: Path) -> None:
    from tinyprune.firmware.paths import template_environment as environment

    graph = read_tflite(model_bytes(case))
    op = graph.ops[0]
    ctx = FakeCtx(dsp)
    call = handler_for(op).lower(op, graph, ctx)
    assert call.macs > 0 and call.weight_bytes >= graph.tensor(op.inputs[1]).size
    code = environment().get_template(call.template).render(**call.params)
    decls = [f"static const {t} {s}[{max(v.size, 1)}];" for s, (v, t) in ctx.consts.items()]
    acts = {*op.inputs[:1], *op.outputs}
    src = "\n".join([
        '#include "tp_nn_conv.h"', '#include "tp_nn_fc.h"', *decls,
        *(f"static int8_t act{i}[{graph.tensor(i).size}];" for i in acts),
        f"static int32_t scratch_buf[{max(call.scratch_bytes // 4, 1)}];",
        "int layer(void);", "int layer(void)", "{", "    tp_status status;", code,
        "    return (int)status;", "}", ""])
    path = tmp_path / f"{case.id}.c"
    path.write_text(src)
    cmd = [kh.compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
           f"-I{kh.RUNTIME / 'include'}", str(path)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, res.stderr + src


@pytest.mark.parametrize("case", [CASE["conv3x3_same_cin3"], CASE["conv1x1"],
                                  CASE["dw3x3_mult2_valid"], CASE["dw3x3_same_relu"],
                                  CASE["fc_per_tensor"], CASE["fc_per_channel_relu"]],
                         ids=["conv3x3_cin3", "conv1x1", "depthwise", "depthwise_3x3",
                              "fc_per_tensor", "fc_per_channel"])
def test_templates_render_and_compile(case: Case, tmp_path: Path) -> None:
    for dsp in (False, True):
        _render_and_compile(case, dsp, tmp_path)


def test_lower_registers_weights_and_scratch() -> None:
    case = CASE["conv3x3_s2_same_relu6"]
    graph = read_tflite(model_bytes(case))
    op = graph.ops[0]
    ctx = FakeCtx(dsp=True)
    call = handler_for(op).lower(op, graph, ctx)
    assert call.kernel == "tp_conv_interleaved_s8"
    assert call.sources == ("tp_conv_interleaved_s8.c",)
    assert call.scratch_bytes == 5 * 3 * 3 * 4  # two int16 columns + the int8 window
    assert call.params["kernel"] == call.kernel
    assert call.macs == 4 * 4 * 8 * 3 * 3 * 4
    assert {ctype for _, ctype in ctx.consts.values()} == {"int8_t"}  # one stream
    assert call.params["pad_w"] == 0 and call.params["pad_h"] == 0  # 8 -> 4 with stride 2: 1 total
    assert call.params["act_min"] >= -128 and "relu6" in call.params["label"]


def test_lower_interleaved_conv_folds_bias_and_interleaves_filter() -> None:
    case = CASE["conv3x3_same_cin3"]
    graph = read_tflite(model_bytes(case))
    op = graph.ops[0]
    tflm = conv_args(op, graph)
    ctx = FakeCtx(dsp=True)
    call = handler_for(op).lower(op, graph, ctx)
    assert call.kernel == call.params["kernel"] == "tp_conv_interleaved_s8"
    assert call.sources == ("tp_conv_interleaved_s8.c",)
    assert call.scratch_bytes == 5 * 28  # 27 values padded to 28: two int16 columns + int8 window
    stream, _ = ctx.consts[call.params["filter"]]
    assert call.params["bias"] == call.params["multiplier"] == "NULL"  # all in the stream
    assert call.weight_bytes == stream.size == 4 + 3 * (2 * 28 + 32)
    fast = rounding_words(tflm) is not None
    assert stream[:4].view("<i4")[0] == int(fast)
    # 5 channels padded to 6 (a zero row); pair p: group g holds row 2p's word then row 2p + 1's,
    # then bias, multiplier, shift, rounding of the two channels
    pairs = stream[4:].reshape(3, 2 * 28 + 32)
    rows = np.zeros((6, 28), np.int8)
    rows[:5, :27] = tflm.weights.reshape(5, 27)
    words = pairs[:, :56].reshape(3, 7, 2, 4)
    assert np.array_equal(words[1, 2, 1], rows[3, 8:12])
    assert not words[2, :, 1].any() and not words[:, 6, :, 3].any()
    params = pairs[:, 56:].copy().view("<i4").reshape(3, 4, 2)
    sums = tflm.weights.reshape(5, -1).astype(np.int64).sum(axis=1)
    assert np.array_equal(params[:, 0].reshape(-1)[:5], tflm.bias + tflm.input_offset * sums)
    assert np.array_equal(params[:, 1].reshape(-1)[:5], tflm.multiplier)
    assert np.array_equal(params[:, 2].reshape(-1)[:5], tflm.shift)
    # the padding channel: bias 0, the last channel's multiplier and shift (a valid shift for
    # tp_requantize_fast, whose result is dropped)
    assert params[2, 0, 1] == 0
    assert (params[2, 1, 1], params[2, 2, 1]) == (tflm.multiplier[4], tflm.shift[4])


def test_int16_activations_are_refused() -> None:
    graph = read_tflite(model_bytes(CASE["conv1x1"]))
    op = graph.ops[0]
    x = graph.tensor(op.inputs[0])
    tensors = list(graph.tensors)
    tensors[x.index] = dataclasses.replace(x, dtype="int16")
    bad = dataclasses.replace(graph, tensors=tuple(tensors))
    with pytest.raises(UnsupportedError, match=rf"layer '{op.name}'.*int16"):
        handler_for(op).check(op, bad)


def test_small_scratch_is_an_error(libs: dict[bool, ctypes.CDLL]) -> None:
    graph = read_tflite(model_bytes(CASE["conv1x1"]))
    a = conv_args(graph.ops[0], graph)
    assert isinstance(a, ConvArgs)
    ctx, _buf = kh.scratch(conv_scratch_bytes(a.filter_shape, True) - 4)
    quant, _keep = kh.per_channel(a.multiplier, a.shift)
    out = np.zeros(a.output_shape, dtype=np.int8)
    x = np.zeros(a.input_shape, dtype=np.int8)
    w = np.ascontiguousarray(a.weights)
    status = libs[True].tp_conv_s8(
        ctypes.byref(ctx), ctypes.byref(kh.ConvParams(**kh.window_params(a))), ctypes.byref(quant),
        ctypes.byref(kh.dims(a.input_shape)), kh.ptr(x), ctypes.byref(kh.dims(a.filter_shape)),
        kh.ptr(w), None, None, ctypes.byref(kh.dims(a.output_shape)), kh.ptr(out))
    assert status == kh.TP_ERR_ARG


@pytest.mark.parametrize("dsp", [False, True])
def test_fc_batch_rows_equal_single_rows(dsp: bool, libs: dict[bool, ctypes.CDLL]) -> None:
    """N input rows in one call give the rows of N single-row calls (checked against TFLM above)."""
    graph = read_tflite(model_bytes(CASE["fc_per_channel_relu"]))
    one = fc_args(graph.ops[0], graph)
    rows = dataclasses.replace(one, rows=5)
    x = np.random.default_rng(3).integers(-128, 128, (5, one.in_features), dtype=np.int8)
    got = kh.fc_outputs(libs[dsp], rows, x, dsp)
    for name, out in got.items():
        want = np.concatenate([kh.fc_outputs(libs[dsp], one, r, dsp)[name] for r in x])
        assert np.array_equal(out, want), name
