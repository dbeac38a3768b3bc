"""Sparse FC / conv kernels on the host: bit-exact with TFLite Micro on the zeroed dense weights.

Each case is a one-layer Keras model converted to full-int8 TFLite whose weights are then zeroed
inside the .tflite in a pattern (tests/sparse_support.py: 1x4 / 2x4 / 4x4 blocks, 2:4, 1:4,
unstructured) at several sparsities. Every way each sparse handler can run the layer (every
block height, every format) is lowered through the real handler and template fragment; all of
them are compiled into one host library per C path (portable, DSP emulated in C), and every
output must equal the TFLite Micro interpreter's on the same weights, over random inputs
(full range, and inputs where most values are the zero point, as after a ReLU).
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import convert_int8
from kernel_host import CFLAGS, RUNTIME, compiler
from sparse_support import HostCtx, sparsify_layer

from tinyprune.ir import Graph, Op, read_tflite
from tinyprune.kernels import sparse_conv, sparse_fc
from tinyprune.kernels.conv import conv_args
from tinyprune.kernels.fully_connected import fc_args

SAMPLES = 10
SOURCES = ("tp_fully_connected_bsr_s8.c", "tp_conv_bsr_s8.c", "tp_fully_connected_nm_s8.c",
           "tp_conv_nm_s8.c", "tp_fully_connected_csr_s8.c", "tp_conv_csr_s8.c",
           "tp_fully_connected_zskip_s8.c")

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@dataclass(frozen=True)
class Shape:
    id: str
    input_shape: tuple[int, ...]
    layer: Callable[[], Any]
    opcode: str


def _dense(n: int, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Dense(n, bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3),
                                  **kw)
    return make


def _conv(*args: Any, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Conv2D(*args, **kw,
                                   bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3))
    return make


SHAPES = [
    Shape("conv1x1_16to8_relu", (5, 5, 16), _conv(8, 1, activation="relu"), "CONV_2D"),
    Shape("conv1x1_cin6_s2", (7, 7, 6), _conv(4, 1, strides=2), "CONV_2D"),  # K % 4 != 0
    Shape("conv3x3_same_8to8", (6, 7, 8), _conv(8, 3, padding="same"), "CONV_2D"),
    Shape("conv3x3_s2_same_cin3", (9, 9, 3), _conv(4, 3, strides=2, padding="same"), "CONV_2D"),
    Shape("conv5x3_valid_relu6", (8, 6, 4), _conv(6, (5, 3), activation="relu6"), "CONV_2D"),
    Shape("conv1x1_cin1040_wide", (3, 3, 1040), _conv(4, 1), "CONV_2D"),  # uint16 block columns
    Shape("fc64x16_relu", (64,), _dense(16, activation="relu"), "FULLY_CONNECTED"),
    Shape("fc37x12", (37,), _dense(12), "FULLY_CONNECTED"),  # IN % 4 != 0
    Shape("fc130x8_nobias", (130,), _dense(8, use_bias=False), "FULLY_CONNECTED"),
    Shape("fc300x6_relu6", (300,), _dense(6, activation="relu6"), "FULLY_CONNECTED"),  # long gaps
]

PATTERNS = [("1x4", 0.0), ("1x4", 0.9), ("4x4", 0.75), ("2:4", 0.5), ("1:4", 0.75),
            ("unstructured", 0.6), ("1x4", 1.0)]
"""(pattern, sparsity): dense weights, 1x4 blocks, grouped blocks, N:M, unstructured, all zero."""

FAMILIES = {  # the formats run on each pattern (every format runs on the 1x4 extremes)
    "1x4": ("bsr_r1", "nm", "csr", "zskip"), "4x4": ("bsr",), "2:4": ("nm", "bsr_r1"),
    "1:4": ("nm",), "unstructured": ("csr", "bsr_r1", "zskip"),
}


def _convert(shape: Shape) -> bytes:
    import keras

    keras.utils.set_random_seed(zlib.crc32(shape.id.encode()))
    model = keras.Sequential([keras.Input(shape.input_shape), shape.layer()])
    return convert_int8(model, shape.input_shape)


def _op(graph: Graph, opcode: str) -> Op:
    return next(op for op in graph.ops if op.opcode == opcode)


# ---- lowering every candidate into one C file --------------------------------------------------


@dataclass(frozen=True)
class Variant:
    id: str
    function: str
    kernel: str
    scratch_bytes: int
    weight_bytes: int
    c_code: str


@dataclass(frozen=True)
class Case:
    id: str
    tflite: bytes
    input_shape: tuple[int, ...]
    variants: dict[bool, list[Variant]]


def _candidates(op: Op, graph: Graph, pattern: str) -> list[tuple[Any, Callable[[HostCtx], Any]]]:
    """The (candidate, lower) pairs of the sparse handlers for the pattern's formats."""
    wanted = FAMILIES[pattern]
    return [(c, lower) for c, lower in _all_candidates(op, graph)
            if any(w in c.family for w in wanted)]


