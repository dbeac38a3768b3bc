"""What the sparse kernel handlers (conv, depthwise, FC) share: a variant of the op's primary
handler that runs the cheapest of its candidate weight formats.

A subclass says how to read the layer (:meth:`SparseVariant.args`), which formats can run it
(:meth:`SparseVariant.candidates`), which primary handler validates the op and how a format is
lowered; the choice among formats, the estimate and the lowering use the same cost fit, the
build's (``PlanOptions.cost_model``, ``LowerContext.cost_model``), so the format lowered is the
one that was priced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Generic, Protocol, TypeVar

from tinyprune.kernels.base import Estimate

if TYPE_CHECKING:
    from tinyprune.ir.graph import Graph, Op
    from tinyprune.kernels.base import KernelCall, LowerContext, OpHandler, PlanOptions

A = TypeVar("A")
A_contra = TypeVar("A_contra", contravariant=True)


class Format(Protocol[A_contra]):
    """One way to run a layer: its cost and what the kernel-choice reason says of it."""

    @property
    def detail(self) -> str: ...

    def cycles(self, a: A_contra, model: str = "table") -> float: ...


F = TypeVar("F", bound=Format)


class SparseVariant(Generic[A, F]):
    """A sparse variant handler: the primary handler's checks, the cheapest candidate format by
    the build's cost fit, its estimate and its lowering."""

    opcodes: ClassVar[tuple[str, ...]] = ()
    kind: ClassVar[str] = "sparse"

    def args(self, op: Op, graph: Graph) -> A:
        raise NotImplementedError

    def candidates(self, a: A) -> list[F]:
        """The formats that can run the layer (empty: this handler refuses it)."""
        raise NotImplementedError

    def primary(self) -> OpHandler:
        """The op's dense handler, which validates the op for every variant."""
        raise NotImplementedError

    def lower_format(self, op: Op, ctx: LowerContext, a: A, s: F) -> KernelCall:
        raise NotImplementedError

    def refusal(self, a: A) -> str:
        """Why no format runs the layer (for the lowering's error)."""
        return f"{type(self).__name__} does not accept it"

    def best(self, a: A, model: str = "table") -> F | None:
        """The cheapest candidate under the ``model`` fit, or None when none runs the layer."""
        options = self.candidates(a)
        return min(options, key=lambda s: s.cycles(a, model)) if options else None

    def check(self, op: Op, graph: Graph) -> None:
        self.primary().check(op, graph)

    def estimate(self, op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate | None:
        a = self.args(op, graph)
        s = self.best(a, options.cost_model)
        return None if s is None else Estimate(s.cycles(a, options.cost_model), s.detail)

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall:
        a = self.args(op, graph)
        s = self.best(a, ctx.cost_model)
        if s is None:
            raise ValueError(f"layer '{op.name}': {self.refusal(a)}")
        return self.lower_format(op, ctx, a, s)
