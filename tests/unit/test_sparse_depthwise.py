"""Block-sparse DEPTHWISE_CONV_2D: encoding, choice, and the kernel bit-exact with TFLite Micro.

Each case is a one-layer Keras DepthwiseConv2D converted to full-int8 TFLite whose (tap, 4
channels) blocks are then zeroed inside the .tflite, lowest L1 first. The handler's call is
rendered through the real template fragment, compiled for the host on both C paths (portable,
and the DSP path over the C emulation of the intrinsics; with UBSan where the compiler has it)
and every output must equal the TFLite Micro interpreter's on the same weights.
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import convert_int8
from kernel_host import CFLAGS, RUNTIME, compiler
from sparse_support import HostCtx, set_weights

from tinyprune.ir import Graph, Op, read_tflite
from tinyprune.kernels import sparse_depthwise
from tinyprune.kernels.conv import depthwise_args
from tinyprune.kernels.sparse_encoding import decode_dw_bsr, dw_block_mask, encode_dw_bsr
from tinyprune.plan import PlanOptions, plan

SAMPLES = 6
SOURCE = "tp_depthwise_conv_bsr_s8.c"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@dataclass(frozen=True)
class Shape:
    id: str
    input_shape: tuple[int, int, int]
    kwargs: dict[str, Any]


SHAPES = [
    Shape("kws_3x3_same_16", (9, 5, 16), {"kernel_size": 3, "padding": "same",
                                          "activation": "relu"}),
    Shape("s2_same_c6", (9, 8, 6), {"kernel_size": 3, "strides": 2, "padding": "same"}),
    Shape("k5x3_valid_s21_relu6", (12, 9, 8), {"kernel_size": (5, 3), "strides": (2, 1),
                                               "activation": "relu6"}),
    Shape("k2x2_same_c4", (5, 6, 4), {"kernel_size": 2, "padding": "same"}),
]
SPARSITIES = (0.0, 0.5, 0.75, 0.9, 1.0)
RESCALED = ("kws_3x3_same_16", {"_tiny": 2.0**17, "_big": 2.0**-7})
"""A shape whose output scale is made 2^17 larger (shifts near -25, whose rounding words with
the output offset folded in pass 2^30: the kernel's `fast` mode 2) and 2^7 smaller (shifts
above -2: mode 0, the TFLM arithmetic)."""


def scale_output(tflite: bytes, factor: float) -> bytes:
    """The model with its output tensor's scale multiplied by ``factor``."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    sub = model.subgraphs[0]
    q = sub.tensors[sub.outputs[0]].quantization
    q.scale = [float(v) * factor for v in q.scale]
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _convert(shape: Shape) -> bytes:
    import keras

    keras.utils.set_random_seed(zlib.crc32(shape.id.encode()))
    layer = keras.layers.DepthwiseConv2D(
        bias_initializer=keras.initializers.RandomUniform(-0.3, 0.3), **shape.kwargs)
    model = keras.Sequential([keras.Input(shape.input_shape), layer])
    return convert_int8(model, shape.input_shape)


def _op(graph: Graph) -> Op:
    return next(op for op in graph.ops if op.opcode == "DEPTHWISE_CONV_2D")


