/*
 * tinyprune runtime: sparse int8 kernels (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D) over compact
 * weight formats.
 *
 * Every kernel here computes exactly what the dense kernel of tp_nn_fc.h / tp_nn_conv.h computes
 * on the dense weights its format encodes (zeros everywhere else), so it is bit-exact with the
 * TFLite Micro reference kernels on those weights; the work and the flash of the zeros are
 * skipped. The generator (tinyprune/kernels/sparse_encoding.py) builds the formats; which kernel a
 * layer gets is a cost-model choice (docs/kernels.md, "Sparse kernels").
 *
 * Weight rows: row o holds output channel o's K values in the dense kernel's memory order
 * (FULLY_CONNECTED: the IN inputs; CONV_2D: [KH][KW][C_IN]), cut into groups of four along K
 * (K4 = K rounded up to a multiple of 4, padding values 0).
 *
 * Requantization: the DSP paths requantize with SMMULR (tp_sparse_dsp.h), exact when every
 * accumulator satisfies |acc| << (max(shift, 0) + 1) < 2^31. The generator checks the bound
 * |bias[o]| + 255 * sum |w[o][k]| < 2^(30 - max(shift[o], 0)) for every channel before it gives
 * a layer a sparse kernel; the portable paths use the plain TFLM arithmetic (tp_nn_support.h).
 *
 * Argument order, scratch (_get_buffer_size) and status codes as every other kernel (tp_nn.h);
 * filter_dims always describes the dense filter ([OUT, 1, 1, IN] or [C_OUT, KH, KW, C_IN]).
 */
#ifndef TP_NN_SPARSE_H
#define TP_NN_SPARSE_H

#include "tp_nn_types.h"
#include "tp_nn_conv.h"
#include "tp_nn_fc.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of the widened input (four int16 values) one FULLY_CONNECTED block step moves. */
#define TP_BSR_STEP_BYTES 8

/**
 * Block-sparse weights, blocks of R x 4: R consecutive output channels (a row group) share one
 * pattern of blocks, each block being four consecutive values along K of each of the R rows.
 * Row group g (channels R g .. R g + R - 1) stores counts[g] blocks, in ascending column order:
 *
 *   - index: per block, its position: FULLY_CONNECTED takes steps (uint8, index_bytes = 1):
 *     TP_BSR_STEP_BYTES * (column - previous column of the group, or 0 for its first block);
 *     a gap longer than 31 blocks is bridged by zero-valued filler blocks. CONV_2D takes the
 *     absolute block column (uint8 when K4 / 4 <= 256, else uint16).
 *   - blocks: per block R words of 4 int8, row by row ([R][4]); word (4-byte) aligned.
 *
 * The blocks of all row groups follow each other in counts, index and blocks alike.
 */
typedef struct {
    int32_t group;        /**< R: 1, 2 or 4, dividing the number of output channels */
    int32_t count_bytes;  /**< 1 (counts are uint8) or 2 (uint16) */
    int32_t index_bytes;  /**< 1 (uint8) or 2 (uint16) */
    const void *counts;   /**< OUT / R stored block counts */
    const void *index;    /**< steps or block columns, one per stored block */
    const int8_t *blocks; /**< stored blocks, R * 4 int8 each */
} tp_bsr_filter;

/**
 * N:M sparse weights, N = 2 or 1 of every M = 4 values along K. A unit is a group of four
 * values (2:4) or two consecutive groups (1:4); a row has U units (K / 4, resp. K / 8, rounded
 * up, then to an even count; values past K are 0). Per unit, two values are kept and a 4-bit
 * code says which: for 2:4 codes 0..5 keep values (0,1) (0,2) (0,3) (1,2) (1,3) (2,3) of the
 * group; for 1:4 code p + 4 q keeps value p of the first group and value q of the second.
 * Rows follow each other (no counts: every row has U units):
 *
 *   - values: per row, per pair of units (2i, 2i + 1), one word [first kept of 2i, first kept
 *     of 2i + 1, second kept of 2i, second kept of 2i + 1] (2 U bytes a row), word aligned;
 *   - codes: per row, per pair of units, one byte: unit 2i's code in bits 0-3, 2i + 1's in 4-7.
 */
typedef struct {
    int32_t n;             /**< N: 2 (2:4) or 1 (1:4) */
    const int8_t *values;  /**< kept values, 2 U bytes per row */
    const uint8_t *codes;  /**< codes, U / 2 bytes per row */
} tp_nm_filter;

/**
 * Unstructured sparse weights (CSR): row o stores counts[o] non-zero values, in ascending
 * position order, each with its position k along K (0 <= k < K). Rows follow each other.
 */
