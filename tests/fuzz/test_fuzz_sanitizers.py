"""Fuzzed models that build, under AddressSanitizer and UndefinedBehaviorSanitizer.

A mutant the reader and the planner accept is a model tinyprune will turn into firmware, so its
generated C must be free of undefined behaviour and bit-exact with the TFLite Micro reference,
like any converted model's. The mutants are those of tests/fuzz/mutate.py: the first that
builds of the official AD model (seed ``TP_FUZZ_SEED``, default 1), and pinned ones found by
``make fuzz`` (seed 2026) whose constants or quantization sit at the edges, which had undefined
behaviour in the kernels before (biases of INT32_MIN and INT32_MAX summed with the accumulator
overflowed int32 in tp_fully_connected_s8.c and tp_conv_s8.c). Each is compiled with the
sanitizers on both kernel paths (the runtime kernels compiled once per path, as in
tests/e2e/test_sanitizers.py) and run on seeded random full-range inputs.
"""

from __future__ import annotations

import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tinyprune import verify
from tinyprune.errors import TinypruneError
from tinyprune.ir import read_tflite
from tinyprune.plan import plan

from .mutate import Mutant, mutant
from .runner import BASES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))
from test_sanitizers import KernelObjects, _build, _inputs

SEED = int(os.environ.get("TP_FUZZ_SEED", "1"))
FIRST = 1  # buildable mutants of ad01_int8 taken from index 0 of SEED
INPUTS = 100
PINNED = {
    "ad01_int8/2026/65": "FC bias INT32_MIN: acc + bias overflowed int32 (portable path)",
    "kws_ref_model/2026/174": "conv bias INT32_MAX: acc + bias overflowed int32 (portable path)",
    "ad01_int8/2026/103": "an activation scale of 2^-24",
}

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")


def _buildable(m: Mutant) -> bool:
    try:
        plan(read_tflite(m.data, name=f"{m.base}-{m.index}.tflite"), dsp=True)
    except TinypruneError:
        return False
    return True


def _first_buildable(base: str, count: int) -> list[Mutant]:
    found: list[Mutant] = []
    for index in range(200):
        m = mutant(base, BASES[base].read_bytes(), SEED, index)
        if _buildable(m):
            found.append(m)
            if len(found) == count:
                return found
    raise AssertionError(f"fewer than {count} of 200 mutants of {base} build (seed {SEED})")


def _pinned(key: str) -> Mutant:
    base, seed, index = key.split("/")
    m = mutant(base, BASES[base].read_bytes(), int(seed), int(index))
    assert _buildable(m), (f"{key} ({PINNED[key]}) no longer builds: mutate.py or the reader "
                           f"changed; pick another from a `make fuzz` run ({m.description})")
    return m


@pytest.fixture(scope="module")
def kernel_objects(tmp_path_factory: pytest.TempPathFactory) -> KernelObjects:
    return KernelObjects(tmp_path_factory.mktemp("sanitized_kernels"))


def _cases() -> list[str]:
    return [*PINNED, *(f"ad01_int8/{SEED}/first{k}" for k in range(FIRST))]


@pytest.mark.parametrize("case", _cases())
def test_buildable_mutant_is_clean_under_sanitizers_and_bit_exact(
        case: str, tmp_path: Path, kernel_objects: KernelObjects) -> None:
    if "/first" in case:
        m = _first_buildable("ad01_int8", FIRST)[int(case.rsplit("first", 1)[1])]
    else:
        m = _pinned(case)
    graph = read_tflite(m.data, name=f"{m.base}-{m.index}.tflite")
    inputs = _inputs(graph, INPUTS)
    with ThreadPoolExecutor(max_workers=2) as pool:
        builds = {dsp: pool.submit(_build, graph, dsp, tmp_path / f"dsp{int(dsp)}",
                                   kernel_objects) for dsp in (False, True)}
        expected = verify.reference_outputs(m.data, graph, inputs)  # overlaps the compiles
        exes = {dsp: fut.result() for dsp, fut in builds.items()}
    for dsp, (exe, output_bytes) in exes.items():
        outputs = verify.host_outputs(exe, inputs, output_bytes, exe.parent)  # UB aborts here
        cmp = verify.compare(expected, outputs)
        assert cmp.samples == INPUTS and cmp.bit_exact, (
            f"{m.key} ({m.description}) dsp={dsp}: {len(cmp.mismatches)} of {INPUTS} inputs "
            f"differ, first {cmp.mismatches[:1]}")
