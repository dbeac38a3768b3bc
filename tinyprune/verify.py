"""The verify stage: generated code against the TFLite Micro reference interpreter.

The oracle is ``tflite_micro``'s Python interpreter (TFLM reference kernels). Firmware outputs from
the emulator and outputs of a host (x86) build of the same generated C must equal it byte for
byte; accuracy on a whole test set comes from the host build (fast).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from tinyprune.codegen import CProject
from tinyprune.errors import CheckFailed, ToolMissing, UsageError, first_compiler_error
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

    The interpreter runs in a forked child process (where the OS can fork): its kernels abort
    the process on parameters they do not accept, and a model the reader let through must not
    end tinyprune. One child per call, all samples in it (a build calls this once): the fork
    costs ~0.1 s in a process with TensorFlow loaded (docs/reader.md). A model with state (an
    LSTM's variable tensors) is reset before each sample: every inference starts from a zero
    state, as tp_lstm_s8 runs it (TFLM would otherwise carry the state over). Its arena is
    sized from the graph's tensors (the interpreter's own default, ten times the file size, is
    too small for small models with large activations).

    Returns:
        An array of shape (n, output bytes) of raw output bytes, graph outputs concatenated.

    Raises:
        UsageError: the interpreter refuses the model or crashes on it (names the model file,
            ``graph.source``, and what the interpreter said).
    """
    label = str(graph.source) if graph.source is not None else "the .tflite model"
    activations = sum(t.nbytes for t in graph.tensors if not t.is_const)
    arena = max(len(tflite) * 10, 2 * activations + (1 << 20))

    # Imported here, before the fork: the child would otherwise import it on every call
    # (~60 ms of the ~140 ms a forked call costs on a build that has TensorFlow loaded).
    from tflite_micro.python.tflite_micro import runtime

    def run() -> np.ndarray:
        try:
            interp = runtime.Interpreter.from_bytes(tflite, arena_size=arena)
        except Exception as exc:  # its Python wrapper parses the flatbuffer too
            said = str(exc) if isinstance(exc, RuntimeError) else f"{type(exc).__name__}: {exc}"
            raise _Refused(said[:300]) from None
        rows = []
        stateful = graph.stateful
        for raw in inputs:
            if stateful:  # every sample from a zero state, as the firmware runs it
                interp.reset()
            offset = 0
            for k, ti in enumerate(graph.inputs):
                t = graph.tensor(ti)
                chunk = np.frombuffer(raw[offset:offset + t.nbytes].tobytes(), dtype=_NP[t.dtype])
                offset += t.nbytes
                try:
                    interp.set_input(chunk.reshape(t.shape), k)
                except (RuntimeError, ValueError) as exc:
                    raise _Refused(str(exc)) from None
            try:
                interp.invoke()
                outs = [np.ascontiguousarray(interp.get_output(k)).tobytes()
                        for k in range(len(graph.outputs))]
            except (RuntimeError, ValueError) as exc:
                raise _Refused(str(exc)) from None
            rows.append(np.frombuffer(b"".join(outs), dtype=np.uint8))
        return np.stack(rows) if rows else np.zeros((0, 0), np.uint8)

    fix = "it cannot be checked bit for bit; re-export the model with the TFLite converter"
    try:
        return _in_child(run) if hasattr(os, "fork") else run()
    except _Refused as exc:
        raise UsageError(f"{label}: the TFLite Micro reference interpreter refuses the model "
                         f"({exc}); {fix}") from None
    except _Crashed as exc:
        raise UsageError(f"{label}: the TFLite Micro reference interpreter crashed on the model "
                         f"({exc}); {fix}") from None


class _Refused(Exception):
    """The reference interpreter raised (its message, and its log lines when captured)."""


class _Crashed(Exception):
    """The child running the reference interpreter died (how, and its last log lines)."""


