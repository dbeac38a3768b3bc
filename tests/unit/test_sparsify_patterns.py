"""Sparsity patterns, the Keras -> TFLite weight order, and per-layer allocation (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from tinyprune.errors import UsageError
from tinyprune.sparsify import PATTERNS, BlockPattern, LayerMask, NMPattern, canonical, get_pattern
from tinyprune.sparsify.allocate import Budget, Request, allocate
from tinyprune.sparsify.layers import canonical_shape, from_canonical

RNG = np.random.default_rng(0)


def _remove(pattern, values: np.ndarray, fraction: float) -> np.ndarray:
    """Canonical keep-mask with the lowest-scored ``fraction`` of units removed."""
    keep = np.ones(values.shape, dtype=bool)
    scores = pattern.unit_scores(np.abs(values), keep)
    count = round(fraction * len(scores))
    return pattern.mask(np.abs(values), keep, np.argsort(scores, kind="stable")[:count])


# ---- parsing ------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(PATTERNS))
def test_every_registered_pattern_parses_to_its_own_name(name: str) -> None:
    assert get_pattern(name).name == name
    assert get_pattern(f" {name.upper()} ").name == name


@pytest.mark.parametrize("bad", ["3x3", "1x8", "abc", "0x4", "4:2", "2:2", "", "1x4x4"])
def test_unknown_pattern_is_refused_listing_the_valid_ones(bad: str) -> None:
    with pytest.raises(UsageError, match=r"expected block one of 1x4, 2x4, 4x4, 1x1, 2:4, 1:4") \
            as info:
        get_pattern(bad, "block")
    assert info.value.exit_code == 2
    assert f"block={bad!r}" in str(info.value)


# ---- units and masks on canonical [OUT, P, IN] --------------------------------------------

def test_1x4_removes_four_consecutive_input_channels_of_the_weakest_block() -> None:
    values = np.ones((2, 3, 8))
    values[1, 2, 4:8] = 0.01  # the weakest 1x4 block: out 1, position 2, inputs 4..7
    keep = _remove(BlockPattern(1, 4), values, 1 / 12)
    expected = np.ones_like(keep)
    expected[1, 2, 4:8] = False
    np.testing.assert_array_equal(keep, expected)


def test_a_one_channel_conv_takes_blocks_along_its_filter_row() -> None:
    """The DS-CNN first conv: 10x4 taps over one channel, [OUT, 40, 1] canonical; a block is
    four consecutive weights of the row [KH][KW][IN] (here the four taps of one filter row)."""
    pattern = BlockPattern(1, 4)
    values = RNG.uniform(0.5, 1, (3, 40, 1))
    values[2, 8:12, 0] = 0.01  # row 2 of the 10x4 window of output channel 2
    assert pattern.reason(values.shape) is None and pattern.units(values.shape) == 30
    keep = _remove(pattern, values, 1 / 30)
    expected = np.ones_like(keep)
    expected[2, 8:12, 0] = False
    np.testing.assert_array_equal(keep, expected)
    assert pattern.removed_units(keep) == 1 and pattern.zero_units(values * keep) == 1


def test_a_three_channel_conv_has_blocks_across_kernel_positions() -> None:
    """3x3x3 = 27 weights a row: six full blocks, the last 3 weights stay dense."""
    pattern = BlockPattern(1, 4)
    values = RNG.uniform(0.5, 1, (4, 9, 3))
    flat = values.reshape(4, 27)
    flat[1, 4:8] = 0.01  # positions 1 (inputs 1, 2) and 2 (inputs 0, 1): one block
    assert pattern.units(values.shape) == 24
    keep = _remove(pattern, values, 1 / 24)
    assert keep.shape == values.shape
    np.testing.assert_array_equal(np.flatnonzero(~keep.reshape(4, 27)[1]), [4, 5, 6, 7])
    assert keep.sum() == keep.size - 4
    full = _remove(pattern, values, 1.0)
    assert full.reshape(4, 27)[:, 24:].all() and not full.reshape(4, 27)[:, :24].any()


@pytest.mark.parametrize("shape,reason", [
    ((8, 1, 2), "2 input channels, fewer than the block's 4"),  # a Dense over 2 inputs
    ((8, 1, 3), "3 input channels, fewer than the block's 4"),
    ((2, 9, 3), "2 output channels, fewer than the block's 4"),
])
def test_layers_without_a_full_block_say_why(shape: tuple[int, int, int], reason: str) -> None:
    rows = 4 if shape[0] == 2 else 1
    assert BlockPattern(rows, 4).reason(shape) == reason
    # a 1x3 conv over one channel: its whole row is shorter than a block
    assert BlockPattern(1, 4).reason((8, 3, 1)) == \
        "3 weights per filter row, fewer than the block's 4"


@pytest.mark.parametrize("rows", [2, 4])
def test_grouped_blocks_share_the_pattern_across_output_channels(rows: int) -> None:
    pattern = BlockPattern(rows, 4)
    values = RNG.uniform(0.5, 1, (8, 2, 12))
    values[:rows, 1, 4:8] = 0.0
    keep = _remove(pattern, values, 1 / pattern.units(values.shape))
    assert not keep[:rows, 1, 4:8].any()
    assert keep.sum() == keep.size - rows * 4


def test_block_tails_stay_dense() -> None:
    values = RNG.uniform(0, 1, (10, 1, 10))  # IN % 4 = 2, OUT % 4 = 2
    for pattern in (BlockPattern(1, 4), BlockPattern(4, 4)):
        keep = _remove(pattern, values, 1.0)
        assert keep[:, :, 8:].all() and not keep[: 10 // pattern.rows * pattern.rows, :, :8].any()
        if pattern.rows == 4:
            assert keep[8:].all()


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4)])
def test_nm_keeps_the_largest_n_of_every_m_inputs(n: int, m: int) -> None:
    values = RNG.normal(size=(6, 4, 16))
    keep = _remove(NMPattern(n, m), values, 1.0)
    groups_keep = keep.reshape(6, 4, 4, m)
    assert (groups_keep.sum(axis=-1) == n).all()
    top = np.argsort(-np.abs(values.reshape(6, 4, 4, m)), axis=-1)[..., :n]
    assert np.take_along_axis(groups_keep, top, axis=-1).all()
    assert NMPattern(n, m).removed_units(keep) == 6 * 4 * 4


def test_partial_nm_makes_only_some_groups_nm() -> None:
    pattern = NMPattern(2, 4)
    values = RNG.normal(size=(4, 1, 16))
    keep = _remove(pattern, values, 0.5)
    counts = keep.reshape(-1, 4).sum(axis=1)
    assert sorted(set(counts.tolist())) == [2, 4] and (counts == 2).sum() == 8


@pytest.mark.parametrize("pattern", [BlockPattern(1, 4), BlockPattern(2, 4), NMPattern(2, 4)])
def test_removed_units_score_minus_infinity_so_masks_only_grow(pattern) -> None:
    values = RNG.uniform(0.1, 1, (4, 2, 8))
    first = _remove(pattern, values, 0.25)
    scores = pattern.unit_scores(np.abs(values) + 10.0, first)
    assert np.isneginf(scores).sum() == pattern.removed_units(first)
    assert pattern.zero_units(np.where(first, values, 0.0)) == pattern.removed_units(first)


# ---- the TFLite order, per layer type ----------------------------------------------------

def _tflite(kind: str, keras: np.ndarray) -> np.ndarray:
    """The TFLite weight order written out for each layer type (independent of canonical())."""
    if kind == "Dense":  # [IN, OUT] -> FULLY_CONNECTED [OUT, IN]
        return keras.T
    if kind == "Conv1D":  # [K, IN, OUT] -> CONV_2D [OUT, 1, K, IN]
        return np.transpose(keras, (2, 0, 1))[:, None]
    return np.transpose(keras, (3, 0, 1, 2))  # [KH, KW, IN, OUT] -> [OUT, KH, KW, IN]


LAYOUTS = {"Dense": (16, 6), "Conv2D": (3, 3, 8, 4), "Conv2D_1x1": (1, 1, 12, 8),
           "Conv1D": (5, 8, 4), "SeparableConv2D_pointwise": (1, 1, 16, 4)}


@pytest.mark.parametrize("name", sorted(PATTERNS))
@pytest.mark.parametrize("kind", sorted(LAYOUTS))
def test_mask_is_blocks_of_consecutive_inputs_in_tflite_order(kind: str, name: str) -> None:
    shape = LAYOUTS[kind]
    pattern = get_pattern(name)
    kernel = RNG.normal(size=shape)
    fraction = 1.0 if isinstance(pattern, NMPattern) else 0.75
    keep = from_canonical(_remove(pattern, canonical(kernel), fraction), shape)
    assert keep.shape == shape
    mask = LayerMask("l", kind, keep, pattern.units(canonical_shape(shape)), 0)
    opcode = "FULLY_CONNECTED" if kind == "Dense" else "CONV_2D"
    tflite = _tflite(kind.split("_")[0], keep)
    np.testing.assert_array_equal(mask.tflite(opcode), tflite)
    out, in_ = tflite.shape[0], tflite.shape[-1]
    rows = tflite.reshape(out, -1, in_)  # every (output channel, kernel position) row
    if isinstance(pattern, BlockPattern):
        r, c = pattern.rows, pattern.cols
        blocks = rows[: out // r * r].reshape(out // r, r, rows.shape[1], in_ // c, c)
        uniform = blocks.all(axis=(1, 4)) | ~blocks.any(axis=(1, 4))
        assert uniform.all(), "a block is partly zero"
        removed = (~blocks.any(axis=(1, 4))).sum()
        assert removed * r * c == keep.size - keep.sum()
    else:
        groups = rows.reshape(out, rows.shape[1], in_ // pattern.m, pattern.m)
        assert (groups.sum(axis=-1) <= pattern.n).all()


# ---- allocation ----------------------------------------------------------------------------

BLOCK_1X4 = BlockPattern(1, 4)


def _budgets(pattern=BLOCK_1X4) -> tuple[Budget, ...]:
    shapes = {"small": (3, 3, 8, 16), "mid": (3, 3, 16, 32), "big": (3, 3, 32, 64)}
    return tuple(Budget(n, s, int(np.prod(s)), pattern.units(canonical_shape(s)),
                        pattern.per_unit) for n, s in shapes.items())


def _sparsity(budgets: tuple[Budget, ...], counts: dict[str, int], names=None) -> float:
    chosen = [b for b in budgets if names is None or b.name in names]
    return sum(counts[b.name] * b.per_unit for b in chosen) / sum(b.weights for b in chosen)


def test_uniform_gives_every_layer_the_target() -> None:
    budgets = _budgets()
    counts = allocate(budgets, Request(0.75))
    for b in budgets:
        assert abs(counts[b.name] * b.per_unit / b.weights - 0.75) <= b.per_unit / b.weights


def test_erk_makes_large_layers_sparser_and_meets_the_target() -> None:
    budgets = _budgets()
    counts = allocate(budgets, Request(0.8, "erk", ceiling=0.99))
    per_layer = {b.name: counts[b.name] * b.per_unit / b.weights for b in budgets}
    assert per_layer["small"] < per_layer["mid"] < per_layer["big"]
    assert abs(_sparsity(budgets, counts) - 0.8) < 0.002
    dens = {b.name: 1 - per_layer[b.name] for b in budgets}  # density ∝ sum/prod of dims
    assert dens["mid"] / dens["big"] == pytest.approx(budgets[1].erk / budgets[2].erk, rel=0.02)


def test_ceiling_caps_a_layer_and_the_others_absorb_the_rest() -> None:
    budgets = _budgets()
    counts = allocate(budgets, Request(0.9, "erk", ceiling=0.92))
    for b in budgets:
        assert counts[b.name] * b.per_unit / b.weights <= 0.92 + 1e-9
    assert abs(_sparsity(budgets, counts) - 0.9) < 0.003


def test_global_ranking_takes_the_lowest_scores_across_layers_under_the_ceiling() -> None:
    budgets = _budgets()
    scores = {b.name: RNG.uniform(0, 1, b.units) + (0 if b.name == "big" else 5)
              for b in budgets}
    counts = allocate(budgets, Request(0.5, "global", ceiling=0.95), scores)
    big = next(b for b in budgets if b.name == "big")
    assert counts["small"] == counts["mid"] == 0  # every unit of "big" scores lower
    assert counts["big"] * big.per_unit == pytest.approx(0.5 * sum(b.weights for b in budgets),
                                                         abs=big.per_unit)
    capped = allocate(budgets, Request(0.75, "global", ceiling=0.8), scores)
    assert capped["big"] == big.cap(0.8) and capped["mid"] > 0


def test_overrides_are_fixed_and_outside_the_target() -> None:
    budgets = _budgets()
    counts = allocate(budgets, Request(0.75, "uniform", overrides={"big": 0.0, "small": 0.5}))
    assert counts["big"] == 0
    assert counts["small"] * 4 / budgets[0].weights == pytest.approx(0.5, abs=4 / 1152)
    assert _sparsity(budgets, counts, {"mid"}) == pytest.approx(0.75)


def test_unreachable_target_is_a_usage_error() -> None:
    match = r"expected sparsity at most 0\.8\d+ \(max_layer_sparsity 0\.9"
    with pytest.raises(UsageError, match=match):
        allocate(_budgets(), Request(0.93, "uniform", ceiling=0.9))


def test_nm_allocation_is_all_groups_of_every_layer() -> None:
    budgets = _budgets(NMPattern(2, 4))
    counts = allocate(budgets, Request(0.5, "global", full_sparsity=0.5,
                                       overrides={"small": 0.0}))
    assert counts == {"small": 0, "mid": budgets[1].units, "big": budgets[2].units}
    half = allocate(budgets, Request(0.25, full_sparsity=0.5))
    assert half["big"] == budgets[2].units // 2
