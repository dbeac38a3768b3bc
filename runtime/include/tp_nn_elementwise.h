/*
 * tinyprune runtime: element-wise binary kernels (int8) with broadcasting.
 *
 * Bit-exact with the TFLite Micro reference kernels reference_integer_ops::Add / Mul and their
 * broadcasting variants (BroadcastAdd6DSlow / BroadcastMul6DSlow).
 *
 * Broadcasting: each dimension of input1_dims and input2_dims either equals the same dimension
 * of output_dims or is 1 (that input is then repeated along it). Generation time folds shapes
 * of any rank into these four dimensions (tinyprune/kernels/elementwise.py broadcast_dims), so
 * same-shape, per-channel and scalar operands all run the same loop, with a unit inner stride
 * where possible. No scratch memory.
 */
#ifndef TP_NN_ELEMENTWISE_H
#define TP_NN_ELEMENTWISE_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Parameters of ADD (TFLM CalculateOpDataAdd, int8: left_shift = 20). */
typedef struct {
    int32_t input1_offset;      /**< minus the zero point of input 1 */
    int32_t input2_offset;      /**< minus the zero point of input 2 */
    int32_t left_shift;         /**< 20 for int8 */
    int32_t input1_multiplier;  /**< scale1 / (2 * max(scale1, scale2)) */
    int32_t input1_shift;       /**< <= 0 */
    int32_t input2_multiplier;  /**< scale2 / (2 * max(scale1, scale2)) */
    int32_t input2_shift;       /**< <= 0 */
    int32_t output_multiplier;  /**< 2 * max(scale1, scale2) / (2^left_shift * scale_out) */
    int32_t output_shift;       /**< <= 0 */
    int32_t output_offset;      /**< output zero point */
    tp_activation activation;   /**< fused activation range */
} tp_add_params;

/** Parameters of MUL (TFLM CalculateOpDataMul). */
typedef struct {
    int32_t input1_offset;      /**< minus the zero point of input 1 */
    int32_t input2_offset;      /**< minus the zero point of input 2 */
    int32_t output_multiplier;  /**< scale1 * scale2 / scale_out */
    int32_t output_shift;       /**< matching shift (either sign) */
    int32_t output_offset;      /**< output zero point */
    tp_activation activation;   /**< fused activation range */
} tp_mul_params;

/**
 * Quantized addition with broadcasting: output = input1 + input2 in the real domain.
 *
 * Args:
 *   params       offsets, multipliers and activation range.
 *   input1_dims  [N, H, W, C] of input 1 (each dim 1 or equal to the output's).
 *   input1       data of input 1.
 *   input2_dims  [N, H, W, C] of input 2.
 *   input2       data of input 2.
 *   output_dims  [N, H, W, C] of the output.
 *   output       output data (may alias an input of the output's shape).
 *
 * Returns TP_OK, or TP_ERR_ARG when the shapes do not broadcast.
 */
tp_status tp_add_s8(const tp_add_params *params,
                    const tp_dims *input1_dims,
                    const int8_t *input1,
                    const tp_dims *input2_dims,
                    const int8_t *input2,
                    const tp_dims *output_dims,
                    int8_t *output);

/**
 * Quantized multiplication with broadcasting: output = input1 * input2 in the real domain.
 * Arguments and return values as tp_add_s8.
 */
tp_status tp_mul_s8(const tp_mul_params *params,
                    const tp_dims *input1_dims,
                    const int8_t *input1,
                    const tp_dims *input2_dims,
                    const int8_t *input2,
                    const tp_dims *output_dims,
                    int8_t *output);

/**
 * Parameters of tp_add_table_s8 (ADD through per-input tables, computed by the code generator
 * from tp_add_params; tinyprune/kernels/elementwise.py add_tables).
 */
typedef struct {
    const int32_t *input1_table; /**< 256 values: input 1 value v scaled to the common domain,
                                      at index v + 128, i.e. tp_requantize((v + input1_offset)
                                      << left_shift, input1_multiplier, input1_shift) */
    const int32_t *input2_table; /**< the same for input 2 */
    int32_t output_multiplier;   /**< as tp_add_params */
    int32_t output_shift;        /**< <= -2 (tp_requantize_fast) */
    int32_t output_rounding;     /**< 2^(-shift-2) + output_offset * 2^(-shift-1), |.| <= 2^30 - 2 */
    tp_activation activation;    /**< fused activation range */
} tp_add_table_params;

/**
 * ADD, bit-exact with tp_add_s8 and TFLM, for the usual quantization (an output shift of -2 or
 * less): each input value's scaled term is read from a 256-entry table instead of being
 * requantized per element, and the sum is requantized with tp_requantize_fast (output offset
 * folded in). Same-shape operands run four elements per step from word loads. 2 KB of flash
 * (two int32 tables) per layer; no scratch. Arguments as tp_add_s8; the output may alias an
 * input of the output's shape (each element is read before it is written).
 *
 * Returns TP_OK, or TP_ERR_ARG when the shapes do not broadcast or the output shift is above -2.
 */
tp_status tp_add_table_s8(const tp_add_table_params *params,
                          const tp_dims *input1_dims,
                          const int8_t *input1,
                          const tp_dims *input2_dims,
                          const int8_t *input2,
                          const tp_dims *output_dims,
                          int8_t *output);

/* ---- internal helper shared by the element-wise kernels -------------------------------------- */

/**
 * Element strides of `in` broadcast to `out` (index 0..3 = N, H, W, C), 0 along a dimension
 * where `in` is 1 and repeated. Returns 0 when `in` does not broadcast to `out`.
 */
static inline int tp_broadcast_strides(const tp_dims *in, const tp_dims *out, int32_t strides[4])
{
    const int32_t ext[4] = {in->n, in->h, in->w, in->c};
    const int32_t full[4] = {out->n, out->h, out->w, out->c};
    int32_t stride = 1;
    for (int32_t i = 3; i >= 0; --i) {
        if ((ext[i] != full[i] && ext[i] != 1) || full[i] < 0) {
            return 0;
        }
        strides[i] = ext[i] == 1 ? 0 : stride;
        stride *= ext[i];
    }
    return 1;
}

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_ELEMENTWISE_H */
