"""FULLY_CONNECTED on sparse weights: variants of the dense handler, chosen by estimated cost.

Each handler here accepts a FULLY_CONNECTED op the dense handler accepts when its kernel can run
it (the format fits, the SMMULR requantization is exact: :func:`requant_bound_ok`), and estimates
its cycles with the cost model (sparse_cost.py). The planner compares them with the dense
kernel's estimate. Arguments are the dense kernel's (:func:`fc_args`, bit-exact with TFLM's
Prepare), the weights are encoded by sparse_encoding.py, the call is rendered by
``templates/ops/fully_connected_sparse_s8.c.j2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels import sparse_cost
from tinyprune.kernels.base import Estimate, KernelCall, LowerContext, PlanOptions, register_variant
from tinyprune.kernels.fully_connected import FcArgs, FullyConnectedHandler, fc_args
from tinyprune.kernels.sparse_common import const_array, const_bytes, percent, requant_bound_ok
from tinyprune.kernels.sparse_encoding import (
    block_sparsity,
    encode_bsr,
    encode_csr,
    encode_nm,
    fits_nm,
    nm_kernel_values,
)
from tinyprune.kernels.sparse_variant import SparseVariant

TEMPLATE = "ops/fully_connected_sparse_s8.c.j2"


@dataclass(frozen=True)
class SparseFc:
    """How one sparse kernel would run a layer: what its estimate and its lowering share.

    Attributes:
        kernel: the per-tensor C function; the per-channel one adds ``_per_channel``.
        source: its C file under runtime/kernels/.
        family: its cost-model family (sparse_cost.COEFFICIENTS).
        work: its per-row work count (the feature ``work_name`` of the family).
        encoding: the report's name of the format, e.g. ``"bsr 1x4"``.
        detail: what it exploits, for the choice's reason.
        filter_type: the C struct of the filter argument.
        arrays: (struct field, values) of the constant arrays of the format.
        scalars: (struct field, value) of its scalar fields.
        scratch_dsp: scratch bytes on the DSP path.
        scratch_portable: scratch bytes on the portable path.
    """

    kernel: str
    source: str
    family: str
    work: float
    work_name: str
    encoding: str
    detail: str
    filter_type: str
    arrays: tuple[tuple[str, np.ndarray], ...]
    scalars: tuple[tuple[str, int], ...]
    scratch_dsp: int
    scratch_portable: int = 0

    @property
    def filter_bytes(self) -> int:
        return sum(const_bytes(v) for _, v in self.arrays)

    def cycles(self, a: FcArgs, model: str = "table") -> float:
        features = sparse_cost.fc_features(a.rows, a.in_features, a.out_features, self.work,
                                           self.work_name)
        return sparse_cost.cycles(self.family, features, model)


def _bsr(a: FcArgs, group: int) -> SparseFc:
    m = encode_bsr(a.weights, group, index="steps")
    empty = block_sparsity(a.weights, group)
    return SparseFc(
        kernel="tp_fully_connected_bsr_s8", source="tp_fully_connected_bsr_s8.c",
        family=f"fc_bsr_r{group}", work=m.stored_blocks, work_name="blocks",
        encoding=f"bsr {group}x4", detail=f"{group}x4 blocks, {percent(empty)} empty",
        filter_type="tp_bsr_filter",
        arrays=(("counts", m.counts), ("index", m.positions), ("blocks", m.blocks)),
        scalars=(("group", group), ("count_bytes", m.counts.itemsize), ("index_bytes", 1)),
        scratch_dsp=2 * (-(-a.in_features // 4) * 4))


def _nm(a: FcArgs, n: int) -> SparseFc:
    m = encode_nm(a.weights, n)
    codes = 6 if n == 2 else 16
    return SparseFc(
        kernel="tp_fully_connected_nm_s8", source="tp_fully_connected_nm_s8.c",
        family=f"fc_nm{n}", work=float(a.out_features * m.units), work_name="units",
        encoding=f"{n}:4", detail=f"{n}:4 (at most {n} of every 4 weights non-zero)",
        filter_type="tp_nm_filter",
        arrays=(("values", nm_kernel_values(m)), ("codes", m.codes.reshape(-1))),
        scalars=(("n", n),), scratch_dsp=4 * codes * m.units)


def _csr(a: FcArgs) -> SparseFc:
    m = encode_csr(a.weights)
    zeros = 1.0 - m.nnz / max(a.weights.size, 1)
    return SparseFc(
        kernel="tp_fully_connected_csr_s8", source="tp_fully_connected_csr_s8.c",
        family="fc_csr", work=float(m.nnz), work_name="nnz", encoding="csr",
        detail=f"unstructured, {percent(zeros)} zeros", filter_type="tp_csr_filter",
        arrays=(("counts", m.counts), ("index", m.cols), ("values", m.values)),
        scalars=(("count_bytes", m.counts.itemsize), ("index_bytes", m.cols.itemsize)),
        scratch_dsp=2 * a.in_features)


def zskip_weights(rows: np.ndarray) -> np.ndarray:
    """[OUT, IN] int8 regrouped for the zero-skipping kernel: [OUT4 / 4][IN][4] (tp_nn_sparse.h)."""
    out_f, in_f = rows.shape
    padded = np.zeros((-(-out_f // 4) * 4, in_f), np.int8)
    padded[:out_f] = rows
    return np.ascontiguousarray(padded.reshape(-1, 4, in_f).transpose(0, 2, 1)).reshape(-1)


def zskip(rows: np.ndarray, zero_fraction: float) -> SparseFc:
    """The zero-skipping kernel on [OUT, IN] weights, for inputs of which ``zero_fraction`` are
    the zero point (its cost counts, per batch row, the listed inputs times the groups of four
    outputs)."""
    out_f, in_f = rows.shape
    return SparseFc(
        kernel="tp_fully_connected_zskip_s8", source="tp_fully_connected_zskip_s8.c",
        family="fc_zskip", work=(1.0 - zero_fraction) * in_f * -(-out_f // 4), work_name="nz",
        encoding="dense, zero inputs skipped",
        detail=f"{percent(zero_fraction)} of its inputs at the zero point (calibration)",
        filter_type="", arrays=(("filter", zskip_weights(rows)),), scalars=(),
        scratch_dsp=4 * in_f, scratch_portable=4 * in_f)


class _SparseFcHandler(SparseVariant[FcArgs, SparseFc]):
    """What the sparse FC handlers share: the dense handler's checks, the formats (when the
    requantization bound holds), their lowering."""

    opcodes: ClassVar[tuple[str, ...]] = ("FULLY_CONNECTED",)

    def args(self, op: Op, graph: Graph) -> FcArgs:
        return fc_args(op, graph)

    def formats(self, a: FcArgs) -> list[SparseFc]:
        raise NotImplementedError

    def candidates(self, a: FcArgs) -> list[SparseFc]:
        if not requant_bound_ok(a.weights, a.bias, a.shift):
            return []
        return self.formats(a)

    def primary(self) -> FullyConnectedHandler:
        return FullyConnectedHandler()

    def lower_format(self, op: Op, ctx: LowerContext, a: FcArgs, s: SparseFc) -> KernelCall:
        return lower_candidate(op, ctx, a, s)


def lower_candidate(op: Op, ctx: LowerContext, a: FcArgs, s: SparseFc) -> KernelCall:
    """The call of one way (``s``, from a handler's ``candidates``) to run the layer."""
    scratch_bytes = s.scratch_dsp if ctx.dsp else s.scratch_portable
    if a.per_channel:
        quant_type = "tp_per_channel_quant"
        mult = ctx.const(f"{op.name}_mult", a.multiplier, "int32_t")
        shift = ctx.const(f"{op.name}_shift", a.shift, "int32_t")
    else:
        quant_type, mult, shift = "tp_per_tensor_quant", str(a.multiplier[0]), str(a.shift[0])
    fields: list[tuple[str, Any]] = list(s.scalars)
    fields += [(name, const_array(ctx, f"{op.name}_{name}", v)) for name, v in s.arrays]
    filter_arg = "&filter" if s.filter_type else str(fields[0][1])
    kernel = s.kernel.replace("_s8", "_per_channel_s8") if a.per_channel else s.kernel
    act = str(op.options.get("fused_activation_function", "NONE")).lower()
    params = {
        "kernel": kernel, "filter_type": s.filter_type, "filter_fields": fields,
        "filter_arg": filter_arg,
        "input": ctx.act(op.inputs[0]), "output": ctx.act(op.outputs[0]),
        "bias": "NULL" if a.bias is None else ctx.const(f"{op.name}_b", a.bias, "int32_t"),
        "quant_type": quant_type, "multiplier": mult, "shift": shift,
        "input_dims": {"n": a.rows, "h": 1, "w": 1, "c": a.in_features},
        "filter_dims": {"n": a.out_features, "h": 1, "w": 1, "c": a.in_features},
        "bias_dims": {"n": 1, "h": 1, "w": 1, "c": a.out_features},
        "output_dims": {"n": a.rows, "h": 1, "w": 1, "c": a.out_features},
        "input_offset": a.input_offset, "output_offset": a.output_offset,
        "act_min": a.act_min, "act_max": a.act_max,
        "scratch": ctx.scratch if scratch_bytes else "NULL", "scratch_bytes": scratch_bytes,
        "label": (f"fc {a.in_features}->{a.out_features} {s.encoding}"
                  f"{' per-channel' if a.per_channel else ''}"
                  f"{'' if act == 'none' else ' ' + act}"),
    }
    extra = a.weight_bytes - a.weights.size  # bias, multipliers, shifts: as the dense call
    return KernelCall(kernel=kernel, sources=(s.source,), template=TEMPLATE, params=params,
                      scratch_bytes=scratch_bytes, macs=a.macs,
                      weight_bytes=s.filter_bytes + extra, encoding=s.encoding,
                      dense_weight_bytes=a.weight_bytes)


class FcBsrHandler(_SparseFcHandler):
    """FULLY_CONNECTED with R x 4 block-sparse weights (R = 1, 2 or 4, the cheapest)."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_fully_connected_bsr_s8",)

    def formats(self, a: FcArgs) -> list[SparseFc]:
        return [_bsr(a, r) for r in (1, 2, 4) if a.out_features % r == 0]


class FcNmHandler(_SparseFcHandler):
    """FULLY_CONNECTED with N:4 sparse weights (2:4 or 1:4), when every group of 4 fits."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_fully_connected_nm_s8",)

    def formats(self, a: FcArgs) -> list[SparseFc]:
        return [_nm(a, n) for n in (2, 1) if fits_nm(a.weights, n)]