def _all_candidates(op: Op, graph: Graph) -> list[tuple[Any, Callable[[HostCtx], Any]]]:
    """Every (candidate, lower) the sparse handlers of the op offer."""
    out: list[tuple[Any, Callable[[HostCtx], Any]]] = []
    if op.opcode == "FULLY_CONNECTED":
        a = fc_args(op, graph)
        for handler in (sparse_fc.FcBsrHandler(), sparse_fc.FcNmHandler(),
                        sparse_fc.FcCsrHandler(), sparse_fc.FcZeroSkipHandler()):
            for cand in handler.candidates(a):
                out.append((cand, lambda ctx, c=cand: sparse_fc.lower_candidate(op, ctx, a, c)))
    else:
        ca = conv_args(op, graph)
        for conv_handler in (sparse_conv.ConvBsrHandler(), sparse_conv.ConvNmHandler(),
                             sparse_conv.ConvCsrHandler()):
            for cc in conv_handler.candidates(ca):
                out.append((cc, lambda ctx, c=cc: sparse_conv.lower_candidate(op, ctx, ca, c)))
        pointwise = sparse_conv.Conv1x1ZeroSkipHandler()
        if pointwise._accepts(ca):
            out.append((sparse_fc.zskip(sparse_conv.filter_rows(ca), 0.0),
                        lambda ctx: pointwise.lower(op, graph, ctx)))
    return out


def _variants(case_id: str, op: Op, graph: Graph, dsp: bool, pattern: str) -> list[Variant]:
    from tinyprune.firmware.paths import template_environment

    env = template_environment()
    out = []
    for i, (cand, lower) in enumerate(_candidates(op, graph, pattern)):
        fn = f"tp_{case_id}_{i}"
        ctx = HostCtx(fn, op, dsp)
        call = lower(ctx)
        body = env.get_template(call.template).render(**call.params)
        code = "\n".join([*ctx.consts, f"int {fn}(const int8_t *in, int8_t *out, void *scratch)",
                          "{", "    tp_status status;", "    (void)scratch;", body,
                          "    return (int)status;", "}", ""])
        out.append(Variant(f"{case_id}/{cand.encoding}", fn, call.kernel, call.scratch_bytes,
                           call.weight_bytes, code))
    return out


def _cases() -> list[Case]:
    cases = []
    for shape in SHAPES:
        base = _convert(shape)
        graph = read_tflite(base)
        op = _op(graph, shape.opcode)
        weights = graph.tensor(op.inputs[1])
        assert weights.data is not None
        for pattern, sparsity in PATTERNS:
            tag = pattern.replace(":", "of").replace("x", "by")
            cid = f"{shape.id}_{tag}_{int(sparsity * 100)}"
            tflite, _ = sparsify_layer(base, weights.index, weights.data, pattern, sparsity)
            g = read_tflite(tflite)
            o = _op(g, shape.opcode)
            cases.append(Case(cid, tflite, shape.input_shape,
                              {dsp: _variants(cid, o, g, dsp, pattern) for dsp in (False, True)}))
    return cases


