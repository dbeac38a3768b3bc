"""Command line: a thin layer over :mod:`tinyprune.api`. Exit codes follow SPEC.md.

0 success; 1 a budget, accuracy or bit-exactness check failed; 2 bad input or usage; 3 a required
external tool is missing. User errors print one line, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from tinyprune import __version__
from tinyprune.config import CYCLE_MODELS
from tinyprune.errors import TinypruneError, UsageError
from tinyprune.quiet import quiet_third_party

BOARDS_DIR_ENV = "TINYPRUNE_BOARDS_DIR"  # read by tinyprune.firmware.boards.search_dirs

if TYPE_CHECKING:
    from tinyprune.config import BuildOptions

log = logging.getLogger("tinyprune")

EPILOG = """exit codes: 0 ok, 1 a budget / accuracy / bit-exactness check failed,
2 bad input or usage, 3 a required tool is missing.
Quick start: tinyprune build --board nucleo_f746 --model model.keras --data data.npz"""

CRITERIA = ("l1", "l2", "bn_scale", "taylor", "fisher", "obd", "snip", "synflow", "random")
SPARSIFY_CRITERIA = ("l1", "l2", "lookahead", "snip", "synflow", "random")
SPARSIFY_SCHEDULES = ("oneshot", "gradual", "imp")


FORCE_HELP = ("write into a non-empty folder tinyprune did not create (beside the files there; "
              "none of them is deleted or overwritten)")
FORCE_FILE_HELP = "replace the output file if it exists"


def did_you_mean(value: str, choices: Sequence[str]) -> str:
    """ "; did you mean X?" for the closest choice, or "" when none is close."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if choices is not None and value not in choices:
            names = [str(c) for c in choices]
            what = "command" if isinstance(action, argparse._SubParsersAction) else \
                "/".join(action.option_strings) or action.dest
            raise argparse.ArgumentError(
                None, f"{what}: invalid choice {value!r}{did_you_mean(str(value), names)} "
                f"(choose from {', '.join(names)})")


def _add_build_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", help="target board, e.g. nucleo_f746 (list: tinyprune boards)")
    p.add_argument("--model", type=Path, help="Keras model (.keras, .h5, SavedModel folder) "
                   "or an int8 .tflite")
    p.add_argument("--data", type=Path,
                   help=".npz with x_train, y_train, x_test, y_test (or x, y); "
                   "without it, seeded random inputs are used and no accuracy is reported")
    p.add_argument("--out", type=Path, help="output folder (default build/<model-stem>-<board>/); "
                   "nothing is written outside it")
    p.add_argument("--config", type=Path, help="project file (default ./tinyprune.toml if present)")
    p.add_argument("--prune-channels", metavar="R|auto",
                   help="remove this fraction of conv/dense channels before quantizing (e.g. 0.5); "
                   "auto: the smallest fraction whose firmware meets the flash/RAM/latency budgets")
    p.add_argument("--prune-criterion", choices=CRITERIA,
                   help="channel importance for --prune-channels (default l1)")
    p.add_argument("--prune-round-to", type=int, metavar="N",
                   help="round kept channel counts to a multiple of N (default: what the "
                   "kernels tile best, 4; 1: no rounding)")
    p.add_argument("--finetune-epochs", type=int, metavar="N",
                   help="fine-tune N epochs after pruning (default 20 when --data has x_train)")
    p.add_argument("--sparsity", type=float, metavar="S",
                   help="zero this fraction of the Dense/Conv weights in --block units, then "
                   "fine-tune (e.g. 0.75; after --prune-channels when both are given); the "
                   "block-sparse kernels run where the cost model says they pay")
    p.add_argument("--block", metavar="PATTERN", help="what is zeroed together: 1x4 (default), "
                   "2x4, 4x4 (blocks of output x input channels), 2:4, 1:4 (N:M), 1x1 "
                   "(unstructured); alone it means --sparsity 0.75 (N:M: 1 - N/M)")
    p.add_argument("--sparsify-criterion", choices=SPARSIFY_CRITERIA,
                   help="block importance for --sparsity (default l1)")
    p.add_argument("--sparsify-depthwise", action="store_true", default=None,
                   help="sparsify the depthwise layers too (1x4: four channels at one tap; "
                   "costs accuracy, see docs/sparsity.md)")
    p.add_argument("--sparsify-schedule", choices=SPARSIFY_SCHEDULES,
                   help="oneshot (all at once, then fine-tune), gradual (Zhu & Gupta, while "
                   "fine-tuning; the default when the build fine-tunes), imp (iterative with "
                   "rewinding); see docs/sparsity.md")
    p.add_argument("--emulator", choices=("unicorn", "qemu", "renode", "none"),
                   help="run the firmware on this emulator (default unicorn; none: build the "
                   "firmware but check only the host build)")
    p.add_argument("--cycle-model", choices=CYCLE_MODELS,
                   help="price the emulated run with this timing model (default: the board's "
                   "core; table: the flat per-class table of earlier figures; "
                   "docs/cycle_models.md)")
    p.add_argument("--no-tcm", dest="tcm", action="store_false", default=None,
                   help="do not place kernels in ITCM or weights in DTCM (default: where the "
                   "board has them and the cycle model says it pays; docs/tcm.md)")
    p.add_argument("--samples", type=int, help="test inputs run on the firmware and compared "
                   "bit for bit with the TFLite Micro reference (default 20), plus one seeded "
                   "random input per four (at most 8)")
    p.add_argument("--stack", dest="stack_bytes", type=str, metavar="SIZE",
                   help="stack reserved in RAM, e.g. 8K (default 8K)")
    p.add_argument("--trust-model", action="store_true", default=None,
                   help="allow Lambda layers / custom objects (runs code from the model file)")
    p.add_argument("--flash-budget", type=str, metavar="SIZE", help="fail if flash used exceeds it")
    p.add_argument("--ram-budget", type=str, metavar="SIZE", help="fail if RAM used exceeds it")
    p.add_argument("--latency-budget", type=float, metavar="MS",
                   help="fail if the estimated latency at the board clock exceeds it")
    p.add_argument("--min-accuracy", type=float, metavar="A",
                   help="fail if firmware accuracy is below it (a fraction: 0.9 for 90%%)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="D",
                   help="fail if firmware accuracy is more than D below the model as given "
                   "(a fraction: 0.01 for one point)")
    p.add_argument("--random-samples", type=int, metavar="N",
                   help="seeded random full-range inputs checked on the host build besides the "
                   "test data (default 2000, fewer for models above 0.5 M MACs; 0: none)")
    p.add_argument("--force", action="store_true", default=None, help=FORCE_HELP)
    p.add_argument("--baseline", type=Path, metavar="OLD/report.json",
                   help="an earlier build's report.json (or its folder): report.md and "
                   "report.html show the change against it")
    p.add_argument("--json", action="store_true", help="print report.json instead of the summary")


