"""UNIDIRECTIONAL_SEQUENCE_LSTM (a rolled tf_keras LSTM with a fixed batch), bit-exact with
TFLite Micro's integer LSTM on the host (tests/op_harness.py: the real converter, handler,
template and tp_lstm_s8; the oracle is a fresh ``tflite_micro`` interpreter per sample, so
from a zero state), and the features the handler refuses, with their one-line messages.
"""

from __future__ import annotations

import ctypes
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from op_harness import Case, Lowered, check_case, compile_cases, inputs, ours
from op_harness import lower_all as _lower_all

from tinyprune.errors import UnsupportedError, UsageError
from tinyprune.ir import Graph, read_tflite
from tinyprune.kernels.base import handler_for
from tinyprune.kernels.recurrent import cell_scale_power, cell_tanh_scaling, quantized_cell_clip
from tinyprune.verify import reference_outputs

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # converter statistics notice


def _lstm(units: int, **kw: Any) -> Callable[[Any], Any]:
    return lambda k: k.layers.LSTM(units, name="lstm", **kw)


def _weights(seed: int) -> Callable[[Any], None]:
    """Weights uniform in [-0.8, 0.8]: gates that saturate and cells that grow past 1."""

    def setup(model: Any) -> None:
        rng = np.random.default_rng(seed)
        for layer in model.layers:
            layer.set_weights([rng.uniform(-0.8, 0.8, w.shape).astype(np.float32)
                               for w in layer.get_weights()])

    return setup


CASES = [
    Case("lstm_last", _lstm(8), ((8, 4),), "UNIDIRECTIONAL_SEQUENCE_LSTM STRIDED_SLICE",
         flavor="tf_keras", batch=1, rep=3.0, setup=_weights(1)),
    Case("lstm_sequences", _lstm(5, return_sequences=True), ((6, 3),),
         "UNIDIRECTIONAL_SEQUENCE_LSTM", flavor="tf_keras", batch=1, setup=_weights(2)),
]


@pytest.fixture(scope="module")
def lowered() -> dict[str, Lowered | Exception]:
    return _lower_all(CASES)


