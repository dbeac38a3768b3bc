"""MACs per estimated cycle of the MLPerf Tiny models unpruned and pruned to 50% of their
channels: do the thin layers structural pruning leaves keep our kernels efficient?

Each model is the zoo's Keras twin of an official MLPerf Tiny model (seeded weights: cycles do
not depend on training), built with the product path ``tinyprune.api.build`` for nucleo_f746
(unicorn, ``--cycle-model table``, the model the issue's figures use), unpruned and with
``--prune-channels 0.5`` (L1, no data: no fine-tuning), every build bit-exact. Recorded per
model: MACs, cycles, MACs per cycle and the pruned/unpruned ratio (issue 7's target: within
10%), the same per layer type, and the pruned model's least efficient layers with their
shapes. ``--round-to`` sets the pruning's channel multiple (default: the build's).

usage: python bench/pruned_efficiency.py [--models kws,ic,vww,ad] [--round-to N]
Results: bench/results/pruned_efficiency.{md,json}.
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
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
RESULTS = ROOT / "bench" / "results"
MODELS = {"kws": ("kws_dscnn", "KWS DS-CNN"), "ic": ("ic_resnet8", "IC ResNet-8"),
          "vww": ("vww_mobilenet", "VWW MobileNetV1-0.25"), "ad": ("ad_autoencoder", "AD FC")}
WORST = 8  # least efficient layers listed per pruned model


def describe(model: Path) -> list[tuple[str, str]]:
    """(layer type, shape) of every code op of the int8 model, in the report's layer order."""
    from layer_types import layer_type  # bench/layer_types.py: the same grouping

    from tinyprune.ir import read_tflite
    from tinyprune.plan import plan

    planned = plan(read_tflite(model.read_bytes()), dsp=True)
    out = []
    for p in planned.code_ops:
        t = planned.graph.tensors
        w = t[p.op.inputs[1]] if len(p.op.inputs) > 1 and p.op.inputs[1] >= 0 else None
        hw = tuple(w.shape[1:3]) if w is not None and len(w.shape) == 4 else None
        x, y = t[p.op.inputs[0]].shape, t[p.op.outputs[0]].shape
        shape = f"{'x'.join(map(str, x[1:]))} -> {'x'.join(map(str, y[1:]))}"
        if hw is not None:
            shape += f" ({hw[0]}x{hw[1]})"
        out.append((layer_type(p.op.opcode, hw) or "other", shape))  # type: ignore[arg-type]
    return out


def build(path: Path, out: Path, prune: float | None, round_to: int | None
          ) -> dict[str, Any]:
    from tinyprune import api
    from tinyprune.config import BuildOptions

    opts = BuildOptions(board="nucleo_f746", model=path, out=out, samples=1, random_samples=2,
                        cycle_model="table", prune_channels=prune, prune_round_to=round_to)
    r = api.build(opts, progress=lambda msg: None).report
    if not (r["run"]["bit_exact"] and r["run"]["host"]["bit_exact"]):
        raise RuntimeError(f"{path.name} (prune {prune}): not bit-exact")
    return r


def summarize(report: dict[str, Any], out: Path) -> dict[str, Any]:
    layers = report["layers"]
    described = describe(out / "model_int8.tflite")
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for x, (kind, _) in zip(layers, described, strict=True):
        k = kinds[kind]
        k[0] += x["macs"]
        k[1] += x["cycles"]
    macs = report["model"]["macs_after"]
    cycles = report["run"]["cycles_per_inference"]
    return {"macs": macs, "cycles": cycles, "macs_per_cycle": macs / cycles,
            "types": {k: {"macs": v[0], "cycles": v[1], "macs_per_cycle": v[0] / v[1]}
                      for k, v in sorted(kinds.items()) if v[1]},
            "layers": [{k: x[k] for k in ("name", "op", "kernel", "macs", "cycles")}
                       | {"type": kind, "shape": shape,
                          "macs_per_cycle": x["macs"] / x["cycles"] if x["cycles"] else 0.0}
                       for x, (kind, shape) in zip(layers, described, strict=True)]}


def mix_only_cycles(dense: dict[str, Any], pruned: dict[str, Any]) -> float:
    """The pruned model's cycles had every layer kept its unpruned MACs per cycle (layers
    without MACs, such as pooling, keep their pruned cycles): what the new mix of layers alone
    makes of the ratio, with no kernel slower on the thinner shapes."""
    unpruned = {(x["name"], x["op"]): x for x in dense["layers"]}
    total = 0.0
    for x in pruned["layers"]:
        d = unpruned.get((x["name"], x["op"]))
        total += x["macs"] / d["macs_per_cycle"] if x["macs"] and d and d["macs"] else x["cycles"]
    return total


