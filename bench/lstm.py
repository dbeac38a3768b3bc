"""Estimated cycles of tp_lstm_s8 (UNIDIRECTIONAL_SEQUENCE_LSTM) on rolled tf_keras LSTMs of a
few sizes, DSP path against the portable path on the same core.

Each model (tf_keras ``Input((T, F), batch_size=1)`` -> ``LSTM(U)`` -> ``Dense(4)``, seeded
weights) is built with ``tinyprune build`` for nucleo_f746 (Cortex-M7, unicorn, the board's m7
cycle model) and for a copy of that board with ``dsp = false`` (the portable C path, same core
and memory); every build must be bit-exact with TFLite Micro. Reported per build: the LSTM
layer's est. cycles, MACs per cycle, and the firmware's flash and RAM.
Results go to ``bench/results/lstm.{md,json}`` with the machine and date.

usage: python bench/lstm.py [--samples 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
SIZES = ((8, 4, 8), (16, 16, 32), (49, 10, 64))
"""(time steps T, features F, units U): the e2e test model, a mid size, a KWS-like MFCC input."""
BOARD = "nucleo_f746"


def _model(steps: int, features: int, units: int, path: Path) -> Path:
    import tf_keras as k

    from tinyprune.models.load import save_model

    k.backend.clear_session()
    k.utils.set_random_seed(0)
    inp = k.Input((steps, features), batch_size=1)
    m = k.Model(inp, k.layers.Dense(4)(k.layers.LSTM(units, name="lstm")(inp)))
    return save_model(m, path)


def _portable_board(folder: Path) -> Path:
    """A boards folder holding nucleo_f746 with dsp = false (named nucleo_f746_portable)."""
    text = (ROOT / "boards" / f"{BOARD}.toml").read_text()
    text = re.sub(r"^dsp = true", "dsp = false", text, flags=re.M)
    text = re.sub(r'^name = ".*"', f'name = "{BOARD}_portable"', text, flags=re.M)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{BOARD}_portable.toml").write_text(text)
    return folder


def _build(model: Path, board: str, boards_dir: Path | None, out: Path, samples: int
           ) -> dict[str, Any]:
    from tinyprune.cli import main

    args = ["build", "--board", board, "--model", str(model), "--out", str(out),
            "--samples", str(samples)]
    if boards_dir is not None:
        args += ["--boards-dir", str(boards_dir)]
    rc = main(args)
    r = json.loads((out / "report.json").read_text())
    lstm = next(x for x in r["layers"] if x["op"] == "UNIDIRECTIONAL_SEQUENCE_LSTM")
    return {"rc": rc, "bit_exact": bool(r["run"]["bit_exact"]), "macs": lstm["macs"],
            "lstm_cycles": lstm["cycles"],
            "macs_per_cycle": round(lstm["macs"] / lstm["cycles"], 3),
            "flash": r["firmware"]["flash_used_bytes"], "ram": r["firmware"]["ram_used_bytes"],
            "cycle_model": r["run"]["cycle_model"]}


def markdown(rows: list[dict[str, Any]], info: dict[str, str]) -> str:
    head = [f"# tp_lstm_s8: estimated cycles on {BOARD} ({info['date']})", "",
            "- machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
            "- model: tf_keras Input((T, F), batch_size=1) -> LSTM(U) -> Dense(4); one build per "
            "path (DSP: the board; portable: the same board with dsp = false); cycles are the "
            f"LSTM layer's, estimated by the {rows[0]['cycle_model']} cycle model "
            "(docs/cycle_models.md)", "",
            "| T x F -> U | path | MACs | est. cycles | MACs/cycle | flash | RAM | bit-exact |",
            "|---|---|--:|--:|--:|--:|--:|---|"]
    body = [f"| {r['size']} | {r['path']} | {r['macs']:,} | {r['lstm_cycles']:,} | "
            f"{r['macs_per_cycle']} | {r['flash']:,} | {r['ram']:,} | {r['bit_exact']} |"
            for r in rows]
    return "\n".join(head + body) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=2)
    args = ap.parse_args()
    from machine import machine  # bench/machine.py

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        boards = _portable_board(Path(tmp) / "boards")
        for steps, features, units in SIZES:
            size = f"{steps} x {features} -> {units}"
            model = _model(steps, features, units, Path(tmp) / f"lstm_{steps}_{units}.h5")
            for path, board, folder in (("DSP", BOARD, None),
                                        ("portable", f"{BOARD}_portable", boards)):
                out = Path(tmp) / f"out_{steps}_{units}_{path}"
                rows.append({"size": size, "path": path,
                             **_build(model, board, folder, out, args.samples)})
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lstm.md").write_text(markdown(rows, info))
    (RESULTS / "lstm.json").write_text(json.dumps({"machine": info, "rows": rows}, indent=2)
                                       + "\n")
    print(markdown(rows, info))
    return 0 if all(r["rc"] == 0 and r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
