"""The rules the reader holds a ``.tflite`` file to, before any later stage sees it.

Every field a later stage (planner, kernel handlers, codegen, the TFLite Micro reference
interpreter) reads is checked here once: indices, types, shapes and their sizes, constant
buffers, quantization parameters, opcodes and builtin options, per-op arity, and the dataflow
of the graph. A violation is a :class:`~tinyprune.errors.UsageError` (exit 2) whose one-line
message names the file, the tensor or op (index and name), the field, what was expected and what
was received, and what to do. docs/reader.md lists the rules and the bounds.

The bounds are far above what any Cortex-M board holds (the largest board file has 4 MiB of
RAM), so no real model meets them; they keep a damaged or hostile file from making any stage
allocate gigabytes or overflow a 32-bit size in the generated C.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tinyprune.errors import UsageError

MAX_FILE_BYTES = 64 << 20
"""Largest .tflite read (the flatbuffer itself; no Cortex-M board has this much flash)."""
MAX_TENSOR_BYTES = 16 << 20
"""Largest tensor (constant or activation), and so the largest input or output."""
MAX_TOTAL_BYTES = 64 << 20
"""All tensors of the model together, constants and activations, counted without reuse."""
MAX_RANK = 6
"""TFLite Micro's RuntimeShape holds at most 6 dimensions."""
MAX_WINDOW = 2**15 - 1
"""Largest stride, dilation, pooling window, dilated filter window or depth multiplier: TFLite
Micro keeps strides, dilations, depth multipliers and paddings in int16 (ConvParams,
DepthwiseParams, PaddingValues), so beyond this the reference interpreter computes with
truncated values (a dilation of 65535 gave a padding of -1)."""
MIN_SCALE, MAX_SCALE = 1e-30, 1e30
"""Quantization scales lie in this range. Converted models stay within about 1e-12 (a bias of an
all-zero channel, whose filter scale the converter sets to 3.9e-9) and 1e3; outside it the
generation-time arithmetic in float32 overflows (6.0 / scale for a RELU6 bound is infinite for a
scale below 1.8e-38) and the dequantized range of an int8 tensor means nothing."""
MAX_OP_INPUTS = 1024
MAX_ITEMS = 1 << 16
"""Most tensors, operators, buffers, operator codes or metadata entries (converted models have
a few hundred): the flatbuffer's object API builds a Python object for each."""
SCHEMA_VERSION = 3

FIX = "re-export the model with the TFLite converter"
BOUND_FIX = "no Cortex-M board holds a model this large; check the file, or re-export it"

INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1), "bool": (0, 1),
}


@dataclass(frozen=True)
class Where:
    """The file being read; builds the messages."""

    label: str

    def error(self, what: str, field: str, expected: str, received: Any,
              fix: str = FIX) -> UsageError:
        return UsageError(f"{self.label}: {what}: {field}: expected {expected}, received "
                          f"{received}; {fix}")


def short(name: str, limit: int = 60) -> str:
    """A name for a one-line message: control characters replaced, long names cut."""
    clean = "".join(c if c.isprintable() else "?" for c in name)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def tensor_what(index: int, name: str) -> str:
    return f"tensor {index} '{short(name)}'"


def op_what(index: int, name: str, opcode: str) -> str:
    return f"op {index} '{short(name)}' ({opcode})"


# ---- the model and its subgraph ---------------------------------------------------------------

def check_header(version: int, subgraphs: int, where: Where) -> None:
    """Schema version 3 and exactly one subgraph."""
    if version != SCHEMA_VERSION:
        raise where.error("model", "schema version", str(SCHEMA_VERSION), version)
    if subgraphs != 1:
        fix = "control flow (several subgraphs) is not supported" if subgraphs > 1 else FIX
        raise where.error("model", "subgraphs", "exactly 1", subgraphs, fix)


def check_counts(counts: dict[str, int], where: Where) -> None:
    for field, n in counts.items():
        if n > MAX_ITEMS:
            raise where.error("model", field, f"at most {MAX_ITEMS:,}", f"{n:,}", BOUND_FIX)