def _build_options(args: argparse.Namespace) -> BuildOptions:
    from tinyprune.config import parse_ratio, parse_size, resolve

    config = args.config
    if config is None and Path("tinyprune.toml").is_file():
        config = Path("tinyprune.toml")
    if args.prune_channels is not None:
        args.prune_channels = parse_ratio(args.prune_channels, "--prune-channels")
    names = ("board", "model", "data", "out", "prune_channels", "prune_criterion",
             "prune_round_to", "finetune_epochs", "emulator", "cycle_model", "samples",
             "trust_model", "random_samples", "force", "tcm")
    cli = {k: getattr(args, k) for k in names}
    if args.stack_bytes is not None:
        cli["stack_bytes"] = parse_size(args.stack_bytes, "--stack")
    cli["budgets"] = {
        "flash": parse_size(args.flash_budget, "--flash-budget") if args.flash_budget else None,
        "ram": parse_size(args.ram_budget, "--ram-budget") if args.ram_budget else None,
        "latency_ms": args.latency_budget, "min_accuracy": args.min_accuracy,
        "max_accuracy_drop": args.max_accuracy_drop}
    cli["sparsify"] = {"sparsity": args.sparsity, "block": args.block,
                       "criterion": args.sparsify_criterion, "schedule": args.sparsify_schedule,
                       "depthwise": args.sparsify_depthwise}
    return resolve(cli, config)


def cmd_build(args: argparse.Namespace) -> int:
    from tinyprune import api
    from tinyprune.report import baseline_lines, failure_reason, read_report, summary_lines

    opts = _build_options(args)
    # read before the build: a baseline in the build's own --out is deleted when it starts
    baseline = read_report(args.baseline) if args.baseline else None
    result = api.build(opts, progress=lambda msg: print(msg, file=sys.stderr, flush=True),
                       baseline=baseline)
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print("\n".join(summary_lines(result.report)))
        if baseline is not None:
            print("\n".join(baseline_lines(result.report, baseline)))
        print(f"report: {result.out_dir / 'report.json'} (and report.md, report.html, "
              "junit.xml beside it)")
    if not result.ok:
        print(f"tinyprune: check failed: {failure_reason(result.report)}", file=sys.stderr)
        return 1
    return 0


