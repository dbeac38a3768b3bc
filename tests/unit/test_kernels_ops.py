"""The ops common Keras models turn into, bit-exact with TFLite Micro (portable and DSP builds).

HARD_SWISH, RELU, RELU6, LEAKY_RELU, PRELU, TANH, SUB, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, RSQRT,
NEG (float), STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, RESIZE_NEAREST_NEIGHBOR, RESIZE_BILINEAR and
TRANSPOSE_CONV (and an unrolled tf_keras LSTM, which is made of them): each case is a tiny model
converted to full-int8 TFLite; the graph goes through
the real handlers and template fragments (tests/op_harness.py), and the outputs must equal the
``tflite_micro`` interpreter's byte for byte on inputs that walk every int8 value and on random
ones. The premise of each case (the ops the converter emits) is asserted too. These cases are
about the Keras layers and the converter (which op, which options, the quantization calibration
gives); the arithmetic at every quantization extreme is tests/unit/test_kernels_property.py's.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from kernel_host import RUNTIME, build_kernels
from op_harness import Case, Lowered, cases_code, check_case, compile_cases, kernel_sources
from op_harness import lower_all as _lower_all

from tinyprune.errors import UnsupportedError
from tinyprune.ir import Graph, Op, Quant, Tensor
from tinyprune.kernels.base import handler_for
from tinyprune.kernels.pointwise import hard_swish_params, hard_swish_table
from tinyprune.kernels.transform import SliceMasks, nearest_indices, strided_slice_plan

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # converter statistics notice


def L(name: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """One Keras layer, built from the case's Keras module."""
    return lambda k: getattr(k.layers, name)(*args, **kwargs)


def lam(fn: Callable[[Any, Any], Any]) -> Callable[[Any], Any]:
    """A Lambda layer over the case's input(s): ``fn(k, x)``."""
    return lambda k: k.layers.Lambda(lambda t: fn(k, t))


