"""Sparse int8 models for the sparse-kernel tests and benchmarks, made without a sparsify stage.

A layer's int8 weights are zeroed inside a converted ``.tflite`` (the buffer of the weight
tensor is rewritten), in one of the patterns of :data:`PATTERNS`, lowest magnitude first, as an
externally pruned model would have them. Rows are the kernel's: output channel o's values in
memory order ([KH][KW][C_IN] for conv), so ``1x4`` blocks lie along the input channels.
"""

from __future__ import annotations

import numpy as np

from tinyprune.ir import Op

PATTERNS = ("1x4", "2x4", "4x4", "2:4", "1:4", "unstructured")


def zero_pattern(rows: np.ndarray, pattern: str, sparsity: float,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """``rows`` (int8 ``[ROWS, K]``) with a fraction ``sparsity`` of it zeroed in ``pattern``.

    Blocks (``RxC``: R rows by 4 values along K) and single values (``unstructured``) are zeroed
    by magnitude (ties broken by ``rng`` noise); ``N:4`` keeps the N largest of every group of
    4 (``sparsity`` is then ignored). Values in kept blocks that are already 0 stay 0.
    """
    rng = rng or np.random.default_rng(0)
    out = rows.astype(np.int8).copy()
    n_rows, depth = out.shape
    k4 = -(-depth // 4) * 4
    padded = np.zeros((n_rows, k4), np.int8)
    padded[:, :depth] = out
    mag = np.abs(padded.astype(np.float64)) + rng.uniform(0, 1e-3, padded.shape)
    if pattern == "unstructured":
        drop = _lowest(mag, sparsity)
    elif ":" in pattern:
        n = int(pattern.split(":")[0])
        order = np.argsort(mag.reshape(n_rows, -1, 4), axis=2)
        drop = np.zeros((n_rows, k4 // 4, 4), bool)
        np.put_along_axis(drop, order[:, :, :4 - n], True, axis=2)
        drop = drop.reshape(n_rows, k4)
    else:
        r = int(pattern.split("x")[0])
        rows_r = -(-n_rows // r) * r  # a last partial row group counts as a group
        mag_r = np.zeros((rows_r, k4))
        mag_r[:n_rows] = mag
        blocks = mag_r.reshape(rows_r // r, r, k4 // 4, 4).sum(axis=(1, 3))
        drop_blocks = _lowest(blocks, sparsity)
        drop = np.repeat(np.repeat(drop_blocks, r, axis=0), 4, axis=1)[:n_rows]
    padded[drop] = 0
    return padded[:, :depth]


def _lowest(mag: np.ndarray, fraction: float) -> np.ndarray:
    flat = mag.reshape(-1)
    n = round(fraction * flat.size)
    drop = np.zeros(flat.size, bool)
    drop[np.argsort(flat, kind="stable")[:n]] = True
    return drop.reshape(mag.shape)


def set_weights(tflite: bytes, tensor_index: int, values: np.ndarray) -> bytes:
    """The model with the constant tensor ``tensor_index`` (of subgraph 0) set to ``values``."""
    import flatbuffers
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(tflite, 0))
    tensor = model.subgraphs[0].tensors[tensor_index]
    buf = model.buffers[tensor.buffer]
    old = np.asarray(buf.data, np.uint8)
    new = np.ascontiguousarray(values).reshape(-1).view(np.uint8)
    assert old.size == new.size, (old.size, new.size)
    buf.data = new.copy()
    builder = flatbuffers.Builder(len(tflite) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def sparsify_layer(tflite: bytes, tensor_index: int, weights: np.ndarray, pattern: str,
                   sparsity: float, seed: int = 0) -> tuple[bytes, np.ndarray]:
    """Zeroes the weight tensor (shape [C_OUT, ...]) in ``pattern``; returns model and weights."""
    rows = weights.reshape(weights.shape[0], -1)
    zeroed = zero_pattern(rows, pattern, sparsity, np.random.default_rng(seed))
    new = zeroed.reshape(weights.shape).astype(np.int8)
    return set_weights(tflite, tensor_index, new), new


class HostCtx:
    """LowerContext for one op compiled on the host (the sparse kernel tests): activations are
    ``in`` / ``out``, constants static arrays of the case."""

    cost_model = "table"

    def __init__(self, prefix: str, op: Op, dsp: bool) -> None:
        self.prefix, self.dsp, self.consts = prefix, dsp, []
        self.names = {op.inputs[0]: "in", op.outputs[0]: "out"}

    def act(self, tensor_index: int) -> str:
        return self.names[tensor_index]

    def const(self, hint: str, values: np.ndarray, ctype: str) -> str:
        name = f"{self.prefix}_k{len(self.consts)}"
        body = ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))
        self.consts.append(f"static const {ctype} {name}[] __attribute__((aligned(4))) = "
                           f"{{ {body} }};")
        return name

    @property
    def scratch(self) -> str:
        return "scratch"
