"""TCM placement (docs/tcm.md): the official KWS DS-CNN and IC ResNet-8 with and without it.

Builds ``tests/fixtures/mlperf_tiny/{kws_ref_model,pretrainedResnet_quant}.tflite`` (the MLPerf
Tiny models themselves, their trained weights) for nucleo_f746 and nucleo_h743zi with placement
on (the default) and off (``--no-tcm``), each priced by the board's default cycle model (m7) on
the unicorn emulator and checked bit-exact against the TFLite Micro reference. Records cycles,
latency at the clock, flash, RAM, the bytes placed in ITCM/DTCM, and the placement's estimated
saving against the measured one. Results go to ``bench/results/tcm.{md,json}``.

usage: nice -n 10 python bench/tcm.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
FIXTURES = ROOT / "tests" / "fixtures" / "mlperf_tiny"
MODELS = [("KWS DS-CNN", "kws_ref_model.tflite"), ("IC ResNet-8", "pretrainedResnet_quant.tflite")]
BOARDS = ["nucleo_f746", "nucleo_h743zi"]


def build(board: str, model: Path, out: Path, tcm: bool) -> dict[str, Any]:
    from tinyprune.api import build as run_build
    from tinyprune.config import BuildOptions

    run_build(BuildOptions(board=board, model=model, out=out, samples=1, random_samples=0,
                           tcm=tcm),
              progress=lambda msg: print(f"  {board} tcm={tcm}: {msg}", file=sys.stderr))
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def row(name: str, board: str, on: dict[str, Any], off: dict[str, Any]) -> dict[str, Any]:
    tcm = on["firmware"]["tcm"]
    cycles_on, cycles_off = on["run"]["cycles_per_inference"], off["run"]["cycles_per_inference"]
    def what(d: dict[str, Any]) -> str:
        return f"{d['layer']} ({d['kernel']}) {d['kind']}" if d["layer"] else \
            f"{d['kernel']} {d['kind']}"

    placed = [f"{what(d)} {d['bytes']} B" for d in tcm["decisions"] if d["placed"]]
    unplaced = [f"{what(d)}: {d['reason']}" for d in tcm["decisions"]
                if not d["placed"] and not d["reason"].startswith("does not pay: est. 0 ")]
    return {"model_name": name, "board": board, "cycle_model": on["run"]["cycle_model"],
            "cycles_off": cycles_off, "cycles_on": cycles_on,
            "ms_off": off["run"]["latency_ms_at_clock"], "ms_on": on["run"]["latency_ms_at_clock"],
            "saved_pct": round(100 * (cycles_off - cycles_on) / cycles_off, 1),
            "est_saved_cycles": tcm["est_saved_cycles"], "saved_cycles": cycles_off - cycles_on,
            "flash_off": off["firmware"]["flash_used_bytes"],
            "flash_on": on["firmware"]["flash_used_bytes"],
            "ram_off": off["firmware"]["ram_used_bytes"],
            "ram_on": on["firmware"]["ram_used_bytes"],
            "itcm_bytes": tcm["itcm_bytes"], "dtcm_bytes": tcm["dtcm_bytes"],
            "bit_exact": bool(on["run"]["bit_exact"] and off["run"]["bit_exact"]),
            "placed": placed, "not_placed": unplaced}


def markdown(rows: list[dict[str, Any]], info: dict[str, str]) -> str:
    lines = ["# TCM placement (bench/tcm.py)", "",
             "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), "",
             "Official MLPerf Tiny models, one inference, default cycle model of the board "
             "(estimates), placement off (`--no-tcm`) / on (the default). RAM counts the board's "
             "`[memory.ram]` region: on the F746 the DTCM is its first 64 KiB, on the H743 the "
             "DTCM is apart from it (the AXI SRAM).", "",
             "| model | board | cycles off | cycles on | saved | ms off | ms on | est. saved | "
             "flash off / on | RAM off / on | ITCM | DTCM | bit-exact |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        lines.append(
            f"| {r['model_name']} | {r['board']} | {r['cycles_off']:,} | {r['cycles_on']:,} | "
            f"{r['saved_pct']}% | {r['ms_off']:.2f} | {r['ms_on']:.2f} | "
            f"{r['est_saved_cycles']:,} | {r['flash_off']:,} / {r['flash_on']:,} | "
            f"{r['ram_off']:,} / {r['ram_on']:,} | {r['itcm_bytes']:,} | {r['dtcm_bytes']:,} | "
            f"{r['bit_exact']} |")
    lines += ["", "What was placed, and what was not (besides code that never pays with the "
              "I-cache on):", ""]
    for r in rows:
        lines.append(f"- {r['model_name']} on {r['board']}: placed "
                     f"{'; '.join(r['placed']) or 'nothing'}"
                     + (f"; not placed: {'; '.join(r['not_placed'])}" if r["not_placed"] else ""))
    return "\n".join(lines) + "\n"


def main() -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from machine import machine  # bench/machine.py

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, file in MODELS:
            for board in BOARDS:
                reports = {tcm: build(board, FIXTURES / file, Path(tmp) / f"{file}-{board}-{tcm}",
                                      tcm) for tcm in (False, True)}
                rows.append(row(name, board, reports[True], reports[False]))
                print(rows[-1], file=sys.stderr)
    info = machine(flags="-O2 -mthumb -std=c99 (board -mcpu/-mfpu), DSP path on",
                   emulator="unicorn", samples="1 per build")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tcm.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2) + "\n")
    (RESULTS / "tcm.md").write_text(markdown(rows, info))
    print(markdown(rows, info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
