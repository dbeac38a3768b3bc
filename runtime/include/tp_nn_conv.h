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
#include "tp_nn_elementwise.h"

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

/*
 * ---- Specialised kernels --------------------------------------------------------------------
 *
 * Same arguments as the general kernels above, faster on the shapes they accept, bit-exact with
 * them. They take the input offset folded into the bias, computed by the code generator:
 *
 *     folded_bias[o] = bias[o] + input_offset * (sum of the filter values of output channel o)
 *
 * (bias[o] = 0 when the layer has none); it must fit in int32 (the generator falls back to the
 * general kernel otherwise). The accumulator then is folded_bias[o] + sum filter * input over
 * raw int8 values, and a tap in the padding is fed the input zero point (-input_offset), whose
 * contribution filter * (zp + input_offset) is 0 as in TFLM. conv_params->input_offset is still
 * passed (the padding value comes from it). bias may be NULL only when every folded value is 0.
 */

/**
 * CONV_2D, any filter, stride, padding and dilation, with interleaved filter row pairs: the
 * window of each output pixel is gathered as raw int8 (padding as the input zero point; a 1x1
 * window with C_IN % 4 == 0 is read in place, and on the DSP path so is a KH x KW window inside
 * the input with C_IN % 4 == 0 and dilation.w 1, unfused) and, on the DSP path, widened to
 * int16 into one of two interleaved columns; each pair of output channels then runs over both
 * columns with three LDRD, four SXTB16 and eight SMLAD per 16 MACs (tp_dot_s8s16_2x2 in
 * tp_dsp.h), and tp_requantize_fast when the stream's rounding words are valid. Arguments as
 * tp_conv_s8, with bias, multipliers and shifts inside the filter stream.
 *
 * Filter stream (built by the generator, tinyprune/kernels/conv.py pair_stream; 4-byte aligned):
 * word 0 is 1 when the rounding words are valid for every channel (tp_requantize_fast in
 * tp_dsp.h), else 0; then per pair p of output channels (2p, 2p + 1; C_OUT padded to even with a
 * zero row and zero parameters): the two rows (each the KH * KW * C_IN values followed by zeros
 * up to n4, rounded up to a multiple of 4) interleaved a word at a time, for each group g of four
 * values the word of row 2p then the word of row 2p + 1 (2 * n4 bytes), then eight int32 words:
 * the pair's two folded biases, two multipliers, two shifts and two rounding words. filter_dims
 * still describes the unpadded filter (C_OUT, KH, KW, C_IN). quant_params and bias are not read
 * (may be NULL). Scratch: 5 * n4 bytes (DSP path), n4 (portable); word aligned (with less:
 * tp_conv_interleaved_narrow_s8).
 *
 * In place: output may equal input for a 1x1 filter with stride 1, no padding, the same height
 * and width and C_OUT <= C_IN (each pixel is read before its outputs are stored, at or before
 * it); same scratch. Any other layer with output == input is refused (TP_ERR_ARG).
 *
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small or the shapes disagree.
 */
tp_status tp_conv_interleaved_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                 const tp_per_channel_quant *quant_params,
                                 const tp_dims *input_dims, const int8_t *input,
                                 const tp_dims *filter_dims, const int8_t *filter,
                                 const tp_dims *bias_dims, const int32_t *bias,
                                 const tp_dims *output_dims, int8_t *output);

/** Scratch bytes tp_conv_interleaved_s8 needs: 5 * n4 (DSP path), n4 (portable path). */
int32_t tp_conv_interleaved_s8_get_buffer_size(const tp_dims *input_dims,
                                               const tp_dims *filter_dims);

