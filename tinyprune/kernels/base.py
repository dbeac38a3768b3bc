"""The kernel registry: TFLite op -> kernel choice -> C call.

Each supported op has one handler module in this package that registers itself with
:func:`register`.  A handler checks an op (``check``) and lowers it to a :class:`KernelCall`
(``lower``): every number the generated C needs is computed here in Python; the op's template
fragment under ``templates/ops/`` only substitutes.  Adding a kernel touches one C file in
``runtime/kernels/``, one template fragment and one handler here.

An opcode has one *primary* handler (:func:`register`, it validates the op) and may have
*variants* (:func:`register_variant`): other kernels for the same op, e.g. the sparse ones. Every
handler may say whether it accepts an op and at what estimated cost (``estimate``, or an
``estimate`` function given at registration); the planner takes the cheapest that accepts, among
the kinds the plan options allow (:class:`PlanOptions`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tinyprune.errors import UnsupportedError
from tinyprune.ir.graph import Graph, Op


@dataclass(frozen=True)
class KernelCall:
    """What codegen needs to emit one op.

    Attributes:
        kernel: the C function called, e.g. ``"tp_conv_s8"``; also the report's ``kernel`` column.
        sources: C files under ``runtime/kernels/`` the call needs (deduplicated by codegen).
        template: fragment under ``templates/`` that renders the call, e.g. ``"ops/conv_s8.c.j2"``.
        params: everything the fragment substitutes (C expressions, ints, symbol names).
        scratch_bytes: scratch buffer the call needs (0 for none); codegen reserves the maximum.
        macs: multiply-accumulates of the op (for the report and MACs/cycle).
        weight_bytes: bytes of constant data this call put in flash.
        alias: True when the op only reinterprets its input (RESHAPE and kin): no code, the memory
            planner gives the output the input's buffer.
        encoding: how the weights are stored, e.g. ``"dense"``, ``"bsr 1x4"``, ``"2:4"``,
            ``"csr"`` ("" for ops without weights).
        sparsity: fraction of zero values in the op's int8 weights as the model has them (None
            for ops without weights); filled in by the planner.
        dense_cycles: the cost model's cycles for the op's dense kernel (None when not
            estimated); filled in by the planner.
        sparse_cycles: the cost model's cycles for the cheapest accepting sparse kernel (None
            when none accepts or none was estimated); filled in by the planner.
        dense_weight_bytes: flash bytes the dense kernel would have used (None when unknown).
        est_cycles: the cost model's cycles for the chosen kernel (None when not estimated);
            filled in by the planner.
        reason: why the planner chose this kernel ("" when the op has a single handler).
        in_place_scratch_bytes: not None when the kernel may write its output over its first
            input (the planner decides; the call then needs this much scratch, and the fragment
            gets ``scratch_bytes`` and ``scratch`` accordingly).
        min_scratch_bytes: not None when the kernel (or ``narrow_kernel``) also runs out of
            place with this much scratch (less than ``scratch_bytes``, on a slower path); the
            planner gives it that much where the op is at the memory peak.
        narrow_kernel: the C function (same arguments) that runs with ``min_scratch_bytes``;
            "" when it is ``kernel`` itself.
        fused: names of the layers this call also computes (a residual ADD fused into its conv,
            tinyprune/plan/fusion.py); those layers emit no code of their own.
    """

    kernel: str
    sources: tuple[str, ...] = ()
    template: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    scratch_bytes: int = 0
    macs: int = 0
    weight_bytes: int = 0
    alias: bool = False
    encoding: str = ""
    sparsity: float | None = None
    dense_cycles: int | None = None
    sparse_cycles: int | None = None
    dense_weight_bytes: int | None = None
    est_cycles: int | None = None
    reason: str = ""
    in_place_scratch_bytes: int | None = None
    min_scratch_bytes: int | None = None
    narrow_kernel: str = ""
    fused: tuple[str, ...] = ()


KERNEL_KINDS = ("dense", "sparse", "activation")
"""Kinds of kernel a handler can be: dense weights, sparse weights, skipping zero activations."""


@dataclass(frozen=True)
class PlanOptions:
    """What the user (or an experiment) tells the kernel choice.

    Attributes:
        kernels: ``"auto"`` (the cheapest estimate wins) or a kind of :data:`KERNEL_KINDS` to
            force where a handler of that kind accepts the op (the primary handler otherwise).
        layer_kernels: per layer name, the same choice for that layer only; the value may also
            name a kernel (C function, e.g. ``"tp_conv_nm_s8"``) of a variant handler, which
            is then used if it accepts the layer.
        zero_fractions: per activation tensor index, the fraction of its values equal to its
            zero point, measured on calibration inputs (see tinyprune/plan/activations.py);
            kernels that skip those values are only estimated for tensors listed here.
        narrow_scratch: the planner may give a layer at the memory peak its kernel's narrow
            variant (less scratch, more cycles and a few KB of code: ``KernelCall.
            min_scratch_bytes``); off for builds that trade RAM for flash (a flash budget and
            no RAM budget, ``pipeline.plan_options``).
        cost_model: the cycle model whose fit the cost model prices kernels with
            (:data:`tinyprune.kernels.sparse_cost.FITS`): ``table`` in every build
            (``pipeline.KERNEL_COST_MODEL``, measured in bench/results/kernel_choice.md);
            ``m7`` for experiments; a model without a fit of its own uses the table's.
    """

    kernels: str = "auto"
    layer_kernels: Mapping[str, str] = field(default_factory=dict)
    zero_fractions: Mapping[int, float] = field(default_factory=dict)
    narrow_scratch: bool = True
    cost_model: str = "table"

    def __post_init__(self) -> None:
        allowed = ("auto", *KERNEL_KINDS)
        if self.kernels not in allowed:
            raise ValueError(f"kernels: expected one of {', '.join(allowed)}, "
                             f"received {self.kernels!r}")
        for k, v in self.layer_kernels.items():
            if v not in allowed and not v.startswith("tp_"):
                raise ValueError(f"layer_kernels['{k}']: expected one of {', '.join(allowed)} "
                                 f"or a kernel name (tp_...), received {v!r}")
        for t, z in self.zero_fractions.items():
            if not 0.0 <= z <= 1.0:
                raise ValueError(f"zero_fractions[{t}]: expected a fraction in [0, 1], "
                                 f"received {z}")

    def kind_for(self, layer: str) -> str:
        return self.layer_kernels.get(layer, self.kernels)


@dataclass(frozen=True)
class Estimate:
    """A handler's answer to "would you run this op, and at what cost?".

    Attributes:
        cycles: estimated cycles of the op with this handler's kernel (the cost model's, fitted
            to the emulator: tinyprune/kernels/sparse_cost.py).
        detail: what the kernel would exploit, for the report's reason, e.g.
            ``"1x4 blocks, 75.0% empty"``.
    """

    cycles: float
    detail: str = ""


class LowerContext(Protocol):
    """What a handler may ask of codegen while lowering an op."""

    dsp: bool  # the target has the DSP extension (SMLAD/SXTB16); kernels take their DSP path
    cost_model: str  # PlanOptions.cost_model: a handler's choice among its formats asks it

    def act(self, tensor_index: int) -> str:
        """C expression (pointer) of an activation tensor in the arena, e.g. ``TP_T12``."""
        ...

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        """Registers a ``const`` array in flash (weights.c) and returns its C symbol."""
        ...

    @property
    def scratch(self) -> str:
        """C expression for the shared scratch buffer (``NULL`` when no op needs one)."""
        ...


class OpHandler(Protocol):
    @property
    def opcodes(self) -> tuple[str, ...]:
        """TFLite op names this handler registers for, e.g. ``("ADD", "MUL")``."""
        ...

    def check(self, op: Op, graph: Graph) -> None:
        """Raises :class:`UnsupportedError` naming the layer and the reason when it cannot run."""
        ...

    def lower(self, op: Op, graph: Graph, ctx: LowerContext) -> KernelCall: ...


EstimateFn = Callable[[Op, Graph, bool, PlanOptions], Estimate | None]
"""(op, graph, dsp, options) -> the kernel's estimate, or None when it does not accept the op."""


