"""Cycle models against silicon: the official MLPerf Tiny KWS model under every model.

Builds ``tests/fixtures/mlperf_tiny/kws_ref_model.tflite`` for nucleo_f746 (and nucleo_f401re),
runs the same ELF under each cycle model (``m7``, ``m4``, ``m0plus``, ``table``, plus the m7 with
zero-wait memory and with the caches off, to separate core and memory), and compares the
latency at the board clock with the published MLPerf Tiny figure (18.4 ms on the 216 MHz
STM32F746, best of v1.0/v1.1; shared/FACTS.md). Also records the emulator's speed per model
(instructions per CPU second of the whole run, decode included).

Then every official model (KWS, VWW, IC, AD) under ``m7`` and ``table`` against its published
F746 latency. Results go to ``bench/results/cycle_models.{md,json}`` with the machine and date.

usage: python bench/cycle_models.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
KWS = ROOT / "tests" / "fixtures" / "mlperf_tiny" / "kws_ref_model.tflite"
KWS_MACS = 2_656_768
PUBLISHED_F746_MS = 18.4  # MLPerf Tiny, DISCO-F746NG at 216 MHz, best engine of v1.0/v1.1
# (label, board, model, timing override)
CASES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("m7 (default)", "nucleo_f746", "m7", None),
    ("m7, zero-wait memory", "nucleo_f746", "m7", {"flash_mhz_per_wait_state": 0}),
    ("m7, I/D-cache off", "nucleo_f746", "m7", {"icache": False, "dcache": False}),
    ("m4 (what-if on the F746)", "nucleo_f746", "m4", None),
    ("m0plus (what-if on the F746)", "nucleo_f746", "m0plus", None),
    ("table (FACTS.md)", "nucleo_f746", "table", None),
    ("m4 (default)", "nucleo_f401re", "m4", None),
    ("table (FACTS.md)", "nucleo_f401re", "table", None),
]


FIXTURES = ROOT / "tests" / "fixtures" / "mlperf_tiny"
# the other official models on the F746: (name, file, published ms at 216 MHz; FACTS.md)
OFFICIAL = [("KWS DS-CNN", "kws_ref_model.tflite", 18.4),
            ("VWW MobileNetV1-0.25", "vww_96_int8.tflite", 57.0),
            ("IC ResNet-8", "pretrainedResnet_quant.tflite", 61.6),
            ("AD FC autoencoder", "ad01_int8.tflite", 1.7)]


def build_elf(board: str, out: Path, model: Path = KWS) -> Path:
    from tinyprune.api import build
    from tinyprune.config import BuildOptions

    build(BuildOptions(board=board, model=model, out=out, samples=1, random_samples=0),
          progress=lambda msg: print(f"  {board}: {msg}", file=sys.stderr))
    return out / "firmware" / "firmware.elf"


def official_rows(tmp: Path) -> list[dict[str, Any]]:
    """Every official model on nucleo_f746 under m7 and table, against its published latency."""
    rows = []
    for name, file, published in OFFICIAL:
        out = tmp / file
        elf = build_elf("nucleo_f746", out, FIXTURES / file)
        macs = json.loads((out / "report.json").read_text())["model"]["macs_after"]
        for model in ("m7", "table"):
            r = run_case(elf, "nucleo_f746", model, None)
            rows.append({"model_name": name, "cycle_model": model, "macs": macs,
                         "cycles": r["cycles"], "cycles_per_mac": round(r["cycles"] / macs, 2),
                         "latency_ms": r["latency_ms"], "published_ms": published,
                         "ratio": round(r["latency_ms"] / published, 2)})
            print(rows[-1], file=sys.stderr)
    return rows


def run_case(elf: Path, board_name: str, model: str,
             timing: dict[str, Any] | None) -> dict[str, Any]:
    from tinyprune.emulator import run_elf
    from tinyprune.firmware.boards import load_board

    board = load_board(board_name)
    if timing:
        board = dataclasses.replace(board, timing=dataclasses.replace(board.timing, **timing))
    cpu = time.process_time()
    result = run_elf(board, elf, regions=("tp_model_invoke",), cycle_model=model)
    seconds = time.process_time() - cpu
    invoke = result.regions["tp_model_invoke"]
    cycles = invoke.cycles // max(invoke.calls, 1)
    ms = cycles / board.clock_hz * 1e3
    return {"board": board_name, "clock_mhz": board.clock_hz // 1_000_000, "model": model,
            "memory": dict(result.memory_model), "cycles": cycles,
            "instructions": invoke.instructions // max(invoke.calls, 1),
            "cycles_per_mac": round(cycles / KWS_MACS, 2), "latency_ms": round(ms, 2),
            "vs_published_f746": round(ms / PUBLISHED_F746_MS, 2)
            if board_name == "nucleo_f746" else None,
            "emulator_m_instr_per_cpu_s": round(result.instructions / seconds / 1e6, 1)}


def official_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "## The four official models on nucleo_f746 (216 MHz): m7 and table vs published",
             "", "Published: best MLPerf Tiny v1.0/v1.1 result on the STM32F746 (FACTS.md); "
             "ratio = our estimate / published.", "",
             "| model | MACs | cycle model | cycles | c/MAC | est. ms | published ms | ratio |",
             "|---|--:|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['model_name']} | {r['macs']:,} | {r['cycle_model']} | "
                     f"{r['cycles']:,} | {r['cycles_per_mac']} | {r['latency_ms']} | "
                     f"{r['published_ms']} | {r['ratio']:.2f}x |")
    return lines


def markdown(rows: list[dict[str, Any]], info: dict[str, str],
             official: list[dict[str, Any]] | None = None) -> str:
    lines = ["# Cycle models on the official MLPerf Tiny KWS model (DS-CNN, 2.66 M MACs)", ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["- published: 18.4 ms on the STM32F746 at 216 MHz = 3.97 M cycles = 1.49 "
              "cycles/MAC (MLPerf Tiny, best engine); FACTS.md: best M7 engines 1.0-1.4 "
              "c/MAC, TFLM + CMSIS-NN on a 120 MHz M4 4.6-9.6, X-CUBE-AI on M4 2.2-3.7", "",
              "| case | board | model | memory | cycles | c/MAC | ms at clock | vs 18.4 ms "
              "| emulator M instr/CPU s |", "|---|---|---|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        mem = r["memory"]
        memory = ("none (table)" if not mem else
                  f"{mem['flash_wait_states']} WS, I$ {'on' if mem['icache'] else 'off'}, "
                  f"D$ {'on' if mem['dcache'] else 'off'}")
        vs = f"{r['vs_published_f746']:.2f}x" if r["vs_published_f746"] else "-"
        lines.append(f"| {r['case']} | {r['board']} | {r['model']} | {memory} | "
                     f"{r['cycles']:,} | {r['cycles_per_mac']} | {r['latency_ms']} | {vs} | "
                     f"{r['emulator_m_instr_per_cpu_s']} |")
    lines += official_markdown(official or [])
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from machine import machine  # bench/machine.py

    rows = []
    with tempfile.TemporaryDirectory(prefix="tp-cycle-models-") as tmp:
        elfs = {b: build_elf(b, Path(tmp) / b) for b in sorted({c[1] for c in CASES})}
        for label, board, model, timing in CASES:
            rows.append({"case": label, **run_case(elfs[board], board, model, timing)})
            print(rows[-1], file=sys.stderr)
        official = official_rows(Path(tmp))
    info = machine(flags="-O2 -mthumb -std=c99 (board -mcpu/-mfpu), DSP path on",
                   note="cycles per inference from the tp_model_invoke region; emulator speed "
                   "in CPU time (the host is shared), decode of each block included")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "cycle_models.json").write_text(json.dumps({"machine": info, "rows": rows,
                                                           "official": official},
                                                          indent=1) + "\n")
    (RESULTS / "cycle_models.md").write_text(markdown(rows, info, official))
    print(markdown(rows, info, official))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
