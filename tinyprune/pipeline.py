"""The stage calls of ``tinyprune build``: each takes earlier artifacts and returns its own.

They know nothing of the order they run in or of progress lines: :mod:`tinyprune.api` strings
them together, and the budget search (:mod:`tinyprune.fit`) reuses them to measure candidates, so
imports go one way: ``api -> fit -> pipeline -> the stage packages``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tinyprune import __version__, verify
from tinyprune.codegen import CProject, generate
from tinyprune.config import DEFAULT_FINETUNE_EPOCHS, Budgets, BuildOptions
from tinyprune.errors import CheckFailed, ToolMissing, UsageError
from tinyprune.ir import Graph, read_tflite
from tinyprune.ir.reader import keras_layer_names
from tinyprune.plan import Plan, PlanOptions, memory_section, plan
from tinyprune.progress import bars_enabled

if TYPE_CHECKING:
    from tinyprune.data import Dataset
    from tinyprune.firmware import Board, Firmware
    from tinyprune.firmware.placement import Placer
    from tinyprune.models.load import LoadedModel
    from tinyprune.prune import FineTune

log = logging.getLogger("tinyprune")

MAX_EVAL_SAMPLES = 2000  # test rows on the host build and for accuracy
# Seeded random full-range inputs on the host build, besides the test rows: 2,000, fewer for
# models whose reference-interpreter time would pass about a second (~1e9 MACs), at least 100.
HOST_RANDOM_SAMPLES = 2000
HOST_RANDOM_MACS = 1_000_000_000
HOST_RANDOM_MIN = 100
HOST_RANDOM_BYTES = 64 << 20
# On the firmware: one random input per four samples, at most 8 and 32 KiB of flash.
FIRMWARE_RANDOM_EVERY = 4
FIRMWARE_RANDOM_MAX = 8
FIRMWARE_RANDOM_BYTES = 32 << 10
HOST_MISMATCHES_SHOWN = 20
# Emulators with a cycle counter (DWT CYCCNT); QEMU's reads 0, so its figures would be fake.
CYCLE_COUNTING = frozenset({"unicorn"})


@dataclass(frozen=True)
class Loaded:
    """The model as given and the checked data set (None without ``--data``)."""

    model: LoadedModel
    data: Dataset | None


@dataclass(frozen=True)
class Pruned:
    """The Keras model after the prune stage (the given one when nothing was pruned)."""

    model: Any
    summary: dict[str, Any] | None


@dataclass(frozen=True)
class Sparse:
    """The Keras model after the sparsify stage, its masks and the report's figures."""

    model: Any
    masks: Any  # tinyprune.sparsify.Masks
    summary: dict[str, Any]


@dataclass(frozen=True)
class ModelInfo:
    """What the report says about the model: source, sizes, pruning, float accuracy."""

    source: Path
    kind: str
    params_before: int | None
    params_after: int | None
    macs_before: int | None
    pruning: dict[str, Any] | None
    sparsify: dict[str, Any] | None
    float_accuracy: float | None
    original_float_accuracy: float | None  # the model as given, before pruning


@dataclass(frozen=True)
class CheckSet:
    """The inputs the generated code is checked on, as raw input bytes, one row each.

    ``rows`` holds first the ``samples`` sample rows (test data, or without data seeded random
    stand-ins), then ``random`` extra seeded random full-range rows. The host build runs every
    row; the firmware runs the first ``firmware_samples`` sample rows and the first
    ``firmware_random`` random rows.
    """

    rows: np.ndarray = field(repr=False)
    labels: np.ndarray | None = field(repr=False)  # of the sample rows; None without data
    samples: int
    random: int
    firmware_samples: int
    firmware_random: int

    @property
    def firmware_index(self) -> np.ndarray:
        return np.r_[0:self.firmware_samples, self.samples:self.samples + self.firmware_random]

    @property
    def firmware_rows(self) -> np.ndarray:
        return self.rows[self.firmware_index]


@dataclass(frozen=True)
class HostCheck:
    comparison: verify.Comparison  # every row of the CheckSet, portable C path
    dsp_comparison: verify.Comparison | None  # the DSP path; None when the board has no DSP
    int8_reference_accuracy: float | None
    firmware_accuracy: float | None
    reference: np.ndarray = field(repr=False)

    @property
    def bit_exact(self) -> bool:
        dsp_ok = self.dsp_comparison is None or self.dsp_comparison.bit_exact
        return self.comparison.bit_exact and dsp_ok


