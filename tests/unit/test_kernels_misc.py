"""Pooling, MEAN, ADD/MUL, SOFTMAX/LOGISTIC, PAD, CONCATENATION, QUANTIZE/DEQUANTIZE kernels.

Each case is a tiny Keras 3 model converted to full-int8 TFLite. The graph goes through the real
handlers (``check`` then ``lower``) and the real template fragments; the fragments of all cases
are compiled with the runtime kernels into one host library (portable and DSP builds), and its
outputs must equal the TFLite Micro interpreter's bit for bit on random inputs.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pytest
from kernel_host import (
    RUNTIME,
    Lowered,
    build_kernels,
    compile_fragments,
    lower_graph,
    run_lowered,
)

from tinyprune.errors import UnsupportedError
from tinyprune.ir import Graph, Op, Quant, Tensor, read_tflite
from tinyprune.kernels.base import handler_for
from tinyprune.kernels.elementwise import broadcast_dims
from tinyprune.kernels.reduce import mean_params

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
HEADERS = ("tp_nn_pool.h", "tp_nn_elementwise.h", "tp_nn_activation.h", "tp_nn_tensor.h")
SOURCES = (
    "tp_max_pool_s8.c",
    "tp_avg_pool_s8.c",
    "tp_mean_s8.c",
    "tp_add_s8.c",
    "tp_mul_s8.c",
    "tp_softmax_s8.c",
    "tp_logistic_s8.c",
    "tp_pad_s8.c",
    "tp_concat_s8.c",
    "tp_quantize_f32_s8.c",
    "tp_dequantize_s8_f32.c",
    "tp_requantize_s8.c",
)
SAMPLES = 6
ARM_FLAGS = (
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-mcpu=cortex-m7",
    "-mthumb",
    "-mfpu=fpv5-sp-d16",
    "-mfloat-abi=hard",
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # converter statistics notice


# ---- the case table -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One model: ``graph(keras)`` maps the inputs (named in0, in1, ...) to the output."""

    id: str
    graph: Callable[[Any], Callable[[Any], Any]]
    shapes: tuple[tuple[int, ...], ...]
    ops: str  # opcodes the converted model must contain (the premise of the case)
    rep: float = 2.0  # representative data uniform in [-rep, rep]: sets the input scales
    float_io: bool = False
    same_scale_mean: bool = False  # patch MEAN's output quantization to equal its input's

    def build(self, keras: Any) -> Any:
        ins = [keras.Input(s, name=f"in{i}") for i, s in enumerate(self.shapes)]
        return keras.Model(ins, self.graph(keras)(ins if len(ins) > 1 else ins[0]))


def _relu_add(k: Any) -> Callable[[Any], Any]:
    return lambda xs: k.layers.ReLU()(k.layers.Add()(xs))


def _sigmoid_concat(k: Any, axis: int = -1) -> Callable[[Any], Any]:
    """in0, sigmoid(in1)[, in2] concatenated: the sigmoid's fixed 1/256 scale needs a requantize."""
    sigmoid = k.layers.Activation("sigmoid")
    return lambda xs: k.layers.Concatenate(axis)([xs[0], sigmoid(xs[1]), *xs[2:]])


def _lambda(fn: Callable[[Any, Any], Any]) -> Callable[[Any], Callable[[Any], Any]]:
    return lambda k: k.layers.Lambda(lambda t: fn(k, t))


