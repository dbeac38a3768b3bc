"""Compact encodings of sparse int8 weight matrices, as the sparse kernels read them from flash.

Every function here is pure: a dense int8 matrix ``[ROWS, K]`` in, encoded arrays out, with their
exact byte count, plus a decoder (used by the tests). ``ROWS`` are output channels; ``K`` is a
row's depth in the kernel's memory order (``IN`` for FULLY_CONNECTED, ``KH * KW * C_IN`` for
CONV_2D, whose filter rows ``[KH][KW][C_IN]`` are already in that order). Rows are cut into
groups of four consecutive values along ``K`` (``K4 = K`` rounded up to a multiple of 4, the
padding is zeros); docs/kernels.md draws the layouts.

- **Block-sparse** (:class:`BsrMatrix`, blocks of ``R x 4``): ``R`` consecutive rows (a row
  group, R = 1, 2 or 4) share one pattern of 4-wide blocks; a block is stored when any of its
  ``4R`` values is non-zero. Arrays: ``counts`` (blocks per row group), the block positions, and
  the packed ``[R][4]`` int8 blocks. Positions are either absolute block columns (``index=
  "cols"``) or byte steps into the kernel's widened input (``index="steps"``: ``8 * (column -
  previous column)``, one uint8 each, so that one UXTAB moves the input pointer; a gap longer
  than 31 blocks gets zero-valued filler blocks). Counts and columns use the narrowest unsigned
  type that holds them (uint8, else uint16).
- **N:M** (:class:`NmMatrix`, ``N:4`` with N = 1 or 2): at most N non-zeros in every group of 4.
  The unit is a group (2:4) or a pair of groups (1:4): two int8 values per unit and a 4-bit code
  saying which two of the unit's values they are (:data:`PAIRS_2_4`; for 1:4 ``p + 4 q``, value
  ``p`` of the first group and ``q`` of the second). Units of a row are padded to an even count.
- **Unstructured** (:class:`CsrMatrix`): every non-zero value with its column (CSR).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

BLOCK = 4
"""Values per block along K (one 32-bit word of int8: one LDR feeds SXTB16 + two SMLAD)."""

STEP_BYTES = 8
"""Bytes of the widened input per block (4 int16) that one ``steps`` unit moves."""

MAX_STEP_BLOCKS = 255 // STEP_BYTES
"""Longest gap (in blocks) one uint8 step covers; longer gaps get zero filler blocks."""

PAIRS_2_4: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
"""2:4 codes: code c keeps values PAIRS_2_4[c] of its group (in that order)."""


def narrowest_uint(max_value: int) -> np.dtype:
    """uint8 when ``max_value`` fits, else uint16 (else uint32): the index type of an encoding."""
    if max_value < 0:
        raise ValueError(f"expected a non-negative maximum, received {max_value}")
    for dtype in (np.uint8, np.uint16, np.uint32):
        if max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"expected a maximum below 2**32, received {max_value}")


def pad_depth(dense: np.ndarray, multiple: int = BLOCK) -> np.ndarray:
    """``[ROWS, K]`` int8 padded with zero columns to a multiple of ``multiple``."""
    rows, depth = _check_matrix(dense)
    padded = np.zeros((rows, -(-depth // multiple) * multiple), np.int8)
    padded[:, :depth] = dense
    return padded


def _check_matrix(dense: np.ndarray) -> tuple[int, int]:
    if dense.ndim != 2:
        raise ValueError(f"expected a 2-D matrix [ROWS, K], received shape {list(dense.shape)}")
    if dense.dtype != np.int8:
        raise ValueError(f"expected int8 values, received {dense.dtype}")
    return int(dense.shape[0]), int(dense.shape[1])


def _check_group(rows: int, group: int) -> None:
    if group not in (1, 2, 4):
        raise ValueError(f"block rows: expected 1, 2 or 4, received {group}")
    if rows % group:
        raise ValueError(f"block rows: {rows} rows are not a multiple of {group}")


# ---- block-sparse ------------------------------------------------------------------------------

def block_mask(dense: np.ndarray, group: int) -> np.ndarray:
    """``[ROWS / R, K4 / 4]`` bool: which ``R x 4`` blocks hold a non-zero value."""
    rows, _ = _check_matrix(dense)
    _check_group(rows, group)
    padded = pad_depth(dense)
    blocks = padded.reshape(rows // group, group, -1, BLOCK)
    return np.asarray(blocks.any(axis=(1, 3)))


def block_sparsity(dense: np.ndarray, group: int) -> float:
    """Fraction of ``R x 4`` blocks that are all zero (the work a block kernel skips)."""
    mask = block_mask(dense, group)
    return 1.0 - float(mask.mean()) if mask.size else 0.0


@dataclass(frozen=True)
class BsrMatrix:
    """A block-sparse ``[ROWS, K]`` int8 matrix (see the module docstring).

    Attributes:
        rows, depth: the dense shape ``[ROWS, K]``.
        group: R, rows per group sharing a block pattern.
        index: ``"cols"`` (absolute block columns) or ``"steps"`` (uint8 byte steps).
        counts: stored blocks per row group (fillers included), narrowest unsigned type.
        positions: per stored block, its column (``cols``) or its step (``steps``), in order.
        blocks: int8 ``[stored blocks, R, 4]``: row r of the group, four values along K.
    """

    rows: int
    depth: int
    group: int
    index: str
    counts: np.ndarray
    positions: np.ndarray
    blocks: np.ndarray

    @property
    def stored_blocks(self) -> int:
        return int(self.blocks.shape[0])

    @property
    def nbytes(self) -> int:
        """Exact bytes in flash: counts + positions + blocks."""
        return int(self.counts.nbytes + self.positions.nbytes + self.blocks.nbytes)


def encode_bsr(dense: np.ndarray, group: int = 1, index: str = "cols") -> BsrMatrix:
    """Encodes ``[ROWS, K]`` int8 into ``R x 4`` blocks (R = ``group``).

    Raises:
        ValueError: not a 2-D int8 matrix, R not in (1, 2, 4) or not dividing ROWS, unknown index.
    """
    rows, depth = _check_matrix(dense)
    if index not in ("cols", "steps"):
        raise ValueError(f"index: expected 'cols' or 'steps', received {index!r}")
    mask = block_mask(dense, group)
    if index == "steps":
        mask = _with_fillers(mask)
    padded = pad_depth(dense).reshape(rows // group, group, -1, BLOCK)
    group_of, cols = np.nonzero(mask)  # row-major: group by group, columns ascending
    blocks = padded[group_of, :, cols]  # [stored blocks, R, 4]
    counts = mask.sum(axis=1).astype(np.int64)
    if index == "cols":
        positions = cols.astype(narrowest_uint(max(padded.shape[2] - 1, 0)))
    else:
        positions = (_steps(group_of, cols) * STEP_BYTES).astype(np.uint8)
    return BsrMatrix(rows=rows, depth=depth, group=group, index=index,
                     counts=counts.astype(narrowest_uint(int(counts.max(initial=0)))),
                     positions=positions, blocks=np.ascontiguousarray(blocks, dtype=np.int8))


def _steps(group_of: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Blocks from the previous stored block of the same group (from column 0 for a group's
    first), for the ``(group, column)`` pairs of a mask in row-major order."""
    steps = np.diff(cols, prepend=0)
    first = np.diff(group_of, prepend=-1) != 0
    steps[first] = cols[first]
    return steps


