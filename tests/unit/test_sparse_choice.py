"""Kernel choice per layer: the registry's variants, the planner's cheapest-estimate rule, the
figures and reason a KernelCall carries, the plan options, activation statistics."""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
from conftest import convert_int8
from sparse_support import sparsify_layer

from tinyprune.errors import UnsupportedError
from tinyprune.ir import Graph, Op, read_tflite
from tinyprune.kernels import base
from tinyprune.kernels.base import (
    Estimate,
    KernelCall,
    PlanOptions,
    handler_for,
    handlers_for,
    register,
    register_variant,
)
from tinyprune.plan import choose_kernel, plan
from tinyprune.plan.activations import measure_zero_fractions, zero_point_fraction

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _model(name: str, input_shape: tuple[int, ...], layer: Callable[[], Any]) -> bytes:
    import keras

    keras.utils.set_random_seed(zlib.crc32(name.encode()))
    return convert_int8(keras.Sequential([keras.Input(input_shape), layer()]), input_shape)


@pytest.fixture(scope="module")
def models() -> dict[str, bytes]:
    import keras

    return {
        "fc": _model("fc", (256,), lambda: keras.layers.Dense(64, activation="relu")),
        "conv": _model("conv", (12, 12, 32), lambda: keras.layers.Conv2D(32, 3, padding="same")),
        "pw": _model("pw", (10, 10, 64), lambda: keras.layers.Conv2D(64, 1)),
    }


def _op(graph: Graph) -> Op:
    return next(o for o in graph.ops if o.opcode in ("CONV_2D", "FULLY_CONNECTED"))


def _sparse(tflite: bytes, pattern: str, sparsity: float) -> bytes:
    graph = read_tflite(tflite)
    w = graph.tensor(_op(graph).inputs[1])
    assert w.data is not None
    return sparsify_layer(tflite, w.index, w.data, pattern, sparsity)[0]


def _call(tflite: bytes, options: PlanOptions | None = None, dsp: bool = True) -> KernelCall:
    planned = plan(read_tflite(tflite), dsp=dsp, options=options)
    return next(p.call for p in planned.code_ops if p.op.opcode in ("CONV_2D",
                                                                     "FULLY_CONNECTED"))


@pytest.mark.parametrize("name", ["fc", "conv", "pw"])
def test_dense_weights_keep_the_dense_kernel(models: dict[str, bytes], name: str) -> None:
    call = _call(models[name])
    assert call.encoding == "dense" and "bsr" not in call.kernel
    assert call.dense_cycles is not None and call.sparse_cycles is not None
    assert call.dense_cycles < call.sparse_cycles  # the best sparse kernel was priced higher
    assert call.reason.startswith("dense: est.") and "the best other" in call.reason
    assert call.sparsity is not None and call.sparsity < 0.1
    assert call.dense_weight_bytes == call.weight_bytes


@pytest.mark.parametrize("name", ["fc", "conv", "pw"])
def test_75_percent_1x4_blocks_get_the_block_sparse_kernel(models: dict[str, bytes],
                                                           name: str) -> None:
    call = _call(_sparse(models[name], "1x4", 0.75))
    assert call.encoding.startswith("bsr ") and "_bsr_" in call.kernel
    assert call.sparsity is not None and call.sparsity >= 0.75
    assert call.dense_cycles is not None and call.sparse_cycles is not None
    assert call.sparse_cycles < call.dense_cycles
    assert "blocks, 75.0% empty" in call.reason and "x the dense kernel's" in call.reason
    assert call.dense_weight_bytes is not None
    assert call.weight_bytes < 0.5 * call.dense_weight_bytes


def test_forced_choices_and_per_layer_overrides(models: dict[str, bytes]) -> None:
    sparse = _sparse(models["fc"], "1x4", 0.75)
    forced_dense = _call(sparse, PlanOptions(kernels="dense"))
    assert forced_dense.encoding == "dense" and forced_dense.reason.startswith("forced: dense")
    forced_sparse = _call(models["fc"], PlanOptions(kernels="sparse"))
    assert forced_sparse.encoding != "dense" and forced_sparse.reason.startswith("forced: ")
    layer = _op(read_tflite(sparse)).name
    per_layer = _call(sparse, PlanOptions(kernels="sparse", layer_kernels={layer: "dense"}))
    assert per_layer.encoding == "dense"


