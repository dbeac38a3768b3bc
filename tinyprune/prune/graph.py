"""The dependency graph: which channels of which layers must be cut together.

Built from a :class:`~tinyprune.prune.trace.FlatGraph` by running each layer's graph rule (see
:mod:`tinyprune.prune.rules`). Channel spaces tied by a rule (the two branches of a residual
``Add``, the in and out channels of a depthwise convolution) are merged with a union-find; each
merged set that may be cut becomes a :class:`Group`, listing every layer parameter that holds one
of its channels (:class:`Member`). Cutting channel ``c`` of a group removes row ``c`` of every
member at once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from tinyprune.prune import op_rules  # noqa: F401  (registers the tensor operation rules)
from tinyprune.prune.functions import PRUNE_FUNCTIONS, Keep
from tinyprune.prune.layout import Layout, Segment, kept_indices, positions
from tinyprune.prune.rules import Rule, rule_for, same_structure
from tinyprune.prune.trace import FlatGraph, FlatNode, TensorRef

log = logging.getLogger(__name__)

KeepMap = Mapping[int, np.ndarray]


@dataclass(frozen=True)
class Barrier:
    """A layer whose channels are never cut, and why."""

    layer: str
    class_name: str
    reason: str


@dataclass(frozen=True, eq=False)
class Member:
    """One layer's share of a group.

    Attributes:
        layer: layer name.
        class_name: Keras class name.
        role: ``"out"`` (the group's channels are this layer's output channels: filters, BN
            parameters, depthwise channels) or ``"in"`` (the layer reads them with its kernel).
        indices: ``(group size, k)`` indices along the layer's output (``out``) or input (``in``)
            channel axis where each group channel appears.
    """

    layer: str
    class_name: str
    role: str
    indices: np.ndarray


@dataclass(frozen=True, eq=False)
class Group:
    """Channels that must be cut together.

    Attributes:
        root: the union-find root space (identifies the group inside one graph).
        size: channel count.
        owners: the layers that created the tied spaces (convolution, dense), sorted; the
            group's stable name across rebuilds.
        members: every parameter slice the group touches.
    """

    root: int
    size: int
    owners: tuple[str, ...]
    members: tuple[Member, ...]

    @property
    def name(self) -> str:
        return "+".join(self.owners)


class DependencyGraph:
    """Channel dependencies of a flat Keras graph.

    Args:
        graph: the traced model.
        keep: layer names whose output channels are never cut.
        keep_first: keep the output channels of the layers that read a model input directly.
        allow_inexact: tie channels through layers where removing a channel changes the other
            channels' values (LayerNormalization); off by default, so those are barriers.
    """

    def __init__(
        self, graph: FlatGraph, *, keep: Sequence[str] = (), keep_first: bool = False,
        allow_inexact: bool = False,
    ) -> None:
        self.graph = graph
        self.allow_inexact = allow_inexact
        self._parent: list[int] = []
        self._size: list[int] = []
        self._fixed: dict[int, str] = {}
        self._owner: dict[int, str] = {}
        self._owned: dict[str, Layout] = {}
        self._layer_in: dict[str, Layout] = {}
        self._barriers: dict[str, Barrier] = {}
        self.layouts: dict[TensorRef, Layout] = {}
        self._build()
        self._apply_keep(set(keep), keep_first)
        self.groups: tuple[Group, ...] = self._make_groups()

    # ---- Builder protocol (used by the rules) ------------------------------------------------
    def _space(self, size: int) -> Layout:
        self._parent.append(len(self._parent))
        self._size.append(size)
        return Layout((Segment(len(self._parent) - 1, size),))

    def new_space(self, node: FlatNode, size: int) -> Layout:
        if node.name not in self._owned:
            layout = self._space(size)
            self._owner[layout.segments[0].space] = node.name
            self._owned[node.name] = layout
        return self._owned[node.name]

    def fixed_space(self, size: int, reason: str) -> Layout:
        layout = self._space(size)
        self._fixed[layout.segments[0].space] = reason
        return layout

    def union(self, a: Layout, b: Layout) -> bool:
        if not same_structure(a, b):
            return False
        for sa, sb in zip(a.segments, b.segments, strict=True):
            ra, rb = self.root(sa.space), self.root(sb.space)
            if ra != rb:
                self._parent[rb] = ra
                if rb in self._fixed:
                    self._fixed.setdefault(ra, self._fixed[rb])
        return True

    def barrier(self, node: FlatNode, ins: Sequence[Layout], reason: str) -> list[Layout]:
        self._barriers.setdefault(node.name, Barrier(node.name, node.class_name, reason))
        for layout in ins:
            self.fix(layout, f"barrier {node.name}")
        return [self.fixed_space(int(s[-1] or 1), f"barrier {node.name}") for s in node.out_shapes]

    # ---- queries -----------------------------------------------------------------------------
    def root(self, space: int) -> int:
        while self._parent[space] != space:
            self._parent[space] = self._parent[self._parent[space]]
            space = self._parent[space]
        return space

    def fix(self, layout: Layout, reason: str) -> None:
        """Never cut any channel of ``layout``."""
        for seg in layout.segments:
            self._fixed.setdefault(self.root(seg.space), reason)

    def fixed_reason(self, layout: Layout) -> str | None:
        """Why some channel of ``layout`` is kept, or None when all of it may be cut."""
        for seg in layout.segments:
            reason = self._fixed.get(self.root(seg.space))
            if reason is not None:
                return reason
        return None

    @property
    def barriers(self) -> tuple[Barrier, ...]:
        """Layers the graph does not understand or cannot cut through, in graph order."""
        return tuple(self._barriers.values())

    def layer_keep(self, node: FlatNode, keep: KeepMap) -> Keep:
        """Kept indices along ``node``'s input and output channel axes."""
        out = kept_indices(self.layouts[TensorRef(node.index, 0)], self.root, keep)
        if not node.inputs:
            return Keep(in_=out, out=out)
        return Keep(in_=kept_indices(self.layouts[node.inputs[0]], self.root, keep), out=out)

    # ---- construction ------------------------------------------------------------------------
    def _build(self) -> None:
        for node in self.graph.nodes:
            ins = [self.layouts[ref] for ref in node.inputs]
            rule = rule_for(node)
            if rule is None and node.op:
                outs = self.barrier(node, ins, f"tensor operation '{node.op}' not understood "
                                    "by the graph")
            elif rule is None:
                outs = self.barrier(node, ins, "layer type not understood by the graph")
            else:
                outs = self._run_rule(rule, node, ins)
            self._tie_shared(node, ins, outs)
            for i, layout in enumerate(outs):
                self.layouts[TensorRef(node.index, i)] = layout
        for ref in self.graph.outputs:
            self.fix(self.layouts[ref], "model output")
        for name, barrier in self._barriers.items():
            log.info("barrier %s (%s): %s", name, barrier.class_name, barrier.reason)

    def _run_rule(self, rule: Rule, node: FlatNode, ins: list[Layout]) -> list[Layout]:
        """A rule's layouts; a rule that cannot read the layer's config or call makes it a
        barrier (named, its channels kept) instead of an error."""
        try:
            outs = rule(node, ins, self)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
            log.warning("graph rule of %s (%s) failed: %s", node.name, node.class_name, exc)
            return self.barrier(node, ins, f"its {node.class_name} call was not understood "
                                f"({type(exc).__name__}: {exc})")
        if len(outs) != len(node.out_shapes):
            return self.barrier(node, ins, f"{len(node.out_shapes)} outputs")
        return outs

    def _tie_shared(self, node: FlatNode, ins: list[Layout], outs: list[Layout]) -> None:
        if not ins or node.class_name not in PRUNE_FUNCTIONS or len(outs) != 1:
            return
        first = self._layer_in.setdefault(node.name, ins[0])
        if first is not ins[0] and not self.union(first, ins[0]):
            self.barrier(node, [first, ins[0], *outs], "shared layer called on different inputs")

    def _apply_keep(self, keep: set[str], keep_first: bool) -> None:
        inputs = {self.root(self.layouts[ref].segments[0].space) for ref in self.graph.inputs}
        for node in self.graph.layer_nodes():
            out = self.layouts[TensorRef(node.index, 0)]
            if node.name in keep:
                self.fix(out, f"kept layer {node.name}")
            functions = PRUNE_FUNCTIONS.get(node.class_name)
            owned = functions is not None and functions.in_params is not None
            reads_input = all(self.root(s.space) in inputs for s in self.layouts[
                node.inputs[0]].segments) if node.inputs else False
            if keep_first and owned and reads_input:
                self.fix(out, f"first layer {node.name}")

    def _make_groups(self) -> tuple[Group, ...]:
        roots: dict[int, list[str]] = {}
        for space, owner in self._owner.items():
            root = self.root(space)
            if root not in self._fixed:
                roots.setdefault(root, []).append(owner)
        members: dict[int, list[Member]] = {r: [] for r in roots}
        for node in self._param_nodes():
            self._add_members(node, members)
        return tuple(
            Group(root=r, size=self._size[r], owners=tuple(sorted(o)), members=tuple(members[r]))
            for r, o in roots.items()
        )

    def _param_nodes(self) -> list[FlatNode]:
        seen: set[str] = set()
        nodes = []
        for node in self.graph.layer_nodes():
            if node.class_name in PRUNE_FUNCTIONS and node.name not in seen:
                seen.add(node.name)
                nodes.append(node)
        return nodes

    def _add_members(self, node: FlatNode, members: dict[int, list[Member]]) -> None:
        out = self.layouts[TensorRef(node.index, 0)]
        for root, idx in positions(out, self.root).items():
            if root in members:
                members[root].append(Member(node.name, node.class_name, "out", idx))
        if PRUNE_FUNCTIONS[node.class_name].in_params is None or not node.inputs:
            return  # out channels tied to in channels: the "out" member covers both
        for root, idx in positions(self.layouts[node.inputs[0]], self.root).items():
            if root in members:
                members[root].append(Member(node.name, node.class_name, "in", idx))
