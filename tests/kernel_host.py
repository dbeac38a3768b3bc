"""Runtime kernels on the host: compile runtime/kernels/*.c to a shared library, call via ctypes.

Shared by the kernel unit tests. A library is built once per (sources, defines) and cached in a
folder the caller gives (a pytest ``tmp_path_factory`` folder, so nothing is written into the
repository). The ctypes mirrors of ``tp_nn_types.h`` live here; op-specific parameter structs
belong to each test module.

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
from pathlib import Path

import numpy as np

RUNTIME = Path(__file__).resolve().parents[1] / "runtime"
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
