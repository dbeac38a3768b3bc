"""CONV_2D on sparse weights: variants of the dense conv handler, chosen by estimated cost.

Like sparse_fc.py: each handler accepts a CONV_2D op the dense handler accepts when its kernel
can run it (format fits, SMMULR requantization exact), estimates its cycles with the cost model
and lowers it to its kernel with the TFLM arguments (:func:`conv_args`) and the encoded filter
(rows ``[C_OUT, KH * KW * C_IN]``, the filter's own memory order). The call is rendered by
``templates/ops/conv_sparse_s8.c.j2``. DEPTHWISE_CONV_2D has its own sparse variant
(sparse_depthwise.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels import sparse_cost
from tinyprune.kernels.base import Estimate, KernelCall, LowerContext, PlanOptions, register_variant
from tinyprune.kernels.conv import ConvArgs, ConvHandler, conv_args, folded_bias
from tinyprune.kernels.fully_connected import FcArgs
from tinyprune.kernels.sparse_common import const_array, const_bytes, percent, requant_bound_ok
from tinyprune.kernels.sparse_encoding import (
    BLOCK,
    block_sparsity,
    encode_bsr,
    encode_csr,
    encode_nm,
    fits_nm,
    nm_kernel_values,
)
from tinyprune.kernels.sparse_fc import MAX_ZSKIP_IN, zskip
from tinyprune.kernels.sparse_fc import lower_candidate as lower_fc
from tinyprune.kernels.sparse_variant import SparseVariant

TEMPLATE = "ops/conv_sparse_s8.c.j2"
PIXELS = 4
"""Output pixels per pass of the sparse conv kernels' DSP paths."""
SQ_CHANNEL_BYTES = 20
"""sizeof(tp_sq_channel): one channel's requantization, split once per call (tp_sparse_dsp.h)."""


def filter_rows(a: ConvArgs) -> np.ndarray:
    """The filter as rows ``[C_OUT, KH * KW * C_IN]`` (its memory order, unchanged)."""
    return a.weights.reshape(a.filter_shape[0], -1)