def check_string_bytes(total: int, file_bytes: int, where: Where) -> None:
    """The names the reader copies fit in the file: more means tables share strings (a
    flatbuffer no converter writes), which would make unpacking copy them without bound."""
    if total > file_bytes:
        raise where.error("model", "names", f"at most {file_bytes:,} bytes of names (the file's "
                          "size)", f"{total:,} bytes (names shared between tables)")


def check_raw_options(options_type: int, options2_type: int, var_handle: int, what: str,
                      where: Where) -> None:
    """Options with strings of their own are read only for ops tinyprune could not run anyway
    (StableHLO ops, resource variables): refused before they are unpacked."""
    if options2_type:
        raise where.error(what, "builtin_options_2", "none", f"options type {options2_type}",
                          "StableHLO ops are not supported; tinyprune takes TFLite builtin ops")
    if options_type == var_handle:
        raise where.error(what, "builtin options", "no resource variable",
                          "VarHandleOptions", "stateful models are not supported")


def check_model(model: Any, where: Where) -> Any:
    """Schema version, exactly one subgraph, metadata pointing at real buffers; the subgraph."""
    check_header(int(model.version), len(model.subgraphs or []), where)
    subs = model.subgraphs
    n = len(model.buffers or [])
    for i, meta in enumerate(model.metadata or []):
        if not 0 <= int(meta.buffer) < n:
            raise where.error(f"metadata {i}", "buffer", f"an index below {n}", meta.buffer)
    return subs[0]


def check_file_size(size: int, where: Where) -> None:
    if size > MAX_FILE_BYTES:
        raise where.error("model", "file size", f"at most {MAX_FILE_BYTES:,} bytes",
                          f"{size:,}", BOUND_FIX)


# ---- tensors ----------------------------------------------------------------------------------

def check_dtype(dtype: str, supported: Iterable[str], what: str, where: Where) -> None:
    if dtype not in supported:
        raise where.error(what, "type", f"one of {', '.join(supported)}", dtype,
                          "tinyprune takes full-integer int8 models; " + FIX)


def check_shape(shape: Sequence[int], itemsize: int, what: str, where: Where) -> int:
    """Rank, positive dims and the byte bound; returns the tensor's bytes."""
    if len(shape) > MAX_RANK:
        raise where.error(what, "shape", f"at most {MAX_RANK} dimensions", list(shape))
    if any(d < 1 for d in shape):
        raise where.error(what, "shape", "positive dimensions (static shapes, batch 1)",
                          list(shape))
    nbytes = math.prod(shape) * itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise where.error(what, "shape", f"at most {MAX_TENSOR_BYTES:,} bytes per tensor",
                          f"{list(shape)} ({nbytes:,} bytes)", BOUND_FIX)
    return nbytes


def check_total(total: int, where: Where) -> None:
    if total > MAX_TOTAL_BYTES:
        raise where.error("model", "tensors", f"at most {MAX_TOTAL_BYTES:,} bytes in all",
                          f"{total:,}", BOUND_FIX)


def check_tensor_flags(sparse: bool, variants: int, external: int, what: str,
                       where: Where) -> None:
    """Features tinyprune and the reference interpreter do not handle in a dense int8 model
    (checked on the raw tables, before their contents are unpacked; variable tensors are
    checked against the ops that use them, :func:`check_variables`)."""
    if variants:
        raise where.error(what, "variant_tensors", "none", variants,
                          "tinyprune takes full-integer int8 models")
    if sparse:
        raise where.error(what, "sparsity", "a dense tensor", "TFLite sparse storage",
                          "convert without sparse weight storage")
    if external:
        raise where.error(what, "external_buffer", "data inside the flatbuffer",
                          f"external buffer {external}", FIX)


STATE_INPUTS = {"UNIDIRECTIONAL_SEQUENCE_LSTM": frozenset({18, 19})}
"""Input positions that hold an op's state (variable tensors): the only place a variable
tensor may appear. The op's kernel starts every inference from a zero state."""


