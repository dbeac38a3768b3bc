"""Helpers shared by test files (importable because tests/ is on sys.path)."""

from __future__ import annotations

from typing import Any


def int8_tflite_of(model: Any) -> bytes:
    """The product path's int8 conversion of an in-memory Keras model (random calibration)."""
    from tinyprune.models.load import wrap_model
    from tinyprune.quantize import quantize

    return quantize(wrap_model(model), None, samples=16)