def chain(*makes: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def build(k: Any) -> Callable[[Any], Any]:
        layers = [m(k) for m in makes]

        def apply(x: Any) -> Any:
            for layer in layers:
                x = layer(x)
            return x

        return apply

    return build


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _random_weights(seed: int, low: float, high: float) -> Callable[[Any], None]:
    """Sets every weight of the model uniform in [low, high] (PReLU slopes, conv filters)."""

    def setup(model: Any) -> None:
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            layer.set_weights([rng.uniform(low, high, w.shape).astype(np.float32)
                               for w in layer.get_weights()])

    return setup


def _merge(name: str) -> Callable[[Any], Any]:
    return lambda k: getattr(k.layers, name)()


def _split_swap(k: Any, t: Any) -> Any:
    a, b = k.ops.split(t, 2, axis=-1)
    return k.ops.concatenate([b, a], axis=-1)


def _split_v(k: Any, t: Any) -> Any:
    a, b, c = _tf().split(t, [1, 3, 2], axis=-1)
    return k.ops.concatenate([c, a, b], axis=-1)


def _resize_v1(kind: str, size: tuple[int, int], **kw: Any) -> Callable[[Any], Any]:
    """tf.compat.v1 resize (align_corners / half_pixel_centers are options only there)."""
    return lam(lambda k, t: getattr(_tf().compat.v1.image, kind)(t, size, **kw))


CONVT_WEIGHTS = _random_weights(3, -0.6, 0.6)

# fmt: off
CASES = [
    # ---- one-input activations (pointwise.py) ----
    Case("hard_swish_r4", L("Activation", "hard_swish"), ((6, 43),), "HARD_SWISH", rep=4.0),
    Case("hard_swish_r05", L("Activation", "hard_swish"), ((256,),), "HARD_SWISH", rep=0.5),
    Case("hard_swish_asym", L("Activation", "hard_swish"), ((256,),), "HARD_SWISH",
         rep=(-1.0, 7.0)),
    Case("relu", L("ReLU"), ((4, 5, 6),), "RELU", rep=3.0),
    Case("relu6_r8", L("ReLU", 6.0), ((4, 4, 8),), "RELU6", rep=8.0),
    Case("leaky_02", L("LeakyReLU", negative_slope=0.2), ((4, 4, 8),), "LEAKY_RELU", rep=3.0),
    Case("leaky_15", L("LeakyReLU", negative_slope=1.5), ((256,),), "LEAKY_RELU", rep=2.0),
    Case("tanh_r1", L("Activation", "tanh"), ((256,),), "TANH", rep=1.0),
    Case("tanh_r4", L("Activation", "tanh"), ((3, 5, 7),), "TANH", rep=4.0),
    Case("prelu_channel", L("PReLU"), ((5, 5, 6),), "PRELU", rep=3.0,
         setup=_random_weights(1, -0.5, 1.5)),
    Case("prelu_shared", L("PReLU", shared_axes=[1, 2]), ((4, 4, 5),), "PRELU", rep=3.0,
         setup=_random_weights(2, -1.0, 0.8)),
    # ---- broadcasting arithmetic (arith.py) ----
    Case("sub_scales", _merge("Subtract"), ((4, 4, 3), (4, 4, 3)), "SUB", rep=(-0.2, 6.0)),
    Case("sub_channel", lam(lambda k, t: t[0] - t[1]), ((4, 5, 6), (6,)), "SUB"),
    Case("sub_const", lam(lambda k, t: t - np.linspace(-1, 2, 5).astype(np.float32)),
         ((3, 3, 5),), "SUB"),
    Case("sub_relu", chain(_merge("Subtract"), L("ReLU")), ((3, 3, 4), (3, 3, 4)), "SUB"),
    Case("maximum", _merge("Maximum"), ((4, 4, 3), (4, 4, 3)), "MAXIMUM"),
    Case("minimum", _merge("Minimum"), ((4, 4, 3), (4, 4, 3)), "MINIMUM"),
    Case("squared_difference", lam(lambda k, t: _tf().math.squared_difference(t[0], t[1])),
         ((4, 4, 3), (4, 4, 3)), "SQUARED_DIFFERENCE"),
    Case("rsqrt", lam(lambda k, t: k.ops.rsqrt(t)), ((256,),), "RSQRT", rep=(0.05, 4.0),
         nonnegative=True),
    Case("layernorm", L("LayerNormalization"), ((4, 4, 8),), "SQUARED_DIFFERENCE RSQRT NEG"),
    # ---- slicing, splitting, resampling (transform.py) ----
    Case("cropping2d", L("Cropping2D", ((1, 2), (2, 1))), ((7, 8, 3),), "STRIDED_SLICE"),
    Case("slice_steps", lam(lambda k, t: t[:, 1:6, ::2, :3]), ((7, 7, 5),), "STRIDED_SLICE"),
    Case("slice_reverse", lam(lambda k, t: t[:, ::-1, 1:, ::-2]), ((5, 4, 6),),
         "STRIDED_SLICE"),
    Case("slice_shrink", lam(lambda k, t: t[:, 2]), ((5, 4, 6),), "STRIDED_SLICE"),
    Case("split", lam(_split_swap), ((4, 4, 6),), "SPLIT"),
    Case("split_v", lam(_split_v), ((3, 3, 6),), "SPLIT_V"),
    Case("unpack", lam(lambda k, t: k.ops.concatenate(_tf().unstack(t, axis=1)[::-1], -1)),
         ((5, 4),), "UNPACK"),
    Case("lstm_unrolled", L("LSTM", 6, unroll=True), ((5, 3),),
         "UNPACK SPLIT FULLY_CONNECTED LOGISTIC TANH MUL ADD", flavor="tf_keras", batch=1,
         setup=_random_weights(7, -0.6, 0.6)),
    Case("bilinear_up2", L("UpSampling2D", interpolation="bilinear"), ((5, 4, 3),),
         "RESIZE_BILINEAR"),
    Case("bilinear_odd", L("Resizing", 8, 11, interpolation="bilinear"), ((5, 7, 2),),
         "RESIZE_BILINEAR"),
    Case("bilinear_align", _resize_v1("resize_bilinear", (9, 7), align_corners=True),
         ((4, 3, 2),), "RESIZE_BILINEAR"),
    Case("nearest_up2", L("Resizing", 10, 8, interpolation="nearest"), ((5, 4, 3),),
         "RESIZE_NEAREST_NEIGHBOR"),
    Case("nearest_align", _resize_v1("resize_nearest_neighbor", (9, 7), align_corners=True),
         ((4, 3, 2),), "RESIZE_NEAREST_NEIGHBOR"),
    Case("nearest_tf_keras", L("UpSampling2D", (2, 3)), ((4, 3, 2),),
         "RESIZE_NEAREST_NEIGHBOR", flavor="tf_keras"),
    # ---- transposed convolution (transpose_conv.py) ----
    Case("convt_3x3s2_same", L("Conv2DTranspose", 5, 3, strides=2, padding="same"),
         ((4, 5, 3),), "TRANSPOSE_CONV", setup=CONVT_WEIGHTS),
    Case("convt_3x3s2_valid", L("Conv2DTranspose", 4, 3, strides=2), ((4, 4, 8),),
         "TRANSPOSE_CONV", setup=CONVT_WEIGHTS),
    Case("convt_2x2s2", L("Conv2DTranspose", 6, 2, strides=2, use_bias=False), ((3, 3, 7),),
         "TRANSPOSE_CONV", setup=CONVT_WEIGHTS),
    Case("convt_4x4s2_same_relu",
         L("Conv2DTranspose", 3, 4, strides=2, padding="same", activation="relu"),
         ((3, 4, 6),), "TRANSPOSE_CONV", setup=CONVT_WEIGHTS),
]
# fmt: on


@pytest.fixture(scope="session")
def lowered() -> dict[str, Lowered | Exception]:
    return _lower_all(CASES)


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("op_kernels")


@pytest.fixture(scope="session", params=[0, 1], ids=["portable", "dsp"])
def host_lib(request: pytest.FixtureRequest, lowered: dict[str, Lowered | Exception],
             build_dir: Path) -> ctypes.CDLL:
    return compile_cases(lowered, request.param, build_dir)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bit_exact_with_tflite_micro(case: Case, lowered: dict[str, Lowered | Exception],
                                     host_lib: ctypes.CDLL) -> None:
    check_case(lowered[case.id], host_lib)


def _kernels(lw: Lowered | Exception) -> list[str]:
    assert isinstance(lw, Lowered), lw
    return [c.kernel for c in lw.calls if not c.alias]


def test_every_new_kernel_is_exercised(lowered: dict[str, Lowered | Exception]) -> None:
    used = {k for lw in lowered.values() for k in _kernels(lw)}
    new = {p.stem for p in (RUNTIME / "kernels").glob("tp_*.c")} & {
        "tp_lut_s8", "tp_relu_s8", "tp_relu6_s8", "tp_leaky_relu_s8", "tp_tanh_s8",
        "tp_prelu_s8", "tp_sub_s8", "tp_maximum_s8", "tp_minimum_s8", "tp_squared_difference_s8",
        "tp_rsqrt_s8", "tp_neg_f32", "tp_strided_slice_s8", "tp_split_s8", "tp_resize_nearest_s8",
        "tp_resize_bilinear_s8", "tp_transpose_conv_s8"}
    assert len(new) == 17 and new <= used, sorted(new - used)


def test_hard_swish_cases_cover_both_reluish_shifts(lowered: dict[str, Lowered | Exception]
                                                    ) -> None:
    """The premise of the HARD_SWISH rows: left- and right-shifting relu-ish multipliers."""
    exponents = set()
    for case in ("hard_swish_r4", "hard_swish_r05"):
        lw = lowered[case]
        assert isinstance(lw, Lowered)
        exponents |= {c.params["reluish_exponent"] for c in lw.calls
                      if c.kernel == "tp_lut_s8"}
    assert min(exponents) < 0 < max(exponents), exponents


class _HardSwishParams(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int32) for n in (
        "input_zero_point", "output_zero_point", "reluish_multiplier", "reluish_exponent",
        "output_multiplier", "output_exponent")]