typedef struct {
    int32_t count_bytes;  /**< 1 (counts are uint8) or 2 (uint16) */
    int32_t index_bytes;  /**< 1 (positions are uint8, K <= 256) or 2 (uint16) */
    const void *counts;   /**< non-zero values per row */
    const void *index;    /**< the position of each value */
    const int8_t *values; /**< the non-zero values */
} tp_csr_filter;

/**
 * int8 fully connected layer over block-sparse weights (steps index), one requantization for the
 * whole tensor. Arguments as tp_fully_connected_s8 (tp_nn_fc.h), except the filter.
 *
 * @param ctx     scratch: tp_fully_connected_bsr_s8_get_buffer_size() bytes, word aligned
 * @param filter  the weights [OUT, IN] as R x 4 blocks with a steps index (index_bytes = 1)
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the dimensions disagree, or the
 *         format fields are out of range.
 */
tp_status tp_fully_connected_bsr_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                    const tp_per_tensor_quant *quant_params,
                                    const tp_dims *input_dims, const int8_t *input,
                                    const tp_dims *filter_dims, const tp_bsr_filter *filter,
                                    const tp_dims *bias_dims, const int32_t *bias,
                                    const tp_dims *output_dims, int8_t *output);

/** As tp_fully_connected_bsr_s8 with one requantization per output channel. */
tp_status tp_fully_connected_bsr_per_channel_s8(const tp_context *ctx,
                                                const tp_fc_params *fc_params,
                                                const tp_per_channel_quant *quant_params,
                                                const tp_dims *input_dims, const int8_t *input,
                                                const tp_dims *filter_dims,
                                                const tp_bsr_filter *filter,
                                                const tp_dims *bias_dims, const int32_t *bias,
                                                const tp_dims *output_dims, int8_t *output);

/** Scratch of both: 2 * K4 bytes (the widened input row) on the DSP path, 0 portable. */
int32_t tp_fully_connected_bsr_s8_get_buffer_size(const tp_dims *filter_dims);

/**
 * int8 fully connected layer over N:M sparse weights (tp_nm_filter), per-tensor requantization.
 * Arguments as tp_fully_connected_s8, except the filter. DSP path: the input row's pair words
 * are built once (6 per unit for 2:4, 16 for 1:4), then per unit one LDR and one SMLAD.
 *
 * @param ctx  scratch: tp_fully_connected_nm_s8_get_buffer_size() bytes, word aligned
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the dimensions disagree or N is
 *         not 1 or 2.
 */
tp_status tp_fully_connected_nm_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                   const tp_per_tensor_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const tp_nm_filter *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output);

/** As tp_fully_connected_nm_s8 with one requantization per output channel. */
tp_status tp_fully_connected_nm_per_channel_s8(const tp_context *ctx,
                                               const tp_fc_params *fc_params,
                                               const tp_per_channel_quant *quant_params,
                                               const tp_dims *input_dims, const int8_t *input,
                                               const tp_dims *filter_dims,
                                               const tp_nm_filter *filter,
                                               const tp_dims *bias_dims, const int32_t *bias,
                                               const tp_dims *output_dims, int8_t *output);

/** Scratch of both: U * (6 for N = 2, 16 for N = 1) * 4 bytes on the DSP path, 0 portable. */
int32_t tp_fully_connected_nm_s8_get_buffer_size(const tp_dims *filter_dims, int32_t n);

/**
 * int8 fully connected layer over unstructured sparse weights (tp_csr_filter), per-tensor
 * requantization. Arguments as tp_fully_connected_s8, except the filter. DSP path: the input
 * row widened once to int16; per non-zero weight one LDRSH and one SMLABB / SMLABT.
 *
 * @param ctx  scratch: tp_fully_connected_csr_s8_get_buffer_size() bytes, word aligned
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the dimensions disagree or the
 *         format fields are out of range.
 */
tp_status tp_fully_connected_csr_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                    const tp_per_tensor_quant *quant_params,
                                    const tp_dims *input_dims, const int8_t *input,
                                    const tp_dims *filter_dims, const tp_csr_filter *filter,
                                    const tp_dims *bias_dims, const int32_t *bias,
                                    const tp_dims *output_dims, int8_t *output);

/** As tp_fully_connected_csr_s8 with one requantization per output channel. */
tp_status tp_fully_connected_csr_per_channel_s8(const tp_context *ctx,
                                                const tp_fc_params *fc_params,
                                                const tp_per_channel_quant *quant_params,
                                                const tp_dims *input_dims, const int8_t *input,
                                                const tp_dims *filter_dims,
                                                const tp_csr_filter *filter,
                                                const tp_dims *bias_dims, const int32_t *bias,
                                                const tp_dims *output_dims, int8_t *output);

