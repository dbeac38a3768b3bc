"""DEPTHWISE_CONV_2D on block-sparse weights: a variant of the dense depthwise handler.

A block is one tap of four consecutive channels (one word of the TFLite ``[1, KH, KW, C]``
filter, :func:`tinyprune.kernels.sparse_encoding.encode_dw_bsr`); ``tp_depthwise_conv_bsr_s8``
skips the all-zero blocks. It accepts a layer with depth multiplier 1, at most
``MAX_TAPS`` taps and a folded bias (bias + input offset x weight sum) inside int32; every other
depthwise layer keeps the dense kernels (tinyprune/kernels/conv.py). The planner compares its
estimate (tinyprune/kernels/sparse_cost.py, family ``dw_bsr``) with the dense kernel's; the call
is rendered by ``templates/ops/depthwise_conv_sparse_s8.c.j2``. The requantization is the dense
kernel's (tp_requantize_fast where the rounding words fit, with the output offset added after
them where only the words without it fit, else the TFLM arithmetic), so no accumulator bound
applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels import sparse_cost
from tinyprune.kernels.base import KernelCall, LowerContext, register_variant
from tinyprune.kernels.conv import (
    ConvArgs,
    DepthwiseConvHandler,
    choose_kernel,
    depthwise_args,
    folded_bias,
    padded,
    rounding_words,
)
from tinyprune.kernels.quant import fast_rounding
from tinyprune.kernels.sparse_common import const_array, const_bytes, percent
from tinyprune.kernels.sparse_encoding import BLOCK, DwBsrFilter, encode_dw_bsr
from tinyprune.kernels.sparse_variant import SparseVariant

TEMPLATE = "ops/depthwise_conv_sparse_s8.c.j2"
KERNEL = "tp_depthwise_conv_bsr_s8"
MAX_TAPS = 64
"""TP_DW_BSR_MAX_TAPS (tp_nn_sparse.h): the kernel keeps the tap addresses on its stack."""
PARAM_WORDS = 16
"""Words of one channel group's parameters: bias, multiplier, shift, rounding (4 each)."""


def filter_taps(a: ConvArgs) -> np.ndarray:
    """The depthwise filter as ``[KH * KW, C]`` (its memory order)."""
    return a.weights.reshape(-1, a.filter_shape[3])


def pixels(a: ConvArgs) -> int:
    n, oh, ow, _ = a.output_shape
    return n * oh * ow


def refusal(a: ConvArgs) -> str | None:
    """Why the sparse depthwise kernel cannot run the layer (None when it can)."""
    _, kh, kw, _ = a.filter_shape
    if a.ch_mult != 1:
        return f"depth multiplier {a.ch_mult} (the kernel takes 1)"
    if kh * kw > MAX_TAPS:
        return f"{kh}x{kw} filter, more than {MAX_TAPS} taps"
    if folded_bias(a) is None:
        return "the folded bias leaves int32"
    return None


def rounding_mode(a: ConvArgs) -> tuple[np.ndarray | None, int]:
    """The rounding words and the kernel's ``fast`` mode: 1 with the output offset folded into
    the words (as the dense kernels), 2 without it (the kernel adds it after: shifts so large
    that the folded words would pass 2^30), 0 none (a shift above -2: the TFLM arithmetic)."""
    folded = rounding_words(a)
    if folded is not None:
        return folded, 1
    plain = fast_rounding(a.shift, 0)
    return (plain, 2) if plain is not None else (None, 0)