def _hard_swish_param_sets() -> list[dict[str, int]]:
    """Input scales from 1e-4 to 3, output scales around the function's range, random zero
    points: left- and right-shifting relu-ish multipliers, saturation, int16 wrap-around."""
    rng = np.random.default_rng(5)
    sets = []
    for in_scale in np.geomspace(1e-4, 3.0, 24):
        for ratio in (1 / 128, 0.02, 0.3, 1.0, 4.0):
            x = _t(0, (1,), float(np.float32(in_scale)), int(rng.integers(-128, 128)))
            y = _t(1, (1,), float(np.float32(in_scale * ratio)), int(rng.integers(-128, 128)))
            try:
                sets.append(hard_swish_params(x, y))
            except ValueError:  # output scale below input / 128: refused like TFLM
                continue
    return sets


def test_hard_swish_table_equals_the_reference_kernel(build_dir: Path) -> None:
    """HARD_SWISH runs by table (tp_lut_s8, checked against TFLM above); the table equals the
    in-house reference kernel tp_hard_swish_s8 on every int8 value, over many quantizations."""
    lib = build_kernels(["tp_hard_swish_s8.c"], {}, build_dir)
    x = np.arange(-128, 128, dtype=np.int8)
    sets = _hard_swish_param_sets()
    assert len(sets) > 80 and len({p["reluish_exponent"] for p in sets}) > 6
    for params in sets:
        out = np.zeros(256, np.int8)
        status = lib.tp_hard_swish_s8(ctypes.byref(_HardSwishParams(**params)), 256,
                                      x.ctypes.data_as(ctypes.c_void_p),
                                      out.ctypes.data_as(ctypes.c_void_p))
        assert status == 0
        np.testing.assert_array_equal(hard_swish_table(params), out, err_msg=str(params))