def test_no_activation_kernel_without_measured_fractions(models: dict[str, bytes]) -> None:
    call = _call(models["fc"], PlanOptions(kernels="activation"))
    assert call.encoding == "dense" and call.reason == "no activation kernel accepts the layer"


@pytest.mark.parametrize("name", ["fc", "pw"])
def test_mostly_zero_inputs_choose_the_zero_skipping_kernel(models: dict[str, bytes],
                                                            name: str) -> None:
    graph = read_tflite(models[name])
    x = _op(graph).inputs[0]
    busy = _call(models[name], PlanOptions(zero_fractions={x: 0.05}))
    assert "zskip" not in busy.kernel
    idle = _call(models[name], PlanOptions(zero_fractions={x: 0.95}))
    assert "zskip" in idle.kernel and idle.encoding == "dense, zero inputs skipped"
    assert "95.0% of its inputs at the zero point" in idle.reason
    assert idle.weight_bytes == idle.dense_weight_bytes  # same bytes, regrouped


def test_plan_options_are_validated() -> None:
    with pytest.raises(ValueError, match=r"kernels: expected one of auto, dense, sparse"):
        PlanOptions(kernels="fast")
    with pytest.raises(ValueError, match=r"layer_kernels\['fc'\]: expected one of .* or a "
                                         r"kernel name \(tp_\.\.\.\), received 'blocks'"):
        PlanOptions(layer_kernels={"fc": "blocks"})
    with pytest.raises(ValueError, match=r"zero_fractions\[3\]: expected a fraction"):
        PlanOptions(zero_fractions={3: 1.5})


# ---- the generic rule, with handlers of a fake op ---------------------------------------------

