"""Size limits on model files, read before anything is parsed or allocated.

A model for a microcontroller is small (the largest board file has 4 MiB of flash; a float model
holds 4 bytes per int8 weight, a training checkpoint ~3x that), so a file declaring far more is
either damaged or built to exhaust memory: a 1 MB ``.keras`` can unpack to a 1 GB config, an
``.h5`` can hold compressed datasets that expand a thousandfold. These limits are checked on the
sizes the files declare (zip member sizes, HDF5 dataset shapes, file sizes), before reading.
"""

from __future__ import annotations

from pathlib import Path

from tinyprune.errors import UsageError

MiB = 1 << 20
GiB = 1 << 30
MAX_MODEL_BYTES = 256 * MiB
"""A model file or SavedModel folder, what a ``.keras`` archive unpacks to, and the weights an
HDF5 file declares (uncompressed)."""
MAX_CONFIG_BYTES = 16 * MiB
"""A model config as JSON (``config.json`` of a ``.keras``, ``model_config`` of an ``.h5``, the
Keras metadata of a SavedModel); the MLPerf Tiny models have 20-110 KB."""
MAX_GRAPH_BYTES = 64 * MiB
"""The ``saved_model.pb`` graph of a SavedModel (the MLPerf Tiny KWS one has 0.8 MB)."""


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``; binary units, one decimal."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024 or unit == "PiB":
            return f"{int(value)} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


_MODEL_HINT = "a damaged file, or not a model for a microcontroller"


def check_size(path: Path, what: str, size: int, limit: int, hint: str = _MODEL_HINT) -> None:
    """Raise a one-line UsageError when ``size`` (bytes declared or found) exceeds ``limit``.

    Args:
        path: the file the message names.
        what: what was measured, e.g. ``"config.json unpacks to"``.
        size: its size in bytes.
        limit: the limit in bytes.
        hint: what the user should make of it.
    """
    if size > limit:
        raise UsageError(
            f"{path}: {what} {human_bytes(size)}, over tinyprune's limit of {human_bytes(limit)} "
            f"({hint}; see docs/models.md, 'Size limits')"
        )
