"""Channel layouts: how the last axis of a tensor is made of channel spaces.

A *space* is a set of channels created by one layer (a convolution's filters, a model input).
The last axis of every tensor is described by a :class:`Layout`: a sequence of segments, each a
whole space (``Concatenate`` joins several), each channel possibly repeated ``inner`` times in a
row (a depthwise convolution with a depth multiplier), the whole repeated ``outer`` times
(``Flatten`` folds the spatial positions in front of the channels). Index of channel ``c`` of
segment ``k``, copy ``j``, position ``s``::

    s * width_of_one_position + offset(k) + c * inner(k) + j
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Segment:
    """A whole channel space inside a layout."""

    space: int
    size: int
    inner: int = 1

    @property
    def width(self) -> int:
        return self.size * self.inner


@dataclass(frozen=True)
class Layout:
    """The channel structure of a tensor's last axis."""

    segments: tuple[Segment, ...]
    outer: int = 1

    @property
    def block(self) -> int:
        """Width of one position (the channel axis before ``Flatten``)."""
        return sum(s.width for s in self.segments)

    @property
    def width(self) -> int:
        return self.outer * self.block

    def with_inner(self, multiplier: int) -> Layout:
        return Layout(
            tuple(Segment(s.space, s.size, s.inner * multiplier) for s in self.segments),
            self.outer,
        )

    def with_outer(self, outer: int) -> Layout:
        return Layout(self.segments, outer)


def positions(layout: Layout, root: Callable[[int], int]) -> dict[int, np.ndarray]:
    """Map each group (root space) in ``layout`` to an array ``(size, k)`` of axis indices.

    Row ``c`` lists every index of the last axis where channel ``c`` of the group appears.
    """
    parts: dict[int, list[np.ndarray]] = {}
    offset = 0
    for seg in layout.segments:
        base = np.arange(seg.size)[:, None] * seg.inner + np.arange(seg.inner)[None, :]
        for s in range(layout.outer):
            parts.setdefault(root(seg.space), []).append(base + offset + s * layout.block)
        offset += seg.width
    return {r: np.concatenate(p, axis=1) for r, p in parts.items()}


def kept_indices(
    layout: Layout, root: Callable[[int], int], keep: Mapping[int, np.ndarray]
) -> np.ndarray:
    """Indices of the last axis that survive when group ``r`` keeps channels ``keep[r]``.

    Groups missing from ``keep`` keep every channel. The result is sorted.
    """
    blocks: list[np.ndarray] = []
    offset = 0
    for seg in layout.segments:
        kept = keep.get(root(seg.space))
        chans = np.arange(seg.size) if kept is None else np.asarray(kept, dtype=np.int64)
        blocks.append(offset + (chans[:, None] * seg.inner + np.arange(seg.inner)).reshape(-1))
        offset += seg.width
    one = np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.int64)
    return np.concatenate([one + s * layout.block for s in range(layout.outer)]).astype(np.int64)