def _compile(code: str, dsp: bool, cache: Path) -> ctypes.CDLL:
    digest = hashlib.sha1(code.encode() + str(dsp).encode())
    for p in [*(RUNTIME / "kernels" / s for s in SOURCES),
              *sorted((RUNTIME / "include").glob("*.h"))]:
        digest.update(p.read_bytes())
    lib = cache / f"sparse_{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        src = lib.with_suffix(".c")
        src.write_text(code)
        cmd = [compiler(), *CFLAGS, f"-DTP_USE_DSP={int(dsp)}", f"-I{RUNTIME / 'include'}",
               str(src), *(str(RUNTIME / "kernels" / s) for s in SOURCES), "-o", str(lib)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"generated code does not compile:\n{res.stderr}"
    return ctypes.CDLL(str(lib))


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    return _cases()


@pytest.fixture(scope="module")
def libs(cases: list[Case], tmp_path_factory: pytest.TempPathFactory) -> dict[bool, ctypes.CDLL]:
    cache = tmp_path_factory.mktemp("sparse_kernels")
    out = {}
    for dsp in (False, True):
        code = '#include "tp_nn.h"\n' + "\n".join(v.c_code for c in cases for v in c.variants[dsp])
        out[dsp] = _compile(code, dsp, cache)
    return out


# ---- the reference and the runs ----------------------------------------------------------------

def reference(tflite: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite)
    outs = []
    for x in inputs:
        interp.set_input(x[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return outs


def inputs_for(case: Case, zero_point: int) -> np.ndarray:
    """Full-range random inputs, then inputs where ~70% of the values are the zero point."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    x = rng.integers(-128, 128, (SAMPLES, *case.input_shape), dtype=np.int8)
    relu = rng.random(x[SAMPLES // 2:].shape) < 0.7
    x[SAMPLES // 2:][relu] = zero_point
    return x


def run(lib: ctypes.CDLL, v: Variant, x: np.ndarray, out_size: int) -> np.ndarray:
    scratch = np.zeros(max(v.scratch_bytes, 4) // 4 + 1, np.int32)
    out = np.zeros(out_size, np.int8)
    xin = np.ascontiguousarray(x, np.int8)
    fn = getattr(lib, v.function)
    fn.restype = ctypes.c_int
    status = fn(xin.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                scratch.ctypes.data_as(ctypes.c_void_p))
    assert status == 0, f"{v.id}: status {status}"
    return out


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_sparse_kernels_bit_exact_with_tflm(cases: list[Case], libs: dict[bool, ctypes.CDLL],
                                           dsp: bool) -> None:
    ran: set[str] = set()
    for case in cases:
        graph = read_tflite(case.tflite)
        x_t = graph.tensor(graph.inputs[0])
        inputs = inputs_for(case, x_t.zero_point)
        expected = reference(case.tflite, inputs)
        for v in case.variants[dsp]:
            for i, (x, want) in enumerate(zip(inputs, expected, strict=True)):
                got = run(libs[dsp], v, x, want.size)
                assert np.array_equal(got, want), f"{v.id} ({v.kernel}) input {i}"
            ran.add(v.kernel.replace("_per_channel", ""))
    assert ran == {s.replace(".c", "") for s in SOURCES}  # every kernel ran


REQUANT_C = """
#include "tp_nn_support.h"
#include "tp_sparse_dsp.h"
void sq_many(const int32_t *acc, const int32_t *m, const int32_t *s, int32_t n, int32_t *fast,
             int32_t *ref)
{
    for (int32_t i = 0; i < n; ++i) {
        const tp_sq_channel c = tp_sq_channel_of(m[i], s[i]);
        fast[i] = tp_sq_apply(acc[i], &c);
        ref[i] = tp_requantize(acc[i], m[i], s[i]);
    }
}
"""


def test_smmulr_requantization_equals_tflm_within_the_bound(tmp_path: Path) -> None:
    """tp_sq_apply (the sparse DSP paths' requantization) against the plain TFLM arithmetic,
    for every shift and accumulators up to the bound the generator checks; half-way cases
    (where the rounding direction of negative values matters) are drawn on purpose."""
    src = tmp_path / "rq.c"
    src.write_text(REQUANT_C)
    lib_path = tmp_path / "rq.so"
    cmd = [compiler(), *CFLAGS, "-DTP_USE_DSP=1", f"-I{RUNTIME / 'include'}", str(src), "-o",
           str(lib_path)]
    subprocess.run(cmd, check=True, capture_output=True)
    lib = ctypes.CDLL(str(lib_path))
    rng = np.random.default_rng(5)
    n = 400_000
    shift = rng.integers(-31, 8, n).astype(np.int32)
    mult = rng.integers(1 << 30, (1 << 31) - 1, n, dtype=np.int64).astype(np.int32)
    limit = (1 << (30 - np.maximum(shift, 0))).astype(np.int64)
    acc = (rng.integers(-(1 << 62), 1 << 62, n) % (2 * limit - 1) - (limit - 1)).astype(np.int32)
    # accumulators whose product lands half-way between two results after the shift
    e = np.maximum(-shift, 1).astype(np.int64)
    half = np.arange(n) % 4 == 0
    target = (rng.integers(-(1 << 12), 1 << 12, n) * 2 + 1) << (e - 1)
    acc[half] = np.clip(np.round(target * 2.0**31 / mult), -limit + 1, limit - 1)[half]
    fast, ref = np.zeros(n, np.int32), np.zeros(n, np.int32)
    ptr = [a.ctypes.data_as(ctypes.c_void_p) for a in (acc, mult, shift)]
    lib.sq_many(*ptr, ctypes.c_int32(n), fast.ctypes.data_as(ctypes.c_void_p),
                ref.ctypes.data_as(ctypes.c_void_p))
    bad = np.flatnonzero(fast != ref)
    assert bad.size == 0, list(zip(acc[bad[:5]], mult[bad[:5]], shift[bad[:5]], strict=True))
