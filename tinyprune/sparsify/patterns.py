"""Sparsity patterns: which weights are zeroed together, in the kernels' memory order.

Every pattern works on a kernel in its *canonical* form ``[OUT, P, IN]`` (see
:func:`tinyprune.sparsify.layers.canonical`): ``OUT`` output channels, ``P`` kernel positions
(``KH * KW`` for a 2-D convolution, ``K`` for a 1-D one, 1 for a dense layer) and ``IN`` input
channels, innermost. That is the TFLite memory order of FULLY_CONNECTED weights ``[OUT, IN]`` and
CONV_2D filters ``[OUT, KH, KW, IN]``, so "consecutive input channels" below are consecutive
bytes of the int8 weights the sparse kernels read.

A pattern splits the kernel into *units*, the things a criterion scores and the allocation
removes:

- ``RxC`` blocks (:class:`BlockPattern`): R consecutive output channels x C consecutive input
  channels at one kernel position. ``1x4`` (the default) is one 32-bit word of int8 weights;
  ``2x4``/``4x4`` share the zero pattern across 2/4 output channels so one activation load feeds
  several rows; ``1x1`` is unstructured sparsity. Removing a unit zeroes all ``R*C`` weights.
- ``N:M`` (:class:`NMPattern`): groups of M consecutive input channels keep at most N non-zeros.
  Removing a unit zeroes the ``M-N`` least salient weights of the group; a layer is N:M sparse
  when every group is (sparsity ``1 - N/M``).

Channel counts that are not multiples of the block: the full blocks start at input channel 0
(and output channel 0) at every kernel position; the remainder (``IN % C`` input channels,
``OUT % R`` output channels) is never pruned and stays dense, so a kernel can run it with dense
code. A convolution with fewer than C input channels (a first layer over 1 or 3 channels) has
its ``RxC`` blocks along the whole filter row ``KH * KW * IN`` instead (the same memory order:
the block-sparse kernels cut that row into 4-wide blocks anyway), so the MLPerf DS-CNN's 10x4
first conv over one channel takes ``1x4`` blocks of four horizontal taps. A layer whose whole row
is shorter than C (or that has fewer than R output channels) has no unit and cannot take the
pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tinyprune.errors import UsageError

Shape3 = tuple[int, int, int]


class Pattern(Protocol):
    """A sparsity pattern over canonical ``[OUT, P, IN]`` kernels."""

    @property
    def name(self) -> str:
        """The pattern as written by the user (``"1x4"``, ``"2:4"``)."""

    @property
    def per_unit(self) -> int:
        """Weights zeroed when one unit is removed."""

    @property
    def full_sparsity(self) -> float | None:
        """The sparsity every layer must end at (N:M), or None when any sparsity is allowed."""

    def reason(self, shape: Shape3) -> str | None:
        """Why a kernel of canonical ``shape`` cannot take the pattern (None when it can)."""

    def units(self, shape: Shape3) -> int:
        """How many units a kernel of canonical ``shape`` has."""

    def unit_scores(self, saliency: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """One score per unit (flat, unit order) from per-weight ``saliency`` >= 0.

        Units already removed under ``keep`` (the previous mask) score ``-inf``, so masks only
        grow: what was removed stays removed.
        """

    def mask(self, saliency: np.ndarray, keep: np.ndarray, removed: np.ndarray) -> np.ndarray:
        """The canonical keep-mask with the units ``removed`` (flat unit indices) taken out."""

    def removed_units(self, keep: np.ndarray) -> int:
        """Units removed in the canonical keep-mask ``keep``."""

    def zero_units(self, values: np.ndarray) -> int:
        """Units of a canonical weight array that are already removed (all-zero blocks, or N:M
        groups with at most N non-zeros)."""


@dataclass(frozen=True)
class BlockPattern:
    """``rows x cols`` blocks: ``rows`` output channels by ``cols`` consecutive input channels."""

    rows: int
    cols: int

    @property
    def name(self) -> str:
        return f"{self.rows}x{self.cols}"

    @property
    def per_unit(self) -> int:
        return self.rows * self.cols

    @property
    def full_sparsity(self) -> float | None:
        return None

    def reason(self, shape: Shape3) -> str | None:
        out, _, in_ = self._flat(shape)
        if in_ < self.cols:
            what = "input channels" if shape[1] == 1 else "weights per filter row"
            return f"{in_} {what}, fewer than the block's {self.cols}"
        if out < self.rows:
            return f"{out} output channels, fewer than the block's {self.rows}"
        return None

    def _flat(self, shape: Shape3) -> Shape3:
        """The shape blocks are cut from: ``[OUT, 1, P * IN]`` when ``IN`` is narrower than a
        block (a first convolution), else ``shape``."""
        out, p, in_ = shape
        return (out, 1, p * in_) if in_ < self.cols else (out, p, in_)

    def _view(self, array: np.ndarray) -> np.ndarray:
        return array.reshape(self._flat(array.shape))

    def _grid(self, shape: Shape3) -> tuple[int, int, int]:
        out, p, in_ = self._flat(shape)
        return out // self.rows, p, in_ // self.cols

    def units(self, shape: Shape3) -> int:
        r, p, c = self._grid(shape)
        return r * p * c

    def _blocks(self, array: np.ndarray) -> np.ndarray:
        """``[OUT, P, IN]`` -> ``[R-blocks, rows, P, C-blocks, cols]`` over the full blocks."""
        r, p, c = self._grid(array.shape)
        full = self._view(array)[: r * self.rows, :, : c * self.cols]
        return full.reshape(r, self.rows, p, c, self.cols)

    def unit_scores(self, saliency: np.ndarray, keep: np.ndarray) -> np.ndarray:
        scores = self._blocks(saliency.astype(np.float64)).sum(axis=(1, 4))
        alive = self._blocks(keep).any(axis=(1, 4))
        return np.where(alive, scores, -np.inf).reshape(-1)

    def mask(self, saliency: np.ndarray, keep: np.ndarray, removed: np.ndarray) -> np.ndarray:
        r, p, c = self._grid(keep.shape)
        alive = np.ones(r * p * c, dtype=bool)
        alive[removed] = False
        grid = alive.reshape(r, 1, p, c, 1)
        full = np.broadcast_to(grid, (r, self.rows, p, c, self.cols))
        out = self._view(keep).copy()
        out[: r * self.rows, :, : c * self.cols] &= full.reshape(r * self.rows, p, c * self.cols)
        return out.reshape(keep.shape)

    def removed_units(self, keep: np.ndarray) -> int:
        return int((~self._blocks(keep).any(axis=(1, 4))).sum())

    def zero_units(self, values: np.ndarray) -> int:
        return int((~(self._blocks(values) != 0).any(axis=(1, 4))).sum())


@dataclass(frozen=True)
class NMPattern:
    """At most ``n`` non-zeros in every ``m`` consecutive input channels."""

    n: int
    m: int

    @property
    def name(self) -> str:
        return f"{self.n}:{self.m}"

    @property
    def per_unit(self) -> int:
        return self.m - self.n

    @property
    def full_sparsity(self) -> float | None:
        return 1.0 - self.n / self.m

    def reason(self, shape: Shape3) -> str | None:
        if shape[2] < self.m:
            return f"{shape[2]} input channels, fewer than the group's {self.m}"
        return None

    def units(self, shape: Shape3) -> int:
        out, p, in_ = shape
        return out * p * (in_ // self.m)

    def _groups(self, array: np.ndarray) -> np.ndarray:
        out, p, in_ = array.shape
        g = in_ // self.m
        return array[:, :, : g * self.m].reshape(out, p, g, self.m)

    def unit_scores(self, saliency: np.ndarray, keep: np.ndarray) -> np.ndarray:
        sal = np.where(self._groups(keep), self._groups(saliency.astype(np.float64)), -np.inf)
        # the loss of making a group N:M: the M-N smallest saliencies (-inf once done)
        return np.sort(sal, axis=-1)[..., : self.per_unit].sum(axis=-1).reshape(-1)

    def mask(self, saliency: np.ndarray, keep: np.ndarray, removed: np.ndarray) -> np.ndarray:
        groups_keep = self._groups(keep)
        sal = np.where(groups_keep, self._groups(saliency.astype(np.float64)), -np.inf)
        flat_sal = sal.reshape(-1, self.m)[removed]
        order = np.argsort(flat_sal, axis=-1, kind="stable")[:, : self.per_unit]
        flat_keep = groups_keep.reshape(-1, self.m).copy()
        rows = np.repeat(removed, self.per_unit)
        flat_keep[rows, order.reshape(-1)] = False
        out = keep.copy()
        g = keep.shape[2] // self.m
        out[:, :, : g * self.m] = flat_keep.reshape(keep.shape[0], keep.shape[1], g * self.m)
        return out

    def removed_units(self, keep: np.ndarray) -> int:
        return int((self._groups(keep).sum(axis=-1) <= self.n).sum())

    def zero_units(self, values: np.ndarray) -> int:
        return int(((self._groups(values) != 0).sum(axis=-1) <= self.n).sum())


PATTERNS: dict[str, Callable[[], Pattern]] = {
    "1x4": lambda: BlockPattern(1, 4),
    "2x4": lambda: BlockPattern(2, 4),
    "4x4": lambda: BlockPattern(4, 4),
    "1x1": lambda: BlockPattern(1, 1),
    "2:4": lambda: NMPattern(2, 4),
    "1:4": lambda: NMPattern(1, 4),
}
"""The patterns the sparse kernels know: name -> factory. ``register_pattern`` adds more."""


def register_pattern(name: str, factory: Callable[[], Pattern]) -> None:
    """Make ``name`` a valid pattern (e.g. ``"1x8"`` once a kernel exists for it)."""
    PATTERNS[name] = factory


def _parse(text: str) -> Pattern | None:
    block = re.fullmatch(r"(\d+)x(\d+)", text)
    if block and int(block[1]) > 0 and int(block[2]) > 0:
        return BlockPattern(int(block[1]), int(block[2]))
    nm = re.fullmatch(r"(\d+):(\d+)", text)
    if nm and 0 < int(nm[1]) < int(nm[2]):
        return NMPattern(int(nm[1]), int(nm[2]))
    return None


def get_pattern(name: str | Pattern, option: str = "block") -> Pattern:
    """The pattern called ``name`` (a :class:`Pattern` is returned as is).

    Raises:
        UsageError: ``name`` is not one of :data:`PATTERNS` (the message lists them and names
            ``option``, the field or command-line option it came from).
    """
    if not isinstance(name, str):
        return name
    text = name.strip().lower()
    factory = PATTERNS.get(text)
    if factory is None:
        parsed = _parse(text)
        hint = (f" ({parsed.name} is well formed but has no sparse kernel)"
                if parsed is not None else "")
        raise UsageError(f"expected {option} one of {', '.join(PATTERNS)} (RxC blocks or N:M), "
                         f"received: {option}={name!r}{hint}")
    return factory()
