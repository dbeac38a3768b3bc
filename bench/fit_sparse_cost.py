"""Fits the kernel cost model (tinyprune/kernels/sparse_cost.py) to the emulator's cycles.

Every kernel family (dense conv / FC and each sparse format, each block height) runs on a set of
one-layer models of varied shapes and sparsities (bench/sparse_layers.py: real pipeline,
firmware for the board, unicorn with the ``table`` cycle model; every run bit-exact or the fit
stops). Its cycles are fitted by non-negative least squares to the family's features (the same
functions the planner's estimates use). Results: ``bench/results/sparse_cost_fit.{md,json}``;
``--write`` also rewrites the COEFFICIENTS block of sparse_cost.py (with the fit's date).

usage: python bench/fit_sparse_cost.py [--board nucleo_f746] [--cycle-model table|m7] [--write]
                                     [--families fc_bsr_r1,...]

``--cycle-model m7`` fits the same runs timed by the Cortex-M7 model (results
``bench/results/sparse_cost_fit_m7.{md,json}``, coefficients ``COEFFICIENTS_M7``), which the kernel
choice uses on M7 boards.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sparse_layers as sl

ROOT = sl.ROOT
RESULTS = ROOT / "bench" / "results"
COST_MODULE = ROOT / "tinyprune" / "kernels" / "sparse_cost.py"

FC_SHAPES = [
    sl.LayerShape("fc 640->128", (640,), sl.dense(128)),
    sl.LayerShape("fc 128->128", (128,), sl.dense(128)),
    sl.LayerShape("fc 256->64", (256,), sl.dense(64)),
    sl.LayerShape("fc 72->32", (72,), sl.dense(32)),
    sl.LayerShape("fc 128->8", (128,), sl.dense(8)),
    sl.LayerShape("fc 64->10", (64,), sl.dense(10)),  # ResNet-8's head: a partial row group
    sl.LayerShape("fc 30->6", (30,), sl.dense(6)),  # partial word and group
]
CONV_SHAPES = [
    sl.LayerShape("conv1x1 25x5 64->64", (25, 5, 64), sl.conv(64, 1)),
    sl.LayerShape("conv1x1 12x12 24->32", (12, 12, 24), sl.conv(32, 1)),
    sl.LayerShape("conv1x1 6x6 128->64", (6, 6, 128), sl.conv(64, 1)),
    sl.LayerShape("conv3x3 16x16 32->32", (16, 16, 32), sl.conv(32, 3, padding="same")),
    sl.LayerShape("conv3x3 8x8 64->64", (8, 8, 64), sl.conv(64, 3, padding="same")),
    sl.LayerShape("conv3x3/2 24x24 8->16", (24, 24, 8), sl.conv(16, 3, strides=2, padding="same")),
]

THIN_SHAPES = [  # (the dense family's shapes above keep C_IN out of 4-16 on 1x1)
    sl.LayerShape("thin1x1 48x48 8->8", (48, 48, 8), sl.conv(8, 1)),
    sl.LayerShape("thin1x1 24x24 8->16", (24, 24, 8), sl.conv(16, 1)),
    sl.LayerShape("thin1x1 24x24 16->16", (24, 24, 16), sl.conv(16, 1)),
    sl.LayerShape("thin1x1/2 32x32 16->16", (32, 32, 16), sl.conv(16, 1, strides=2)),
    sl.LayerShape("thin1x1 12x12 16->64", (12, 12, 16), sl.conv(64, 1)),
    sl.LayerShape("thin1x1 16x16 4->8", (16, 16, 4), sl.conv(8, 1)),
    sl.LayerShape("thin1x1 10x10 12->20", (10, 10, 12), sl.conv(20, 1)),
]
"""The layers tp_conv_1x1_thin_s8 runs (family conv_thin: 1x1, 4-16 input channels)."""

DENSE_FAMILIES = ("conv_thin",)
"""Dense families besides the ``*_dense`` ones (run with kernels="dense")."""

DW_SHAPES = [
    sl.LayerShape("dw3x3 25x5 64 (KWS)", (25, 5, 64), sl.depthwise(3, padding="same")),
    sl.LayerShape("dw3x3 12x12 32", (12, 12, 32), sl.depthwise(3, padding="same")),
    sl.LayerShape("dw3x3/2 24x24 16", (24, 24, 16), sl.depthwise(3, strides=2, padding="same")),
    sl.LayerShape("dw3x3 6x6 128", (6, 6, 128), sl.depthwise(3, padding="same")),
    sl.LayerShape("dw5x5 12x12 32", (12, 12, 32), sl.depthwise(5, padding="same")),
    sl.LayerShape("dw5x3 10x8 16 valid", (10, 8, 16), sl.depthwise((5, 3))),
]


@dataclass(frozen=True)
class Run:
    """One measurement: a family on a shape at a sparsity (pattern) or input zero fraction."""

    family: str
    pattern: str
    sparsity: float
    zero_fraction: float | None = None


def _runs(kind: str) -> list[Run]:
    if kind == "thin":
        return [Run("conv_thin", "1x4", 0.0)]
    if kind in ("dw3x3", "dw"):
        return [Run(f"{kind}_dense", "1x4", 0.0),
                *(Run("dw_bsr", "1x4", s) for s in (0.0, 0.5, 0.75, 0.9))]
    bsr = [Run(f"{kind}_bsr_r1", "1x4", s) for s in (0.0, 0.5, 0.75, 0.9)]
    bsr += [Run(f"{kind}_bsr_r{r}", f"{r}x4", s) for r in (2, 4) for s in (0.5, 0.75, 0.9)]
    runs = [Run(f"{kind}_dense", "1x4", 0.0), *bsr,
            Run(f"{kind}_nm2", "2:4", 0.5), Run(f"{kind}_nm1", "1:4", 0.75),
            *(Run(f"{kind}_csr", "unstructured", s) for s in (0.5, 0.75, 0.9))]
    if kind == "fc":
        runs += [Run("fc_zskip", "1x4", 0.0, z) for z in (0.3, 0.6, 0.9)]
    return runs


def features_of(family: str, tflite: bytes, zero_fraction: float | None) -> dict[str, float]:
    """The family's features on the layer, as the planner's estimate computes them."""
    from tinyprune.ir import read_tflite
    from tinyprune.kernels import sparse_conv, sparse_cost, sparse_fc
    from tinyprune.kernels.conv import conv_args
    from tinyprune.kernels.fully_connected import fc_args

    graph = read_tflite(tflite)
    op = next(o for o in graph.ops if o.opcode in sl.WEIGHTED)
    if op.opcode == "DEPTHWISE_CONV_2D":
        return dw_features_of(family, op, graph)
    if op.opcode == "FULLY_CONNECTED":
        a = fc_args(op, graph)
        if family == "fc_dense":
            return sparse_cost.fc_dense_features(a)
        if family == "fc_zskip":
            s = sparse_fc.zskip(a.weights, zero_fraction or 0.0)
        else:
            handlers: list[Any] = [sparse_fc.FcBsrHandler(), sparse_fc.FcNmHandler(),
                                   sparse_fc.FcCsrHandler()]
            s = next(c for h in handlers for c in h.candidates(a) if c.family == family)
        return sparse_cost.fc_features(a.rows, a.in_features, a.out_features, s.work,
                                       s.work_name)
    ca = conv_args(op, graph)
    k4, c_out = sparse_conv.depth4(ca), ca.output_shape[3]
    if family in ("conv_dense", "conv_thin"):
        return sparse_cost.conv_features(sparse_conv.pixels(ca), k4, c_out, c_out * k4)
    conv_handlers: list[Any] = [sparse_conv.ConvBsrHandler(), sparse_conv.ConvNmHandler(),
                                sparse_conv.ConvCsrHandler()]
    cs = next(c for h in conv_handlers for c in h.candidates(ca) if c.family == family)
    return sparse_cost.conv_features(sparse_conv.pixels(ca), k4, c_out, cs.work, cs.work_name,
                                     sparse_conv.PIXELS)


def dw_features_of(family: str, op: Any, graph: Any) -> dict[str, float]:
    """The depthwise families' features (dense: every block; sparse: the stored ones)."""
    from tinyprune.kernels import sparse_cost, sparse_depthwise
    from tinyprune.kernels.conv import depthwise_args

    a = depthwise_args(op, graph)
    _, kh, kw, c = a.filter_shape
    if family.endswith("_dense"):
        work = float(kh * kw * -(-c // 4))
    else:
        s = sparse_depthwise.candidate(a)
        assert s is not None
        work = float(s.encoded.stored_blocks)
    return sparse_cost.dw_features(sparse_depthwise.pixels(a), kh * kw, c, work)


def measure_run(shape: sl.LayerShape, base: bytes, run: Run, board: str,
                work: Path, cycle_model: str = sl.CYCLE_MODEL) -> dict[str, Any]:
    tflite = sl.sparsified(base, run.pattern, run.sparsity)
    dense = run.family.endswith("_dense") or run.family in DENSE_FAMILIES
    kernels = "dense" if dense else ("activation" if run.zero_fraction is not None else "sparse")
    m = sl.measure(tflite, board, work, kernels=kernels, family=None if dense else run.family,
                   zero_fraction=run.zero_fraction, cycle_model=cycle_model)
    if not m.bit_exact:
        raise RuntimeError(f"{shape.id} {run}: not bit-exact on the emulator ({m.kernel})")
    return {"shape": shape.id, "family": run.family, "pattern": run.pattern,
            "sparsity": run.sparsity, "zero_fraction": run.zero_fraction, "kernel": m.kernel,
            "cycles": m.cycles, "features": features_of(run.family, tflite, run.zero_fraction)}


def nnls(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Least squares with non-negative coefficients (drop the most negative, refit)."""
    keep = list(range(a.shape[1]))
    while True:
        coef = np.zeros(a.shape[1])
        sol, *_ = np.linalg.lstsq(a[:, keep], b, rcond=None)
        coef[keep] = sol
        if sol.min(initial=0.0) >= 0 or len(keep) == 1:
            return np.maximum(coef, 0.0)
        keep.pop(int(np.argmin(sol)))


def fit(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per family: coefficients and relative residuals. Rows are weighted by 1 / cycles so
    small layers count as much as big ones (the choice is a ratio)."""
    out: dict[str, dict[str, Any]] = {}
    for family in sorted({r["family"] for r in rows}):
        mine = [r for r in rows if r["family"] == family]
        names = sorted(mine[0]["features"])
        a = np.array([[r["features"][n] for n in names] for r in mine], float)
        b = np.array([r["cycles"] for r in mine], float)
        w = 1.0 / b
        coef = nnls(a * w[:, None], b * w)
        pred = a @ coef
        rel = (pred - b) / b
        out[family] = {"coefficients": {n: round(float(c), 4) for n, c in zip(names, coef,
                                                                            strict=True)},
                       "runs": len(mine), "max_rel_error": round(float(np.abs(rel).max()), 4),
                       "mean_rel_error": round(float(np.abs(rel).mean()), 4)}
        for r, p in zip(mine, pred, strict=True):
            r["predicted"] = round(float(p))
    return out


def variable(cycle_model: str) -> str:
    """The name of the cycle model's coefficients in sparse_cost.py."""
    return "COEFFICIENTS" if cycle_model == "table" else f"COEFFICIENTS_{cycle_model.upper()}"


def stem(cycle_model: str) -> str:
    """The results file of the cycle model's fit (bench/results/<stem>.{md,json})."""
    return "sparse_cost_fit" if cycle_model == "table" else f"sparse_cost_fit_{cycle_model}"


def coefficients_block(fits: dict[str, dict[str, Any]], board: str, date: str,
                       cycle_model: str = "table") -> str:
    lines = [f"# Fit: bench/fit_sparse_cost.py, {board} (M7 build, -O2, DSP path), {cycle_model} "
             "cycle model,", f"# {date}. Residuals of every fit are in "
             f"bench/results/{stem(cycle_model)}.md.",
             f"{variable(cycle_model)}: dict[str, dict[str, float]] = {{"]
    for family, f in fits.items():
        items = ", ".join(f'"{k}": {v!r}' for k, v in f["coefficients"].items())
        lines.append(f'    "{family}": {{{items}}},')
    lines.append("}")
    return "\n".join(lines)


def write_coefficients(block: str, cycle_model: str = "table") -> None:
    text = COST_MODULE.read_text()
    pattern = re.compile(r"# Fit: [^\n]*\n# [^\n]*\n" + variable(cycle_model)
                         + r": dict\[str, dict\[str, float\]\] = \{\n.*?\n\}", re.S)
    if not pattern.search(text):
        raise RuntimeError(f"{COST_MODULE}: the COEFFICIENTS block was not found")
    wrapped = "\n".join(_wrap(line) for line in block.splitlines())
    COST_MODULE.write_text(pattern.sub(lambda _: wrapped, text, count=1))


def _wrap(line: str, width: int = 99) -> str:
    """A coefficient line wrapped at width (ruff's line length), continuing under the brace."""
    if len(line) <= width or "{" not in line:
        return line
    head, body = line.split("{", 1)
    indent = " " * (len(head) + 1)
    parts, cur = [], head + "{"
    for item in body.split(", "):
        if len(cur) + len(item) + 2 > width:
            parts.append(cur.rstrip() + ",")
            cur = indent + item
        else:
            cur = cur + ("" if cur.endswith("{") else ", ") + item
    return "\n".join([*parts, cur])


def markdown(fits: dict[str, dict[str, Any]], rows: list[dict[str, Any]],
             info: dict[str, str], cycle_model: str = "table") -> str:
    head = ["# Kernel cost model fit (tinyprune/kernels/sparse_cost.py)", "",
            *[f"- {k}: {v}" for k, v in info.items()],
            f"- cycles: the emulator's estimates (`{cycle_model}` cycle model, docs/emulator.md); "
            "every run bit-exact", "", "| family | runs | coefficients | mean / max rel. error |",
            "|---|--:|---|--:|"]
    body = [f"| {f} | {v['runs']} | "
            + ", ".join(f"{k} {c:g}" for k, c in v["coefficients"].items())
            + f" | {v['mean_rel_error']:.1%} / {v['max_rel_error']:.1%} |"
            for f, v in fits.items()]
    runs = ["", "| shape | family | pattern | sparsity | zero inputs | cycles | predicted |",
            "|---|---|---|--:|--:|--:|--:|"]
    runs += [f"| {r['shape']} | {r['family']} | {r['pattern']} | {r['sparsity']:.0%} | "
             f"{'-' if r['zero_fraction'] is None else format(r['zero_fraction'], '.0%')} | "
             f"{r['cycles']:,} | {r['predicted']:,} |" for r in rows]
    return "\n".join(head + body + runs) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="nucleo_f746")
    ap.add_argument("--write", action="store_true", help="rewrite sparse_cost.COEFFICIENTS")
    ap.add_argument("--families", default="", help="comma-separated families (default: all)")
    ap.add_argument("--cycle-model", default="table", choices=["table", "m7"],
                    help="the emulator's cycle model the fit is of (default: table)")
    args = ap.parse_args()
    model = args.cycle_model
    from machine import machine  # bench/machine.py

    wanted = set(filter(None, args.families.split(",")))
    plan: list[tuple[sl.LayerShape, Callable[[str], list[Run]], str]] = [
        *((s, _runs, "fc") for s in FC_SHAPES), *((s, _runs, "conv") for s in CONV_SHAPES),
        *((s, _runs, "thin") for s in THIN_SHAPES),
        *((s, _runs, "dw3x3" if s.id.startswith("dw3x3") else "dw") for s in DW_SHAPES)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape, runs_of, kind in plan:
            runs = [r for r in runs_of(kind) if not wanted or r.family in wanted]
            if not runs:
                continue
            base = sl.base_model(shape)
            for run in runs:
                work = Path(tmp) / f"r{len(rows)}"
                rows.append(measure_run(shape, base, run, args.board, work, model))
                r = rows[-1]
                print(f"{shape.id:28} {run.family:12} {run.pattern:12} {run.sparsity:4.0%} "
                      f"{r['cycles']:>10,}", file=sys.stderr)
    fits = fit(rows)
    if wanted:  # refit of some families: keep the others' coefficients and runs
        old = json.loads((RESULTS / f"{stem(model)}.json").read_text())
        fits = {**{f: v for f, v in old["fits"].items() if f not in fits}, **fits}
        rows = [*(r for r in old["runs"] if r["family"] not in wanted), *rows]
        fits = dict(sorted(fits.items()))
    date = dt.date.today().isoformat()
    info = machine(flags="-O2 -mthumb -std=c99 (board -mcpu/-mfpu), DSP path on")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{stem(model)}.json").write_text(json.dumps(
        {"machine": info, "board": args.board, "cycle_model": model, "fits": fits,
         "runs": rows}, indent=1))
    (RESULTS / f"{stem(model)}.md").write_text(markdown(fits, rows, info, model))
    block = coefficients_block(fits, args.board, date, model)
    print(block)
    if args.write:
        write_coefficients(block, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
