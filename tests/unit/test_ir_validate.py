"""The reader's rules (tinyprune/ir/validate.py), one case per rule on the official KWS model.

Each case changes one field of the flatbuffer through the schema's object API and checks that
the reader refuses it with a one-line UsageError naming the file, the tensor or op and the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tflite_builder import TensorSpec, single_op

from tinyprune import verify
from tinyprune.errors import UsageError
from tinyprune.ir import Graph, Op, Tensor, fold_constants, read_tflite
from tinyprune.ir.validate import MAX_FILE_BYTES
from tinyprune.models.tflite_file import check_tflite

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mlperf_tiny"
KWS = FIXTURES / "kws_ref_model.tflite"
NAME = "models/kws.tflite"


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def mutated(base: Path, change: Callable[[Any], None]) -> bytes:
    import flatbuffers

    s = _schema()
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(base.read_bytes(), 0))
    change(model)
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _sub(m: Any) -> Any:
    return m.subgraphs[0]


def _t(m: Any, i: int) -> Any:
    return _sub(m).tensors[i]


def _op(m: Any, i: int) -> Any:
    return _sub(m).operators[i]


def _set(obj: Any, **fields: Any) -> None:
    for k, value in fields.items():
        setattr(obj, k, value)


def _swap_first_ops(m: Any) -> None:
    ops = _sub(m).operators
    ops[0], ops[1] = ops[1], ops[0]


def _add_subgraph(m: Any) -> None:
    m.subgraphs.append(m.subgraphs[0])


def _sparse(m: Any) -> None:
    _t(m, 17).sparsity = _schema().SparsityParametersT()


def _scale(value: float) -> Callable[[Any], None]:
    return lambda m: _set(_t(m, 0).quantization, scale=np.array([value], np.float32))


def _copy_output(m: Any) -> None:
    _op(m, 1).outputs = list(_op(m, 0).outputs)


# kws_ref_model: tensor 0 'input_1' (int8 [1, 49, 10, 1]); tensor 17 conv filter (int8, 64
# per-channel scales on axis 0); op 0 CONV_2D (0, 17, 3) -> 22, op 1 DEPTHWISE_CONV_2D, op 12
# SOFTMAX; 35 tensors, 37 buffers, 6 operator codes.
CASES: dict[str, tuple[Callable[[Any], None], tuple[str, ...]]] = {
    "nan scale": (_scale(math.nan), ("tensor 0 'input_1'", "scale[0]", "finite positive", "nan")),
    "zero scale": (_scale(0.0), ("tensor 0 'input_1'", "scale[0]", "received 0.0")),
    "negative scale": (_scale(-0.5), ("scale[0]", "received -0.5")),
    "infinite scale": (_scale(math.inf), ("scale[0]", "received inf")),
    "tiny scale": (_scale(1e-38), ("scale[0]", "[1e-30, 1e+30]", "received 1e-38")),
    "huge scale": (_scale(3e38), ("scale[0]", "[1e-30, 1e+30]", "received 3e+38")),
    "zero point out of int8 range": (
        lambda m: _set(_t(m, 0).quantization, zeroPoint=np.array([128])),
        ("tensor 0 'input_1'", "zero_point[0]", "[-128, 127]", "received 128")),
    "zero points missing": (
        lambda m: _set(_t(m, 0).quantization, zeroPoint=None),
        ("tensor 0", "zero_point", "expected 1 value", "received none")),
    "zero point count": (
        lambda m: _set(_t(m, 17).quantization, zeroPoint=np.zeros(3, np.int64)),
        ("tensor 17", "zero_point", "64 values (or 1)", "received 3")),
    "scales do not match the channels": (
        lambda m: _set(_t(m, 17).quantization, scale=np.ones(3, np.float32),
                       zeroPoint=np.zeros(3, np.int64)),
        ("tensor 17", "quantized_dimension", "with 3 channels", "received 0")),
    "quantized axis out of range": (
        lambda m: _set(_t(m, 17).quantization, quantizedDimension=7),
        ("tensor 17", "quantized_dimension", "received 7")),
    "huge dimension": (lambda m: _set(_t(m, 0), shape=[1, 2**30, 10, 1]),
                       ("tensor 0", "shape", "at most 16,777,216 bytes", "10,737,418,240 bytes")),
    "dimensions whose product overflows int32": (
        lambda m: _set(_t(m, 0), shape=[65536] * 4), ("tensor 0", "shape", "bytes per tensor")),
    "zero dimension": (lambda m: _set(_t(m, 0), shape=[1, 0, 10, 1]),
                       ("tensor 0", "shape", "positive dimensions", "[1, 0, 10, 1]")),
    "negative dimension": (lambda m: _set(_t(m, 0), shape=[1, -1, 10, 1]),
                           ("tensor 0", "positive dimensions", "[1, -1, 10, 1]")),
    "rank 7": (lambda m: _set(_t(m, 0), shape=[1] * 3 + [1, 49, 10, 1]),
               ("tensor 0", "shape", "at most 6 dimensions")),
    "unsupported type": (lambda m: _set(_t(m, 17), type=1),
                         ("tensor 17", "type", "received float16", "full-integer int8")),
    "buffer index out of range": (lambda m: _set(_t(m, 17), buffer=37),
                                  ("tensor 17", "buffer", "below 37", "received 37")),
    "buffer shorter than the shape": (
        lambda m: _set(m.buffers[_t(m, 17).buffer], data=np.zeros(5, np.uint8)),
        ("tensor 17", "buffer data", "2,560 bytes for [64, 10, 4, 1] of int8", "received 5")),
    "external buffer": (
        lambda m: _set(m.buffers[_t(m, 17).buffer], data=None, offset=4096, size=640),
        ("tensor 17", "buffer", "data inside the flatbuffer")),
    "sparse tensor": (_sparse, ("tensor 17", "sparsity", "dense")),
    "variable tensor": (lambda m: _set(_t(m, 22), isVariable=True),
                        ("tensor 22", "is_variable")),
    "op input out of range": (lambda m: _set(_op(m, 0), inputs=[0, 99, 3]),
                              ("op 0 (CONV_2D)", "inputs[1]", "below 35", "received 99")),
    "op output out of range": (lambda m: _set(_op(m, 0), outputs=[-1]),
                               ("op 0 (CONV_2D)", "outputs[0]", "received -1")),
    "opcode index out of range": (lambda m: _set(_op(m, 0), opcodeIndex=6),
                                  ("op 0", "opcode_index", "below 6", "received 6")),
    "unknown builtin code": (lambda m: _set(m.operatorCodes[0], builtinCode=900),
                             ("operator code 0", "builtin_code", "received 900")),
    "required input absent": (lambda m: _set(_op(m, 0), inputs=[0, -1, 3]),
                              ("op 0", "(CONV_2D)", "input 1", "required", "none (-1)")),
    "optional bias absent is fine, too many inputs is not": (
        lambda m: _set(_op(m, 0), inputs=[0, 17, 3, 3]),
        ("(CONV_2D)", "inputs", "2 to 3 inputs", "received 4")),
    "op without inputs": (lambda m: _set(_op(m, 12), inputs=[]),
                          ("(SOFTMAX)", "inputs", "expected 1 input", "received 0")),
    "op without outputs": (lambda m: _set(_op(m, 12), outputs=[]),
                           ("op 12 (SOFTMAX)", "outputs", "at least 1 output")),
    "two outputs": (lambda m: _set(_op(m, 12), outputs=[34, 22]),
                    ("(SOFTMAX)", "outputs", "expected 1 output", "received 2")),
    "wrong rank": (lambda m: _set(_t(m, 17), shape=[64, 40]),
                   ("(CONV_2D)", "input 1 shape", "4 dimensions", "[64, 40]")),
    "element-wise output of another shape": (
        lambda m: _set(_t(m, 34), shape=[65536, 12]),
        ("op 12 'op12_softmax' (SOFTMAX)", "output 0 shape", "[1, 12] (the input's shape)",
         "received [65536, 12]")),
    "StableHLO options": (
        lambda m: _set(_op(m, 0), builtinOptions2Type=1,
                       builtinOptions2=_schema().StablehloConcatenateOptionsT()),
        ("op 0", "builtin_options_2", "StableHLO ops are not supported")),
    "resource variable options": (
        lambda m: _set(_op(m, 0), builtinOptionsType=_schema().BuiltinOptions.VarHandleOptions,
                       builtinOptions=_schema().VarHandleOptionsT()),
        ("op 0", "VarHandleOptions", "stateful models")),
    "options of another op": (
        lambda m: _set(_op(m, 0), builtinOptionsType=5,
                       builtinOptions=_schema().Pool2DOptionsT()),
        ("(CONV_2D)", "builtin options", "Conv2DOptions", "received Pool2DOptions")),
    "required options absent": (lambda m: _set(_op(m, 0), builtinOptionsType=0,
                                               builtinOptions=None),
                                ("(CONV_2D)", "builtin options", "received none")),
    "padding out of range": (lambda m: _set(_op(m, 0).builtinOptions, padding=7),
                             ("(CONV_2D)", "padding", "SAME, VALID", "received 7")),
    "fused activation out of range": (
        lambda m: _set(_op(m, 0).builtinOptions, fusedActivationFunction=99),
        ("(CONV_2D)", "fused_activation_function", "received 99")),
    "quantized bias type out of range": (
        lambda m: _set(_op(m, 11).builtinOptions, quantizedBiasType=-2),
        ("op 11", "(FULLY_CONNECTED)", "quantized_bias_type", "INT32", "received -2")),
    "conv quantized bias type out of range": (
        lambda m: _set(_op(m, 0).builtinOptions, quantizedBiasType=127),
        ("(CONV_2D)", "quantized_bias_type", "received 127")),
    "zero stride": (lambda m: _set(_op(m, 0).builtinOptions, strideW=0),
                    ("(CONV_2D)", "stride_w", "[1, 32767]", "received 0")),
    "stride beyond int16": (lambda m: _set(_op(m, 0).builtinOptions, strideH=32768),
                            ("(CONV_2D)", "stride_h", "[1, 32767]", "received 32768")),
    "dilated filter wider than int16": (
        lambda m: _set(_op(m, 1).builtinOptions, dilationWFactor=16384),
        ("op 1", "(DEPTHWISE_CONV_2D)", "dilation_w_factor", "at most 32767 wide",
         "16384 (filter 3: 32769)")),
    "huge dilation": (lambda m: _set(_op(m, 1).builtinOptions, dilationHFactor=2**31 - 1),
                      ("(DEPTHWISE_CONV_2D)", "dilation_h_factor", "received 2147483647")),
    "softmax beta": (lambda m: _set(_op(m, 12).builtinOptions, beta=math.nan),
                     ("(SOFTMAX)", "beta", "finite positive")),
    "ops out of order": (_swap_first_ops,
                         ("op 0", "(DEPTHWISE_CONV_2D)", "input 0", "computed by no earlier op")),
    "output computed twice": (_copy_output, ("op 1", "output", "computed twice")),
    "graph output computed by no op": (lambda m: _set(_sub(m), outputs=[23, 5]),
                                       ("tensor 5", "graph output", "computed by no op")),
    "graph input is a constant": (lambda m: _set(_sub(m), inputs=[17]),
                                  ("tensor 17", "graph input", "a constant")),
    "no graph input": (lambda m: _set(_sub(m), inputs=[]),
                       ("subgraph", "inputs", "at least one")),
    "no subgraph": (lambda m: _set(m, subgraphs=[]), ("subgraphs", "exactly 1", "received 0")),
    "two subgraphs": (_add_subgraph, ("subgraphs", "received 2", "control flow")),
    "schema version": (lambda m: _set(m, version=4), ("schema version", "expected 3")),
    "metadata buffer out of range": (lambda m: _set(m.metadata[0], buffer=500),
                                     ("metadata 0", "buffer", "received 500")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rule_refuses_with_file_item_and_field(case: str) -> None:
    change, fragments = CASES[case]
    data = mutated(KWS, change)
    with pytest.raises(UsageError) as info:
        read_tflite(data, name=NAME)
    message = str(info.value)
    assert message.startswith(f"{NAME}: ")
    assert "\n" not in message and "<tflite bytes>" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_official_models_pass_every_rule() -> None:
    for path in sorted(FIXTURES.glob("*.tflite")):
        graph = read_tflite(path)
        assert graph.ops and graph.source == path


def test_absent_optional_bias_is_accepted() -> None:
    graph = read_tflite(mutated(KWS, lambda m: _set(_op(m, 0), inputs=[0, 17, -1])), name=NAME)
    assert graph.ops[0].inputs == (0, 17, -1)


def test_one_zero_point_is_broadcast_to_every_channel() -> None:
    data = mutated(KWS, lambda m: _set(_t(m, 17).quantization, zeroPoint=np.zeros(1, np.int64)))
    quant = read_tflite(data, name=NAME).tensor(17).quant
    assert quant is not None and quant.zero_point == (0,) * 64 and len(quant.scale) == 64


def test_bytes_without_a_name_never_say_tflite_bytes() -> None:
    with pytest.raises(UsageError, match=r"^the \.tflite model: .*scale\[0\]"):
        read_tflite(mutated(KWS, _scale(math.nan)))


def test_the_loader_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.tflite"
    data = mutated(KWS, lambda m: _set(_op(m, 0), inputs=[0, 17, 99]))
    path.write_bytes(data)
    with pytest.raises(UsageError, match=rf"^{path}: op 0 \(CONV_2D\): inputs\[2\]"):
        check_tflite(path, data)


def test_the_loader_wants_per_tensor_quantized_inputs(tmp_path: Path) -> None:
    path = tmp_path / "q.tflite"
    data = mutated(KWS, lambda m: _set(_t(m, 0), quantization=None))
    with pytest.raises(UsageError, match=r"input tensor 0 'input_1': quantization: expected one"):
        check_tflite(path, data)


def test_file_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "huge.tflite"
    with path.open("wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(UsageError, match=r"file size: expected at most 67,108,864 bytes"):
        read_tflite(path)


def _shared_tensor_model(entries: int, name_bytes: int) -> bytes:
    """A flatbuffer whose tensor vector points ``entries`` times at one tensor table (the object
    API would unpack, and copy the name of, each entry)."""
    import flatbuffers

    s = _schema()
    b = flatbuffers.Builder(0)
    name = b.CreateString("x" * name_bytes)
    s.TensorStartShapeVector(b, 1)
    b.PrependInt32(1)
    shape = b.EndVector()
    s.TensorStart(b)
    s.TensorAddName(b, name)
    s.TensorAddShape(b, shape)
    s.TensorAddType(b, 9)
    tensor = s.TensorEnd(b)
    s.SubGraphStartTensorsVector(b, entries)
    for _ in range(entries):
        b.PrependUOffsetTRelative(tensor)
    tensors = b.EndVector()
    s.SubGraphStart(b)
    s.SubGraphAddTensors(b, tensors)
    sub = s.SubGraphEnd(b)
    s.ModelStartSubgraphsVector(b, 1)
    b.PrependUOffsetTRelative(sub)
    subs = b.EndVector()
    s.ModelStart(b)
    s.ModelAddVersion(b, 3)
    s.ModelAddSubgraphs(b, subs)
    b.Finish(s.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_shared_names_are_not_unpacked_without_bound() -> None:
    data = _shared_tensor_model(1000, 100_000)  # 100 KB that would unpack 100 MB of names
    assert len(data) < 110_000
    with pytest.raises(UsageError, match=r"names: expected at most .* \(names shared between"):
        read_tflite(data, name=NAME)


def test_tensor_count_bound() -> None:
    with pytest.raises(UsageError, match=r"model: tensors: expected at most 65,536, received "
                                         r"70,000"):
        read_tflite(_shared_tensor_model(70_000, 1), name=NAME)


def _big_shared_constants(m: Any) -> None:
    """Five constant tensors of 16 MiB on one buffer: 80 MiB of tensors in a 16 MiB file."""
    import copy

    m.buffers.append(_schema().BufferT())
    m.buffers[-1].data = np.zeros(1 << 24, np.uint8)
    for _ in range(5):
        t = copy.deepcopy(_t(m, 17))
        t.shape, t.buffer, t.quantization = [4096, 4096], len(m.buffers) - 1, None
        _sub(m).tensors.append(t)


def test_total_tensor_bytes_bound() -> None:
    with pytest.raises(UsageError, match=r"model: tensors: expected at most 67,108,864 bytes in "
                                         r"all, received 67,[0-9,]+"):
        read_tflite(mutated(KWS, _big_shared_constants), name=NAME)


def _graph(ops: list[Op], tensors: list[Tensor]) -> Graph:
    return Graph(tensors=tuple(tensors), ops=tuple(ops), inputs=(), outputs=(),
                 source=Path("m.tflite"))


def _const(index: int, values: list[int]) -> Tensor:
    return Tensor(index, f"c{index}", (len(values),), "int32",
                  data=np.array(values, dtype=np.int32))


def test_fold_refuses_a_zero_stride() -> None:
    tensors = [_const(0, [1, 2, 3, 4]), _const(1, [0]), _const(2, [4]), _const(3, [0]),
               Tensor(4, "y", (4,), "int32")]
    op = Op(0, "STRIDED_SLICE", (0, 1, 2, 3), (4,), {}, name="slice")
    with pytest.raises(UsageError, match=r"^m\.tflite: op 0 'slice' \(STRIDED_SLICE\): cannot "
                                         r"be evaluated on its constant inputs"):
        fold_constants(_graph([op], tensors))


def test_fold_refuses_a_value_that_does_not_fit_the_output() -> None:
    tensors = [_const(0, [1, 2, 3]), _const(1, [4, 5, 6]), Tensor(2, "y", (2,), "int32")]
    op = Op(0, "ADD", (0, 1), (2,), {}, name="add")
    with pytest.raises(UsageError, match=r"op 0 'add' \(ADD\): output: expected 2 values"):
        fold_constants(_graph([op], tensors))


def test_fold_still_folds() -> None:
    tensors = [_const(0, [1, 2, 3]), _const(1, [4, 5, 6]), Tensor(2, "y", (3,), "int32")]
    folded = fold_constants(_graph([Op(0, "ADD", (0, 1), (2,), {}, name="add")], tensors))
    assert not folded.ops and folded.tensor(2).data is not None
    assert folded.tensor(2).data.tolist() == [5, 7, 9]


def test_mean_output_must_hold_the_reduced_values() -> None:
    """A MEAN whose output is smaller than what it computes would write past it in the arena."""
    from tinyprune.errors import UnsupportedError
    from tinyprune.ir import Quant
    from tinyprune.kernels.reduce import MeanHandler

    q = Quant(scale=(0.1,), zero_point=(0,))
    x = Tensor(0, "x", (1, 4, 4, 8), "int8", quant=q)
    axes = Tensor(1, "axes", (2,), "int32", data=np.array([1, 2], np.int32))
    for shape, ok in (((1, 8), True), ((1, 1, 1, 8), True), ((1, 4), False)):
        y = Tensor(2, "y", shape, "int8", quant=q)
        graph = Graph((x, axes, y), (Op(0, "MEAN", (0, 1), (2,), {}, name="gap"),), (0,), (2,))
        if ok:
            MeanHandler().check(graph.ops[0], graph)
        else:
            with pytest.raises(UnsupportedError, match=r"MEAN output: expected 8 values"):
                MeanHandler().check(graph.ops[0], graph)


# ---- the reference interpreter as the last line of defence -------------------------------------

RESNET = FIXTURES / "pretrainedResnet_quant.tflite"
AD01 = FIXTURES / "ad01_int8.tflite"


def _reference(base: Path, data: bytes, name: str) -> np.ndarray:
    """The reference interpreter on ``data``, a mutant of ``base`` that the reader would refuse:
    the graph (shapes, the name) comes from ``base``."""
    graph = read_tflite(base.read_bytes(), name=name)
    return verify.reference_outputs(data, graph, verify.random_inputs(graph, 2))


def test_reference_interpreter_crash_is_a_usage_error_naming_the_file() -> None:
    # An ADD input scale of 3e38: TFLite Micro's Prepare aborts the process (a CHECK).
    data = mutated(RESNET, lambda m: _set(_t(m, 27).quantization,
                                          scale=np.array([3e38], np.float32)))
    with pytest.raises(UsageError, match=r"^resnet\.tflite: the TFLite Micro reference "
                                         r"interpreter crashed on the model \(signal SIGABRT"):
        _reference(RESNET, data, "resnet.tflite")


def test_reference_interpreter_refusal_is_a_usage_error_with_its_reason() -> None:
    # A tiny output scale: TFLite Micro's FULLY_CONNECTED Prepare fails (no abort).
    data = mutated(AD01, lambda m: _set(_t(m, 30).quantization,
                                        scale=np.array([1e-10], np.float32)))
    with pytest.raises(UsageError, match=r"^ad01\.tflite: the TFLite Micro reference "
                                         r"interpreter refuses the model \(TFLM failed to "
                                         r"allocate tensors: .*FULLY_CONNECTED"):
        _reference(AD01, data, "ad01.tflite")


def test_reference_outputs_of_a_valid_model_are_unchanged_by_the_child_process() -> None:
    from tflite_micro.python.tflite_micro import runtime

    graph = read_tflite(AD01)
    inputs = verify.random_inputs(graph, 3, seed=5)
    got = verify.reference_outputs(AD01.read_bytes(), graph, inputs)
    interp = runtime.Interpreter.from_bytes(AD01.read_bytes())
    for row, raw in zip(got, inputs, strict=True):
        interp.set_input(raw.view(np.int8).reshape(graph.tensor(graph.inputs[0]).shape), 0)
        interp.invoke()
        assert row.tobytes() == np.ascontiguousarray(interp.get_output(0)).tobytes()


# ---- the backbone ops' rules (SPLIT's several outputs, element-wise shapes, required inputs) ---

def _q(name: str, shape: tuple[int, ...]) -> TensorSpec:
    return TensorSpec(name, shape, scale=(0.05,), zero_point=(0,))


def test_split_may_have_several_outputs_and_needs_its_options() -> None:
    axis = TensorSpec("axis", (1,), dtype="int32", data=np.array([1], dtype=np.int32))
    ok = single_op("SPLIT", [axis, _q("x", (1, 4))], [_q("a", (1, 2)), _q("b", (1, 2))],
                   {"numSplits": 2})
    assert [o.opcode for o in read_tflite(ok).ops] == ["SPLIT"]
    unpack = single_op("UNPACK", [_q("x", (2, 4))], [_q("a", (4,)), _q("b", (4,))],
                       {"num": 2, "axis": 0})
    assert len(read_tflite(unpack).ops[0].outputs) == 2


def test_an_elementwise_backbone_op_keeps_its_input_shape() -> None:
    bad = single_op("LEAKY_RELU", [_q("x", (1, 4))], [_q("y", (1, 5))], {"alpha": 0.1})
    with pytest.raises(UsageError, match=r"LEAKY_RELU.*output 0 shape: expected \[1, 4\] "
                       r"\(the input's shape\), received \[1, 5\]"):
        read_tflite(bad)
    two = single_op("HARD_SWISH", [_q("x", (1, 4))], [_q("y", (1, 4)), _q("z", (1, 4))])
    with pytest.raises(UsageError, match=r"HARD_SWISH.*outputs: expected 1 output, received 2"):
        read_tflite(two)


def test_transpose_conv_needs_its_input_and_ranks() -> None:
    shape = TensorSpec("shape", (4,), dtype="int32", data=np.array([1, 4, 4, 2], np.int32))
    w = TensorSpec("w", (2, 3, 3, 2), scale=(0.1, 0.1), zero_point=(0, 0), axis=0,
                   data=np.ones((2, 3, 3, 2), np.int8))
    opts = {"padding": "SAME", "strideW": 2, "strideH": 2}
    with pytest.raises(UsageError, match=r"TRANSPOSE_CONV.*input 2: expected a tensor"):
        read_tflite(single_op("TRANSPOSE_CONV", [shape, w, None], [_q("y", (1, 4, 4, 2))], opts))
    with pytest.raises(UsageError, match=r"TRANSPOSE_CONV.*input 2 shape: expected 4 dimensions"):
        read_tflite(single_op("TRANSPOSE_CONV", [shape, w, _q("x", (2, 2, 2))],
                              [_q("y", (1, 4, 4, 2))], opts))