def _with_fillers(mask: np.ndarray) -> np.ndarray:
    """The block mask with filler blocks added so no step (from column 0 to a group's first
    block, or between two of its blocks) is longer than MAX_STEP_BLOCKS."""
    group_of, cols = np.nonzero(mask)
    long_gaps = np.unique(group_of[_steps(group_of, cols) > MAX_STEP_BLOCKS])
    if not long_gaps.size:
        return mask
    out = mask.copy()
    for g in long_gaps.tolist():
        prev = 0
        for c in np.flatnonzero(mask[g]).tolist():
            while c - prev > MAX_STEP_BLOCKS:
                prev += MAX_STEP_BLOCKS
                out[g, prev] = True
            prev = c
    return out


def bsr_columns(m: BsrMatrix) -> list[np.ndarray]:
    """Absolute block columns of each row group (fillers included)."""
    starts = np.concatenate([[0], np.cumsum(m.counts.astype(np.int64))])
    pos = m.positions.astype(np.int64)
    spans = [pos[a:b] for a, b in itertools.pairwise(starts)]
    return [np.cumsum(p) // STEP_BYTES for p in spans] if m.index == "steps" else spans


def decode_bsr(m: BsrMatrix) -> np.ndarray:
    """The dense ``[ROWS, K]`` int8 matrix of a :class:`BsrMatrix`."""
    k4 = -(-m.depth // BLOCK)
    out = np.zeros((m.rows // m.group, m.group, k4, BLOCK), np.int8)
    start = 0
    for g, cols in enumerate(bsr_columns(m)):
        out[g][:, cols] = m.blocks[start:start + len(cols)].transpose(1, 0, 2)
        start += len(cols)
    return out.reshape(m.rows, k4 * BLOCK)[:, :m.depth]


# ---- N:M ---------------------------------------------------------------------------------------

def fits_nm(dense: np.ndarray, n: int) -> bool:
    """True when every group of 4 values along K has at most ``n`` non-zeros."""
    _check_matrix(dense)
    groups = pad_depth(dense).reshape(dense.shape[0], -1, BLOCK)
    return bool(np.count_nonzero(groups, axis=2).max(initial=0) <= n)


@dataclass(frozen=True)
class NmMatrix:
    """An ``N:4`` sparse ``[ROWS, K]`` int8 matrix (see the module docstring).

    Attributes:
        rows, depth: the dense shape.
        n: N (1 or 2).
        values: int8 ``[ROWS, units, 2]``: the two kept values of each unit (zeros when the unit
            holds fewer non-zeros). units = K4 / 4 (2:4) or K8 / 8 (1:4), rounded up to even.
        codes: uint8 ``[ROWS, units / 2]``: unit 2i's code in bits 0-3, unit 2i + 1's in 4-7.
    """

    rows: int
    depth: int
    n: int
    values: np.ndarray
    codes: np.ndarray

    @property
    def unit_values(self) -> int:
        """Dense values per unit: 4 (2:4) or 8 (1:4)."""
        return BLOCK if self.n == 2 else 2 * BLOCK

    @property
    def units(self) -> int:
        return int(self.values.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.values.nbytes + self.codes.nbytes)


def _unit_slots(n: int) -> tuple[tuple[int, int], ...]:
    """Code -> the positions (within the unit) of its two values."""
    if n == 2:
        return PAIRS_2_4
    return tuple((p, BLOCK + q) for q in range(BLOCK) for p in range(BLOCK))


def encode_nm(dense: np.ndarray, n: int) -> NmMatrix:
    """Encodes ``[ROWS, K]`` int8 with at most ``n`` non-zeros per group of 4 (N:4).

    Raises:
        ValueError: N not 1 or 2, or a group holds more than N non-zeros (names row and group).
    """
    rows, depth = _check_matrix(dense)
    if n not in (1, 2):
        raise ValueError(f"N:M: expected N = 1 or 2 (of 4), received {n}")
    groups = pad_depth(dense).reshape(rows, -1, BLOCK)
    nnz = np.count_nonzero(groups, axis=2)
    if nnz.size and nnz.max() > n:
        r, g = np.argwhere(nnz > n)[0]
        raise ValueError(f"N:M {n}:4: row {r}, group {g} holds {nnz[r, g]} non-zero values")
    width = BLOCK if n == 2 else 2 * BLOCK
    per_row = -(-depth // width)
    units = per_row + per_row % 2
    padded = np.zeros((rows, units * width), np.int8)
    padded[:, :depth] = dense
    flat = padded.reshape(rows, units, width)
    bits = (flat != 0).reshape(rows, units, -1, BLOCK) @ (1 << np.arange(BLOCK))  # [r, u, halves]
    if n == 2:
        codes = _PAIR_CODE[bits[..., 0]]
        slots = np.array(PAIRS_2_4)[codes]
    else:  # code q * 4 + p keeps value p of the first half and value q of the second
        first, second = _FIRST_SET[bits[..., 0]], _FIRST_SET[bits[..., 1]]
        codes = (second * BLOCK + first).astype(np.uint8)
        slots = np.stack([first, second + BLOCK], axis=-1)
    values = np.take_along_axis(flat, slots, axis=2).astype(np.int8)
    codes = codes.astype(np.uint8)
    packed = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return NmMatrix(rows=rows, depth=depth, n=n, values=values, codes=packed)


def _pair_codes() -> np.ndarray:
    """4-bit non-zero mask of a 2:4 group -> the first code whose pair holds its non-zeros."""
    table = np.zeros(1 << BLOCK, np.uint8)
    for mask in range(1 << BLOCK):
        nz = {i for i in range(BLOCK) if mask >> i & 1}
        table[mask] = next((c for c, pair in enumerate(PAIRS_2_4) if nz <= set(pair)), 0)
    return table


_PAIR_CODE = _pair_codes()
_FIRST_SET = np.array([next((i for i in range(BLOCK) if m >> i & 1), 0)
                       for m in range(1 << BLOCK)], np.int64)
"""4-bit mask -> its lowest set position (0 for none): a 1:4 group's kept value."""


def nm_kernel_values(m: NmMatrix) -> np.ndarray:
    """The kept values in the kernels' order: per row, per pair of units (2i, 2i + 1), the word
    [first of 2i, first of 2i + 1, second of 2i, second of 2i + 1] (one SXTB16 gives a unit's
    two values as int16 lanes; tp_nn_sparse.h)."""
    pairs = m.values.reshape(m.rows, m.units // 2, 2, 2)  # [row, pair, unit, kept]
    return np.ascontiguousarray(pairs.transpose(0, 1, 3, 2)).reshape(-1)


def decode_nm(m: NmMatrix) -> np.ndarray:
    """The dense ``[ROWS, K]`` int8 matrix of an :class:`NmMatrix`."""
    slots = _unit_slots(m.n)
    codes = np.zeros((m.rows, m.units), np.uint8)
    codes[:, 0::2] = m.codes & 0x0F
    codes[:, 1::2] = m.codes >> 4
    out = np.zeros((m.rows, m.units, m.unit_values), np.int8)
    for r in range(m.rows):
        for u in range(m.units):
            a, b = slots[codes[r, u]]
            out[r, u, a] = m.values[r, u, 0]
            out[r, u, b] = m.values[r, u, 1]
    return out.reshape(m.rows, -1)[:, :m.depth]


# ---- unstructured (CSR) ------------------------------------------------------------------------

@dataclass(frozen=True)
class CsrMatrix:
    """An unstructured sparse ``[ROWS, K]`` int8 matrix: non-zeros per row and their columns."""

    rows: int
    depth: int
    counts: np.ndarray  # [ROWS], narrowest unsigned type
    cols: np.ndarray  # [nnz], narrowest unsigned type, ascending within a row
    values: np.ndarray  # int8 [nnz]

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    @property
    def nbytes(self) -> int:
        return int(self.counts.nbytes + self.cols.nbytes + self.values.nbytes)


def encode_csr(dense: np.ndarray) -> CsrMatrix:
    """Encodes ``[ROWS, K]`` int8 as CSR (counts per row, column per value, values)."""
    rows, depth = _check_matrix(dense)
    r, c = np.nonzero(dense)
    counts = np.bincount(r, minlength=rows)
    return CsrMatrix(rows=rows, depth=depth,
                     counts=counts.astype(narrowest_uint(int(counts.max(initial=0)))),
                     cols=c.astype(narrowest_uint(max(depth - 1, 0))),
                     values=np.ascontiguousarray(dense[r, c]).astype(np.int8))


def decode_csr(m: CsrMatrix) -> np.ndarray:
    out = np.zeros((m.rows, m.depth), np.int8)
    rows = np.repeat(np.arange(m.rows), m.counts.astype(np.int64))
    out[rows, m.cols.astype(np.int64)] = m.values
    return out


# ---- block-sparse depthwise ----------------------------------------------------------------------

@dataclass(frozen=True)
class DwBsrFilter:
    """A block-sparse DEPTHWISE_CONV_2D filter (depth multiplier 1, tp_nn_sparse.h).

    The dense filter is ``[T, C]`` (``T = KH * KW`` taps, ``C`` channels: the TFLite
    ``[1, KH, KW, C]`` order); a block is one tap of four consecutive channels (one word), the
    last ``C % 4`` channels forming a zero-padded group. A block is stored when any of its four
    values is non-zero.

    Attributes:
        taps, channels: the dense shape ``[T, C]``.
        counts: stored blocks per channel group, narrowest unsigned type.
        index: per stored block its tap, in group order then tap order (narrowest type).
        blocks: int8 ``[stored blocks, 4]``.
    """

    taps: int
    channels: int
    counts: np.ndarray
    index: np.ndarray
    blocks: np.ndarray

    @property
    def groups(self) -> int:
        return -(-self.channels // BLOCK)

    @property
    def stored_blocks(self) -> int:
        return int(self.blocks.shape[0])

    @property
    def block_sparsity(self) -> float:
        """Fraction of the ``T x groups`` blocks that are all zero (skipped)."""
        total = self.taps * self.groups
        return 1.0 - self.stored_blocks / total if total else 0.0

    @property
    def nbytes(self) -> int:
        """Flash bytes of counts, index and blocks (each array at least one element)."""
        return sum(max(a.size, 1) * a.itemsize for a in (self.counts, self.index, self.blocks))


def dw_block_mask(taps: np.ndarray) -> np.ndarray:
    """``[groups, T]`` bool: which (channel group, tap) blocks of a ``[T, C]`` filter hold a
    non-zero value."""
    t, c = _check_matrix(taps)
    groups = -(-c // BLOCK)
    padded = np.zeros((t, groups * BLOCK), np.int8)
    padded[:, :c] = taps
    return np.asarray(padded.reshape(t, groups, BLOCK).any(axis=2).T)


def encode_dw_bsr(taps: np.ndarray) -> DwBsrFilter:
    """The block-sparse depthwise encoding of an int8 ``[T, C]`` filter (see DwBsrFilter)."""
    t, c = _check_matrix(taps)
    mask = dw_block_mask(taps)
    groups = mask.shape[0]
    padded = np.zeros((t, groups * BLOCK), np.int8)
    padded[:, :c] = taps
    by_group = padded.reshape(t, groups, BLOCK).transpose(1, 0, 2)  # [groups, T, 4]
    g_idx, t_idx = np.nonzero(mask)  # row-major: group order, then tap order
    counts = mask.sum(axis=1).astype(narrowest_uint(int(t)))
    index = t_idx.astype(narrowest_uint(max(t - 1, 0)))
    blocks = np.ascontiguousarray(by_group[g_idx, t_idx].reshape(-1, BLOCK), np.int8)
    return DwBsrFilter(t, c, counts, index, blocks)


def decode_dw_bsr(f: DwBsrFilter) -> np.ndarray:
    """The dense int8 ``[T, C]`` filter of an encoding (the inverse of encode_dw_bsr)."""
    out = np.zeros((f.groups, f.taps, BLOCK), np.int8)
    g_idx = np.repeat(np.arange(f.groups), f.counts.astype(np.int64))
    out[g_idx, f.index.astype(np.int64)] = f.blocks
    return np.ascontiguousarray(out.transpose(1, 0, 2).reshape(f.taps, -1)[:, :f.channels])