def check_variables(variables: Sequence[tuple[int, str]],
                    ops: Sequence[tuple[str, str, Sequence[int], Sequence[int]]],
                    graph_io: Sequence[int], where: Where) -> None:
    """Each variable tensor (index, name) is the state input of exactly one op of
    :data:`STATE_INPUTS` (ops as (what, opcode, inputs, outputs)), used by no other op and not
    a graph input or output: tinyprune runs each inference from a zero state, which is only
    the model's meaning when the state never leaves the op."""
    for index, name in variables:
        uses = [(what, code, pos) for what, code, ins, outs in ops
                for pos, t in [*enumerate(ins), *((-1, o) for o in outs)] if t == index]
        ok = (index not in graph_io and len(uses) == 1
              and uses[0][2] in STATE_INPUTS.get(uses[0][1], ()))
        if not ok:
            raise where.error(tensor_what(index, name), "is_variable",
                              "false (or the state of an UNIDIRECTIONAL_SEQUENCE_LSTM, used by "
                              "it alone)", "true (a stateful variable tensor)",
                              "stateful models are not supported")


def _count(values: Any) -> int:
    return 0 if values is None else len(values)


def check_quant(q: Any, dtype: str, shape: Sequence[int], what: str,
                where: Where) -> tuple[tuple[float, ...], tuple[int, ...], int] | None:
    """(scales, zero points broadcast to the scale count, axis), or None when unquantized.

    As TFLite Micro reads it: scales and zero points both present, as many zero points as
    scales (or one for all); per-channel scales lie along an existing axis of that length.
    """
    n = _count(q.scale) if q is not None else 0
    if n == 0:
        return None
    scales = tuple(float(s) for s in q.scale)
    for i, s in enumerate(scales):
        if not (math.isfinite(s) and s > 0):
            raise where.error(what, f"quantization scale[{i}]", "a finite positive number", s)
        if not MIN_SCALE <= s <= MAX_SCALE:
            raise where.error(what, f"quantization scale[{i}]",
                              f"a value in [{MIN_SCALE:g}, {MAX_SCALE:g}]", f"{s:g}")
    zps = [int(z) for z in q.zeroPoint] if _count(q.zeroPoint) else []
    if len(zps) not in (1, n):
        shown = "none" if not zps else len(zps)
        expected = "1 value" if n == 1 else f"{n} values (or 1)"
        raise where.error(what, "quantization zero_point", expected, shown)
    lo, hi = INT_RANGES.get(dtype, INT_RANGES["int64"])
    for i, z in enumerate(zps):
        if not lo <= z <= hi:
            raise where.error(what, f"quantization zero_point[{i}]",
                              f"a value in [{lo}, {hi}] for {dtype}", z)
    axis = int(q.quantizedDimension)
    if n > 1 and not (0 <= axis < len(shape) and shape[axis] == n):
        raise where.error(what, "quantization quantized_dimension",
                          f"an axis of {list(shape)} with {n} channels (one per scale)", axis)
    return scales, tuple(zps * n if len(zps) == 1 else zps), axis if n > 1 else 0


def check_buffer_index(index: int, n: int, what: str, where: Where) -> None:
    if not 0 <= index < n:
        raise where.error(what, "buffer", f"an index below {n} (the model's buffers)", index)


def check_data_size(nbytes: int, expected: int, shape: Sequence[int], dtype: str, what: str,
                    where: Where) -> None:
    if nbytes != expected:
        raise where.error(what, "buffer data", f"{expected:,} bytes for {list(shape)} of {dtype}",
                          f"{nbytes:,} bytes")


# ---- opcodes and builtin options -------------------------------------------------------------

def check_opcode(value: int, names: dict[int, str], index: int, where: Where) -> str:
    if value not in names:
        raise where.error(f"operator code {index}", "builtin_code",
                          f"a TFLite builtin operator (0..{max(names)})", value,
                          "the model is damaged or newer than the schema tinyprune reads; " + FIX)
    return names[value]


def check_enum(value: int, names: dict[int, str], field: str, what: str, where: Where) -> str:
    if value not in names:
        raise where.error(what, field, f"one of {', '.join(names.values())}", value)
    return names[value]