def zero_blocks(taps: np.ndarray, sparsity: float) -> np.ndarray:
    """``[T, C]`` int8 with the lowest-L1 fraction of its (tap, 4-channel) blocks zeroed."""
    t, c = taps.shape
    groups = -(-c // 4)
    padded = np.zeros((t, groups * 4), np.int8)
    padded[:, :c] = taps
    blocks = padded.reshape(t, groups, 4)
    l1 = np.abs(blocks.astype(np.int64)).sum(axis=2).reshape(-1)
    drop = np.argsort(l1, kind="stable")[:round(sparsity * l1.size)]
    flat = blocks.reshape(-1, 4)
    flat[drop] = 0
    return np.ascontiguousarray(flat.reshape(t, -1)[:, :c])


# ---- encoding --------------------------------------------------------------------------------

@pytest.mark.parametrize("t,c,sparsity", [(9, 64, 0.75), (9, 6, 0.5), (15, 8, 0.0), (4, 4, 1.0)])
def test_dw_encoding_round_trips_and_counts_bytes(t: int, c: int, sparsity: float) -> None:
    rng = np.random.default_rng(t * c)
    taps = zero_blocks(rng.integers(-127, 128, (t, c)).astype(np.int8), sparsity)
    e = encode_dw_bsr(taps)
    assert np.array_equal(decode_dw_bsr(e), taps)
    mask = dw_block_mask(taps)
    assert e.stored_blocks == int(mask.sum()) and e.counts.tolist() == mask.sum(axis=1).tolist()
    assert e.index.dtype == np.uint8 and e.counts.dtype == np.uint8
    assert e.nbytes == max(e.counts.size, 1) + max(e.index.size, 1) + max(4 * e.stored_blocks, 1)
    assert e.block_sparsity == pytest.approx(1 - mask.mean())


# ---- the kernel on the host --------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    tflite: bytes
    input_shape: tuple[int, ...]
    scratch_bytes: int
    code: dict[bool, str]


def _case(shape: Shape, base: bytes, sparsity: float, tag: str = "") -> Case:
    from tinyprune.firmware.paths import template_environment

    graph = read_tflite(base)
    w = graph.tensor(_op(graph).inputs[1])
    assert w.data is not None
    taps = np.asarray(w.data).reshape(-1, w.shape[3])
    tflite = set_weights(base, w.index, zero_blocks(taps, sparsity).reshape(w.shape))
    g = read_tflite(tflite)
    op = _op(g)
    a = depthwise_args(op, g)
    s = sparse_depthwise.candidate(a)
    assert s is not None
    cid = f"{shape.id}{tag}_{int(sparsity * 100)}"
    code, scratch = {}, 0
    for dsp in (False, True):
        ctx = HostCtx(f"tp_{cid}", op, dsp)
        call = sparse_depthwise.lower_candidate(op, ctx, a, s)
        body = template_environment().get_template(call.template).render(**call.params)
        code[dsp] = "\n".join([*ctx.consts, f"int tp_{cid}(const int8_t *in, int8_t *out, "
                               "void *scratch)", "{", "    tp_status status;", body,
                               "    return (int)status;", "}", ""])
        scratch = call.scratch_bytes
    return Case(cid, tflite, shape.input_shape, scratch, code)


@pytest.fixture(scope="module")
def cases() -> list[Case]:
    out = []
    for shape in SHAPES:
        base = _convert(shape)
        out += [_case(shape, base, s) for s in SPARSITIES]
        if shape.id == RESCALED[0]:
            out += [_case(shape, scale_output(base, factor), s, tag)
                    for tag, factor in RESCALED[1].items() for s in (0.0, 0.75)]
    return out


def test_every_requantization_mode_is_covered(cases: list[Case]) -> None:
    modes = {int(c.code[True].split(".fast = ")[1].split(",")[0]) for c in cases}
    assert modes == {0, 1, 2}, modes


def _ubsan_ok(cache: Path) -> bool:
    probe = cache / "probe.c"
    probe.write_text("int tp_probe(int x) { return x + 1; }\n")
    res = subprocess.run([compiler(), *CFLAGS, "-fsanitize=undefined", str(probe), "-o",
                          str(cache / "probe.so")], capture_output=True, check=False)
    return res.returncode == 0


def _compile(code: str, dsp: bool, cache: Path, sanitize: bool) -> ctypes.CDLL:
    digest = hashlib.sha1(code.encode() + f"{dsp}{sanitize}".encode())
    for p in [RUNTIME / "kernels" / SOURCE, *sorted((RUNTIME / "include").glob("*.h"))]:
        digest.update(p.read_bytes())
    lib = cache / f"dw_{digest.hexdigest()[:16]}.so"
    src = lib.with_suffix(".c")
    src.write_text('#include "tp_nn.h"\n#include "tp_nn_sparse.h"\n' + code)
    extra = ["-fsanitize=undefined", "-fno-sanitize-recover=all"] if sanitize else []
    cmd = [compiler(), *CFLAGS, *extra, f"-DTP_USE_DSP={int(dsp)}", f"-I{RUNTIME / 'include'}",
           str(src), str(RUNTIME / "kernels" / SOURCE), "-o", str(lib)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert res.returncode == 0, f"generated code does not compile:\n{res.stderr}"
    return ctypes.CDLL(str(lib))


def reference(tflite: bytes, inputs: np.ndarray) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite)
    outs = []
    for x in inputs:
        interp.set_input(x[None], 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1))
    return outs


