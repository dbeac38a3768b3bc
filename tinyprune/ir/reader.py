"""Reads a ``.tflite`` flatbuffer into an :class:`~tinyprune.ir.graph.Graph`, validating as it goes.

Everything a later stage relies on is checked here once (:mod:`tinyprune.ir.validate` holds the
rules: indices, types, shapes and their bounds, constant buffers, quantization, opcodes and
options, per-op arity, dataflow, one subgraph), so a damaged or hostile file stops with a one-line
:class:`UsageError` naming the file, the tensor or op and the field, instead of a crash in a later
stage or in the reference interpreter.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.ir import validate as v
from tinyprune.ir.graph import DTYPE_BYTES, NP_DTYPES, Graph, Op, Quant, Tensor

log = logging.getLogger(__name__)

_ENUM_FIELDS = {"padding": "Padding", "fusedActivationFunction": "ActivationFunctionType"}
"""Builtin options read as enum names."""
_ENUM_CHECKED = {"weightsFormat": "FullyConnectedOptionsWeightsFormat",
                 "quantizedBiasType": "TensorType"}
"""Builtin options kept as numbers, but checked to be a value of their enum (TFLite Micro
refuses a quantized_bias_type outside TensorType when it parses the options)."""
DEFAULT_LABEL = "the .tflite model"


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def read_tflite(source: str | Path | bytes, *, name: str | Path | None = None) -> Graph:
    """Parses and validates a TFLite flatbuffer.

    Args:
        source: path to a ``.tflite`` file, or its bytes.
        name: the file the bytes came from; messages and ``Graph.source`` name it (default: the
            path, or "the .tflite model" for bytes without a name).

    Returns:
        The graph of the (only) subgraph, with constant buffers as numpy arrays.

    Raises:
        UsageError: the file is missing, not a TFLite flatbuffer, damaged, breaks a rule of
            :mod:`tinyprune.ir.validate` or exceeds its bounds.
    """
    path = None if isinstance(source, bytes) else Path(source)
    label = str(name) if name is not None else str(path) if path is not None else DEFAULT_LABEL
    where = v.Where(label)
    buf = _read_bytes(source, where)
    schema = _schema()
    try:
        model = _unpack(buf, schema, where)
    except UsageError:
        raise
    except Exception as exc:  # a damaged flatbuffer raises anything from struct to IndexError
        raise _corrupt(label, exc) from None
    source_path = Path(name) if name is not None else path
    try:
        return _to_graph(model, schema, where, source_path)
    except UsageError:
        raise
    except (IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        log.debug("unexpected field in %s", label, exc_info=True)
        raise _corrupt(label, exc) from None


def _read_bytes(source: str | Path | bytes, where: v.Where) -> bytes:
    """The flatbuffer (size bound checked before a file is read), with its identifier."""
    if isinstance(source, bytes):
        buf = source
        v.check_file_size(len(buf), where)
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"{where.label}: file not found")
        v.check_file_size(path.stat().st_size, where)
        buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise UsageError(f"{where.label}: not a TFLite flatbuffer (no 'TFL3' identifier); "
                         "give a .tflite file written by the TFLite converter")
    return buf


def _string_len(table: Any, slot: int) -> int:
    """The length of a string field of a raw table, without copying it."""
    o = table._tab.Offset(slot)
    return int(table._tab.VectorLen(o)) if o else 0


def _items(table: Any, field: str) -> list[Any]:
    """The raw tables of a vector field (``Tensors`` ...), after its length was bounded."""
    return [getattr(table, field)(i) for i in range(getattr(table, field + "Length")())]


# vtable slots of the strings the object API copies (schema_py_generated: Tensor.Name,
# OperatorCode.CustomCode, Metadata.Name, SubGraph.Name, Model.Description,
# SignatureDef.SignatureKey, TensorMap.Name, ExternalBufferGroup.Name)
_TENSOR_NAME, _CUSTOM_CODE, _METADATA_NAME, _SUBGRAPH_NAME, _DESCRIPTION = 10, 6, 4, 12, 10
_SIGNATURE_KEY, _TENSOR_MAP_NAME, _GROUP_NAME = 8, 4, 4


def _unpack(buf: bytes, schema: Any, where: v.Where) -> Any:
    """The whole ``ModelT`` (as the reference interpreter's Python wrapper unpacks it too), once
    the counts of its tables and the bytes of the names it copies are checked on the raw tables.

    A flatbuffer can point many entries of a vector at one table or string; the object API
    copies each, so a small file could otherwise unpack into gigabytes.
    """
    m = schema.Model.GetRootAs(buf, 0)
    v.check_header(int(m.Version()), int(m.SubgraphsLength()), where)
    sub = m.Subgraphs(0)
    lengths = {"tensors": sub.TensorsLength(), "operators": sub.OperatorsLength(),
               "buffers": m.BuffersLength(), "operator codes": m.OperatorCodesLength(),
               "metadata": m.MetadataLength(), "signature defs": m.SignatureDefsLength(),
               "external buffer groups": m.ExternalBufferGroupsLength(),
               "external buffers": m.ExternalBuffersLength()}
    v.check_counts(lengths, where)
    signatures = _items(m, "SignatureDefs")
    maps = [t for s in signatures for field in ("Inputs", "Outputs") for t in _items(s, field)]
    v.check_counts({"signature tensors": len(maps)}, where)
    tensors = _items(sub, "Tensors")
    names = (sum(_string_len(t, _TENSOR_NAME) for t in tensors)
             + sum(_string_len(c, _CUSTOM_CODE) for c in _items(m, "OperatorCodes"))
             + sum(_string_len(x, _METADATA_NAME) for x in _items(m, "Metadata"))
             + sum(_string_len(s, _SIGNATURE_KEY) for s in signatures)
             + sum(_string_len(t, _TENSOR_MAP_NAME) for t in maps)
             + sum(_string_len(g, _GROUP_NAME) for g in _items(m, "ExternalBufferGroups"))
             + _string_len(sub, _SUBGRAPH_NAME) + _string_len(m, _DESCRIPTION))
    v.check_string_bytes(names, len(buf), where)
    for i, t in enumerate(tensors):
        v.check_tensor_flags(t.Sparsity() is not None, int(t.VariantTensorsLength()),
                             int(t.ExternalBuffer()),
                             v.tensor_what(i, _text(t.Name()) or f"tensor{i}"), where)
    for i, o in enumerate(_items(sub, "Operators")):
        v.check_raw_options(int(o.BuiltinOptionsType()), int(o.BuiltinOptions2Type()),
                            int(schema.BuiltinOptions.VarHandleOptions), f"op {i}", where)
    return schema.ModelT.InitFromObj(m)


def _to_graph(model: Any, schema: Any, where: v.Where, source: Path | None) -> Graph:
    sub = v.check_model(model, where)
    buffers = model.buffers or []
    built: list[Tensor] = []
    total = 0
    unread = _intermediates_only(sub)
    for i, t in enumerate(sub.tensors or []):
        built.append(_tensor(i, t, buffers, schema, where, empty_ok=i in unread))
        total += built[-1].nbytes
        v.check_total(total, where)  # before the next tensor copies its data
    tensors = tuple(built)
    codes = [_opcode_name(i, c, schema, where) for i, c in enumerate(model.operatorCodes or [])]
    ops = tuple(_op(i, o, codes, tensors, schema, where)
                for i, o in enumerate(sub.operators or []))
    inputs, outputs = _ints(sub.inputs), _ints(sub.outputs)
    flows = [v.Flow(t.name, t.is_const, t.is_variable) for t in tensors]
    v.check_graph_io(inputs, outputs, flows, where)
    v.check_variables([(t.index, t.name) for t in tensors if t.is_variable],
                      [(v.op_what(op.index, op.name, op.opcode), op.opcode, op.inputs,
                        op.outputs) for op in ops], (*inputs, *outputs), where)
    v.check_dataflow([(v.op_what(op.index, op.name, op.opcode), op.inputs, op.outputs)
                      for op in ops], inputs, outputs, flows, where)
    return Graph(tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, source=source)


def _corrupt(label: str, exc: Exception) -> UsageError:
    kind = type(exc).__name__
    if type(exc).__module__ not in ("builtins", "__main__"):
        kind = f"{type(exc).__module__}.{kind}"
    return UsageError(f"{label}: not a valid TFLite model, corrupt TFLite flatbuffer ({kind}: "
                      f"{v.short(str(exc), 120)}); {v.FIX}")


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in (values if values is not None else []))


def _check_indices(values: tuple[int, ...], n: int, what: str, field: str, where: v.Where,
                   allow_missing: bool) -> None:
    for pos, x in enumerate(values):
        if not (0 <= x < n or (allow_missing and x == -1)):
            expected = f"a tensor index below {n}" + (" (or -1: none)" if allow_missing else "")
            raise where.error(what, f"{field}[{pos}]", expected, x)


def _opcode_name(index: int, code: Any, schema: Any, where: v.Where) -> str:
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = v.check_opcode(value, _enum_names(schema.BuiltinOperator), index, where)
    if name == "CUSTOM":
        return f"CUSTOM({v.short(_text(code.customCode), 40)})"
    return name


def _intermediates_only(sub: Any) -> set[int]:
    """Tensors that are some op's ``intermediates`` (the quantization statistics of an LSTM's
    gates, which TFLite Micro's kernels do not read) and no op's input or output: the converter
    gives them an empty shape ([0]), which the reader accepts for them alone."""
    inter: set[int] = set()
    used: set[int] = set()
    for o in sub.operators or []:
        inter.update(_ints(getattr(o, "intermediates", None)))
        used.update(_ints(o.inputs))
        used.update(_ints(o.outputs))
    return inter - used


def _tensor(index: int, t: Any, buffers: list[Any], schema: Any, where: v.Where,
            empty_ok: bool = False) -> Tensor:
    name = _text(t.name) or f"tensor{index}"
    what = v.tensor_what(index, name)
    dtype = _enum_names(schema.TensorType).get(int(t.type), f"type {t.type}").lower()
    v.check_dtype(dtype, tuple(NP_DTYPES), what, where)
    shape = _ints(t.shape)
    if empty_ok and 0 in shape and all(d >= 0 for d in shape) and len(shape) <= v.MAX_RANK:
        return Tensor(index=index, name=name, shape=shape, dtype=dtype)
    nbytes = v.check_shape(shape, DTYPE_BYTES[dtype], what, where)
    checked = v.check_quant(t.quantization, dtype, shape, what, where)
    quant = None if checked is None else Quant(scale=checked[0], zero_point=checked[1],
                                               axis=checked[2])
    data = _data(t, buffers, dtype, shape, nbytes, what, where)
    return Tensor(index=index, name=name, shape=shape, dtype=dtype, quant=quant, data=data,
                  is_variable=bool(t.isVariable))


def _data(t: Any, buffers: list[Any], dtype: str, shape: tuple[int, ...], nbytes: int,
          what: str, where: v.Where) -> np.ndarray | None:
    """The constant value of a tensor (None for activations), checked against its shape."""
    v.check_buffer_index(int(t.buffer), len(buffers), what, where)
    buf = buffers[int(t.buffer)]
    raw = None if buf is None else buf.data
    if raw is None and buf is not None and (int(buf.size or 0) > 0 or int(buf.offset or 0) > 1):
        raise where.error(what, "buffer", "data inside the flatbuffer",
                          f"data outside it (offset {buf.offset}, size {buf.size})",
                          "models over 2 GB are not supported")
    if raw is None or len(raw) == 0:
        return None
    v.check_data_size(len(raw), nbytes, shape, dtype, what, where)
    arr = np.frombuffer(bytes(raw), dtype=np.uint8)
    if dtype == "bool" and int(arr.max()) > 1:
        raise where.error(what, "buffer data", "bool values 0 or 1", int(arr.max()))
    return arr.view(NP_DTYPES[dtype]).reshape(shape).copy()


def _options(o: Any, schema: Any, what: str, where: v.Where,
             strict: bool) -> tuple[str | None, dict[str, Any]]:
    """(options type name or None, builtin options as plain values, enums by name). With
    ``strict`` (an op the reader knows) enum values are checked."""
    opts: dict[str, Any] = {}
    kind = None
    if o.builtinOptions is not None:
        kind = type(o.builtinOptions).__name__.removesuffix("T")
    elif int(o.builtinOptionsType or 0):
        kind = f"options type {o.builtinOptionsType}"
    for holder in (o.builtinOptions, getattr(o, "builtinOptions2", None)):
        if holder is None:
            continue
        for key, value in vars(holder).items():
            if key in _ENUM_FIELDS or key in _ENUM_CHECKED:
                names = _enum_names(getattr(schema, {**_ENUM_FIELDS, **_ENUM_CHECKED}[key]))
                if strict:
                    v.check_enum(int(value), names, _snake(key), what, where)
                if key in _ENUM_FIELDS:
                    value = names.get(int(value), str(value))
            elif isinstance(value, np.ndarray):
                value = [int(x) for x in value]
            opts[_snake(key)] = value
    return kind, opts


def _op_name(tensors: tuple[Tensor, ...], outs: tuple[int, ...], index: int, code: str) -> str:
    """The layer name (from the first output's tensor name), safe inside a C comment."""
    raw = layer_name(tensors[outs[0]].name, f"op{index}_{code.lower()}")
    name = "".join(c if c.isprintable() else "_" for c in raw).replace("*/", "*_/")
    return name[:200]


def layer_name(tensor_name: str, fallback: str) -> str:
    """The Keras layer name inside a converter tensor name like ``model/conv1/Relu;...``."""
    first = tensor_name.split(";")[0]
    parts = [p for p in first.split("/") if p and not p.startswith("StatefulPartitionedCall")]
    if len(parts) >= 3:
        return parts[1]
    if len(parts) == 2:
        return parts[0] if parts[1][:1].isupper() else parts[1]
    if not parts or ":" in parts[0] or re.fullmatch(r"Identity(_\d+)?", parts[0]):
        return fallback  # a graph output or signature tensor (``Identity``, ``...:0``)
    return parts[0]


# Moved to tinyprune/ir/names.py; re-exported for existing callers.
from tinyprune.ir.names import keras_layer_names  # noqa: E402,F401


def _op(index: int, o: Any, codes: list[str], tensors: tuple[Tensor, ...], schema: Any,
        where: v.Where) -> Op:
    if not 0 <= int(o.opcodeIndex) < len(codes):
        raise where.error(f"op {index}", "opcode_index",
                          f"an index below {len(codes)} (the model's operator codes)",
                          o.opcodeIndex)
    code = codes[int(o.opcodeIndex)]
    ins, outs = _ints(o.inputs), _ints(o.outputs)
    _check_indices(ins, len(tensors), f"op {index} ({code})", "inputs", where, True)
    _check_indices(outs, len(tensors), f"op {index} ({code})", "outputs", where, False)
    if not outs:
        raise where.error(f"op {index} ({code})", "outputs", "at least 1 output", 0)
    name = _op_name(tensors, outs, index, code)
    what = v.op_what(index, name, code)
    rule = v.OP_RULES.get(code)
    kind, options = _options(o, schema, what, where, strict=rule is not None)
    if rule is not None:
        v.check_arity(rule, ins, outs, what, where)
        v.check_shapes(rule, [tensors[t].shape if t >= 0 else None for t in ins],
                       [tensors[t].shape for t in outs], what, where)
        v.check_options(rule, kind, what, where)
        for key, value in options.items():
            v.check_option_value(key, value, what, where)
        if rule.window:
            v.check_window(tensors[ins[1]].shape, options, what, where)
    return Op(index=index, opcode=code, inputs=ins, outputs=outs, options=options, name=name)
