/*
 * tinyprune runtime: data movement and type conversion kernels.
 *
 * Bit-exact with the TFLite Micro reference kernels:
 *   PAD / PADV2                   reference_ops::Pad (constant padding)
 *   CONCATENATION                 reference_ops::Concatenation (a copy when an input's scale and
 *                                 zero point equal the output's; see tp_concat_s8 otherwise)
 *   QUANTIZE float32 -> int8      reference_ops::AffineQuantize
 *   QUANTIZE int8 -> int8         reference_ops::Requantize
 *   DEQUANTIZE int8 -> float32    reference_ops::Dequantize
 *
 * No scratch memory. Parameters are computed by tinyprune/kernels/tensor.py.
 */
#ifndef TP_NN_TENSOR_H
#define TP_NN_TENSOR_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Parameters of PAD: amounts before and after each dimension, and the fill value. */
typedef struct {
    tp_dims before;     /**< elements added before index 0 of each dimension (>= 0) */
    tp_dims after;      /**< elements added after the last index of each dimension (>= 0) */
    int32_t pad_value;  /**< int8 fill value: the output zero point for PAD, the constant for
                             PADV2 */
} tp_pad_params;

/**
 * Constant padding of an int8 [N, H, W, C] tensor.
 *
 * output_dims must equal input_dims + before + after in every dimension.
 * Returns TP_OK, or TP_ERR_ARG for inconsistent dimensions or a pad value outside int8.
 */
tp_status tp_pad_s8(const tp_pad_params *params,
                    const tp_dims *input_dims,
                    const int8_t *input,
                    const tp_dims *output_dims,
                    int8_t *output);

/** int8 -> int8 requantization: out = clamp(MBQM(in + input_offset, m, s) + output_offset). */
typedef struct {
    int32_t multiplier;     /**< input_scale / output_scale (0: the scale ratio is below
                                 2^-32, every output is output_offset, as in TFLM) */
    int32_t shift;          /**< matching shift, -31..31; multiplier 2^30 with shift 1 and
                                 input_offset == -output_offset is the identity: a copy */
    int32_t input_offset;   /**< minus the input zero point */
    int32_t output_offset;  /**< output zero point */
} tp_requant_params;

/**
 * Requantizes `size` int8 values (QUANTIZE with int8 input and output).
 * Returns TP_OK, or TP_ERR_ARG for a negative size.
 */
tp_status tp_requantize_s8(const tp_requant_params *params,
                           int32_t size,
                           const int8_t *input,
                           int8_t *output);

/** One input of a concatenation. */
typedef struct {
    const int8_t *data;       /**< input data */
    int32_t row;              /**< elements per outer index: axis extent * inner size */
    tp_requant_params quant;  /**< the identity (2^30, 1, -zp, zp): copied as is */
} tp_concat_input;

/** Parameters of CONCATENATION on a tensor viewed as [outer, axis * inner]. */
typedef struct {
    int32_t outer;       /**< product of the dimensions before the axis */
    int32_t output_row;  /**< output axis extent * inner size; the sum of the inputs' rows */
} tp_concat_params;

/**
 * Concatenation along any axis: for every outer index, the rows of the inputs are written one
 * after the other. An input whose scale or zero point differs from the output's is requantized
 * with tp_requantize_s8's arithmetic (TFLM refuses such models at prepare time; the TFLite
 * converter never produces them, it inserts a QUANTIZE op instead).
 *
 * Returns TP_OK, or TP_ERR_ARG when the input rows do not add up to output_row.
 */
tp_status tp_concat_s8(const tp_concat_params *params,
                       const tp_concat_input *inputs,
                       int32_t num_inputs,
                       int8_t *output);

/** Affine quantization parameters of a float <-> int8 conversion. */
typedef struct {
    float scale;         /**< the tensor's float32 scale, > 0 */
    int32_t zero_point;  /**< the int8 tensor's zero point */
} tp_affine_params;

/**
 * float32 -> int8: out = clamp(round(in / scale) + zero_point), round half away from zero,
 * computed in single precision with a true division, as TFLM. Values beyond the int32 range
 * saturate (TFLM's behavior there is undefined).
 * Returns TP_OK, or TP_ERR_ARG for a negative size or a non-positive scale.
 */
tp_status tp_quantize_f32_s8(const tp_affine_params *params,
                             int32_t size,
                             const float *input,
                             int8_t *output);

/**
 * int8 -> float32: out = scale * (in - zero_point). TFLM evaluates the product in double and
 * rounds it to float; the product of a float and a 9-bit integer is exact in double, so the
 * single-precision product used here (one correctly rounded multiply) is the same float.
 * Returns TP_OK, or TP_ERR_ARG for a negative size.
 */
tp_status tp_dequantize_s8_f32(const tp_affine_params *params,
                               int32_t size,
                               const int8_t *input,
                               float *output);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_TENSOR_H */