def param_stream(a: ConvArgs) -> tuple[np.ndarray, int]:
    """Per channel group 16 int32 (folded bias, multiplier, shift, rounding; four of each,
    padding channels: bias 0 and the last channel's parameters), and the ``fast`` mode of
    :func:`rounding_mode`."""
    c = a.filter_shape[3]
    groups = -(-c // BLOCK)
    folded = folded_bias(a)
    assert folded is not None
    rounding, mode = rounding_mode(a)
    params = np.zeros((4, groups * BLOCK), np.int64)
    for i, v in enumerate((folded, a.multiplier, a.shift,
                           np.zeros(c) if rounding is None else rounding)):
        params[i] = padded(v, groups * BLOCK, i > 0)
    words = params.reshape(4, groups, BLOCK).transpose(1, 0, 2).reshape(-1)
    return words.astype(np.int32), mode


@dataclass(frozen=True)
class SparseDepthwise:
    """How tp_depthwise_conv_bsr_s8 would run a layer."""

    encoded: DwBsrFilter
    params: np.ndarray
    fast: int
    family: str = "dw_bsr"

    @property
    def filter_bytes(self) -> int:
        """Flash of counts, index, blocks and the parameter words (the struct aside)."""
        return self.encoded.nbytes + const_bytes(self.params)

    @property
    def detail(self) -> str:
        return f"1x4 depthwise blocks, {percent(self.encoded.block_sparsity)} empty"

    def cycles(self, a: ConvArgs, model: str = "table") -> float:
        _, kh, kw, c = a.filter_shape
        features = sparse_cost.dw_features(pixels(a), kh * kw, c, self.encoded.stored_blocks,
                                           "blocks")
        return sparse_cost.cycles(self.family, features, model)


def candidate(a: ConvArgs) -> SparseDepthwise | None:
    """The sparse way to run the layer, or None when the kernel refuses it."""
    if refusal(a) is not None:
        return None
    params, fast = param_stream(a)
    return SparseDepthwise(encode_dw_bsr(filter_taps(a)), params, fast)


def dense_weight_bytes(a: ConvArgs) -> int:
    """Flash of the dense kernel the depthwise handler would choose (conv.py's _lower)."""
    kernel = choose_kernel(a)
    return int(kernel.prepare(a).weights.size) if kernel.stream else a.weight_bytes


class DepthwiseBsrHandler(SparseVariant[ConvArgs, SparseDepthwise]):
    """DEPTHWISE_CONV_2D (depth multiplier 1) with 1x4 block-sparse taps."""

    opcodes: ClassVar[tuple[str, ...]] = ("DEPTHWISE_CONV_2D",)
    kernels: ClassVar[tuple[str, ...]] = (KERNEL,)

    def args(self, op: Op, graph: Graph) -> ConvArgs:
        return depthwise_args(op, graph)

    def candidates(self, a: ConvArgs) -> list[SparseDepthwise]:
        s = candidate(a)
        return [] if s is None else [s]

    def primary(self) -> DepthwiseConvHandler:
        return DepthwiseConvHandler()

    def refusal(self, a: ConvArgs) -> str:
        return f"{type(self).__name__} does not accept it ({refusal(a)})"

    def lower_format(self, op: Op, ctx: LowerContext, a: ConvArgs, s: SparseDepthwise
                     ) -> KernelCall:
        return lower_candidate(op, ctx, a, s)


def _dims(shape: tuple[int, ...]) -> dict[str, int]:
    return {"n": shape[0], "h": shape[1], "w": shape[2], "c": shape[3]}


def lower_candidate(op: Op, ctx: LowerContext, a: ConvArgs, s: SparseDepthwise) -> KernelCall:
    """The call of tp_depthwise_conv_bsr_s8 for the layer."""
    e = s.encoded
    fields: list[tuple[str, Any]] = [
        ("count_bytes", e.counts.itemsize), ("index_bytes", e.index.itemsize),
        ("counts", const_array(ctx, f"{op.name}_counts", e.counts)),
        ("index", const_array(ctx, f"{op.name}_index", e.index)),
        ("blocks", const_array(ctx, f"{op.name}_blocks", e.blocks.reshape(-1))),
        ("params", const_array(ctx, f"{op.name}_params", s.params)),
        ("fast", int(s.fast)),
    ]
    _, kh, kw, c = a.filter_shape
    act = str(op.options.get("fused_activation_function", "NONE")).lower()
    scratch_bytes = -(-c // BLOCK) * BLOCK
    params = {
        "kernel": KERNEL, "filter_fields": fields,
        "input": ctx.act(op.inputs[0]), "output": ctx.act(op.outputs[0]),
        "input_dims": _dims(a.input_shape), "filter_dims": _dims(a.filter_shape),
        "bias_dims": _dims((1, 1, 1, c)), "output_dims": _dims(a.output_shape),
        "input_offset": a.input_offset, "output_offset": a.output_offset,
        "stride_w": a.stride[0], "stride_h": a.stride[1],
        "pad_w": a.padding[0], "pad_h": a.padding[1],
        "dilation_w": a.dilation[0], "dilation_h": a.dilation[1],
        "act_min": a.act_min, "act_max": a.act_max,
        "scratch": ctx.scratch, "scratch_bytes": scratch_bytes,
        "label": (f"dwconv {kh}x{kw}/{a.stride[0]}x{a.stride[1]} {c} bsr 1x4"
                  f"{'' if act == 'none' else ' ' + act}"),
    }
    return KernelCall(kernel=KERNEL, sources=(f"{KERNEL}.c",), template=TEMPLATE, params=params,
                      scratch_bytes=scratch_bytes, macs=a.macs, weight_bytes=s.filter_bytes,
                      encoding="bsr 1x4", dense_weight_bytes=dense_weight_bytes(a))


register_variant(DepthwiseBsrHandler())
