"""The cost model the kernel choice asks: estimated cycles of a conv / FC kernel on a layer.

Each kernel family has a linear model over a few counts of its work (:func:`fc_features`,
:func:`conv_features`: calls, batch rows or pixels, inputs, outputs, MACs, stored blocks, ...):
``cycles = sum(coefficient[k] * features[k])``. The coefficients are least-squares fits to the
emulator's estimated cycles (M7 build, -O2, DSP path) of one-layer firmware over many shapes and
sparsities, made by ``bench/fit_sparse_cost.py``: one fit per cycle model that has its own
(:data:`FITS`: ``table``, the flat table of docs/emulator.md, in
``bench/results/sparse_cost_fit.md``; ``m7``, the Cortex-M7 model, in
``bench/results/sparse_cost_fit_m7.md``). The kernel choice asks the fit of the build's cycle
model (``PlanOptions.cost_model``); ``m4`` and ``m0plus`` use the table's, which they are close
to on these kernels (bench/results/cycle_models.md). They are estimates of estimates: good for
ranking kernels (the choice), not a timing promise. Boards without the DSP extension run the
portable paths, which the fit does not cover; the planner then keeps the dense kernels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tinyprune.ir.graph import Graph, Op
    from tinyprune.kernels.base import Estimate, PlanOptions
    from tinyprune.kernels.conv import ConvArgs
    from tinyprune.kernels.fully_connected import FcArgs

# Fit: bench/fit_sparse_cost.py, nucleo_f746 (M7 build, -O2, DSP path), table cycle model,
# 2026-12-01. Residuals of every fit are in bench/results/sparse_cost_fit.md.
COEFFICIENTS: dict[str, dict[str, float]] = {
    "conv_bsr_r1": {"blocks": 28.8611, "call": 2453.7005, "out": 0.0, "pixels": 224.3467,
                    "rows": 27.7572, "window": 3.7733},
    "conv_bsr_r2": {"blocks": 27.7017, "call": 5436.5703, "out": 0.0, "pixels": 236.0991,
                    "rows": 141.3725, "window": 3.4275},
    "conv_bsr_r4": {"blocks": 27.4587, "call": 3365.6087, "out": 0.0, "pixels": 235.2749,
                    "rows": 127.2684, "window": 3.6315},
    "conv_csr": {"call": 0.0, "nnz": 13.8003, "out": 24.782, "pixels": 219.4071, "rows": 0.0,
                 "window": 14.0563},
    "conv_dense": {"call": 0.0, "macs": 1.3905, "out": 16.392, "pixels": 232.6477,
                   "window": 7.6913},
    "conv_nm1": {"call": 8818.072, "out": 0.0, "pixels": 333.4715, "rows": 73.0568,
                 "units": 18.6913, "window": 24.2541},
    "conv_nm2": {"call": 642.6008, "out": 0.0, "pixels": 252.8912, "rows": 89.8684,
                 "units": 20.1614, "window": 15.4927},
    "conv_thin": {"call": 2099.906, "macs": 1.8553, "out": 11.0792, "pixels": 21.2318,
                  "window": 1.6886},
    "dw3x3_dense": {"blocks": 24.5541, "call": 1915.2878, "groups": 2.7282, "pixels": 0.9082,
                    "taps": 8.174},
    "dw_bsr": {"blocks": 21.4542, "call": 0.0, "groups": 93.6172, "pixels": 104.1112,
               "taps": 15.9392},
    "dw_dense": {"blocks": 22.9245, "call": 0.2518, "groups": 16.5447, "pixels": 6.9517,
                 "taps": 76.1205},
    "fc_bsr_r1": {"blocks": 10.9433, "call": 241.4429, "in": 4.0507, "out": 49.7892,
                  "rows": 241.4429},
    "fc_bsr_r2": {"blocks": 21.0178, "call": 186.147, "in": 4.2553, "out": 66.7933,
                  "rows": 186.147},
    "fc_bsr_r4": {"blocks": 32.0019, "call": 185.6247, "in": 4.2487, "out": 68.9894,
                  "rows": 185.6247},
    "fc_csr": {"call": 0.0, "in": 9.6969, "nnz": 7.6672, "out": 93.8368, "rows": 0.0},
    "fc_dense": {"call": 268.9874, "in": 1.0149, "macs": 1.5522, "out": 17.1935, "rows": 268.9874},
    "fc_nm1": {"call": 425.5171, "in": 10.2324, "out": 75.9834, "rows": 425.5171, "units": 9.7576},
    "fc_nm2": {"call": 183.0, "in": 13.25, "out": 79.0, "rows": 183.0, "units": 9.5},
    "fc_zskip": {"call": 0.0, "in": 15.809, "nz": 12.6101, "out": 80.1537, "rows": 0.0},
}
"""Per kernel family, its coefficient per feature (cycles per unit)."""

# Fit: bench/fit_sparse_cost.py, nucleo_f746 (M7 build, -O2, DSP path), m7 cycle model,
# 2026-12-01. Residuals of every fit are in bench/results/sparse_cost_fit_m7.md.
COEFFICIENTS_M7: dict[str, dict[str, float]] = {
    "conv_bsr_r1": {"blocks": 18.0405, "call": 3867.8297, "out": 0.0, "pixels": 169.371,
                    "rows": 25.476, "window": 2.2659},
    "conv_bsr_r2": {"blocks": 17.3812, "call": 5258.2967, "out": 0.0, "pixels": 182.0699,
                    "rows": 77.7363, "window": 2.2097},
    "conv_bsr_r4": {"blocks": 17.1077, "call": 3606.6173, "out": 0.0, "pixels": 180.4688,
                    "rows": 69.2665, "window": 2.441},
    "conv_csr": {"call": 0.0, "nnz": 9.522, "out": 0.0, "pixels": 212.7356, "rows": 63.1165,
                 "window": 6.6259},
    "conv_dense": {"call": 13530.7747, "macs": 1.1439, "out": 0.0, "pixels": 360.2268,
                   "window": 0.823},
    "conv_nm1": {"call": 5495.9309, "out": 0.0, "pixels": 217.3038, "rows": 38.988, "units": 8.7411,
                 "window": 15.9324},
    "conv_nm2": {"call": 1671.249, "out": 0.0, "pixels": 171.257, "rows": 47.6651, "units": 9.6609,
                 "window": 10.7909},
    "conv_thin": {"call": 4334.6175, "macs": 1.3588, "out": 7.8607, "pixels": 0.0,
                  "window": 2.7873},
    "dw3x3_dense": {"blocks": 17.9298, "call": 0.0, "groups": 1.9922, "pixels": 1.1955,
                    "taps": 10.7592},
    "dw_bsr": {"blocks": 16.151, "call": 0.0, "groups": 70.0789, "pixels": 38.9291,
               "taps": 16.0622},
    "dw_dense": {"blocks": 11.3769, "call": 0.2232, "groups": 14.3273, "pixels": 6.126,
                 "taps": 66.4483},
    "fc_bsr_r1": {"blocks": 8.0266, "call": 326.7492, "in": 2.4939, "out": 42.9604,
                  "rows": 326.7492},
    "fc_bsr_r2": {"blocks": 15.1527, "call": 290.7972, "in": 2.4002, "out": 46.6085,
                  "rows": 290.7972},
    "fc_bsr_r4": {"blocks": 24.0006, "call": 280.6601, "in": 2.4511, "out": 45.6501,
                  "rows": 280.6601},
    "fc_csr": {"call": 63.5099, "in": 6.9673, "nnz": 5.2165, "out": 76.2826, "rows": 63.5099},
    "fc_dense": {"call": 373.7339, "in": 0.0, "macs": 1.0234, "out": 18.8916, "rows": 373.7339},
    "fc_nm1": {"call": 408.7764, "in": 5.6332, "out": 55.1382, "rows": 408.7764, "units": 5.1631},
    "fc_nm2": {"call": 237.1306, "in": 9.0553, "out": 57.2344, "rows": 237.1306, "units": 4.9899},
    "fc_zskip": {"call": 26.6037, "in": 13.4388, "nz": 9.4241, "out": 58.6257, "rows": 26.6037},
}


FITS: dict[str, dict[str, dict[str, float]]] = {"table": COEFFICIENTS, "m7": COEFFICIENTS_M7}
"""Per cycle model with a fit of its own, its coefficients (``PlanOptions.cost_model``)."""


def cycles(family: str, features: Mapping[str, float], model: str = "table") -> float:
    """Estimated cycles of a kernel family for a layer's features, from the fit of the cycle
    model ``model`` (the ``table`` fit for a model or family without one).

    Raises:
        KeyError: the family has no fitted model, or a feature it needs is missing.
    """
    coef = FITS.get(model, COEFFICIENTS).get(family) or COEFFICIENTS[family]
    return float(sum(c * features[name] for name, c in coef.items()))


def fc_features(rows: int, n_in: int, n_out: int, work: float, work_name: str = "macs"
                ) -> dict[str, float]:
    """Features of a FULLY_CONNECTED call: ``work`` is its MACs (dense) or per-row stored
    blocks (block-sparse) or the like, counted for one batch row."""
    return {"call": 1.0, "rows": float(rows), "in": float(rows * n_in),
            "out": float(rows * n_out), work_name: float(rows * work)}


def conv_features(pixels: int, k4: int, c_out: int, work: float, work_name: str = "macs",
                  pixels_per_pass: int = 1) -> dict[str, float]:
    """Features of a CONV_2D call over ``pixels`` output pixels of ``k4`` (KH * KW * C_IN
    rounded up to 4) values each: ``work`` is counted per pass of ``pixels_per_pass`` pixels
    (the dense kernel's MACs per pixel; a sparse kernel's stored block rows per pass)."""
    passes = -(-pixels // pixels_per_pass)
    features = {"call": 1.0, "pixels": float(pixels), "window": float(pixels * k4),
                "out": float(pixels * c_out), work_name: float(passes * work)}
    if pixels_per_pass > 1:
        features["rows"] = float(passes * c_out)
    return features


def dw_features(pixels: int, taps: int, channels: int, work: float, work_name: str = "blocks"
                ) -> dict[str, float]:
    """Features of a DEPTHWISE_CONV_2D call (depth multiplier 1) over ``pixels`` output pixels
    with ``taps`` (KH * KW) taps of ``channels`` channels: ``work`` is counted per pixel (the
    blocks of one tap x four channels: all of them for a dense kernel, the stored ones for the
    sparse kernel)."""
    groups = -(-channels // 4)
    return {"call": 1.0, "pixels": float(pixels), "taps": float(pixels * taps),
            "groups": float(pixels * groups), work_name: float(pixels * work)}


def dw_dense_family(a: ConvArgs) -> str:
    """The cost family of the dense depthwise kernel conv.py picks for the layer."""
    from tinyprune.kernels.conv import choose_kernel

    return "dw3x3_dense" if choose_kernel(a).name == "tp_depthwise_conv_3x3_s8" else "dw_dense"


def dw_dense_cycles(a: ConvArgs, model: str = "table") -> float:
    """Estimated cycles of the dense DEPTHWISE_CONV_2D kernel (3x3 or general) on a layer."""
    n, oh, ow, c_out = a.output_shape
    _, kh, kw, _ = a.filter_shape
    blocks = kh * kw * -(-c_out // 4)
    return cycles(dw_dense_family(a), dw_features(n * oh * ow, kh * kw, c_out, blocks), model)


def dw_dense_estimate(op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate:
    """The dense DEPTHWISE_CONV_2D handler's estimate (given at its registration)."""
    from tinyprune.kernels.base import Estimate
    from tinyprune.kernels.conv import depthwise_args

    return Estimate(dw_dense_cycles(depthwise_args(op, graph), options.cost_model), "dense")


