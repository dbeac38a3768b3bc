/*
 * tinyprune runtime: int8 transposed convolution (TRANSPOSE_CONV, Keras Conv2DTranspose and
 * Conv1DTranspose).
 *
 * Bit-exact with TFLite Micro's reference_integer_ops::TransposeConv. TFLM scatters every input
 * value into an int32 buffer of the whole output; this kernel gathers instead: for each output
 * pixel (y, x) and output channel o,
 *
 *     acc = bias[o] + sum over the taps (ky, kx) with iy = (y + pad_h - ky) / stride_h and
 *           ix = (x + pad_w - kx) / stride_w whole and inside the input of
 *           sum over c of filter[o, ky, kx, c] * (input[iy, ix, c] + input_offset)
 *     out = clamp(requantize(acc, multiplier[o], shift[o]) + output_offset, act.min, act.max)
 *
 * The same products summed in int32 in another order: the same result, with no scratch buffer
 * (TFLM needs 4 bytes per output value). The DSP path (TP_USE_DSP=1) takes four channels per
 * step with SXTB16 / SADD16 / SMLAD (tp_dsp.h).
 *
 * Layouts: input [N, H_IN, W_IN, C_IN], filter [C_OUT, KH, KW, C_IN] (as TFLite stores it),
 * output [N, H_OUT, W_OUT, C_OUT]. The output must not overlap the input.
 */
#ifndef TP_NN_TRANSPOSE_CONV_H
#define TP_NN_TRANSPOSE_CONV_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Operator parameters of TRANSPOSE_CONV. */
typedef struct {
    int32_t input_offset;      /**< minus the input zero point */
    int32_t output_offset;     /**< the output zero point */
    tp_tile stride;            /**< >= 1 */
    tp_tile padding;           /**< TFLM padding_values: output rows / columns cut before the first */
    tp_activation activation;  /**< output clamp */
} tp_transpose_conv_params;

/**
 * int8 transposed convolution with per-channel requantization.
 *
 * @param ctx          scratch (unused: tp_transpose_conv_s8_get_buffer_size() is 0; may be NULL)
 * @param conv_params  offsets, stride, padding, activation range
 * @param quant_params C_OUT multipliers and shifts
 * @param input_dims   [N, H_IN, W_IN, C_IN]
 * @param input        input data
 * @param filter_dims  [C_OUT, KH, KW, C_IN]
 * @param filter       filter data
 * @param bias_dims    [1, 1, 1, C_OUT] (unused, may be NULL)
 * @param bias         C_OUT int32 values, or NULL
 * @param output_dims  [N, H_OUT, W_OUT, C_OUT]
 * @param output       output data
 * @return TP_OK, or TP_ERR_ARG when batches or channel counts disagree or a stride is < 1.
 */
tp_status tp_transpose_conv_s8(const tp_context *ctx,
                               const tp_transpose_conv_params *conv_params,
                               const tp_per_channel_quant *quant_params,
                               const tp_dims *input_dims,
                               const int8_t *input,
                               const tp_dims *filter_dims,
                               const int8_t *filter,
                               const tp_dims *bias_dims,
                               const int32_t *bias,
                               const tp_dims *output_dims,
                               int8_t *output);

/** Scratch bytes tp_transpose_conv_s8 needs: 0 (the gather form keeps its sums in registers). */
int32_t tp_transpose_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_TRANSPOSE_CONV_H */
