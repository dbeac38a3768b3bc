"""The Python API: what the CLI, the tests and users call. ``build`` runs the whole pipeline.

A build is the sequence :data:`STAGES`: each stage is a small function from the artifacts so far
(:class:`State`) to the next state, and names its progress step. The stage calls live in
:mod:`tinyprune.pipeline` and the budget search in :mod:`tinyprune.fit`; this module sits on top
of both. A new stage is one function and one entry in ``STAGES``.

Everything is written through :func:`tinyprune.outputs.output_folder`: the run works in a staging
folder inside ``--out`` and moves its results into place at the end, the report last; a failed or
killed build leaves no report (README, "What tinyprune touches in --out").
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tinyprune import fit, pipeline
from tinyprune.config import BuildOptions, validate
from tinyprune.errors import CheckFailed, DoesNotFit, TinypruneError, ToolMissing
from tinyprune.firmware.build import does_not_fit
from tinyprune.outputs import REPORTS, output_folder
from tinyprune.progress import Progress, Steps

if TYPE_CHECKING:
    from tinyprune.codegen import CProject
    from tinyprune.firmware import Board, Firmware
    from tinyprune.ir import Graph
    from tinyprune.plan import Plan

log = logging.getLogger("tinyprune")

# The top-level names a build writes in --out (checked before any work).
BUILD_OUTPUTS = (*REPORTS, "model_int8.tflite", "src", "firmware", "host")
RENODE_OUTPUTS = ("renode",)  # --emulator renode: the scripts beside the firmware
NO_DATA_WARNING = ("no --data: calibration used seeded random inputs, nothing was fine-tuned and "
                   "no accuracy is measured; pass --data for an int8 model calibrated on real "
                   "inputs")
NO_FINETUNE_WARNING = ("pruned without fine-tuning: --data has no x_train, y_train (the pruned "
                       "model's accuracy may drop)")

T = TypeVar("T")


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` returns: the report (as written to report.json) and where it lives."""

    report: dict[str, Any]
    out_dir: Path

    @property
    def ok(self) -> bool:
        return bool(self.report["ok"])


@dataclass(frozen=True)
class Context:
    """What every stage may read: the options, the board, the folder to write into."""

    opts: BuildOptions
    board: Board
    work: Path  # everything written here moves into --out when the build completes; scratch
    # files go to tempfile's folder, which output_folder points inside --out meanwhile
    say: Progress  # a detail line under the current step
    baseline: dict[str, Any] | None = None  # an earlier report.json, for report.md/html