def conv_dense_family(a: ConvArgs) -> str:
    """The cost family of the dense CONV_2D kernel conv.py picks for the layer."""
    from tinyprune.kernels.conv import choose_kernel

    return "conv_thin" if choose_kernel(a).name == "tp_conv_1x1_thin_s8" else "conv_dense"


def conv_dense_cycles(a: ConvArgs, model: str = "table") -> float:
    """Estimated cycles of the dense CONV_2D kernel (tp_conv_1x1_thin_s8 on the thin 1x1
    layers it takes, else tp_conv_interleaved_s8) on a layer."""
    n, oh, ow, c_out = a.output_shape
    _, kh, kw, c_in = a.filter_shape
    k4 = -(-kh * kw * c_in // 4) * 4
    return cycles(conv_dense_family(a), conv_features(n * oh * ow, k4, c_out, c_out * k4),
                  model)


def conv_dense_estimate(op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate:
    """The dense CONV_2D handler's estimate (given at its registration)."""
    from tinyprune.kernels.base import Estimate
    from tinyprune.kernels.conv import conv_args

    return Estimate(conv_dense_cycles(conv_args(op, graph), options.cost_model), "dense")


def fc_dense_features(a: FcArgs) -> dict[str, float]:
    """Features of the dense FULLY_CONNECTED kernel: its work is counted in whole groups of four
    rows over inputs padded to a word (the interleaved stream's layout: a 64->10 layer runs
    three groups, 12 rows)."""
    padded = -(-a.in_features // 4) * 4 * (-(-a.out_features // 4) * 4)
    return fc_features(a.rows, a.in_features, a.out_features, padded)


def fc_dense_cycles(a: FcArgs, model: str = "table") -> float:
    """Estimated cycles of the dense FULLY_CONNECTED kernel on a layer."""
    return cycles("fc_dense", fc_dense_features(a), model)


def fc_dense_estimate(op: Op, graph: Graph, dsp: bool, options: PlanOptions) -> Estimate:
    """The dense FULLY_CONNECTED handler's estimate (given at its registration)."""
    from tinyprune.kernels.base import Estimate
    from tinyprune.kernels.fully_connected import fc_args

    return Estimate(fc_dense_cycles(fc_args(op, graph), options.cost_model), "dense")
