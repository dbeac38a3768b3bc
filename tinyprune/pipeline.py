"""The stages of ``tinyprune build``, each a function from the previous stage's artifact.

``api.build`` strings them together; they are kept here, small and separate, so tests and other
commands (``codegen``, ``run``, ``check``) reuse them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyprune import __version__, verify
from tinyprune.codegen import CProject, generate
from tinyprune.config import BuildOptions
from tinyprune.errors import CheckFailed, UsageError
from tinyprune.ir import Graph, read_tflite
from tinyprune.ir.reader import keras_layer_names
from tinyprune.plan import Plan, plan

if TYPE_CHECKING:
    from tinyprune.api import _Steps
    from tinyprune.data import Dataset
    from tinyprune.firmware import Board, Firmware
    from tinyprune.models.load import LoadedModel

log = logging.getLogger("tinyprune")

MAX_EVAL_SAMPLES = 2000
# 20 epochs bring the 50%-pruned digits CNN within 1 point of the unpruned accuracy
# (bench/results/prune_criteria.md); 10 did not.
DEFAULT_FINETUNE_EPOCHS = 20


@dataclass(frozen=True)
class FrontEnd:
    """The model side of a build: what was loaded, pruned, quantized and what it is checked on."""

    source: Path
    kind: str
    tflite: bytes = field(repr=False)
    graph: Graph = field(repr=False)
    eval_inputs: np.ndarray = field(repr=False)  # raw input rows for the host check
    eval_labels: np.ndarray | None = field(repr=False)  # None without data
    fw_inputs: np.ndarray = field(repr=False)  # the first rows, run on the firmware
    float_accuracy: float | None
    original_float_accuracy: float | None  # the model as given, before pruning
    params_before: int | None
    params_after: int | None
    macs_before: int | None
    prune: dict[str, Any] | None


@dataclass(frozen=True)
class HostCheck:
    comparison: verify.Comparison
    int8_reference_accuracy: float | None
    firmware_accuracy: float | None
    reference: np.ndarray = field(repr=False)
    dsp_bit_exact: bool | None  # None: the board has no DSP, its path is not built


@dataclass(frozen=True)
class RunOutcome:
    emulator: str
    comparison: verify.Comparison | None
    instructions: int | None
    cycles: int | None
    cycles_are_estimate: bool
    layer_cycles: list[int] | None
    stack_peak: int | None


def board_for(opts: BuildOptions) -> Board:
    """The board, after checking that the tools this build needs are installed."""
    from tinyprune.firmware.boards import load_board

    board = load_board(opts.board)
    preflight(opts, board)
    return board


def preflight(opts: BuildOptions, board: Board) -> None:
    """Fails fast (exit 3, with the install command) when a required tool is missing: the same
    checks the stages make, run before any work."""
    import shutil

    from tinyprune.errors import ToolMissing
    from tinyprune.firmware.build import require_toolchain

    require_toolchain()
    verify.host_cc()
    if opts.emulator == "qemu":
        from tinyprune.emulator.qemu_backend import require_qemu

        require_qemu()
    if opts.emulator == "renode":
        if shutil.which("renode") is None:
            raise ToolMissing("renode not found; Renode is not in Debian or PyPI: install it from "
                              "https://renode.io, or use --emulator unicorn (the default)")
        raise UsageError("--emulator renode: running on Renode is not supported yet; use "
                         "--emulator unicorn or qemu")
    if opts.emulator not in ("none", *board.emulator.backends):
        raise UsageError(f"--emulator {opts.emulator}: board {board.name} supports "
                         f"{', '.join(board.emulator.backends)} (or none)")


def front_end(opts: BuildOptions, stage: Path, steps: _Steps, board: Board) -> FrontEnd:
    """load -> (prune) -> quantize; picks the evaluation and firmware samples."""
    from tinyprune.models.load import load_model
    from tinyprune.models.stats import count_macs, count_params

    assert opts.model is not None
    with steps.step("load", str(opts.model.name)):
        loaded = load_model(opts.model, trust_model=opts.trust_model)
        data = _dataset(opts, loaded)
    model = loaded.model
    params_before = count_params(model) if model is not None else None
    macs_before = count_macs(model) if model is not None else None
    prune_info = None
    with steps.step("prune", _prune_label(opts)):
        if opts.prune_channels:
            model, prune_info = _prune(opts, loaded, data, board, stage)
            if opts.prune_channels == "auto" and prune_info is not None:
                steps.progress(f"      chose to remove {prune_info['ratio']:.1%} of channels "
                               f"({prune_info['reason']})")
    with steps.step("quantize", "(int8 .tflite given)" if model is None else ""):
        tflite = loaded.tflite_bytes if model is None else _quantize(loaded, model, data)
    assert tflite is not None, "a model without Keras object carries its .tflite bytes"
    (stage / "model_int8.tflite").write_bytes(tflite)
    graph = read_tflite(tflite)
    if model is not None:
        graph = keras_layer_names(graph, [layer.name for layer in model.layers])
    eval_inputs, labels = _eval_set(graph, data, opts)
    float_acc = _float_accuracy(model, data) if model is not None and data is not None else None
    original_acc = float_acc
    if prune_info is not None and model is not loaded.model and data is not None:
        original_acc = _float_accuracy(loaded.model, data)
    return FrontEnd(
        source=opts.model, kind=loaded.kind, tflite=tflite, graph=graph, eval_inputs=eval_inputs,
        eval_labels=labels, fw_inputs=eval_inputs[:opts.samples], float_accuracy=float_acc,
        original_float_accuracy=original_acc,
        params_before=params_before,
        params_after=count_params(model) if model is not None else None,
        macs_before=macs_before, prune=prune_info)


def _dataset(opts: BuildOptions, loaded: LoadedModel) -> Dataset | None:
    if opts.data is None:
        return None
    from tinyprune.data import load_dataset

    return load_dataset(opts.data, loaded.input_shape)


def _prune_label(opts: BuildOptions) -> str:
    if not opts.prune_channels:
        return "(skipped)"
    what = ("auto: searching the ratio that meets the budgets" if opts.prune_channels == "auto"
            else f"{opts.prune_channels:.0%} of channels")
    return f"{what}, {opts.prune_criterion}"


def _prune(opts: BuildOptions, loaded: LoadedModel, data: Dataset | None, board: Board,
           stage: Path) -> tuple[Any, dict[str, Any] | None]:
    from tinyprune.fit import prune_to_budgets
    from tinyprune.prune import FineTune, PruneConfig, prune

    if loaded.model is None:
        raise UsageError(f"{opts.model}: --prune-channels needs a Keras model; an int8 .tflite "
                         "cannot be pruned (prune the Keras model, then convert)")
    trainable = data is not None and data.x_train is not None
    epochs = opts.finetune_epochs if opts.finetune_epochs is not None else (
        DEFAULT_FINETUNE_EPOCHS if trainable else 0)
    if epochs and not trainable:
        raise UsageError(f"--finetune-epochs {epochs}: fine-tuning needs training data; pass "
                         "--data with x_train and y_train")
    finetune = FineTune(epochs=epochs, lr_schedule="cosine") if epochs else None
    if opts.prune_channels == "auto":
        return prune_to_budgets(loaded, data, board, opts.budgets, criterion=opts.prune_criterion,
                                finetune=finetune, work=stage / "search",
                                stack_bytes=opts.stack_bytes)
    assert isinstance(opts.prune_channels, float)
    config = PruneConfig(ratio=opts.prune_channels, criterion=opts.prune_criterion,
                         finetune=finetune)
    result = prune(loaded.model, config, data=data)
    return result.model, result.summary()


def _quantize(loaded: LoadedModel, model: Any, data: Dataset | None) -> bytes:
    from tinyprune.quantize import quantize

    return quantize(loaded, data, model=model)


def _eval_set(graph: Graph, data: Dataset | None,
              opts: BuildOptions) -> tuple[np.ndarray, np.ndarray | None]:
    if data is None or data.x_test is None:
        return verify.random_inputs(graph, opts.samples, seed=opts.seed), None
    x, y = data.x_test[:MAX_EVAL_SAMPLES], data.y_test[:MAX_EVAL_SAMPLES]
    return verify.encode_inputs(graph, x), np.asarray(y).reshape(-1)


def _float_accuracy(model: Any, data: Dataset) -> float | None:
    x, y = data.x_test[:MAX_EVAL_SAMPLES], data.y_test[:MAX_EVAL_SAMPLES]
    pred = np.asarray(model.predict(x, verbose=0, batch_size=256))
    return float(np.mean(pred.reshape(len(x), -1).argmax(axis=1) == np.asarray(y).reshape(-1)))


def make_plan(front: FrontEnd, board: Board) -> Plan:
    return plan(front.graph, dsp=board.dsp)


def make_project(front: FrontEnd, planned: Plan, opts: BuildOptions, stage: Path) -> CProject:
    return generate(planned, stage / "src", model_name=front.source.stem,
                    source_name=front.source.name, samples=front.fw_inputs)


def verify_on_host(front: FrontEnd, project: CProject, stage: Path, dsp: bool) -> HostCheck:
    """Host builds against the reference on the eval set: the portable path, and where the board
    has the DSP extension also the DSP path (intrinsics emulated in C)."""
    work = stage / "host"
    work.mkdir(exist_ok=True)
    reference = verify.reference_outputs(front.tflite, front.graph, front.eval_inputs)
    exe = verify.host_compile(project, work, dsp=False)
    outputs = verify.host_outputs(exe, front.eval_inputs, project.output_bytes, work)
    dsp_exact = None
    if dsp:
        exe_dsp = verify.host_compile(project, work, dsp=True)
        outputs_dsp = verify.host_outputs(exe_dsp, front.eval_inputs, project.output_bytes, work)
        dsp_exact = verify.compare(reference, outputs_dsp).bit_exact
    comparison = verify.compare(reference, outputs)
    ref_acc = fw_acc = None
    if front.eval_labels is not None:
        ref_acc = verify.accuracy(front.graph, reference, front.eval_labels)
        fw_acc = verify.accuracy(front.graph, outputs, front.eval_labels)
    return HostCheck(comparison=comparison, int8_reference_accuracy=ref_acc,
                     firmware_accuracy=fw_acc, reference=reference,
                     dsp_bit_exact=dsp_exact)


def make_firmware(project: CProject, board: Board, out_dir: Path, *, stack_bytes: int,
                  name: str = "firmware") -> Firmware:
    """Harness + generated model + kernels -> ELF for the board (sizes checked against it)."""
    from tinyprune.firmware.build import build_firmware, render_harness

    main_c = render_harness(project.directory / "main.c")
    return build_firmware([*project.firmware_sources, main_c], list(project.include_dirs), board,
                          out_dir, stack_bytes=stack_bytes, name=name)


def emulate(front: FrontEnd, firmware: Firmware, board: Board, opts: BuildOptions,
            reference: np.ndarray) -> RunOutcome:
    """Runs the firmware; compares its outputs with ``reference`` (rows of the eval set, whose
    first rows are the firmware's samples)."""
    if opts.emulator == "none":
        return RunOutcome("none", None, None, None, True, None, None)
    from tinyprune.emulator import run_elf
    from tinyprune.emulator.protocol import parse_results

    regions = ("tp_model_invoke",) if opts.emulator == "unicorn" else ()
    with _sample_progress(len(front.fw_inputs), opts.emulator) as on_line:
        result = run_elf(board, firmware.elf, backend=opts.emulator, regions=regions,
                         on_line=on_line)
    res = parse_results(result.uart)
    if res.status != 0:
        raise CheckFailed(f"firmware reported status {res.status} (a kernel refused its "
                          f"arguments in layer {res.status - 1})")
    n = len(res.outputs)
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    reference = reference[:n]
    layer_cycles = [int(np.mean(c)) for c in zip(*(s.layer_cycles for s in res.samples),
                                                     strict=True)]
    invoke = result.regions.get("tp_model_invoke")
    instructions = invoke.instructions // max(invoke.calls, 1) if invoke else None
    cycles = res.total_cycles // max(n, 1) if opts.emulator == "unicorn" else None
    return RunOutcome(
        emulator=opts.emulator, comparison=verify.compare(reference, actual),
        instructions=instructions, cycles=cycles,
        cycles_are_estimate=result.cycles_are_estimate, layer_cycles=layer_cycles,
        stack_peak=res.stack_peak)


@contextmanager
def _sample_progress(samples: int, emulator: str) -> Iterator[Callable[[str], None] | None]:
    """A progress bar over the samples the firmware reports (on a terminal, unicorn only)."""
    if emulator != "unicorn" or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=samples, desc="      samples", unit="inference", leave=False) as bar:
        yield lambda line: bar.update(1) if line.startswith("@tp out ") else None