@dataclass(frozen=True)
class Registered:
    """A handler as the registry holds it.

    Attributes:
        handler: the handler.
        kind: one of :data:`KERNEL_KINDS` (the handler's ``kind`` attribute, default dense).
        kernels: the C functions it may call (its ``kernels`` attribute, default none), for
            forcing a kernel by name.
        estimate: its cost estimate (the handler's ``estimate`` method or the function given at
            registration), or None when it has none (then it is only chosen as the primary).
    """

    handler: OpHandler
    kind: str
    estimate: EstimateFn | None
    kernels: tuple[str, ...] = ()

    def allowed_by(self, wanted: str) -> bool:
        """True when the choice ``wanted`` (auto, a kind or a kernel name) admits this handler."""
        return wanted in ("auto", self.kind) or wanted in self.kernels


_PRIMARY: dict[str, Registered] = {}
_VARIANTS: dict[str, list[Registered]] = {}
_REFUSED: dict[str, str] = {}
"""Ops that have no kernel on purpose -> why and what to do instead (not in supported_ops)."""


def _entry(handler: OpHandler, estimate: EstimateFn | None) -> Registered:
    kind = str(getattr(handler, "kind", "dense"))
    if kind not in KERNEL_KINDS:
        raise ValueError(f"{type(handler).__name__}.kind: expected one of "
                         f"{', '.join(KERNEL_KINDS)}, received {kind!r}")
    return Registered(handler, kind, estimate or getattr(handler, "estimate", None),
                      tuple(getattr(handler, "kernels", ())))


