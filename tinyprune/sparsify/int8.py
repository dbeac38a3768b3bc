"""The sparsity survives int8 conversion: every removed weight is 0 in the int8 model.

Why it cannot be lost: the converter folds BatchNormalization (and any other per-channel scale
next to a convolution or dense layer) into the kernel by *multiplying* each output channel (or
input channel) by one factor, and puts every additive term into the bias; TFLite int8 weights
are then quantized per output channel with zero point 0, ``q = round(w / scale)``. A weight
that is 0 stays 0 through both (BN never un-zeroes: ``0 * gamma / sqrt(var + eps) = 0``), and
an all-zero output channel quantizes to zeros whatever its scale. :func:`check_int8` verifies
it anyway on the converted graph, since the model converted may not be the masked one (trained
again without the masks, or a converter that fuses layers).

Keras layers are matched to FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D ops by the shape of
their weights in the TFLite order (Dense ``[OUT, IN]``, Conv2D ``[OUT, KH, KW, IN]``, Conv1D
``[OUT, 1, K, IN]``, DepthwiseConv2D ``[1, KH, KW, C]`` on depthwise ops only; names are
unreliable). Among ops of equal shape, a layer takes the op whose zeros cover its
mask, else the next one in execution order.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinyprune.errors import CheckFailed
from tinyprune.ir.graph import Graph, Op
from tinyprune.sparsify.masks import LayerMask, Masks
from tinyprune.sparsify.patterns import Pattern, get_pattern

log = logging.getLogger(__name__)

WEIGHTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass(frozen=True)
class Int8Layer:
    """The real sparsity of one layer's int8 weights.

    Attributes:
        layer: Keras layer name (None for :func:`measure_int8` on a model without masks).
        op_index: index of the TFLite op.
        opcode: ``FULLY_CONNECTED`` or ``CONV_2D``.
        op_name: the op's name in the graph.
        pattern: the pattern's name.
        weights: int8 weights.
        zeros: int8 weights equal to 0 (removed ones and any others).
        sparsity: ``zeros / weights``.
        units: units of the pattern.
        zero_units: units already removed in the int8 weights (all-zero blocks, N:M groups).
        unit_sparsity: ``zero_units / units`` (blocks the sparse kernel can skip).
        masked: weights removed by the mask (None without masks).
    """

    layer: str | None
    op_index: int
    opcode: str
    op_name: str
    pattern: str
    weights: int
    zeros: int
    sparsity: float
    units: int
    zero_units: int
    unit_sparsity: float
    masked: int | None = None


@dataclass(frozen=True)
class Int8Sparsity:
    """Per-layer int8 sparsity, in the order of the masks (or of the ops)."""

    pattern: str
    layers: tuple[Int8Layer, ...]

    @property
    def weights(self) -> int:
        return sum(x.weights for x in self.layers)

    @property
    def zeros(self) -> int:
        return sum(x.zeros for x in self.layers)

    @property
    def sparsity(self) -> float:
        return self.zeros / self.weights if self.weights else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"pattern": self.pattern, "weights": self.weights, "zeros": self.zeros,
                "sparsity": self.sparsity, "layers": [asdict(x) for x in self.layers]}


def _weights(graph: Graph, op: Op) -> np.ndarray | None:
    if op.opcode not in WEIGHTED_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
        return None
    tensor = graph.tensor(op.inputs[1])
    if tensor.data is None or tensor.dtype != "int8":
        return None
    return np.asarray(tensor.data).reshape(tensor.shape)


def _canonical(weights: np.ndarray) -> np.ndarray:
    """TFLite weights (``[OUT, IN]``, ``[OUT, KH, KW, IN]``, depthwise ``[1, KH, KW, C]``) as
    ``[OUT, P, IN]``."""
    return weights.reshape(weights.shape[0], -1, weights.shape[-1])


def _candidates(graph: Graph) -> list[tuple[Op, np.ndarray]]:
    return [(op, _canonical(w)) for op in graph.ops if (w := _weights(graph, op)) is not None]


def _fits(mask: LayerMask, candidate: tuple[Op, np.ndarray]) -> bool:
    """Same canonical shape, and a depthwise mask on a depthwise op (others on the others)."""
    op, values = candidate
    return (values.shape == mask.canonical_shape
            and (op.opcode == "DEPTHWISE_CONV_2D") == mask.depthwise)


def _covers(mask: LayerMask, values: np.ndarray) -> bool:
    return not np.any(values[~mask.canonical()])


def _pick(mask: LayerMask, same: list[tuple[Op, np.ndarray]]) -> tuple[Op, np.ndarray]:
    named = [c for c in same if c[0].name == mask.name]
    return (named or same)[0]


def _match(masks: Masks, graph: Graph) -> dict[str, tuple[Op, np.ndarray]]:
    """Each masked layer's op: same canonical shape; first the layers whose mask some op's zeros
    cover (most removed weights first), then the others in order (by name, else position)."""
    free = _candidates(graph)
    out: dict[str, tuple[Op, np.ndarray]] = {}
    for mask in sorted(masks, key=lambda m: -m.removed):
        covering = [c for c in free if _fits(mask, c) and _covers(mask, c[1])]
        if covering:
            out[mask.name] = chosen = _pick(mask, covering)
            free = [c for c in free if c is not chosen]
    for mask in masks:
        if mask.name in out:
            continue
        same = [c for c in free if _fits(mask, c)]
        if not same:
            shapes = sorted({c[1].shape for c in free})
            raise CheckFailed(
                f"layer '{mask.name}' ({mask.class_name}, kernel {mask.kernel_shape}): expected "
                f"a FULLY_CONNECTED, CONV_2D or DEPTHWISE_CONV_2D op with weights [OUT, P, IN] = "
                f"{mask.canonical_shape} in the int8 model, received none (unmatched op weights: "
                f"{shapes}); convert the sparsified model itself")
        out[mask.name] = chosen = _pick(mask, same)
        free = [c for c in free if c is not chosen]
    return out


def _first_leak(mask: LayerMask, values: np.ndarray) -> str:
    o, p, i = (int(v[0]) for v in np.nonzero((values != 0) & ~mask.canonical()))
    return f"output channel {o}, kernel position {p}, input channel {i}"


def check_int8(masks: Masks, graph: Graph) -> Int8Sparsity:
    """Verify that every removed weight is 0 in the int8 weights; return the real sparsity.

    Args:
        masks: the masks of the sparsified Keras model (``SparsifyResult.masks``).
        graph: its int8 TFLite model (``tinyprune.ir.read_tflite(quantized_bytes)``).

    Returns:
        Per layer: int8 zeros, sparsity and pattern units already removed.

    Raises:
        CheckFailed: a masked layer has no op with its weight shape, or a removed weight is not
            0 in the int8 weights; the message names the layer.
    """
    pattern = get_pattern(masks.pattern)
    matched = _match(masks, graph)
    rows = []
    for mask in masks:
        op, values = matched[mask.name]
        leaked = int(np.count_nonzero(values[~mask.canonical()]))
        if leaked:
            raise CheckFailed(
                f"layer '{mask.name}': expected the {mask.removed} removed weights to be 0 in the "
                f"int8 weights of {op.opcode} op {op.index} ('{op.name}'), received {leaked} "
                f"non-zero (first at {_first_leak(mask, values)}); the model converted "
                "is not the masked one: convert SparsifyResult.model as returned")
        rows.append(_row(mask.name, op, values, pattern, mask.removed))
    log.info("int8 sparsity survives conversion: %s", ", ".join(
        f"{r.layer} {r.sparsity:.3f}" for r in rows))
    return Int8Sparsity(pattern.name, tuple(rows))


def _row(layer: str | None, op: Op, values: np.ndarray, pattern: Pattern,
         masked: int | None) -> Int8Layer:
    units = pattern.units(values.shape)
    zero_units = pattern.zero_units(values) if units else 0
    zeros = int(values.size - np.count_nonzero(values))
    return Int8Layer(layer, op.index, op.opcode, op.name, pattern.name, int(values.size), zeros,
                     zeros / values.size, units, zero_units, zero_units / units if units else 0.0,
                     masked)


def measure_int8(graph: Graph, pattern: str | Pattern = "1x4") -> Int8Sparsity:
    """The zeros of every FULLY_CONNECTED / CONV_2D op's int8 weights under ``pattern``: e.g.
    for a ``.tflite`` sparsified elsewhere (the TensorFlow pruning toolkit), no masks needed."""
    pat = get_pattern(pattern)
    rows = tuple(_row(None, op, values, pat, None) for op, values in _candidates(graph)
                 if pat.reason(values.shape) is None)
    return Int8Sparsity(pat.name, rows)