class FcCsrHandler(_SparseFcHandler):
    """FULLY_CONNECTED with unstructured sparse weights (CSR)."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_fully_connected_csr_s8",)

    def formats(self, a: FcArgs) -> list[SparseFc]:
        return [_csr(a)]


class FcZeroSkipHandler(_SparseFcHandler):
    """FULLY_CONNECTED skipping inputs at the zero point: estimated only for inputs whose
    fraction of zero-point values the plan options give (calibration)."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_fully_connected_zskip_s8",)

    kind: ClassVar[str] = "activation"

    def formats(self, a: FcArgs) -> list[SparseFc]:
        return [zskip(a.weights, 0.0)] if a.in_features <= MAX_ZSKIP_IN else []

    def estimate(self, op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate | None:
        z = options.zero_fractions.get(op.inputs[0])
        a = fc_args(op, graph)
        if z is None or self.best(a) is None:
            return None
        s = zskip(a.weights, z)
        return Estimate(s.cycles(a, options.cost_model), s.detail)


MAX_ZSKIP_IN = 16383
"""Largest IN of the zero-skipping kernel (byte offsets of 4 IN in 16 bits)."""


register_variant(FcBsrHandler())
register_variant(FcNmHandler())
register_variant(FcCsrHandler())
register_variant(FcZeroSkipHandler())
