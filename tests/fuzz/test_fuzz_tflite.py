"""Bounded fuzzing of the .tflite path (part of ``make test``; ``make fuzz`` runs the long one).

Seeded mutants of the four official MLPerf Tiny int8 models (tests/fuzz/mutate.py) go through
load, read, plan, codegen and the reference interpreter, some also through a host compile and
run, in worker processes with an address-space limit and a timeout (tests/fuzz/runner.py); a
few go all the way through ``tinyprune build`` to the emulator. Every mutant must end in a clean
exit (built, or a TinypruneError) — never an internal error, a crash, a hang, a memory blow-up
or generated C that does not compile — and every refusal by the reader must name the file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .mutate import mutant
from .runner import BAD, BASES, Options, Outcome, items_for, run_cli, run_items

SEED = int(os.environ.get("TP_FUZZ_SEED", "1"))
PER_MODEL = 30  # 120 mutants: ~35 s on a loaded 2-core machine
HOST_EVERY = 8  # of the mutants that get past the reference interpreter
WORKERS = 2

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler")


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> list[Outcome]:
    saved = tmp_path_factory.mktemp("fuzz-bad")
    opts = Options(seed=SEED, host_every=HOST_EVERY, samples=3, timeout=120.0,
                   save_bad_to=str(saved))
    return run_items(items_for(sorted(BASES), PER_MODEL), opts, workers=WORKERS)


def _show(bad: list[Outcome]) -> str:
    return "\n".join(f"{o.result} {o.key} [{o.stage}] {o.detail} <- {o.description} "
                     f"(repro: python -m tests.fuzz.runner repro {o.key.replace('/', ' ')})"
                     for o in bad[:20])


def test_no_mutant_crashes_hangs_or_blows_up(outcomes: list[Outcome]) -> None:
    assert len(outcomes) == PER_MODEL * len(BASES)
    bad = [o for o in outcomes if o.result in BAD]
    assert not bad, "\n" + _show(bad)
    counts = Counter(o.result for o in outcomes)
    assert counts["exit2"] > 0 and counts["built"] > 0, counts
    assert all(o.result in ("built", "exit1", "exit2") for o in outcomes), counts


def test_some_mutants_were_compiled_and_run_on_the_host(outcomes: list[Outcome]) -> None:
    hosted = [o for o in outcomes if o.host]
    assert len(hosted) >= 3, Counter(o.stage for o in outcomes)
    assert any(o.result == "built" for o in hosted)


def test_every_refusal_by_the_reader_names_the_file(outcomes: list[Outcome]) -> None:
    refused = [o for o in outcomes if o.result == "exit2" and o.stage in ("load", "read")]
    assert refused
    for o in refused:
        base, _, index = o.key.split("/")
        assert f"{base}-{index}.tflite: " in o.detail, o
        assert "<tflite bytes>" not in o.detail and "\n" not in o.detail


def test_a_handful_go_all_the_way(outcomes: list[Outcome], tmp_path: Path) -> None:
    """Two mutants that built (of the two smallest models, whose builds are fastest) and two
    that were refused, through the whole CLI."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed (make setup installs it)")
    built = [next(o for o in outcomes if o.result == "built" and o.key.startswith(base + "/"))
             for base in ("ad01_int8", "kws_ref_model")]
    refused = [o for o in outcomes if o.result == "exit2" and o.stage == "load"][:1] + \
        [o for o in outcomes if o.result == "exit2" and o.stage == "plan"][:1]
    assert len(built) == 2 and len(refused) == 2
    def build(o: Outcome) -> tuple[Outcome, Path, int, str]:
        base, seed, index = o.key.split("/")
        m = mutant(base, BASES[base].read_bytes(), int(seed), int(index))
        path = tmp_path / f"{base}-{index}.tflite"
        path.write_bytes(m.data)
        return (o, path, *run_cli(path, tmp_path / f"out-{base}-{index}", timeout=900))

    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(build, built + refused))
    for o, path, rc, stderr in runs:
        assert rc in (0, 1, 2), (o, rc, stderr[-2000:])
        assert "internal error" not in stderr and "Traceback" not in stderr, (o, stderr[-2000:])
        if o in refused:
            assert rc == 2, (o, stderr)
            if o.stage == "load":  # the reader's refusals name the file
                assert str(path) in stderr, (o, stderr)
        elif rc == 0:
            report = json.loads((path.parent / f"out-{path.stem}" / "report.json").read_text())
            assert report["ok"] and report["run"]["bit_exact"], report["run"]
