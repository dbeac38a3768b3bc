"""One op at a time against TFLite Micro: tiny Keras models -> int8 TFLite -> our handlers and
template fragments -> C on the host (portable and DSP builds) -> outputs compared bit for bit
with the ``tflite_micro`` interpreter.

A test module lists :class:`Case` rows; :func:`lower_all` converts and lowers them (shape-only
subgraphs folded, as the planner does), :func:`compile_cases` builds one shared library of all
their fragments with the runtime kernels, :func:`check_case` runs the oracle and ours on inputs
that walk every int8 value and on random ones.
"""

from __future__ import annotations

import ctypes
import hashlib
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from kernel_host import CFLAGS, RUNTIME, compiler

from tinyprune.ir import Graph, read_tflite
from tinyprune.ir.fold import fold_constants
from tinyprune.kernels.base import KernelCall, handler_for
from tinyprune.quantize import convert_full_int8

SAMPLES = 6


@dataclass(frozen=True)
class Case:
    """One model: ``graph(k)`` maps the inputs (named in0, in1, ...) to the output(s).

    Attributes:
        id: test id.
        graph: builds the body from the Keras module ``k`` (``keras`` or ``tf_keras``).
        shapes: input shapes (no batch axis).
        ops: opcodes the converted model must contain (the premise of the case).
        rep: representative data uniform in [low, high] (a number r means [-r, r]).
        flavor: ``keras3`` or ``tf_keras``.
        setup: called with the built model (e.g. to set weights).
        nonnegative: test inputs never go below the input zero point (the op is undefined there).
        batch: a fixed batch size for the inputs (None: unknown, as Keras leaves it).
    """

    id: str
    graph: Callable[[Any], Callable[[Any], Any]]
    shapes: tuple[tuple[int, ...], ...]
    ops: str
    rep: float | tuple[float, float] = 2.0
    flavor: str = "keras3"
    setup: Callable[[Any], None] | None = None
    nonnegative: bool = False
    batch: int | None = None

    @property
    def range(self) -> tuple[float, float]:
        return (-self.rep, self.rep) if isinstance(self.rep, int | float) else self.rep

    def keras(self) -> Any:
        from tinyprune.models._backend import keras_module

        return keras_module("tf_keras" if self.flavor == "tf_keras" else "keras3")

    def build(self) -> Any:
        k = self.keras()
        if self.flavor == "tf_keras":  # a fresh graph: no state of models built before
            k.backend.clear_session()
        k.utils.set_random_seed(0)
        ins = [k.Input(s, batch_size=self.batch, name=f"in{i}")
               for i, s in enumerate(self.shapes)]
        model = k.Model(ins, self.graph(k)(ins if len(ins) > 1 else ins[0]))
        if self.setup is not None:
            self.setup(model)
        return model


def convert(case: Case) -> bytes:
    """Full-int8 TFLite of the case's model, calibrated on 24 inputs of its range."""
    import tensorflow as tf

    model = case.build()
    rng = np.random.default_rng(1)
    low, high = case.range

    def rep() -> Any:
        for _ in range(24):
            yield [rng.uniform(low, high, (1, *s)).astype(np.float32) for s in case.shapes]

    def once() -> bytes:
        nonlocal rng
        rng = np.random.default_rng(1)  # every attempt calibrates on the same inputs
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        return bytes(conv.convert())

    return convert_full_int8(once, case.id)  # the product's retry of a float SPLIT (LSTM)


class HostCtx:
    """LowerContext for the host: activations are slots of a ``void **T`` argument; scratch is
    sized for the DSP path (never smaller than the portable path's), so one lowering serves
    both builds."""

    dsp = True
    cost_model = "table"

    def __init__(self, prefix: str, slots: dict[int, int]) -> None:
        self.prefix, self.slots, self.consts = prefix, slots, []
        self.scratch = f"{prefix}_scratch"

    def act(self, tensor_index: int) -> str:
        return f"T[{self.slots[tensor_index]}]"

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        name = f"{self.prefix}_k{len(self.consts)}"
        body = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
        self.consts.append(f"static const {ctype} {name}[] = {{ {body} }};")
        return name


@dataclass
class Lowered:
    case: Case
    tflite: bytes
    graph: Graph
    slots: dict[int, int]  # tensor index -> buffer slot (aliases share one)
    calls: list[KernelCall]
    c_code: str


def lower(case: Case, env: Any) -> Lowered:
    """Convert ``case`` and lower every op through its real handler and template."""
    buf = convert(case)
    graph = fold_constants(read_tflite(buf))
    opcodes = [op.opcode for op in graph.ops]
    assert all(o in opcodes for o in case.ops.split()), f"{case.id}: converter gave {opcodes}"
    slots = {t.index: i for i, t in enumerate(t for t in graph.tensors if not t.is_const)}
    fn = f"tp_case_{case.id}"
    ctx = HostCtx(fn, slots)
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
    scratch = [f"static int32_t {ctx.scratch}[{words}];"] if words else []
    code = "\n".join([*ctx.consts, *scratch, f"int {fn}(void **T)", "{",
                      "    tp_status status = TP_OK;",
                      *(_indent(b) for b in body), "    return 0;", "}", ""])
    return Lowered(case, buf, graph, slots, calls, code)


def _indent(block: str) -> str:
    return "\n".join("    " + line if line.strip() else line for line in block.splitlines())


