"""RESHAPE, EXPAND_DIMS, SQUEEZE: no code; the output shares its input's arena buffer."""

from __future__ import annotations

from typing import ClassVar

from tinyprune.errors import UnsupportedError
from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels.base import KernelCall, LowerContext, register


class ReshapeHandler:
    opcodes: ClassVar[tuple[str, ...]] = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")

    def check(self, op: Op, graph: Graph) -> None:
        src, out = graph.tensor(op.inputs[0]), graph.tensor(op.outputs[0])
        if src.is_const:
            raise UnsupportedError(f"layer '{op.name}': {op.opcode} of a constant tensor is not "
                                   "supported; fold it into the model before converting")
        if src.nbytes != out.nbytes or src.quant != out.quant:
            raise UnsupportedError(f"layer '{op.name}': {op.opcode} changes size or quantization "
                                   f"({src.nbytes} -> {out.nbytes} bytes); expected a pure reshape")

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        return KernelCall(kernel="alias", alias=True)


register(ReshapeHandler())