/** Scratch of both: 2 * IN bytes (the input as int16) on the DSP path, 0 portable. */
int32_t tp_fully_connected_csr_s8_get_buffer_size(const tp_dims *filter_dims);

/**
 * int8 fully connected layer that skips the inputs equal to the input zero point (activation
 * sparsity), per-tensor requantization; exact for any input. Also runs a 1x1, stride-1
 * CONV_2D, whose pixels are its batch rows. Arguments as tp_fully_connected_s8, except the
 * filter layout: the dense [OUT, IN] weights regrouped by four output channels, [OUT4 / 4][IN][4]
 * (OUT4 = OUT rounded up to 4, extra rows 0): for each group and input k the word of the four
 * channels' weights. IN <= 16383.
 *
 * @param ctx  scratch: tp_fully_connected_zskip_s8_get_buffer_size() bytes, word aligned (both
 *             paths: the list of non-zero inputs)
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small or the dimensions disagree.
 */
tp_status tp_fully_connected_zskip_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                      const tp_per_tensor_quant *quant_params,
                                      const tp_dims *input_dims, const int8_t *input,
                                      const tp_dims *filter_dims, const int8_t *filter,
                                      const tp_dims *bias_dims, const int32_t *bias,
                                      const tp_dims *output_dims, int8_t *output);

/** As tp_fully_connected_zskip_s8 with one requantization per output channel. */
tp_status tp_fully_connected_zskip_per_channel_s8(const tp_context *ctx,
                                                  const tp_fc_params *fc_params,
                                                  const tp_per_channel_quant *quant_params,
                                                  const tp_dims *input_dims, const int8_t *input,
                                                  const tp_dims *filter_dims,
                                                  const int8_t *filter, const tp_dims *bias_dims,
                                                  const int32_t *bias, const tp_dims *output_dims,
                                                  int8_t *output);

/** Scratch of both: 4 * IN bytes (one word per listed input), on both paths. */
int32_t tp_fully_connected_zskip_s8_get_buffer_size(const tp_dims *filter_dims);

/**
 * int8 CONV_2D (any filter size, stride, padding, dilation; groups = 1) over block-sparse
 * filter rows, per-channel requantization. Arguments as tp_conv_s8 (tp_nn_conv.h), except that
 * bias is the folded bias of the specialised conv kernels (bias + input_offset * sum of the
 * channel's weights, tp_nn_conv.h; NULL only when every folded value is 0), so the kernel
 * multiplies raw int8 inputs (its SMMULR bound then uses |x| <= 128), and except the filter: rows [C_OUT][KH * KW * C_IN] as R x 4 blocks with absolute block columns (index_bytes
 * 1 or 2), and within each row group the blocks stored row by row: row i of group g holds
 * counts[g] words (its four values of each block, in block order), rows i = 0 .. R - 1 one
 * after the other, so each filter row's words are contiguous.
 *
 * DSP path: four output pixels per pass, their windows widened to int16 into four interleaved
 * columns; per block four LDRD, two SXTB16 and eight SMLAD (16 MACs).
 *
 * @param ctx  scratch: tp_conv_bsr_s8_get_buffer_size() bytes, word aligned
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the shapes disagree or the format
 *         fields are out of range.
 */
tp_status tp_conv_bsr_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                         const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                         const int8_t *input, const tp_dims *filter_dims,
                         const tp_bsr_filter *filter, const tp_dims *bias_dims,
                         const int32_t *bias, const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_conv_bsr_s8: 9 * K4 + 36 * C_OUT bytes on the DSP path (four int16 columns,
 * the int8 window, the int32 accumulators of a pass, each channel's requantization split once),
 * K4 bytes portable (the window). */
int32_t tp_conv_bsr_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims);

/**
 * int8 CONV_2D over N:M sparse filter rows (tp_nm_filter, rows [C_OUT][KH * KW * C_IN]),
 * per-channel requantization. Arguments as tp_conv_s8, except the filter. DSP path: four output
 * pixels per pass; their windows' pair words built once per pass ([unit][code][pixel]); per
 * unit of a row two LDRD and four SMLAD (one SXTB16 serves two units).
 *
 * @param ctx  scratch: tp_conv_nm_s8_get_buffer_size() bytes, word aligned
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the shapes disagree or N is not
 *         1 or 2.
 */
tp_status tp_conv_nm_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                        const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                        const int8_t *input, const tp_dims *filter_dims,
                        const tp_nm_filter *filter, const tp_dims *bias_dims,
                        const int32_t *bias, const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_conv_nm_s8 for N: DSP path U * (6 or 16) * 16 + 36 * C_OUT + K' bytes (the
 * pair words of a pass, its accumulators, the channels' splits, the window, K' = U * unit
 * values); portable K' bytes. */
