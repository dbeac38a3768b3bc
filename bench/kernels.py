"""Per-layer-shape kernel benchmark: MACs per estimated cycle of each conv / FC kernel.

Each shape is a one-layer Keras model built through the real pipeline (quantize, plan, codegen,
firmware, emulator) for the board; the layer's cycles come from the report (DWT CYCCNT served by
the emulator's cycle model, docs/emulator.md). Every shape is built twice: with the kernel the
handler chooses and with only the general kernel (``tp_conv_s8`` / ``tp_depthwise_conv_s8``),
and both must be bit-exact. Spatial sizes are the MLPerf Tiny layers' or smaller (the TFLM
reference interpreter's arena limits a float-input layer to about 16 K values); MACs/cycle
barely depends on them. The CMSIS-NN column is FACTS.md's measurement on the MLPerf Tiny
layers of the same kind (same cost table). Results go to ``bench/results/kernels.md``.

usage: python bench/kernels.py [--board nucleo_f746] [--shapes dw3x3_48x48x8,...]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Shape:
    id: str
    input_shape: tuple[int, ...]
    layer: Callable[[], Any]
    cmsis_nn: str  # FACTS.md "What CMSIS-NN does on these layer shapes"


def _conv(*args: Any, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Conv2D(*args, activation="relu", **kw)
    return make


def _dw(**kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", **kw)
    return make


def _dense(n: int) -> Callable[[], Any]:
    def make() -> Any:
        import keras

        return keras.layers.Dense(n, activation="relu")
    return make


SHAPES = [
    Shape("dw3x3 24x24x8 (VWW dw1)", (24, 24, 8), _dw(), "0.09-0.12"),
    Shape("dw3x3/2 24x24x16 (VWW dw2)", (24, 24, 16), _dw(strides=2), "0.09-0.12"),
    Shape("dw3x3 25x5x64 (KWS)", (25, 5, 64), _dw(), "0.09-0.12"),
    Shape("dw3x3 6x6x128 (VWW dw12)", (6, 6, 128), _dw(), "0.09-0.12"),
    Shape("conv1x1 24x24 8->16 (VWW pw1)", (24, 24, 8), _conv(16, 1), "0.12-0.20"),
    Shape("conv1x1 12x12 16->32 (VWW pw2)", (12, 12, 16), _conv(32, 1), "0.12-0.20"),
    Shape("conv1x1 25x5 64->64 (KWS pw)", (25, 5, 64), _conv(64, 1), "0.36-0.44"),
    Shape("conv3x3/2 48x48 3->8 (VWW conv1)", (48, 48, 3), _conv(8, 3, strides=2, padding="same"),
          "0.11-0.15"),
    Shape("conv10x4/2 49x10 1->64 (KWS conv1)", (49, 10, 1),
          _conv(64, (10, 4), strides=2, padding="same"), "-"),
    Shape("conv3x3 16x16 16->16 (IC)", (16, 16, 16), _conv(16, 3, padding="same"), "-"),
    Shape("fc 640->128 (AD)", (640,), _dense(128), "-"),
]


@contextlib.contextmanager
def general_kernels_only() -> Iterator[None]:
    """Makes the conv handlers choose the general kernels (the 'before' column)."""
    from tinyprune.kernels import conv

    saved = conv.CONV_KERNELS, conv.DEPTHWISE_KERNELS
    conv.CONV_KERNELS, conv.DEPTHWISE_KERNELS = saved[0][-1:], saved[1][-1:]
    try:
        yield
    finally:
        conv.CONV_KERNELS, conv.DEPTHWISE_KERNELS = saved


def measure(shape: Shape, board: str, tmp: Path, tag: str,
            keep: list[Path] | None = None) -> dict[str, Any]:
    """Builds the one-layer model and returns its layer's kernel, MACs and cycles."""
    import keras

    from tinyprune.api import build
    from tinyprune.config import BuildOptions
    from tinyprune.models.load import save_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape.input_shape), shape.layer()])
    path = tmp / f"m{abs(hash(shape.id))}.keras"
    save_model(model, path)
    out = tmp / f"{path.stem}_{tag}"
    # the table model: comparable with the CMSIS-NN figures of FACTS.md (docs/cycle_models.md)
    report = build(BuildOptions(board=board, model=path, out=out, samples=2,
                                cycle_model="table")).report
    if keep is not None:
        keep.append(out)
    layer = max(report["layers"], key=lambda r: r["macs"])
    return {"kernel": layer["kernel"], "macs": layer["macs"], "cycles": layer["cycles"],
            "bit_exact": report["run"]["bit_exact"]}


def markdown(rows: list[dict[str, Any]], info: dict[str, str], board: str) -> str:
    head = [f"# Kernel MACs per estimated cycle on {board}", "",
            *[f"- {k}: {v}" for k, v in info.items()],
            "- one-layer models through the full pipeline; cycles from the emulator's cycle model "
            "(docs/emulator.md), the table FACTS.md priced CMSIS-NN with", "",
            "| layer shape | MACs | general kernel | MACs/cycle | chosen kernel | cycles "
            "| MACs/cycle | CMSIS-NN (FACTS.md) | bit-exact |",
            "|---|--:|---|--:|---|--:|--:|--:|---|"]
    body = [f"| {r['shape']} | {r['macs']:,} | {r['general']} | {r['general_mpc']:.3f} | "
            f"{r['kernel']} | {r['cycles']:,} | {r['mpc']:.3f} | {r['cmsis_nn']} | "
            f"{r['bit_exact']} |" for r in rows]
    return "\n".join(head + body) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--board", default="nucleo_f746")
    ap.add_argument("--shapes", default="", help="comma-separated prefixes of shape ids")
    args = ap.parse_args()
    from run import machine  # bench/run.py

    wanted = [s for s in SHAPES if not args.shapes
              or any(s.id.startswith(p) for p in args.shapes.split(","))]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in wanted:
            fast = measure(shape, args.board, Path(tmp), "fast")
            with general_kernels_only():
                general = measure(shape, args.board, Path(tmp), "general")
            rows.append({"shape": shape.id, "macs": fast["macs"], "general": general["kernel"],
                         "general_mpc": general["macs"] / general["cycles"],
                         "kernel": fast["kernel"], "cycles": fast["cycles"],
                         "mpc": fast["macs"] / fast["cycles"], "cmsis_nn": shape.cmsis_nn,
                         "bit_exact": fast["bit_exact"] and general["bit_exact"]})
            print(markdown(rows[-1:], {}, args.board).splitlines()[-1], file=sys.stderr)
    info = machine()
    text = markdown(rows, info, args.board)
    if not args.shapes:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "kernels.md").write_text(text)
    print(text)
    return 0 if all(r["bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
