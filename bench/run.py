"""MLPerf Tiny benchmark: builds the four reference architectures for a board and records figures.

Each model is built twice, from its Keras model and from the int8 .tflite the first build wrote,
and both must fit and be bit-exact. Results (MACs, instructions, estimated cycles, MACs/cycle,
flash, arena, stack) go to ``bench/results/mlperf_tiny.{md,json}`` with the machine and date.

usage: python bench/run.py [--board nucleo_f746] [--samples 5] [--models kws,vww,ic,ad]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def machine() -> dict[str, str]:
    from machine import machine as base  # bench/machine.py

    return base(flags="-O2 -mthumb -std=c99 (board -mcpu/-mfpu), DSP path on")


def build_one(name: str, model_path: Path, board: str, samples: int, out: Path) -> dict:
    from tinyprune.api import build
    from tinyprune.config import BuildOptions

    # the table model, comparable with FACTS.md's CMSIS-NN figures; m7/m4 figures of the same
    # models are in bench/cycle_models.py
    result = build(BuildOptions(board=board, model=model_path, out=out, samples=samples,
                                cycle_model="table"),
                   progress=lambda msg: print(f"  {name}: {msg}", file=sys.stderr))
    r = result.report
    cycles = r["run"]["cycles_per_inference"]
    macs = r["model"]["macs_after"]
    return {
        "model": name, "source": model_path.suffix, "params": r["model"]["params_after"],
        "macs": macs, "instructions": r["run"]["instructions_per_inference"],
        "est_cycles": cycles, "cycle_model": r["run"].get("cycle_model"),
        "macs_per_cycle": round(macs / cycles, 3) if cycles else None,
        "latency_ms": round(r["run"]["latency_ms_at_clock"], 2) if cycles else None,
        "flash": r["firmware"]["flash_used_bytes"], "arena": r["firmware"]["arena_bytes"],
        "stack": r["firmware"]["stack_peak_bytes"], "ram": r["firmware"]["ram_used_bytes"],
        "bit_exact": r["run"]["bit_exact"], "ok": r["ok"],
    }


def markdown(rows: list[dict], info: dict[str, str], board: str) -> str:
    cols = ["model", "source", "params", "macs", "instructions", "est_cycles", "macs_per_cycle",
            "latency_ms", "flash", "arena", "stack", "ram", "bit_exact"]
    head = [f"# MLPerf Tiny reference models on {board}", "",
            *[f"- {k}: {v}" for k, v in info.items()],
            f"- cycles are estimates from the emulator's {rows[0].get('cycle_model', '')}"
            " cycle model (the board's core; docs/cycle_models.md); instructions are exact", "",
            "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    body = ["| " + " | ".join(f"{r[c]:,}" if isinstance(r[c], int) and not isinstance(r[c], bool)
                              else str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(head + body) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="nucleo_f746")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--models", default="kws,vww,ic,ad")
    args = ap.parse_args()
    from tinyprune.models.load import save_model
    from tinyprune.models.zoo import MLPERF_TINY

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.models.split(","):
            name, builder = MLPERF_TINY[key]
            keras_path = Path(tmp) / f"{key}.keras"
            save_model(builder(flavor="keras3"), keras_path)
            rows.append(build_one(name, keras_path, args.board, args.samples, Path(tmp) / key))
            tfl = Path(tmp) / key / "model_int8.tflite"
            tfl_copy = Path(tmp) / f"{key}_int8.tflite"
            tfl_copy.write_bytes(tfl.read_bytes())
            rows.append(build_one(name, tfl_copy, args.board, args.samples, Path(tmp) / f"{key}_t"))
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "mlperf_tiny.md").write_text(markdown(rows, info, args.board))
    (RESULTS / "mlperf_tiny.json").write_text(json.dumps({"machine": info, "board": args.board,
                                                           "rows": rows}, indent=2) + "\n")
    print(markdown(rows, info, args.board))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