def depth4(a: ConvArgs) -> int:
    _, kh, kw, c = a.filter_shape
    return -(-kh * kw * c // BLOCK) * BLOCK


def pixels(a: ConvArgs) -> int:
    n, oh, ow, _ = a.output_shape
    return n * oh * ow


@dataclass(frozen=True)
class SparseConv:
    """How one sparse kernel would run a conv layer (see sparse_fc.SparseFc).

    Attributes:
        work: the family's work count per pass of PIXELS pixels (e.g. stored blocks x R).
        requant_ok: the SMMULR requantization is exact for the layer (requant_bound_ok).
        bias: the bias the kernel takes when it is not the layer's (the folded one).
        folded: the kernel takes the folded bias (bias + input_offset * sum of weights).
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
    scratch_portable: int
    requant_ok: bool = True
    bias: np.ndarray | None = None
    folded: bool = False

    @property
    def filter_bytes(self) -> int:
        return sum(const_bytes(v) for _, v in self.arrays)

    def cycles(self, a: ConvArgs, model: str = "table") -> float:
        features = sparse_cost.conv_features(pixels(a), depth4(a), a.output_shape[3], self.work,
                                             self.work_name, PIXELS)
        return sparse_cost.cycles(self.family, features, model)


def _bsr(a: ConvArgs, group: int) -> SparseConv | None:
    rows = filter_rows(a)
    bias = folded_bias(a)
    if bias is None:
        return None
    m = encode_bsr(rows, group, index="cols")
    counts = m.counts.astype(np.int64)
    # per row group, its blocks row by row ([R][count][4]): each filter row's words contiguous
    parts, start = [], 0
    for n in counts:
        parts.append(m.blocks[start:start + n].transpose(1, 0, 2).reshape(-1))
        start += n
    blocks = np.concatenate(parts) if parts else np.zeros(0, np.int8)
    k4 = depth4(a)
    return SparseConv(
        kernel="tp_conv_bsr_s8", source="tp_conv_bsr_s8.c", family=f"conv_bsr_r{group}",
        work=float(m.stored_blocks * group), work_name="blocks",
        encoding=f"bsr {group}x4",
        detail=f"{group}x4 blocks, {percent(block_sparsity(rows, group))} empty",
        filter_type="tp_bsr_filter",
        arrays=(("counts", m.counts), ("index", m.positions), ("blocks", blocks.astype(np.int8))),
        scalars=(("group", group), ("count_bytes", m.counts.itemsize),
                 ("index_bytes", m.positions.itemsize)),
        scratch_dsp=(2 * PIXELS + 1) * k4 + (4 * PIXELS + SQ_CHANNEL_BYTES) * a.output_shape[3],
        scratch_portable=k4, bias=bias, folded=True,
        requant_ok=requant_bound_ok(rows, bias, a.shift, max_input=128))


def _nm(a: ConvArgs, n: int) -> SparseConv:
    rows = filter_rows(a)
    m = encode_nm(rows, n)
    codes = 6 if n == 2 else 16
    window = m.units * m.unit_values
    c_out = a.output_shape[3]
    return SparseConv(
        kernel="tp_conv_nm_s8", source="tp_conv_nm_s8.c", family=f"conv_nm{n}",
        work=float(c_out * m.units), work_name="units", encoding=f"{n}:4",
        detail=f"{n}:4 (at most {n} of every 4 weights non-zero)", filter_type="tp_nm_filter",
        arrays=(("values", nm_kernel_values(m)), ("codes", m.codes.reshape(-1))),
        scalars=(("n", n),),
        scratch_dsp=m.units * codes * PIXELS * 4 + (4 * PIXELS + SQ_CHANNEL_BYTES) * c_out
        + window,
        scratch_portable=window)


def _csr(a: ConvArgs) -> SparseConv:
    rows = filter_rows(a)
    m = encode_csr(rows)
    k4 = depth4(a)
    zeros = 1.0 - m.nnz / max(rows.size, 1)
    return SparseConv(
        kernel="tp_conv_csr_s8", source="tp_conv_csr_s8.c", family="conv_csr",
        work=float(m.nnz), work_name="nnz", encoding="csr",
        detail=f"unstructured, {percent(zeros)} zeros", filter_type="tp_csr_filter",
        arrays=(("counts", m.counts), ("index", m.cols), ("values", m.values)),
        scalars=(("count_bytes", m.counts.itemsize), ("index_bytes", m.cols.itemsize)),
        scratch_dsp=(2 * PIXELS + 1) * k4 + (4 * PIXELS + SQ_CHANNEL_BYTES) * a.output_shape[3],
        scratch_portable=k4)


class _SparseConvHandler(SparseVariant[ConvArgs, SparseConv]):
    """What the sparse conv handlers share: the dense handler's checks, the formats whose
    requantization is exact, their lowering."""

    opcodes: ClassVar[tuple[str, ...]] = ("CONV_2D",)

    def args(self, op: Op, graph: Graph) -> ConvArgs:
        return conv_args(op, graph)

    def formats(self, a: ConvArgs) -> list[SparseConv]:
        raise NotImplementedError

    def candidates(self, a: ConvArgs) -> list[SparseConv]:
        if not requant_bound_ok(filter_rows(a), a.bias, a.shift):
            return []
        return [c for c in self.formats(a) if c.requant_ok]

    def primary(self) -> ConvHandler:
        return ConvHandler()

    def lower_format(self, op: Op, ctx: LowerContext, a: ConvArgs, s: SparseConv
                     ) -> KernelCall:
        return lower_candidate(op, ctx, a, s)


def _dims(shape: tuple[int, ...]) -> dict[str, int]:
    return {"n": shape[0], "h": shape[1], "w": shape[2], "c": shape[3]}


def _bias_symbol(ctx: LowerContext, op: Op, bias: np.ndarray | None) -> str:
    return "NULL" if bias is None else ctx.const(f"{op.name}_b", bias, "int32_t")


def lower_candidate(op: Op, ctx: LowerContext, a: ConvArgs, s: SparseConv) -> KernelCall:
    """The call of one way (``s``, from a handler's ``candidates``) to run the layer."""
    scratch_bytes = s.scratch_dsp if ctx.dsp else s.scratch_portable
    fields: list[tuple[str, Any]] = list(s.scalars)
    fields += [(name, const_array(ctx, f"{op.name}_{name}", v)) for name, v in s.arrays]
    _, kh, kw, _ = a.filter_shape
    act = str(op.options.get("fused_activation_function", "NONE")).lower()
    params = {
        "kernel": s.kernel, "filter_type": s.filter_type, "filter_fields": fields,
        "input": ctx.act(op.inputs[0]), "output": ctx.act(op.outputs[0]),
        "bias": _bias_symbol(ctx, op, s.bias if s.folded else a.bias),
        "multiplier": ctx.const(f"{op.name}_mult", a.multiplier, "int32_t"),
        "shift": ctx.const(f"{op.name}_shift", a.shift, "int32_t"),
        "input_dims": _dims(a.input_shape), "filter_dims": _dims(a.filter_shape),
        "bias_dims": _dims((1, 1, 1, a.output_shape[3])), "output_dims": _dims(a.output_shape),
        "input_offset": a.input_offset, "output_offset": a.output_offset,
        "stride_w": a.stride[0], "stride_h": a.stride[1],
        "pad_w": a.padding[0], "pad_h": a.padding[1],
        "dilation_w": a.dilation[0], "dilation_h": a.dilation[1],
        "act_min": a.act_min, "act_max": a.act_max,
        "scratch": ctx.scratch if scratch_bytes else "NULL", "scratch_bytes": scratch_bytes,
        "label": (f"conv {kh}x{kw}/{a.stride[0]}x{a.stride[1]} {a.input_shape[3]}->"
                  f"{a.output_shape[3]} {s.encoding}{'' if act == 'none' else ' ' + act}"),
    }
    extra = a.weight_bytes - a.weights.size  # bias, multipliers, shifts: as the dense call
    if s.folded and a.bias is None:
        extra += 4 * a.output_shape[3]  # the folded bias is emitted even without a bias
    return KernelCall(kernel=s.kernel, sources=(s.source,), template=TEMPLATE, params=params,
                      scratch_bytes=scratch_bytes, macs=a.macs,
                      weight_bytes=s.filter_bytes + extra, encoding=s.encoding,
                      dense_weight_bytes=a.weight_bytes)


class ConvBsrHandler(_SparseConvHandler):
    """CONV_2D (1x1 and kxk) with R x 4 block-sparse filter rows (R = 1, 2 or 4)."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_conv_bsr_s8",)

    def formats(self, a: ConvArgs) -> list[SparseConv]:
        out = [_bsr(a, r) for r in (1, 2, 4) if a.output_shape[3] % r == 0]
        return [c for c in out if c is not None]


class ConvNmHandler(_SparseConvHandler):
    """CONV_2D with N:4 sparse filter rows (2:4 or 1:4), when every group of 4 fits."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_conv_nm_s8",)

    def formats(self, a: ConvArgs) -> list[SparseConv]:
        rows = filter_rows(a)
        return [_nm(a, n) for n in (2, 1) if fits_nm(rows, n)]


class ConvCsrHandler(_SparseConvHandler):
    """CONV_2D with unstructured sparse filter rows (CSR)."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_conv_csr_s8",)

    def formats(self, a: ConvArgs) -> list[SparseConv]:
        return [_csr(a)]


def _is_pointwise(a: ConvArgs) -> bool:
    """1x1, stride 1: the output pixels are the input pixels, an FC over them."""
    _, kh, kw, _ = a.filter_shape
    return (kh, kw) == (1, 1) and a.stride == (1, 1) and a.input_shape[:3] == a.output_shape[:3]


class Conv1x1ZeroSkipHandler:
    """A 1x1, stride-1 CONV_2D as the zero-skipping FULLY_CONNECTED kernel over its pixels,
    estimated only for inputs whose fraction of zero-point values the plan options give."""

    kernels: ClassVar[tuple[str, ...]] = ("tp_fully_connected_zskip_s8",)

    opcodes: ClassVar[tuple[str, ...]] = ("CONV_2D",)
    kind: ClassVar[str] = "activation"

    def _accepts(self, a: ConvArgs) -> bool:
        return (_is_pointwise(a) and a.input_shape[3] <= MAX_ZSKIP_IN
                and requant_bound_ok(filter_rows(a), a.bias, a.shift))

    def check(self, op: Op, graph: Graph) -> None:
        ConvHandler().check(op, graph)

    def estimate(self, op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate | None:
        z = options.zero_fractions.get(op.inputs[0])
        a = conv_args(op, graph)
        if z is None or not self._accepts(a):
            return None
        s = zskip(filter_rows(a), z)
        features = sparse_cost.fc_features(pixels(a), a.input_shape[3], a.output_shape[3],
                                           s.work, s.work_name)
        return Estimate(sparse_cost.cycles(s.family, features, options.cost_model), s.detail)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        a = conv_args(op, graph)
        if not self._accepts(a):
            raise ValueError(f"layer '{op.name}': {type(self).__name__} does not accept it")
        c_in, c_out, n = a.input_shape[3], a.output_shape[3], pixels(a)
        fc = FcArgs(rows=n, in_features=c_in, out_features=c_out, input_offset=a.input_offset,
                    output_offset=a.output_offset, act_min=a.act_min, act_max=a.act_max,
                    per_channel=True, multiplier=a.multiplier, shift=a.shift,
                    weights=filter_rows(a), bias=a.bias)
        call = lower_fc(op, ctx, fc, zskip(filter_rows(a), 0.0))
        label = f"conv 1x1 {c_in}->{c_out} as fc over {n} pixels, zero inputs skipped"
        return replace(call, params={**call.params, "label": label}, macs=a.macs,
                       dense_weight_bytes=a.weight_bytes)


register_variant(ConvBsrHandler())
register_variant(ConvNmHandler())
register_variant(ConvCsrHandler())
register_variant(Conv1x1ZeroSkipHandler())
