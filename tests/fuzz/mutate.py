"""Seeded mutants of a ``.tflite`` flatbuffer, for fuzzing everything that reads a model.

Two kinds of mutation:

- **structured**: the flatbuffer is unpacked with the schema's object API
  (``schema_py_generated.ModelT.InitFromObj``), one to three fields are changed (shapes, types,
  quantization, buffers, op and opcode indices, builtin options, subgraphs, op order), and the
  model is packed again, so the mutant is a well-formed flatbuffer with bad contents;
- **raw**: bits flipped, bytes or 32-bit words overwritten, or the file truncated, so the
  flatbuffer itself is damaged.

Every mutant is a pure function of (base model name, seed, index): :func:`mutant` regenerates any
one of them, which is how a failure found by ``make fuzz`` is reproduced. Other tests (e.g. a
sanitizer run over fuzzed models that build) reuse :func:`mutants`.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
UINT32_MAX = 2**32 - 1

DIMS = (0, -1, -2, INT32_MIN, INT32_MAX, 2**30, 2**24 + 1, 65536, 46341, 1000, 7, 3, 2)
SCALES = (math.nan, math.inf, -math.inf, 0.0, -0.5, -1e-3, 1e-45, 1e-38, 3e38, 3.4028235e38,
          1e-10, 1e10, 2.0**-24)
ZERO_POINTS = (128, -129, 255, 256, -256, 32768, INT32_MAX, INT32_MIN, 2**40, -(2**40),
               2**63 - 1)
INT_OPTIONS = (0, -1, -2, 2, 3, 5, 127, -128, 255, 65535, 2**20, INT32_MAX, INT32_MIN)
FLOAT_OPTIONS = (math.nan, math.inf, -math.inf, 0.0, -1.0, 1e-30, 1e30)
INDICES = (-1, -2, INT32_MIN, INT32_MAX)
UINT_INDICES = (UINT32_MAX, 2**31, 2**16)
TENSOR_TYPES = (*range(22), 99, 127, -1)

Mutation = Callable[[Any, random.Random], "str | None"]


@dataclass(frozen=True)
class Mutant:
    """One mutated model. ``description`` says what changed (for reports and repros)."""

    base: str
    seed: int
    index: int
    description: str
    data: bytes = b""

    @property
    def key(self) -> str:
        return f"{self.base}/{self.seed}/{self.index}"


def schema() -> Any:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated


def unpack(data: bytes) -> Any:
    s = schema()
    return s.ModelT.InitFromObj(s.Model.GetRootAs(data, 0))


def pack(model: Any) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


# ---- picking targets --------------------------------------------------------------------------

def _sub(model: Any, rng: random.Random) -> Any:
    subs = model.subgraphs or []
    return subs[rng.randrange(len(subs))] if subs else None


def _tensor(model: Any, rng: random.Random, pred: Callable[[Any], bool] = lambda t: True) -> Any:
    sub = _sub(model, rng)
    tensors = [t for t in (sub.tensors or []) if pred(t)] if sub is not None else []
    return rng.choice(tensors) if tensors else None


def _quantized(t: Any) -> bool:
    q = t.quantization
    return q is not None and q.scale is not None and len(q.scale) > 0


def _op(model: Any, rng: random.Random) -> tuple[Any, Any]:
    sub = _sub(model, rng)
    ops = (sub.operators or []) if sub is not None else []
    return (sub, rng.choice(ops)) if ops else (sub, None)


def _name(t: Any) -> str:
    raw = t.name if t.name is not None else b""
    return (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw))[:40]


# ---- tensors: shapes, types, buffers ----------------------------------------------------------

def shape_dim(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, lambda t: t.shape is not None and len(t.shape) > 0)
    if t is None:
        return None
    shape = [int(d) for d in t.shape]
    axis = rng.randrange(len(shape))
    shape[axis] = rng.choice(DIMS) if rng.random() < 0.7 else shape[axis] + rng.choice((-1, 1))
    t.shape = shape
    return f"shape of '{_name(t)}' = {shape}"


def shape_overflow(model: Any, rng: random.Random) -> str | None:
    """Dims whose product overflows int32 (or int64) while each one fits."""
    t = _tensor(model, rng, lambda t: t.shape is not None and len(t.shape) > 1)
    if t is None:
        return None
    big = rng.choice((46341, 65536, 2**20, INT32_MAX))
    t.shape = [big] * len(t.shape)
    return f"shape of '{_name(t)}' = {t.shape}"


def shape_rank(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng)
    if t is None:
        return None
    shape = [int(d) for d in (t.shape if t.shape is not None else [])]
    choice = rng.randrange(4)
    if choice == 0 and shape:
        shape.pop(rng.randrange(len(shape)))
    elif choice == 1:
        shape.insert(rng.randrange(len(shape) + 1), rng.choice((1, 2, 0, 9)))
    elif choice == 2:
        shape = [1] * rng.randrange(5, 9) + shape
    else:
        shape = []
    t.shape = shape if shape or rng.random() < 0.5 else None
    return f"shape of '{_name(t)}' = {t.shape}"


def tensor_type(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng)
    if t is None:
        return None
    t.type = rng.choice(TENSOR_TYPES)
    return f"type of '{_name(t)}' = {t.type}"


def tensor_buffer(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng)
    if t is None:
        return None
    n = len(model.buffers or [])
    t.buffer = rng.choice((n, n + 7, *UINT_INDICES, rng.randrange(max(n, 1))))
    return f"buffer of '{_name(t)}' = {t.buffer}"


def _const_buffer(model: Any, rng: random.Random) -> tuple[Any, Any]:
    t = _tensor(model, rng, lambda t: 0 <= t.buffer < len(model.buffers or [])
                   and model.buffers[t.buffer].data is not None)
    return (t, None) if t is None else (t, model.buffers[t.buffer])


def buffer_data(model: Any, rng: random.Random) -> str | None:
    t, buf = _const_buffer(model, rng)
    if t is None:
        return None
    data = np.asarray(buf.data, dtype=np.uint8)
    choice = rng.randrange(4)
    if choice == 0:
        buf.data = data[: rng.randrange(len(data))]
    elif choice == 1:
        buf.data = np.concatenate([data, np.zeros(rng.choice((1, 3, 4, 64)), np.uint8)])
    elif choice == 2:
        buf.data = None
    else:
        buf.data = np.frombuffer(rng.randbytes(len(data)), np.uint8)
    return f"data of '{_name(t)}' changed ({choice})"


def buffer_extreme(model: Any, rng: random.Random) -> str | None:
    """Constant values at the ends of their type (INT32_MAX biases, -128 weights)."""
    t, buf = _const_buffer(model, rng)
    if t is None:
        return None
    data = np.asarray(buf.data, dtype=np.uint8).copy()
    width = 4 if t.type in (2, 0) else 1
    value = rng.choice((INT32_MAX, INT32_MIN, -1)) if width == 4 else rng.choice((-128, 127))
    pattern = struct.pack("<i" if width == 4 else "<b", value)
    for pos in range(0, len(data) - width + 1, width):
        if rng.random() < 0.5:
            data[pos:pos + width] = np.frombuffer(pattern, np.uint8)
    buf.data = data
    return f"data of '{_name(t)}' set to {value}"


def buffer_external(model: Any, rng: random.Random) -> str | None:
    t, buf = _const_buffer(model, rng)
    if t is None:
        return None
    buf.data, buf.offset, buf.size = None, rng.choice((1, 2**40)), rng.choice((16, 2**33))
    return f"data of '{_name(t)}' moved outside the flatbuffer"


def tensor_delete(model: Any, rng: random.Random) -> str | None:
    sub = _sub(model, rng)
    if sub is None or not sub.tensors:
        return None
    gone = sub.tensors.pop(rng.randrange(len(sub.tensors)))
    return f"tensor '{_name(gone)}' deleted"


def tensor_name(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng)
    if t is None:
        return None
    t.name = rng.choice((b"\xff\xfe\x80bad", b"", None, b"x" * 5000, b"a;b/c\n\x00"))
    return "tensor name changed"


def tensor_sparsity(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng)
    if t is None:
        return None
    sp = schema().SparsityParametersT()
    sp.traversalOrder = [0, 1]
    sp.blockMap = [0]
    t.sparsity = sp
    return f"'{_name(t)}' marked sparse"


def tensor_variable(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng)
    if t is None:
        return None
    t.isVariable = True
    return f"'{_name(t)}' marked variable"


# ---- quantization -----------------------------------------------------------------------------

def scale_value(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, _quantized)
    if t is None:
        return None
    scale = np.array(t.quantization.scale, dtype=np.float32)
    i = rng.randrange(len(scale))
    scale[i] = np.float32(rng.choice(SCALES))
    t.quantization.scale = scale
    return f"scale[{i}] of '{_name(t)}' = {scale[i]}"


def scale_count(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, _quantized)
    if t is None:
        return None
    q = t.quantization
    n = rng.choice((0, 1, 2, len(q.scale) - 1, len(q.scale) + 1, len(q.scale) * 2))
    q.scale = np.resize(np.asarray(q.scale, np.float32), max(n, 0))
    if rng.random() < 0.5 and q.zeroPoint is not None:
        q.zeroPoint = np.resize(np.asarray(q.zeroPoint, np.int64), max(n, 0))
    return f"{n} scales on '{_name(t)}'"


def zero_point_value(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, _quantized)
    if t is None or t.quantization.zeroPoint is None or not len(t.quantization.zeroPoint):
        return None
    zp = np.array(t.quantization.zeroPoint, dtype=np.int64)
    i = rng.randrange(len(zp))
    zp[i] = rng.choice(ZERO_POINTS)
    t.quantization.zeroPoint = zp
    return f"zero_point[{i}] of '{_name(t)}' = {zp[i]}"


def zero_point_count(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, _quantized)
    if t is None:
        return None
    q = t.quantization
    n = rng.choice((0, 1, 2, len(q.scale) + 1))
    q.zeroPoint = None if rng.random() < 0.4 else np.zeros(n, np.int64)
    return f"zero points of '{_name(t)}': {None if q.zeroPoint is None else n}"


def quant_axis(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, _quantized)
    if t is None:
        return None
    t.quantization.quantizedDimension = rng.choice((-1, 1, 2, 3, 4, 9, INT32_MAX, INT32_MIN))
    return f"quantized_dimension of '{_name(t)}' = {t.quantization.quantizedDimension}"


def quant_remove(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, _quantized)
    if t is None:
        return None
    t.quantization = None
    return f"quantization of '{_name(t)}' removed"


def quant_add(model: Any, rng: random.Random) -> str | None:
    t = _tensor(model, rng, lambda t: not _quantized(t))
    if t is None:
        return None
    q = schema().QuantizationParametersT()
    q.scale = np.array([rng.choice((0.5, *SCALES))], np.float32)
    q.zeroPoint = np.array([rng.choice((0, 3, 128))], np.int64)
    t.quantization = q
    return f"quantization added to '{_name(t)}'"


# ---- operators and opcodes --------------------------------------------------------------------

def _index_value(n: int, rng: random.Random) -> int:
    return rng.choice((n, n + 1, *INDICES, rng.randrange(max(n, 1))))


def op_input(model: Any, rng: random.Random) -> str | None:
    sub, op = _op(model, rng)
    if op is None or op.inputs is None or not len(op.inputs):
        return None
    inputs = [int(v) for v in op.inputs]
    i = rng.randrange(len(inputs))
    inputs[i] = -1 if rng.random() < 0.3 else _index_value(len(sub.tensors or []), rng)
    op.inputs = inputs
    return f"input {i} of an op = {inputs[i]}"


def op_output(model: Any, rng: random.Random) -> str | None:
    sub, op = _op(model, rng)
    if op is None or op.outputs is None or not len(op.outputs):
        return None
    outputs = [int(v) for v in op.outputs]
    outputs[0] = _index_value(len(sub.tensors or []), rng)
    op.outputs = outputs
    return f"output of an op = {outputs[0]}"


def op_arity(model: Any, rng: random.Random) -> str | None:
    """Ops without inputs or outputs, with one input too few, or with extra ones."""
    sub, op = _op(model, rng)
    if op is None:
        return None
    choice = rng.randrange(5)
    inputs = [int(v) for v in (op.inputs if op.inputs is not None else [])]
    if choice == 0:
        op.inputs = None if rng.random() < 0.5 else []
    elif choice == 1:
        op.outputs = None if rng.random() < 0.5 else []
    elif choice == 2:
        op.inputs = inputs[:-1]
    elif choice == 3:
        op.inputs = [*inputs, rng.choice((-1, 0, len(sub.tensors or []) - 1))]
    else:
        op.outputs = [*(op.outputs if op.outputs is not None else []), 0]
    return f"op arity changed ({choice})"


def op_opcode_index(model: Any, rng: random.Random) -> str | None:
    _, op = _op(model, rng)
    if op is None:
        return None
    n = len(model.operatorCodes or [])
    op.opcodeIndex = rng.choice((n, n + 3, *UINT_INDICES, rng.randrange(max(n, 1))))
    return f"opcode index of an op = {op.opcodeIndex}"


def opcode_code(model: Any, rng: random.Random) -> str | None:
    codes = model.operatorCodes or []
    if not codes:
        return None
    code = rng.choice(codes)
    choice = rng.randrange(4)
    if choice == 0:
        code.builtinCode = rng.choice((rng.randrange(0, 210), 500, -1, INT32_MAX))
    elif choice == 1:
        code.deprecatedBuiltinCode = rng.choice((rng.randrange(0, 127), 127, -1, -128))
    elif choice == 2:
        code.builtinCode, code.deprecatedBuiltinCode = 32, 32  # CUSTOM
        code.customCode = rng.choice((b"MyOp", b"\xff\xfe", None))
    else:
        code.version = rng.choice((0, -1, 99, INT32_MAX))
    return f"opcode changed ({choice})"


def _option_fields(options: Any) -> list[str]:
    return [k for k, v in vars(options).items() if isinstance(v, (bool, int, float))]


def option_value(model: Any, rng: random.Random) -> str | None:
    _, op = _op(model, rng)
    if op is None or op.builtinOptions is None or not _option_fields(op.builtinOptions):
        return None
    key = rng.choice(_option_fields(op.builtinOptions))
    value = getattr(op.builtinOptions, key)
    if isinstance(value, bool):
        new: Any = not value
    elif isinstance(value, float):
        new = rng.choice(FLOAT_OPTIONS)
    else:
        new = rng.choice(INT_OPTIONS)
    setattr(op.builtinOptions, key, new)
    return f"option {key} of an op = {new}"


def options_type(model: Any, rng: random.Random) -> str | None:
    """Options removed, or tagged with the wrong union type (another op's options)."""
    sub, op = _op(model, rng)
    if op is None:
        return None
    choice = rng.randrange(3)
    if choice == 0:
        op.builtinOptionsType, op.builtinOptions = 0, None
    elif choice == 1:
        others = [o for o in (sub.operators or []) if o.builtinOptionsType != op.builtinOptionsType
                  and o.builtinOptions is not None]
        if not others:
            return None
        other = rng.choice(others)
        op.builtinOptionsType, op.builtinOptions = other.builtinOptionsType, other.builtinOptions
    else:
        op.builtinOptionsType = rng.choice((1, 2, 5, 8, 9, 17, 127))
    return f"options of an op changed ({choice})"


def op_order(model: Any, rng: random.Random) -> str | None:
    """An op deleted, duplicated or moved (inputs used before they are computed)."""
    sub, op = _op(model, rng)
    if op is None:
        return None
    ops = sub.operators
    i = ops.index(op)
    choice = rng.randrange(4)
    if choice == 0:
        ops.pop(i)
    elif choice == 1:
        ops.insert(rng.randrange(len(ops) + 1), op)
    elif choice == 2:
        j = rng.randrange(len(ops))
        ops[i], ops[j] = ops[j], ops[i]
    else:
        sub.operators = []
    return f"op order changed ({choice})"


# ---- subgraphs and the model ------------------------------------------------------------------

def subgraphs(model: Any, rng: random.Random) -> str | None:
    choice = rng.randrange(3)
    if choice == 0:
        model.subgraphs = rng.choice(([], None))
    elif choice == 1 and model.subgraphs:
        model.subgraphs = [*model.subgraphs, model.subgraphs[0]]
    elif model.subgraphs:
        model.subgraphs[0].tensors = []
    return f"subgraphs changed ({choice})"


def subgraph_io(model: Any, rng: random.Random) -> str | None:
    sub = _sub(model, rng)
    if sub is None:
        return None
    n = len(sub.tensors or [])
    which = rng.choice(("inputs", "outputs"))
    values = [int(v) for v in (getattr(sub, which) if getattr(sub, which) is not None else [])]
    choice = rng.randrange(4)
    if choice == 0:
        values = []
    elif choice == 1:
        values = [*values, rng.randrange(max(n, 1))]
    elif values:
        values[rng.randrange(len(values))] = _index_value(n, rng) if choice == 2 else values[0]
    setattr(sub, which, values)
    return f"subgraph {which} = {values[:4]}"


def buffers(model: Any, rng: random.Random) -> str | None:
    bufs = model.buffers or []
    if not bufs:
        return None
    if rng.random() < 0.5:
        model.buffers = bufs[: rng.randrange(len(bufs))]
    else:
        model.buffers = None
    return "buffer list cut"


STRUCTURED: dict[str, Mutation] = {
    f.__name__: f for f in (
        shape_dim, shape_overflow, shape_rank, tensor_type, tensor_buffer, buffer_data,
        buffer_extreme, buffer_external, tensor_delete, tensor_name, tensor_sparsity,
        tensor_variable, scale_value, scale_count, zero_point_value, zero_point_count,
        quant_axis, quant_remove, quant_add, op_input, op_output, op_arity, op_opcode_index,
        opcode_code, option_value, options_type, op_order, subgraphs, subgraph_io, buffers)
}
"""Structured mutations by name; each changes a ModelT in place and says what it did (None when
the model has nothing it applies to)."""

# Weights: the quantization, shape and index mutations find the most, so they come up more.
WEIGHTS: dict[str, int] = {name: 1 for name in STRUCTURED} | {
    "shape_dim": 4, "scale_value": 4, "zero_point_value": 3, "op_input": 3, "option_value": 4,
    "shape_overflow": 2, "scale_count": 2, "buffer_extreme": 2, "opcode_code": 2,
    "op_arity": 2, "tensor_type": 2, "quant_axis": 2,
}


# ---- raw mutations ----------------------------------------------------------------------------

def bit_flips(data: bytearray, rng: random.Random) -> str:
    n = rng.choice((1, 1, 2, 4, 8, 16))
    for _ in range(n):
        pos = rng.randrange(8, len(data))
        data[pos] ^= 1 << rng.randrange(8)
    return f"{n} bit flips"


def byte_set(data: bytearray, rng: random.Random) -> str:
    n = rng.choice((1, 4, 16))
    for _ in range(n):
        data[rng.randrange(8, len(data))] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
    return f"{n} bytes overwritten"


def word_set(data: bytearray, rng: random.Random) -> str:
    """A 32-bit word (an offset, a length, a dim) overwritten, aligned as flatbuffers are."""
    pos = rng.randrange(8, len(data) - 4) & ~3
    value = rng.choice((0, 1, UINT32_MAX, 2**31, 2**31 - 1, 2**16, len(data), rng.getrandbits(32)))
    data[pos:pos + 4] = struct.pack("<I", value)
    return f"word @{pos} = {value:#x}"


def truncate(data: bytearray, rng: random.Random) -> str:
    cut = rng.randrange(8, len(data))
    del data[cut:]
    return f"truncated to {cut} bytes"


RAW: dict[str, Callable[[bytearray, random.Random], str]] = {
    f.__name__: f for f in (bit_flips, byte_set, word_set, truncate)}
RAW_WEIGHTS = {"bit_flips": 5, "byte_set": 2, "word_set": 3, "truncate": 1}

STRUCTURED_SHARE = 0.7  # of the mutants; the rest are raw


# ---- mutants ----------------------------------------------------------------------------------

def _weighted(rng: random.Random, weights: dict[str, int]) -> str:
    names = list(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _structured(base: bytes, rng: random.Random) -> tuple[bytes, list[str]] | None:
    model = unpack(base)
    done: list[str] = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        what = STRUCTURED[_weighted(rng, WEIGHTS)](model, rng)
        if what is not None:
            done.append(what)
    if not done:
        return None
    try:
        return pack(model), done
    except (struct.error, OverflowError, ValueError, TypeError):
        return None  # a value the field cannot hold (e.g. INT32_MAX into an int8): draw again


def _raw(data: bytes, rng: random.Random) -> tuple[bytes, list[str]]:
    out = bytearray(data)
    what = RAW[_weighted(rng, RAW_WEIGHTS)](out, rng)
    return bytes(out), [what]


def mutant(base_name: str, base: bytes, seed: int, index: int) -> Mutant:
    """The mutant number ``index`` of ``base`` (deterministic in name, seed and index)."""
    rng = random.Random(f"{seed}/{base_name}/{index}")
    for _ in range(20):
        made = _structured(base, rng) if rng.random() < STRUCTURED_SHARE else _raw(base, rng)
        if made is not None:
            data, what = made
            if rng.random() < 0.1:  # sometimes damage a mutated model too
                data, more = _raw(data, rng)
                what += more
            return Mutant(base_name, seed, index, "; ".join(what), data)
    data, what = _raw(base, rng)
    return Mutant(base_name, seed, index, "; ".join(what), data)


def mutants(base_name: str, base: bytes, seed: int, count: int,
            start: int = 0) -> Iterator[Mutant]:
    """``count`` mutants of ``base`` from index ``start`` on."""
    for index in range(start, start + count):
        yield mutant(base_name, base, seed, index)
