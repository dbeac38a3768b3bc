"""The dense FULLY_CONNECTED group loop written in Arm assembly (tp_fc_interleaved_groups in
tp_fully_connected_interleaved_s8.c), which the host tests cannot run: Dense layers, each on an
input of its own and each a model output, whose shapes walk its remainders (OUT = 1, 2, 3, 5,
8, 10, 12, 64: a partial last group of 1-3 rows or none; IN = 1 ... 70: IN not a multiple of 4
or 16, 1 to 18 steps of four inputs, with and without the eight-step loop), per channel and per
tensor, built for nucleo_f746 and run on the emulator against the TFLite Micro reference. One
RELU6 layer's output zero point is moved to -100 in the flatbuffer (an activation range
narrower than int8): it takes the C group loop in the same firmware.
"""

from __future__ import annotations

import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinyprune import pipeline, verify
from tinyprune.codegen import generate
from tinyprune.emulator import run_elf
from tinyprune.emulator.protocol import parse_results
from tinyprune.firmware.boards import load_board
from tinyprune.ir import read_tflite
from tinyprune.kernels.fully_connected import fc_args
from tinyprune.kernels.quant import fast_rounding
from tinyprune.plan import plan

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]

LAYERS = [  # (IN, OUT, activation), one Dense layer on its own input each
    (70, 12, "relu"), (12, 64, None), (64, 5, None), (5, 10, "relu"), (10, 3, None),
    (3, 8, "relu6"), (8, 2, None), (2, 1, None), (1, 10, None),
]
NARROW = 5  # the layer whose output zero point is moved (RELU6: range [-100, 127])


def _narrowed(tflite: bytes, layer: int, zero_point: int) -> bytes:
    """The model with the output zero point of its layer-th op set to zero_point."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    graph = model.subgraphs[0]
    graph.tensors[graph.operators[layer].outputs[0]].quantization.zeroPoint = [zero_point]
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _layers_tflite(per_channel: bool) -> bytes:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(zlib.crc32(b"fc asm" + bytes([per_channel])))
    bias = keras.initializers.RandomUniform(-0.5, 0.5)
    ins = [keras.Input((n,), name=f"x{i}") for i, (n, _, _) in enumerate(LAYERS)]
    outs = [keras.layers.Dense(units, activation=act, bias_initializer=bias, name=f"d{i}")(x)
            for i, (x, (_, units, act)) in enumerate(zip(ins, LAYERS, strict=True))]
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(ins, outs))
    conv._experimental_disable_per_channel_quantization_for_dense_layers = not per_channel
    rng = np.random.default_rng(0)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        {f"x{i}": rng.uniform(-1, 1, (1, n)).astype(np.float32)
         for i, (n, _, _) in enumerate(LAYERS)} for _ in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.int8
    return _narrowed(conv.convert(), NARROW, -100)


def _takes_asm(op: Any, graph: Any) -> bool:
    """The layer runs tp_fc_interleaved_groups: fast requantization, full int8 range."""
    a = fc_args(op, graph)
    return (fast_rounding(a.shift, a.output_offset) is not None and a.act_min == -128
            and a.act_max == 127)


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
def test_fc_assembly_groups_are_bit_exact_on_the_emulator(per_channel: bool,
                                                          tmp_path: Path) -> None:
    tflite = _layers_tflite(per_channel)
    graph = read_tflite(tflite)
    fcs = [op for op in graph.ops if op.opcode == "FULLY_CONNECTED"]
    assert [tuple(graph.tensor(op.inputs[1]).shape) for op in fcs] == [
        (units, n) for n, units, _ in LAYERS]
    # one output channel has one scale: per tensor whatever the converter was asked
    assert [fc_args(op, graph).per_channel for op in fcs] == [per_channel and units > 1
                                                              for _, units, _ in LAYERS]
    asm = [_takes_asm(op, graph) for op in fcs]
    assert asm == [i != NARROW for i in range(len(fcs))]
    planned = plan(graph, dsp=True)
    assert {p.call.kernel for p in planned.code_ops} == {"tp_fully_connected_interleaved_s8"}
    inputs = verify.random_inputs(planned.graph, 6, seed=11)
    project = generate(planned, tmp_path / "src", model_name="fc", source_name="fc",
                       samples=inputs)
    board = load_board("nucleo_f746")
    fw = pipeline.make_firmware(project, board, tmp_path / "fw", stack_bytes=8192)
    res = parse_results(run_elf(board, fw.elf).uart)
    assert res.status == 0
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    cmp = verify.compare(verify.reference_outputs(tflite, planned.graph, inputs), actual)
    assert cmp.samples == 6 and cmp.mismatches == ()