@dataclass(frozen=True)
class RunOutcome:
    emulator: str
    comparison: verify.Comparison | None  # None: no firmware ran (--emulator none)
    instructions: int | None
    cycles: int | None
    cycles_are_estimate: bool
    layer_cycles: list[int] | None
    stack_peak: int | None
    # the model that priced the cycles (m7, m4, m0plus, table; Renode's own); None: none measured
    cycle_model: str | None = None
    memory_model: dict[str, Any] = field(default_factory=dict)


def board_for(opts: BuildOptions) -> Board:
    """The board, after checking that the tools this build needs are installed."""
    from tinyprune.firmware.boards import load_board

    board = load_board(opts.board)
    preflight(opts, board)
    return board


def preflight(opts: BuildOptions, board: Board) -> None:
    """Fails fast (exit 3, with the install command) when a required tool is missing: the same
    checks the stages make, run before any work."""
    from tinyprune.firmware.build import require_toolchain

    require_toolchain()
    verify.host_cc()
    if opts.emulator == "qemu":
        from tinyprune.emulator.qemu_backend import require_qemu

        require_qemu()
    if opts.emulator == "renode":
        from tinyprune.emulator.renode_backend import find_renode_test, renode_support

        renode_support(board)  # the board and its family can run on Renode
        if find_renode_test() is None:
            log.warning("renode-test not found: the build writes the Renode scripts beside the "
                        "firmware and stops with exit 3 before running them")
    if opts.emulator not in ("none", *board.emulator.backends):
        raise UsageError(f"--emulator {opts.emulator}: board {board.name} supports "
                         f"{', '.join(board.emulator.backends)} (or none)")


def load(opts: BuildOptions) -> Loaded:
    from tinyprune.models.load import load_model

    assert opts.model is not None
    model = load_model(opts.model, trust_model=opts.trust_model)
    return Loaded(model, None if opts.data is None else load_data(opts.data, model))


def load_data(path: Path, model: LoadedModel) -> Dataset:
    """The data set, checked against the model's input and (single) output: labels must be
    classes of the model."""
    from tinyprune.data import load_dataset

    output = model.output_shapes[0] if len(model.output_shapes) == 1 else None
    return load_dataset(path, model.input_shape, output)


def finetune_for(opts: BuildOptions, data: Dataset | None) -> FineTune | None:
    """The fine-tuning after pruning: ``--finetune-epochs``, by default 20 with training data."""
    from tinyprune.prune import FineTune

    trainable = data is not None and data.x_train is not None
    epochs = opts.finetune_epochs if opts.finetune_epochs is not None else (
        DEFAULT_FINETUNE_EPOCHS if trainable else 0)
    if epochs and not trainable:
        raise UsageError(f"--finetune-epochs {epochs}: fine-tuning needs training data; pass "
                         "--data with x_train and y_train")
    return FineTune(epochs=epochs, lr_schedule="cosine") if epochs else None


def keras_model(opts: BuildOptions, loaded: Loaded) -> Any:
    """The Keras model to prune; UsageError for an int8 .tflite."""
    if loaded.model.model is None:
        raise UsageError(f"{opts.model}: --prune-channels needs a Keras model; an int8 .tflite "
                         "cannot be pruned (prune the Keras model, then convert)")
    return loaded.model.model


def prune_round_to(opts: BuildOptions) -> int:
    """The channel multiple pruning keeps: ``--prune-round-to``, else what the conv, depthwise
    and FC kernels tile best (their handlers' ``channel_multiple``)."""
    from tinyprune.kernels.base import channel_multiple

    return opts.prune_round_to or channel_multiple()


def prune_by_ratio(opts: BuildOptions, loaded: Loaded) -> Pruned:
    """Removes the fraction ``--prune-channels`` of the channels, then fine-tunes."""
    from tinyprune.prune import PruneConfig, prune

    assert isinstance(opts.prune_channels, float)
    config = PruneConfig(ratio=opts.prune_channels, criterion=opts.prune_criterion,
                         round_to=prune_round_to(opts),
                         finetune=finetune_for(opts, loaded.data), progress=bars_enabled())
    result = prune(keras_model(opts, loaded), config, data=loaded.data)
    return Pruned(result.model, {**result.summary(), "round_to": config.round_to})


