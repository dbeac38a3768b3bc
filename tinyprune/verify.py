"""The verify stage: generated code against the TFLite Micro reference interpreter.

The oracle is ``tflite_micro``'s Python interpreter (TFLM reference kernels). Firmware outputs from
the emulator and outputs of a host (x86) build of the same generated C must equal it byte for
byte; accuracy on a whole test set comes from the host build (fast).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyprune.codegen import CProject
from tinyprune.errors import CheckFailed, ToolMissing
from tinyprune.ir.graph import Graph

_NP = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16, "int32": np.int32,
       "float32": np.float32}
_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
          "int32": (-(2**31), 2**31 - 1)}


@dataclass(frozen=True)
class Mismatch:
    """One sample whose output differs from the reference."""

    sample: int
    first_byte: int
    expected: str
    actual: str


@dataclass(frozen=True)
class Comparison:
    samples: int
    mismatches: tuple[Mismatch, ...] = field(default_factory=tuple)

    @property
    def bit_exact(self) -> bool:
        return self.samples > 0 and not self.mismatches


def reference_outputs(tflite: bytes, graph: Graph, inputs: np.ndarray) -> np.ndarray:
    """Runs the TFLM reference interpreter on each row of ``inputs`` (raw input bytes).

    Returns an array of shape (n, output bytes) of raw output bytes, graph outputs concatenated.
    """
    from tflite_micro.python.tflite_micro import runtime

    interp = runtime.Interpreter.from_bytes(tflite)
    rows = []
    for raw in inputs:
        offset = 0
        for k, ti in enumerate(graph.inputs):
            t = graph.tensor(ti)
            chunk = np.frombuffer(raw[offset:offset + t.nbytes].tobytes(), dtype=_NP[t.dtype])
            interp.set_input(chunk.reshape(t.shape), k)
            offset += t.nbytes
        interp.invoke()
        outs = [np.ascontiguousarray(interp.get_output(k)).tobytes()
                for k in range(len(graph.outputs))]
        rows.append(np.frombuffer(b"".join(outs), dtype=np.uint8))
    return np.stack(rows) if rows else np.zeros((0, 0), np.uint8)


def compare(expected: np.ndarray, actual: np.ndarray) -> Comparison:
    """Byte-for-byte comparison of per-sample outputs."""
    mismatches = []
    for i in range(min(len(expected), len(actual))):
        if not np.array_equal(expected[i], actual[i]):
            first = int(np.nonzero(expected[i] != actual[i])[0][0])
            mismatches.append(Mismatch(i, first, expected[i][:32].tobytes().hex(),
                                       actual[i][:32].tobytes().hex()))
    if len(expected) != len(actual):
        mismatches.append(Mismatch(min(len(expected), len(actual)), 0,
                                   f"{len(expected)} samples", f"{len(actual)} samples"))
    return Comparison(samples=len(expected), mismatches=tuple(mismatches))


def host_cc() -> str:
    """The host C compiler ($CC or cc) that checks the generated code; ToolMissing if absent."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise ToolMissing(f"host C compiler '{cc}' not found (it checks the generated code on the "
                          "test set); install it with 'sudo apt-get install gcc' or set CC")
    return cc


def host_compile(project: CProject, out: Path, *, dsp: bool = False,
                 extra_flags: tuple[str, ...] = ()) -> Path:
    """Compiles the generated model + kernels + host harness with the host C compiler.

    With ``dsp=True`` the kernels' DSP path is compiled with the C emulation of the intrinsics,
    so the SIMD code is checked on the host as well.
    """
    cc = host_cc()
    exe = out / ("host_model_dsp" if dsp else "host_model")
    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-DTP_USE_DSP={int(dsp)}",
           *extra_flags,
           *[f"-I{d}" for d in project.include_dirs], *map(str, project.model_sources),
           *map(str, project.kernel_sources), str(project.host_main), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        first = next((ln for ln in proc.stderr.splitlines() if "error" in ln), proc.stderr[:300])
        raise CheckFailed(f"host build of the generated code failed: {first.strip()}")
    return exe


def host_outputs(exe: Path, inputs: np.ndarray, output_bytes: int, work: Path) -> np.ndarray:
    """Runs the host build on every sample; returns (n, output_bytes) raw outputs."""
    src, dst = work / "host_inputs.bin", work / "host_outputs.bin"
    src.write_bytes(np.ascontiguousarray(inputs, dtype=np.uint8).tobytes())
    proc = subprocess.run([str(exe), str(src), str(dst)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise CheckFailed(f"host run of the generated code failed: {proc.stderr.strip()[:300]}")
    data = np.frombuffer(dst.read_bytes(), dtype=np.uint8)
    src.unlink()
    dst.unlink()
    return data.reshape(len(inputs), output_bytes)


def predictions(graph: Graph, outputs: np.ndarray) -> np.ndarray:
    """Class predictions (argmax of the first graph output) from raw output rows."""
    t = graph.tensor(graph.outputs[0])
    values = np.frombuffer(np.ascontiguousarray(outputs[:, :t.nbytes]).tobytes(),
                           dtype=_NP[t.dtype]).reshape(len(outputs), -1)
    return values.argmax(axis=1)


def accuracy(graph: Graph, outputs: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predictions(graph, outputs) == labels.reshape(-1)))


def encode_inputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Float samples -> raw input bytes the model takes (quantized with the input's scale)."""
    t = graph.tensor(graph.inputs[0])
    x = np.asarray(x, dtype=np.float32).reshape((len(x), *t.shape[1:]))
    if t.dtype == "float32":
        q = x
    else:
        lo, hi = _RANGE[t.dtype]
        q = np.clip(np.round(x / t.scale) + t.zero_point, lo, hi).astype(_NP[t.dtype])
    return np.frombuffer(np.ascontiguousarray(q).tobytes(), dtype=np.uint8).reshape(len(x), -1)


def random_inputs(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    """Seeded random raw inputs over the whole int8 range (or N(0,1) floats)."""
    rng = np.random.default_rng(seed)
    row_bytes = sum(graph.tensor(ti).nbytes for ti in graph.inputs)
    rows: list[np.ndarray] = []
    for _ in range(n):
        parts = []
        for ti in graph.inputs:
            t = graph.tensor(ti)
            if t.dtype == "float32":
                parts.append(rng.standard_normal(t.size).astype(np.float32).tobytes())
            else:
                lo, hi = _RANGE[t.dtype]
                parts.append(rng.integers(lo, hi + 1, t.size).astype(_NP[t.dtype]).tobytes())
        rows.append(np.frombuffer(b"".join(parts), dtype=np.uint8))
    return np.stack(rows) if rows else np.zeros((0, row_bytes), np.uint8)