int32_t tp_conv_nm_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                      int32_t n);

/**
 * int8 CONV_2D over unstructured sparse filter rows (tp_csr_filter, rows [C_OUT][KH * KW *
 * C_IN]), per-channel requantization. Arguments as tp_conv_s8, except the filter. DSP path: four
 * output pixels per pass, their windows as int16 [k][pixel]; per non-zero weight one LDRD and
 * four SMLAxy.
 *
 * @param ctx  scratch: tp_conv_csr_s8_get_buffer_size() bytes, word aligned
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small, the shapes disagree or the format
 *         fields are out of range.
 */
tp_status tp_conv_csr_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                         const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                         const int8_t *input, const tp_dims *filter_dims,
                         const tp_csr_filter *filter, const tp_dims *bias_dims,
                         const int32_t *bias, const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_conv_csr_s8: DSP 9 * K4 + 36 * C_OUT bytes (the [k][pixel] values, the
 * accumulators of a pass, the channels' splits, the window); portable K4 bytes. */
int32_t tp_conv_csr_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims);

/** Most taps (KH * KW) tp_depthwise_conv_bsr_s8 takes (their addresses live on its stack). */
#define TP_DW_BSR_MAX_TAPS 64

/**
 * Block-sparse DEPTHWISE_CONV_2D weights (depth multiplier 1): a block is one tap t = KW * ky +
 * kx of four consecutive channels, i.e. one word of the [1, KH, KW, C] filter. Channel group g
 * (channels 4 g .. 4 g + 3; the last C % 4 channels form a zero-padded group) stores counts[g]
 * blocks in ascending tap order; the groups follow each other in index and blocks:
 *
 *   - index: per stored block its tap t (uint8 when KH * KW <= 256, else uint16);
 *   - blocks: per stored block one word, the four channels' weights at that tap (word aligned);
 *   - params: per group 16 int32, word aligned: the folded bias of its four channels (bias +
 *     input_offset * the channel's weight sum, so the kernel multiplies raw int8 inputs and a
 *     tap in the padding reads the input zero point), their multipliers, their shifts and
 *     their rounding words for tp_requantize_fast (tp_dsp.h; see `fast`).
 *     Padding channels of the last group have bias 0 and the last channel's parameters.
 */
typedef struct {
    int32_t count_bytes;   /**< 1 (counts are uint8) or 2 (uint16) */
    int32_t index_bytes;   /**< 1 (taps are uint8) or 2 (uint16) */
    const void *counts;    /**< ceil(C / 4) stored block counts */
    const void *index;     /**< the tap of each stored block */
    const int8_t *blocks;  /**< stored blocks, 4 int8 each */
    const int32_t *params; /**< 16 words per group: bias[4], mult[4], shift[4], round[4] */
    int32_t fast;          /**< 0: TFLM requantization; 1: the rounding words of tp_requantize_fast
                                (output offset folded in) are valid; 2: they are valid without
                                the offset (2^(r-2)), which the kernel adds after */
} tp_dw_bsr_filter;

/**
 * int8 DEPTHWISE_CONV_2D (depth multiplier 1, any KH x KW up to TP_DW_BSR_MAX_TAPS taps, stride,
 * padding, dilation) over block-sparse weights (tp_dw_bsr_filter), per-channel requantization.
 * Arguments as tp_depthwise_conv_s8 (tp_nn_conv.h), except the filter, which also carries the
 * bias and the requantization (quant_params and bias are not read and may be NULL, as for
 * tp_depthwise_conv_3x3_s8). The output must not overlap the input.
 *
 * Per output pixel: the KH * KW tap addresses, then per group of four channels its stored
 * blocks. DSP path: per block one input word and one weight word, two SXTB16 each and one
 * SMLABB / SMLATT per channel; requantization with tp_requantize_fast when `fast`. Portable
 * path: one channel at a time, the TFLM arithmetic.
 *
 * @param ctx  scratch: tp_depthwise_conv_bsr_s8_get_buffer_size() bytes, word aligned
 * @return TP_OK, or TP_ERR_ARG when ch_mult is not 1, the shapes disagree, the filter has more
 *         than TP_DW_BSR_MAX_TAPS taps, the scratch is too small, the format fields are out of
 *         range or output == input.
 */
tp_status tp_depthwise_conv_bsr_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                                   const tp_per_channel_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const tp_dw_bsr_filter *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output);

/** Scratch of tp_depthwise_conv_bsr_s8 (both paths): C rounded up to 4 bytes, the row of input
 * zero points that taps in the padding read. */
int32_t tp_depthwise_conv_bsr_s8_get_buffer_size(const tp_dims *input_dims,
                                                 const tp_dims *filter_dims);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_SPARSE_H */
