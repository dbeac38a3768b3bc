"""The kernel registry: TFLite op -> kernel choice -> C call.

Each supported op has one handler module in this package that registers itself with
:func:`register`.  A handler checks an op (``check``) and lowers it to a :class:`KernelCall`
(``lower``): every number the generated C needs is computed here in Python; the op's template
fragment under ``templates/ops/`` only substitutes.  Adding a kernel touches one C file in
``runtime/kernels/``, one template fragment and one handler here.
"""

from __future__ import annotations

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
    """

    kernel: str
    sources: tuple[str, ...] = ()
    template: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    scratch_bytes: int = 0
    macs: int = 0
    weight_bytes: int = 0
    alias: bool = False


class LowerContext(Protocol):
    """What a handler may ask of codegen while lowering an op."""

    dsp: bool  # the target has the DSP extension (SMLAD/SXTB16); kernels take their DSP path

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


_REGISTRY: dict[str, OpHandler] = {}
_REFUSED: dict[str, str] = {}
"""Ops that have no kernel on purpose -> why and what to do instead (not in supported_ops)."""


def register(handler: OpHandler) -> OpHandler:
    for code in handler.opcodes:
        _REGISTRY[code] = handler
    return handler


def refuse(opcode: str, reason: str) -> None:
    """Registers an op that is refused with ``reason`` (why, and what to use instead)."""
    _REFUSED[opcode] = reason


def supported_ops() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def handler_for(op: Op) -> OpHandler:
    _load_all()
    try:
        return _REGISTRY[op.opcode]
    except KeyError:
        if op.opcode in _REFUSED:
            raise UnsupportedError(
                f"layer '{op.name}': op {op.opcode} is not supported: {_REFUSED[op.opcode]}"
            ) from None
        raise UnsupportedError(
            f"layer '{op.name}': op {op.opcode} is not supported; supported ops: "
            + ", ".join(sorted(_REGISTRY))
        ) from None


def _load_all() -> None:
    from tinyprune import kernels

    kernels.load_handlers()