def cmd_boards(args: argparse.Namespace) -> int:
    from tinyprune.firmware.boards import list_boards
    from tinyprune.firmware.paths import boards_dir

    shipped = boards_dir()
    print(f"{'board':<16} {'MCU':<15} {'core':<14} {'clock':>9} {'flash':>9} {'RAM':>9} "
          f"{'DSP':<4} emulators")
    for b in list_boards():
        where = "" if b.path.parent == shipped else f"  ({b.path})"
        print(f"{b.name:<16} {b.mcu:<15} {b.core:<14} {b.clock_hz / 1e6:>5.0f} MHz "
              f"{b.flash.length // 1024:>5} KiB {b.ram.length // 1024:>5} KiB "
              f"{'yes' if b.dsp else 'no':<4} {', '.join(b.emulator.backends)}{where}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tinyprune.emulator import run_elf
    from tinyprune.emulator.faults import FirmwareStopped
    from tinyprune.emulator.limits import DEFAULT_TIMEOUT_S
    from tinyprune.errors import EmulationError
    from tinyprune.firmware.boards import load_board

    board = load_board(args.board)
    if not args.elf.is_file():
        raise UsageError(f"{args.elf}: ELF file not found")
    timeout = DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    try:
        result = run_elf(board, args.elf, backend=args.emulator,
                         regions=tuple(args.region or ()),
                         max_instructions=args.max_instructions, timeout_s=timeout,
                         cycle_model=args.cycle_model)
    except FirmwareStopped as exc:  # all the firmware printed, then why it stopped
        sys.stdout.write(exc.uart if exc.uart.endswith("\n") or not exc.uart else exc.uart + "\n")
        sys.stdout.flush()
        raise EmulationError(f"{exc.summary} (its UART output is above)") from exc
    sys.stdout.write(result.uart)
    if result.uart and not result.uart.endswith("\n"):
        sys.stdout.write("\n")
    from tinyprune.report.figures import estimate_label

    est = estimate_label({"cycles_are_estimate": result.cycles_are_estimate,
                          "cycle_model": result.cycle_model,
                          "memory_model": dict(result.memory_model)})
    print(f"stopped: {result.stop_reason}, exit status {result.exit_status}")
    print(f"instructions: {result.instructions:,}  cycles{est}: {result.cycles:,}  "
          f"= {result.cycles / board.clock_hz * 1e3:.3f} ms at {board.clock_hz / 1e6:.0f} MHz")
    for name, r in result.regions.items():
        print(f"region {name}: {r.calls} calls, {r.instructions:,} instructions, "
              f"{r.cycles:,} cycles{est}")
    return 0 if not result.exit_status else 1


def _existing(path: Path) -> Path:
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    return path


def cmd_quantize(args: argparse.Namespace) -> int:
    from tinyprune.models.load import load_model
    from tinyprune.outputs import output_file
    from tinyprune.pipeline import load_data
    from tinyprune.quantize import quantize

    model = _existing(args.model)
    out = args.out or model.with_name(model.stem + "_int8.tflite")
    with output_file(out, force=args.force, inputs=[model]) as tmp:
        loaded = load_model(model, trust_model=args.trust_model)
        data = load_data(args.data, loaded) if args.data else None
        tflite = loaded.tflite_bytes if loaded.model is None else quantize(loaded, data)
        assert tflite is not None
        tmp.write_bytes(tflite)
    print(f"wrote {out} ({len(tflite):,} bytes)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from tinyprune.models.load import load_model, save_model
    from tinyprune.outputs import output_file
    from tinyprune.pipeline import load_data
    from tinyprune.progress import bars_enabled
    from tinyprune.prune import FineTune, PruneConfig, prune

    model = _existing(args.model)
    suffix = model.suffix or ".keras"
    out = args.out or model.with_name(f"{model.stem}_pruned{suffix}")
    with output_file(out, force=args.force, inputs=[model]) as tmp:
        loaded = load_model(model, trust_model=args.trust_model)
        if loaded.model is None:
            raise UsageError(f"{model}: an int8 .tflite cannot be pruned; give the Keras model")
        data = load_data(args.data, loaded) if args.data else None
        finetune = FineTune(epochs=args.finetune_epochs, lr_schedule="cosine") \
            if args.finetune_epochs else None
        result = prune(loaded.model, PruneConfig(
            ratio=args.channels, criterion=args.criterion, scope=args.scope,
            round_to=args.round_to, min_channels=args.min_channels, compensate=args.compensate,
            finetune=finetune, target_params=args.target_params, target_macs=args.target_macs,
            progress=bars_enabled()), data=data)
        save_model(result.model, tmp)
    _print_prune(result)
    print(f"wrote {out}")
    return 0


def _print_prune(result: Any) -> None:
    print(f"{'layer':<24} {'channels':>13} {'params':>17} {'MACs':>23}")
    for x in result.layers:
        print(f"{x.name[:24]:<24} {x.channels_before:>6} -> {x.channels_after:<4} "
              f"{x.params_before:>7,} -> {x.params_after:<7,} "
              f"{x.macs_before:>10,} -> {x.macs_after:<10,}")
    for b in result.barriers:
        print(f"barrier: {b.__dict__}")
    print(f"ratio {result.ratio:.3f}: params {result.params_before:,} -> {result.params_after:,}, "
          f"MACs {result.macs_before:,} -> {result.macs_after:,}")
    acc = result.accuracy.__dict__
    if any(v is not None for v in acc.values()):
        print("accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items() if v is not None))


def cmd_sparsify(args: argparse.Namespace) -> int:
    from tinyprune.models.load import load_model, save_model
    from tinyprune.outputs import output_file
    from tinyprune.pipeline import DEFAULT_FINETUNE_EPOCHS, load_data
    from tinyprune.progress import bars_enabled
    from tinyprune.sparsify import SparsifyConfig, sparsify

    model = _existing(args.model)
    if args.data is not None:
        _existing(args.data)
    values = {"sparsity": args.sparsity, "block": args.block, "criterion": args.criterion,
              "schedule": args.schedule, "allocation": args.allocation,
              "max_layer_sparsity": args.max_layer_sparsity, "epochs": args.epochs}
    defaulted = args.schedule is None
    if defaulted:  # the build's rule: gradual when it fine-tunes
        args.schedule = "gradual" if args.data is not None and args.epochs != 0 else "oneshot"
        values["schedule"] = args.schedule
    training = args.schedule in ("gradual", "imp")
    if training and args.data is None:
        raise UsageError(f"--schedule {args.schedule} fine-tunes while it prunes: pass --data "
                         "with x_train and y_train (or --schedule oneshot)")
    if args.criterion == "snip" and args.data is None:
        raise UsageError("--criterion snip ranks blocks by gradients on data: pass --data, or "
                         "use l1, lookahead or synflow (data-free)")
    if args.epochs and args.data is None:
        raise UsageError(f"--epochs {args.epochs}: fine-tuning needs training data; pass --data "
                         "with x_train and y_train")
    if training and args.epochs is None:
        values["epochs"] = DEFAULT_FINETUNE_EPOCHS
    config = SparsifyConfig.from_options(values, progress=bars_enabled())
    suffix = model.suffix or ".keras"
    out = args.out or model.with_name(f"{model.stem}_sparse{suffix}")
    with output_file(out, force=args.force, inputs=[model]) as tmp:
        loaded = load_model(model, trust_model=args.trust_model)
        if loaded.model is None:
            raise UsageError(f"{model}: an int8 .tflite cannot be sparsified; give the Keras "
                             "model (tinyprune build finds the zero blocks of a sparse .tflite)")
        data = load_data(args.data, loaded) if args.data else None
        if defaulted and training and (data is None or data.x_train is None):
            training, values["schedule"], values["epochs"] = False, "oneshot", None
            config = SparsifyConfig.from_options(values, progress=bars_enabled())
        if training and (data is None or data.x_train is None):
            raise UsageError(f"{args.data}: --schedule {args.schedule} needs x_train, y_train")
        result = sparsify(loaded.model, config, data=data)
        save_model(result.model, tmp)
    _print_sparsify(result)
    print(f"wrote {out}")
    return 0


def _print_sparsify(result: Any) -> None:
    print(f"{'layer':<24} {'class':<16} {'weights':>9} {'removed':>9} {'sparsity':>8}")
    for x in result.layers:
        print(f"{x.name[:24]:<24} {x.class_name[:16]:<16} {x.weights:>9,} {x.removed:>9,} "
              f"{x.sparsity:>8.1%}")
    for x in result.skipped:
        print(f"dense: {x.layer} ({x.reason})")
    print(f"{result.pattern} {result.schedule} {result.criterion}: {result.removed:,} of "
          f"{result.weights:,} weights removed ({result.sparsity:.1%})")
    acc = result.accuracy.__dict__
    if any(v is not None for v in acc.values()):
        print("accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items() if v is not None))


# What codegen writes at the top of its folder (checked before any work).
CODEGEN_OUTPUTS = ("model.c", "model.h", "weights.c", "weights.h", "host_main.c", "runtime")


def cmd_codegen(args: argparse.Namespace) -> int:
    from tinyprune.codegen import copy_runtime, generate
    from tinyprune.firmware.boards import load_board
    from tinyprune.ir import read_tflite
    from tinyprune.outputs import output_folder
    from tinyprune.plan import plan

    board = load_board(args.board)
    model = _existing(args.model)
    out = args.out or Path("build") / f"{model.stem}-{board.name}-codegen"
    with output_folder(out, force=args.force, names=CODEGEN_OUTPUTS) as work:
        planned = plan(read_tflite(model), dsp=board.dsp)
        project = generate(planned, work, model_name=model.stem, source_name=model.name)
        copy_runtime(project, work)
    print(f"wrote {out}: {len(planned.code_ops)} layers, arena "
          f"{planned.memory.arena_bytes:,} bytes, weights {planned.weight_bytes:,} bytes")
    dsp = " -DTP_USE_DSP=1" if board.dsp else ""
    print(f"compile with your firmware: model.c weights.c runtime/*.c, -I{out} -I{out}/runtime"
          f"{dsp}; call tp_model_invoke() (model.h) and provide tp_timer_now(); host_main.c is "
          "a host test harness")
    return 0


def cmd_flash(args: argparse.Namespace) -> int:
    from tinyprune.firmware.boards import load_board
    from tinyprune.hardware.flash import build_board, find_firmware, flash_elf

    if args.elf is not None and args.out is not None:
        raise UsageError("--elf and --out: give one (an ELF, or the build folder holding "
                         "firmware/firmware.elf)")
    name = args.board or (build_board(args.out) if args.out is not None else None)
    if name is None:
        raise UsageError("--board: required (the board to flash; list: tinyprune boards)")
    board = load_board(name)
    elf = find_firmware(board, args.elf, args.out)
    done = flash_elf(board, elf, probe=args.probe, on_start=lambda probe: print(
        f"flashing {elf} to {board.name} through {probe.description} ...", file=sys.stderr,
        flush=True))
    print(f"flashed {elf} ({done.bytes_programmed:,} bytes) to {board.name} (pyocd target "
          f"{done.target}) through {done.probe.description} {done.probe.unique_id}; the board "
          "was reset and runs it")
    build = f" --out {args.out}" if args.out is not None else ""
    print(f"read its results: tinyprune monitor --port PORT --board {board.name}{build} --reset")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    from tinyprune.hardware.report import results_lines
    from tinyprune.hardware.run import MonitorRequest, monitor
    from tinyprune.report import failure_reason, summary_lines

    req = MonitorRequest(port=args.port, board=args.board, baud=args.baud, build=args.out,
                         timeout=args.timeout, reset=args.reset, probe=args.probe)
    def opened() -> None:
        print(f"reading {args.port} until '@tp end' (at most {args.timeout:g} s)"
              + ("" if args.reset else "; reset the board if nothing comes"),
              file=sys.stderr, flush=True)

    echo = (lambda line: print(line, file=sys.stderr, flush=True)) if args.echo else None
    outcome = monitor(req, on_line=echo, on_open=opened)
    if outcome.report is None:
        clock = outcome.board.clock_hz if outcome.board is not None else None
        if args.json:
            print(json.dumps(_results_json(outcome.capture), indent=2))
        else:
            print("\n".join(results_lines(outcome.capture.results, clock, args.port)))
        return 0
    if args.json:
        print(json.dumps(outcome.report, indent=2))
    else:
        print("\n".join(summary_lines(outcome.report)))
        print(f"report: {outcome.report_dir}/report.json (and report.md, report.html, junit.xml, "
              "uart.log beside it)")
    if not outcome.report["ok"]:
        print(f"tinyprune: check failed: {failure_reason(outcome.report)}", file=sys.stderr)
        return 1
    return 0


def _results_json(capture: Any) -> dict[str, Any]:
    r = capture.results
    return {"port": capture.port, "board": r.board, "model": r.model, "layers": r.layers,
            "status": r.status, "stack_peak_bytes": r.stack_peak, "stack_bytes": r.stack_size,
            "cycles_per_inference": r.total_cycles // max(len(r.samples), 1),
            "layer_cycles": r.mean_layer_cycles,
            "samples": [{"index": s.index, "cycles": s.cycles, "output_hex": s.output.hex(),
                         "layer_cycles": list(s.layer_cycles)} for s in r.samples]}


def _export_source(args: argparse.Namespace) -> tuple[Path, str, str]:
    """(the int8 .tflite, the board name, the model's file name) from --model/--board or --from."""
    if args.source is None:
        if args.model is None or args.board is None:
            raise UsageError("export: give --model M.tflite and --board B, or --from BUILD (a "
                             "build folder)")
        return _existing(args.model), args.board, args.model.name
    if args.model is not None:
        raise UsageError("--from and --model: give one (--from takes the build's "
                         "model_int8.tflite)")
    from tinyprune.report import read_report

    report = read_report(args.source)
    built_for = str(report["board"]["name"])
    if args.board is not None and args.board != built_for:
        raise UsageError(f"--board {args.board}: the build in {args.source} is for {built_for}")
    model = args.source / "model_int8.tflite"
    if not model.is_file():
        raise UsageError(f"--from {args.source}: no model_int8.tflite in it; pass --model")
    return model, built_for, str(report["model"].get("source") or model.name)


def cmd_export(args: argparse.Namespace) -> int:
    from tinyprune.export import default_name, export_library, format_outputs, library_name
    from tinyprune.firmware.boards import load_board
    from tinyprune.ir import read_tflite
    from tinyprune.outputs import output_folder

    model, board_name, source_name = _export_source(args)
    board = load_board(board_name)
    name = library_name(args.name) if args.name else default_name(Path(source_name).stem)
    out = args.out or Path("build") / f"{Path(source_name).stem}-{board.name}-{args.format}"
    with output_folder(out, force=args.force, names=format_outputs(args.format, name)) as work:
        done = export_library(read_tflite(model), board, work, fmt=args.format, name=name,
                              source_name=source_name)
    print(f"wrote {out}: {done.format} library {done.name} ({len(done.files)} files; kernels "
          f"{', '.join(k.removesuffix('.c') for k in done.kernels)})")
    print(f"how to call it and add it to your firmware: {out / 'README.md'}")
    return 0


def _variant_labels(paths: Sequence[Path]) -> list[str]:
    """Each report's name in a comparison: its build folder's name (the path when two clash)."""
    names = [(p.parent.name if p.name == "report.json" else p.stem) if not p.is_dir()
             else p.resolve().name for p in paths]
    return [n if names.count(n) == 1 else str(p) for n, p in zip(names, paths, strict=True)]


def cmd_report(args: argparse.Namespace) -> int:
    from contextlib import ExitStack

    from tinyprune.outputs import output_file
    from tinyprune.report import read_report, render, summary_lines
    from tinyprune.report.checks import report_checks

    reports = [read_report(p) for p in args.reports]
    baseline = read_report(args.baseline) if args.baseline else None
    variants = list(zip(_variant_labels(args.reports), reports, strict=True))
    targets = {name: path for name, path in (("report.md", args.md), ("junit.xml", args.junit),
                                             ("report.html", args.html)) if path is not None}
    to_stdout = [name for name, path in targets.items() if str(path) == "-"]
    if len(to_stdout) > 1:
        raise UsageError(f"only one rendering can go to stdout ('-'), received "
                         f"{', '.join(to_stdout)}")
    try:
        texts = {name: render(name, reports[0], baseline, variants) for name in targets}
        summary = summary_lines(reports[0])
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UsageError(f"{args.reports[0]}: not a tinyprune report "
                         f"({type(exc).__name__}: {exc})") from None
    inputs = [*args.reports, *([args.baseline] if args.baseline else [])]
    with ExitStack() as stack:  # every file is checked before any is written
        tmps = {name: stack.enter_context(output_file(path, force=args.force, inputs=inputs))
                for name, path in targets.items() if str(path) != "-"}
        for name, tmp in tmps.items():
            tmp.write_text(texts[name], encoding="utf-8")
    if to_stdout:
        sys.stdout.write(texts[to_stdout[0]])
    elif args.json:
        print(json.dumps(reports[0], indent=2))
    else:
        print("\n".join(summary))
        for name, path in targets.items():
            print(f"wrote {path} ({name})")
    failed = [(label, r) for label, r in variants if not r.get("ok")]
    for label, r in failed:
        why = "; ".join(f"{c.title}: {c.message}" for c in report_checks(r) if c.failed)
        print(f"tinyprune: check failed: {label}: {why or 'the report says ok: false'}",
              file=sys.stderr)
    return 1 if failed else 0


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True, help="the board the ELF was built for (its memory "
                   "map is emulated exactly; list: tinyprune boards)")
    p.add_argument("--elf", type=Path, required=True, help="the firmware ELF to run")
    p.add_argument("--emulator", default="unicorn", choices=("unicorn", "qemu"),
                   help="backend (default unicorn: cycle estimates; qemu: instruction counts)")
    p.add_argument("--cycle-model", choices=CYCLE_MODELS,
                   help="timing model of the cycle estimate (default: the board's core)")
    p.add_argument("--region", action="append", metavar="FUNCTION",
                   help="count instructions and cycles per call of this function (repeatable)")
    p.add_argument("--max-instructions", type=int, metavar="N",
                   help="stop and fail past N instructions (default: derived from the harness's "
                   "result lines, ten times the first inference per sample; 2e9 for a program "
                   "without them; see docs/emulator.md)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop and fail past this wall-clock time (default 1800 s)")


def _add_quantize_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True,
                   help="Keras model (.keras, .h5, SavedModel folder)")
    p.add_argument("--data", type=Path, help="representative data (.npz) to calibrate the int8 "
                   "ranges on; seeded random inputs if absent")
    p.add_argument("--out", type=Path, help="output .tflite (default <model>_int8.tflite next "
                   "to the model); its folder must exist")
    p.add_argument("--trust-model", action="store_true",
                   help="allow Lambda layers / custom objects (runs code from the model file)")
    p.add_argument("--force", action="store_true", help=FORCE_FILE_HELP)


def _add_prune_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True,
                   help="Keras model (.keras, .h5, SavedModel folder)")
    p.add_argument("--data", type=Path, help=".npz for data-driven criteria, compensation, "
                   "fine-tuning and accuracy")
    p.add_argument("--out", type=Path, help="pruned model file (default <model>_pruned.keras "
                   "next to the model); its folder must exist")
    p.add_argument("--channels", type=float, default=0.5, help="fraction removed (default 0.5)")
    p.add_argument("--criterion", default="l1", choices=CRITERIA,
                   help="channel importance (default l1; taylor, fisher, snip need --data)")
    p.add_argument("--scope", choices=("local", "global"), default="local",
                   help="rank channels within each layer (local, default) or across the model")
    p.add_argument("--round-to", type=int, default=4, metavar="N",
                   help="channel counts rounded to a multiple of N (default 4, for SIMD kernels)")
    p.add_argument("--min-channels", type=int, default=4, metavar="N",
                   help="never leave a layer fewer than N channels (default 4)")
    p.add_argument("--compensate", action="store_true",
                   help="refit the next layers by least squares on calibration activations")
    p.add_argument("--finetune-epochs", type=int, default=0, metavar="N",
                   help="fine-tune N epochs after pruning (needs x_train, y_train; default 0)")
    p.add_argument("--target-params", type=int, help="search the ratio reaching this many params")
    p.add_argument("--target-macs", type=int, help="search the ratio reaching this many MACs")
    p.add_argument("--trust-model", action="store_true",
                   help="allow Lambda layers / custom objects (runs code from the model file)")
    p.add_argument("--force", action="store_true", help=FORCE_FILE_HELP)


def _add_sparsify_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, required=True,
                   help="Keras model (.keras, .h5, SavedModel folder)")
    p.add_argument("--data", type=Path, help=".npz for gradient criteria, fine-tuning and "
                   "accuracy")
    p.add_argument("--out", type=Path, help="sparse model file (default <model>_sparse.keras "
                   "next to the model); its folder must exist")
    p.add_argument("--sparsity", type=float, metavar="S",
                   help="fraction of weights removed (default 0.75; N:M: 1 - N/M)")
    p.add_argument("--block", metavar="PATTERN",
                   help="1x4 (default), 2x4, 4x4, 2:4, 1:4, 1x1 (unstructured)")
    p.add_argument("--criterion", choices=SPARSIFY_CRITERIA,
                   help="block importance (default l1; snip, synflow need --data)")
    p.add_argument("--schedule", choices=SPARSIFY_SCHEDULES,
                   help="oneshot, gradual or imp (both need --data with x_train); default "
                   "gradual with --data (20 epochs), else oneshot")
    p.add_argument("--allocation", choices=("uniform", "erk", "global"),
                   help="per-layer sparsity from the target (default uniform)")
    p.add_argument("--max-layer-sparsity", type=float, metavar="S",
                   help="no layer sparser than this (default 0.95)")
    p.add_argument("--epochs", type=int, metavar="N", help="fine-tune N epochs (default 0 for "
                   "oneshot, 20 for gradual and imp; 0 with --data: one-shot, no training)")
    p.add_argument("--trust-model", action="store_true",
                   help="allow Lambda layers / custom objects (runs code from the model file)")
    p.add_argument("--force", action="store_true", help=FORCE_FILE_HELP)


