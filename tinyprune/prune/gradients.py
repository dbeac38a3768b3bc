"""Gradient statistics for the data-driven criteria (Taylor, Fisher, SNIP) and SynFlow."""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinyprune.models._backend import tf as tf_module
from tinyprune.prune.data import Dataset, is_probability, loss_fn, predict
from tinyprune.prune.functions import Weights
from tinyprune.prune.trace import FlatGraph

Stats = dict[str, dict[str, Weights]]


def _variables(graph: FlatGraph) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for node in graph.layer_nodes():
        out.setdefault(node.name, node.variables())
    return out


def _zeros_like(variables: dict[str, list[Any]]) -> dict[str, Weights]:
    return {n: [np.zeros(tuple(v.shape), np.float64) for v in vs] for n, vs in variables.items()}


def gradient_stats(
    model: Any, graph: FlatGraph, data: Dataset, *, samples: int, batch_size: int,
    progress: bool = False,
) -> Stats:
    """Mean gradient (``grad``) and mean squared batch gradient (``grad_sq``) per weight.

    Args:
        model: the model ``graph`` was traced from.
        graph: its flat graph (gives the layer of each name).
        data: inputs and targets (the first ``samples`` of the fit split are used).
        samples: how many samples to use.
        batch_size: gradient batch size.
        progress: show a progress bar.
    """
    tf = tf_module()
    x, y = data.x_fit[:samples], None if data.y_fit is None else data.y_fit[:samples]
    loss = loss_fn(tf, data, is_probability(predict(model, x[:batch_size])))
    variables = _variables(graph)
    flat = [v for vs in variables.values() for v in vs]
    grad, grad_sq = _zeros_like(variables), _zeros_like(variables)
    batches = range(0, len(x), batch_size)
    for start in tqdm(batches, desc="gradients", disable=None if progress else True,
                      leave=False):
        xb = tf.convert_to_tensor(x[start:start + batch_size])
        yb = None if y is None else tf.convert_to_tensor(y[start:start + batch_size])
        with tf.GradientTape() as tape:
            value = loss(model(xb, training=False), xb, yb)
        _accumulate(tape.gradient(value, flat), variables, grad, grad_sq)
    n = max(len(batches), 1)
    return {
        "grad": {k: [g / n for g in gs] for k, gs in grad.items()},
        "grad_sq": {k: [g / n for g in gs] for k, gs in grad_sq.items()},
    }


def _accumulate(
    grads: list[Any], variables: dict[str, list[Any]], grad: dict[str, Weights],
    grad_sq: dict[str, Weights],
) -> None:
    i = 0
    for name, vs in variables.items():
        for j in range(len(vs)):
            g = grads[i]
            i += 1
            if g is None:
                continue
            g = np.asarray(g, dtype=np.float64)
            grad[name][j] += g
            grad_sq[name][j] += g * g


def synflow_stats(model: Any, graph: FlatGraph) -> Stats:
    """``dR/dw`` with ``R = sum(outputs)`` of the absolute-weight network on all-ones inputs.

    The model's weights are restored before returning.
    """
    tf = tf_module()
    variables = _variables(graph)
    flat = [v for vs in variables.values() for v in vs]
    saved = [np.asarray(v.numpy()) for v in flat]
    inputs = [np.ones((1, *(d or 1 for d in graph.nodes[r.node].out_shapes[0][1:])), np.float32)
              for r in graph.inputs]
    try:
        for v, w in zip(flat, saved, strict=True):
            v.assign(np.abs(w))
        with tf.GradientTape() as tape:
            outputs = model(inputs[0] if len(inputs) == 1 else inputs, training=False)
            total = tf.add_n([tf.reduce_sum(o) for o in tf.nest.flatten(outputs)])
        grads = tape.gradient(total, flat)
    finally:
        for v, w in zip(flat, saved, strict=True):
            v.assign(w)
    out = _zeros_like(variables)
    _accumulate(grads, variables, out, _zeros_like(variables))
    return {"synflow": out}