def assemble_report(opts: BuildOptions, board: Board, front: FrontEnd, planned: Plan,
                    firmware: Firmware, host: HostCheck, run: RunOutcome) -> dict[str, Any]:
    from tinyprune.report import SCHEMA_VERSION, evaluate_budgets

    weights = [c.values for c in planned.consts if c.ctype == "int8_t"]
    total = sum(w.size for w in weights)
    sparsity = float(sum(int(np.count_nonzero(w == 0)) for w in weights) / total) if total else 0.0
    macs_after = sum(p.call.macs for p in planned.code_ops)
    cmp = run.comparison if run.comparison is not None else host.comparison
    mismatches = [m.__dict__ for m in cmp.mismatches]
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tinyprune_version": __version__,
        "board": {"name": board.name, "cpu": board.core, "clock_hz": board.clock_hz,
                  "flash_bytes": board.flash.length, "ram_bytes": board.ram.length},
        "model": {"source": front.source.name, "kind": front.kind,
                  "params_before": front.params_before, "params_after": front.params_after,
                  "macs_before": front.macs_before or macs_after, "macs_after": macs_after,
                  "sparsity": round(sparsity, 4), "pruning": front.prune},
        "firmware": {"flash_used_bytes": firmware.flash_used_bytes,
                     "ram_used_bytes": firmware.ram_used_bytes,
                     "arena_bytes": planned.memory.arena_bytes + planned.memory.scratch_bytes,
                     "stack_peak_bytes": run.stack_peak,
                     "stack_reserved_bytes": firmware.stack_bytes,
                     "samples_bytes": firmware.samples_bytes, "elf_sha256": firmware.elf_sha256},
        "run": _run_section(run, board, cmp, host, mismatches),
        "accuracy": {"float": front.float_accuracy,
                     "float_original": front.original_float_accuracy,
                     "int8_reference": host.int8_reference_accuracy,
                     "firmware": host.firmware_accuracy,
                     "test_samples": None if front.eval_labels is None else len(front.eval_labels)},
        "layers": _layers(planned, run),
    }
    report["budgets"] = evaluate_budgets(opts.budgets, report)
    budgets_ok = all(b["ok"] for b in report["budgets"].values())
    report["ok"] = bool(report["run"]["bit_exact"] and host.comparison.bit_exact
                        and host.dsp_bit_exact is not False and budgets_ok)
    return report


