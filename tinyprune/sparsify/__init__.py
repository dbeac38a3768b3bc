"""Fine-grained weight sparsity for Keras models (Keras 3 and tf_keras): blocks, N:M, unstructured.

Layers, in the order data flows through them:

1. :mod:`~tinyprune.sparsify.patterns`: what is zeroed together (``1x4``, ``2x4``, ``4x4``,
   ``1x1``, ``2:4``, ``1:4``), in the TFLite memory order of the int8 weights.
2. :mod:`~tinyprune.sparsify.layers`: which Keras layers take a pattern (a registry) and how
   their kernels map to the TFLite order.
3. :mod:`~tinyprune.sparsify.criteria`: per-weight saliency summed per unit (L1, L2, lookahead,
   SNIP, SynFlow, random), reusing the structural engine's gradient statistics.
4. :mod:`~tinyprune.sparsify.allocate`: per-layer sparsity from a global target (uniform, ERK,
   global ranking) under a per-layer ceiling and overrides.
5. :mod:`~tinyprune.sparsify.engine` and :mod:`~tinyprune.sparsify.masks`: masks, applying
   them, holding them through training (a callback after every optimizer step).
6. :mod:`~tinyprune.sparsify.schedules`: one-shot, gradual (Zhu & Gupta), IMP with rewinding.
7. :mod:`~tinyprune.sparsify.int8`: the sparsity survives int8 conversion (checked, measured).

The stage's entry point is :func:`sparsify`. See docs/sparsity.md.
"""

from tinyprune.sparsify.api import copy_model, sparsify
from tinyprune.sparsify.config import FineTune, Gradual, Iterative, OneShot, SparsifyConfig
from tinyprune.sparsify.criteria import CRITERIA, Criterion, ScoreContext
from tinyprune.sparsify.int8 import Int8Layer, Int8Sparsity, check_int8, measure_int8
from tinyprune.sparsify.layers import SPARSE_LAYERS, SparseLayer, canonical
from tinyprune.sparsify.masks import LayerMask, Masks
from tinyprune.sparsify.patterns import PATTERNS, BlockPattern, NMPattern, Pattern, get_pattern
from tinyprune.sparsify.result import LayerSparsity, SparsifyResult, Step

__all__ = [
    "CRITERIA",
    "PATTERNS",
    "SPARSE_LAYERS",
    "BlockPattern",
    "Criterion",
    "FineTune",
    "Gradual",
    "Int8Layer",
    "Int8Sparsity",
    "Iterative",
    "LayerMask",
    "LayerSparsity",
    "Masks",
    "NMPattern",
    "OneShot",
    "Pattern",
    "ScoreContext",
    "SparseLayer",
    "SparsifyConfig",
    "SparsifyResult",
    "Step",
    "canonical",
    "check_int8",
    "copy_model",
    "get_pattern",
    "measure_int8",
    "sparsify",
]