/**
 * CONV_2D 1x1 with 4, 8, 12 or 16 input channels (the layers channel pruning leaves thin), any
 * stride, no padding, any C_OUT. DSP path: a pass widens the C_IN values of P pixels into
 * registers (P = 4 for C_IN 4, 2 for 8 and 16, 1 for 12) and each output channel loads its row
 * once and runs C_IN / 2 SMLAD per pixel, then tp_requantize_fast and SSAT (all of int8) or a
 * clamp; no window gather, no scratch. Arguments as tp_conv_s8, with the bias, multipliers and
 * shifts inside the filter stream; quant_params, bias and ctx->buf are not read.
 *
 * Filter stream (tinyprune/kernels/conv.py thin_stream; 4-byte aligned): per output channel o its
 * row as C_IN / 2 words of two int16, for each group g of four values (w[4g], w[4g+2]) then
 * (w[4g+1], w[4g+3]) (the halves SXTB16 and SXTB16 ROR 8 take from an input word), then four
 * int32 words: the folded bias, the multiplier, -shift - 1 and the tp_requantize_fast rounding
 * word (every channel's shift <= -2; the generator only picks the kernel then).
 *
 * In place: output may equal input with stride 1 and C_OUT <= C_IN (a pass reads its pixels
 * before it stores their outputs, which end at or before them).
 *
 * @return TP_OK, or TP_ERR_ARG when the shapes are not the kernel's or output == input is not
 *         allowed.
 */
tp_status tp_conv_1x1_thin_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                              const tp_per_channel_quant *quant_params,
                              const tp_dims *input_dims, const int8_t *input,
                              const tp_dims *filter_dims, const int8_t *filter,
                              const tp_dims *bias_dims, const int32_t *bias,
                              const tp_dims *output_dims, int8_t *output);

/** Scratch bytes tp_conv_1x1_thin_s8 needs: 0. */
int32_t tp_conv_1x1_thin_s8_get_buffer_size(const tp_dims *input_dims,
                                            const tp_dims *filter_dims);

/**
 * tp_conv_interleaved_s8 with less scratch (its narrow DSP path; the same results): the two
 * windows stay int8 and are widened in the dot product (one LDRD, two LDR, eight SXTB16, eight
 * SMLAD per 16 MACs; about as fast for 16 output channels, a few percent slower for 64). The
 * planner calls it only for a layer at the memory peak. Arguments and stream as
 * tp_conv_interleaved_s8; not in place (output == input is refused). A function of its own so
 * that firmware without it does not link its code. Scratch:
 * tp_conv_interleaved_narrow_s8_get_buffer_size.
 *
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the shapes disagree or
 *         output == input.
 */
tp_status tp_conv_interleaved_narrow_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                        const tp_per_channel_quant *quant_params,
                                        const tp_dims *input_dims, const int8_t *input,
                                        const tp_dims *filter_dims, const int8_t *filter,
                                        const tp_dims *bias_dims, const int32_t *bias,
                                        const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_conv_interleaved_narrow_s8: 2 * n4 (DSP path), n4 (portable path). */
int32_t tp_conv_interleaved_narrow_s8_get_buffer_size(const tp_dims *input_dims,
                                                      const tp_dims *filter_dims);

/**
 * tp_conv_interleaved_s8 followed by a residual ADD (tp_add_table_s8) without the conv's output
 * tensor: on entry `output` holds the ADD's other operand (the residual, output_dims, int8);
 * each conv result is rounded and clamped to int8 exactly as tp_conv_interleaved_s8 stores it,
 * then added to the residual value at its position with the ADD's arithmetic, and the ADD's
 * result overwrites that residual value (no other position reads it). Bit-exact with the two
 * kernels run one after the other, and with TFLM's CONV_2D then ADD.
 *
 * add_params: as tp_add_table_s8 with input 1 = the conv's output and input 2 = the residual
 * (the generator swaps the tables when the model has them the other way round; the ADD's math
 * is symmetric in its operands). Same shapes, no broadcast. Conv arguments, stream and scratch
 * as tp_conv_interleaved_s8 (no quant_params or bias: they are in the stream); `output` must not
 * be `input`. Scratch: tp_conv_interleaved_add_s8_get_buffer_size (the conv's, plus on the DSP
 * path 2 * C_OUT rounded up to 4 at its start: each pass's int8 results, added to the residual
 * right after the pass by a loop with the ADD's parameters in registers).
 * tp_conv_interleaved_add_narrow_s8: the same with the narrow path of
 * tp_conv_interleaved_narrow_s8 (its scratch + the pass bytes).
 *
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the shapes disagree, the ADD's
 *         output shift is above -2 or output == input.
 */