def render(info: dict[str, str], rows: dict[str, dict[str, Any]]) -> str:
    out = ["# MACs per cycle, unpruned and pruned to 50% of the channels (nucleo_f746)", "",
           *[f"- {k}: {v}" for k, v in info.items()], "",
           "The zoo's Keras twins of the MLPerf Tiny models (seeded weights), built with "
           "`--cycle-model table`, unpruned and `--prune-channels 0.5` (L1, no data), all "
           "bit-exact (bench/pruned_efficiency.py). Target (issue 7): pruned within 10% of "
           "unpruned, ratio >= 0.90.", "",
           "| model | MACs unpruned | MACs/cycle | MACs pruned | MACs/cycle | ratio |",
           "|---|--:|--:|--:|--:|--:|"]
    for name, r in rows.items():
        d, p = r["dense"], r["pruned"]
        out.append(f"| {MODELS[name][1]} | {d['macs']:,} | {d['macs_per_cycle']:.3f} | "
                   f"{p['macs']:,} | {p['macs_per_cycle']:.3f} | "
                   f"{p['macs_per_cycle'] / d['macs_per_cycle']:.2f} |")
    out += ["", "## The mix of layer types, and the kernels", "",
            "Pruning channels cuts a conv's or FC's MACs by about the square of the kept "
            "fraction, a depthwise layer's and a first conv's (1-3 input channels) by the "
            "fraction, and the layers the pruning keeps whole (keep_first: KWS's first conv and "
            "depthwise) not at all: the pruned model's MACs move to the layer types "
            "that run fewer MACs per cycle. The mix-only ratio is what the pruned model would "
            "reach had every layer kept its unpruned MACs/cycle (pooling and the other "
            "MAC-free ops at their pruned cycles); ratio = mix-only x kernels.", "",
            "| model | ratio | mix-only | kernels on the thinner shapes |", "|---|--:|--:|--:|"]
    for name, r in rows.items():
        d, p = r["dense"], r["pruned"]
        ratio = p["macs_per_cycle"] / d["macs_per_cycle"]
        mix = p["macs"] / mix_only_cycles(d, p) / d["macs_per_cycle"]
        out.append(f"| {MODELS[name][1]} | {ratio:.2f} | {mix:.2f} | {ratio / mix:.2f} |")
    out += ["", "## Per layer type", "", "| model | type | MACs/cycle unpruned | pruned | ratio |",
            "|---|---|--:|--:|--:|"]
    for name, r in rows.items():
        for kind, d in r["dense"]["types"].items():
            p = r["pruned"]["types"].get(kind)
            if p is None or not d["macs"] or not p["macs"]:
                continue
            out.append(f"| {MODELS[name][1]} | {kind} | {d['macs_per_cycle']:.3f} | "
                       f"{p['macs_per_cycle']:.3f} | "
                       f"{p['macs_per_cycle'] / d['macs_per_cycle']:.2f} |")
    out += ["", f"## The {WORST} least efficient layers of each pruned model (by cycles lost)",
            "", "| model | layer | type | shape | kernel | MACs | cycles | MACs/cycle |",
            "|---|---|---|---|---|--:|--:|--:|"]
    for name, r in rows.items():
        best = r["dense"]["macs_per_cycle"]
        lost = sorted((x for x in r["pruned"]["layers"] if x["macs"]),
                      key=lambda x: x["macs"] / best - x["cycles"])[:WORST]
        for x in lost:
            out.append(f"| {MODELS[name][1]} | {x['name']} | {x['type']} | {x['shape']} | "
                       f"{x['kernel']} | {x['macs']:,} | {x['cycles']:,} | "
                       f"{x['macs_per_cycle']:.3f} |")
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="kws,ic,vww,ad")
    ap.add_argument("--round-to", type=int, default=None)
    ap.add_argument("--tag", default="", help="results file suffix (e.g. for --round-to runs)")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md from the .json")
    args = ap.parse_args()
    stem = "pruned_efficiency" + (f"_{args.tag}" if args.tag else "")
    if args.render:
        saved = json.loads((RESULTS / f"{stem}.json").read_text())
        (RESULTS / f"{stem}.md").write_text(render(saved["machine"], saved["rows"]))
        return 0
    from machine import machine

    from tinyprune.models import zoo
    from tinyprune.models.load import save_model
    from tinyprune.quiet import quiet_third_party

    quiet_third_party()
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pruned-eff-") as tmp:
        for name in args.models.split(","):
            builder, _ = MODELS[name]
            path = save_model(getattr(zoo, builder)(seed=0), Path(tmp) / f"{name}.keras")
            d_out, p_out = Path(tmp) / f"{name}-dense", Path(tmp) / f"{name}-p50"
            dense = summarize(build(path, d_out, None, None), d_out)
            pruned = summarize(build(path, p_out, 0.5, args.round_to), p_out)
            rows[name] = {"dense": dense, "pruned": pruned}
            print(f"{name}: {dense['macs_per_cycle']:.3f} -> {pruned['macs_per_cycle']:.3f} "
                  f"MACs/cycle ({pruned['macs_per_cycle'] / dense['macs_per_cycle']:.2f})",
                  flush=True)
    info = machine(board="nucleo_f746", cycle_model="table (unicorn, DWT CYCCNT)",
                   round_to=str(args.round_to or "the build's"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"machine": info, "rows": rows},
                                                     indent=1) + "\n")
    (RESULTS / f"{stem}.md").write_text(render(info, rows))
    print(f"wrote {RESULTS / stem}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