def L(name: str, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """One Keras layer, built from the keras module at conversion time."""
    return lambda k: getattr(k.layers, name)(*args, **kwargs)


SIGMOID = L("Activation", "sigmoid")
_BIAS = np.linspace(-1.5, 2.0, 5).astype(np.float32)

# fmt: off
CASES = [
    Case("max_2x2_valid", L("MaxPooling2D", 2), ((8, 8, 6),), "MAX_POOL_2D"),
    Case("max_3x3s2_same", L("MaxPooling2D", 3, 2, "same"), ((7, 7, 5),), "MAX_POOL_2D"),
    Case("max_3x2s1_same", L("MaxPooling2D", (3, 2), 1, "same"), ((5, 6, 8),), "MAX_POOL_2D"),
    Case("maxpool1d", L("MaxPooling1D", 2), ((9, 4),), "EXPAND_DIMS MAX_POOL_2D"),
    Case("avg_2x2_valid", L("AveragePooling2D", 2), ((6, 6, 3),), "AVERAGE_POOL_2D"),
    Case("avg_3x3s2_same", L("AveragePooling2D", 3, 2, "same"), ((7, 7, 4),), "AVERAGE_POOL_2D"),
    Case("avg_2x3s1_same", L("AveragePooling2D", (2, 3), 1, "same"), ((5, 5, 7),),
         "AVERAGE_POOL_2D"),
    Case("gap2d", L("GlobalAveragePooling2D"), ((6, 6, 4),), "MEAN"),
    Case("gap2d_keepdims", L("GlobalAveragePooling2D", keepdims=True), ((5, 7, 9),), "MEAN"),
    Case("gap1d", L("GlobalAveragePooling1D"), ((10, 6),), "MEAN"),
    Case("gap2d_same_q", L("GlobalAveragePooling2D"), ((6, 6, 4),), "MEAN", same_scale_mean=True),
    Case("mean_channels", _lambda(lambda k, t: k.ops.mean(t, axis=-1)), ((4, 5, 6),), "MEAN"),
    Case("add_same", L("Add"), ((4, 4, 3), (4, 4, 3)), "ADD"),
    Case("add_channel", L("Add"), ((4, 5, 6), (6,)), "ADD"),
    Case("add_rows", L("Add"), ((5, 6), (1, 6)), "ADD"),
    Case("add_relu", _relu_add, ((3, 3, 8), (3, 3, 8)), "ADD"),
    Case("add_const", _lambda(lambda k, t: t + _BIAS), ((4, 4, 5),), "ADD"),
    Case("mul_same", L("Multiply"), ((4, 4, 3), (4, 4, 3)), "MUL"),
    Case("mul_channel", L("Multiply"), ((3, 4, 5), (5,)), "MUL"),
    Case("mul_spatial", L("Multiply"), ((3, 4, 5), (3, 4, 1)), "MUL"),
    Case("mul_scalar_const", _lambda(lambda k, t: t * 3.0), ((4, 4, 5),), "MUL"),
    Case("softmax10_r1", L("Softmax"), ((10,),), "SOFTMAX", rep=1.0),
    Case("softmax10_r8", L("Softmax"), ((10,),), "SOFTMAX", rep=8.0),
    Case("softmax12_r40", L("Softmax"), ((12,),), "SOFTMAX", rep=40.0),
    Case("softmax12_rows", L("Softmax"), ((3, 12),), "SOFTMAX", rep=4.0),
    Case("logistic_r2", SIGMOID, ((3, 7),), "LOGISTIC"),
    Case("logistic_r12", SIGMOID, ((256,),), "LOGISTIC", rep=12.0),
    Case("logistic_r40", SIGMOID, ((256,),), "LOGISTIC", rep=40.0),
    Case("pad_1", L("ZeroPadding2D", 1), ((5, 5, 3),), "PAD"),
    Case("pad_asym_2", L("ZeroPadding2D", ((1, 2), (2, 0))), ((4, 3, 2),), "PAD"),
    Case("pad1d_2", L("ZeroPadding1D", 2), ((6, 3),), "PAD"),
    Case("concat_same_scale", L("Concatenate"), ((4, 4, 3), (4, 4, 5)), "CONCATENATION"),
    Case("concat3_requant", _sigmoid_concat, ((4, 4, 3), (4, 4, 2), (4, 4, 5)),
         "CONCATENATION QUANTIZE"),
    Case("concat_axis1", lambda k: _sigmoid_concat(k, 1), ((3, 4), (5, 4)),
         "CONCATENATION QUANTIZE"),
    Case("quant_dequant_maxpool", L("MaxPooling2D", 2), ((4, 4, 3),),
         "QUANTIZE MAX_POOL_2D DEQUANTIZE", float_io=True),
    Case("quant_dequant_softmax", L("Softmax"), ((10,),),
         "QUANTIZE SOFTMAX DEQUANTIZE", rep=5.0, float_io=True),
]
# fmt: on


# ---- conversion, oracle, lowering ----------------------------------------------------------


def _convert(case: Case) -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = case.build(keras)
    rng = np.random.default_rng(1)

    def rep() -> Any:
        for _ in range(24):
            yield {
                f"in{i}": rng.uniform(-case.rep, case.rep, (1, *s)).astype(np.float32)
                for i, s in enumerate(case.shapes)
            }

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not case.float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    buf = conv.convert()
    return _same_scale_mean(buf) if case.same_scale_mean else buf


def _same_scale_mean(buf: bytes) -> bytes:
    """Gives every MEAN output its input's quantization, so TFLM takes its non-requantizing path."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    sub = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    for op in sub.operators:
        if codes[op.opcodeIndex] == schema.BuiltinOperator.MEAN:
            src, dst = (
                sub.tensors[op.inputs[0]].quantization,
                sub.tensors[op.outputs[0]].quantization,
            )
            dst.scale, dst.zeroPoint = np.array(src.scale), np.array(src.zeroPoint)
    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _lower(case: Case, env: jinja2.Environment) -> Lowered:
    buf = _convert(case)
    graph = read_tflite(buf)
    opcodes = [op.opcode for op in graph.ops]
    assert all(o in opcodes for o in case.ops.split()), f"{case.id}: converter gave {opcodes}"
    return lower_graph(f"tp_case_{case.id}", buf, graph, env)


def _compile(code: str, dsp: int, cache: Path) -> ctypes.CDLL:
    return compile_fragments(code, dsp, cache, SOURCES)


@pytest.fixture(scope="session")
def lowered() -> dict[str, Lowered | Exception]:
    from tinyprune.firmware.paths import template_environment

    env = template_environment()
    out: dict[str, Lowered | Exception] = {}
    for case in CASES:
        try:
            out[case.id] = _lower(case, env)
        except Exception as exc:
            out[case.id] = exc
    return out


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("misc_kernels")


@pytest.fixture(scope="session", params=[0, 1], ids=["portable", "dsp"])
def host_lib(
    request: pytest.FixtureRequest, lowered: dict[str, Lowered | Exception], build_dir: Path
) -> ctypes.CDLL:
    headers = "".join(f'#include "{h}"\n' for h in HEADERS)
    code = headers + "\n".join(v.c_code for v in lowered.values() if isinstance(v, Lowered))
    return _compile(code, request.param, build_dir)


# ---- inputs and the two runs ---------------------------------------------------------------


def _float_edges(scale: float, size: int, rng: np.random.Generator) -> np.ndarray:
    """Halfway points, zeros, saturating values and random values around the quantized range."""
    k = rng.integers(-140, 140, size)
    halves = ((k + 0.5) * scale).astype(np.float32)
    rand = rng.uniform(-200 * scale, 200 * scale, size).astype(np.float32)
    edges = np.array([0.0, -0.0, 1e6, -1e6, 127.5 * scale, -128.5 * scale], np.float32)
    out = np.where(rng.random(size) < 0.5, halves, rand)
    out[: min(size, edges.size)] = edges[: min(size, edges.size)]
    return out


def _inputs(lw: Lowered, sample: int) -> list[np.ndarray]:
    """Sample 0 walks every int8 value (each input rotated differently); the others are random."""
    rng = np.random.default_rng(100 + sample)
    arrays = []
    for k, i in enumerate(lw.graph.inputs):
        t = lw.graph.tensor(i)
        if t.dtype == "int8" and sample == 0:
            every = np.roll(np.arange(-128, 128, dtype=np.int8), 37 * k)
            arrays.append(np.resize(every, t.size).reshape(t.shape))
        elif t.dtype == "int8":
            arrays.append(rng.integers(-128, 128, t.shape, dtype=np.int8))
        else:
            q = next(lw.graph.tensor(o.outputs[0]) for o in lw.graph.ops if o.inputs[0] == i)
            arrays.append(_float_edges(q.scale, t.size, rng).reshape(t.shape))
    return arrays


def _oracle(lw: Lowered, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(lw.tflite)
    for i, x in enumerate(inputs):
        interp.set_input(x, i)
    interp.invoke()
    return [np.asarray(interp.get_output(i)) for i in range(len(lw.graph.outputs))]


def _ours(lw: Lowered, lib: ctypes.CDLL, inputs: list[np.ndarray]) -> list[np.ndarray]:
    return run_lowered(lw, lib, inputs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bit_exact_with_tflite_micro(
    case: Case, lowered: dict[str, Lowered | Exception], host_lib: ctypes.CDLL
) -> None:
    lw = lowered[case.id]
    if isinstance(lw, Exception):
        raise lw
    for sample in range(SAMPLES):
        inputs = _inputs(lw, sample)
        expected, got = _oracle(lw, inputs), _ours(lw, host_lib, inputs)
        for e, g in zip(expected, got, strict=True):
            assert e.dtype == g.dtype and e.shape == g.shape
            if g.dtype == np.float32:
                np.testing.assert_array_equal(g.view(np.uint32), e.view(np.uint32))
            else:
                diff = np.flatnonzero(g != e)
                assert diff.size == 0, (
                    f"sample {sample}: {diff.size} mismatches, first at {diff[0]}: "
                    f"ours {g.reshape(-1)[diff[0]]}, tflm {e.reshape(-1)[diff[0]]}"
                )


def test_gap_output_scale_differs_from_input(lowered: dict[str, Lowered | Exception]) -> None:
    """The premise of the MEAN cases: TF 2.21 gives GlobalAveragePooling a new output scale."""
    lw = lowered["gap2d"]
    assert isinstance(lw, Lowered)
    op = next(o for o in lw.graph.ops if o.opcode == "MEAN")
    assert lw.graph.tensor(op.inputs[0]).scale != lw.graph.tensor(op.outputs[0]).scale


def test_concat_requantizes_only_differing_inputs(lowered: dict[str, Lowered | Exception]) -> None:
    lw = lowered["concat3_requant"]
    assert isinstance(lw, Lowered)
    kernels = [c.kernel for c in lw.calls if not c.alias]
    assert "tp_requantize_s8" in kernels  # the converter's QUANTIZE int8 -> int8
    concat = next(c for c in lw.calls if c.kernel == "tp_concat_s8")
    assert [(i["multiplier"], i["shift"]) for i in concat.params["inputs"]] == [(1 << 30, 1)] * 3


# ---- parameter functions and errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "out", "expected"),
    [
        (
            (1, 8, 8, 16),
            (1, 8, 8, 16),
            (1, 8, 8, 16),
            ((1, 1, 1, 1024), (1, 1, 1, 1024), (1, 1, 1, 1024)),
        ),
        (
            (1, 8, 8, 16),
            (1, 1, 1, 16),
            (1, 8, 8, 16),
            ((1, 1, 64, 16), (1, 1, 1, 16), (1, 1, 64, 16)),
        ),
        ((1, 8, 8, 16), (), (1, 8, 8, 16), ((1, 1, 1, 1024), (1, 1, 1, 1), (1, 1, 1, 1024))),
        ((2, 1, 3), (1, 4, 1), (2, 4, 3), ((1, 2, 1, 3), (1, 1, 4, 1), (1, 2, 4, 3))),
    ],
)
def test_broadcast_dims(a: tuple, b: tuple, out: tuple, expected: tuple) -> None:
    assert broadcast_dims(a, b, out) == expected


@pytest.mark.parametrize(
    ("a", "b", "out"), [((3,), (4,), (4,)), ((2, 1, 2, 1, 2), (1, 2, 1, 2, 1), (2, 2, 2, 2, 2))]
)
def test_broadcast_dims_rejects(a: tuple, b: tuple, out: tuple) -> None:
    with pytest.raises(ValueError, match="broadcast"):
        broadcast_dims(a, b, out)


def test_mean_multiplier_folds_count() -> None:
    p = mean_params(0.02, 3, 0.01, -5, 36)  # real 2.0 -> (2^30, 2); count 36 -> adjust 5
    assert (p["multiplier"], p["shift"], p["input_offset"]) == ((1 << 35) // 36, 2 - 5, -3)


def _mean_graph(axes: list[int]) -> tuple[Op, Graph]:
    q = Quant((0.1,), (0,))
    tensors = (
        Tensor(0, "x", (1, 4, 4, 8), "int8", q),
        Tensor(1, "axes", (len(axes),), "int32", None, np.array(axes, np.int32)),
        Tensor(2, "y", (1, 4), "int8", q),
    )
    op = Op(0, "MEAN", (0, 1), (2,), {"keep_dims": False}, name="gap")
    return op, Graph(tensors, (op,), (0,), (2,))


@pytest.mark.parametrize(
    ("axes", "message"),
    [
        (
            [1, 3],
            r"layer 'gap': MEAN over axis \[1, 3\] is not supported; supported: one contiguous",
        ),
        ([5], r"layer 'gap': MEAN over axes \[5\] is not supported"),
    ],
)
def test_mean_check_names_layer_and_reason(axes: list[int], message: str) -> None:
    op, graph = _mean_graph(axes)
    with pytest.raises(UnsupportedError, match=message):
        handler_for(op).check(op, graph)


def test_softmax_check_rejects_wrong_output_quantization() -> None:
    tensors = (
        Tensor(0, "x", (1, 10), "int8", Quant((0.1,), (0,))),
        Tensor(1, "y", (1, 10), "int8", Quant((0.1,), (0,))),
    )
    op = Op(0, "SOFTMAX", (0,), (1,), {"beta": 1.0}, name="probs")
    with pytest.raises(UnsupportedError, match="layer 'probs': SOFTMAX expects output scale 1/256"):
        handler_for(op).check(op, Graph(tensors, (op,), (0,), (1,)))


# ---- concatenation of inputs quantized unlike the output (no TFLM oracle: TFLM refuses) ------


class _Requant(ctypes.Structure):
    _fields_ = [
        ("multiplier", ctypes.c_int32),
        ("shift", ctypes.c_int32),
        ("input_offset", ctypes.c_int32),
        ("output_offset", ctypes.c_int32),
    ]


class _ConcatInput(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("row", ctypes.c_int32), ("quant", _Requant)]


class _ConcatParams(ctypes.Structure):
    _fields_ = [("outer", ctypes.c_int32), ("output_row", ctypes.c_int32)]


def test_concat_requantizes_like_tp_requantize(build_dir: Path) -> None:
    """Each input's slice equals tp_requantize_s8 of that input (validated against TFLM above)."""
    from tinyprune.kernels.tensor import requant_params

    lib = build_kernels(["tp_concat_s8.c", "tp_requantize_s8.c"], {}, build_dir)
    rng = np.random.default_rng(7)
    outer, rows = 3, (8, 5, 6)
    quants = [
        requant_params(0.05, 3, 0.02, -4),
        requant_params(0.02, -4, 0.02, -4),
        requant_params(0.01, -128, 0.02, -4),
    ]
    data = [rng.integers(-128, 128, outer * r, dtype=np.int8) for r in rows]
    ins = (_ConcatInput * 3)(
        *(
            _ConcatInput(d.ctypes.data, r, _Requant(**q))
            for d, r, q in zip(data, rows, quants, strict=True)
        )
    )
    out = np.zeros(outer * sum(rows), np.int8)
    status = lib.tp_concat_s8(
        ctypes.byref(_ConcatParams(outer, sum(rows))), ins, 3, out.ctypes.data_as(ctypes.c_void_p)
    )
    assert status == 0
    expected = []
    for d, r, q in zip(data, rows, quants, strict=True):
        ref = np.zeros_like(d)
        assert (
            lib.tp_requantize_s8(
                ctypes.byref(_Requant(**q)),
                d.size,
                d.ctypes.data_as(ctypes.c_void_p),
                ref.ctypes.data_as(ctypes.c_void_p),
            )
            == 0
        )
        expected.append(ref.reshape(outer, r))
    np.testing.assert_array_equal(out.reshape(outer, -1), np.concatenate(expected, axis=1))
    assert (quants[1]["multiplier"], quants[1]["shift"]) == (1 << 30, 1)  # identity: copied
    assert not np.array_equal(expected[0].reshape(-1), data[0])  # and the others really changed


@pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None,
    reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)",
)
def test_generated_code_compiles_for_cortex_m7(
    lowered: dict[str, Lowered | Exception], build_dir: Path
) -> None:
    headers = "".join(f'#include "{h}"\n' for h in HEADERS)
    src = build_dir / "misc_arm.c"
    src.write_text(
        headers + "\n".join(v.c_code for v in lowered.values() if isinstance(v, Lowered))
    )
    for f in [src, *(RUNTIME / "kernels" / s for s in SOURCES)]:
        res = subprocess.run(
            [
                "arm-none-eabi-gcc",
                *ARM_FLAGS,
                f"-I{RUNTIME / 'include'}",
                "-c",
                str(f),
                "-o",
                str(build_dir / "arm.o"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert res.returncode == 0, f"{f.name}:\n{res.stderr}"