tp_status tp_conv_interleaved_add_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                     const tp_add_table_params *add_params,
                                     const tp_dims *input_dims, const int8_t *input,
                                     const tp_dims *filter_dims, const int8_t *filter,
                                     const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_conv_interleaved_add_s8 for its fast path: the conv's + 2 * C_OUT (DSP). */
int32_t tp_conv_interleaved_add_s8_get_buffer_size(const tp_dims *input_dims,
                                                   const tp_dims *filter_dims,
                                                   const tp_dims *output_dims);

/** tp_conv_interleaved_add_s8 on the narrow path (less scratch, the same results). */
tp_status tp_conv_interleaved_add_narrow_s8(const tp_context *ctx,
                                            const tp_conv_params *conv_params,
                                            const tp_add_table_params *add_params,
                                            const tp_dims *input_dims, const int8_t *input,
                                            const tp_dims *filter_dims, const int8_t *filter,
                                            const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_conv_interleaved_add_narrow_s8: the narrow conv's + 2 * C_OUT (DSP). */
int32_t tp_conv_interleaved_add_narrow_s8_get_buffer_size(const tp_dims *input_dims,
                                                          const tp_dims *filter_dims,
                                                          const tp_dims *output_dims);

/**
 * DEPTHWISE_CONV_2D with a 3x3 filter and depth multiplier 1 (any stride, padding, dilation).
 * Arguments as tp_depthwise_conv_s8, with bias, multipliers and shifts inside the filter stream.
 *
 * Filter stream (built by the generator, tinyprune/kernels/conv.py group_stream; 4-byte
 * aligned): word 0 is 1 when the rounding words are valid for every channel
 * (tp_requantize_fast), else 0; then per group of four channels (the last C % 4 channels padded
 * with zeros to a group): nine tap words (int8 x 4, the group's channels at tap t = 3 * ky + kx)
 * and four folded biases, four multipliers, four shifts and four rounding words: 25 words per
 * group. filter_dims still reads (1, 3, 3, C). quant_params and bias are not read (may be
 * NULL). Scratch: C bytes rounded up to a multiple of 4 (a row of input zero points for the
 * padding taps); word aligned.
 *
 * In place: output may equal input for SAME padding (1 each side), stride 1, dilation 1 (output
 * shape = input shape); each output row then goes through a two-row ring in the scratch and
 * overwrites its input row once the next output row (the last to read it) is done. Scratch then:
 * tp_depthwise_conv_3x3_s8_get_buffer_size_in_place(). Any other layer with output == input, or
 * a smaller scratch, is refused (TP_ERR_ARG).
 *
 * @return TP_OK, or TP_ERR_ARG when ch_mult != 1, the filter is not 3x3, the scratch is too
 *         small or the shapes disagree.
 */
tp_status tp_depthwise_conv_3x3_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                                   const tp_per_channel_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const int8_t *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output);

/** Scratch bytes tp_depthwise_conv_3x3_s8 needs: C_IN rounded up to a multiple of 4. */
int32_t tp_depthwise_conv_3x3_s8_get_buffer_size(const tp_dims *input_dims,
                                                 const tp_dims *filter_dims);

/** Scratch bytes tp_depthwise_conv_3x3_s8 needs in place (output == input): the above plus two
 * output rows, each W * C rounded up to a multiple of 4. */
int32_t tp_depthwise_conv_3x3_s8_get_buffer_size_in_place(const tp_dims *input_dims,
                                                          const tp_dims *filter_dims);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_CONV_H */