def _run(lib: ctypes.CDLL, case: Case, x: np.ndarray, out_size: int) -> np.ndarray:
    scratch = np.zeros(case.scratch_bytes // 4 + 1, np.int32)
    out = np.zeros(out_size, np.int8)
    fn = getattr(lib, f"tp_{case.id}")
    fn.restype = ctypes.c_int
    xin = np.ascontiguousarray(x, np.int8)
    status = fn(xin.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                scratch.ctypes.data_as(ctypes.c_void_p))
    assert status == 0, f"{case.id}: status {status}"
    return out


@pytest.mark.parametrize("dsp", [False, True], ids=["portable", "dsp"])
def test_sparse_depthwise_bit_exact_with_tflm(cases: list[Case], dsp: bool,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    cache = tmp_path_factory.mktemp("dw_bsr")
    lib = _compile("\n".join(c.code[dsp] for c in cases), dsp, cache, _ubsan_ok(cache))
    for case in cases:
        graph = read_tflite(case.tflite)
        rng = np.random.default_rng(zlib.crc32(case.id.encode()))
        x = rng.integers(-128, 128, (SAMPLES, *case.input_shape), dtype=np.int8)
        x[SAMPLES // 2:][rng.random(x[SAMPLES // 2:].shape) < 0.7] = \
            graph.tensor(graph.inputs[0]).zero_point
        x[0] = -128  # extremes
        x[1] = 127
        for i, (xi, want) in enumerate(zip(x, reference(case.tflite, x), strict=True)):
            got = _run(lib, case, xi, want.size)
            assert np.array_equal(got, want), f"{case.id} input {i}"


ASAN_MAIN = """
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static int run(int (*fn)(const int8_t *, int8_t *, void *), const int8_t *x, int n_in,
               int n_out, int scratch_bytes)
{
    /* exact sizes on the heap: ASan reports any access past them */
    int8_t *in = malloc((size_t)n_in), *out = malloc((size_t)n_out);
    void *scratch = malloc((size_t)(scratch_bytes > 0 ? scratch_bytes : 1));
    memcpy(in, x, (size_t)n_in);
    const int status = fn(in, out, scratch);
    for (int i = 0; i < n_out; ++i) {
        printf("%d ", out[i]);
    }
    printf("\\n");
    free(in), free(out), free(scratch);
    return status;
}
"""


def test_sparse_depthwise_clean_under_asan_and_ubsan(cases: list[Case],
                                                     tmp_path: Path) -> None:
    """Every case on both paths as one executable under ASan + UBSan, buffers of exact size;
    outputs equal TFLite Micro's (first input of each case)."""
    probe = tmp_path / "p.c"
    probe.write_text("int main(void) { return 0; }\n")
    if subprocess.run([compiler(), "-fsanitize=address,undefined", str(probe), "-o",
                       str(tmp_path / "p")], capture_output=True, check=False).returncode:
        pytest.skip("the host compiler cannot link ASan/UBSan programs")
    chosen = cases[::2]
    for dsp in (False, True):
        calls, expected = [], []
        for case in chosen:
            graph = read_tflite(case.tflite)
            x = np.random.default_rng(zlib.crc32(case.id.encode())).integers(
                -128, 128, case.input_shape, dtype=np.int8)
            want = reference(case.tflite, x[None])[0]
            expected.append(want)
            body = ", ".join(str(int(v)) for v in x.reshape(-1))
            calls.append(f"    {{ static const int8_t x[] = {{ {body} }};\n"
                         f"      if (run(tp_{case.id}, x, {x.size}, {want.size}, "
                         f"{case.scratch_bytes})) return 1; }}")
            assert graph.inputs
        code = "\n".join(c.code[dsp] for c in chosen)
        main = "int main(void)\n{\n" + "\n".join(calls) + "\n    return 0;\n}\n"
        src = tmp_path / f"asan{int(dsp)}.c"
        src.write_text('#include "tp_nn.h"\n#include "tp_nn_sparse.h"\n' + ASAN_MAIN + code
                       + main)
        exe = tmp_path / f"asan{int(dsp)}"
        cmd = [compiler(), "-std=c99", "-O1", "-g", "-Wall", "-Werror",
               "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
               "-fno-omit-frame-pointer", f"-DTP_USE_DSP={int(dsp)}", f"-I{RUNTIME / 'include'}",
               str(src), str(RUNTIME / "kernels" / SOURCE), "-o", str(exe)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert res.returncode == 0, res.stderr
        run = subprocess.run([str(exe)], capture_output=True, text=True, check=False)
        assert run.returncode == 0, run.stderr[-2000:]
        lines = run.stdout.strip().splitlines()
        assert len(lines) == len(chosen)
        for case, line, want in zip(chosen, lines, expected, strict=True):
            got = np.array([int(v) for v in line.split()], np.int8)
            assert np.array_equal(got, want.astype(np.int8)), f"{case.id} dsp={dsp}"


# ---- the choice --------------------------------------------------------------------------------

def test_the_planner_picks_the_sparse_depthwise_kernel_only_where_it_pays(
        cases: list[Case]) -> None:
    by_id = {c.id: c for c in cases}
    for cid, kernel in (("kws_3x3_same_16_0", "tp_depthwise_conv_3x3_s8"),
                        ("kws_3x3_same_16_90", "tp_depthwise_conv_bsr_s8")):
        planned = plan(read_tflite(by_id[cid].tflite), dsp=True)
        call = next(p.call for p in planned.code_ops if p.op.opcode == "DEPTHWISE_CONV_2D")
        assert call.kernel == kernel, (cid, call.reason)
        assert call.dense_cycles and call.sparse_cycles and call.reason
        if kernel.endswith("bsr_s8"):
            assert call.encoding == "bsr 1x4" and call.sparsity is not None
            assert call.sparsity >= 0.85 and call.est_cycles == call.sparse_cycles
            assert call.weight_bytes < (call.dense_weight_bytes or 0)
            assert "depthwise blocks" in call.reason
    forced = plan(read_tflite(by_id["kws_3x3_same_16_50"].tflite), dsp=True,
                  options=PlanOptions(kernels="sparse"))
    assert any(p.call.kernel == "tp_depthwise_conv_bsr_s8" for p in forced.code_ops)


def test_depthwise_layers_the_kernel_cannot_run_stay_dense() -> None:
    import keras

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((6, 6, 4)),
                              keras.layers.DepthwiseConv2D(3, depth_multiplier=2,
                                                           padding="same")])
    tflite = convert_int8(model, (6, 6, 4))
    graph = read_tflite(tflite)
    w = graph.tensor(_op(graph).inputs[1])
    assert w.data is not None
    g = read_tflite(set_weights(tflite, w.index, np.zeros(w.shape, np.int8)))
    a = depthwise_args(_op(g), g)
    assert sparse_depthwise.refusal(a) == "depth multiplier 2 (the kernel takes 1)"
    planned = plan(g, dsp=True, options=PlanOptions(kernels="sparse"))
    call = next(p.call for p in planned.code_ops if p.op.opcode == "DEPTHWISE_CONV_2D")
    assert call.kernel == "tp_depthwise_conv_s8" and "no sparse kernel" in call.reason
