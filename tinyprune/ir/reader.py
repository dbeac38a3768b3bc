"""Reads a ``.tflite`` flatbuffer into an :class:`~tinyprune.ir.graph.Graph`, validating as it goes.

Everything a later stage relies on is checked here once (indices in range, buffer sizes matching
shapes, one subgraph), so a corrupt or hostile file stops with a one-line :class:`UsageError`
instead of a crash in codegen.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from tinyprune.errors import UsageError
from tinyprune.ir.graph import DTYPE_BYTES, Graph, Op, Quant, Tensor

_ENUM_FIELDS = {"padding": "Padding", "fusedActivationFunction": "ActivationFunctionType"}
_NP_DTYPES = {
    "int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
    "int64": np.int64, "float32": np.float32, "bool": np.bool_,
}


def _schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


def _enum_names(enum_cls: type) -> dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def read_tflite(source: str | Path | bytes) -> Graph:
    """Parses and validates a TFLite flatbuffer.

    Args:
        source: path to a ``.tflite`` file, or its bytes.

    Returns:
        The graph of the first (only) subgraph, with constant buffers as numpy arrays.

    Raises:
        UsageError: the file is missing, not a TFLite flatbuffer, or inconsistent.
    """
    path: Path | None
    if isinstance(source, bytes):
        path, label, buf = None, "<tflite bytes>", source
    else:
        path = Path(source)
        label = str(path)
        if not path.is_file():
            raise UsageError(f"{label}: file not found")
        buf = path.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise UsageError(f"{label}: not a TFLite flatbuffer (no 'TFL3' identifier); "
                         "give a .tflite file written by the TFLite converter")
    schema = _schema()
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(buf, 0))
    except Exception as exc:
        raise _corrupt(label, exc) from None
    try:
        return _to_graph(model, schema, label, path)
    except UsageError:
        raise
    except (IndexError, TypeError, ValueError, AttributeError) as exc:
        raise _corrupt(label, exc) from None


def _to_graph(model: Any, schema: Any, label: str, path: Path | None) -> Graph:
    if not model.subgraphs:
        raise UsageError(f"{label}: the model has no subgraph")
    if len(model.subgraphs) > 1:
        raise UsageError(f"{label}: {len(model.subgraphs)} subgraphs (control flow) are not "
                         "supported; expected a single-subgraph model")
    sub = model.subgraphs[0]
    buffers = model.buffers or []
    tensors = tuple(_tensor(i, t, buffers, buf_label=label, schema=schema, raw=model)
                    for i, t in enumerate(sub.tensors or []))
    codes = [_opcode_name(c, schema) for c in (model.operatorCodes or [])]
    ops = tuple(_op(i, o, codes, tensors, schema, label) for i, o in enumerate(sub.operators or []))
    inputs = _indices(sub.inputs, len(tensors), label, "subgraph inputs")
    outputs = _indices(sub.outputs, len(tensors), label, "subgraph outputs")
    return Graph(tensors=tensors, ops=ops, inputs=inputs, outputs=outputs, source=path)


def _corrupt(label: str, exc: Exception) -> UsageError:
    return UsageError(f"{label}: corrupt TFLite flatbuffer ({type(exc).__name__}: {exc})")


def _indices(values: Any, n: int, label: str, what: str,
             allow_missing: bool = False) -> tuple[int, ...]:
    out = tuple(int(v) for v in (values if values is not None else []))
    for v in out:
        if not (0 <= v < n or (allow_missing and v == -1)):
            raise UsageError(f"{label}: {what} refer to tensor {v}, but the model has {n} tensors")
    return out


def _opcode_name(code: Any, schema: Any) -> str:
    names = _enum_names(schema.BuiltinOperator)
    value = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = names.get(value, f"OP_{value}")
    if name == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
        return f"CUSTOM({custom})"
    return name


def _tensor(index: int, t: Any, buffers: list[Any], *, buf_label: str, schema: Any,
            raw: Any) -> Tensor:
    dtype = _enum_names(schema.TensorType).get(int(t.type), f"type{t.type}").lower()
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    name = t.name.decode() if isinstance(t.name, bytes) else str(t.name or f"tensor{index}")
    if any(d < 0 for d in shape):
        raise UsageError(f"{buf_label}: tensor '{name}' has a dynamic shape {list(shape)}; "
                         "tinyprune needs static shapes (batch 1)")
    quant = None
    q = t.quantization
    if q is not None and q.scale is not None and len(q.scale) > 0:
        zps = [int(z) for z in (q.zeroPoint if q.zeroPoint is not None else [0] * len(q.scale))]
        quant = Quant(scale=tuple(float(s) for s in q.scale), zero_point=tuple(zps),
                      axis=int(q.quantizedDimension))
    data = None
    if not 0 <= t.buffer < len(buffers):
        raise UsageError(f"{buf_label}: tensor '{name}' refers to buffer {t.buffer}, "
                         f"but the model has {len(buffers)} buffers")
    buf = buffers[t.buffer]
    raw_bytes = None if buf is None else buf.data
    if raw_bytes is None and buf is not None and int(getattr(buf, "size", 0) or 0) > 0:
        raise UsageError(f"{buf_label}: tensor '{name}' keeps its data outside the flatbuffer "
                         "(models over 2 GB are not supported)")
    if raw_bytes is not None and len(raw_bytes) > 0:
        if dtype not in _NP_DTYPES:
            raise UsageError(f"{buf_label}: constant tensor '{name}' has type {dtype}; "
                             f"supported: {', '.join(_NP_DTYPES)}")
        expected = int(np.prod(shape, dtype=np.int64)) * DTYPE_BYTES[dtype]
        arr: np.ndarray = np.frombuffer(bytes(raw_bytes), dtype=_NP_DTYPES[dtype])
        if arr.nbytes != expected:
            raise UsageError(f"{buf_label}: tensor '{name}' holds {arr.nbytes} bytes, "
                             f"expected {expected} for shape {list(shape)} of {dtype}")
        data = arr.reshape(shape).copy()
    return Tensor(index=index, name=name, shape=shape, dtype=dtype, quant=quant, data=data)


def _options(o: Any, schema: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    for holder in (o.builtinOptions, getattr(o, "builtinOptions2", None)):
        if holder is None:
            continue
        for key, value in vars(holder).items():
            if key in _ENUM_FIELDS:
                value = _enum_names(getattr(schema, _ENUM_FIELDS[key])).get(int(value), str(value))
            elif isinstance(value, np.ndarray):
                value = [int(v) for v in value]
            opts[_snake(key)] = value
    return opts


def layer_name(tensor_name: str, fallback: str) -> str:
    """The Keras layer name inside a converter tensor name like ``model/conv1/Relu;...``."""
    first = tensor_name.split(";")[0]
    parts = [p for p in first.split("/") if p and not p.startswith("StatefulPartitionedCall")]
    if len(parts) >= 3:
        return parts[1]
    if len(parts) == 2:
        return parts[0] if parts[1][:1].isupper() else parts[1]
    return parts[0] if parts and ":" not in parts[0] else fallback


# Moved to tinyprune/ir/names.py; re-exported for existing callers.
from tinyprune.ir.names import keras_layer_names  # noqa: E402,F401


def _op(index: int, o: Any, codes: list[str], tensors: tuple[Tensor, ...], schema: Any,
        label: str) -> Op:
    if not 0 <= o.opcodeIndex < len(codes):
        raise UsageError(f"{label}: operator {index} has opcode index {o.opcodeIndex}, "
                         f"but the model lists {len(codes)} opcodes")
    code = codes[o.opcodeIndex]
    ins = _indices(o.inputs, len(tensors), label, f"inputs of operator {index} ({code})", True)
    outs = _indices(o.outputs, len(tensors), label, f"outputs of operator {index} ({code})")
    name = layer_name(tensors[outs[0]].name, f"op{index}_{code.lower()}") if outs else f"op{index}"
    return Op(index=index, opcode=code, inputs=ins, outputs=outs, options=_options(o, schema),
              name=name)
