"""One-layer sparse models on the emulator: what bench/sparse_kernels.py and the cost fit share.

A layer shape is a one-layer Keras model converted to int8 TFLite once; its weights are then
zeroed inside the .tflite in a pattern (tests/sparse_support.py) and the model goes through the
real stages: plan (with the kernel choice forced or automatic), codegen, firmware for the board,
the unicorn emulator (layer cycles from DWT CYCCNT, served by the emulator's cycle model), and
the firmware's outputs are compared with the TFLite Micro reference on the same weights.
"""

from __future__ import annotations

import contextlib
import os
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout; sparse_support (tests)


WEIGHTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
"""The ops whose weights the one-layer models zero (a depthwise [1, KH, KW, C] filter is one
row, so its 1x4 blocks are one tap of four channels when C % 4 == 0)."""


@dataclass(frozen=True)
class LayerShape:
    """A layer to measure.

    Attributes:
        id: its name in the tables, e.g. ``"fc 640->128 (AD)"``.
        input_shape: the model input (no batch).
        layer: makes the fresh Keras layer.
        cmsis_nn: FACTS.md's CMSIS-NN MACs/cycle on layers of this kind ("-" when none).
    """

    id: str
    input_shape: tuple[int, ...]
    layer: Callable[[], Any]
    cmsis_nn: str = "-"


def conv(filters: int, kernel: int | tuple[int, int], **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Conv2D(filters, kernel, activation="relu", **kw)
    return make


def depthwise(kernel: int | tuple[int, int], **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.DepthwiseConv2D(kernel, activation="relu", **kw)
    return make


def dense(units: int) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Dense(units, activation="relu")
    return make


def base_model(shape: LayerShape) -> bytes:
    """The dense one-layer int8 model of the shape (seeded)."""
    import keras

    from tinyprune.models.load import wrap_model
    from tinyprune.quantize import quantize

    keras.utils.set_random_seed(zlib.crc32(shape.id.encode()))
    model = keras.Sequential([keras.Input(shape.input_shape), shape.layer()])
    return quantize(wrap_model(model), None, samples=16)


def weight_tensor(tflite: bytes) -> tuple[int, Any]:
    """(index, data) of the conv / depthwise / FC weight tensor of a one-layer model."""
    from tinyprune.ir import read_tflite

    graph = read_tflite(tflite)
    op = next(o for o in graph.ops if o.opcode in WEIGHTED)
    t = graph.tensor(op.inputs[1])
    return t.index, t.data


def sparsified(base: bytes, pattern: str, sparsity: float) -> bytes:
    """The model with its weights zeroed in ``pattern`` (dense when sparsity is 0)."""
    from sparse_support import sparsify_layer

    if sparsity == 0.0:
        return base
    index, data = weight_tensor(base)
    return sparsify_layer(base, index, data, pattern, sparsity)[0]


@dataclass(frozen=True)
class Measured:
    kernel: str
    encoding: str
    macs: int
    cycles: int
    weight_bytes: int
    dense_weight_bytes: int | None
    filter_bytes: int
    est_cycles: float | None
    sparsity: float | None
    reason: str
    bit_exact: bool
    params: dict[str, Any]


@contextlib.contextmanager
def only_family(family: str | None) -> Iterator[None]:
    """Makes the sparse handlers offer only the candidates of one cost-model family (to measure
    a given block height or format); None changes nothing."""
    from tinyprune.kernels import sparse_conv, sparse_depthwise, sparse_fc

    if family is None:
        yield
        return
    classes = [sparse_fc._SparseFcHandler, sparse_conv._SparseConvHandler,
               sparse_depthwise.DepthwiseBsrHandler]
    saved = [(c, c.__dict__.get("best")) for c in classes]

    def wrap(original: Any) -> Any:
        def best(self: Any, a: Any) -> Any:
            if original(self, a) is None:
                return None
            options = [c for c in self.candidates(a) if c.family == family]
            return min(options, key=lambda c: c.cycles(a)) if options else None
        return best

    for cls, original in saved:
        cls.best = wrap(original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for cls, original in saved:
            cls.best = original  # type: ignore[method-assign]


def inputs_with_zeros(graph: Any, n: int, fraction: float) -> Any:
    """Random raw inputs with ``fraction`` of the values set to the input zero point."""
    import numpy as np

    from tinyprune import verify

    x = verify.random_inputs(graph, n, seed=1)
    if fraction > 0:
        t = graph.tensor(graph.inputs[0])
        rng = np.random.default_rng(2)
        x[rng.random(x.shape) < fraction] = np.uint8(t.zero_point & 0xFF)
    return x


def measure(tflite: bytes, board_name: str, work: Path, *, kernels: str = "auto",
            samples: int = 2, family: str | None = None,
            zero_fraction: float | None = None) -> Measured:
    """Builds the model for the board with the kernel choice ``kernels`` (only ``family``'s
    candidates when given) and runs it; ``zero_fraction`` sets that fraction of the inputs to
    the zero point and tells the planner so."""
    import numpy as np

    from tinyprune import pipeline, verify
    from tinyprune.codegen import generate
    from tinyprune.emulator import run_elf
    from tinyprune.emulator.protocol import parse_results
    from tinyprune.firmware.boards import load_board
    from tinyprune.ir import read_tflite
    from tinyprune.plan import PlanOptions, plan

    board = load_board(board_name)
    graph = read_tflite(tflite)
    fractions = {} if zero_fraction is None else {graph.inputs[0]: zero_fraction}
    with only_family(family):
        planned = plan(graph, dsp=board.dsp,
                       options=PlanOptions(kernels=kernels, zero_fractions=fractions))
    inputs = inputs_with_zeros(planned.graph, samples, zero_fraction or 0.0)
    project = generate(planned, work / "src", model_name="layer", source_name="layer.tflite",
                       samples=inputs)
    fw = pipeline.make_firmware(project, board, work / "fw", stack_bytes=8192)
    # the table model, as the docs and the whole-model bench say (run_elf's default is the
    # board core's model, m7 on nucleo_f746)
    res = parse_results(run_elf(board, fw.elf, cycle_model="table").uart)
    if res.status != 0:
        raise RuntimeError(f"the firmware's kernel returned status {res.status}")
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    expected = verify.reference_outputs(tflite, planned.graph, inputs)
    op = max(planned.code_ops, key=lambda p: p.call.macs)
    i = planned.code_ops.index(op)
    cycles = int(np.mean([s.layer_cycles[i] for s in res.samples]))
    call = op.call
    quant_bytes = (call.dense_weight_bytes or call.weight_bytes) - int(
        graph.tensor(op.op.inputs[1]).size)
    est = call.sparse_cycles if call.encoding != "dense" else call.dense_cycles
    return Measured(kernel=call.kernel, encoding=call.encoding, macs=call.macs, cycles=cycles,
                    weight_bytes=call.weight_bytes, dense_weight_bytes=call.dense_weight_bytes,
                    filter_bytes=call.weight_bytes - quant_bytes, est_cycles=est,
                    sparsity=call.sparsity, reason=call.reason,
                    bit_exact=verify.compare(expected, actual).bit_exact, params=call.params)
