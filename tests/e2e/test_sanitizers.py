"""The generated C of every zoo model under AddressSanitizer and UndefinedBehaviorSanitizer.

The whole test zoo (the coupling and architecture models of ``tests/zoo``, the four MLPerf Tiny
twins of ``tinyprune.models.zoo`` with seeded random weights, the four official MLPerf Tiny
int8 files of ``tests/fixtures/mlperf_tiny`` and two models with many op types) is generated,
compiled with ``-fsanitize=address,undefined -fno-sanitize-recover=all`` on both kernel paths
(portable, and DSP with the C emulation of the intrinsics) and run on 1,000 seeded random
full-range inputs (the first all -128, the second all 127). Any out-of-bounds access or
undefined behaviour aborts the run; the outputs of both paths must equal the TFLite Micro
reference byte for byte.

Time: the interpreter is the slow part (15-17 ms per inference for VWW and ResNet-8; ASan makes
VWW ~25 ms per inference on the host), so its outputs are computed once per model and shared by
the two paths, while the two sanitized builds compile in threads meanwhile. The six models above
``LARGE_MACS`` (MLPerf KWS, VWW, ResNet-8: twins and official files) run
``TINYPRUNE_LARGE_MODEL_INPUTS`` inputs (default 100) to keep ``make test`` within its budget;
``TINYPRUNE_LARGE_MODEL_INPUTS=1000`` runs them on 1,000 like the others (docs/kernels.md has the
times). Coupling models with ops tinyprune does not support are checked to be refused.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests_support import int8_tflite_of
from zoo import ARCHITECTURES, COUPLINGS

from tinyprune import verify
from tinyprune.codegen import generate
from tinyprune.errors import UnsupportedError
from tinyprune.ir import Graph, read_tflite
from tinyprune.plan import plan

SANITIZE = ("-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer")
INPUTS = 1000
LARGE_MACS = 1_000_000
LARGE_INPUTS = int(os.environ.get("TINYPRUNE_LARGE_MODEL_INPUTS", "100"))
UNSUPPORTED = {"zoo_reshape_keep_channels": "REDUCE_MAX", "zoo_spatial_ops": "TILE"}
"""Coupling models (tests/zoo, for the pruning tests) whose ops tinyprune does not support."""
SATURATED = {"twin_vww", "twin_kws"}
"""Twins whose seeded random weights saturate the softmax, so that most or all inputs give the
same output; every other model must map some inputs to different outputs (the premise that
the inputs reach the outputs)."""
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mlperf_tiny"
RUNTIME = Path(__file__).resolve().parents[2] / "runtime"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")]


def _many_ops() -> Any:
    import keras

    inp = keras.Input((11, 9, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu6")(inp)
    a = keras.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    b = keras.layers.Conv2D(8, 1, strides=2)(x)
    x = keras.layers.Add()([a, b])
    y = keras.layers.Multiply()([x, keras.layers.Conv2D(8, 1, activation="sigmoid")(x)])
    x = keras.layers.Concatenate()([x, y])
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)))(x)
    x = keras.layers.AveragePooling2D(2, padding="same")(x)
    x = keras.layers.Conv2D(5, (3, 2))(x)
    x = keras.layers.MaxPooling2D(2, padding="same")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inp, keras.layers.Dense(7, activation="softmax")(x))


def _conv1d() -> Any:
    import keras

    return keras.Sequential([
        keras.Input((30, 5)), keras.layers.Conv1D(6, 4, strides=2, activation="relu"),
        keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])


def _keras(build: Callable[[], Any]) -> Callable[[], bytes]:
    return lambda: int8_tflite_of(build())


def _test_zoo(builder: Callable[[Any], Any]) -> Callable[[], bytes]:
    def make() -> bytes:
        import keras

        keras.utils.set_random_seed(0)
        return int8_tflite_of(builder(keras))
    return make


def _twin(name: str) -> Callable[[], bytes]:
    def make() -> bytes:
        from tinyprune.models import zoo as mlperf

        return int8_tflite_of(mlperf.ZOO[name](flavor="keras3", seed=0))
    return make


def _official(stem: str) -> Callable[[], bytes]:
    return lambda: (FIXTURES / f"{stem}.tflite").read_bytes()


MODELS: dict[str, Callable[[], bytes]] = {
    "many_ops": _keras(_many_ops),
    "conv1d": _keras(_conv1d),
    **{f"zoo_{name}": _test_zoo(b) for name, b in {**COUPLINGS, **ARCHITECTURES}.items()
       if name != "digits_cnn"},  # the same builder as sequential_cnn
    **{f"twin_{name}": _twin(name) for name in ("kws", "vww", "ic", "ad")},
    **{f"official_{stem}": _official(stem) for stem in (
        "ad01_int8", "kws_ref_model", "vww_96_int8", "pretrainedResnet_quant")},
}


def _inputs(graph: Graph, n: int) -> np.ndarray:
    inputs = verify.random_inputs(graph, n, seed=3)
    if all(graph.tensor(i).dtype == "int8" for i in graph.inputs):
        inputs[0, :] = 0x80  # -128 everywhere
        inputs[1, :] = 0x7F  # 127 everywhere
    return inputs


class KernelObjects:
    """Sanitized objects of the runtime kernels, compiled once per (file, path) for all models:
    compiling them is most of a sanitized build (~2.5 s CPU per model and path otherwise). The
    flags are those of ``verify.host_compile``, which then links the objects in their place."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.locks = {False: threading.Lock(), True: threading.Lock()}  # one per path

    def get(self, source: Path, dsp: bool) -> Path:
        obj = self.folder / f"{source.stem}_dsp{int(dsp)}.o"
        with self.locks[dsp]:
            if not obj.exists():
                cmd = [verify.host_cc(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                       f"-DTP_USE_DSP={int(dsp)}", *SANITIZE, f"-I{RUNTIME / 'include'}", "-c",
                       str(source), "-o", str(obj)]
                subprocess.run(cmd, check=True, capture_output=True)
        return obj


@pytest.fixture(scope="module")
def kernel_objects(tmp_path_factory: pytest.TempPathFactory) -> KernelObjects:
    return KernelObjects(tmp_path_factory.mktemp("sanitized_kernels"))


def _build(graph: Graph, dsp: bool, work: Path, objects: KernelObjects) -> tuple[Path, int]:
    work.mkdir(parents=True)
    project = generate(plan(graph, dsp=dsp), work / "src", model_name="m", source_name="m.tflite")
    assert all(s.parent == RUNTIME / "kernels" for s in project.kernel_sources)
    linked = replace(project, kernel_sources=tuple(objects.get(s, dsp)
                                                   for s in project.kernel_sources))
    return verify.host_compile(linked, work, dsp=dsp, extra_flags=SANITIZE), project.output_bytes


@pytest.mark.parametrize("name", sorted(MODELS))
def test_zoo_model_is_clean_under_sanitizers_and_bit_exact(name: str, tmp_path: Path,
                                                            kernel_objects: KernelObjects) -> None:
    graph = read_tflite(tflite := MODELS[name]())
    if name in UNSUPPORTED:
        with pytest.raises(UnsupportedError, match=rf"op {UNSUPPORTED[name]} is not supported"):
            plan(graph, dsp=False)
        return
    large = sum(p.call.macs for p in plan(graph, dsp=False).ops) > LARGE_MACS
    inputs = _inputs(graph, LARGE_INPUTS if large else INPUTS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        builds = {dsp: pool.submit(_build, graph, dsp, tmp_path / f"dsp{int(dsp)}",
                                  kernel_objects)
                  for dsp in (False, True)}
        expected = verify.reference_outputs(tflite, graph, inputs)  # overlaps the compiles
        exes = {dsp: fut.result() for dsp, fut in builds.items()}
    for dsp, (exe, output_bytes) in exes.items():
        outputs = verify.host_outputs(exe, inputs, output_bytes, exe.parent)
        cmp = verify.compare(expected, outputs)
        assert cmp.samples == len(inputs) and cmp.bit_exact, (
            f"{name} dsp={dsp}: {len(cmp.mismatches)} of {len(inputs)} inputs differ, first "
            f"{cmp.mismatches[:1]}")
    if name not in SATURATED:
        assert len(np.unique(expected, axis=0)) > 1, f"{name}: every input gave the same output"
