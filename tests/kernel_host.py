"""Runtime kernels on the host: compile runtime/kernels/*.c to a shared library, call via ctypes.

Shared by the kernel unit tests. A library is built once per (sources, defines) and cached in a
folder the caller gives (a pytest ``tmp_path_factory`` folder, so nothing is written into the
repository). The ctypes mirrors of ``tp_nn_types.h``, ``tp_nn_conv.h`` and ``tp_nn_fc.h`` live
here, with the calls of the conv / depthwise / FC kernels (``run_window``, ``run_fc``) that the
kernel tests and the property tests share.

Example::

    lib = build_kernels(["tp_conv_s8.c"], {"TP_USE_DSP": 1}, cache_dir)
    lib.tp_conv_s8.restype = ctypes.c_int
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from tinyprune.ir import Graph
from tinyprune.kernels.base import KernelCall, handler_for
from tinyprune.kernels.conv import ConvArgs, ConvKernel
from tinyprune.kernels.fully_connected import (
    FcArgs,
    fc_interleaved_scratch_bytes,
    fc_scratch_bytes,
    fc_stream,
)

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
CONV_SOURCES = ("tp_conv_s8.c", "tp_conv_interleaved_s8.c", "tp_conv_1x1_thin_s8.c",
                "tp_depthwise_conv_s8.c", "tp_depthwise_conv_3x3_s8.c", "tp_fully_connected_s8.c",
                "tp_fully_connected_interleaved_s8.c")
"""The conv, depthwise and fully connected kernels (one library for all of them)."""
CFLAGS = ("-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared")

_LOADED: dict[Path, ctypes.CDLL] = {}


def compiler() -> str:
    """The host C compiler: ``$CC`` or the first of cc / gcc / clang on PATH."""
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return cand
    raise RuntimeError("no host C compiler found; install gcc or set CC")


def build_kernels(sources: Sequence[str], defines: Mapping[str, int | str] | None,
                  cache_dir: Path) -> ctypes.CDLL:
    """Compiles runtime kernels into one shared library (cached) and loads it.

    Args:
        sources: file names under ``runtime/kernels/``, e.g. ``["tp_conv_s8.c"]``.
        defines: ``-D`` macros, e.g. ``{"TP_USE_DSP": 1}``.
        cache_dir: folder for the built libraries; a library whose sources, headers and flags
            are unchanged is reused.

    Returns:
        The loaded library (one handle per built file, shared by all callers).
    """
    paths = [RUNTIME / "kernels" / s for s in sources]
    flags = [*CFLAGS, *(f"-D{k}={v}" for k, v in sorted((defines or {}).items()))]
    key = hashlib.sha1("\0".join(flags).encode())
    for p in [*paths, *sorted((RUNTIME / "include").glob("*.h"))]:
        key.update(p.name.encode() + p.read_bytes())
    out = Path(cache_dir) / f"tp_kernels_{key.hexdigest()[:16]}.so"
    if not out.exists():
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        cmd = [compiler(), *flags, f"-I{RUNTIME / 'include'}", *map(str, paths), "-o", str(tmp)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise RuntimeError(f"compiling {', '.join(sources)} failed:\n{res.stderr}")
        tmp.replace(out)
    if out not in _LOADED:
        _LOADED[out] = ctypes.CDLL(str(out))
    return _LOADED[out]


# ---- ctypes mirrors of tp_nn_types.h ---------------------------------------------------------

class Dims(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("h", ctypes.c_int32), ("w", ctypes.c_int32),
                ("c", ctypes.c_int32)]


class Tile(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int32), ("h", ctypes.c_int32)]


class Context(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("size", ctypes.c_int32)]


class Activation(ctypes.Structure):
    _fields_ = [("min", ctypes.c_int32), ("max", ctypes.c_int32)]


class PerChannelQuant(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.POINTER(ctypes.c_int32)),
                ("shift", ctypes.POINTER(ctypes.c_int32))]


class PerTensorQuant(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.c_int32), ("shift", ctypes.c_int32)]


TP_OK = 0
TP_ERR_ARG = -1


def dims(shape: Sequence[int]) -> Dims:
    """tp_dims from an NHWC shape; shorter shapes are padded with leading 1s."""
    s = [1] * (4 - len(shape)) + [int(v) for v in shape]
    return Dims(*s)


def ptr(arr: np.ndarray | None, ctype: type = ctypes.c_int8) -> object:
    """Pointer to a C-contiguous numpy array (None -> NULL). Keep ``arr`` alive during the call."""
    if arr is None:
        return None
    assert arr.flags["C_CONTIGUOUS"], "array must be C-contiguous"
    return arr.ctypes.data_as(ctypes.POINTER(ctype))


def scratch(size: int) -> tuple[Context, np.ndarray]:
    """A tp_context over a fresh 16-byte-aligned buffer (returned too: keep it alive)."""
    buf = np.zeros(max(size, 0) // 4 + 4, dtype=np.int32)
    return Context(buf.ctypes.data if size > 0 else None, size), buf


def per_channel(multiplier: np.ndarray, shift: np.ndarray) -> tuple[PerChannelQuant, list]:
    """tp_per_channel_quant over int32 copies of the arrays (returned too: keep them alive)."""
    m = np.ascontiguousarray(multiplier, dtype=np.int32)
    s = np.ascontiguousarray(shift, dtype=np.int32)
    return PerChannelQuant(ptr(m, ctypes.c_int32), ptr(s, ctypes.c_int32)), [m, s]


# ---- ctypes mirrors of tp_nn_conv.h / tp_nn_fc.h ---------------------------------------------

class ConvParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
                ("stride", Tile), ("padding", Tile), ("dilation", Tile),
                ("activation", Activation)]


class DwConvParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
                ("ch_mult", ctypes.c_int32), ("stride", Tile), ("padding", Tile),
                ("dilation", Tile), ("activation", Activation)]


class FcParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
                ("activation", Activation)]


# ---- calling the kernels -----------------------------------------------------------------------

def window_params(a: ConvArgs) -> dict[str, Any]:
    return {"input_offset": a.input_offset, "output_offset": a.output_offset,
            "stride": Tile(*a.stride), "padding": Tile(*a.padding),
            "dilation": Tile(*a.dilation), "activation": Activation(a.act_min, a.act_max)}


def run_window(lib: ctypes.CDLL, kernel: ConvKernel, a: ConvArgs, x: np.ndarray,
               dsp: bool, in_place: bool = False, expect: int = TP_OK,
               narrow: bool = False) -> np.ndarray:
    """Runs one conv / depthwise kernel on one input (arguments prepared for it from the TFLM
    ones in ``a``); checks its scratch size against the Python formula. ``in_place``: output
    and input are one buffer (the kernel's in-place scratch, or the normal one when the layer
    cannot run in place); ``expect``: the status the kernel must return; ``narrow``: its
    narrow variant (``kernel.narrow_name``) with the least scratch (``kernel.min_scratch``)."""
    if a.depthwise:
        params: ctypes.Structure = DwConvParams(ch_mult=a.ch_mult, **window_params(a))
    else:
        params = ConvParams(**window_params(a))
    k = kernel.prepare(a)
    in_d, f_d, out_d = dims(a.input_shape), dims(a.filter_shape), dims(a.output_shape)
    size = getattr(lib, f"{kernel.name}_get_buffer_size")(ctypes.byref(in_d), ctypes.byref(f_d))
    assert size == kernel.scratch(a, dsp)
    shared = kernel.in_place(a, dsp) if in_place else None
    if shared is not None and hasattr(lib, f"{kernel.name}_get_buffer_size_in_place"):
        size = getattr(lib, f"{kernel.name}_get_buffer_size_in_place")(ctypes.byref(in_d),
                                                                       ctypes.byref(f_d))
    assert shared is None or size == shared
    name = kernel.narrow_name if narrow else kernel.name
    if narrow:
        size = getattr(lib, f"{name}_get_buffer_size")(ctypes.byref(in_d), ctypes.byref(f_d))
        assert size == kernel.min_scratch(a, dsp)
    ctx, _buf = scratch(size)
    quant, _keep = per_channel(k.multiplier, k.shift)
    x = np.ascontiguousarray(x, dtype=np.int8)
    w = np.ascontiguousarray(k.weights)
    out = np.zeros(a.output_shape, dtype=np.int8)
    if in_place:
        both = np.zeros(max(x.size, out.size), np.int8)
        both[:x.size] = x.reshape(-1)
        x_ptr = out_ptr = ptr(both)
    else:
        x_ptr, out_ptr = ptr(x), ptr(out)
    status = getattr(lib, name)(
        ctypes.byref(ctx), ctypes.byref(params), ctypes.byref(quant), ctypes.byref(in_d),
        x_ptr, ctypes.byref(f_d), ptr(w), None, ptr(k.bias, ctypes.c_int32),
        ctypes.byref(out_d), out_ptr)
    assert status == expect
    return both[:out.size].reshape(out.shape) if in_place else out


def run_fc(lib: ctypes.CDLL, a: FcArgs, x: np.ndarray, dsp: bool) -> np.ndarray:
    """Runs the per-tensor or per-channel fully connected kernel on one input."""
    f_d = dims((a.out_features, 1, 1, a.in_features))
    size = lib.tp_fully_connected_s8_get_buffer_size(ctypes.byref(f_d))
    assert size == fc_scratch_bytes(a.in_features, dsp)
    ctx, _buf = scratch(size)
    params = FcParams(a.input_offset, a.output_offset, Activation(a.act_min, a.act_max))
    if a.per_channel:
        quant, _keep = per_channel(a.multiplier, a.shift)
    else:
        quant = PerTensorQuant(int(a.multiplier[0]), int(a.shift[0]))
    x = np.ascontiguousarray(x, dtype=np.int8)
    w = np.ascontiguousarray(a.weights)
    out = np.zeros((a.rows, a.out_features), dtype=np.int8)
    in_d, out_d = dims((a.rows, 1, 1, a.in_features)), dims((a.rows, 1, 1, a.out_features))
    status = getattr(lib, a.kernel)(
        ctypes.byref(ctx), ctypes.byref(params), ctypes.byref(quant), ctypes.byref(in_d),
        ptr(x), ctypes.byref(f_d), ptr(w), None, ptr(a.bias, ctypes.c_int32),
        ctypes.byref(out_d), ptr(out))
    assert status == TP_OK
    return out


def run_fc_interleaved(lib: ctypes.CDLL, a: FcArgs, stream: np.ndarray, x: np.ndarray,
                       dsp: bool) -> np.ndarray:
    """Runs tp_fully_connected_interleaved_s8 on its stream (fc_stream(a))."""
    f_d = dims((a.out_features, 1, 1, a.in_features))
    size = lib.tp_fully_connected_interleaved_s8_get_buffer_size(ctypes.byref(f_d))
    assert size == fc_interleaved_scratch_bytes(a.in_features, dsp)
    ctx, _buf = scratch(size)
    params = FcParams(a.input_offset, a.output_offset, Activation(a.act_min, a.act_max))
    x = np.ascontiguousarray(x, dtype=np.int8)
    out = np.zeros((a.rows, a.out_features), dtype=np.int8)
    in_d, out_d = dims((a.rows, 1, 1, a.in_features)), dims((a.rows, 1, 1, a.out_features))
    status = lib.tp_fully_connected_interleaved_s8(
        ctypes.byref(ctx), ctypes.byref(params), None, ctypes.byref(in_d), ptr(x),
        ctypes.byref(f_d), ptr(np.ascontiguousarray(stream)), None, None, ctypes.byref(out_d),
        ptr(out))
    assert status == TP_OK
    return out


def fc_outputs(lib: ctypes.CDLL, a: FcArgs, x: np.ndarray, dsp: bool) -> dict[str, np.ndarray]:
    """Every fully connected kernel that accepts the layer, by name: the general one, and the
    interleaved one unless its folded bias leaves int32."""
    got = {a.kernel: run_fc(lib, a, x, dsp)}
    stream = fc_stream(a)
    if stream is not None:
        got["tp_fully_connected_interleaved_s8"] = run_fc_interleaved(lib, a, stream, x, dsp)
    return got


# ---- whole graphs through the handlers and template fragments ---------------------------

class HostCtx:
    """LowerContext for the test: activations are slots of a ``void **T`` argument."""

    dsp = False
    cost_model = "table"
    scratch = "NULL"

    def __init__(self, prefix: str, slots: dict[int, int]) -> None:
        self.prefix, self.slots, self.consts = prefix, slots, []

    def act(self, tensor_index: int) -> str:
        return f"T[{self.slots[tensor_index]}]"

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        name = f"{self.prefix}_k{len(self.consts)}"
        body = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
        self.consts.append(f"static const {ctype} {name}[] = {{ {body} }};")
        return name


@dataclass
class Lowered:
    fn: str  # the C function
    tflite: bytes
    graph: Graph
    slots: dict[int, int]  # tensor index -> buffer slot (aliases share one)
    calls: list[KernelCall]
    c_code: str


def lower_graph(fn: str, tflite: bytes, graph: Graph, env: jinja2.Environment) -> Lowered:
    """Every op of ``graph`` through its handler (``check``, ``lower``) and template fragment,
    as one C function ``int fn(void **T)`` over activation slots (aliases share a slot)."""
    slots: dict[int, int] = {}
    for t in graph.tensors:
        if not t.is_const:
            slots[t.index] = len(slots)
    ctx = HostCtx(fn, slots)
    ctx.scratch = f"{fn}_scratch"  # a static buffer, sized below for the calls that take one
    calls, body = [], []
    for op in graph.ops:
        handler = handler_for(op)
        handler.check(op, graph)
        call = handler.lower(op, graph, ctx)
        calls.append(call)
        if call.alias:
            slots[op.outputs[0]] = slots[op.inputs[0]]
            continue
        body.append(env.get_template(call.template).render(**call.params))
        body.append("    if (status != TP_OK) {\n        return (int)status;\n    }")
    words = (max((c.scratch_bytes for c in calls), default=0) + 3) // 4
    code = "\n".join(
        [
            *ctx.consts,
            *([f"static int32_t {ctx.scratch}[{words}];"] if words else []),
            f"int {fn}(void **T)",
            "{",
            "    tp_status status = TP_OK;",
            "    (void)T, (void)status;  /* an all-alias graph uses neither */",
            *(_indent(b) for b in body),
            "    return 0;",
            "}",
            "",
        ]
    )
    return Lowered(fn, tflite, graph, slots, calls, code)


def _indent(block: str) -> str:
    return "\n".join("    " + line if line.strip() else line for line in block.splitlines())


def compile_fragments(code: str, dsp: int, cache: Path, sources: Sequence[str]) -> ctypes.CDLL:
    """The C of :func:`lower_graph` (headers included) with the kernels ``sources``, one host
    library per code and path (cached in ``cache``)."""
    digest = hashlib.sha1(code.encode() + str(dsp).encode())
    for p in [
        *(RUNTIME / "kernels" / s for s in sources),
        *sorted((RUNTIME / "include").glob("*.h")),
    ]:
        digest.update(p.read_bytes())
    lib = cache / f"misc_{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        src = lib.with_suffix(".c")
        src.write_text(code)
        cmd = [
            compiler(),
            *CFLAGS,
            f"-DTP_USE_DSP={dsp}",
            f"-I{RUNTIME / 'include'}",
            str(src),
            *(str(RUNTIME / "kernels" / s) for s in sources),
            "-o",
            str(lib),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"generated code does not compile:\n{res.stderr}"
    return ctypes.CDLL(str(lib))


_NP = {"int8": np.int8, "float32": np.float32}


def run_lowered(lw: Lowered, lib: ctypes.CDLL, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Runs the function of :func:`lower_graph` on one set of graph inputs; the outputs."""
    bufs: dict[int, np.ndarray] = {}
    for idx, slot in lw.slots.items():
        t = lw.graph.tensor(idx)
        if slot not in bufs:
            bufs[slot] = np.zeros(t.nbytes // 4 + 2, np.float32).view(np.uint8)  # 4-byte aligned
    for i, x in zip(lw.graph.inputs, inputs, strict=True):
        raw = np.ascontiguousarray(x).view(np.uint8).reshape(-1)
        bufs[lw.slots[i]][: raw.size] = raw
    n = max(lw.slots.values()) + 1  # slots an alias replaced stay unused
    table = (ctypes.c_void_p * n)(*(bufs[s].ctypes.data if s in bufs else None for s in range(n)))
    status = getattr(lib, lw.fn)(table)
    assert status == 0, f"kernel returned status {status}"
    outs = []
    for o in lw.graph.outputs:
        t = lw.graph.tensor(o)
        outs.append(bufs[lw.slots[o]][: t.nbytes].view(_NP[t.dtype]).reshape(t.shape).copy())
    return outs


