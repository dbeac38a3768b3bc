/*
 * tinyprune runtime: int8 fully connected kernels (FULLY_CONNECTED).
 *
 * Numerics are bit-exact with TFLite Micro's reference_integer_ops::FullyConnected (per-tensor,
 * filter zero point 0, the only case TFLM accepts for int8) and FullyConnectedPerChannel: for each
 * batch row b and output o,
 *
 *     acc = sum_k filter[o][k] * (input[b][k] + input_offset)  (+ bias[o])
 *     out = clamp(requantize(acc, multiplier, shift) + output_offset, act.min, act.max)
 *
 * Layouts: input [N, IN] (any leading shape flattened to N rows), filter [OUT, IN], bias [OUT],
 * output [N, OUT]. In tp_dims: input (n, 1, 1, IN), filter (OUT, 1, 1, IN), output (n, 1, 1, OUT).
 * A portable C path and a DSP path (TP_USE_DSP=1, SXTB16/SMLAD) give identical results.
 */
#ifndef TP_NN_FC_H
#define TP_NN_FC_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Operator parameters of FULLY_CONNECTED. */
typedef struct {
    int32_t input_offset;     /**< minus the input zero point, in [-127, 128] */
    int32_t output_offset;    /**< the output zero point, in [-128, 127] */
    tp_activation activation; /**< output clamp, within [-128, 127] */
} tp_fc_params;

/**
 * int8 fully connected layer, one requantization for the whole tensor.
 *
 * @param ctx          scratch; ctx->size must be >= tp_fully_connected_s8_get_buffer_size(); buf
 *                     must be word (4-byte) aligned, and may be NULL when that size is 0
 * @param fc_params    offsets and activation range
 * @param quant_params the multiplier and shift (shift > 0 is a left shift)
 * @param input_dims   (N, 1, 1, IN)
 * @param input        input data, N * IN values
 * @param filter_dims  (OUT, 1, 1, IN)
 * @param filter       filter data, OUT * IN values
 * @param bias_dims    (1, 1, 1, OUT) (unused, may be NULL)
 * @param bias         OUT int32 values, or NULL
 * @param output_dims  (N, 1, 1, OUT)
 * @param output       output data, N * OUT values
 * @return TP_OK, or TP_ERR_ARG when the scratch is too small or the dimensions disagree.
 */
tp_status tp_fully_connected_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                const tp_per_tensor_quant *quant_params,
                                const tp_dims *input_dims, const int8_t *input,
                                const tp_dims *filter_dims, const int8_t *filter,
                                const tp_dims *bias_dims, const int32_t *bias,
                                const tp_dims *output_dims, int8_t *output);

/**
 * int8 fully connected layer with one requantization per output channel (per-channel weights).
 * Arguments as tp_fully_connected_s8, except quant_params holds OUT multipliers and shifts.
 */
tp_status tp_fully_connected_per_channel_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                            const tp_per_channel_quant *quant_params,
                                            const tp_dims *input_dims, const int8_t *input,
                                            const tp_dims *filter_dims, const int8_t *filter,
                                            const tp_dims *bias_dims, const int32_t *bias,
                                            const tp_dims *output_dims, int8_t *output);

/**
 * Scratch bytes both fully connected kernels need: IN * sizeof(int16_t) for the DSP path (one
 * input row widened to int16 with the offset added), 0 for the portable path (TP_USE_DSP=0).
 */
int32_t tp_fully_connected_s8_get_buffer_size(const tp_dims *filter_dims);

/**
 * FULLY_CONNECTED, per-tensor or per-channel, with the input offset folded into the bias and the
 * weights as a stream of interleaved row groups (built by the code generator,
 * tinyprune/kernels/fully_connected.py fc_stream). On a core with the DSP extension (gcc), a
 * layer with tp_requantize_fast and the whole int8 range as activation range runs a group loop
 * in assembly: per group of four output rows the biases in one LDM, per four inputs one LDRD of
 * the widened input, one LDM of the rows' four words, eight SXTB16 and eight SMLAD (eight such
 * steps a loop trip), then tp_requantize_fast and SSAT per output with the parameters in
 * registers. Other layers, and the DSP path built for a host, run the same arithmetic in C.
 * Bit-exact with the two kernels above.
 *
 * Stream (filter, 4-byte aligned): a header of five int32 words {fast, per_channel, multiplier,
 * shift, rounding} (the last three for a per-tensor layer, else 0; fast = 1 when the rounding
 * words are valid), then per group of four rows (OUT padded to a multiple of 4 with zero rows):
 * the four rows' folded biases (bias + input_offset * sum of the row), the rows' values (each
 * padded with 0 to IN4 = IN rounded up to a multiple of 4) interleaved a word at a time,
 * [IN4 / 4][4 rows][4 values], and, per channel, each row's multiplier, shift and rounding word
 * ([4 rows][3], tp_requantize_fast in tp_dsp.h). quant_params and bias are not read (may be
 * NULL); fc_params->input_offset is not used (it is in the bias).
 *
 * Scratch: tp_fully_connected_interleaved_s8_get_buffer_size() bytes (2 * IN4, DSP path; 0
 * portable), word aligned.
 */
tp_status tp_fully_connected_interleaved_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                            const tp_per_tensor_quant *quant_params,
                                            const tp_dims *input_dims, const int8_t *input,
                                            const tp_dims *filter_dims, const int8_t *filter,
                                            const tp_dims *bias_dims, const int32_t *bias,
                                            const tp_dims *output_dims, int8_t *output);

/** Scratch bytes tp_fully_connected_interleaved_s8 needs: 2 * IN4 (DSP path), 0 (portable). */
int32_t tp_fully_connected_interleaved_s8_get_buffer_size(const tp_dims *filter_dims);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_FC_H */
