"""The kernel choice under the Cortex-M7 cost fit against the table fit: what changed, and what
each choice costs under both cycle models.

The planner prices kernels with a cost fit (tinyprune/kernels/sparse_cost.py ``FITS``): the
``table`` fit, or the ``m7`` fit (bench/results/sparse_cost_fit_m7.md) that this bench judges
(builds use the table fit: ``pipeline.KERNEL_COST_MODEL``, chosen from this record). Each row here
is one model, the zoo builder at the MLPerf Tiny shapes with seeded weights, dense or sparsified
one-shot (L1 of the block, no fine-tuning: cycles do not depend on training), built twice with the
product path ``tinyprune.api.build`` for the board with its default cycle model (m7): once with the
kernels priced by the table fit (the builds' default), once by the m7 fit; nothing else differs.
Each firmware runs under the m7 model (the build's run) and again under the table model (the same
ELF, unicorn, DWT CYCCNT), so both choices are timed by both models.
Recorded: the layers whose kernel (or weight format) differs, whole-model and per-layer cycles
of both choices under both models, and the check the issue asks for: under the table model, the
m7 choice is nowhere slower than the table choice by more than 5% (whole model and each changed
layer). Every run is bit-exact or the bench stops.

usage: python bench/kernel_choice.py [--board nucleo_f746] [--rows resnet8-0.75-1x4,...]
Results: bench/results/kernel_choice.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
RESULTS = ROOT / "bench" / "results"
MODELS = {"resnet8": "ic_resnet8", "dscnn": "kws_dscnn", "ad": "ad_autoencoder",
          "vww": "vww_mobilenet"}
FIRST = "conv1"  # the zoo convnets' first conv: sparse only when named (every-layer rows)
SLOWER_LIMIT = 1.05  # the bound: nothing slower under the old table by more than 5%


@dataclass(frozen=True)
class Row:
    model: str
    sparsity: float | None = None
    block: str = "1x4"
    every: bool = False  # depthwise layers and the first conv sparse too

    @property
    def id(self) -> str:
        if self.sparsity is None:
            return f"{self.model}-dense"
        return f"{self.model}-{self.sparsity:g}-{self.block}" + ("-every" if self.every else "")


ROWS = [Row("resnet8"), Row("resnet8", 0.5), Row("resnet8", 0.75), Row("resnet8", 0.9),
        Row("resnet8", 0.75, "4x4"), Row("dscnn"), Row("dscnn", 0.5), Row("dscnn", 0.75),
        Row("dscnn", 0.75, every=True), Row("dscnn", 0.9, every=True), Row("ad"),
        Row("ad", 0.5), Row("ad", 0.75), Row("ad", 0.9), Row("ad", 0.75, "4x4"), Row("vww"),
        Row("vww", 0.75)]


def build(row: Row, model_path: Path, out: Path, board: str, cost_fit: str
          ) -> dict[str, Any]:
    """The default build for ``board`` (its cycle model: m7), the kernels priced by the
    ``cost_fit`` fit: everything else (TCM placement, which depends on the cycle model's
    memory costs) is the same for both fits."""
    from dataclasses import replace

    from tinyprune import api, pipeline
    from tinyprune.config import BuildOptions

    default_options = pipeline.plan_options

    def options(*args: Any, **kwargs: Any) -> Any:
        return replace(default_options(*args, **kwargs), cost_model=cost_fit)

    sparsify: dict[str, Any] | None = None if row.sparsity is None else {
        "sparsity": row.sparsity, "block": row.block, "progress": False}
    if sparsify is not None and row.every:
        sparsify["layers"] = {FIRST: row.sparsity}
        sparsify["depthwise"] = True
    opts = BuildOptions(board=board, model=model_path, out=out, samples=1, random_samples=2,
                        cycle_model="m7", sparsify=sparsify, sparsify_from="bench")
    pipeline.plan_options = options  # the one difference
    try:
        report = api.build(opts, progress=lambda msg: None).report
    finally:
        pipeline.plan_options = default_options
    if report["kernel_cost_model"] != cost_fit:
        raise RuntimeError(f"{row.id}: the build priced kernels with "
                           f"{report['kernel_cost_model']}, not {cost_fit}")
    if not (report["run"]["bit_exact"] and report["run"]["host"]["bit_exact"]):
        raise RuntimeError(f"{row.id} ({cost_fit} choice): not bit-exact")
    return report


def rerun(out: Path, board_name: str, cycle_model: str) -> tuple[int, list[int]]:
    """Cycles per inference and per layer of the firmware in ``out`` under ``cycle_model``."""
    from tinyprune.emulator import run_elf
    from tinyprune.firmware.boards import load_board
    from tinyprune.protocol import parse_results

    elf = next((out / "firmware").glob("*.elf"))
    res = parse_results(run_elf(load_board(board_name), elf, cycle_model=cycle_model).uart)
    if res.status != 0:
        raise RuntimeError(f"{elf}: status {res.status} under {cycle_model}")
    layers = res.mean_layer_cycles
    return sum(layers), layers


def measure(row: Row, model_path: Path, tmp: Path, board: str) -> dict[str, Any]:
    side: dict[str, dict[str, Any]] = {}
    for choice in ("table", "m7"):
        out = tmp / f"{row.id}-{choice}"
        report = build(row, model_path, out, board, choice)
        total, per_layer = rerun(out, board, "table")
        layers = report["layers"]
        side[choice] = {
            "kernel_cost_model": report["kernel_cost_model"],
            "cycles": {"m7": report["run"]["cycles_per_inference"], "table": total},
            "flash": report["firmware"]["flash_used_bytes"],
            "layers": [{"name": x["name"], "op": x["op"], "kernel": x["kernel"],
                        "format": x.get("format"), "cycles": {"m7": x["cycles"], "table": c}}
                       for x, c in zip(layers, per_layer, strict=True)]}
    t, m = side["table"], side["m7"]
    changed = []
    for a, b in zip(t["layers"], m["layers"], strict=True):
        if (a["kernel"], a["format"]) != (b["kernel"], b["format"]):
            changed.append({"name": a["name"], "op": a["op"],
                            "table_choice": f"{a['kernel']} ({a['format'] or '-'})",
                            "m7_choice": f"{b['kernel']} ({b['format'] or '-'})",
                            "table_cycles": [a["cycles"]["table"], b["cycles"]["table"]],
                            "m7_cycles": [a["cycles"]["m7"], b["cycles"]["m7"]]})
    if len(t["layers"]) != len(m["layers"]):
        raise RuntimeError(f"{row.id}: the two choices have different layer lists")
    return {"row": row.id, "table_choice": t, "m7_choice": m, "changed": changed,
            "table_ratio": m["cycles"]["table"] / t["cycles"]["table"],
            "m7_ratio": m["cycles"]["m7"] / t["cycles"]["m7"],
            "worst_layer_table_ratio": max((c["table_cycles"][1] / c["table_cycles"][0]
                                            for c in changed), default=1.0)}


def render(info: dict[str, str], rows: list[dict[str, Any]]) -> str:
    ok = all(r["table_ratio"] <= SLOWER_LIMIT and r["worst_layer_table_ratio"] <= SLOWER_LIMIT
             for r in rows)
    lines = ["# Kernel choice: the M7 cost fit against the table fit", "",
             *[f"- {k}: {v}" for k, v in info.items()], "",
             "Each model built twice for the board, with its default cycle model (m7): kernels "
             "priced by the table fit (the builds' default), and by the M7 fit; each firmware "
             "timed by both cycle models (bench/kernel_choice.py). Ratios are the m7 "
             "choice over the table choice; below 1 the m7 choice is faster. Every run "
             "bit-exact.", "",
             f"**Nothing slower under the table model by more than 5%: "
             f"{'yes' if ok else 'NO'}** (whole models and every changed layer). Builds price "
             "kernels with the table fit (`pipeline.KERNEL_COST_MODEL`, set from this record), "
             "so a build runs the table fit's choice.", "",
             "| model | layers changed | table model: table choice -> m7 choice | ratio "
             "| m7 model: table choice -> m7 choice | ratio |", "|---|--:|--:|--:|--:|--:|"]
    for r in rows:
        t, m = r["table_choice"]["cycles"], r["m7_choice"]["cycles"]
        lines.append(f"| {r['row']} | {len(r['changed'])} | {t['table']:,} -> {m['table']:,} "
                     f"| {r['table_ratio']:.3f} | {t['m7']:,} -> {m['m7']:,} "
                     f"| {r['m7_ratio']:.3f} |")
    changed = [(r["row"], c) for r in rows for c in r["changed"]]
    lines += ["", "## Layers whose kernel changed", ""]
    if not changed:
        lines.append("None: the two fits choose the same kernel and format for every layer.")
    else:
        lines += ["| model | layer | op | table fit's choice | m7 fit's choice "
                  "| table model cycles | m7 model cycles |", "|---|---|---|---|---|--:|--:|"]
        for row, c in changed:
            tc, mc = c["table_cycles"], c["m7_cycles"]
            lines.append(f"| {row} | {c['name']} | {c['op']} | {c['table_choice']} "
                         f"| {c['m7_choice']} | {tc[0]:,} -> {tc[1]:,} ({tc[1] / tc[0]:.2f}x) "
                         f"| {mc[0]:,} -> {mc[1]:,} ({mc[1] / mc[0]:.2f}x) |")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    import subprocess

    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False).stdout.strip()
    return out or "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--board", default="nucleo_f746")
    ap.add_argument("--rows", default="", help="row ids, comma-separated (default: all)")
    ap.add_argument("--merge", action="store_true", help="keep the recorded rows not in --rows "
                    "(the header then names both runs)")
    args = ap.parse_args()
    from machine import machine

    from tinyprune.models import zoo
    from tinyprune.models.load import save_model
    from tinyprune.quiet import quiet_third_party

    quiet_third_party()
    wanted = set(filter(None, args.rows.split(",")))
    rows = [r for r in ROWS if not wanted or r.id in wanted]
    results = []
    with tempfile.TemporaryDirectory(prefix="kernel-choice-") as tmp:
        paths: dict[str, Path] = {}
        for row in rows:
            if row.model not in paths:
                paths[row.model] = save_model(getattr(zoo, MODELS[row.model])(seed=0),
                                              Path(tmp) / f"{row.model}.keras")
            results.append(measure(row, paths[row.model], Path(tmp), args.board))
            r = results[-1]
            print(f"{row.id}: {len(r['changed'])} layers changed, table model "
                  f"{r['table_ratio']:.3f}, m7 model {r['m7_ratio']:.3f}", flush=True)
    info = machine(board=args.board, emulator="unicorn (DWT CYCCNT)", commit=_commit())
    if args.merge:
        old = json.loads((RESULTS / "kernel_choice.json").read_text())
        fresh = {r["row"]: r for r in results}
        results = [fresh.pop(r["row"], r) for r in old["rows"]] + list(fresh.values())
        info["merged"] = (f"{', '.join(sorted(wanted))} rerun; the other rows from the run of "
                          f"{old['machine'].get('date', '?')} at "
                          f"{old['machine'].get('commit', '?')}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "kernel_choice.json").write_text(json.dumps(
        {"machine": info, "rows": results}, indent=1) + "\n")
    (RESULTS / "kernel_choice.md").write_text(render(info, results))
    print(f"wrote {RESULTS / 'kernel_choice.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
