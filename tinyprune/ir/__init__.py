"""The IR stage: a ``.tflite`` flatbuffer becomes a small typed, validated graph."""

from tinyprune.ir.fold import fold_constants
from tinyprune.ir.graph import Graph, Op, Quant, Tensor
from tinyprune.ir.reader import read_tflite

__all__ = ["Graph", "Op", "Quant", "Tensor", "fold_constants", "read_tflite"]