def lower_all(cases: Sequence[Case]) -> dict[str, Lowered | Exception]:
    """Every case lowered, or the exception its conversion or lowering raised."""
    from tinyprune.firmware.paths import template_environment

    env = template_environment()
    out: dict[str, Lowered | Exception] = {}
    for case in cases:
        try:
            out[case.id] = lower(case, env)
        except Exception as exc:  # reported by the case's own test
            out[case.id] = exc
    return out


def kernel_sources(lowered: dict[str, Lowered | Exception]) -> list[str]:
    return sorted({s for v in lowered.values() if isinstance(v, Lowered)
                   for c in v.calls for s in c.sources})


def cases_code(lowered: dict[str, Lowered | Exception]) -> str:
    return '#include "tp_nn.h"\n' + "\n".join(
        v.c_code for v in lowered.values() if isinstance(v, Lowered))


def compile_cases(lowered: dict[str, Lowered | Exception], dsp: int, cache: Path) -> ctypes.CDLL:
    """One host library of every lowered case's function and the kernels they call."""
    code, sources = cases_code(lowered), kernel_sources(lowered)
    digest = hashlib.sha1(code.encode() + str(dsp).encode())
    for p in [*(RUNTIME / "kernels" / s for s in sources),
              *sorted((RUNTIME / "include").glob("*.h"))]:
        digest.update(p.read_bytes())
    lib = cache / f"ops_{digest.hexdigest()[:16]}.so"
    if not lib.exists():
        src = lib.with_suffix(".c")
        src.write_text(code)
        cmd = [compiler(), *CFLAGS, f"-DTP_USE_DSP={dsp}", f"-I{RUNTIME / 'include'}", str(src),
               *(str(RUNTIME / "kernels" / s) for s in sources), "-o", str(lib)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        assert res.returncode == 0, f"generated code does not compile:\n{res.stderr}"
    return ctypes.CDLL(str(lib))


def _first_consumer_scale(lw: Lowered, index: int) -> tuple[float, int]:
    op = next(o for o in lw.graph.ops if index in o.inputs)
    t = lw.graph.tensor(op.outputs[0])
    return t.scale, t.zero_point


def inputs(lw: Lowered, sample: int) -> list[np.ndarray]:
    """Sample 0 walks every int8 value (each input rotated differently); the others are random.
    With ``nonnegative``, values below the input's zero point are moved up to it."""
    rng = np.random.default_rng(100 + sample)
    arrays = []
    for k, i in enumerate(lw.graph.inputs):
        t = lw.graph.tensor(i)
        if sample == 0:
            every = np.roll(np.arange(-128, 128, dtype=np.int8), 37 * k)
            x = np.resize(every, t.size).reshape(t.shape)
        else:
            x = rng.integers(-128, 128, t.shape, dtype=np.int8)
        if lw.case.nonnegative:
            x = np.maximum(x, np.int8(t.zero_point))
        arrays.append(x)
    return arrays


def oracle(lw: Lowered, xs: list[np.ndarray]) -> list[np.ndarray]:
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(lw.tflite)
    for i, x in enumerate(xs):
        interp.set_input(x, i)
    interp.invoke()
    return [np.asarray(interp.get_output(i)) for i in range(len(lw.graph.outputs))]


_NP = {"int8": np.int8, "float32": np.float32}


def ours(lw: Lowered, lib: ctypes.CDLL, xs: list[np.ndarray]) -> list[np.ndarray]:
    bufs: dict[int, np.ndarray] = {}
    for idx, slot in lw.slots.items():
        t = lw.graph.tensor(idx)
        if slot not in bufs:
            bufs[slot] = np.zeros(t.nbytes // 4 + 2, np.float32).view(np.uint8)  # 4-byte aligned
    for i, x in zip(lw.graph.inputs, xs, strict=True):
        raw = np.ascontiguousarray(x).view(np.uint8).reshape(-1)
        bufs[lw.slots[i]][: raw.size] = raw
    n = max(lw.slots.values()) + 1
    table = (ctypes.c_void_p * n)(*(bufs[s].ctypes.data if s in bufs else None for s in range(n)))
    status = getattr(lib, f"tp_case_{lw.case.id}")(table)
    assert status == 0, f"kernel returned status {status}"
    outs = []
    for o in lw.graph.outputs:
        t = lw.graph.tensor(o)
        outs.append(bufs[lw.slots[o]][: t.nbytes].view(_NP[t.dtype]).reshape(t.shape).copy())
    return outs


def check_case(lw: Lowered | Exception, lib: ctypes.CDLL) -> None:
    """Ours equals TFLite Micro on every sample, byte for byte."""
    if isinstance(lw, Exception):
        raise lw
    for sample in range(SAMPLES):
        xs = inputs(lw, sample)
        for e, g in zip(oracle(lw, xs), ours(lw, lib, xs), strict=True):
            assert e.dtype == g.dtype and e.shape == g.shape, (e.dtype, e.shape, g.dtype, g.shape)
            diff = np.flatnonzero(g.view(np.uint8) != e.view(np.uint8))
            assert diff.size == 0, (
                f"sample {sample}: {diff.size} mismatches, first at {diff[0]}: "
                f"ours {g.reshape(-1)[diff[0]]}, tflm {e.reshape(-1)[diff[0]]}"
            )