def _run_section(run: RunOutcome, board: Board, cmp: verify.Comparison, host: HostCheck,
                 mismatches: list) -> dict[str, Any]:
    latency = None if run.cycles is None else run.cycles / board.clock_hz * 1000.0
    return {"emulator": run.emulator, "samples": cmp.samples,
            "cycles_per_inference": run.cycles, "cycles_are_estimate": run.cycles_are_estimate,
            "latency_ms_at_clock": latency,
            "instructions_per_inference": run.instructions, "bit_exact": cmp.bit_exact,
            "mismatches": mismatches,
            "host": {"samples": host.comparison.samples, "bit_exact": host.comparison.bit_exact,
                     "dsp_path_bit_exact": host.dsp_bit_exact}}


def _layers(planned: Plan, run: RunOutcome) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(planned.code_ops):
        consts = [planned.graph.tensor(t) for t in p.op.inputs if t >= 0]
        w = [t.data for t in consts if t.data is not None and t.dtype == "int8"]
        nz = sum(int(np.count_nonzero(a == 0)) for a in w)
        size = sum(a.size for a in w)
        out.append({"name": p.op.name, "op": p.op.opcode, "kernel": p.call.kernel,
                    "macs": p.call.macs, "weight_bytes": p.call.weight_bytes,
                    "cycles": run.layer_cycles[i] if run.layer_cycles else None,
                    "sparsity": round(nz / size, 4) if size else 0.0})
    return out