@pytest.fixture(scope="module", params=[0, 1], ids=["portable", "dsp"])
def host_lib(request: pytest.FixtureRequest, lowered: dict[str, Lowered | Exception],
             tmp_path_factory: pytest.TempPathFactory) -> ctypes.CDLL:
    return compile_cases(lowered, request.param, tmp_path_factory.mktemp("lstm"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bit_exact_with_tflite_micro(case: Case, lowered: dict[str, Lowered | Exception],
                                     host_lib: ctypes.CDLL) -> None:
    lw = lowered[case.id]
    check_case(lw, host_lib)
    assert isinstance(lw, Lowered)
    assert "tp_lstm_s8" in [c.kernel for c in lw.calls]


def _lstm_op(lw: Lowered | Exception) -> tuple[Graph, Any]:
    assert isinstance(lw, Lowered), lw
    return lw.graph, next(o for o in lw.graph.ops if o.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM")


def test_each_inference_starts_from_a_zero_state(lowered: dict[str, Lowered | Exception],
                                                 host_lib: ctypes.CDLL) -> None:
    """TFLM carries the state from one invoke to the next; the reference tinyprune checks
    against is reset before each sample, and the kernel resets its state tensors."""
    from tflite_micro.python.tflite_micro import runtime

    lw = lowered["lstm_last"]
    assert isinstance(lw, Lowered)
    x = inputs(lw, 1)[0]
    interp = runtime.Interpreter.from_bytes(lw.tflite)
    carried = []
    for _ in range(2):
        interp.set_input(x, 0)
        interp.invoke()
        carried.append(np.asarray(interp.get_output(0)).copy())
    assert not np.array_equal(carried[0], carried[1])  # the premise: the state carries over
    raw = np.stack([x.view(np.uint8).reshape(-1)] * 2)
    ref = reference_outputs(lw.tflite, lw.graph, raw)
    assert np.array_equal(ref[0], ref[1]) and np.array_equal(ref[0].view(np.int8),
                                                            carried[0].reshape(-1))
    first, second = ours(lw, host_lib, [x])[0], ours(lw, host_lib, [x])[0]
    assert np.array_equal(first, second) and np.array_equal(first, carried[0])


@pytest.mark.parametrize(("feature", "edit", "needle"), [
    ("peephole", lambda ins: {9: ins[1]}, "has peephole weights (inputs [9])"),
    ("projection", lambda ins: {16: ins[5]}, "has a projection (inputs [16])"),
    ("layer norm", lambda ins: {20: ins[12], 21: ins[13]},
     "has layer normalization (inputs [20, 21])"),
    ("cifg", lambda ins: {1: -1, 5: -1, 12: -1}, "has no input-to-input weights (input 1) "
     "(CIFG, a coupled input and forget gate)"),
])
def test_unsupported_features_are_refused_in_one_line(
        feature: str, edit: Callable[[tuple[int, ...]], dict[int, int]], needle: str,
        lowered: dict[str, Lowered | Exception]) -> None:
    graph, op = _lstm_op(lowered["lstm_last"])
    ins = list(op.inputs)
    for pos, t in edit(op.inputs).items():
        ins[pos] = t
    bad = dataclasses.replace(op, inputs=tuple(ins))
    with pytest.raises(UnsupportedError) as info:
        handler_for(bad).check(bad, graph)
    message = str(info.value)
    assert info.value.exit_code == 2 and "\n" not in message, feature
    assert message.startswith(f"layer '{op.name}': UNIDIRECTIONAL_SEQUENCE_LSTM "), message
    assert needle in message, message


@pytest.mark.parametrize(("options", "needle"), [
    ({"fused_activation_function": "RELU"}, "supports the tanh cell activation"),
    ({"diagonal_recurrent_tensors": True}, "diagonal recurrent weights"),
])
def test_unsupported_options_are_refused(options: dict[str, Any], needle: str,
                                         lowered: dict[str, Lowered | Exception]) -> None:
    graph, op = _lstm_op(lowered["lstm_last"])
    bad = dataclasses.replace(op, options={**op.options, **options})
    with pytest.raises(UnsupportedError, match=needle):
        handler_for(bad).check(bad, graph)


def test_a_state_that_is_not_a_variable_tensor_is_refused(
        lowered: dict[str, Lowered | Exception]) -> None:
    graph, op = _lstm_op(lowered["lstm_last"])
    cell = graph.tensor(op.inputs[19])
    tensors = list(graph.tensors)
    tensors[cell.index] = dataclasses.replace(cell, is_variable=False)
    with pytest.raises(UnsupportedError, match="expects its hidden and cell state to be variable"):
        handler_for(op).check(op, dataclasses.replace(graph, tensors=tuple(tensors)))


@pytest.mark.parametrize("where", ["graph output", "read by another op"])
def test_a_state_that_leaves_the_lstm_is_refused_by_the_reader(
        where: str, lowered: dict[str, Lowered | Exception]) -> None:
    """The firmware starts every inference from a zero state, which is only the model's meaning
    when the state never leaves its LSTM."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    lw = lowered["lstm_last"]
    assert isinstance(lw, Lowered)
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(lw.tflite, 0))
    sub = model.subgraphs[0]
    lstm = next(o for o in sub.operators if len(o.inputs) == 24)
    hidden = int(lstm.inputs[18])
    if where == "graph output":
        sub.outputs = [*sub.outputs, hidden]
    else:
        other = next(o for o in sub.operators if len(o.inputs) != 24)
        other.inputs = [hidden, *list(other.inputs)[1:]]
    import flatbuffers

    builder = flatbuffers.Builder(4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(UsageError) as info:
        read_tflite(bytes(builder.Output()))
    message = str(info.value)
    assert f"tensor {hidden}" in message and "is_variable" in message, message
    assert "the state of an UNIDIRECTIONAL_SEQUENCE_LSTM, used by it alone" in message


def test_cell_state_helpers_follow_tflm() -> None:
    assert cell_scale_power(2.0**-15) == -15 and cell_scale_power(2.0**-11) == -11
    assert cell_tanh_scaling(-15) == (3, 3)  # (x * 3 + 4) >> 3
    assert cell_tanh_scaling(-12) == (3, 0) and cell_tanh_scaling(-10) == (12, 0)
    for power in (-44, 3):  # TFLM's shifts would leave int32 (undefined in C)
        with pytest.raises(ValueError, match="cell state scale: expected 2"):
            cell_tanh_scaling(power)
    assert quantized_cell_clip(10.0, 2.0**-15) == 32767  # clamped
    assert quantized_cell_clip(0.5, 2.0**-15) == 16384
    assert quantized_cell_clip(1e-4 * 1.5, 2.0**-15) == 4  # truncated (4.9152)


def test_lowering_names_the_state_tensors(lowered: dict[str, Lowered | Exception],
                                          tmp_path: Path) -> None:
    """The hidden (int8) and cell (int16) state are variable tensors of the graph; the call
    passes both to the kernel, and a scratch of four int16 gate buffers."""
    graph, op = _lstm_op(lowered["lstm_last"])
    hidden, cell = graph.tensor(op.inputs[18]), graph.tensor(op.inputs[19])
    assert hidden.is_variable and cell.is_variable
    assert (hidden.dtype, cell.dtype) == ("int8", "int16")
    lw = lowered["lstm_last"]
    assert isinstance(lw, Lowered)
    call = next(c for c in lw.calls if c.kernel == "tp_lstm_s8")
    assert call.scratch_bytes == 4 * 1 * 8 * 2 + 4 * (2 * 1 + 2 * 2)  # the host lowers for DSP
    assert call.macs == 8 * 4 * 8 * (4 + 8)