def _in_child(fn: Callable[[], np.ndarray]) -> np.ndarray:
    """``fn()`` in a forked child; its result (or exception) comes back through a file, its
    stderr (TFLM's log lines) is captured and added to a refusal or crash."""
    import faulthandler
    import pickle
    import signal

    with tempfile.TemporaryFile() as result, tempfile.TemporaryFile() as log:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            code = 0
            try:
                faulthandler.disable()  # a crash here is expected and reported by the parent
                os.dup2(log.fileno(), 2)
                os.dup2(log.fileno(), 1)
                # Python-level output too (sys.stdout need not be fd 1, e.g. under capture)
                sys.stdout = sys.stderr = open(log.fileno(), "w", closefd=False)  # noqa: SIM115
                try:
                    payload: tuple[str, object] = ("ok", fn())
                except _Refused as exc:
                    payload = ("refused", str(exc))
                except BaseException as exc:  # re-raised in the parent as it was
                    payload = ("raise", exc)
                try:
                    data = pickle.dumps(payload)
                except Exception:  # an exception that does not pickle: its text
                    data = pickle.dumps(("raise", RuntimeError(repr(payload[1]))))
                view = memoryview(data)
                while view:
                    view = view[os.write(result.fileno(), view):]
            except BaseException:
                code = 70
            os._exit(code)
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        log.seek(0)
        said = " ".join(ln.strip() for ln in log.read().decode(errors="replace").splitlines()
                        if ln.strip())[-300:]
        result.seek(0)
        data = result.read()
    if os.WIFSIGNALED(status) or not data:
        how = (f"signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        raise _Crashed(how + (f": {said}" if said else ""))
    kind, value = pickle.loads(data)
    if kind == "refused":
        raise _Refused(f"{value}: {said}" if said else str(value))
    if kind == "raise":
        assert isinstance(value, BaseException)
        raise value
    assert isinstance(value, np.ndarray)
    return value


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


@dataclass
class HostCompile:
    """A host compile under way (:func:`start_host_compile`): :meth:`wait` for its executable,
    :meth:`cancel` to stop it."""

    exe: Path
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def wait(self) -> Path:
        """The executable, once the compiler has finished; CheckFailed naming its first error."""
        self.proc.wait()
        self.log.seek(0)
        stderr = self.log.read().decode(errors="replace")
        self.log.close()
        if self.proc.returncode != 0:
            raise CheckFailed("host build of the generated code failed: "
                              f"{first_compiler_error(stderr)}")
        return self.exe

    def cancel(self) -> None:
        """Stops the compiler if it still runs (after a failure elsewhere)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def start_host_compile(project: CProject, out: Path, *, dsp: bool = False,
                       extra_flags: tuple[str, ...] = ()) -> HostCompile:
    """Starts compiling the generated model + kernels + host harness with the host C compiler
    (a child process, so that the build can run the reference interpreter meanwhile).

    With ``dsp=True`` the kernels' DSP path is compiled with the C emulation of the intrinsics,
    so the SIMD code is checked on the host as well.
    """
    cc = host_cc()
    exe = out / ("host_model_dsp" if dsp else "host_model")
    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", f"-DTP_USE_DSP={int(dsp)}",
           *extra_flags,
           *[f"-I{d}" for d in project.include_dirs], *map(str, project.model_sources),
           *map(str, project.kernel_sources), str(project.host_main), "-o", str(exe), "-lm"]
    log = tempfile.TemporaryFile(dir=out)  # noqa: SIM115 -- closed by wait() or cancel()
    return HostCompile(exe, subprocess.Popen(cmd, stdout=log, stderr=log), log)


def host_compile(project: CProject, out: Path, *, dsp: bool = False,
                 extra_flags: tuple[str, ...] = ()) -> Path:
    """Compiles the generated model + kernels + host harness (:func:`start_host_compile`) and
    waits for it."""
    return start_host_compile(project, out, dsp=dsp, extra_flags=extra_flags).wait()


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