INT_OPTION_RANGES: dict[str, tuple[int, int]] = {
    "stride_w": (1, MAX_WINDOW), "stride_h": (1, MAX_WINDOW),
    "dilation_w_factor": (1, MAX_WINDOW), "dilation_h_factor": (1, MAX_WINDOW),
    "filter_width": (1, MAX_WINDOW), "filter_height": (1, MAX_WINDOW),
    "depth_multiplier": (0, MAX_WINDOW), "axis": (-MAX_RANK, MAX_RANK - 1),
    "values_count": (0, MAX_OP_INPUTS), "num_squeeze_dims": (0, MAX_RANK),
}
"""Integer builtin options (snake_case) that must lie in a range, for the ops the reader knows."""
LIST_OPTION_RANGES: dict[str, tuple[int, int]] = {
    "squeeze_dims": (-MAX_RANK, MAX_RANK - 1), "new_shape": (-1, MAX_TENSOR_BYTES),
}


def check_option_value(key: str, value: Any, what: str, where: Where) -> None:
    """One builtin option of an op the reader knows (bounds by field name)."""
    if key in INT_OPTION_RANGES:
        lo, hi = INT_OPTION_RANGES[key]
        if not lo <= int(value) <= hi:
            raise where.error(what, key, f"a value in [{lo}, {hi}]", value)
    elif key in LIST_OPTION_RANGES and value is not None:
        lo, hi = LIST_OPTION_RANGES[key]
        if len(value) > MAX_RANK or any(not lo <= int(v) <= hi for v in value):
            raise where.error(what, key, f"at most {MAX_RANK} values in [{lo}, {hi}]",
                              list(value)[:8])
    elif key == "beta" and not (math.isfinite(float(value)) and float(value) > 0):
        raise where.error(what, key, "a finite positive number", value)


# ---- operators: arity and optional inputs -----------------------------------------------------

@dataclass(frozen=True)
class OpRule:
    """What an op takes, as TFLite Micro's Prepare checks it.

    Attributes:
        inputs: (fewest, most) inputs.
        optional: input positions that may be absent (-1), e.g. a bias.
        ranks: the rank each input position must have (None: any).
        out_ranks: the rank of each output (None: any).
        options: the builtin options type the op carries (``None``: no options).
        options_required: the options must be present (TFLite Micro would read zeros, e.g. a
            stride of 0, where the reader would assume a default).
        window: input 1 is a filter [_, KH, KW, _] dilated by the op's dilation factors; its
            dilated extent must stay within :data:`MAX_WINDOW` (and so every padding).
        same_shape: an element-wise op: the output has the shape of input 0.
        outputs: (fewest, most) outputs (SPLIT, SPLIT_V and UNPACK have several).
    """

    inputs: tuple[int, int]
    optional: frozenset[int] = frozenset()
    ranks: tuple[int | None, ...] = ()
    out_ranks: tuple[int | None, ...] = ()
    options: str | None = None
    options_required: bool = False
    window: bool = False
    same_shape: bool = False
    outputs: tuple[int, int] = (1, 1)


_CONV = OpRule((2, 3), frozenset({2}), (4, 4, 1), (4,), options_required=True, window=True)
_POOL = OpRule((1, 1), ranks=(4,), out_ranks=(4,), options="Pool2DOptions",
               options_required=True)
_ELEMENTWISE = OpRule((1, 1), same_shape=True)

