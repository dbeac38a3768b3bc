"""Per-layer-type estimated cycles of our kernels against CMSIS-NN, and peak RAM against TFLite
Micro's arena, on the four official MLPerf Tiny int8 models (tests/fixtures/mlperf_tiny/).

Each model is built for nucleo_f746 (unicorn, `--cycle-model table`: the flat per-class table of
docs/cycle_models.md that the CMSIS-NN figures were priced with), its layers grouped by type
(conv kxk, conv 1x1, depthwise 3x3, FC, ADD, pool) and summed. The CMSIS-NN figures are the
per-type sums measured on the same 64 layers with CMSIS-NN 99f736a built with our firmware
flags, on the same emulator and cycle table (shared FACTS, 2026-12-01); the TFLite Micro arenas
are the smallest arena its interpreter accepts for each model (issue 7).
Results go to ``bench/results/layer_types.{md,json}`` with the machine and date.

usage: python bench/layer_types.py [--samples 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
MODELS = {"KWS DS-CNN": "kws_ref_model.tflite", "IC ResNet-8": "pretrainedResnet_quant.tflite",
          "VWW MobileNetV1-0.25": "vww_96_int8.tflite", "AD FC autoencoder": "ad01_int8.tflite"}
CMSIS_NN_TYPE = {"conv kxk": 42.03e6, "conv 1x1": 24.80e6, "depthwise 3x3": 10.89e6,
                 "FC": 0.740e6, "ADD": 2.97e6, "pool": 0.156e6}
"""CMSIS-NN est. cycles per layer type over the four models (same emulator and table)."""
CMSIS_NN_MODEL = {"KWS DS-CNN": 9.73e6, "IC ResNet-8": 40.33e6, "VWW MobileNetV1-0.25": 30.79e6,
                  "AD FC autoencoder": 0.733e6}
TFLM_ARENA = {"KWS DS-CNN": 24_272, "IC ResNet-8": 55_984, "VWW MobileNetV1-0.25": 103_672,
              "AD FC autoencoder": 4_632}


def layer_type(opcode: str, filter_hw: tuple[int, int] | None) -> str | None:
    if opcode == "CONV_2D":
        return "conv 1x1" if filter_hw == (1, 1) else "conv kxk"
    if opcode == "DEPTHWISE_CONV_2D":
        return "depthwise 3x3" if filter_hw == (3, 3) else "depthwise other"
    return {"FULLY_CONNECTED": "FC", "ADD": "ADD", "AVERAGE_POOL_2D": "pool",
            "MAX_POOL_2D": "pool"}.get(opcode)


def types_of(model: Path) -> list[str | None]:
    """The layer type of every code op of the model, in the report's layer order."""
    from tinyprune.ir import read_tflite
    from tinyprune.plan import plan

    planned = plan(read_tflite(model.read_bytes()), dsp=True)
    out = []
    for p in planned.code_ops:
        w = planned.graph.tensors[p.op.inputs[1]] if len(p.op.inputs) > 1 else None
        hw = tuple(w.shape[1:3]) if w is not None and len(w.shape) == 4 else None
        out.append(layer_type(p.op.opcode, hw))  # type: ignore[arg-type]
    return out


def measure(name: str, file: str, samples: int, work: Path) -> dict[str, Any]:
    from tinyprune.api import build
    from tinyprune.config import BuildOptions

    model = ROOT / "tests" / "fixtures" / "mlperf_tiny" / file
    r = build(BuildOptions(board="nucleo_f746", model=model, out=work / file, samples=samples,
                           cycle_model="table"),
              progress=lambda msg: print(f"  {name}: {msg}", file=sys.stderr)).report
    per_type: dict[str, float] = defaultdict(float)
    fused: dict[str, int] = defaultdict(int)
    for layer, kind in zip(r["layers"], types_of(model), strict=True):
        per_type[kind or "other"] += layer["cycles"] or 0
        for _ in layer.get("fused", []):
            fused[kind or "other"] += 1
    fw = r["firmware"]
    ram = fw["arena_bytes"] + fw["stack_peak_bytes"]
    return {"model": name, "bit_exact": r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"],
            "est_cycles": r["run"]["cycles_per_inference"], "per_type": dict(per_type),
            "fused_adds": dict(fused),
            "arena": fw["arena_bytes"], "stack": fw["stack_peak_bytes"], "peak_ram": ram,
            "tflm_arena": TFLM_ARENA[name], "ram_ratio": round(ram / TFLM_ARENA[name], 3),
            "cycles_ratio": round(r["run"]["cycles_per_inference"] / CMSIS_NN_MODEL[name], 3)}


def markdown(rows: list[dict[str, Any]], info: dict[str, str]) -> str:
    total: dict[str, float] = defaultdict(float)
    for row in rows:
        for k, v in row["per_type"].items():
            total[k] += v
    out = ["# Layer types against CMSIS-NN, peak RAM against TFLite Micro (nucleo_f746)", "",
           *[f"- {k}: {v}" for k, v in info.items()],
           "- cycles: estimates from the emulator with `--cycle-model table` "
           "(docs/cycle_models.md), the table CMSIS-NN was measured with (shared FACTS, "
           "2026-12-01, CMSIS-NN 99f736a)",
           "- peak RAM: arena + scratch (firmware.arena_bytes) + measured stack peak", "",
           "| layer type | CMSIS-NN est. cycles | ours | ours / CMSIS-NN |", "|---|--:|--:|--:|"]
    fused: dict[str, int] = defaultdict(int)
    for row in rows:
        for k, v in row.get("fused_adds", {}).items():
            fused[k] += v
    for kind, ref in CMSIS_NN_TYPE.items():
        inside = f" (+{fused[kind]} ADD fused)" if fused[kind] else ""
        ours = f"{total[kind] / 1e6:.3f} M" if total[kind] or not fused else "fused"
        ratio = f"{total[kind] / ref:.2f}" if total[kind] or not fused else "-"
        out.append(f"| {kind}{inside} | {ref / 1e6:.3f} M | {ours} | {ratio} |")
    if fused:
        mixed = ("conv kxk", "conv 1x1", "ADD")
        ref = sum(CMSIS_NN_TYPE[k] for k in mixed)
        ours_sum = sum(total[k] for k in mixed)
        out.append(f"| conv kxk + conv 1x1 + ADD | {ref / 1e6:.3f} M | {ours_sum / 1e6:.3f} M | "
                   f"{ours_sum / ref:.2f} |")
    if fused:
        out += ["", f"{sum(fused.values())} residual ADDs ran inside the conv that produces one "
                "operand (`tp_conv_interleaved_add_s8`, docs/kernels.md): their cycles are in "
                "that conv's row; the last row compares the three types together."]
    out += ["", "| model | est. cycles | / CMSIS-NN | arena + scratch | stack | peak RAM | "
                "TFLM arena | / TFLM | bit-exact |", "|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        out.append(f"| {r['model']} | {r['est_cycles']:,} | {r['cycles_ratio']} | "
                   f"{r['arena']:,} | {r['stack']:,} | {r['peak_ram']:,} | "
                   f"{r['tflm_arena']:,} | {r['ram_ratio']} | {r['bit_exact']} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "bench"))
    from machine import machine  # bench/machine.py

    info = machine(flags="-O2 -mthumb -std=c99 (board -mcpu/-mfpu), DSP path on")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(name, file, args.samples, Path(tmp)) for name, file in MODELS.items()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "layer_types.json").write_text(json.dumps({"machine": info, "models": rows},
                                                         indent=1) + "\n")
    (RESULTS / "layer_types.md").write_text(markdown(rows, info))
    print(markdown(rows, info))
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
