"""Progress lines of a multi-step command: ``[4/10] quantize ...`` then ``... done in 1.2 s``.

Plain lines, one per event, so they read the same on a terminal and in a CI log. Progress bars
(tqdm) are for terminals only: :func:`bars_enabled` tells whether to show them.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger("tinyprune")

Progress = Callable[[str], None]


def bars_enabled() -> bool:
    """Progress bars redraw a line with carriage returns: only on an interactive terminal."""
    return sys.stderr.isatty()


class Steps:
    """Numbered steps with timings, reported through a ``Progress`` callable (default: logging).

    Args:
        names: every step, in order (the numbering comes from here).
        progress: receives each line; None logs at INFO.
    """

    def __init__(self, names: Sequence[str], progress: Progress | None = None) -> None:
        self.names = tuple(names)
        self.progress: Progress = progress or (lambda msg: log.info("%s", msg))

    def say(self, message: str) -> None:
        """A line of detail under the current step."""
        self.progress(f"      {message}")

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        """Announces step ``name``, runs the block, reports its time (not on failure)."""
        n = self.names.index(name) + 1
        total = len(self.names)
        start = time.monotonic()
        self.progress(f"[{n}/{total}] {name}{' ' + detail if detail else ''} ...")
        yield
        self.progress(f"[{n}/{total}] {name} done in {time.monotonic() - start:.1f} s")
