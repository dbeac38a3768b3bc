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

/* ---- SUB, MAXIMUM, MINIMUM, SQUARED_DIFFERENCE, PRELU, RSQRT --------------------------------
 *
 * Bit-exact with the TFLite Micro reference kernels:
 *   SUB                 reference_ops::Sub / BroadcastQuantSubSlow (int8, left shift 20)
 *   MAXIMUM, MINIMUM    reference_ops::MaximumMinimumBroadcastSlow (raw values: inputs and output
 *                       share one quantization)
 *   SQUARED_DIFFERENCE  TFLM squared_difference.cc (int8, left shift 7)
 *   PRELU               reference_ops::BroadcastPrelu4DSlow (the alpha tensor broadcast)
 *   RSQRT               TFLM elementwise.cc RsqrtEvalQuantized (int8)
 * Broadcasting follows tp_add_s8. Parameters come from tinyprune/kernels/arith.py. No scratch.
 */

/** Parameters of SUB: the fields of tp_add_params (TFLM CalculateOpDataSub, int8). */
typedef tp_add_params tp_sub_params;

/** Quantized subtraction with broadcasting: output = input1 - input2. As tp_add_s8. */
tp_status tp_sub_s8(const tp_sub_params *params,
                    const tp_dims *input1_dims,
                    const int8_t *input1,
                    const tp_dims *input2_dims,
                    const int8_t *input2,
                    const tp_dims *output_dims,
                    int8_t *output);

/** Element-wise maximum with broadcasting (inputs and output quantized alike). As tp_add_s8. */
tp_status tp_maximum_s8(const tp_dims *input1_dims,
                        const int8_t *input1,
                        const tp_dims *input2_dims,
                        const int8_t *input2,
                        const tp_dims *output_dims,
                        int8_t *output);

/** Element-wise minimum with broadcasting (inputs and output quantized alike). As tp_add_s8. */
tp_status tp_minimum_s8(const tp_dims *input1_dims,
                        const int8_t *input1,
                        const tp_dims *input2_dims,
                        const int8_t *input2,
                        const tp_dims *output_dims,
                        int8_t *output);

/**
 * Parameters of SQUARED_DIFFERENCE: the fields of tp_add_params with left_shift = 7 and an
 * output multiplier (2 * max scale)^2 / (2^14 * output scale) whose shift may be either sign.
 */
typedef tp_add_params tp_squared_difference_params;

/** output = (input1 - input2)^2 in the real domain, with broadcasting. As tp_add_s8. */
tp_status tp_squared_difference_s8(const tp_squared_difference_params *params,
                                   const tp_dims *input1_dims,
                                   const int8_t *input1,
                                   const tp_dims *input2_dims,
                                   const int8_t *input2,
                                   const tp_dims *output_dims,
                                   int8_t *output);

/** Parameters of PRELU (TFLM CalculatePreluParams). */
typedef struct {
    int32_t input_offset;   /**< minus the input zero point */
    int32_t alpha_offset;   /**< minus the alpha zero point */
    int32_t output_offset;  /**< output zero point */
    int32_t multiplier_1;   /**< input_scale / output_scale (inputs >= 0) */
    int32_t shift_1;
    int32_t multiplier_2;   /**< input_scale * alpha_scale / output_scale (inputs < 0) */
    int32_t shift_2;
} tp_prelu_params;

/**
 * PRELU with broadcasting: x for x >= 0, alpha * x below (alpha broadcast to the input's shape,
 * e.g. one slope per channel).
 * Returns TP_OK, or TP_ERR_ARG when the shapes do not broadcast.
 */
tp_status tp_prelu_s8(const tp_prelu_params *params,
                      const tp_dims *input_dims,
                      const int8_t *input,
                      const tp_dims *alpha_dims,
                      const int8_t *alpha,
                      const tp_dims *output_dims,
                      int8_t *output);

/** Parameters of RSQRT (TFLM PrepareAbsRsqrt, int8). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t multiplier;   /**< 1 / (sqrt(input_scale) * output_scale) */
    int32_t shift;        /**< its exponent (either sign) */
} tp_rsqrt_params;

/**
 * RSQRT: 1 / sqrt(x) on `size` int8 values (127 where x is its zero point).
 * Returns TP_OK, or TP_ERR_ARG for a negative size or an input below the zero point (a negative
 * real value: TFLM stops the inference there too).
 */
tp_status tp_rsqrt_s8(const tp_rsqrt_params *params, int32_t size, const int8_t *input, int8_t *output);

/**
 * NEG on float32 values (TFLM supports NEG for float32 only; the converter leaves the negation
 * of a LayerNormalization's mean in float between a DEQUANTIZE and a QUANTIZE): output = -input,
 * exact. Returns TP_OK, or TP_ERR_ARG for a negative size.
 */
tp_status tp_neg_f32(int32_t size, const float *input, float *output);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_ELEMENTWISE_H */