@dataclass(frozen=True)
class State:
    """The artifacts produced so far; each stage fills its own."""

    loaded: pipeline.Loaded | None = None
    pruned: pipeline.Pruned | None = None
    sparse: pipeline.Sparse | None = None  # None: no sparsify stage asked for
    tflite: bytes | None = None
    graph: Graph | None = None
    info: pipeline.ModelInfo | None = None
    plan: Plan | None = None
    checks: pipeline.CheckSet | None = None
    project: CProject | None = None
    host: pipeline.HostCheck | None = None
    firmware: Firmware | None = None
    run: pipeline.RunOutcome | None = None
    report: dict[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    # set by a stage that ends the build early: its outputs so far are kept (no report is
    # written, nothing looks like a success) and this error is raised once they are in place
    stop: TinypruneError | None = None


def _need(value: T | None) -> T:
    assert value is not None, "a stage ran before the stage that produces its input"
    return value


def _warn(state: State, message: str) -> State:
    log.warning("%s", message)
    return replace(state, warnings=(*state.warnings, message))


def _load(ctx: Context, s: State) -> State:
    loaded = pipeline.load(ctx.opts)
    s = replace(s, loaded=loaded)
    return _warn(s, NO_DATA_WARNING) if loaded.model.model is not None and \
        loaded.data is None else s


def _prune(ctx: Context, s: State) -> State:
    opts, loaded = ctx.opts, _need(s.loaded)
    if not opts.prune_channels:
        return replace(s, pruned=pipeline.Pruned(loaded.model.model, None))
    pipeline.keras_model(opts, loaded)
    finetune = pipeline.finetune_for(opts, loaded.data)
    if opts.prune_channels == "auto":
        pruned = fit.prune_to_budgets(loaded, ctx.board, opts.budgets,
                                      criterion=opts.prune_criterion, finetune=finetune,
                                      work=Path(tempfile.mkdtemp(prefix="prune-search-")),
                                      stack_bytes=opts.stack_bytes,
                                      cycle_model=opts.cycle_model,
                                      round_to=pipeline.prune_round_to(opts))
        if pruned.summary is not None:
            ctx.say(f"chose to remove {pruned.summary['ratio']:.1%} of channels "
                    f"({pruned.summary['reason']})")
    else:
        pruned = pipeline.prune_by_ratio(opts, loaded)
    s = replace(s, pruned=pruned)
    pruned_something = pruned.model is not loaded.model.model
    if pruned_something and finetune is None and opts.finetune_epochs is None and \
            loaded.data is not None:
        s = _warn(s, NO_FINETUNE_WARNING)
    return s


def _sparsify(ctx: Context, s: State) -> State:
    if ctx.opts.sparsify is None:
        return s
    loaded = _need(s.loaded)
    model = _need(s.pruned).model
    if model is None:  # validate() refuses a .tflite with sparsify options
        model = pipeline.keras_model(ctx.opts, loaded)
    sparse = pipeline.sparsify(ctx.opts, loaded, model)
    summ = sparse.summary
    acc = summ["accuracy"]
    after = acc.get("after_finetune") if acc.get("after_finetune") is not None else \
        acc.get("after_prune")
    ctx.say(f"removed {summ['sparsity']:.1%} of {summ['weights']:,} weights in "
            f"{len(summ['layers'])} layers ({summ['pattern']})"
            + (f"; accuracy {acc['before']:.1%} -> {after:.1%}"
               if acc.get("before") is not None and after is not None else ""))
    return replace(s, sparse=sparse)


def _quantize(ctx: Context, s: State) -> State:
    loaded, pruned = _need(s.loaded), _need(s.pruned)
    model = s.sparse.model if s.sparse is not None else pruned.model
    tflite = pipeline.quantize(loaded, model)
    (ctx.work / "model_int8.tflite").write_bytes(tflite)
    graph = pipeline.read_graph(tflite, model)
    int8 = None
    if s.sparse is not None:
        int8 = pipeline.check_sparsity(s.sparse, graph)
        ctx.say(f"every removed weight is 0 in the int8 weights ({int8['sparsity']:.1%} zero "
                "in the sparsified layers)")
    return replace(s, tflite=tflite, graph=graph,
                   info=pipeline.model_info(ctx.opts, loaded, pruned, s.sparse, int8))


def _plan(ctx: Context, s: State) -> State:
    planned = pipeline.make_plan(_need(s.graph), ctx.board,
                                 pipeline.plan_options(ctx.opts.budgets))
    if planned.weight_bytes > ctx.board.flash.length:  # const weights go to flash: no link fits
        raise _with_next_step(does_not_fit(ctx.board, "FLASH", planned.weight_bytes,
                                           " (the weights alone, before any code)"), ctx, s)
    return replace(s, plan=planned)


def _codegen(ctx: Context, s: State) -> State:
    planned = _need(s.plan)
    macs = sum(p.call.macs for p in planned.code_ops)
    checks = pipeline.check_set(_need(s.graph), _need(s.loaded).data, ctx.opts, macs)
    return replace(s, checks=checks,
                   project=pipeline.make_project(planned, _need(s.info), checks, ctx.work))


def _verify_on_host(ctx: Context, s: State) -> State:
    host = pipeline.verify_on_host(_need(s.tflite), _need(s.graph), _need(s.project),
                                   _need(s.checks), ctx.work, dsp=ctx.board.dsp)
    return replace(s, host=host)


def _build_firmware(ctx: Context, s: State) -> State:
    try:
        firmware = pipeline.make_firmware(
            _need(s.project), ctx.board, ctx.work / "firmware", stack_bytes=ctx.opts.stack_bytes,
            place=pipeline.tcm_placer(_need(s.plan), ctx.board, ctx.opts))
    except CheckFailed as exc:
        raise _with_next_step(exc, ctx, s) from None
    pipeline.write_expected_outputs(firmware, _need(s.info), _need(s.checks),
                                    _need(s.host).reference)
    return replace(s, firmware=firmware)


def _with_next_step(exc: CheckFailed, ctx: Context, s: State) -> CheckFailed:
    """A firmware that does not fit the board: say what would make it fit."""
    if not isinstance(exc, DoesNotFit):
        return exc
    text = str(exc)
    ram = exc.region == "RAM"
    region, size = ("RAM", ctx.board.ram.length) if ram else ("flash", ctx.board.flash.length)
    flag = f"--{region.lower()}-budget {size // 1024}K"
    if _need(s.info).kind == "tflite":
        hint = (f"choose a board with more {region} (tinyprune boards), or prune the Keras model "
                "before converting it")
    elif ctx.opts.prune_channels != "auto":
        hint = f"prune it until it fits: --prune-channels auto {flag}"
    else:
        hint = f"set a smaller {flag.split()[0]} or choose a board with more {region}"
    samples = s.checks.firmware_rows.nbytes if s.checks is not None else 0
    if not ram and samples >= 4096:
        hint += f"; or compile fewer inputs in (they take {samples:,} bytes: lower --samples)"
    return DoesNotFit(f"{text}; {hint}", exc.region, exc.available)


def _run_on_emulator(ctx: Context, s: State) -> State:
    try:
        run = pipeline.emulate(_need(s.firmware), ctx.board, ctx.opts.emulator, _need(s.checks),
                               _need(s.host).reference, cycle_model=ctx.opts.cycle_model)
    except pipeline.RenodeMissing as exc:
        return replace(s, stop=_renode_missing(ctx, exc))
    return replace(s, run=run)


def _renode_missing(ctx: Context, exc: pipeline.RenodeMissing) -> ToolMissing:
    """Exit 3 naming the scripts where they will be once the outputs are in place."""
    from tinyprune.emulator.renode_backend import INSTALL_HINT, UART_LOG

    out = ctx.opts.output_dir()
    files = [out / p.relative_to(ctx.work) for p in exc.scripts]
    robot = next(f for f in files if f.suffix == ".robot")
    return ToolMissing(
        f"renode-test not found; wrote {', '.join(map(str, files))} beside the firmware, and no "
        f"report (nothing ran). {INSTALL_HINT}; then run `renode-test {robot}` (the firmware's "
        f"result lines go to {robot.parent / UART_LOG}), or build again with --emulator renode")


def _report(ctx: Context, s: State) -> State:
    from tinyprune.report import write_outputs

    report = pipeline.assemble_report(ctx.opts, ctx.board, _need(s.info), _need(s.plan),
                                      _need(s.firmware), _need(s.checks), _need(s.host),
                                      _need(s.run), s.warnings)
    write_outputs(report, ctx.work, ctx.baseline)  # report.json + report.md, .html, junit.xml
    return replace(s, report=report)


def _prune_detail(ctx: Context, s: State) -> str:
    opts = ctx.opts
    if not opts.prune_channels:
        return "(skipped)"
    what = ("auto: searching the ratio that meets the budgets" if opts.prune_channels == "auto"
            else f"{opts.prune_channels:.0%} of channels")
    return f"{what}, {opts.prune_criterion}"


def _sparsify_detail(ctx: Context, s: State) -> str:
    if ctx.opts.sparsify is None:
        return "(skipped)"
    from tinyprune.config import sparsify_schedule

    o = ctx.opts.sparsify
    block = o.get("block", "1x4")
    sparsity = o.get("sparsity")
    what = f"{sparsity:.0%} " if isinstance(sparsity, int | float) else ""
    epochs = o.get("epochs", pipeline.sparsify_epochs(ctx.opts, _need(s.loaded).data))
    return f"{what}{block}, {o.get('criterion', 'l1')}, {sparsify_schedule(o, epochs)}" + (
        f", {epochs} epochs" if epochs else "")


def _host_detail(ctx: Context, s: State) -> str:
    checks = _need(s.checks)
    return f"({checks.samples:,} samples + {checks.random:,} random inputs)"


def _emulator_detail(ctx: Context, s: State) -> str:
    if ctx.opts.emulator == "none":
        return "(skipped: --emulator none, the check is host-only)"
    checks = _need(s.checks)
    return f"{ctx.opts.emulator} ({checks.firmware_samples} samples + " \
        f"{checks.firmware_random} random inputs)"


def _no_detail(ctx: Context, s: State) -> str:
    return ""


@dataclass(frozen=True)
class Stage:
    """One step of the build: its progress name, what it does, what its progress line adds."""

    name: str
    run: Callable[[Context, State], State]
    detail: Callable[[Context, State], str] = _no_detail


STAGES: tuple[Stage, ...] = (
    Stage("load", _load, lambda ctx, s: str(_need(ctx.opts.model).name)),
    Stage("prune", _prune, _prune_detail),
    Stage("sparsify", _sparsify, _sparsify_detail),
    Stage("quantize", _quantize,
          lambda ctx, s: "(int8 .tflite given)" if _need(s.pruned).model is None else ""),
    Stage("plan", _plan),
    Stage("codegen", _codegen),
    Stage("verify on host", _verify_on_host, _host_detail),
    Stage("build firmware", _build_firmware, lambda ctx, s: f"for {ctx.board.name}"),
    Stage("run on emulator", _run_on_emulator, _emulator_detail),
    Stage("report", _report),
)


def build(opts: BuildOptions, progress: Progress | None = None,
          baseline: dict[str, Any] | None = None) -> BuildResult:
    """Keras model or int8 .tflite -> verified firmware for a board, with a report.

    ``baseline`` is an earlier report (``tinyprune.report.read_report``): report.md and
    report.html then show the change against it. Read it before the build starts, since the
    build deletes the report in its own --out first.

    Raises:
        UsageError: bad input (exit 2), found before any work where the options tell.
        ToolMissing: toolchain or emulator absent (exit 3); for ``--emulator renode`` without
            renode-test, raised after the firmware and the Renode scripts are in --out.
        CheckFailed: the image does not fit, or firmware faulted (exit 1). A build that completes
        with a broken budget or a bit-exactness failure returns a report with ``ok`` false.
    """
    validate(opts)
    board = pipeline.board_for(opts)
    steps = Steps([stage.name for stage in STAGES], progress)
    out = opts.output_dir()
    state = State()
    names = BUILD_OUTPUTS + (RENODE_OUTPUTS if opts.emulator == "renode" else ())
    with output_folder(out, force=opts.force, names=names) as work:
        ctx = Context(opts, board, work, steps.say, baseline)
        for stage in STAGES:
            with steps.step(stage.name, stage.detail(ctx, state)):
                state = stage.run(ctx, state)
            if state.stop is not None:
                break
    if state.stop is not None:
        raise state.stop
    return BuildResult(report=_need(state.report), out_dir=out)
