"""Quantization parameters no kernel can honour: refused at generation time, exit 2, one line.

Each row is a single-op model (``tflite_builder``) whose parameters TFLM aborts on, fails to
prepare, or leaves undefined (docs/kernels.md, "Which quantization parameters each kernel
accepts"); ``tinyprune codegen`` must exit 2 with one line naming the layer, the tensor and
the parameter, and write nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from tflite_builder import TensorSpec, single_op

from tinyprune.cli import main


def _act(name: str, shape: tuple[int, ...], scale: float, zp: int = 0) -> TensorSpec:
    return TensorSpec(name, shape, scale=(scale,), zero_point=(zp,))


def _conv(s_in: float, s_out: float, opcode: str = "CONV_2D", bias: bool = True,
          act: str = "NONE", depth_multiplier: int = 1) -> bytes:
    depthwise = opcode == "DEPTHWISE_CONV_2D"
    wshape = (1, 1, 1, 2) if depthwise else (2, 1, 1, 2)
    w = TensorSpec("w", wshape, scale=(0.5, 0.25), zero_point=(0, 0), axis=3 if depthwise else 0,
                   data=np.ones(wshape, np.int8))
    b = TensorSpec("b", (2,), "int32", scale=(s_in * 0.5, s_in * 0.25), zero_point=(0, 0),
                   data=np.array([1, -1], np.int32)) if bias else None
    opts = {"padding": "VALID", "strideW": 1, "strideH": 1, "fusedActivationFunction": act}
    if depthwise:
        opts["depthMultiplier"] = depth_multiplier
    return single_op(opcode, [_act("x", (1, 2, 2, 2), s_in), w, b],
                     [_act("y", (1, 2, 2, 2), s_out)], opts)


def _fc(bias_scale: float, s_out: float = 0.1) -> bytes:
    w = TensorSpec("w", (3, 4), scale=(0.02,), zero_point=(0,), data=np.ones((3, 4), np.int8))
    b = TensorSpec("b", (3,), "int32", scale=(bias_scale,), data=np.zeros(3, np.int32))
    return single_op("FULLY_CONNECTED", [_act("x", (1, 4), 0.5), w, b],
                     [_act("y", (1, 3), s_out)])


def _binary(opcode: str, s1: float, s2: float, so: float, act: str = "NONE") -> bytes:
    return single_op(opcode, [_act("a", (1, 4), s1), _act("b", (1, 4), s2)],
                     [_act("y", (1, 4), so)], {"fusedActivationFunction": act})


def _mean(s_in: float, s_out: float) -> bytes:
    axes = TensorSpec("axes", (2,), "int32", data=np.array([1, 2], np.int32))
    return single_op("MEAN", [_act("x", (1, 3, 3, 2), s_in), axes], [_act("y", (1, 2), s_out)],
                     {"keepDims": False})


def _requantize(s_in: float, s_out: float) -> bytes:
    return single_op("QUANTIZE", [_act("x", (1, 8), s_in)], [_act("y", (1, 8), s_out)])


def _concat(s_in: float, s_out: float) -> bytes:
    return single_op("CONCATENATION", [_act("x0", (1, 2), s_out), _act("x1", (1, 3), s_in)],
                     [_act("y", (1, 5), s_out)], {"axis": 1})


def _softmax(s_in: float) -> bytes:
    return single_op("SOFTMAX", [_act("x", (1, 10), s_in)], [_act("y", (1, 10), 1 / 256, -128)],
                     {"beta": 1.0})


def _logistic(s_in: float) -> bytes:
    return single_op("LOGISTIC", [_act("x", (1, 10), s_in)], [_act("y", (1, 10), 1 / 256, -128)])


@dataclass(frozen=True)
class Refusal:
    id: str
    model: Callable[[], bytes]
    needles: tuple[str, ...]  # all must appear in the one-line message


REFUSALS = (
    Refusal("conv_output_scale_1e-29", lambda: _conv(0.5, 1e-29),
            ("layer 'y'", "output 'y' channel 0", "below 2^31", "received")),
    Refusal("conv_output_scale_2e-30", lambda: _conv(0.5, 2e-30),
            ("layer 'y'", "output 'y' channel 0", "below 2^31")),
    Refusal("depthwise_input_scale_1e29", lambda: _conv(1e29, 0.1, "DEPTHWISE_CONV_2D"),
            ("DEPTHWISE_CONV_2D", "input scale 1e+29 ('x')", "below 2^31")),
    Refusal("depthwise_without_bias", lambda: _conv(0.5, 0.1, "DEPTHWISE_CONV_2D", bias=False),
            ("DEPTHWISE_CONV_2D", "expected a bias tensor, received none")),
    # make fuzz (seed 2028, vww_96_int8 mutant 388): with 0 TFLM writes no output at all
    Refusal("depthwise_multiplier_0",
            lambda: _conv(0.5, 0.1, "DEPTHWISE_CONV_2D", depth_multiplier=0),
            ("DEPTHWISE_CONV_2D", "depth_multiplier: expected 1 from the shapes, received 0")),
    Refusal("depthwise_multiplier_2_for_1",
            lambda: _conv(0.5, 0.1, "DEPTHWISE_CONV_2D", depth_multiplier=2),
            ("DEPTHWISE_CONV_2D", "depth_multiplier: expected 1 from the shapes, received 2")),
    Refusal("conv_relu6_range_beyond_int32", lambda: _conv(1e-12, 1e-12, act="RELU6"),
            ("output 'y'", "fused activation RELU6", "expected an output scale above",
             "received 1e-12")),
    Refusal("fc_per_tensor_bias_scale", lambda: _fc(bias_scale=0.5),
            ("FULLY_CONNECTED", "bias 'b'", "expected a scale of input scale x filter scale",
             "received 0.5")),
    Refusal("add_output_multiplier_1", lambda: _binary("ADD", 0.5, 0.5, 1e-7),
            ("ADD", "output 'y'", "below 1", "received")),
    Refusal("add_relu6_range_beyond_int32", lambda: _binary("ADD", 1e-7, 1e-7, 1e-12, "RELU6"),
            ("ADD", "RELU6", "expected an output scale above")),
    Refusal("mul_output_scale_1e-29", lambda: _binary("MUL", 0.5, 0.5, 1e-29),
            ("MUL", "output 'y'", "below 2^31")),
    Refusal("mean_output_scale_1e-29", lambda: _mean(0.5, 1e-29),
            ("MEAN", "output 'y'", "below 2^31")),
    Refusal("requantize_output_scale_1e-29", lambda: _requantize(0.5, 1e-29),
            ("QUANTIZE", "'x' -> 'y'", "below 2^31")),
    Refusal("concat_input_scale_1e29", lambda: _concat(1e29, 0.1),
            ("CONCATENATION", "'x1' -> 'y'", "below 2^31")),
    Refusal("softmax_input_scale_1e-29", lambda: _softmax(1e-29),
            ("SOFTMAX", "expected beta * input scale * 2^26 above 1", "received")),
    Refusal("logistic_input_scale_100", lambda: _logistic(100.0),
            ("LOGISTIC", "expected 2^-28 .. 2^4", "received 100")),
    # Beyond [1e-30, 1e30] (and zero) the reader refuses first, naming the tensor and the field.
    Refusal("conv_output_scale_zero", lambda: _conv(0.5, 0.0),
            ("tensor 3 'y'", "quantization scale[0]", "expected a finite positive number, "
             "received 0.0")),
    Refusal("conv_output_scale_1e-38", lambda: _conv(0.5, 1e-38),
            ("tensor 3 'y'", "expected a value in [1e-30, 1e+30], received 1e-38")),
    Refusal("depthwise_input_scale_3e38", lambda: _conv(3e38, 0.1, "DEPTHWISE_CONV_2D"),
            ("tensor 0 'x'", "expected a value in [1e-30, 1e+30], received 3e+38")),
)


@pytest.mark.parametrize("case", REFUSALS, ids=[r.id for r in REFUSALS])
def test_refused_at_generation_with_exit_2(case: Refusal, tmp_path: Path, capsys) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(case.model())
    out = tmp_path / "out"
    assert main(["codegen", "--board", "nucleo_f746", "--model", str(model),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in case.needles:
        assert needle in err, f"{needle!r} not in {err!r}"
    assert not out.exists()


def test_the_same_layer_with_sane_scales_is_accepted(tmp_path: Path) -> None:
    """The premise: the rows above differ from an accepted model only in the parameter."""
    model = tmp_path / "m.tflite"
    model.write_bytes(_conv(0.5, 0.1, "DEPTHWISE_CONV_2D"))
    assert main(["codegen", "--board", "nucleo_f746", "--model", str(model),
                 "--out", str(tmp_path / "out")]) == 0
