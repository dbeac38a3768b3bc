"""UNIDIRECTIONAL_SEQUENCE_LSTM (int8 activations, int16 cell state), bit-exact with TFLite
Micro's integer LSTM (kernels/unidirectional_sequence_lstm.cc, lstm_eval_common.cc
PrepareGateParametersInteger).

This is what the converter emits for a rolled tf_keras ``LSTM`` with a fixed batch: 24 inputs
(input, 4 input weights, 4 recurrent weights, 3 absent peephole weights, 4 biases, 2 absent
projection tensors, the hidden and cell state as variable tensors, 4 absent layer norm
weights). Each inference starts from a zero state: tp_lstm_s8 resets the state tensors when it
starts, the reference interpreter is reset before each sample (tinyprune/verify.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyprune.ir.graph import Graph, Op, Tensor
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import quantize_multiplier, shift_error
from tinyprune.kernels.tensor import fail, label_shape, require_scales

GATES = ("forget", "input", "cell", "output")
"""tp_lstm_s8's gate order (TP_LSTM_FORGET ...), as TFLM computes them."""
INPUT_WEIGHTS = {"input": 1, "forget": 2, "cell": 3, "output": 4}
RECURRENT_WEIGHTS = {"input": 5, "forget": 6, "cell": 7, "output": 8}
BIASES = {"input": 12, "forget": 13, "cell": 14, "output": 15}
HIDDEN_STATE, CELL_STATE = 18, 19
ABSENT = {"peephole weights": (9, 10, 11), "a projection": (16, 17),
          "layer normalization": (20, 21, 22, 23)}
"""Optional inputs TFLM's integer LSTM does not take (its ValidateTensorStatus), by feature."""
GATE_INPUT_SCALE = 2.0**-12  # Q3.12: the gate FC outputs (TFLM nonlinear_input_scale)
GATE_OUTPUT_SCALE = 2.0**-15  # Q0.15: sigmoid / tanh outputs (nonlinear_output_scale)
CELL_ACTIVATIONS = {"TANH": 1}
"""The cell gate activations the schema can express that TFLM runs (its kernel also takes
sigmoid, which ActivationFunctionType has no value for)."""


def _double_ratio(a: float, b: float, out: float) -> float:
    """TFLM CreateInterGateMulParams: double(a) * double(b) / double(out), float32 inputs."""
    f = np.float32
    return float(np.float64(f(a)) * np.float64(f(b)) / np.float64(f(out)))


def cell_scale_power(scale: float) -> int:
    """TFLM CheckedLog2 (float arithmetic, rounded half away from zero; its check is ignored)."""
    f = np.float32
    log2 = f(np.log(f(scale))) * f(f(1.0) / f(np.log(f(2.0))))
    return int(math.copysign(math.floor(abs(float(log2)) + 0.5), float(log2)))


CELL_POWERS = (-43, 2)
"""Cell state scales 2^p whose tanh input scaling TFLM computes in range: a left shift of at
most 14 (3 << 14 times an int16 stays in int32), a right shift of at most 31."""


def cell_tanh_scaling(power: int) -> tuple[int, int]:
    """(multiplier, right shift) of tanh(cell): TFLM lstm_internal::Tanh, then the
    power-of-two case of reference_integer_ops::Tanh resolved."""
    if not CELL_POWERS[0] <= power <= CELL_POWERS[1]:
        raise ValueError(f"cell state scale: expected 2^{CELL_POWERS[0]} .. 2^{CELL_POWERS[1]} "
                         f"(the converter gives 2^-15), received about 2^{power}")
    shift = 15 + power - 3
    if shift < 0:
        return 3, -shift
    return 3 << shift, 0


def quantized_cell_clip(clip: float, cell_scale: float) -> int:
    """TFLM CreateLstmCellStateInfo: static_cast<int16_t>(clamp(clip / scale)) (truncates)."""
    value = float(np.float64(np.float32(clip)) / np.float64(np.float32(cell_scale)))
    return int(min(max(value, -32768.0), 32767.0))


def _tensor(graph: Graph, op: Op, pos: int) -> Tensor | None:
    index = op.inputs[pos] if pos < len(op.inputs) else -1
    return graph.tensor(index) if index >= 0 else None


@dataclass(frozen=True)
class LstmArgs:
    """The tensors of one LSTM op, checked."""

    x: Tensor
    out: Tensor
    hidden: Tensor
    cell: Tensor
    weights: dict[str, Tensor]  # "input/forget" ... and "recurrent/forget" ...
    biases: dict[str, Tensor]
    batch: int
    time_steps: int
    units: int
    time_major: bool

    @property
    def macs(self) -> int:
        return self.batch * self.time_steps * 4 * self.units * (self.x.shape[2] + self.units)


