"""Channel choice: rounding, minimum, per-layer ratios, global ranking; criteria on known values."""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune.prune.graph import Group, Member
from tinyprune.prune.importance import BNScale, ImportanceContext, Magnitude, Random
from tinyprune.prune.select import Constraints, round_keep, select_global, select_local, top


@pytest.mark.parametrize("n,size,round_to,minimum,expected", [
    (8.0, 16, 4, 1, 8),     # already a multiple
    (6.0, 16, 4, 1, 8),     # half rounds up
    (5.9, 16, 4, 1, 4),     # nearest multiple
    (1.0, 16, 4, 1, 4),     # at least one multiple
    (1.0, 3, 4, 1, 3),      # never more than the group has
    (6.0, 16, 4, 10, 12),   # minimum, then rounded up to a multiple
    (2.5, 5, 1, 1, 3),      # no rounding: nearest integer
    (0.0, 5, 1, 2, 2),      # minimum without rounding
])
def test_round_keep(n: float, size: int, round_to: int, minimum: int, expected: int) -> None:
    assert round_keep(n, size, round_to, minimum) == expected


def test_top_keeps_highest_scores_and_breaks_ties_by_index() -> None:
    np.testing.assert_array_equal(top(np.array([1.0, 3.0, 3.0, 0.5, 2.0]), 3), [1, 2, 4])


def _group(root: int, size: int, owner: str) -> Group:
    member = Member(owner, "Conv2D", "out", np.arange(size)[:, None])
    return Group(root=root, size=size, owners=(owner,), members=(member,))


@pytest.mark.parametrize("ratio,layer_ratios,round_to,minimum,expected", [
    (0.5, None, 4, 1, {0: 8, 1: 4}),
    (0.75, None, 4, 1, {0: 4, 1: 4}),
    (0.75, None, 1, 3, {0: 4, 1: 3}),
    (0.5, {"a": 0.25}, 4, 1, {0: 12, 1: 4}),
    (0.0, None, 4, 1, {0: 16, 1: 8}),
])
def test_select_local_obeys_ratio_rounding_minimum_and_layer_ratios(
    ratio: float, layer_ratios: dict | None, round_to: int, minimum: int, expected: dict
) -> None:
    groups = [_group(0, 16, "a"), _group(1, 8, "b")]
    scores = {0: np.arange(16.0), 1: np.arange(8.0)}
    keep = select_local(groups, scores, ratio, Constraints(round_to, minimum, layer_ratios))
    assert {r: len(k) for r, k in keep.items()} == expected
    assert set(keep[0]) == set(range(16 - expected[0], 16))  # highest scores survive


def test_select_local_is_relative_to_reference_sizes() -> None:
    keep = select_local([_group(0, 12, "a")], {0: np.ones(12)}, 0.5, Constraints(4, 1),
                        reference={"a": 16})
    assert len(keep[0]) == 8


def test_select_global_cuts_the_group_with_lower_normalized_scores_first() -> None:
    groups = [_group(0, 8, "flat"), _group(1, 8, "spread")]
    scores = {0: np.ones(8), 1: np.array([0.01] * 4 + [1.99] * 4)}
    keep = select_global(groups, scores, 0.25, Constraints(round_to=1))
    assert len(keep[0]) == 8
    np.testing.assert_array_equal(keep[1], [4, 5, 6, 7])


def test_select_global_respects_floors_without_losing_the_budget() -> None:
    groups = [_group(0, 4, "small"), _group(1, 16, "big")]
    scores = {0: np.array([0.0, 0.0, 0.0, 4.0]), 1: np.linspace(1, 2, 16)}
    keep = select_global(groups, scores, 0.5, Constraints(round_to=4))
    assert len(keep[0]) == 4      # at its floor (one multiple of 4)
    assert len(keep[1]) == 8      # the budget is taken from the big group instead (20 -> 12)


def _ctx(weights: dict) -> ImportanceContext:
    return ImportanceContext(weights=weights, configs={"c": {}, "bn": {"scale": True}})


def test_magnitude_scores_are_filter_norms() -> None:
    kernel = np.zeros((3, 3, 2, 4), np.float32)
    kernel[..., 1] = 1.0
    kernel[0, 0, 0, 3] = -5.0
    group = Group(0, 4, ("c",), (Member("c", "Conv2D", "out", np.arange(4)[:, None]),))
    ctx = _ctx({"c": [kernel, np.zeros(4)]})
    np.testing.assert_allclose(Magnitude(p=1)(group, ctx), [0, 18, 0, 5])
    np.testing.assert_allclose(Magnitude(p=2)(group, ctx), [0, np.sqrt(18), 0, 5])


def test_bn_scale_and_aggregation_across_members() -> None:
    members = (Member("bn", "BatchNormalization", "out", np.arange(3)[:, None]),
               Member("c", "Dense", "out", np.arange(3)[:, None]))
    group = Group(0, 3, ("c",), members)
    gamma = np.array([0.5, -2.0, 1.0])
    ctx = _ctx({"bn": [gamma, np.zeros(3), np.zeros(3), np.ones(3)],
                "c": [np.ones((2, 3)), np.zeros(3)]})
    np.testing.assert_allclose(BNScale()(group, ctx), [0.5, 2.0, 1.0])
    np.testing.assert_allclose(Magnitude()(group, ctx), [2.0, 2.0, 2.0])


def test_random_is_seeded() -> None:
    group = _group(0, 6, "a")
    ctx = ImportanceContext(weights={}, configs={}, seed=3)
    np.testing.assert_array_equal(Random()(group, ctx), Random()(group, ctx))
