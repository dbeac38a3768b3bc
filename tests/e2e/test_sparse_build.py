"""Sparse kernels end to end: real converter, cross compiler, emulator and TFLM oracle.

1. An externally sparsified model (a Keras model whose weights were zeroed in 1x4 blocks along
   the input channels before conversion, as a pruning tool leaves them) given to
   ``tinyprune build`` as an int8 .tflite: the zeros survive conversion, the planner picks the
   block-sparse kernels by itself, the firmware is bit-exact and smaller than the dense build.
2. Every sparse kernel (each format, conv and FC, the zero-skipping FC) in one model, forced
   per layer, on the emulator against the reference: the real DSP instructions (inline asm
   LDRD / UXTAB / SMMULR included), not their C emulation.
3. The block-sparse paths written in Arm assembly (the R = 1 conv pass, the R = 1 FC rows), which
   the host tests cannot run: biases and none, an empty row, a shift outside the fast form,
   pointwise and padded windows, a partial last pass.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import convert_int8
from sparse_support import zero_pattern

from tinyprune import pipeline, verify
from tinyprune.cli import main
from tinyprune.codegen import generate
from tinyprune.emulator import run_elf
from tinyprune.emulator.protocol import parse_results
from tinyprune.firmware.boards import load_board
from tinyprune.ir import read_tflite
from tinyprune.plan import PlanOptions, plan
from tinyprune.plan.activations import measure_zero_fractions

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None,
                       reason="arm-none-eabi-gcc not installed (make setup installs it)"),
]


def zero_keras_layer(layer: Any, pattern: str, sparsity: float, seed: int = 0) -> None:
    """Zeroes a Conv2D / Dense kernel in ``pattern`` over the rows the int8 kernels read
    (output channel o: its [KH][KW][C_IN] or [IN] values), as a pruning tool would."""
    kernel, *rest = layer.get_weights()
    if kernel.ndim == 4:  # Keras (KH, KW, C_IN, C_OUT) -> rows [C_OUT, KH * KW * C_IN]
        rows = kernel.transpose(3, 0, 1, 2).reshape(kernel.shape[3], -1)
    else:  # Dense (IN, OUT) -> rows [OUT, IN]
        rows = kernel.T
    scaled = np.round(rows / np.abs(rows).max() * 127).astype(np.int8)
    keep = zero_pattern(scaled, pattern, sparsity, np.random.default_rng(seed)) != 0
    rows = np.where(keep, rows, 0.0).astype(np.float32)
    if kernel.ndim == 4:
        kh, kw, c_in, c_out = kernel.shape
        new = rows.reshape(c_out, kh, kw, c_in).transpose(1, 2, 3, 0)
    else:
        new = rows.T
    layer.set_weights([np.ascontiguousarray(new), *rest])


def _sparse_cnn(sparsity: float) -> tuple[Any, tuple[int, ...]]:
    """A small CNN whose conv and first dense kernels are zeroed in 1x4 blocks."""
    import keras

    keras.utils.set_random_seed(3)
    shape = (16, 16, 8)
    m = keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c1"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="c2"),
        keras.layers.Conv2D(64, 1, activation="relu", name="pw"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(64, activation="relu", name="fc1"),
        keras.layers.Dense(10, name="fc2"),
    ])
    for name in ("c1", "c2", "pw", "fc1"):
        zero_keras_layer(m.get_layer(name), "1x4", sparsity)
    return m, shape


def _dense_flash(tflite: bytes, tmp: Path) -> int:
    """Flash of the same model with the dense kernels only (same stages, no run)."""
    board = load_board("nucleo_f746")
    planned = plan(read_tflite(tflite), dsp=board.dsp, options=PlanOptions(kernels="dense"))
    project = generate(planned, tmp / "src", model_name="dense", source_name="dense",
                       samples=verify.random_inputs(planned.graph, 3, seed=0))
    return pipeline.make_firmware(project, board, tmp / "fw", stack_bytes=8192).flash_used_bytes


def test_an_externally_sparsified_tflite_builds_with_block_sparse_kernels(tmp_path: Path) -> None:
    model, shape = _sparse_cnn(0.75)
    sparse = convert_int8(model, shape)
    graph = read_tflite(sparse)
    weighted = [op for op in graph.ops if op.opcode in ("CONV_2D", "FULLY_CONNECTED")]
    for op in weighted[:4]:  # c1, c2, pw, fc1: the zeroed blocks are still zero in int8
        w = graph.tensor(op.inputs[1]).data
        assert w is not None
        blocks = w.reshape(w.shape[0], -1, 4)  # K = 72, 288, 32, 64: whole blocks of 4
        assert np.mean(~blocks.any(axis=2)) >= 0.75, op.name
    path = tmp_path / "sparse.tflite"
    path.write_bytes(sparse)
    out = tmp_path / "build"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(path), "--out", str(out),
               "--samples", "3"])
    report = json.loads((out / "report.json").read_text())
    assert rc == 0 and report["ok"]
    assert report["run"]["bit_exact"] and report["run"]["host"]["bit_exact"]
    assert report["run"]["host"]["dsp_path_bit_exact"] is True
    kernels = [layer["kernel"] for layer in report["layers"]]
    assert kernels.count("tp_conv_bsr_s8") == 3 and "tp_conv_interleaved_s8" not in kernels
    assert "tp_fully_connected_bsr_per_channel_s8" in kernels
    assert report["run"]["cycle_model"] == "m7"  # the M7 board's, which times the run;
    assert report["kernel_cost_model"] == "table"  # the choice asks the table fit
    assert report["firmware"]["flash_used_bytes"] < _dense_flash(sparse, tmp_path / "dense")


def test_a_one_channel_first_conv_and_all_zero_channels_run_sparse_and_bit_exact(
        tmp_path: Path) -> None:
    """The DS-CNN front: a 10x4 stride-2 conv over one channel, its rows zeroed in 1x4 blocks
    along the filter row, and output channels (conv and dense) whose weights are all zero, as a
    75% allocation leaves some. The converter gives a zero channel a scale near 1e-8 and a bias
    near 2^30, which no sparse kernel could requantize; such a channel runs as a constant
    (kernels.quant.constant_channels), so the sparse kernels still take the layers, bit-exact."""
    import keras

    keras.utils.set_random_seed(11)
    shape = (20, 10, 1)
    model = keras.Sequential([
        keras.Input(shape),
        keras.layers.Conv2D(16, (10, 4), strides=2, padding="same", activation="relu",
                            name="first"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu", name="fc1"),
        keras.layers.Dense(4, name="fc2"),
    ])
    for name, channels in (("first", (3, 9)), ("fc1", (5,))):
        layer = model.get_layer(name)
        zero_keras_layer(layer, "1x4", 0.75)
        kernel, *rest = layer.get_weights()
        kernel[..., list(channels)] = 0.0  # whole output channels
        layer.set_weights([kernel, *rest])
    tflite = convert_int8(model, shape)
    graph = read_tflite(tflite)
    first = graph.tensor(graph.ops[0].inputs[1])
    assert first.data is not None and not first.data[[3, 9]].any()
    assert first.quant is not None and max(first.quant.scale[3], first.quant.scale[9]) < 1e-6
    path = tmp_path / "front.tflite"
    path.write_bytes(tflite)
    out = tmp_path / "build"
    rc = main(["build", "--board", "nucleo_f746", "--model", str(path), "--out", str(out),
               "--samples", "3", "--random-samples", "300"])
    report = json.loads((out / "report.json").read_text())
    assert rc == 0 and report["ok"]
    assert report["run"]["bit_exact"] and report["run"]["host"]["bit_exact"]
    assert report["run"]["host"]["dsp_path_bit_exact"] is True
    kernels = [(layer["op"], layer["kernel"]) for layer in report["layers"]]
    assert kernels[0] == ("CONV_2D", "tp_conv_bsr_s8"), report["layers"][0]
    fcs = [k for op, k in kernels if op == "FULLY_CONNECTED"]
    assert fcs[0].startswith("tp_fully_connected_bsr"), kernels


# ---- every sparse kernel on the emulator ------------------------------------------------------

LAYERS = [  # (name, keras layer factory, pattern, sparsity, forced kernel)
    ("b14", "conv", (32, 3), "1x4", 0.75, "tp_conv_bsr_s8"),
    ("b44", "conv", (32, 1), "4x4", 0.7, "tp_conv_bsr_s8"),
    ("nm2", "conv", (32, 3), "2:4", 0.5, "tp_conv_nm_s8"),
    ("nm1", "conv", (16, 1), "1:4", 0.75, "tp_conv_nm_s8"),
    ("csr", "conv", (16, 3), "unstructured", 0.9, "tp_conv_csr_s8"),
    ("zpw", "conv", (16, 1), "1x4", 0.0, "tp_fully_connected_zskip_s8"),
    ("fb", "dense", (40,), "2x4", 0.75, "tp_fully_connected_bsr_s8"),
    ("fn", "dense", (24,), "1:4", 0.75, "tp_fully_connected_nm_s8"),
    ("fc", "dense", (12,), "unstructured", 0.8, "tp_fully_connected_csr_s8"),
    ("fz", "dense", (10,), "1x4", 0.0, "tp_fully_connected_zskip_s8"),
]


def _every_kernel_model() -> tuple[bytes, tuple[int, ...]]:
    import keras

    keras.utils.set_random_seed(zlib.crc32(b"every"))
    shape = (9, 7, 12)
    x = inp = keras.Input(shape)
    for name, kind, args, *_ in LAYERS:
        if kind == "dense" and len(x.shape) > 2:
            x = keras.layers.Flatten()(x)
        if kind == "conv":
            x = keras.layers.Conv2D(args[0], args[1], padding="same", activation="relu",
                                    name=name)(x)
        else:
            x = keras.layers.Dense(args[0], activation="relu", name=name)(x)
    model = keras.Model(inp, x)
    for name, _, _, pattern, sparsity, _ in LAYERS:
        if sparsity:
            zero_keras_layer(model.get_layer(name), pattern, sparsity)
    return convert_int8(model, shape), shape


def test_every_sparse_kernel_is_bit_exact_on_the_emulator(tmp_path: Path) -> None:
    tflite, _ = _every_kernel_model()
    graph = read_tflite(tflite)
    board = load_board("nucleo_f746")
    calib = verify.random_inputs(graph, 8, seed=5)
    fractions = measure_zero_fractions(tflite, graph, calib)
    ops = [op.name for op in graph.ops if op.opcode in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(ops) == len(LAYERS)  # in model order (the last op is named after the output)
    forced = {op: kernel for op, (*_, kernel) in zip(ops, LAYERS, strict=True)}
    planned = plan(graph, dsp=True, options=PlanOptions(layer_kernels=forced,
                                                        zero_fractions=fractions))
    chosen = {p.op.name: p.call.kernel.replace("_per_channel", "") for p in planned.code_ops}
    assert {chosen[layer] for layer in forced} == {k for *_, k in LAYERS}
    for layer, kernel in forced.items():
        assert chosen[layer] == kernel, (layer, planned.ops)
    inputs = np.concatenate([verify.random_inputs(planned.graph, 3, seed=6), calib[:1]])
    project = generate(planned, tmp_path / "src", model_name="every", source_name="every",
                       samples=inputs)
    fw = pipeline.make_firmware(project, board, tmp_path / "fw", stack_bytes=8192)
    res = parse_results(run_elf(board, fw.elf).uart)
    assert res.status == 0
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    cmp = verify.compare(verify.reference_outputs(tflite, planned.graph, inputs), actual)
    assert cmp.samples == 4 and cmp.mismatches == ()


# ---- the hand-scheduled block-sparse paths on the emulator ------------------------------------

R1_LAYERS = [  # (name, kind, args, sparsity, bias): 1x4 blocks, R = 1, full-range activations
    ("pw", "conv", (24, 1), 0.6, True),   # pointwise: four pixels widened at once, 30 pixels
    ("k3", "conv", (20, 3), 0.7, True),   # 3x3 SAME: windows in the padding
    ("d1", "dense", (44,), 0.75, True),
    ("d2", "dense", (11,), 0.5, False),   # no bias, no activation; row 0 without any block
]


def _zero_rows(layer: Any, sparsity: float, empty: tuple[int, ...] = ()) -> None:
    """Zeroes 1x4 blocks of every row (output channel) of a Conv2D / Dense kernel, keeping the
    row's largest ceil((1 - sparsity) * blocks), at least one (an all-zero row with a bias has
    a scale that the sparse kernels refuse), except the rows in ``empty``, zeroed whole."""
    kernel, *rest = layer.get_weights()
    rows = kernel.reshape(-1, kernel.shape[-1]).T.copy()  # [OUT, K] in Keras order (HWC, IN)
    blocks = rows.reshape(rows.shape[0], -1, 4)
    keep = max(1, int(np.ceil((1 - sparsity) * blocks.shape[1])))
    order = np.argsort(-np.abs(blocks).sum(axis=2), axis=1)
    for o in range(blocks.shape[0]):
        blocks[o, order[o, keep:]] = 0.0
        if o in empty:
            blocks[o] = 0.0
    layer.set_weights([np.ascontiguousarray(blocks.reshape(rows.shape).T.reshape(kernel.shape)),
                       *rest])


def _r1_model() -> bytes:
    import keras

    keras.utils.set_random_seed(zlib.crc32(b"r1 paths"))
    bias = keras.initializers.RandomUniform(-0.5, 0.5)
    x = inp = keras.Input((6, 5, 16))
    for name, kind, args, _, has_bias in R1_LAYERS:
        if kind == "dense" and len(x.shape) > 2:
            x = keras.layers.Flatten()(x)
        act = None if name == "d2" else "relu"
        if kind == "conv":
            x = keras.layers.Conv2D(args[0], args[1], padding="same", activation=act,
                                    bias_initializer=bias, name=name)(x)
        else:
            x = keras.layers.Dense(args[0], activation=act, use_bias=has_bias,
                                   bias_initializer=bias, name=name)(x)
    model = keras.Model(inp, x)
    for name, _, _, sparsity, _ in R1_LAYERS:
        _zero_rows(model.get_layer(name), sparsity, (0,) if name == "d2" else ())
    return convert_int8(model, (6, 5, 16))


def test_hand_scheduled_block_sparse_paths_are_bit_exact_on_the_emulator(tmp_path: Path) -> None:
    """The R = 1 conv pass and FC rows written in Arm assembly (tp_conv_bsr_s8.c,
    tp_fully_connected_bsr_s8.c) only run on the core: biases, no bias, an empty row, a partial
    last pass, pointwise and padded windows, against the reference."""
    tflite = _r1_model()
    graph = read_tflite(tflite)
    ops = [op.name for op in graph.ops if op.opcode in ("CONV_2D", "FULLY_CONNECTED")]
    kernels = ["tp_conv_bsr_s8" if kind == "conv" else "tp_fully_connected_bsr_s8"
               for _, kind, *_ in R1_LAYERS]
    planned = plan(graph, dsp=True, options=PlanOptions(
        layer_kernels=dict(zip(ops, kernels, strict=True))))
    calls = [p.call for p in planned.code_ops if p.op.name in ops]
    assert [c.encoding for c in calls] == ["bsr 1x4"] * len(R1_LAYERS)
    inputs = verify.random_inputs(planned.graph, 4, seed=7)
    project = generate(planned, tmp_path / "src", model_name="r1", source_name="r1",
                       samples=inputs)
    fw = pipeline.make_firmware(project, load_board("nucleo_f746"), tmp_path / "fw",
                                stack_bytes=8192)
    res = parse_results(run_elf(load_board("nucleo_f746"), fw.elf).uart)
    assert res.status == 0
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    cmp = verify.compare(verify.reference_outputs(tflite, planned.graph, inputs), actual)
    assert cmp.samples == 4 and cmp.mismatches == ()