def _add_codegen_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", required=True,
                   help="target board: picks the kernels' DSP path (list: tinyprune boards)")
    p.add_argument("--model", type=Path, required=True, help="an int8 .tflite")
    p.add_argument("--out", type=Path, help="output folder (default "
                   "build/<stem>-<board>-codegen/); nothing is written outside it")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def _add_report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("reports", type=Path, nargs="+", metavar="REPORT",
                   help="report.json or the build folder holding it; with several, the first "
                   "is rendered in full and all are compared as variants (accuracy against size)")
    p.add_argument("--baseline", type=Path, metavar="OLD/report.json",
                   help="an earlier report.json (or its folder) to show the change against")
    p.add_argument("--md", type=Path, metavar="FILE", help="write the Markdown (a pull-request "
                   "comment) to FILE ('-': stdout)")
    p.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML to FILE")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="write the self-contained HTML report with plots to FILE")
    p.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    p.add_argument("--force", action="store_true", help="replace the output files if they exist")


def _add_flash_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--board", help="the board to flash: its [flash_tool] target names pyocd's "
                   "target (default with --out: the build's board; list: tinyprune boards)")
    p.add_argument("--elf", type=Path, help="the firmware ELF to flash")
    p.add_argument("--out", type=Path, metavar="DIR", help="a build folder: flashes "
                   "DIR/firmware/firmware.elf (default: the one build for the board under build/)")
    p.add_argument("--probe", metavar="UID", help="the debug probe's unique id (or part of it) "
                   "when several are connected (pyocd list shows them)")


