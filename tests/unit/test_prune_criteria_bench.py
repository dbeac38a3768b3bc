"""bench/prune_criteria.py without training: which criteria differ beyond the seed noise, one
cut per row for the criteria the seed does not change, command lines without machine paths.
The pruning and fine-tuning are faked here; the bench itself runs the real ones."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def pc() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        module = importlib.import_module("prune_criteria")
        assert Path(module.__file__).parent == BENCH, module.__file__
        yield module
    finally:
        sys.path.remove(str(BENCH))


def row(pc: Any, criterion: str, per_seed: list[float], ratio: float = 0.5) -> Any:
    mean = sum(per_seed) / len(per_seed)
    return pc.Row(criterion=criterion, ratio=ratio, macs=1, params=1, macs_reduction=2.0,
                  acc_pruned=0.1, acc_compensated=0.5, acc_finetuned=mean,
                  acc_compensated_finetuned=None, finetuned_per_seed=per_seed,
                  finetuned_std=pc.std(per_seed))


def test_distinct_lists_only_differences_beyond_the_noise(pc: Any) -> None:
    rows = [row(pc, "l1", [0.90, 0.91, 0.92]), row(pc, "l2", [0.905, 0.915, 0.925]),
            row(pc, "random", [0.80, 0.81, 0.82])]
    pairs = pc.distinct(rows)["0.5"]
    assert {(p["better"], p["worse"]) for p in pairs} == {("l1", "random"), ("l2", "random")}
    assert all(p["difference"] > p["noise"] > 0 for p in pairs)


def test_distinct_needs_more_than_one_seed(pc: Any) -> None:
    assert pc.distinct([row(pc, "l1", [0.9]), row(pc, "random", [0.1])]) == {"0.5": []}


def fake_prune(calls: list[tuple[str, int, bool]]) -> Any:
    def prune_once(model: Any, data: Any, settings: Any, seed: int, **config: Any) -> Any:
        calls.append((config["criterion"], seed, bool(config.get("compensate"))))
        return SimpleNamespace(model=f"cut-{seed}", macs_before=100, macs_after=50,
                               params_after=10, accuracy=SimpleNamespace(after_prune=0.5))
    return prune_once


@pytest.mark.parametrize(("criterion", "cuts"), [("l1", [0]), ("random", [0, 1, 2])])
def test_measure_cuts_once_unless_the_seed_draws_the_ranking(
        pc: Any, monkeypatch: pytest.MonkeyPatch, criterion: str, cuts: list[int]) -> None:
    calls: list[tuple[str, int, bool]] = []
    tuned: list[tuple[str, int]] = []
    monkeypatch.setattr(pc, "prune_once", fake_prune(calls))
    monkeypatch.setattr(pc, "finetuned_accuracy",
                        lambda pruned, data, ft, seed: tuned.append((pruned, seed)) or 0.9)
    r = pc.measure(None, None, criterion, 0.5, pc.Settings(epochs=1, seeds=(0, 1, 2)), False)
    assert [seed for _, seed, comp in calls if not comp] == cuts
    assert [seed for _, seed, comp in calls if comp] == [0]  # compensation: first seed only
    assert [seed for _, seed in tuned] == [0, 1, 2]  # every seed fine-tunes its own copy
    assert r.finetuned_per_seed == [0.9, 0.9, 0.9] and r.macs_reduction == 2.0


def test_command_lines_carry_no_machine_paths(pc: Any) -> None:
    inside = pc.ROOT / "build" / "kws" / "kws.npz"
    assert pc._portable(f"python bench/prune_criteria.py --data {inside} --results "
                        "/elsewhere/part_a --seeds 0,1") == (
        "python bench/prune_criteria.py --data build/kws/kws.npz --results part_a --seeds 0,1")


def test_missing_rows_of_the_grid_are_named(pc: Any) -> None:
    rows = [row(pc, c, [0.9, 0.9]) for c in pc.CRITERIA] + [row(pc, "l1", [0.9, 0.9], 0.3)]
    gaps = pc.missing(rows)
    assert ("l1", 0.3) not in gaps and ("l2", 0.3) in gaps and ("random", 0.7) in gaps
    assert len(gaps) == 2 * len(pc.CRITERIA) - 1
    assert "15 of the 24 rows" in "\n".join(pc._missing_lines(rows))
    full = [row(pc, c, [0.9], r) for c in pc.CRITERIA for r in pc.RATIOS]
    assert pc.missing(full) == [] and pc._missing_lines(full) == []
