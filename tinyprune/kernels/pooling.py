"""MAX_POOL_2D and AVERAGE_POOL_2D (int8), bit-exact with TFLite Micro's PoolingPrepare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels.base import KernelCall, LowerContext, register
from tinyprune.kernels.quant import activation_range
from tinyprune.kernels.tensor import (
    c_dims,
    dims4,
    fail,
    label_shape,
    op_input,
    op_output,
    require_int8,
)

_KERNELS = {"MAX_POOL_2D": "tp_max_pool_s8", "AVERAGE_POOL_2D": "tp_avg_pool_s8"}


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def out_size(padding: str, size: int, filt: int, stride: int) -> int:
    """TFLM ComputeOutSize (dilation 1)."""
    if padding == "SAME":
        return _cdiv(size + stride - 1, stride)
    return _cdiv(size + stride - filt, stride)


def pad_before(size: int, filt: int, stride: int, out: int) -> int:
    """TFLM ComputePadding (dilation 1): padding before the first row/column."""
    return max(_cdiv((out - 1) * stride + filt - size, 2), 0)


def pool_params(
    options: dict[str, Any], in_hw: tuple[int, int], out_scale: float, out_zp: int
) -> dict[str, Any]:
    """Window, stride, padding, output size and activation range of a pooling op."""
    fh, fw = int(options["filter_height"]), int(options["filter_width"])
    sh, sw = int(options["stride_h"]), int(options["stride_w"])
    padding = str(options.get("padding", "VALID"))
    oh, ow = (out_size(padding, in_hw[0], fh, sh), out_size(padding, in_hw[1], fw, sw))
    act_min, act_max = activation_range(
        str(options.get("fused_activation_function", "NONE")), out_scale, out_zp
    )
    return {
        "filter_h": fh,
        "filter_w": fw,
        "stride_h": sh,
        "stride_w": sw,
        "pad_h": pad_before(in_hw[0], fh, sh, oh),
        "pad_w": pad_before(in_hw[1], fw, sw, ow),
        "out_h": oh,
        "out_w": ow,
        "act_min": act_min,
        "act_max": act_max,
    }


@dataclass(frozen=True)
class PoolHandler:
    opcodes: tuple[str, ...] = ("MAX_POOL_2D", "AVERAGE_POOL_2D")

    def check(self, op: Op, graph: Graph) -> None:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        require_int8(op, x, out)
        if len(x.shape) != 4 or len(out.shape) != 4:
            raise fail(op, f"expects [N, H, W, C] tensors, received {list(x.shape)}")
        if abs(x.scale - out.scale) > 1e-6 or x.zero_point != out.zero_point:
            raise fail(
                op,
                "expects the same scale and zero point on input and output, received "
                f"{x.scale}/{x.zero_point} and {out.scale}/{out.zero_point}",
            )
        opts = op.options
        if (
            min(
                int(opts.get(k, 0))
                for k in ("filter_height", "filter_width", "stride_h", "stride_w")
            )
            < 1
        ):
            raise fail(op, f"expects positive window and strides, received {opts}")
        try:
            p = pool_params(opts, (x.shape[1], x.shape[2]), out.scale, out.zero_point)
        except ValueError as exc:
            raise fail(op, str(exc)) from None
        if (p["out_h"], p["out_w"]) != (out.shape[1], out.shape[2]) or x.shape[3] != out.shape[3]:
            raise fail(
                op,
                f"output shape {list(out.shape)} does not match the computed "
                f"[{x.shape[0]}, {p['out_h']}, {p['out_w']}, {x.shape[3]}]",
            )
        if op.opcode == "AVERAGE_POOL_2D" and (
            p["pad_h"] >= p["filter_h"] or p["pad_w"] >= p["filter_w"]
        ):
            raise fail(op, "has a window that lies entirely in the padding")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        x, out = op_input(op, graph, 0), op_output(op, graph)
        params = pool_params(op.options, (x.shape[1], x.shape[2]), out.scale, out.zero_point)
        params.update(
            input=ctx.act(x.index),
            output=ctx.act(out.index),
            input_dims=c_dims(dims4(x.shape)),
            output_dims=c_dims(dims4(out.shape)),
            label=f"{op.opcode.lower()} {params['filter_h']}x{params['filter_w']}"
            f"/{params['stride_h']}x{params['stride_w']} {label_shape(x.shape)}",
        )
        kernel = _KERNELS[op.opcode]
        return KernelCall(
            kernel=kernel,
            sources=(f"{kernel}.c",),
            template=f"ops/{kernel.removeprefix('tp_')}.c.j2",
            params=params,
        )


register(PoolHandler())