def register(handler: OpHandler, estimate: EstimateFn | None = None) -> OpHandler:
    """Registers the primary handler of its opcodes: it validates the op (``check``) and is the
    candidate every other one is compared with."""
    for code in handler.opcodes:
        _PRIMARY[code] = _entry(handler, estimate)
    return handler


def register_variant(handler: OpHandler, estimate: EstimateFn | None = None) -> OpHandler:
    """Registers another kernel for its opcodes (registering the same class again replaces it)."""
    for code in handler.opcodes:
        entries = [e for e in _VARIANTS.get(code, []) if type(e.handler) is not type(handler)]
        _VARIANTS[code] = [*entries, _entry(handler, estimate)]
    return handler


def refuse(opcode: str, reason: str) -> None:
    """Registers an op that is refused with ``reason`` (why, and what to use instead)."""
    _REFUSED[opcode] = reason


def supported_ops() -> list[str]:
    _load_all()
    return sorted(_PRIMARY)


def handlers_for(op: Op) -> list[Registered]:
    """The op's primary handler, then its variants in registration order."""
    _load_all()
    if op.opcode in _REFUSED:
        raise UnsupportedError(
            f"layer '{op.name}': op {op.opcode} is not supported: {_REFUSED[op.opcode]}")
    if op.opcode not in _PRIMARY:
        raise UnsupportedError(
            f"layer '{op.name}': op {op.opcode} is not supported; supported ops: "
            + ", ".join(sorted(_PRIMARY))
        )
    return [_PRIMARY[op.opcode], *_VARIANTS.get(op.opcode, [])]


def channel_multiple(opcodes: tuple[str, ...] = ("CONV_2D", "DEPTHWISE_CONV_2D",
                                                 "FULLY_CONNECTED")) -> int:
    """The channel count multiple the primary kernels of ``opcodes`` tile best (the least common
    multiple of their handlers' ``channel_multiple``; 1 for a handler that declares none): what
    structural pruning rounds kept channel counts to unless told otherwise."""
    _load_all()
    return math.lcm(1, *(getattr(_PRIMARY[c].handler, "channel_multiple", 1)
                         for c in opcodes if c in _PRIMARY))


def handler_for(op: Op) -> OpHandler:
    """The op's primary handler (for ops with weights, the dense kernels)."""
    return handlers_for(op)[0].handler


def _load_all() -> None:
    from tinyprune import kernels

    kernels.load_handlers()
