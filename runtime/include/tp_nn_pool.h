/*
 * tinyprune runtime: pooling and spatial reduction kernels (int8).
 *
 * Bit-exact with the TFLite Micro reference kernels:
 *   MAX_POOL_2D, AVERAGE_POOL_2D  reference_integer_ops::MaxPool / AveragePool
 *   MEAN                          reference_ops::QuantizedMeanOrSum (current TFLM takes this path
 *                                 for every int8 MEAN, even when input and output share scale and
 *                                 zero point; the truncating reference_ops::Mean path is gone)
 *
 * Layout [N, H, W, C]. None of these kernels needs scratch memory, so none takes a tp_context
 * and none has a _get_buffer_size companion. Every parameter is computed at generation time by
 * tinyprune/kernels/pooling.py and reduce.py.
 */
#ifndef TP_NN_POOL_H
#define TP_NN_POOL_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Parameters of MAX_POOL_2D and AVERAGE_POOL_2D. */
typedef struct {
    tp_tile stride;            /**< stride in x (w) and y (h), >= 1 */
    tp_tile padding;           /**< padding before the first column (w) and row (h), >= 0,
                                    as TFLM ComputePaddingHeightWidth */
    tp_activation activation;  /**< fused activation range, within [-128, 127] */
} tp_pool_params;

/**
 * Max pooling, int8 -> int8 (input and output share scale and zero point).
 *
 * Args:
 *   params       stride, padding, activation range.
 *   input_dims   [N, H_in, W_in, C].
 *   input        input data.
 *   filter_dims  window size in .h and .w (.n and .c are ignored).
 *   output_dims  [N, H_out, W_out, C]; N and C must equal the input's.
 *   output       output data.
 *
 * Returns TP_OK, or TP_ERR_ARG when a dimension or the stride is out of range. A window
 * that lies entirely in the padding yields the activation minimum (as TFLM).
 * With TP_USE_DSP the channel loop compares four lanes at a time (SSUB8/SEL); both paths give
 * identical results.
 */
tp_status tp_max_pool_s8(const tp_pool_params *params,
                         const tp_dims *input_dims,
                         const int8_t *input,
                         const tp_dims *filter_dims,
                         const tp_dims *output_dims,
                         int8_t *output);

/**
 * Average pooling, int8 -> int8 (input and output share scale and zero point). Padding is
 * excluded from the count; the mean is rounded half away from zero, as TFLM.
 *
 * Arguments as tp_max_pool_s8. Returns TP_OK, or TP_ERR_ARG for out-of-range dimensions or
 * when a window lies entirely in the padding (TFLM fails the invocation in that case).
 */
tp_status tp_avg_pool_s8(const tp_pool_params *params,
                         const tp_dims *input_dims,
                         const int8_t *input,
                         const tp_dims *filter_dims,
                         const tp_dims *output_dims,
                         int8_t *output);

/** Parameters of MEAN. */
typedef struct {
    int32_t input_offset;   /**< minus the input zero point */
    int32_t output_offset;  /**< output zero point */
    int32_t multiplier;     /**< input_scale / output_scale / count: QuantizedMeanOrSum folds
                                 1/count into the multiplier */
    int32_t shift;          /**< matching shift, may be positive (left) */
} tp_mean_params;

/**
 * Mean over the H and W axes of [N, H, W, C] -> [N, C] (int8 -> int8):
 * out = clamp(MBQM(sum - zp_in * count, multiplier, shift) + zp_out).
 *
 * Any MEAN over a contiguous run of axes maps onto this: N = product of the dims before the
 * run, H = product of the reduced dims, W = 1, C = product of the dims after the run. The
 * output has N * C elements whatever keep_dims says (keep_dims only changes the shape).
 * The int32 sums are kept in registers, so no scratch buffer is needed.
 *
 * Returns TP_OK, or TP_ERR_ARG for empty or negative dimensions or a sum that could
 * overflow int32 (H * W > 2^23).
 */
tp_status tp_mean_s8(const tp_mean_params *params,
                     const tp_dims *input_dims,
                     const int8_t *input,
                     int8_t *output);

/* ---- internal helper shared by the pooling kernels ------------------------------------------ */

/** 1 when strides, padding, window and dimensions are usable by the pooling kernels. */
static inline int tp_pool_args_ok(const tp_pool_params *p, const tp_dims *in, const tp_dims *filter,
                                  const tp_dims *out)
{
    return p->stride.w > 0 && p->stride.h > 0 && p->padding.w >= 0 && p->padding.h >= 0 &&
           filter->w > 0 && filter->h > 0 && in->n == out->n && in->c == out->c && in->n >= 0 &&
           in->h > 0 && in->w > 0 && in->c > 0 && out->h >= 0 && out->w >= 0;
}

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_POOL_H */
