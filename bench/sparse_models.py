"""Whole models, dense vs block-sparse: ResNet-8 (MLPerf IC) and DS-CNN (MLPerf KWS) end to end.

Each model is the zoo builder at the MLPerf Tiny shapes with seeded weights (cycles and bytes do
not depend on training), built with the product path ``tinyprune.api.build``: the sparsify stage
(one-shot, L1 of the block, no fine-tuning) at each sparsity, int8 conversion calibrated on
seeded random inputs, the planner's kernel choice by the cost model, codegen, the firmware for
the board, one inference on the unicorn emulator (cycles from DWT CYCCNT under the table cycle
model) compared bit for bit with the TFLite Micro reference, and the host build on seeded random
inputs. Recorded per build: cycles per inference (emulator, estimate), the planner's cost-model
total, weight bytes (indices and pointers included), flash used, bit-exactness, and which layers
run a sparse kernel.

Targets of issue #6 at 75% 1x4: ResNet-8 <= 13.4 M estimated cycles, DS-CNN <= half of our
dense build, weights <= 0.4x the dense build's.

usage: python bench/sparse_models.py [--models resnet8,dscnn] [--sparsities 0.5,0.75]
           [--block 1x4,4x4] [--first 1x4] [--board nucleo_f746]
Results: bench/results/sparse_models.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
RESULTS = ROOT / "bench" / "results"

MODELS = {"resnet8": ("ic_resnet8", "IC ResNet-8 (32x32x3)"),
          "dscnn": ("kws_dscnn", "KWS DS-CNN (49x10x1)")}
FIRST = "conv1"  # both zoo builders' first conv (over 3 / 1 channels): dense unless named
# rows with first=True: every layer sparse (depthwise=true and the first conv named)
CMSIS_NN = {"resnet8": 40.25e6, "dscnn": 9.73e6}  # shared/FACTS.md, same cycle model


def build_one(model_path: Path, out: Path, board: str, sparsity: float | None,
              block: str, first: bool = False) -> dict[str, Any]:
    from tinyprune import api
    from tinyprune.config import BuildOptions

    sparsify: dict[str, Any] | None = None if sparsity is None else {
        "sparsity": sparsity, "block": block, "progress": False}
    if sparsify is not None and first:  # every layer: the depthwise ones and the first conv
        sparsify["layers"] = {FIRST: sparsity}
        sparsify["depthwise"] = True
    # the table model: the one FACTS.md's CMSIS-NN figures (and the targets) use
    opts = BuildOptions(board=board, model=model_path, out=out, samples=1, random_samples=20,
                        cycle_model="table", sparsify=sparsify, sparsify_from="bench")
    start = time.monotonic()
    r = api.build(opts, progress=lambda msg: None).report
    layers = r["layers"]
    sparse = [x for x in layers if x.get("format") not in (None, "dense")]
    return {
        "sparsity": sparsity or 0.0, "block": block if sparsity else "dense", "first": first,
        "cycles": r["run"]["cycles_per_inference"],
        "est_cycles": sum(x.get("est_cycles") or 0 for x in layers),
        "weight_bytes": sum(x["weight_bytes"] for x in layers),
        "weight_bytes_dense": sum((x.get("weight_bytes_dense") or x["weight_bytes"])
                                  for x in layers),
        "flash": r["firmware"]["flash_used_bytes"], "ram": r["firmware"]["ram_used_bytes"],
        "bit_exact": bool(r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"]),
        "int8_sparsity": (r["model"].get("sparsify") or {}).get("int8", {}).get("sparsity"),
        "sparse_layers": len(sparse), "layers_with_weights": sum(
            1 for x in layers if x.get("format")),
        "layers": [{k: x.get(k) for k in ("name", "op", "kernel", "format", "density",
                                          "weight_bytes", "weight_bytes_dense", "cycles",
                                          "est_cycles", "est_cycles_dense")} for x in layers],
        "seconds": round(time.monotonic() - start, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet8,dscnn")
    ap.add_argument("--sparsities", default="0.5,0.75")
    ap.add_argument("--block", default="1x4,4x4", help="patterns, comma-separated")
    ap.add_argument("--board", default="nucleo_f746")
    ap.add_argument("--merge", action="store_true", help="keep the recorded rows of the models "
                    "not given in --models (the header then names both runs' dates)")
    ap.add_argument("--first", default="1x4",
                    help="patterns also built with every layer sparse (depthwise=true, the first "
                    "conv named in layers), "
                         "comma-separated; '' for none")
    args = ap.parse_args()
    from machine import machine

    from tinyprune.models import zoo
    from tinyprune.models.load import save_model
    from tinyprune.quiet import quiet_third_party

    quiet_third_party()
    firsts = [b for b in args.first.split(",") if b]
    levels: list[tuple[float | None, str, bool]] = [(None, "dense", False)] + [
        (float(s), b, f) for b in args.block.split(",") for f in (False, True)
        if not f or b in firsts for s in args.sparsities.split(",")]
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="sparse-models-") as tmp:
        for name in args.models.split(","):
            builder, _ = MODELS[name]
            path = save_model(getattr(zoo, builder)(seed=0), Path(tmp) / f"{name}.keras")
            rows = results[name] = []
            for s, block, first in levels:
                tag = ("dense" if s is None else f"{s:g}-{block.replace(':', 'of')}"
                       + "-every" * first)
                rows.append(build_one(path, Path(tmp) / f"{name}-{tag}", args.board, s, block,
                                      first))
                row = rows[-1]
                print(f"{name} {tag}: {row['cycles']:,} cycles, {row['weight_bytes']:,} weight "
                      f"bytes, flash {row['flash']:,}, bit-exact {row['bit_exact']} "
                      f"({row['seconds']} s)", flush=True)
    info = machine(board=args.board, cycle_model="table (unicorn, DWT CYCCNT)")
    if args.merge:
        old = json.loads((RESULTS / "sparse_models.json").read_text())
        kept = {k: v for k, v in old["results"].items() if k not in results}
        results = {k: kept.get(k) or results[k] for k in MODELS if k in kept or k in results}
        if kept:
            info = {**info, "merged": f"{', '.join(kept)} from the run of "
                    f"{old['machine'].get('date', '?')}"}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sparse_models.json").write_text(json.dumps(
        {"machine": info, "block": args.block, "results": results}, indent=1) + "\n")
    (RESULTS / "sparse_models.md").write_text(render(info, args.block.replace(",", "`, `"),
                                                     results))
    print(f"wrote {RESULTS / 'sparse_models.md'}")


def render(info: dict[str, str], block: str, results: dict[str, list[dict[str, Any]]]) -> str:
    lines = ["# Whole models: dense vs block-sparse (`bench/sparse_models.py`)", "",
             ", ".join(f"{k}: {v}" for k, v in info.items()), "",
             f"Zoo builders at the MLPerf Tiny shapes, seeded weights (cycles and bytes do not "
             f"depend on training), sparsified one-shot by block L1 in `{block}` blocks (no "
             "fine-tuning; the depthwise layers and the first convolution over 1 or 3 channels "
             "stay dense, as the sparsify stage leaves them by default, unless the row says "
             "`+ dw + first`: then `depthwise = true` gives the depthwise layers 1x4 blocks of "
             "4 channels at one tap and the first conv is named with the same per-layer "
             "sparsity, its blocks along the filter row), built with "
             "`tinyprune.api.build`: cycles of one inference on the "
             "emulator (estimates of the table cycle model), the planner's cost-model total over "
             "the layers it estimates (conv, depthwise and FC: the ones with a dense/sparse "
             "choice), "
             "weight bytes with indices and pointers, flash of the whole firmware (harness and "
             "one input included), bit-exact against the TFLite Micro reference (1 firmware "
             "input, 21 host inputs).", "",
             "| model | weights | cycles (emulator) | x dense | cost model (conv/dw/FC) | "
             "weight bytes | "
             "x dense | flash | x dense | sparse layers | bit-exact |",
             "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|"]
    for name, rows in results.items():
        dense = rows[0]
        for r in rows:
            what = ("dense" if not r["sparsity"] else f"{r['sparsity']:.0%} {r['block']}"
                    + " + dw + first" * bool(r.get("first")))
            lines.append(
                f"| {MODELS[name][1]} | {what} | {r['cycles'] / 1e6:.2f} M | "
                f"{r['cycles'] / dense['cycles']:.2f} | {r['est_cycles'] / 1e6:.2f} M | "
                f"{r['weight_bytes']:,} | {r['weight_bytes'] / dense['weight_bytes']:.2f} | "
                f"{r['flash']:,} | {r['flash'] / dense['flash']:.2f} | "
                f"{r['sparse_layers']}/{r['layers_with_weights']} | {r['bit_exact']} |")
    lines += ["", "## Against the targets of issue #6 (75% block sparsity)", ""]
    for name, rows in results.items():
        dense = rows[0]
        for at75 in (r for r in rows if abs(r["sparsity"] - 0.75) < 1e-9):
            lines.append(_target_line(name, dense, at75))
    lines += ["", "## Where the cycles go at 75% (emulator, per layer kind)", ""]
    for name, rows in results.items():
        for at75 in (r for r in rows if abs(r["sparsity"] - 0.75) < 1e-9):
            lines += [_breakdown(name, rows[0], at75), ""]
    return "\n".join(lines) + "\n"


def _target_line(name: str, dense: dict[str, Any], at75: dict[str, Any]) -> str:
    target = (f"<= 13.4 M cycles (CMSIS-NN dense {CMSIS_NN[name] / 1e6:.2f} M / 3)"
              if name == "resnet8" else f"<= {dense['cycles'] / 2e6:.2f} M (half of dense)")
    ok = at75["cycles"] <= (13.4e6 if name == "resnet8" else dense["cycles"] / 2)
    small = at75["weight_bytes"] <= 0.4 * dense["weight_bytes"]
    what = at75["block"] + " + dw + first" * bool(at75.get("first"))
    return (f"- {MODELS[name][1]}, {what}: {at75['cycles'] / 1e6:.2f} M cycles, target "
            f"{target}: {'met' if ok else 'NOT met'}; weights "
            f"{at75['weight_bytes'] / dense['weight_bytes']:.2f}x dense (target <= 0.4x): "
            f"{'met' if small else 'NOT met'}; x CMSIS-NN dense "
            f"{at75['cycles'] / CMSIS_NN[name]:.2f}.")


def _breakdown(name: str, dense_row: dict[str, Any], at75: dict[str, Any]) -> str:
    dense = {x["name"] + x["op"]: x for x in dense_row["layers"]}
    kinds: dict[str, list[int]] = {}
    for x in at75["layers"]:
        kind = x["op"] if x.get("format") in (None, "dense") else f"{x['op']} (sparse)"
        d = dense.get(x["name"] + x["op"], {}).get("cycles") or 0
        acc = kinds.setdefault(kind, [0, 0])
        acc[0] += d
        acc[1] += x["cycles"] or 0
    what = at75["block"] + " + dw + first" * bool(at75.get("first"))
    return f"{MODELS[name][1]}, {what}: " + "; ".join(
        f"{k} {v[0] / 1e6:.2f} M -> {v[1] / 1e6:.2f} M" for k, v in sorted(kinds.items()))


if __name__ == "__main__":
    main()