def sparsify(opts: BuildOptions, loaded: Loaded, model: Any) -> Sparse:
    """Zeroes weights of ``model`` (the given or the structurally pruned one) in the pattern of
    ``--block``/``[sparsify]``, fine-tuning on the training data (``[sparsify] epochs``, else
    ``--finetune-epochs``, else 20 with training data)."""
    from tinyprune.config import sparsify_config
    from tinyprune.sparsify import sparsify as run

    config = sparsify_config(opts, sparsify_epochs(opts, loaded.data), progress=bars_enabled())
    result = run(model, config, data=loaded.data)
    return Sparse(result.model, result.masks, result.summary())


def sparsify_epochs(opts: BuildOptions, data: Dataset | None) -> int:
    """Fine-tune epochs of the sparsify stage unless ``[sparsify] epochs`` says: 0 without
    training data, else ``--finetune-epochs``, else 20."""
    if data is None or data.x_train is None:
        return 0
    return opts.finetune_epochs if opts.finetune_epochs is not None else DEFAULT_FINETUNE_EPOCHS


def check_sparsity(sparse: Sparse, graph: Graph) -> dict[str, Any]:
    """The masks' zeros in the int8 weights (CheckFailed naming the layer if one leaked) and
    the real int8 sparsity per layer."""
    from tinyprune.sparsify import check_int8

    return check_int8(sparse.masks, graph).to_dict()


def quantize(loaded: Loaded, model: Any, samples: int | None = None) -> bytes:
    """int8 .tflite bytes of ``model`` (calibrated on the data, or on random inputs without)."""
    from tinyprune.quantize import quantize as convert

    if model is None:
        assert loaded.model.tflite_bytes is not None, "a .tflite model carries its bytes"
        return loaded.model.tflite_bytes
    if samples is None:
        return convert(loaded.model, loaded.data, model=model)
    return convert(loaded.model, loaded.data, model=model, samples=samples)


def read_graph(tflite: bytes, model: Any) -> Graph:
    """The IR of the int8 model, its layers named after the Keras layers when there are any."""
    graph = read_tflite(tflite)
    if model is not None:
        graph = keras_layer_names(graph, [layer.name for layer in model.layers],
                                  [type(layer).__name__ for layer in model.layers])
    return graph


def model_info(opts: BuildOptions, loaded: Loaded, pruned: Pruned,
               sparse: Sparse | None = None, int8: dict[str, Any] | None = None) -> ModelInfo:
    """``sparse``: the sparsify stage's model (else the pruned one is measured); ``int8``: its
    sparsity measured in the int8 weights (:func:`check_sparsity`)."""
    from tinyprune.models.stats import count_macs, count_params

    given, data = loaded.model.model, loaded.data
    model = sparse.model if sparse is not None else pruned.model
    summary = None if sparse is None else {**sparse.summary, "int8": int8}
    float_acc = original = None
    if model is not None and data is not None:
        float_acc = original = _float_accuracy(model, data)
        if model is not given:
            original = _float_accuracy(given, data)
    assert opts.model is not None
    return ModelInfo(
        source=opts.model, kind=loaded.model.kind,
        params_before=count_params(given) if given is not None else None,
        params_after=count_params(model) if model is not None else None,
        macs_before=count_macs(given) if given is not None else None,
        pruning=pruned.summary, sparsify=summary, float_accuracy=float_acc,
        original_float_accuracy=original)


def _float_accuracy(model: Any, data: Dataset) -> float:
    x, y = data.x_test[:MAX_EVAL_SAMPLES], data.y_test[:MAX_EVAL_SAMPLES]
    pred = np.asarray(model.predict(x, verbose=0, batch_size=256))
    return float(np.mean(pred.reshape(len(x), -1).argmax(axis=1) == np.asarray(y).reshape(-1)))


KERNEL_COST_MODEL = "table"
"""The cost fit every build's kernel choice asks, whatever its cycle model. The M7 fit
(``sparse_cost.FITS["m7"]``, from one-layer runs) chose worse than the table fit on whole models
under the M7 model itself, where weights stream from flash or sit in DTCM
(bench/results/kernel_choice.md): it stays an experiment (``PlanOptions(cost_model="m7")``)."""