class _Fake:
    opcodes: ClassVar[tuple[str, ...]] = ("TP_TEST_OP",)

    def __init__(self, kernel: str, cycles: float | None, kind: str = "dense") -> None:
        self.kernel, self.cycles, self.kind = kernel, cycles, kind

    def check(self, op: Op, graph: Graph) -> None:
        if op.name == "refused":
            raise UnsupportedError(f"layer '{op.name}': refused")

    def estimate(self, op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate | None:
        return None if self.cycles is None else Estimate(self.cycles, self.kernel)

    def lower(self, op: Op, graph: Graph, ctx: Any) -> KernelCall:
        return KernelCall(kernel=self.kernel)


class _Sparse(_Fake):
    kernels: ClassVar[tuple[str, ...]] = ("tp_sparse_k",)


class _Activation(_Fake):
    pass


@pytest.fixture
def fake_op() -> Iterator[Callable[..., Op]]:
    saved = dict(base._PRIMARY), {k: list(v) for k, v in base._VARIANTS.items()}
    handlers_for(Op(0, "ADD", (), (), {}, "x"))  # loads the real handlers first

    def make(primary: float | None, sparse: float | None, activation: float | None = None,
             name: str = "layer") -> Op:
        register(_Fake("dense_k", primary))
        register_variant(_Sparse("sparse_k", sparse, "sparse"))
        register_variant(_Activation("act_k", activation, "activation"))
        return Op(0, "TP_TEST_OP", (), (), {}, name)
    yield make
    base._PRIMARY.clear()
    base._PRIMARY.update(saved[0])
    base._VARIANTS.clear()
    base._VARIANTS.update(saved[1])


def _choose(op: Op, **options: Any) -> tuple[str, str]:
    c = choose_kernel(op, Graph((), (op,), (), ()), True, PlanOptions(**options))
    return c.entry.handler.lower(op, Graph((), (), (), ()), None).kernel, c.reason


@pytest.mark.parametrize("costs, options, kernel", [
    ((100.0, 40.0, None), {}, "sparse_k"),
    ((100.0, 140.0, None), {}, "dense_k"),
    ((100.0, 140.0, 60.0), {}, "act_k"),
    ((100.0, 140.0, 60.0), {"kernels": "sparse"}, "sparse_k"),
    ((100.0, 40.0, None), {"kernels": "dense"}, "dense_k"),
    ((100.0, None, None), {"kernels": "sparse"}, "dense_k"),  # no sparse kernel accepts
    ((None, 40.0, None), {}, "dense_k"),  # the primary cannot be compared
    ((100.0, 40.0, None), {"layer_kernels": {"layer": "dense"}}, "dense_k"),
    ((100.0, 140.0, 60.0), {"layer_kernels": {"layer": "tp_sparse_k"}}, "sparse_k"),
])
def test_the_cheapest_accepting_handler_of_the_allowed_kinds_wins(
        fake_op: Callable[..., Op], costs: tuple[float | None, ...], options: dict[str, Any],
        kernel: str) -> None:
    op = fake_op(*costs)
    assert handler_for(op).__class__ is _Fake
    assert [e.kind for e in handlers_for(op)] == ["dense", "sparse", "activation"]
    assert _choose(op, **options)[0] == kernel


def test_reasons_name_both_estimates(fake_op: Callable[..., Op]) -> None:
    assert _choose(fake_op(100.0, 40.0)) == (
        "sparse_k", "sparse_k: est. 40 cycles, 0.40x the dense kernel's 100")
    assert _choose(fake_op(100.0, 140.0)) == (
        "dense_k", "dense_k: est. 100 cycles; the best other (sparse_k) est. 140 (1.40x)")
    assert _choose(fake_op(None, 40.0)) == ("dense_k", "no estimate for the primary kernel")


def test_the_primary_handler_validates_the_op(fake_op: Callable[..., Op]) -> None:
    with pytest.raises(UnsupportedError, match="refused"):
        _choose(fake_op(100.0, 40.0, name="refused"))


def test_registering_a_variant_class_again_replaces_it(fake_op: Callable[..., Op]) -> None:
    op = fake_op(100.0, 40.0)
    register_variant(_Sparse("sparse_k2", 30.0, "sparse"))
    kinds = [type(e.handler).__name__ for e in handlers_for(op)]
    assert kinds == ["_Fake", "_Activation", "_Sparse"]
    assert _choose(op)[0] == "sparse_k2"


def test_a_bad_kind_is_refused() -> None:
    with pytest.raises(ValueError, match=r"_Fake.kind: expected one of dense, sparse, activation"):
        register_variant(_Fake("k", 1.0, kind="fast"))


# ---- activation statistics --------------------------------------------------------------------

def test_zero_point_fraction() -> None:
    assert zero_point_fraction(np.array([-128, -128, 3, 5], np.int8), -128) == 0.5
    with pytest.raises(ValueError, match="empty"):
        zero_point_fraction(np.zeros(0, np.int8), 0)


def test_measured_fractions_on_calibration_inputs(models: dict[str, bytes]) -> None:
    from tinyprune import verify

    graph = read_tflite(models["fc"])
    x = graph.tensor(graph.inputs[0])
    inputs = verify.random_inputs(graph, 8, seed=3)
    inputs[:, ::2] = np.uint8(x.zero_point & 0xFF)  # half of every input at the zero point
    fractions = measure_zero_fractions(models["fc"], graph, inputs)
    expected = float(np.mean(inputs.view(np.int8) == x.zero_point))
    assert list(fractions) == [x.index]
    assert fractions[x.index] == pytest.approx(expected) and 0.5 <= expected < 0.52


def test_a_sparse_call_keeps_the_real_sparsity(models: dict[str, bytes]) -> None:
    tflite = _sparse(models["conv"], "4x4", 0.5)
    call = _call(tflite)
    w = read_tflite(tflite).tensor(_op(read_tflite(tflite)).inputs[1])
    assert w.data is not None
    assert call.sparsity == round(float(np.mean(w.data == 0)), 4)
    assert dataclasses.replace(call).reason == call.reason


def test_a_kernel_can_be_forced_by_name(models: dict[str, bytes]) -> None:
    tflite = _sparse(models["conv"], "2:4", 0.5)
    layer = _op(read_tflite(tflite)).name
    for kernel in ("tp_conv_nm_s8", "tp_conv_csr_s8", "tp_conv_bsr_s8"):
        call = _call(tflite, PlanOptions(layer_kernels={layer: kernel}))
        assert call.kernel == kernel and call.reason.startswith("forced: ")
    with pytest.raises(ValueError, match=rf"layer '{layer}': kernel tp_conv_fast_s8 is not one "
                                         r"of its kernels; expected one of tp_conv_bsr_s8"):
        _call(tflite, PlanOptions(layer_kernels={layer: "tp_conv_fast_s8"}))
    dense = _call(models["conv"], PlanOptions(layer_kernels={layer: "tp_conv_nm_s8"}))
    assert dense.encoding == "dense"  # dense weights are not 2:4: the kernel does not accept
    # (the planner may append a memory note, e.g. the narrow scratch at the peak)
    assert dense.reason.startswith("no tp_conv_nm_s8 kernel accepts the layer")


def test_nearly_dense_weights_never_take_a_sparse_kernel_in_auto(models: dict[str, bytes]
                                                                 ) -> None:
    """5% of the 1x4 blocks empty: a sparse kernel may be estimated cheaper on some shapes,
    but below MIN_SPARSE_WEIGHTS the dense kernel is kept (the gain is inside the model's
    error and the format costs index bytes); forcing the sparse kind still works."""
    from tinyprune.plan.planner import MIN_SPARSE_WEIGHTS

    tflite = _sparse(models["conv"], "1x4", 0.05)
    call = _call(tflite)
    assert call.sparsity is not None and call.sparsity < MIN_SPARSE_WEIGHTS
    assert call.encoding == "dense" and call.est_cycles == call.dense_cycles
    assert f"below the {MIN_SPARSE_WEIGHTS:.0%} a sparse format needs" in call.reason
    forced = _call(tflite, PlanOptions(kernels="sparse"))
    assert forced.encoding.startswith("bsr") and forced.est_cycles == forced.sparse_cycles


@pytest.mark.parametrize("name", ["fc", "conv", "pw"])
def test_the_choice_prices_kernels_with_the_fit_of_its_cycle_model(models: dict[str, bytes],
                                                                   name: str) -> None:
    """The m7 fit prices the same layer and kernels from its own coefficients (M7: fewer
    cycles than the table); a model without a fit of its own uses the table's."""
    from tinyprune.kernels import sparse_cost

    tflite = _sparse(models[name], "1x4", 0.75)
    table, m7, m4 = (_call(tflite, PlanOptions(cost_model=m)) for m in ("table", "m7", "m4"))
    assert sparse_cost.FITS["m7"] is not sparse_cost.FITS["table"]
    assert m7.dense_cycles is not None and table.dense_cycles is not None
    assert m7.dense_cycles < table.dense_cycles
    assert m7.sparse_cycles is not None and table.sparse_cycles is not None
    assert m7.sparse_cycles < table.sparse_cycles
    assert (m4.dense_cycles, m4.sparse_cycles) == (table.dense_cycles, table.sparse_cycles)
    assert plan(read_tflite(tflite), dsp=True, options=PlanOptions(cost_model="m7")
                ).cost_model == "m7"


def test_builds_price_kernels_with_the_table_fit_on_every_board_and_cycle_model() -> None:
    """bench/results/kernel_choice.md: the M7 fit chose worse on whole models, even timed by
    the M7 model, so builds keep the table fit."""
    from tinyprune.config import Budgets
    from tinyprune.pipeline import plan_options

    for budgets in (Budgets(), Budgets(flash=65536)):
        assert plan_options(budgets).cost_model == "table"


def test_the_dense_fc_is_priced_in_whole_groups_of_four_rows() -> None:
    """The interleaved FC stream runs four rows at a time over inputs padded to a word: a
    64 -> 10 layer does 12 rows of 64, a 30 -> 6 one 8 rows of 32."""
    from tinyprune.kernels import sparse_cost
    from tinyprune.kernels.fully_connected import FcArgs

    def args(n_in: int, n_out: int) -> FcArgs:
        return FcArgs(rows=1, in_features=n_in, out_features=n_out, input_offset=0,
                      output_offset=0, act_min=-128, act_max=127, per_channel=True,
                      multiplier=np.ones(n_out, np.int32), shift=np.zeros(n_out, np.int32),
                      weights=np.ones((n_out, n_in), np.int8), bias=None)

    assert sparse_cost.fc_dense_features(args(64, 10))["macs"] == 64 * 12
    assert sparse_cost.fc_dense_features(args(30, 6))["macs"] == 32 * 8
    assert sparse_cost.fc_dense_features(args(64, 12))["macs"] == 64 * 12
    per_output = sparse_cost.COEFFICIENTS["fc_dense"]["out"]  # the two padded rows cost work
    assert sparse_cost.fc_dense_cycles(args(64, 10)) == pytest.approx(
        sparse_cost.fc_dense_cycles(args(64, 12)) - 2 * per_output)
