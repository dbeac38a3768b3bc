"""Runs mutants through the product path, isolated in worker processes.

Each mutant is written to a ``.tflite`` file and goes the way ``tinyprune build`` takes a model:
load (``models.load.load_model``), read (``ir.read_tflite``), random inputs, plan, codegen, the
TFLite Micro reference interpreter and, for some, a host compile and run compared with the
reference. Every outcome is classified:

- ``built``: every stage passed (``mismatch``: built but not bit-exact on the host);
- ``exit2`` / ``exit1``: a clean :class:`~tinyprune.errors.TinypruneError` (the CLI's exit code);
- ``internal``: any other exception (the CLI would print "internal error"), ``memory`` for a
  MemoryError, ``crash`` when the worker died (a signal: segfault, abort), ``hang`` when it gave
  no answer within the timeout.

Workers run with an address-space limit (``RLIMIT_AS``) so a model that makes anything allocate
gigabytes fails there instead of taking the machine down, and several mutants per process so
imports are paid once. A worker that dies or hangs is replaced and the batch goes on after the
mutant that killed it.

Reproduce one mutant: ``python -m tests.fuzz.runner repro kws_ref_model SEED INDEX``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .mutate import Mutant, mutant

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "mlperf_tiny"
BASES = {p.stem: p for p in sorted(FIXTURES.glob("*.tflite"))}
BAD = ("internal", "memory", "crash", "hang", "bad_c", "mismatch")
"""Outcomes that are bugs: a built mutant not bit-exact on the host is one too (a reader rule
missing or a kernel wrong)."""
MEMORY_LIMIT = 3 << 30  # address space of a worker; the reader bounds a model far below this


@dataclass(frozen=True)
class Outcome:
    """What one mutant did. ``stage`` is where it stopped; ``detail`` the first message line."""

    key: str
    result: str
    stage: str
    detail: str
    description: str
    seconds: float = 0.0
    host: bool = False  # it went through the host compile and run


@dataclass(frozen=True)
class Options:
    """How far each mutant goes. ``host_every``: every n-th mutant (per worker) that passes the
    reference interpreter is also compiled and run on the host (0: none); ``samples``: inputs
    per mutant; ``timeout``: seconds a mutant may take before its worker counts as hung."""

    seed: int = 0
    host_every: int = 0
    samples: int = 3
    timeout: float = 120.0
    memory_limit: int = MEMORY_LIMIT
    save_bad_to: str | None = None  # where the mutants that crashed or hung are saved


# ---- the product path (in the worker) ---------------------------------------------------------

class _Stage:
    """Remembers which stage is running, for the outcome."""

    name = "load"
    host = False


def _read(data: bytes, path: Path) -> Any:
    from tinyprune.ir import read_tflite

    if "name" in inspect.signature(read_tflite).parameters:
        return read_tflite(data, name=path)
    return read_tflite(data)


def product_path(path: Path, work: Path, *, host: Callable[[], bool], dsp: bool, samples: int,
                 stage: _Stage) -> str:
    """The stages ``tinyprune build`` runs on a .tflite up to the host check (which runs when
    ``host()`` says so once the reference has run); "built" or "mismatch". Raises what the
    stages raise."""
    from tinyprune import verify
    from tinyprune.codegen import generate
    from tinyprune.models.load import load_model
    from tinyprune.plan import plan

    stage.name = "load"
    loaded = load_model(path)
    stage.name = "read"
    assert loaded.tflite_bytes is not None
    graph = _read(loaded.tflite_bytes, path)
    inputs = verify.random_inputs(graph, samples, seed=0)
    stage.name = "plan"
    planned = plan(graph, dsp=True)
    stage.name = "codegen"
    project = generate(planned, work / "src", model_name=path.stem, source_name=path.name,
                       samples=inputs)
    stage.name = "reference"
    reference = verify.reference_outputs(loaded.tflite_bytes, graph, inputs)
    if not host():
        return "built"
    stage.name = "host"
    stage.host = True
    exe = verify.host_compile(project, work, dsp=dsp)
    outputs = verify.host_outputs(exe, inputs, project.output_bytes, work)
    return "built" if verify.compare(reference, outputs).bit_exact else "mismatch"


def classify(exc: BaseException, stage: str) -> tuple[str, str]:
    from tinyprune.errors import TinypruneError

    text = str(exc).splitlines()[0][:400] if str(exc) else ""
    if isinstance(exc, TinypruneError):
        if stage == "host" and "host build" in text:
            return "bad_c", text  # generated C that does not compile: a bug, not a user error
        return f"exit{exc.exit_code}", text
    if isinstance(exc, MemoryError):
        return "memory", f"MemoryError: {text}"
    return "internal", f"{type(exc).__name__}: {text}"


def run_one(m: Mutant, work: Path, *, host: Callable[[], bool], samples: int,
            verbose: bool = False) -> Outcome:
    """One mutant through :func:`product_path`, in this process."""
    path = work / f"{m.base}-{m.index}.tflite"
    path.write_bytes(m.data)
    stage = _Stage()
    start = time.monotonic()
    try:
        result = product_path(path, work / "out", host=host, dsp=m.index % 2 == 1,
                              samples=samples, stage=stage)
        detail = ""
    except Exception as exc:  # every failure is classified, none escapes the fuzzer
        if verbose:
            traceback.print_exc()
        result, detail = classify(exc, stage.name)
    return Outcome(m.key, result, stage.name if result not in ("built", "mismatch") else "done",
                   detail, m.description, round(time.monotonic() - start, 3), stage.host)


def _limit_memory(limit: int) -> None:
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def worker_main() -> int:
    """Reads one job (JSON) from stdin; prints ``S <n>`` before and ``R <outcome>`` after each
    mutant, flushed, so the parent knows which one killed it."""
    import shutil

    job = json.loads(sys.stdin.readline())
    opts = Options(**job["options"])
    _limit_memory(opts.memory_limit)
    bases = {name: Path(p).read_bytes() for name, p in job["bases"].items()}
    reached = [0]  # mutants that got as far as the host stage

    def host_policy(flag: int) -> Callable[[], bool]:
        def want() -> bool:
            reached[0] += 1
            if flag >= 0:
                return bool(flag)
            return opts.host_every > 0 and (reached[0] - 1) % opts.host_every == 0
        return want

    for n, (name, index, flag) in enumerate(job["items"]):
        print(f"S {n}", flush=True)
        m = mutant(name, bases[name], opts.seed, index)
        work = Path(tempfile.mkdtemp(prefix="tpfuzz-"))
        try:
            out = run_one(m, work, host=host_policy(flag), samples=opts.samples)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print("R " + json.dumps(asdict(out)), flush=True)
    return 0


# ---- the driver (in the test or the bench script) ---------------------------------------------

Item = tuple[str, int, int]  # (base model, mutant index, host: 1 yes, 0 no, -1 per host_every)


class _Worker:
    """One worker process over a list of items; restarted past an item that killed it."""

    def __init__(self, items: list[Item], opts: Options, bases: dict[str, Path]) -> None:
        self.items = items
        self.opts = opts
        self.bases = bases
        self.proc: subprocess.Popen[str] | None = None
        self.sel = selectors.DefaultSelector()

    def _start(self, items: list[Item]) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fuzz.runner", "worker"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            start_new_session=True)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        job = {"options": asdict(self.opts), "items": items,
               "bases": {n: str(self.bases[n]) for n in {i[0] for i in items}}}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.close()
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def _line(self, timeout: float) -> str | None:
        """The next line, "" at EOF, None on timeout."""
        assert self.proc is not None and self.proc.stdout is not None
        if not self.sel.select(timeout):
            return None
        return self.proc.stdout.readline()

    def run(self) -> Iterator[Outcome]:
        todo = list(self.items)
        while todo:
            self._start(todo)
            current = answered = -1
            while True:
                line = self._line(self.opts.timeout + 60)
                if not line:
                    break
                if line.startswith("S "):
                    current = int(line.split()[1])
                elif line.startswith("R "):
                    answered = current
                    yield Outcome(**json.loads(line[2:]))
            if line is None:
                self._kill()
            assert self.proc is not None
            rc = self.proc.wait()
            if answered == len(todo) - 1:
                return
            if current < 0:
                raise RuntimeError(f"fuzz worker failed to start (exit {rc})")
            if current > answered:
                yield self._dead(todo[current], "hang" if line is None else "crash", rc)
            todo = todo[max(current, answered) + 1:]

    def _dead(self, item: Item, result: str, rc: int | None) -> Outcome:
        name, index, _ = item
        m = mutant(name, self.bases[name].read_bytes(), self.opts.seed, index)
        if self.opts.save_bad_to:
            Path(self.opts.save_bad_to, f"{name}-{index}.tflite").write_bytes(m.data)
        detail = "no answer in time" if result == "hang" else f"worker died (exit {rc})"
        return Outcome(m.key, result, "worker", detail, m.description)


def run_items(items: list[Item], opts: Options, *, workers: int = 1,
              on_outcome: Callable[[Outcome], None] | None = None,
              bases: dict[str, Path] | None = None) -> list[Outcome]:
    """Runs ``items`` in ``workers`` parallel worker processes; returns every outcome.

    ``bases`` maps the model names of the items to their files (default: the official models,
    :data:`BASES`)."""
    import threading

    chunks = [items[k::workers] for k in range(workers)]
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def drive(chunk: list[Item]) -> None:
        try:
            for out in _Worker(chunk, opts, bases or BASES).run():
                with lock:
                    outcomes.append(out)
                    if on_outcome is not None:
                        on_outcome(out)
        except BaseException as exc:  # surfaced in the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=drive, args=(c,)) for c in chunks if c]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return outcomes


def items_for(bases: Iterable[str], count: int, start: int = 0, host: int = -1) -> list[Item]:
    return [(name, i, host) for i in range(start, start + count) for name in bases]


# ---- the whole CLI, for a handful --------------------------------------------------------------

def run_cli(path: Path, out: Path, *, timeout: float = 600.0) -> tuple[int, str]:
    """``tinyprune build`` of a (mutated) model all the way to the emulator; (exit code, stderr).
    Exit code -1: it did not finish in time."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3")
    cmd = [sys.executable, "-m", "tinyprune.cli", "build", "--board", "nucleo_f746", "--model",
           str(path), "--samples", "2", "--out", str(out)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return -1, "timeout"
    return proc.returncode, proc.stderr


def _repro(args: argparse.Namespace) -> int:
    m = mutant(args.base, BASES[args.base].read_bytes(), args.seed, args.index)
    print(f"{m.key}: {m.description}")
    if args.write:
        Path(args.write).write_bytes(m.data)
    with tempfile.TemporaryDirectory() as tmp:
        print(run_one(m, Path(tmp), host=lambda: bool(args.host), samples=3, verbose=True))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.runner")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("worker")
    p = sub.add_parser("repro", help="run one mutant in this process, with its traceback")
    p.add_argument("base", choices=sorted(BASES))
    p.add_argument("seed", type=int)
    p.add_argument("index", type=int)
    p.add_argument("--host", action="store_true", help="also compile and run it on the host")
    p.add_argument("--write", help="save the mutant to this .tflite")
    args = parser.parse_args(argv)
    return worker_main() if args.cmd == "worker" else _repro(args)


if __name__ == "__main__":
    sys.exit(main())