OP_RULES: dict[str, OpRule] = {
    "CONV_2D": replace(_CONV, options="Conv2DOptions"),
    "DEPTHWISE_CONV_2D": replace(_CONV, options="DepthwiseConv2DOptions"),
    "FULLY_CONNECTED": OpRule((2, 3), frozenset({2}), (None, 2, 1),
                              options="FullyConnectedOptions"),
    "ADD": OpRule((2, 2), options="AddOptions"),
    "SUB": OpRule((2, 2), options="SubOptions"),
    "MUL": OpRule((2, 2), options="MulOptions"),
    "MAX_POOL_2D": _POOL,
    "AVERAGE_POOL_2D": _POOL,
    "MEAN": OpRule((2, 2), options="ReducerOptions"),
    "RESHAPE": OpRule((1, 2), frozenset({1}), options="ReshapeOptions"),
    "EXPAND_DIMS": OpRule((2, 2), options="ExpandDimsOptions"),
    "SQUEEZE": OpRule((1, 1), options="SqueezeOptions"),
    "SOFTMAX": OpRule((1, 1), options="SoftmaxOptions", options_required=True, same_shape=True),
    "LOGISTIC": OpRule((1, 1), same_shape=True),
    "PAD": OpRule((2, 2), ranks=(None, 2), options="PadOptions"),
    "PADV2": OpRule((2, 3), frozenset({2}), (None, 2, None), options="PadV2Options"),
    "CONCATENATION": OpRule((1, MAX_OP_INPUTS), options="ConcatenationOptions",
                            options_required=True),
    "QUANTIZE": OpRule((1, 1), options="QuantizeOptions", same_shape=True),
    "DEQUANTIZE": OpRule((1, 1), options="DequantizeOptions", same_shape=True),
    "SHAPE": OpRule((1, 1), options="ShapeOptions"),
    "STRIDED_SLICE": OpRule((4, 4), ranks=(None, 1, 1, 1), options="StridedSliceOptions",
                            options_required=True),
    "PACK": OpRule((1, MAX_OP_INPUTS), options="PackOptions", options_required=True),
    # The ops of the Keras backbones (docs/ops.md), options as the schema names them.
    "HARD_SWISH": OpRule((1, 1), options="HardSwishOptions",
                         same_shape=True),
    "RELU": _ELEMENTWISE,
    "RELU6": _ELEMENTWISE,
    "TANH": _ELEMENTWISE,
    "RSQRT": _ELEMENTWISE,
    "NEG": OpRule((1, 1), options="NegOptions", same_shape=True),
    "LEAKY_RELU": OpRule((1, 1), options="LeakyReluOptions", options_required=True,
                         same_shape=True),
    "MAXIMUM": OpRule((2, 2), options="MaximumMinimumOptions"),
    "MINIMUM": OpRule((2, 2), options="MaximumMinimumOptions"),
    "SQUARED_DIFFERENCE": OpRule((2, 2), options="SquaredDifferenceOptions"),
    "PRELU": OpRule((2, 2)),
    "RESIZE_BILINEAR": OpRule((2, 2), ranks=(4, 1), out_ranks=(4,),
                              options="ResizeBilinearOptions"),
    "RESIZE_NEAREST_NEIGHBOR": OpRule((2, 2), ranks=(4, 1), out_ranks=(4,),
                                      options="ResizeNearestNeighborOptions"),
    "TRANSPOSE_CONV": OpRule((3, 4), frozenset({3}), (1, 4, 4, 1), (4,),
                             options="TransposeConvOptions", options_required=True),
    "SPLIT": OpRule((2, 2), options="SplitOptions", options_required=True,
                    outputs=(1, MAX_OP_INPUTS)),
    "SPLIT_V": OpRule((3, 3), options="SplitVOptions", options_required=True,
                      outputs=(1, MAX_OP_INPUTS)),
    "UNPACK": OpRule((1, 1), options="UnpackOptions", options_required=True,
                     outputs=(1, MAX_OP_INPUTS)),
    # input, 4 + 4 weights, 3 peephole, 4 biases, 2 projection, 2 states, 4 layer norm
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OpRule(
        (24, 24), frozenset({1, 5, 9, 10, 11, 12, 16, 17, 20, 21, 22, 23}), (3,), (3,),
        options="UnidirectionalSequenceLSTMOptions", options_required=True),
}
"""Per-op rules for every op tinyprune lowers or folds; other ops are refused by the planner
(after the generic checks here), with the list of supported ones."""


def check_arity(rule: OpRule, inputs: Sequence[int], outputs: Sequence[int], what: str,
                where: Where) -> None:
    lo, hi = rule.inputs
    if not lo <= len(inputs) <= hi:
        expected = plural(lo, "input") if lo == hi else f"{lo} to {hi} inputs"
        raise where.error(what, "inputs", expected, len(inputs))
    for pos, t in enumerate(inputs):
        if t < 0 and pos not in rule.optional:
            raise where.error(what, f"input {pos}", "a tensor (this input is required)",
                              "none (-1)")
    lo, hi = rule.outputs
    if not lo <= len(outputs) <= hi:
        expected = plural(lo, "output") if lo == hi else f"{lo} to {hi} outputs"
        raise where.error(what, "outputs", expected, len(outputs))


