/*
 * tinyprune runtime: int8 convolution kernels (CONV_2D, DEPTHWISE_CONV_2D).
 *
 * Numerics are bit-exact with TFLite Micro's reference_integer_ops::ConvPerChannel and
 * DepthwiseConvPerChannel: per output channel o,
 *
 *     acc = sum over the taps inside the image of filter * (input + input_offset)  (+ bias[o])
 *     out = clamp(requantize(acc, multiplier[o], shift[o]) + output_offset, act.min, act.max)
 *
 * Taps that fall into the padding are skipped (they contribute 0). Every kernel has a portable C
 * path and, when compiled with TP_USE_DSP=1, a path built on the SXTB16/SMLAD instructions of
 * tp_dsp.h; both give identical results.
 *
 * Layouts: input [N, H_IN, W_IN, C_IN], output [N, H_OUT, W_OUT, C_OUT] (channels last),
 * conv filter [C_OUT, KH, KW, C_IN], depthwise filter [1, KH, KW, C_IN * ch_mult], bias [C_OUT].
 * In tp_dims the filter shape goes in (n, h, w, c) = (C_OUT, KH, KW, C_IN) for conv and
 * (1, KH, KW, C_OUT) for depthwise. No buffer may overlap another (input != output).
 */
#ifndef TP_NN_CONV_H
#define TP_NN_CONV_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Operator parameters of CONV_2D. */
typedef struct {
    int32_t input_offset;   /**< minus the input zero point, in [-127, 128] */
    int32_t output_offset;  /**< the output zero point, in [-128, 127] */
    tp_tile stride;         /**< >= 1 */
    tp_tile padding;        /**< zero padding before the first row / column (TFLM padding_values) */
    tp_tile dilation;       /**< >= 1 */
    tp_activation activation; /**< output clamp, within [-128, 127] */
} tp_conv_params;

/** Operator parameters of DEPTHWISE_CONV_2D. */
typedef struct {
    int32_t input_offset;   /**< minus the input zero point, in [-127, 128] */
    int32_t output_offset;  /**< the output zero point, in [-128, 127] */
    int32_t ch_mult;        /**< depth multiplier: C_OUT = C_IN * ch_mult, >= 1 */
    tp_tile stride;         /**< >= 1 */
    tp_tile padding;        /**< zero padding before the first row / column */
    tp_tile dilation;       /**< >= 1 */
    tp_activation activation; /**< output clamp, within [-128, 127] */
} tp_dw_conv_params;

/**
 * int8 2-D convolution with per-channel requantization (TFLite CONV_2D, groups = 1).
 *
 * @param ctx          scratch; ctx->size must be >= tp_conv_s8_get_buffer_size(); buf must be
 *                     word (4-byte) aligned, and may be NULL when that size is 0.
 * @param conv_params  offsets, stride, padding, dilation, activation range
 * @param quant_params C_OUT multipliers and shifts (shift > 0 is a left shift)
 * @param input_dims   [N, H_IN, W_IN, C_IN]
 * @param input        input data
 * @param filter_dims  [C_OUT, KH, KW, C_IN]
 * @param filter       filter data
 * @param bias_dims    [1, 1, 1, C_OUT] (unused, may be NULL)
 * @param bias         C_OUT int32 values, or NULL for no bias
 * @param output_dims  [N, H_OUT, W_OUT, C_OUT]
 * @param output       output data
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the filter depth does not match
 *         the input, or the batch / channel counts of input, filter and output disagree.
 */
tp_status tp_conv_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                     const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                     const int8_t *input, const tp_dims *filter_dims, const int8_t *filter,
                     const tp_dims *bias_dims, const int32_t *bias, const tp_dims *output_dims,
                     int8_t *output);

/**
 * Scratch bytes tp_conv_s8 needs: 2 * KH * KW * C_IN * sizeof(int16_t) for the DSP path (an
 * im2col buffer of two output pixels, widened to int16 with the input offset added), 0 for the
 * portable path (TP_USE_DSP=0).
 */
int32_t tp_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims);

/**
 * int8 depthwise 2-D convolution with per-channel requantization (TFLite DEPTHWISE_CONV_2D).
 *
 * Output channel o = c * ch_mult + m reads input channel c.
 *
 * @param ctx          scratch; ctx->size must be >= tp_depthwise_conv_s8_get_buffer_size()
 * @param dw_params    offsets, depth multiplier, stride, padding, dilation, activation range
 * @param quant_params C_OUT multipliers and shifts
 * @param input_dims   [N, H_IN, W_IN, C_IN]
 * @param input        input data
 * @param filter_dims  [1, KH, KW, C_OUT]
 * @param filter       filter data
 * @param bias_dims    [1, 1, 1, C_OUT] (unused, may be NULL)
 * @param bias         C_OUT int32 values, or NULL for no bias
 * @param output_dims  [N, H_OUT, W_OUT, C_OUT]
 * @param output       output data
 * @return TP_OK, or TP_ERR_ARG when C_OUT != C_IN * ch_mult or the batch counts disagree.
 */
tp_status tp_depthwise_conv_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                               const tp_per_channel_quant *quant_params,
                               const tp_dims *input_dims, const int8_t *input,
                               const tp_dims *filter_dims, const int8_t *filter,
                               const tp_dims *bias_dims, const int32_t *bias,
                               const tp_dims *output_dims, int8_t *output);

/** Scratch bytes tp_depthwise_conv_s8 needs: always 0 (kept for the uniform kernel interface). */
int32_t tp_depthwise_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_CONV_H */