# ---- generation-time arithmetic against numpy / by hand ------------------------------------


@pytest.mark.parametrize(("shape", "key"), [
    ((7, 8, 3), np.s_[1:-2, 2:-1, :]),
    ((5, 4, 6), np.s_[::-1, 1:, ::-2]),
    ((5, 4, 6), np.s_[-3:-1, :-1, :]),
    ((9, 2), np.s_[8:0:-3, :]),
])
def test_strided_slice_plan_selects_what_numpy_selects(shape: tuple[int, ...], key: Any) -> None:
    begin = [0 if s.start is None else s.start for s in key]
    end = [0 if s.stop is None else s.stop for s in key]
    masks = SliceMasks(begin=sum(1 << i for i, s in enumerate(key) if s.start is None),
                       end=sum(1 << i for i, s in enumerate(key) if s.stop is None))
    strides = [1 if s.step is None else s.step for s in key]
    start, step, count = strided_slice_plan(shape, begin, end, strides, masks)
    x = np.arange(int(np.prod(shape))).reshape((1,) * (4 - len(shape)) + shape)
    axes = [s + k * np.arange(c) for s, k, c in zip(start, step, count, strict=True)]
    np.testing.assert_array_equal(x[np.ix_(*axes)].reshape(-1),
                                  x[(slice(None),) * (4 - len(shape)) + key].reshape(-1))


def test_nearest_indices_repeat_for_integer_factors() -> None:
    assert nearest_indices(6, 3, False, True) == [0, 0, 1, 1, 2, 2]
    assert nearest_indices(5, 3, True, False) == [0, 1, 1, 2, 2]  # v * 0.5, half away from 0


# ---- refusals name the layer and what to do -----------------------------------------------


def _graph(opcode: str, options: dict[str, Any], *tensors: Tensor, outputs: int = 1
           ) -> tuple[Op, Graph]:
    ins = tuple(range(len(tensors) - outputs))
    outs = tuple(range(len(tensors) - outputs, len(tensors)))
    op = Op(0, opcode, ins, outs, options, name="layer_x")
    return op, Graph(tuple(tensors), (op,), (0,), outs)


def _t(index: int, shape: tuple[int, ...], scale: float = 0.1, zp: int = 0,
       data: Any = None, dtype: str = "int8") -> Tensor:
    quant = None if dtype == "int32" else Quant((scale,), (zp,))
    return Tensor(index, f"t{index}", shape, dtype, quant,
                  None if data is None else np.asarray(data))


