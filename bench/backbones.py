"""The whole backbone zoo (tests/zoo BACKBONES), dense and pruned to 50%, through the pipeline.

Every model is built (``tinyprune.api.build``, no data: random calibration and inputs, 2 samples
on the emulator) for nucleo_f746 first; when the firmware does not fit, the numbers of that
refusal are recorded and the model is built for mps2_an500 (an emulated Cortex-M7 with 4 MiB of
code memory). Recorded per build: board, flash and RAM used, bit-exactness (host portable + DSP,
emulator), params and MACs, estimated cycles, wall time per stage. Results with the machine and
date go to ``bench/results/backbones.md`` (and ``.json``). About an hour on a loaded 2-core
machine; ``--models`` picks a subset.

usage: python bench/backbones.py [--models mobilenet_v2,conv_autoencoder] [--flavor keras3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
BOARDS = ("nucleo_f746", "mps2_an500")


def _build_once(model: Path, board: str, prune: float | None, out: Path) -> dict[str, Any]:
    from tinyprune.api import build
    from tinyprune.config import BuildOptions
    from tinyprune.errors import TinypruneError

    stages: dict[str, float] = {}

    def progress(line: str) -> None:  # "[3/9] quantize done in 83.7 s"
        match = re.search(r"\] (.+?) done in ([0-9.]+) s", line)
        if match:
            stages[match.group(1)] = float(match.group(2))

    opts = BuildOptions(board=board, model=model, out=out, prune_channels=prune, samples=2,
                        emulator="unicorn")
    t0 = time.monotonic()
    try:
        report = build(opts, progress=progress).report
    except TinypruneError as exc:
        return {"board": board, "error": str(exc), "seconds": round(time.monotonic() - t0, 1),
                "stages": stages}
    run, fw, m = report["run"], report["firmware"], report["model"]
    return {
        "board": board, "seconds": round(time.monotonic() - t0, 1), "stages": stages,
        "flash_used_bytes": fw["flash_used_bytes"], "ram_used_bytes": fw["ram_used_bytes"],
        "bit_exact": bool(run["bit_exact"] and run["host"]["bit_exact"]
                          and run["host"]["dsp_path_bit_exact"] is not False),
        "params": m["params_after"], "macs": m["macs_after"],
        "cycles": run["cycles_per_inference"],
        "barriers": [b["layer"] for b in (m.get("pruning") or {}).get("barriers", [])],
    }


def measure(name: str, flavor: str, prune: float | None, tmp: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    from zoo import BACKBONES

    from tinyprune.models._backend import keras_module
    from tinyprune.models.load import save_model

    suffix = ".keras" if flavor == "keras3" else ".h5"
    work = tmp / f"{name}-{flavor}-{prune}"
    work.mkdir(parents=True)
    path = save_model(BACKBONES[name](keras_module(flavor)), work / f"{name}{suffix}")
    row: dict[str, Any] = {"model": name, "flavor": flavor, "pruned": prune, "attempts": []}
    for board in BOARDS:
        result = _build_once(path, board, prune, work / board)
        row["attempts"].append(result)
        if "error" not in result or "does not fit" not in result["error"]:
            break
    return row


def _cell(row: dict[str, Any]) -> list[str]:
    last = row["attempts"][-1]
    refused = [a["error"] for a in row["attempts"] if "error" in a]
    if "error" in last:
        return [last["board"], "-", "-", "-", "-", "-", f"{last['seconds']}", last["error"][:160]]
    note = "; ".join(r[:120] for r in refused)
    return [last["board"], f"{last['flash_used_bytes']:,}", f"{last['ram_used_bytes']:,}",
            "yes" if last["bit_exact"] else "**no**", f"{last['params']:,}", f"{last['macs']:,}",
            f"{sum(a['seconds'] for a in row['attempts']):.0f}", note]


def markdown(rows: list[dict[str, Any]], info: dict[str, str]) -> str:
    head = ["model", "flavor", "pruned", "board", "flash B", "RAM B", "bit-exact", "params",
            "MACs", "wall s", "refused on the nucleo"]
    lines = ["# Backbone zoo: dense and pruned builds", "",
             "`python bench/backbones.py` (tests/zoo BACKBONES, no weights, random calibration "
             "and inputs, 2 samples on the emulator). Machine: "
             + ", ".join(f"{k} {v}" for k, v in info.items()), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        pruned = "-" if r["pruned"] is None else f"{int(r['pruned'] * 100)}%"
        lines.append("| " + " | ".join([r["model"], r["flavor"], pruned, *_cell(r)]) + " |")
    lines += ["", "Wall times per stage (s): see backbones.json."]
    return "\n".join(lines) + "\n"


def _write(rows: list[dict[str, Any]], info: dict[str, str]) -> None:
    (RESULTS / "backbones.json").write_text(json.dumps({"machine": info, "rows": rows},
                                                       indent=1))
    (RESULTS / "backbones.md").write_text(markdown(rows, info))


def main() -> int:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "tests"))
    from machine import machine  # bench/machine.py
    from zoo import BACKBONES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(BACKBONES))
    parser.add_argument("--flavor", default="keras3", choices=["keras3", "tf_keras"])
    args = parser.parse_args()
    info = {**machine(), "load_average": " ".join(f"{v:.1f}" for v in os.getloadavg())}
    rows: list[dict[str, Any]] = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            for prune in (None, 0.5):
                rows.append(measure(name, args.flavor, prune, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
                _write(rows, info)  # after every row: a run stopped early keeps what it measured
    return 0 if all("error" not in r["attempts"][-1] and r["attempts"][-1]["bit_exact"]
                    for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