def _add_monitor_options(p: argparse.ArgumentParser) -> None:
    from tinyprune.hardware.monitor import DEFAULT_TIMEOUT_S

    p.add_argument("--port", required=True, help="the board's serial port, e.g. /dev/ttyACM0 "
                   "or COM3 (python -m serial.tools.list_ports lists them)")
    p.add_argument("--baud", type=int, metavar="N", help="baud rate (default: the board file's "
                   "uart.baud, 115200)")
    p.add_argument("--board", help="the board (for its baud rate, clock and --reset; default "
                   "with --out: the build's board)")
    p.add_argument("--out", type=Path, metavar="DIR", help="the build folder of the firmware the "
                   "board runs: its outputs are compared byte for byte with the build's reference "
                   "and the board's report is written to DIR/board/")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"fail when '@tp end' has not arrived S seconds after the port opened "
                   f"(default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--reset", action="store_true", help="reset the board through its debug "
                   "probe (pyocd) once the port is open, so the run is read from its start")
    p.add_argument("--probe", metavar="UID", help="with --reset: the debug probe's unique id")
    p.add_argument("--echo", action="store_true", help="print every line received (stderr)")
    p.add_argument("--json", action="store_true", help="print the results (or the board's "
                   "report.json) as JSON")


def _add_export_options(p: argparse.ArgumentParser) -> None:
    from tinyprune.export import FORMATS

    p.add_argument("--format", required=True, choices=tuple(FORMATS),
                   help="cmake: a CMakeLists.txt with a library target; make: a Makefile "
                   "fragment; arduino: an Arduino library with an example sketch")
    p.add_argument("--model", type=Path, help="an int8 .tflite (with --board)")
    p.add_argument("--board", help="the board the library is planned for: its core picks the "
                   "kernels (list: tinyprune boards; default with --from: the build's board)")
    p.add_argument("--from", dest="source", type=Path, metavar="BUILD",
                   help="a build folder: exports its model_int8.tflite for its board")
    p.add_argument("--name", help="library name, a lowercase C identifier (default: from the "
                   "model's file name); the header is <name>.h, the call <name>_invoke()")
    p.add_argument("--out", type=Path, help="output folder (default "
                   "build/<stem>-<board>-<format>/); nothing is written outside it")
    p.add_argument("--force", action="store_true", help=FORCE_HELP)