def _required(op: Op, graph: Graph, pos: int, what: str) -> Tensor:
    t = _tensor(graph, op, pos)
    if t is None:
        feature = " (CIFG, a coupled input and forget gate)" if pos in (1, 5, 12) else ""
        raise fail(op, f"has no {what} (input {pos}){feature}; tinyprune runs the plain LSTM "
                       "the converter emits for a Keras LSTM layer")
    return t


def _check_types(op: Op, a: LstmArgs) -> None:
    for t in (a.hidden, a.cell):
        if not t.is_variable or t.is_const:
            raise fail(op, f"expects its hidden and cell state to be variable tensors without "
                           f"data (as TFLite Micro does), received '{t.name}'")
    if a.x.is_const:
        raise fail(op, f"expects a computed input, received the constant '{a.x.name}'")
    for t, dtype in ((a.x, "int8"), (a.out, "int8"), (a.hidden, "int8"), (a.cell, "int16")):
        if t.dtype != dtype or t.quant is None or t.quant.per_channel:
            raise fail(op, f"expects int8 input, output and hidden state and an int16 cell "
                           f"state, per-tensor quantized (the 8x8_16 integer LSTM), received "
                           f"{t.dtype} for '{t.name}'; quantize the model to full int8")
    for name, w in a.weights.items():
        if w.dtype != "int8" or not w.is_const or w.quant is None or w.quant.per_channel:
            raise fail(op, f"expects constant int8 per-tensor weights, received '{w.name}' "
                           f"({w.dtype}) for the {name} weights")
        if w.quant.zero_point[0] != 0:
            raise fail(op, f"expects symmetric weights (zero point 0), received "
                           f"{w.quant.zero_point[0]} for '{w.name}'")
    for name, b in a.biases.items():
        if b.dtype != "int32" or not b.is_const:
            raise fail(op, f"expects constant int32 biases, received '{b.name}' ({b.dtype}) "
                           f"for the {name} gate")
    require_scales(op, a.x, a.hidden, a.cell, *a.weights.values())


def _check_shapes(op: Op, graph: Graph, a: LstmArgs) -> None:
    n_in = a.x.shape[2]
    for name, w in a.weights.items():
        cols = n_in if name.startswith("input") else a.units
        if w.shape != (a.units, cols):
            raise fail(op, f"expects {name} weights of shape [{a.units}, {cols}], received "
                           f"{list(w.shape)}")
    for name, b in a.biases.items():
        if b.shape != (a.units,):
            raise fail(op, f"expects a {name} gate bias of {a.units} values, received "
                           f"{list(b.shape)}")
    for t in (a.hidden, a.cell):
        if t.size != a.batch * a.units:
            raise fail(op, f"expects a state of {a.batch} x {a.units} values, received "
                           f"{list(t.shape)} for '{t.name}'")
    if a.out.shape[:2] != a.x.shape[:2] or a.out.shape[2:] != (a.units,):
        raise fail(op, f"expects an output of shape {[*a.x.shape[:2], a.units]}, received "
                       f"{list(a.out.shape)}")


def lstm_args(op: Op, graph: Graph) -> LstmArgs:
    """The op's tensors, or :class:`UnsupportedError` naming the feature tinyprune does not run."""
    for feature, positions in ABSENT.items():
        present = [p for p in positions if _tensor(graph, op, p) is not None]
        if present:
            raise fail(op, f"has {feature} (inputs {present}), which tinyprune does not "
                           "support; use a plain Keras LSTM layer")
    if op.options.get("diagonal_recurrent_tensors"):
        raise fail(op, "has diagonal recurrent weights, which TFLite Micro does not support")
    x = _required(op, graph, 0, "input")
    if len(x.shape) != 3 or len(op.outputs) != 1:
        raise fail(op, f"expects a rank-3 input and one output, received {list(x.shape)}")
    out = graph.tensor(op.outputs[0])
    weights = {f"input/{g}": _required(op, graph, INPUT_WEIGHTS[g], f"input-to-{g} weights")
               for g in GATES}
    weights |= {f"recurrent/{g}": _required(op, graph, RECURRENT_WEIGHTS[g],
                                            f"recurrent-to-{g} weights") for g in GATES}
    biases = {g: _required(op, graph, BIASES[g], f"{g} gate bias") for g in GATES}
    hidden = _required(op, graph, HIDDEN_STATE, "hidden state")
    cell = _required(op, graph, CELL_STATE, "cell state")
    time_major = bool(op.options.get("time_major", False))
    steps, batch = (x.shape[0], x.shape[1]) if time_major else (x.shape[1], x.shape[0])
    units = weights["input/forget"].shape[0]
    return LstmArgs(x, out, hidden, cell, weights, biases, batch, steps, units, time_major)


def _multiplier(op: Op, real: float, what: str) -> dict[str, int]:
    multiplier, shift = quantize_multiplier(real)
    error = shift_error(real, shift)
    if error:
        raise fail(op, f"{what}: {error}; check the quantization of the LSTM")
    return {"multiplier": multiplier, "shift": shift}