def check_shapes(rule: OpRule, in_shapes: Sequence[tuple[int, ...] | None],
                 out_shapes: Sequence[tuple[int, ...]], what: str, where: Where) -> None:
    """Ranks of inputs and outputs; for element-wise ops, the output's shape is the input's."""
    if rule.same_shape and in_shapes[0] is not None and out_shapes[0] != in_shapes[0]:
        raise where.error(what, "output 0 shape", f"{list(in_shapes[0])} (the input's shape)",
                          list(out_shapes[0]))
    for kind, ranks, shapes in (("input", rule.ranks, in_shapes),
                                ("output", rule.out_ranks, out_shapes)):
        for pos, (rank, shape) in enumerate(zip(ranks, shapes, strict=False)):
            if rank is not None and shape is not None and len(shape) != rank:
                raise where.error(what, f"{kind} {pos} shape", f"{rank} dimensions",
                                  list(shape))


def check_window(filter_shape: tuple[int, ...], options: dict[str, Any], what: str,
                 where: Where) -> None:
    """The dilated filter window ((k - 1) * dilation + 1) of a convolution, both axes."""
    for axis, name in ((1, "h"), (2, "w")):
        dilation = int(options.get(f"dilation_{name}_factor", 1))
        extent = (filter_shape[axis] - 1) * dilation + 1
        if extent > MAX_WINDOW:
            raise where.error(what, f"dilation_{name}_factor",
                              f"a dilated filter at most {MAX_WINDOW} wide", f"{dilation} "
                              f"(filter {filter_shape[axis]}: {extent})")


def check_options(rule: OpRule, options_type: str | None, what: str, where: Where) -> None:
    if options_type is None:
        if rule.options_required:
            raise where.error(what, "builtin options", rule.options or "none", "none")
        return
    if options_type != rule.options:
        raise where.error(what, "builtin options", rule.options or "none", options_type)


# ---- the graph's dataflow ---------------------------------------------------------------------

@dataclass(frozen=True)
class Flow:
    """What the dataflow check needs of a tensor: its name, whether it is a constant and
    whether it is an op's state (a variable tensor: ready before any op runs)."""

    name: str
    const: bool
    variable: bool = False


def check_graph_io(inputs: Sequence[int], outputs: Sequence[int], tensors: Sequence[Flow],
                   where: Where) -> None:
    for kind, indices in (("inputs", inputs), ("outputs", outputs)):
        if not indices:
            raise where.error("subgraph", kind, "at least one tensor", "none")
        if len(set(indices)) != len(indices):
            raise where.error("subgraph", kind, "distinct tensors", list(indices)[:8])
        for i in indices:
            if not 0 <= i < len(tensors):
                raise where.error("subgraph", kind, f"tensor indices below {len(tensors)}", i)
    for i in inputs:
        if tensors[i].const:
            raise where.error(tensor_what(i, tensors[i].name), "graph input",
                              "a tensor without constant data", "a constant")


def check_dataflow(ops: Sequence[tuple[str, Sequence[int], Sequence[int]]],
                   graph_inputs: Sequence[int], graph_outputs: Sequence[int],
                   tensors: Sequence[Flow], where: Where) -> None:
    """Ops in execution order: each input is a constant, a graph input or computed by an
    earlier op; each output is computed once, is not a constant and not a graph input; every
    graph output is computed."""
    ready = set(graph_inputs) | {i for i, t in enumerate(tensors) if t.const or t.variable}
    computed: set[int] = set()
    for what, inputs, outputs in ops:
        for pos, t in enumerate(inputs):
            if t >= 0 and t not in ready:
                raise where.error(what, f"input {pos}",
                                  "a constant, a graph input or a tensor an earlier op computes",
                                  f"{tensor_what(t, tensors[t].name)}, computed by no earlier op")
        for t in outputs:
            if tensors[t].const or t in graph_inputs or t in computed:
                kind = ("a constant" if tensors[t].const else
                        "a graph input" if t in graph_inputs else "computed twice")
                raise where.error(what, "output", "a tensor only this op computes",
                                  f"{tensor_what(t, tensors[t].name)}, {kind}")
            computed.add(t)
            ready.add(t)
    for t in graph_outputs:
        if t not in computed:
            raise where.error(tensor_what(t, tensors[t].name), "graph output",
                              "a tensor an op computes", "computed by no op")