def _no_options(p: argparse.ArgumentParser) -> None:
    pass


Command = tuple[str, str, Callable[[argparse.ArgumentParser], None],
                Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {
    "build": ("the whole pipeline: model -> verified firmware + report.json",
              "Prune (optionally), quantize to int8, generate C, build the firmware for the "
              "board, run it on the emulator and check it bit for bit against the TFLite Micro "
              "reference; writes report.json and the firmware under --out.",
              _add_build_options, cmd_build),
    "check": ("same as build, for CI: exits 1 when a budget in tinyprune.toml is broken",
              "The build, named for CI: exit 1 when a budget, the accuracy or the "
              "bit-exactness check fails (budgets from tinyprune.toml or the options).",
              _add_build_options, cmd_build),
    "run": ("run any ELF built for a board on the emulator",
            "Run an ELF on the emulated board: exit status, UART output, exact instructions "
            "and estimated cycles, per function with --region.", _add_run_options, cmd_run),
    "boards": ("list the supported boards (core, clock, flash, RAM, DSP)",
               "List the boards: the shipped boards/*.toml plus those in --boards-dir or "
               f"{BOARDS_DIR_ENV}: MCU, core, clock, flash, RAM, DSP, emulators, and the file "
               "of each board found outside the shipped folder.",
               _no_options, cmd_boards),
    "quantize": ("Keras model -> full-integer int8 .tflite",
                 "Convert a Keras model to a full-integer int8 .tflite (per-channel weights), "
                 "calibrated on --data.", _add_quantize_options, cmd_quantize),
    "prune": ("structural pruning: remove conv/dense channels, save the smaller Keras model",
              "Remove whole channels (filters) from a Keras model, coupled channels together "
              "(residuals, depthwise, concat), and save the smaller model in the same Keras "
              "flavor.", _add_prune_options, cmd_prune),
    "sparsify": ("fine-grained sparsity: zero weights in blocks / N:M, save the sparse model",
                 "Zero Dense/Conv weights in blocks (1x4, 2x4, 4x4), N:M groups (2:4, 1:4) or "
                 "one by one (1x1), ranked by a criterion, on a schedule (oneshot, gradual, "
                 "imp), and save the model in the same Keras flavor; tinyprune build then "
                 "picks the block-sparse kernels.", _add_sparsify_options, cmd_sparsify),
    "codegen": ("int8 .tflite -> C project (model.c, weights.c)",
                "Generate the C of an int8 .tflite for a board: model, weights and the kernels "
                "it uses, a project that compiles on its own.", _add_codegen_options,
                cmd_codegen),
    "flash": ("put a build's firmware on a real board through its debug probe (pyocd)",
              "Program a firmware ELF (--elf, or the build in --out) into the board's flash "
              "through its debug probe with pyocd, then reset it so the firmware runs and "
              "prints its results on the board's serial port (read them with tinyprune "
              "monitor).", _add_flash_options, cmd_flash),
    "monitor": ("read a real board's results from its serial port into a report",
                "Read the firmware's result lines from the board's serial port (pyserial) until "
                "'@tp end': cycles (the board's DWT) at its clock, per layer, the stack peak and "
                "the outputs. With --out BUILD the outputs are compared byte for byte with the "
                "build's TFLite Micro reference and the board's report (report.json, .md, .html, "
                "junit.xml) is written to BUILD/board/; exit 1 when they differ or a budget "
                "breaks.", _add_monitor_options, cmd_monitor),
    "export": ("int8 model -> a C library for your firmware (CMake, Makefile or Arduino)",
               "Write the model as a self-contained library: the generated model, only the "
               "kernels it uses, a header with the API, a README with the three lines to call "
               "it, and the build glue of --format (cmake, make or arduino).",
               _add_export_options, cmd_export),
    "report": ("print or re-render an existing report.json (Markdown, JUnit, HTML)",
               "Print the summary of a build's report.json, or render it again as Markdown "
               "(--md), JUnit XML (--junit) or HTML with plots (--html), optionally against a "
               "--baseline report or with other builds as variants; exit 1 when a build failed.",
               _add_report_options, cmd_report),
}


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinyprune", description="Prune a Keras model, convert it to int8, "
                     "generate C, build firmware for a Cortex-M board and prove it on an emulator.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinyprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (help_text, description, add_options, fn) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description, epilog=EPILOG)
        add_options(p)
        if name == "boards" or any("--board" in a.option_strings for a in p._actions):
            p.add_argument("--boards-dir", type=Path, metavar="DIR",
                           help="also look for <board>.toml files in DIR (before the shipped "
                           f"boards; the {BOARDS_DIR_ENV} environment variable does the same)")
        p.set_defaults(func=fn)
    return parser


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds the stack like Ctrl-C, so the output is cleaned up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


@contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` while the command runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    saved = {s: signal.signal(s, _terminate) for s in signals}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def main(argv: Sequence[str] | None = None) -> int:
    quiet_third_party()  # before anything imports TensorFlow or Keras
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    try:
        with _signals_unwind():
            return _dispatch(argv, debug)
    except KeyboardInterrupt:
        print("tinyprune: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"tinyprune: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum


def _dispatch(argv: Sequence[str] | None, debug: bool) -> int:
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if getattr(args, "boards_dir", None) is not None:
            from tinyprune.firmware.boards import add_boards_dir

            add_boards_dir(args.boards_dir)
        return int(args.func(args))
    except TinypruneError as exc:
        if debug:
            raise
        print(f"tinyprune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        print(f"tinyprune: internal error: {type(exc).__name__}: {exc} (this is a bug in "
              "tinyprune; rerun with --debug for the traceback and report it)", file=sys.stderr)
        return 1


def entry() -> None:
    """The ``tinyprune`` console script and ``python -m tinyprune.cli``: :func:`main`, then exit
    with its code. After Ctrl-C (130) the output was already cleaned up by the unwinding; the
    process then leaves at once (streams flushed, ``os._exit``) instead of finalizing the
    interpreter. Seen twice under load (once in make test): a build interrupted during the host
    check printed its one line and then died by SIGINT (exit status -2, which a shell also shows
    as 130); the cause was not found, this only keeps the interpreter's shutdown out of it."""
    code = main()
    if code == 130:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    entry()
