"""Activation statistics the kernel choice can use: how often a tensor holds its zero point.

A kernel that skips inputs equal to the input zero point (activation sparsity, e.g. after a
ReLU) pays only when many inputs are; the planner cannot know without data. These functions
measure it on calibration inputs; the result goes to ``PlanOptions(zero_fractions=...)``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import numpy as np

from tinyprune.ir.graph import Graph

log = logging.getLogger(__name__)


def zero_point_fraction(values: np.ndarray, zero_point: int) -> float:
    """Fraction of ``values`` (int8 activations, any shape) equal to ``zero_point``.

    Raises:
        ValueError: empty ``values``.
    """
    values = np.asarray(values)
    if values.size == 0:
        raise ValueError("expected activation values, received an empty array")
    return float(np.count_nonzero(values == zero_point) / values.size)


def conv_fc_inputs(graph: Graph) -> list[int]:
    """Activation tensors that feed a CONV_2D or FULLY_CONNECTED op (the ones a zero-skipping
    kernel would read), in op order."""
    out: list[int] = []
    for op in graph.ops:
        if op.opcode in ("CONV_2D", "FULLY_CONNECTED"):
            t = graph.tensor(op.inputs[0])
            if not t.is_const and t.dtype == "int8" and t.quant is not None:
                out.append(t.index)
    return list(dict.fromkeys(out))


def measure_zero_fractions(tflite: bytes, graph: Graph, inputs: np.ndarray,
                           tensors: Iterable[int] | None = None) -> dict[int, float]:
    """Per tensor, the fraction of its values equal to its zero point over ``inputs``.

    The model runs in TensorFlow's interpreter with every intermediate tensor kept (a statistic
    needs no bit-exactness; the reference interpreter does not expose intermediates).

    Args:
        tflite: the int8 model.
        graph: its IR graph (tensor indices are the flatbuffer's).
        inputs: raw input rows (``verify.encode_inputs`` / ``random_inputs``), shape (n, bytes).
        tensors: the tensors to measure (default :func:`conv_fc_inputs`).

    Returns:
        tensor index -> fraction in [0, 1].
    """
    from tinyprune.models._backend import tf

    wanted = list(tensors) if tensors is not None else conv_fc_inputs(graph)
    interp = tf().lite.Interpreter(model_content=tflite, experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    details = interp.get_input_details()
    counts = dict.fromkeys(wanted, 0)
    sizes = dict.fromkeys(wanted, 0)
    stateful = graph.stateful
    for raw in np.asarray(inputs, np.uint8):
        if stateful:  # each sample from a zero state, as the firmware runs it
            interp.reset_all_variables()
        offset = 0
        for d in details:
            n = int(np.prod(d["shape"])) * np.dtype(d["dtype"]).itemsize
            chunk = np.frombuffer(raw[offset:offset + n].tobytes(), d["dtype"])
            interp.set_tensor(d["index"], chunk.reshape(d["shape"]))
            offset += n
        interp.invoke()
        for t in wanted:
            values = interp.get_tensor(t)
            counts[t] += int(np.count_nonzero(values == graph.tensor(t).zero_point))
            sizes[t] += int(values.size)
    fractions = {t: counts[t] / sizes[t] for t in wanted if sizes[t]}
    log.info("zero-point fractions of %d tensors over %d inputs", len(fractions), len(inputs))
    return fractions