REFUSALS = {
    "tile": (_graph("TILE", {}, _t(0, (1, 4, 1, 8)), _t(1, (4,), data=[1, 1, 2, 1],
                                                           dtype="int32"), _t(2, (1, 4, 2, 8))),
             r"layer 'layer_x': op TILE is not supported: TFLite Micro has no TILE kernel.*"
             r"UpSampling2D\(interpolation='bilinear'\)"),
    "tanh_output": (_graph("TANH", {}, _t(0, (8,)), _t(1, (8,), scale=0.02)),
                    r"layer 'layer_x': TANH expected output scale 1/128 and zero point 0"),
    "maximum_scales": (_graph("MAXIMUM", {}, _t(0, (8,)), _t(1, (8,), scale=0.2), _t(2, (8,))),
                       r"MAXIMUM is not supported: expected both inputs and the output quantized"),
    "resize_size": (_graph("RESIZE_BILINEAR", {}, _t(0, (1, 4, 4, 2)),
                           _t(1, (2,), data=[8, 6], dtype="int32"), _t(2, (1, 8, 8, 2))),
                    r"RESIZE_BILINEAR size \[8, 6\] does not match output \[1, 8, 8, 2\]"),
    "slice_ellipsis": (_graph("STRIDED_SLICE", {"ellipsis_mask": 1}, _t(0, (1, 4, 4, 2)),
                              _t(1, (4,), data=[0] * 4, dtype="int32"),
                              _t(2, (4,), data=[1, 2, 2, 2], dtype="int32"),
                              _t(3, (4,), data=[1] * 4, dtype="int32"), _t(4, (1, 2, 2, 2))),
                       r"STRIDED_SLICE with ellipsis_mask 1 is not supported"),
    "split_sizes": (_graph("SPLIT_V", {}, _t(0, (1, 4, 6)),
                           _t(1, (2,), data=[2, 2], dtype="int32"),
                           _t(2, (), data=-1, dtype="int32"), _t(3, (1, 4, 2)), _t(4, (1, 4, 2)),
                           outputs=2),
                    r"SPLIT_V outputs along axis 2 do not add up to 6"),
}


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusal_names_the_layer_and_the_reason(name: str) -> None:
    (op, graph), message = REFUSALS[name]
    with pytest.raises(UnsupportedError, match=message):
        handler_for(op).check(op, graph)


def test_relu6_with_a_new_output_scale_clamps_like_tflm_and_warns(
        lowered: dict[str, Lowered | Exception], caplog: pytest.LogCaptureFixture) -> None:
    """The converter gives a standalone ReLU6 its own output scale; TFLite Micro clamps the raw
    input anyway (the bit-exact rows above pass), and the build says so."""
    lw = lowered["relu6_r8"]
    assert isinstance(lw, Lowered)
    op = next(o for o in lw.graph.ops if o.opcode == "RELU6")
    x, y = lw.graph.tensor(op.inputs[0]), lw.graph.tensor(op.outputs[0])
    assert x.scale != y.scale  # the premise
    from op_harness import HostCtx

    with caplog.at_level("WARNING"):
        handler_for(op).lower(op, lw.graph, HostCtx("w", dict(lw.slots)))
    assert "RELU6 output scale" in caplog.text and "clamps without requantizing" in caplog.text


def test_softmax_refusal_says_why_and_what_to_do() -> None:
    """An untrained model's logits span almost nothing; the message says so and what to do."""
    tensors = (Tensor(0, "x", (1, 10), "int8", Quant((7.8e-9,), (0,))),
               Tensor(1, "y", (1, 10), "int8", Quant((1 / 256,), (-128,))))
    op = Op(0, "SOFTMAX", (0,), (1,), {"beta": 1.0}, name="predictions")
    with pytest.raises(UnsupportedError) as info:
        handler_for(op).check(op, Graph(tensors, (op,), (0,), (1,)))
    message = str(info.value)
    assert message.startswith("layer 'predictions': SOFTMAX beta * input scale = 7.8e-09 is too "
                              "small for int8 softmax")
    assert "span only 2e-06" in message  # 255 x the input scale
    assert "untrained model" in message and "--data with real samples" in message


# ---- the generated code builds for the board too -------------------------------------------


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                    reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
def test_generated_code_compiles_for_cortex_m7(lowered: dict[str, Lowered | Exception],
                                               build_dir: Path) -> None:
    src = build_dir / "ops_arm.c"
    src.write_text(cases_code(lowered))
    flags = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-mcpu=cortex-m7", "-mthumb",
             "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard", f"-I{RUNTIME / 'include'}", "-c"]
    for f in [src, *(RUNTIME / "kernels" / s for s in kernel_sources(lowered))]:
        res = subprocess.run(["arm-none-eabi-gcc", *flags, str(f), "-o", str(build_dir / "a.o")],
                             capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"{f.name}:\n{res.stderr}"
