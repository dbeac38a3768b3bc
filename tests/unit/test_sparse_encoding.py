"""Sparse weight encodings: round trips, exact byte counts, index types, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sparse_support import zero_pattern

from tinyprune.kernels import sparse_encoding as se


def _matrix(rows: int, depth: int, pattern: str, sparsity: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dense = rng.integers(-127, 128, (rows, depth)).astype(np.int8)
    dense[dense == 0] = 1
    return zero_pattern(dense, pattern, sparsity, rng)


MATRICES = {
    "fc_1x4_75": _matrix(16, 64, "1x4", 0.75),
    "in_not_multiple_of_4": _matrix(12, 37, "1x4", 0.5),
    "grouped_4x4": _matrix(8, 40, "4x4", 0.6),
    "unstructured": _matrix(6, 50, "unstructured", 0.7),
    "all_zero": np.zeros((8, 20), np.int8),
    "fully_dense": _matrix(4, 16, "1x4", 0.0),
    "one_row_one_value": np.pad(np.array([[5]], np.int8), ((0, 0), (0, 9))),
    "long_gaps": np.pad(np.full((4, 4), 3, np.int8), ((0, 0), (300, 2))),
    "wide_1200": _matrix(4, 1200, "1x4", 0.9),
    "two_of_four": _matrix(8, 32, "2:4", 0.0),
    "one_of_four": _matrix(8, 30, "1:4", 0.0),
}


@pytest.mark.parametrize("name", list(MATRICES))
@pytest.mark.parametrize("group", [1, 2, 4])
@pytest.mark.parametrize("index", ["cols", "steps"])
def test_bsr_round_trip_and_bytes(name: str, group: int, index: str) -> None:
    dense = MATRICES[name]
    if dense.shape[0] % group:
        with pytest.raises(ValueError, match="multiple of"):
            se.encode_bsr(dense, group, index)
        return
    m = se.encode_bsr(dense, group, index)
    assert np.array_equal(se.decode_bsr(m), dense)
    assert m.nbytes == m.counts.nbytes + m.positions.nbytes + m.blocks.nbytes
    assert m.blocks.shape == (m.stored_blocks, group, 4) and m.blocks.dtype == np.int8
    assert int(m.counts.astype(np.int64).sum()) == m.stored_blocks == m.positions.size
    nonzero_blocks = int(se.block_mask(dense, group).sum())
    if index == "cols":
        assert m.stored_blocks == nonzero_blocks  # no fillers
    else:
        assert m.positions.dtype == np.uint8 and m.stored_blocks >= nonzero_blocks
        assert int(m.positions.max(initial=0)) <= se.STEP_BYTES * se.MAX_STEP_BLOCKS


def test_bsr_index_types_are_the_narrowest() -> None:
    narrow = se.encode_bsr(_matrix(4, 1024, "1x4", 0.5), 1, "cols")  # 256 block columns
    assert narrow.positions.dtype == np.uint8 and narrow.counts.dtype == np.uint8
    wide = se.encode_bsr(_matrix(4, 1028, "1x4", 0.0), 1, "cols")  # 257 columns, all kept
    assert wide.positions.dtype == np.uint16 and wide.counts.dtype == np.uint16
    assert se.narrowest_uint(255) == np.uint8 and se.narrowest_uint(256) == np.uint16
    assert se.narrowest_uint(65536) == np.uint32
    with pytest.raises(ValueError, match="non-negative"):
        se.narrowest_uint(-1)


def test_bsr_byte_count_of_a_known_layer() -> None:
    """640 -> 128 with exactly 40 of 160 blocks kept per row: 5 bytes per block + 1 per row."""
    dense = np.zeros((128, 640), np.int8)
    for r in range(128):
        cols = (np.arange(40) * 4 + r % 4)
        dense[r].reshape(160, 4)[cols] = 7
    m = se.encode_bsr(dense, 1, "steps")
    assert m.stored_blocks == 128 * 40  # steps of 4 blocks: no fillers
    assert m.nbytes == 128 * 1 + 128 * 40 * (1 + 4)
    assert m.nbytes / dense.size < 0.35


def test_bsr_steps_bridge_long_gaps_with_zero_fillers() -> None:
    dense = np.zeros((1, 400), np.int8)
    dense[0, 396:400] = [1, 2, 3, 4]  # block 99: 99 = 3 * 31 + 6
    m = se.encode_bsr(dense, 1, "steps")
    assert m.positions.tolist() == [248, 248, 248, 48]
    assert not m.blocks[:3].any() and m.blocks[3, 0].tolist() == [1, 2, 3, 4]
    assert se.bsr_columns(m)[0].tolist() == [31, 62, 93, 99]


def test_bsr_empty_rows_and_all_zero_layer() -> None:
    dense = _matrix(8, 24, "1x4", 0.3)
    dense[[1, 5]] = 0
    m = se.encode_bsr(dense, 1, "cols")
    assert m.counts[1] == 0 and m.counts[5] == 0
    zero = se.encode_bsr(np.zeros((8, 24), np.int8), 2, "steps")
    assert zero.stored_blocks == 0 and zero.nbytes == 4 and zero.counts.tolist() == [0] * 4
    assert se.block_sparsity(np.zeros((8, 24), np.int8), 1) == 1.0


def test_block_sparsity_counts_the_padded_tail_group() -> None:
    dense = np.zeros((2, 6), np.int8)
    dense[:, 5] = 1  # only the partial last group (values 4, 5) is non-zero
    assert se.block_sparsity(dense, 1) == 0.5 and se.block_sparsity(dense, 2) == 0.5


@pytest.mark.parametrize("name", list(MATRICES))
@pytest.mark.parametrize("n", [1, 2])
def test_nm_round_trip_or_refusal(name: str, n: int) -> None:
    dense = MATRICES[name]
    if not se.fits_nm(dense, n):
        with pytest.raises(ValueError, match=f"{n}:4: row"):
            se.encode_nm(dense, n)
        return
    m = se.encode_nm(dense, n)
    assert np.array_equal(se.decode_nm(m), dense)
    units = -(-dense.shape[1] // m.unit_values)
    assert m.units == units + units % 2 and m.codes.shape == (dense.shape[0], m.units // 2)
    assert m.nbytes == dense.shape[0] * (2 * m.units + m.units // 2)
    assert int(m.codes.max(initial=0) & 0x0F) < (6 if n == 2 else 16)


def test_nm_bytes_per_value() -> None:
    two = se.encode_nm(MATRICES["two_of_four"], 2)  # 32 values: 8 units of 4
    assert two.nbytes == 8 * (8 * 2 + 4)  # 0.625 bytes per dense value
    one = se.encode_nm(_matrix(8, 64, "1:4", 0.0), 1)  # 64 values: 8 units of 8
    assert one.nbytes == 8 * (8 * 2 + 4)  # 0.3125 bytes per dense value


@pytest.mark.parametrize("name", list(MATRICES))
def test_csr_round_trip(name: str) -> None:
    dense = MATRICES[name]
    m = se.encode_csr(dense)
    assert np.array_equal(se.decode_csr(m), dense)
    assert m.nnz == np.count_nonzero(dense)
    assert m.nbytes == m.counts.nbytes + m.cols.nbytes + m.nnz
    assert m.cols.dtype == (np.uint8 if dense.shape[1] <= 256 else np.uint16)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((4,), np.int8), "2-D"),
    (np.zeros((4, 4), np.int16), "int8"),
])
def test_bad_matrices_are_refused(bad: np.ndarray, match: str) -> None:
    for encode in (lambda d: se.encode_bsr(d, 1), lambda d: se.encode_nm(d, 2), se.encode_csr):
        with pytest.raises(ValueError, match=match):
            encode(bad)
    with pytest.raises(ValueError, match="1, 2 or 4"):
        se.encode_bsr(np.zeros((6, 4), np.int8), 3)
    with pytest.raises(ValueError, match="'cols' or 'steps'"):
        se.encode_bsr(np.zeros((4, 4), np.int8), 1, "deltas")
    with pytest.raises(ValueError, match="N = 1 or 2"):
        se.encode_nm(np.zeros((4, 4), np.int8), 3)
