"""Command line: a thin layer over :mod:`tinyprune.api`. Exit codes follow SPEC.md.

0 success; 1 a budget, accuracy or bit-exactness check failed; 2 bad input or usage; 3 a required
external tool is missing. User errors print one line, never a traceback (``--debug`` shows one).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from tinyprune import __version__
from tinyprune.errors import TinypruneError, UsageError

log = logging.getLogger("tinyprune")

EPILOG = """exit codes: 0 ok, 1 a budget / accuracy / bit-exactness check failed,
2 bad input or usage, 3 a required tool is missing.
Quick start: tinyprune build --board nucleo_f746 --model model.keras --data data.npz"""


CRITERIA = ("l1", "l2", "bn_scale", "taylor", "fisher", "obd", "snip", "synflow", "random")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see '{self.prog} --help')")


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
    p.add_argument("--finetune-epochs", type=int, metavar="N",
                   help="fine-tune N epochs after pruning (default 20 when --data has x_train)")
    p.add_argument("--emulator", choices=("unicorn", "qemu", "renode", "none"),
                   help="run the firmware on this emulator (default unicorn; none = build only)")
    p.add_argument("--samples", type=int, help="samples run on the firmware and compared "
                   "bit for bit with the TFLite Micro reference (default 20)")
    p.add_argument("--stack", dest="stack_bytes", type=str, metavar="SIZE",
                   help="stack reserved in RAM, e.g. 8K (default 8K)")
    p.add_argument("--trust-model", action="store_true", default=None,
                   help="allow Lambda layers / custom objects (runs code from the model file)")
    p.add_argument("--flash-budget", type=str, metavar="SIZE", help="fail if flash used exceeds it")
    p.add_argument("--ram-budget", type=str, metavar="SIZE", help="fail if RAM used exceeds it")
    p.add_argument("--latency-budget", type=float, metavar="MS",
                   help="fail if the estimated latency at the board clock exceeds it")
    p.add_argument("--min-accuracy", type=float, metavar="A",
                   help="fail if firmware accuracy is below it (0..1)")
    p.add_argument("--json", action="store_true", help="print report.json instead of the summary")


def _build_options(args: argparse.Namespace):
    from tinyprune.config import parse_ratio, parse_size, resolve

    config = args.config
    if config is None and Path("tinyprune.toml").is_file():
        config = Path("tinyprune.toml")
    if args.prune_channels is not None:
        args.prune_channels = parse_ratio(args.prune_channels, "--prune-channels")
    names = ("board", "model", "data", "out", "prune_channels", "prune_criterion",
             "finetune_epochs", "emulator", "samples", "trust_model")
    cli = {k: getattr(args, k) for k in names}
    if args.stack_bytes is not None:
        cli["stack_bytes"] = parse_size(args.stack_bytes, "--stack")
    cli["budgets"] = {
        "flash": parse_size(args.flash_budget, "--flash-budget") if args.flash_budget else None,
        "ram": parse_size(args.ram_budget, "--ram-budget") if args.ram_budget else None,
        "latency_ms": args.latency_budget, "min_accuracy": args.min_accuracy}
    return resolve(cli, config)


def cmd_build(args: argparse.Namespace) -> int:
    from tinyprune import api
    from tinyprune.report import summary_lines

    opts = _build_options(args)
    result = api.build(opts, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps(result.report, indent=2))
    else:
        print("\n".join(summary_lines(result.report)))
        print(f"report: {result.out_dir / 'report.json'}")
    if not result.ok:
        why = _failure_reason(result.report)
        print(f"tinyprune: check failed: {why}", file=sys.stderr)
        return 1
    return 0


def _failure_reason(report: dict) -> str:
    from tinyprune.report import fmt_number

    broken = [f"{k} (limit {fmt_number(v['limit'])}, actual {fmt_number(v['actual'])})"
              for k, v in report["budgets"].items() if not v["ok"]]
    if broken:
        hint = ""
        model = report["model"]
        prunable = {"flash", "ram", "latency_ms"} & {
            k for k, v in report["budgets"].items() if not v["ok"]}
        if prunable and model.get("kind") != "tflite" and not model.get("pruning"):
            hint = "; add --prune-channels auto to prune the model until it meets them"
        return "budget broken: " + ", ".join(broken) + hint
    run = report["run"]
    if not run["bit_exact"] or not run["host"]["bit_exact"]:
        return ("firmware outputs differ from the TFLite Micro reference "
                f"({len(run['mismatches'])} mismatching samples; see report.json run.mismatches)")
    return "the DSP kernel path differs from the reference on the host (see report.json run.host)"


def cmd_boards(args: argparse.Namespace) -> int:
    from tinyprune.firmware.boards import list_boards

    for b in list_boards():
        print(f"{b.name:<16} {b.mcu:<14} {b.core:<14} {b.clock_hz / 1e6:>5.0f} MHz  "
              f"flash {b.flash.length // 1024:>5} KiB  RAM {b.ram.length // 1024:>5} KiB  "
              f"emulators: {', '.join(b.emulator.backends)}")
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
                         max_instructions=args.max_instructions, timeout_s=timeout)
    except FirmwareStopped as exc:  # all the firmware printed, then why it stopped
        sys.stdout.write(exc.uart if exc.uart.endswith("\n") or not exc.uart else exc.uart + "\n")
        sys.stdout.flush()
        raise EmulationError(f"{exc.summary} (its UART output is above)") from exc
    sys.stdout.write(result.uart)
    if result.uart and not result.uart.endswith("\n"):
        sys.stdout.write("\n")
    est = " (estimate)" if result.cycles_are_estimate else ""
    print(f"stopped: {result.stop_reason}, exit status {result.exit_status}")
    print(f"instructions: {result.instructions:,}  cycles{est}: {result.cycles:,}  "
          f"= {result.cycles / board.clock_hz * 1e3:.3f} ms at {board.clock_hz / 1e6:.0f} MHz")
    for name, r in result.regions.items():
        print(f"region {name}: {r.calls} calls, {r.instructions:,} instructions, "
              f"{r.cycles:,} cycles{est}")
    return 0 if not result.exit_status else 1


def cmd_quantize(args: argparse.Namespace) -> int:
    from tinyprune.data import load_dataset
    from tinyprune.models.load import load_model
    from tinyprune.quantize import quantize

    loaded = load_model(args.model, trust_model=args.trust_model)
    data = load_dataset(args.data, loaded.input_shape) if args.data else None
    out = args.out or args.model.with_name(args.model.stem + "_int8.tflite")
    tflite = loaded.tflite_bytes if loaded.model is None else quantize(loaded, data)
    assert tflite is not None
    out.write_bytes(tflite)
    print(f"wrote {out} ({len(tflite):,} bytes)")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from tinyprune.data import load_dataset
    from tinyprune.models.load import load_model, save_model
    from tinyprune.prune import FineTune, PruneConfig, prune

    loaded = load_model(args.model, trust_model=args.trust_model)
    if loaded.model is None:
        raise UsageError(f"{args.model}: an int8 .tflite cannot be pruned; give the Keras model")
    data = load_dataset(args.data, loaded.input_shape) if args.data else None
    finetune = FineTune(epochs=args.finetune_epochs, lr_schedule="cosine") \
        if args.finetune_epochs else None
    result = prune(loaded.model, PruneConfig(
        ratio=args.channels, criterion=args.criterion, scope=args.scope,
        round_to=args.round_to, min_channels=args.min_channels, compensate=args.compensate,
        finetune=finetune, target_params=args.target_params, target_macs=args.target_macs),
        data=data)
    suffix = args.model.suffix or ".keras"
    out = args.out or args.model.with_name(f"{args.model.stem}_pruned{suffix}")
    save_model(result.model, out)
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
    print(f"wrote {out}")
    return 0


def cmd_codegen(args: argparse.Namespace) -> int:
    from tinyprune.codegen import copy_runtime, generate
    from tinyprune.firmware.boards import load_board
    from tinyprune.ir import read_tflite
    from tinyprune.plan import plan

    board = load_board(args.board)
    planned = plan(read_tflite(args.model), dsp=board.dsp)
    out = args.out or Path("build") / f"{args.model.stem}-{board.name}" / "src"
    project = generate(planned, out, model_name=args.model.stem, source_name=args.model.name)
    copy_runtime(project, out)
    print(f"wrote {project.directory}: {len(planned.code_ops)} layers, arena "
          f"{planned.memory.arena_bytes:,} bytes, weights {planned.weight_bytes:,} bytes")
    dsp = " -DTP_USE_DSP=1" if board.dsp else ""
    print(f"compile with your firmware: model.c weights.c runtime/*.c, -I{out} -I{out}/runtime"
          f"{dsp}; call tp_model_invoke() (model.h) and provide tp_timer_now(); host_main.c is "
          "a host test harness")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tinyprune.report import summary_lines

    path = args.report if args.report.is_file() else args.report / "report.json"
    if not path.is_file():
        raise UsageError(f"{path}: no report.json; run 'tinyprune build' first")
    try:
        report = json.loads(path.read_text())
        print("\n".join(summary_lines(report)))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: not a tinyprune report ({type(exc).__name__}: {exc})") from None
    return 0 if report.get("ok") else 1


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinyprune", description="Prune a Keras model, convert it to int8, "
                     "generate C, build firmware for a Cortex-M board and prove it on an emulator.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"tinyprune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
        "build": ("the whole pipeline: model -> verified firmware + report.json", cmd_build),
        "check": ("same as build, for CI: exits 1 when a budget in tinyprune.toml is broken",
                  cmd_build),
    }
    for name, (help_text, fn) in commands.items():
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOG)
        _add_build_options(p)
        p.set_defaults(func=fn)
    p = sub.add_parser("run", help="run any ELF built for a board on the emulator",
                       description="Run an ELF on the emulated board: exit status, UART output, "
                       "exact instructions and estimated cycles, per function with --region.")
    p.add_argument("--board", required=True)
    p.add_argument("--elf", type=Path, required=True)
    p.add_argument("--emulator", default="unicorn", choices=("unicorn", "qemu"))
    p.add_argument("--region", action="append", metavar="FUNCTION",
                   help="count instructions and cycles per call of this function (repeatable)")
    p.add_argument("--max-instructions", type=int, metavar="N",
                   help="stop the run past N instructions (default: derived from the harness's "
                   "result lines, ten times the first inference per sample; see docs/emulator.md)")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="stop the run past this wall-clock time (default 1800 s)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("boards", help="list the supported boards")
    p.set_defaults(func=cmd_boards)
    p = sub.add_parser("quantize", help="Keras model -> full-integer int8 .tflite")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, help="representative data (.npz); random if absent")
    p.add_argument("--out", type=Path, help="output .tflite (default <model>_int8.tflite)")
    p.add_argument("--trust-model", action="store_true")
    p.set_defaults(func=cmd_quantize)
    p = sub.add_parser("prune", help="structural pruning: remove conv/dense channels, save the "
                       "smaller Keras model", description="Remove whole channels (filters) from a "
                       "Keras model, coupled channels together (residuals, depthwise, concat), "
                       "and save the smaller model in the same Keras flavor.")
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--data", type=Path, help=".npz for data-driven criteria, compensation, "
                   "fine-tuning and accuracy")
    p.add_argument("--out", type=Path, help="pruned model file (default <model>_pruned.keras)")
    p.add_argument("--channels", type=float, default=0.5, help="fraction removed (default 0.5)")
    p.add_argument("--criterion", default="l1", choices=CRITERIA,
                   help="channel importance (default l1; taylor, fisher, snip need --data)")
    p.add_argument("--scope", choices=("local", "global"), default="local")
    p.add_argument("--round-to", type=int, default=4, help="channel counts rounded to a multiple")
    p.add_argument("--min-channels", type=int, default=4)
    p.add_argument("--compensate", action="store_true",
                   help="refit the next layers by least squares on calibration activations")
    p.add_argument("--finetune-epochs", type=int, default=0)
    p.add_argument("--target-params", type=int, help="search the ratio reaching this many params")
    p.add_argument("--target-macs", type=int, help="search the ratio reaching this many MACs")
    p.add_argument("--trust-model", action="store_true")
    p.set_defaults(func=cmd_prune)
    p = sub.add_parser("codegen", help="int8 .tflite -> C project (model.c, weights.c)")
    p.add_argument("--board", required=True)
    p.add_argument("--model", type=Path, required=True, help="an int8 .tflite")
    p.add_argument("--out", type=Path, help="output folder (default build/<stem>-<board>/src)")
    p.set_defaults(func=cmd_codegen)
    p = sub.add_parser("report", help="print the summary of an existing report.json")
    p.add_argument("report", type=Path, help="report.json or the build folder holding it")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.func(args))
    except TinypruneError as exc:
        if debug:
            raise
        print(f"tinyprune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tinyprune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:
        if debug:
            raise
        print(f"tinyprune: internal error: {type(exc).__name__}: {exc} (this is a bug in "
              "tinyprune; rerun with --debug for the traceback and report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
