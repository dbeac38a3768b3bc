"""When a residual ADD may run inside the conv that produces one of its operands.

``y = ADD(conv(x), r)``: the fused kernel (tinyprune/kernels/fused.py) writes each conv result,
rounded to int8 exactly as the conv alone stores it, added at once to ``r`` at the same position,
into ``r``'s buffer; the conv's output tensor never exists. That is exact, and lowers the peak
(the block input, conv1's output and conv2's output are no longer live together), only when:

- the ADD runs ``tp_add_table_s8`` and the producer of the operand ``tp_conv_interleaved_s8``
  (the kernels the fused one combines; a conv run by another of ``FUSABLE_CONV_KERNELS`` is
  lowered again with it), all int8;
- the conv's output is read by this ADD alone (once) and is not a graph output;
- the conv output, the residual and the ADD output have the same shape (no broadcast);
- the residual is an activation that dies at the ADD: not a graph input or output, not read by
  any op after it, not read by the conv itself (it is overwritten while the conv runs), and the
  ADD's output is not a graph output (buffers are compared through their aliases, RESHAPE & co).

The fused op runs where the ADD ran (the conv moves down to it: nothing between them reads the
conv's output). :func:`refusal` says why a pair is refused; the planner applies the safe ones
that lower the memory plan (tinyprune/plan/planner.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from tinyprune.ir.graph import Graph, Op
from tinyprune.kernels.base import KernelCall
from tinyprune.kernels.fused import ADD_KERNEL, CONV_KERNEL, FUSABLE_CONV_KERNELS


class _Planned(Protocol):
    @property
    def op(self) -> Op: ...

    @property
    def call(self) -> KernelCall: ...


@dataclass(frozen=True)
class Fusion:
    """A conv and the ADD it is fused into.

    Attributes:
        conv: position of the conv among the ops. add: position of the ADD.
        conv_input: which ADD input (0 or 1) the conv's output is.
        residual: the other ADD input (tensor index), whose buffer the result overwrites.
    """

    conv: int
    add: int
    conv_input: int
    residual: int


def _is_act(graph: Graph, t: int) -> bool:
    return t >= 0 and not graph.tensors[t].is_const


def _producer(ops: Sequence[_Planned], t: int) -> int | None:
    return next((i for i, p in enumerate(ops) if t in p.op.outputs), None)


def _shape_refusal(graph: Graph, tensors: tuple[int, ...]) -> str | None:
    shapes = [tuple(graph.tensors[t].shape) for t in tensors]
    if len(set(shapes)) != 1:
        return f"shapes differ (broadcast): {', '.join(str(list(s)) for s in shapes)}"
    dtypes = {graph.tensors[t].dtype for t in tensors}
    if dtypes != {"int8"}:
        return f"expected int8 tensors, received {', '.join(sorted(dtypes))}"
    return None


def refusal(graph: Graph, ops: Sequence[_Planned], add: int, conv_input: int,
            root: Callable[[int], int]) -> str | None:
    """Why the ADD at position ``add`` cannot be fused into the producer of its input
    ``conv_input``, or None when it can (the rules of this module).

    Args:
        graph: the graph. ops: the planned ops in execution order.
        add: the ADD's position. conv_input: 0 or 1.
        root: the buffer a tensor shares (alias roots of the planner), for graph inputs,
            outputs and later reads.
    """
    a = ops[add]
    if a.op.opcode != "ADD" or a.call.kernel != ADD_KERNEL or len(a.op.inputs) != 2:
        return f"not an ADD run by {ADD_KERNEL}"
    t, r = a.op.inputs[conv_input], a.op.inputs[1 - conv_input]
    out = a.op.outputs[0]
    if not (_is_act(graph, t) and _is_act(graph, r)) or t == r:
        return "both operands must be distinct activations"
    conv = _producer(ops, t)
    if conv is None or ops[conv].op.opcode != "CONV_2D" \
            or ops[conv].call.kernel not in FUSABLE_CONV_KERNELS or ops[conv].call.fused:
        return f"operand {conv_input} is not the output of a CONV_2D run by {CONV_KERNEL}"
    shape = _shape_refusal(graph, (t, r, out))
    if shape:
        return shape
    readers = [i for i, p in enumerate(ops) for x in p.op.inputs if x == t]
    fixed = {root(x) for x in (*graph.inputs, *graph.outputs)}
    if readers != [add] or root(t) in fixed:
        return "the conv's output is read by another op or is a graph output"
    if root(r) in fixed or root(out) in fixed:
        return "the residual or the ADD's output is a graph input or output"
    if any(root(x) == root(r) for x in ops[conv].op.inputs if _is_act(graph, x)):
        return "the conv reads the residual"
    if any(root(x) == root(r) for p in ops[add + 1:] for x in p.op.inputs if _is_act(graph, x)):
        return "the residual is read after the ADD"
    return None


def candidates(graph: Graph, ops: Sequence[_Planned], add: int,
               root: Callable[[int], int]) -> list[Fusion]:
    """The safe fusions of the ADD at position ``add`` (zero, one or two: either operand)."""
    out = []
    for k in (0, 1):
        if refusal(graph, ops, add, k, root) is None:
            t = ops[add].op.inputs[k]
            conv = _producer(ops, t)
            assert conv is not None
            out.append(Fusion(conv, add, k, ops[add].op.inputs[1 - k]))
    return out