def lstm_params(op: Op, a: LstmArgs) -> dict[str, Any]:
    """tp_lstm_params, as TFLM's PrepareGateParametersInteger computes them."""
    fc: dict[str, list[dict[str, int]]] = {"input_fc": [], "recurrent_fc": []}
    for g in GATES:
        for kind, src in (("input", a.x), ("recurrent", a.hidden)):
            real = _double_ratio(src.scale, a.weights[f"{kind}/{g}"].scale, GATE_INPUT_SCALE)
            fc[f"{kind}_fc"].append(_multiplier(op, real, f"{kind} FC of the {g} gate"))
    cell_scale = a.cell.scale
    clip = float(op.options.get("cell_clip", 0.0))
    activation = str(op.options.get("fused_activation_function", "TANH"))
    try:
        tanh_multiplier, tanh_shift = cell_tanh_scaling(cell_scale_power(cell_scale))
    except ValueError as exc:
        raise fail(op, f"{exc}; check the quantization of the LSTM") from None
    return {
        "input_offset": -a.x.zero_point,
        "hidden_offset": -a.hidden.zero_point,
        "hidden_zero_point": a.hidden.zero_point,
        **fc,
        "forget_mul": _multiplier(op, _double_ratio(GATE_OUTPUT_SCALE, cell_scale, cell_scale),
                                  "forget gate x cell state"),
        "input_mul": _multiplier(op, _double_ratio(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE,
                                                   cell_scale), "input gate x cell gate"),
        "output_mul": _multiplier(op, _double_ratio(GATE_OUTPUT_SCALE, GATE_OUTPUT_SCALE,
                                                    a.hidden.scale), "tanh(cell) x output gate"),
        "cell_gate_tanh": CELL_ACTIVATIONS[activation],
        "cell_clip_enabled": int(clip > 0),
        "quantized_cell_clip": quantized_cell_clip(clip, cell_scale) if clip > 0 else 0,
        "cell_tanh_multiplier": tanh_multiplier,
        "cell_tanh_shift": tanh_shift,
    }


def lstm_scratch_bytes(a: LstmArgs) -> int:
    """tp_lstm_s8_get_buffer_size of the DSP path: four int16 gate buffers of batch x units,
    then the step's input and hidden rows widened to int16 pairs (groups of four values). The
    portable path needs only the gate buffers; it gets the same (a few bytes more), so one
    lowering serves both builds."""
    gates = 4 * a.batch * a.units * 2
    rows = a.batch if a.time_major else 1
    return gates + rows * 4 * (2 * (a.x.shape[2] // 4) + 2 * (a.units // 4))


@dataclass(frozen=True)
class LstmHandler:
    opcodes: tuple[str, ...] = ("UNIDIRECTIONAL_SEQUENCE_LSTM",)

    def check(self, op: Op, graph: Graph) -> None:
        a = lstm_args(op, graph)
        activation = str(op.options.get("fused_activation_function", "TANH"))
        if activation not in CELL_ACTIVATIONS:
            raise fail(op, f"supports the tanh cell activation (as TFLite Micro), received "
                           f"{activation}")
        _check_types(op, a)
        _check_shapes(op, graph, a)
        lstm_params(op, a)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        a = lstm_args(op, graph)
        params = lstm_params(op, a)

        def const(t: Tensor, hint: str, ctype: str) -> str:
            assert t.data is not None
            return ctx.const(hint, np.ascontiguousarray(t.data).reshape(-1), ctype)

        scratch = lstm_scratch_bytes(a)
        params.update(
            label=f"lstm {label_shape(a.x.shape)} -> {label_shape(a.out.shape)}",
            batch=a.batch, time_steps=a.time_steps, input_size=a.x.shape[2], units=a.units,
            time_major=int(a.time_major),
            input_weights=[const(a.weights[f"input/{g}"], f"lstm_w_{g}", "int8_t")
                           for g in GATES],
            recurrent_weights=[const(a.weights[f"recurrent/{g}"], f"lstm_r_{g}", "int8_t")
                               for g in GATES],
            biases=[const(a.biases[g], f"lstm_b_{g}", "int32_t") for g in GATES],
            input=ctx.act(a.x.index), output=ctx.act(a.out.index),
            hidden_state=ctx.act(a.hidden.index), cell_state=ctx.act(a.cell.index),
            scratch=ctx.scratch, scratch_bytes=scratch,
        )
        weight_bytes = sum(w.nbytes for w in a.weights.values()) + sum(
            b.nbytes for b in a.biases.values())
        return KernelCall(kernel="tp_lstm_s8", sources=("tp_lstm_s8.c",),
                          template="ops/lstm_s8.c.j2", params=params, scratch_bytes=scratch,
                          macs=a.macs, weight_bytes=weight_bytes, encoding="dense")


register(LstmHandler())
