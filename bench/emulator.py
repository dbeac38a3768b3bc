"""Emulator speed: instructions per CPU second on unicorn, with and without the fault checks.

Builds the firmware of the official MLPerf Tiny int8 models (tests/fixtures/mlperf_tiny) for a
board (``--emulator none``), then runs each ELF on unicorn the way the pipeline does (with the
``tp_model_invoke`` region), best of ``--repeat`` runs, once as shipped and once with the fault
checks of ``tinyprune/emulator/checks.py`` switched off (no block has a plan). CPU time, not wall
time: the machine is shared; its load average is recorded too. ``--baseline REF`` also runs the
same ELFs on the emulator of git revision REF (its package, boards, runtime and templates
extracted with ``git archive``), e.g. the last commit before the fault checks. Results go to
``bench/results/emulator.{md,json}``.

usage: python bench/emulator.py [--board nucleo_f746] [--samples 5] [--repeat 3] [--baseline REF]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
MODELS = {
    "kws": "kws_ref_model.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "vww": "vww_96_int8.tflite",
    "ad": "ad01_int8.tflite",
}


def build(model: str, board: str, samples: int, out: Path) -> Path:
    fixture = ROOT / "tests" / "fixtures" / "mlperf_tiny" / MODELS[model]
    cmd = [sys.executable, "-m", "tinyprune.cli", "build", "--board", board, "--model",
           str(fixture), "--out", str(out), "--emulator", "none", "--samples", str(samples)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return out / "firmware" / "firmware.elf"


@contextmanager
def checks_off() -> Iterator[None]:
    """No block gets a plan: the emulator as fast as it is without fault checks."""
    from tinyprune.emulator import checks

    original = checks.plan_block

    def no_plan(*args: object, **kwargs: object) -> checks.BlockFacts:
        facts = original(*args, **kwargs)  # type: ignore[arg-type]
        return checks.BlockFacts(None, facts.unsafe, facts.sp_step)

    checks.plan_block = no_plan  # type: ignore[assignment]
    try:
        yield
    finally:
        checks.plan_block = original


def speed(board: str, elf: Path, repeat: int) -> tuple[int, float]:
    """(instructions, best M instructions per CPU second)."""
    from tinyprune.emulator import run_elf
    from tinyprune.firmware import load_board

    best, instructions = 0.0, 0
    for _ in range(repeat):
        start = time.process_time()
        result = run_elf(load_board(board), elf, regions=("tp_model_invoke",))
        seconds = time.process_time() - start
        instructions = result.instructions
        best = max(best, instructions / seconds / 1e6)
    return instructions, best


def baseline_speed(ref: str, board: str, elf: Path, repeat: int, tree: Path) -> float:
    """Best M instructions per CPU second of revision ``ref``'s emulator (in a subprocess)."""
    if not (tree / "tinyprune").is_dir():
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref,
                                  "tinyprune", "boards", "runtime", "templates"],
                                 check=True, capture_output=True).stdout
        tree.mkdir(parents=True, exist_ok=True)
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tinyprune.emulator import run_elf\n"
        "from tinyprune.firmware import load_board\n"
        "best = 0.0\n"
        f"for _ in range({repeat}):\n"
        "    start = time.process_time()\n"
        f"    r = run_elf(load_board({board!r}), Path({str(elf)!r}),\n"
        "                regions=('tp_model_invoke',))\n"
        "    best = max(best, r.instructions / (time.process_time() - start) / 1e6)\n"
        "print(best)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env=env, cwd=tree).stdout
    return float(out.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--board", default="nucleo_f746")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--baseline", metavar="REF",
                        help="also measure the emulator of this git revision")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from machine import machine

    rows = []
    with tempfile.TemporaryDirectory(prefix="tp-bench-emu-") as tmp:
        for model in args.models.split(","):
            elf = build(model, args.board, args.samples, Path(tmp) / model)
            instructions, checked = speed(args.board, elf, args.repeat)
            with checks_off():
                _, unchecked = speed(args.board, elf, args.repeat)
            row = {"model": model, "instructions": instructions, "checked": checked,
                   "unchecked": unchecked, "ratio": checked / unchecked}
            if args.baseline:
                row["baseline"] = baseline_speed(args.baseline, args.board, elf, args.repeat,
                                                 Path(tmp) / "baseline")
            rows.append(row)
            print(f"{model}: {instructions:,} instructions, {checked:.1f} M/s with checks, "
                  f"{unchecked:.1f} M/s without ({checked / unchecked:.2f}), "
                  f"baseline {row.get('baseline', '-')}", file=sys.stderr)
    info = machine(load_average=" ".join(f"{x:.1f}" for x in os.getloadavg()),
                   board=args.board, samples=str(args.samples))
    if args.baseline:
        info["baseline"] = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %s", args.baseline],
            check=True, capture_output=True, text=True).stdout.strip()[:100]
    write(rows, info)


def write(rows: list[dict], info: dict[str, str]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "emulator.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2))
    lines = ["# unicorn speed with and without the fault checks", ""]
    lines += [f"- {key}: {value}" for key, value in info.items()]
    lines += ["- M instructions per CPU second, best of the repeats; the pipeline's run "
              "(region `tp_model_invoke`); *without*: the same emulator with no block planned "
              "for checks; *baseline*: the emulator of the baseline revision", "",
              "| model | instructions | with checks | without | ratio | baseline |",
              "|---|--:|--:|--:|--:|--:|"]
    lines += [f"| {r['model']} | {r['instructions']:,} | {r['checked']:.1f} | "
              f"{r['unchecked']:.1f} | {r['ratio']:.2f} | "
              f"{format(r['baseline'], '.1f') if 'baseline' in r else '-'} |" for r in rows]
    (RESULTS / "emulator.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