def plan_options(budgets: Budgets) -> PlanOptions:
    """The planner's options for a build with these budgets: no narrow-scratch kernels (RAM
    bought with code and cycles) when only flash is limited; kernels priced by the
    :data:`KERNEL_COST_MODEL` fit, whatever the board and cycle model."""
    return PlanOptions(narrow_scratch=not (budgets.flash is not None and budgets.ram is None),
                       cost_model=KERNEL_COST_MODEL)


def make_plan(graph: Graph, board: Board, options: PlanOptions | None = None) -> Plan:
    return plan(graph, dsp=board.dsp, options=options)


def host_random_count(opts: BuildOptions, macs: int, row_bytes: int) -> int:
    """How many seeded random inputs the host build checks (``--random-samples`` or auto)."""
    if opts.random_samples is not None:
        return opts.random_samples
    n = min(HOST_RANDOM_SAMPLES, max(HOST_RANDOM_MIN, HOST_RANDOM_MACS // max(macs, 1)))
    return max(1, min(n, HOST_RANDOM_BYTES // max(row_bytes, 1)))


def firmware_random_count(samples: int, host_random: int, row_bytes: int) -> int:
    n = min(FIRMWARE_RANDOM_MAX, samples // FIRMWARE_RANDOM_EVERY, host_random)
    return min(n, FIRMWARE_RANDOM_BYTES // max(row_bytes, 1))


def check_set(graph: Graph, data: Dataset | None, opts: BuildOptions, macs: int) -> CheckSet:
    """Sample rows (test data, or seeded stand-ins) and seeded random full-range rows."""
    labels = None
    if data is None:
        sample_rows = verify.random_inputs(graph, opts.samples, seed=opts.seed)
    else:
        sample_rows = verify.encode_inputs(graph, data.x_test[:MAX_EVAL_SAMPLES])
        labels = np.asarray(data.y_test[:MAX_EVAL_SAMPLES]).reshape(-1)
    row_bytes = int(sample_rows.shape[1])
    n_random = host_random_count(opts, macs, row_bytes)
    random_rows = verify.random_inputs(graph, n_random, seed=opts.seed + 1)
    return CheckSet(
        rows=np.concatenate([sample_rows, random_rows.reshape(n_random, row_bytes)]),
        labels=labels, samples=len(sample_rows), random=n_random,
        firmware_samples=min(opts.samples, len(sample_rows)),
        firmware_random=firmware_random_count(opts.samples, n_random, row_bytes))


def make_project(planned: Plan, info: ModelInfo, checks: CheckSet, work: Path) -> CProject:
    return generate(planned, work / "src", model_name=info.source.stem,
                    source_name=info.source.name, samples=checks.firmware_rows)


def verify_on_host(tflite: bytes, graph: Graph, project: CProject, checks: CheckSet, work: Path,
                   dsp: bool) -> HostCheck:
    """Host builds against the reference on every row of the check set: the portable path, and
    where the board has the DSP extension also the DSP path (intrinsics emulated in C)."""
    host = work / "host"
    host.mkdir(exist_ok=True)
    # the compiles run while the reference interpreter does (about half the step's time)
    compiles = [verify.start_host_compile(project, host, dsp=d) for d in (False, True)[:1 + dsp]]
    try:
        reference = verify.reference_outputs(tflite, graph, checks.rows)
        exes = [c.wait() for c in compiles]
    finally:
        for c in compiles:
            c.cancel()

    def run(exe: Path) -> tuple[verify.Comparison, np.ndarray]:
        outputs = verify.host_outputs(exe, checks.rows, project.output_bytes, host)
        return verify.compare(reference, outputs), outputs

    comparison, outputs = run(exes[0])
    dsp_comparison = run(exes[1])[0] if dsp else None
    ref_acc = fw_acc = None
    if checks.labels is not None:
        n = checks.samples
        ref_acc = verify.accuracy(graph, reference[:n], checks.labels)
        fw_acc = verify.accuracy(graph, outputs[:n], checks.labels)
    return HostCheck(comparison=comparison, dsp_comparison=dsp_comparison,
                     int8_reference_accuracy=ref_acc, firmware_accuracy=fw_acc,
                     reference=reference)


def make_firmware(project: CProject, board: Board, out_dir: Path, *, stack_bytes: int,
                  name: str = "firmware", place: Placer | None = None) -> Firmware:
    """Harness + generated model + kernels -> ELF for the board (sizes checked against it).

    ``place`` (:func:`tcm_placer`) moves what pays into the board's TCMs."""
    from tinyprune.firmware.build import build_firmware, render_harness

    main_c = render_harness(project.directory / "main.c")
    return build_firmware([*project.firmware_sources, main_c], list(project.include_dirs), board,
                          out_dir, stack_bytes=stack_bytes, name=name, place=place)


def tcm_placer(planned: Plan, board: Board, opts: BuildOptions) -> Placer | None:
    """The TCM placement of the build (docs/tcm.md): None with ``--no-tcm`` or without TCM."""
    from tinyprune.firmware.placement import placer

    if not opts.tcm or (board.itcm is None and board.dtcm is None):
        return None
    return placer(planned, board, stack_bytes=opts.stack_bytes, ram_budget=opts.budgets.ram,
                  memory_costs=opts.cycle_model != "table")


def tcm_section(firmware: Firmware, board: Board, opts: BuildOptions) -> dict[str, Any] | None:
    """The report's ``firmware.tcm`` (None on a board without TCM)."""
    from tinyprune.firmware.placement import off

    if board.itcm is None and board.dtcm is None:
        return None
    placement = firmware.placement or off("--no-tcm" if not opts.tcm else "not asked")
    out = placement.to_report()
    out.update(itcm_bytes=firmware.itcm_used_bytes, dtcm_bytes=firmware.dtcm_used_bytes,
               itcm_size=board.itcm.length if board.itcm else 0,
               dtcm_size=board.dtcm.length if board.dtcm else 0)
    return out


def firmware_model_name(info: ModelInfo) -> str:
    """The ``model=`` name the harness prints (``tp_model_name``, as codegen spells it)."""
    return re.sub(r"[^0-9A-Za-z_.-]", "_", info.source.stem)


def write_expected_outputs(firmware: Firmware, info: ModelInfo, checks: CheckSet,
                           reference: np.ndarray) -> Path:
    """Writes ``firmware/reference_outputs.json`` beside the ELF: the reference outputs of the
    inputs compiled into it, so that a run anywhere else (a real board through ``tinyprune
    monitor``, Renode) is checked byte for byte without the model."""
    from tinyprune.protocol import EXPECTED_FILE, ExpectedOutputs

    index = checks.firmware_index
    inputs = tuple(("sample", int(r)) if r < checks.samples else ("random", int(r) - checks.samples)
                   for r in index)
    expected = ExpectedOutputs(
        board=firmware.board, model=firmware_model_name(info), elf_sha256=firmware.elf_sha256,
        output_bytes=int(reference.shape[1]), inputs=inputs,
        outputs=tuple(bytes(row) for row in np.ascontiguousarray(reference[index], np.uint8)))
    path = firmware.elf.parent / EXPECTED_FILE
    path.write_text(expected.to_json(), encoding="utf-8")
    return path


def emulate(firmware: Firmware, board: Board, emulator: str, checks: CheckSet,
            reference: np.ndarray, cycle_model: str | None = None) -> RunOutcome:
    """Runs the firmware; compares its outputs with the reference rows of its inputs."""
    if emulator == "none":
        return RunOutcome("none", None, None, None, True, None, None)
    if emulator == "renode":
        return emulate_renode(firmware, board, checks, reference)
    from tinyprune.emulator import run_elf
    from tinyprune.emulator.protocol import parse_results

    counting = emulator in CYCLE_COUNTING
    regions = ("tp_model_invoke",) if counting else ()
    with _sample_progress(len(checks.firmware_index), counting) as on_line:
        result = run_elf(board, firmware.elf, backend=emulator, regions=regions,
                         on_line=on_line, cycle_model=cycle_model)
    res = parse_results(result.uart)
    if res.status != 0:
        raise CheckFailed(f"firmware reported status {res.status} (a kernel refused its "
                          f"arguments in layer {res.status - 1})")
    n = len(res.outputs)
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    expected = reference[checks.firmware_index]
    layer_cycles = [int(np.mean(c)) for c in zip(*(s.layer_cycles for s in res.samples),
                                                     strict=True)]
    invoke = result.regions.get("tp_model_invoke")
    return RunOutcome(
        emulator=emulator, comparison=verify.compare(expected, actual),
        instructions=invoke.instructions // max(invoke.calls, 1) if invoke else None,
        cycles=res.total_cycles // max(n, 1) if counting else None,
        cycles_are_estimate=result.cycles_are_estimate,
        layer_cycles=layer_cycles if counting else None, stack_peak=res.stack_peak,
        cycle_model=result.cycle_model if counting else None,
        memory_model=dict(result.memory_model) if counting else {})


class RenodeMissing(ToolMissing):
    """``renode-test`` is not installed: the Renode scripts were written beside the firmware
    (``scripts``, inside the build's work folder) and nothing ran. The build keeps its outputs
    (without a report) and exits 3."""

    def __init__(self, scripts: tuple[Path, ...]) -> None:
        super().__init__("renode-test not found")
        self.scripts = scripts


def emulate_renode(firmware: Firmware, board: Board, checks: CheckSet,
                   reference: np.ndarray) -> RunOutcome:
    """Writes the Renode scripts next to the firmware (``renode/``), runs the suite with
    ``renode-test`` and parses the UART it logged with the same parser as the other emulators.

    Raises:
        RenodeMissing: renode-test is not on PATH (after the scripts were written).
        CheckFailed: the suite failed, or the firmware's results (as for any emulator).
    """
    from tinyprune.emulator.renode_backend import (
        CYCLE_MODEL,
        SCRIPTS_DIR,
        find_renode_test,
        run_robot,
        write_scripts,
    )
    from tinyprune.protocol import parse_results

    scripts = write_scripts(board, firmware.elf, firmware.elf.parent.parent / SCRIPTS_DIR)
    tool = find_renode_test()
    if tool is None:
        raise RenodeMissing(scripts.files)
    res = parse_results(run_robot(scripts, tool))
    if res.status != 0:
        raise CheckFailed(f"firmware reported status {res.status} on Renode (a kernel refused "
                          f"its arguments in layer {res.status - 1})")
    actual = np.stack([np.frombuffer(o, dtype=np.uint8) for o in res.outputs])
    return RunOutcome(
        emulator="renode", comparison=verify.compare(reference[checks.firmware_index], actual),
        instructions=None, cycles=res.total_cycles // max(len(res.samples), 1),
        cycles_are_estimate=True, layer_cycles=res.mean_layer_cycles,
        stack_peak=res.stack_peak, cycle_model=CYCLE_MODEL)


@contextmanager
def _sample_progress(samples: int, counting: bool) -> Iterator[Callable[[str], None] | None]:
    """A progress bar over the samples the firmware reports (on a terminal, unicorn only)."""
    if not counting or not bars_enabled():
        yield None
        return
    from tqdm import tqdm

    with tqdm(total=samples, desc="      samples", unit="inference", leave=False) as bar:
        yield lambda line: bar.update(1) if line.startswith("@tp out ") else None


def assemble_report(opts: BuildOptions, board: Board, info: ModelInfo, planned: Plan,
                    firmware: Firmware, checks: CheckSet, host: HostCheck, run: RunOutcome,
                    warnings: tuple[str, ...] = ()) -> dict[str, Any]:
    from tinyprune.report import SCHEMA_VERSION, evaluate_budgets

    weights = [c.values for c in planned.consts if c.ctype == "int8_t"]
    total = sum(w.size for w in weights)
    sparsity = float(sum(int(np.count_nonzero(w == 0)) for w in weights) / total) if total else 0.0
    macs_after = sum(p.call.macs for p in planned.code_ops)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tinyprune_version": __version__,
        "board": {"name": board.name, "cpu": board.core, "clock_hz": board.clock_hz,
                  "flash_bytes": board.flash.length, "ram_bytes": board.ram.length},
        "model": {"source": info.source.name, "kind": info.kind,
                  "params_before": info.params_before, "params_after": info.params_after,
                  "macs_before": info.macs_before or macs_after, "macs_after": macs_after,
                  "sparsity": round(sparsity, 4), "pruning": info.pruning,
                  "sparsify": info.sparsify},
        "firmware": {"flash_used_bytes": firmware.flash_used_bytes,
                     "ram_used_bytes": firmware.ram_used_bytes,
                     "arena_bytes": planned.memory.arena_bytes + planned.memory.scratch_bytes,
                     "stack_peak_bytes": run.stack_peak,
                     "stack_reserved_bytes": firmware.stack_bytes,
                     "samples_bytes": firmware.samples_bytes, "elf_sha256": firmware.elf_sha256,
                     "tcm": tcm_section(firmware, board, opts)},
        "run": _run_section(run, board, checks, host),
        "accuracy": {"float": info.float_accuracy,
                     "float_original": info.original_float_accuracy,
                     "int8_reference": host.int8_reference_accuracy,
                     "firmware": host.firmware_accuracy,
                     "test_samples": None if checks.labels is None else len(checks.labels)},
        "layers": _layers(planned, run),
        "kernel_cost_model": planned.cost_model,
        "memory": memory_section(planned),
        "warnings": list(warnings),
    }
    report["budgets"] = evaluate_budgets(opts.budgets, report)
    budgets_ok = all(b["ok"] for b in report["budgets"].values())
    firmware_ok = run.comparison is None or run.comparison.bit_exact
    report["ok"] = bool(firmware_ok and host.bit_exact and budgets_ok)
    return report


def _mismatches(cmp: verify.Comparison, index: np.ndarray, checks: CheckSet,
                limit: int | None = None) -> list[dict[str, Any]]:
    """Mismatch entries, each saying which input it was: ``sample`` row or ``random`` row."""
    out = []
    for m in cmp.mismatches[:limit]:
        row = int(index[m.sample]) if m.sample < len(index) else -1
        kind, k = ("sample", row) if row < checks.samples else ("random", row - checks.samples)
        out.append({**m.__dict__, "input": kind, "row": k})
    return out


def _run_section(run: RunOutcome, board: Board, checks: CheckSet,
                 host: HostCheck) -> dict[str, Any]:
    latency = None if run.cycles is None else run.cycles / board.clock_hz * 1000.0
    fw = run.comparison
    everything = np.arange(len(checks.rows))
    return {"emulator": run.emulator, "check": "host-only" if fw is None else "firmware",
            "samples": checks.firmware_samples if fw is not None else 0,
            "random_samples": checks.firmware_random if fw is not None else 0,
            "cycles_per_inference": run.cycles, "cycles_are_estimate": run.cycles_are_estimate,
            "cycle_model": run.cycle_model, "memory_model": run.memory_model,
            "latency_ms_at_clock": latency,
            "instructions_per_inference": run.instructions,
            "bit_exact": None if fw is None else fw.bit_exact,
            "mismatches": [] if fw is None else _mismatches(fw, checks.firmware_index, checks),
            "host": {"samples": checks.samples, "random_samples": checks.random,
                     "bit_exact": host.comparison.bit_exact,
                     "mismatch_count": len(host.comparison.mismatches),
                     "mismatches": _mismatches(host.comparison, everything, checks,
                                               HOST_MISMATCHES_SHOWN),
                     "dsp_path_bit_exact": None if host.dsp_comparison is None
                     else host.dsp_comparison.bit_exact}}


def _layers(planned: Plan, run: RunOutcome) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(planned.code_ops):
        consts = [planned.graph.tensor(t) for t in p.op.inputs if t >= 0]
        w = [t.data for t in consts if t.data is not None and t.dtype == "int8"]
        nz = sum(int(np.count_nonzero(a == 0)) for a in w)
        size = sum(a.size for a in w)
        c = p.call
        out.append({"name": p.op.name, "op": p.op.opcode, "kernel": c.kernel,
                    "macs": c.macs, "weight_bytes": c.weight_bytes,
                    "cycles": run.layer_cycles[i] if run.layer_cycles else None,
                    "sparsity": round(nz / size, 4) if size else 0.0,
                    "fused": list(c.fused), **_kernel_choice(c)})
    return out


def _kernel_choice(c: Any) -> dict[str, Any]:
    """The planner's figures of one call (KernelCall): weight format, density, weight bytes
    dense and as stored, the cost model's cycles for the chosen kernel, the dense one and the
    best sparse one, and why this kernel."""
    return {"format": c.encoding or None,
            "density": None if c.sparsity is None else round(1.0 - c.sparsity, 4),
            "weight_bytes_dense": c.dense_weight_bytes,
            "est_cycles": c.est_cycles, "est_cycles_dense": c.dense_cycles,
            "est_cycles_sparse": c.sparse_cycles, "reason": c.reason}
