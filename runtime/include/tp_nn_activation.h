/*
 * tinyprune runtime: activation kernels (int8).
 *
 * Bit-exact with the TFLite Micro reference kernels:
 *   SOFTMAX   reference_ops::Softmax<int8_t, int8_t> (gemmlowp fixed point, Q5.26 differences,
 *             12 accumulation integer bits; output scale 1/256, zero point -128)
 *   LOGISTIC  reference_integer_ops::Logistic (Q4.27 input, output scale 1/256, zero point -128)
 *
 * The gemmlowp fixed-point routines they share are below as static inline functions
 * (tp_fp_*); they are ports of tensorflow/lite/micro/kernels/internal/fixedpoint.h with the
 * same rounding and saturation. No scratch memory.
 */
#ifndef TP_NN_ACTIVATION_H
#define TP_NN_ACTIVATION_H

#include "tp_nn_support.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Parameters of SOFTMAX (TFLM PreprocessSoftmaxScaling with 5 integer bits). */
typedef struct {
    int32_t input_multiplier;  /**< beta * input_scale * 2^26, as a Q31 multiplier */
    int32_t input_left_shift;  /**< >= 0 */
    int32_t diff_min;          /**< differences below this give exactly zero probability */
} tp_softmax_params;

/**
 * Softmax over the last axis, int8 -> int8 (output scale 1/256, zero point -128).
 *
 * Args:
 *   params    multiplier, shift, diff_min.
 *   num_rows  product of all dimensions but the last.
 *   row_size  the last dimension, 1..511 (so the sum of exponentials keeps 4 bits of
 *             headroom, as TFLM requires).
 *   input     num_rows * row_size values.
 *   output    num_rows * row_size values.
 *
 * Returns TP_OK, or TP_ERR_ARG for sizes out of range.
 */
tp_status tp_softmax_s8(const tp_softmax_params *params,
                        int32_t num_rows,
                        int32_t row_size,
                        const int8_t *input,
                        int8_t *output);

/** Parameters of LOGISTIC (TFLM CalculateArithmeticOpDataLogistic, int8). */
typedef struct {
    int32_t input_zero_point;    /**< input zero point */
    int32_t input_range_radius;  /**< |in - zp| at or beyond this saturates to -128 / 127 */
    int32_t input_multiplier;    /**< input_scale * 2^27, as a Q31 multiplier */
    int32_t input_left_shift;    /**< its exponent (either sign) */
} tp_logistic_params;

/**
 * Logistic (sigmoid), int8 -> int8 (output scale 1/256, zero point -128) on `size` values.
 * Returns TP_OK, or TP_ERR_ARG for a negative size.
 */
tp_status tp_logistic_s8(const tp_logistic_params *params,
                         int32_t size,
                         const int8_t *input,
                         int8_t *output);

/* ---- gemmlowp fixed-point helpers (internal to the activation kernels) ------------------ */

/** SaturatingRoundingMultiplyByPOT<exponent> for 0 < exponent < 31: saturating x * 2^exponent. */
static inline int32_t tp_fp_mul_pow2_sat(int32_t x, int32_t exponent)
{
    const int32_t threshold = (int32_t)((1U << (31 - exponent)) - 1U);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

/** gemmlowp RoundingHalfSum: (a + b) / 2 rounded half away from zero. */
static inline int32_t tp_fp_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    return (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
}

/** exp(a) for a in [-1/4, 0), Q0.31 in and out. */
static inline int32_t tp_fp_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;  /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (1 << 28);
    const int32_t x2 = tp_doubling_high_mult(x, x);
    const int32_t x3 = tp_doubling_high_mult(x2, x);
    const int32_t x4 = tp_doubling_high_mult(x2, x2);
    const int32_t x4_over_4 = tp_divide_by_power_of_two(x4, 2);
    const int32_t poly = tp_divide_by_power_of_two(
        tp_doubling_high_mult(x4_over_4 + x3, constant_1_over_3) + x2, 1);
    return constant_term + tp_doubling_high_mult(constant_term, x + poly);
}

/**
 * gemmlowp exp_on_negative_values: exp(a) for a <= 0 given with `integer_bits` (4 or 5)
 * integer bits, result in Q0.31 (exp(0) = INT32_MAX).
 */
static inline int32_t tp_fp_exp_on_negative_values(int32_t a, int32_t integer_bits)
{
    static const int32_t multipliers[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242,
    };  /* exp(-2^k) for k = -2 .. 4, Q0.31 */
    const int32_t fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t a_mod_quarter_minus_one_quarter = (a & (one_quarter - 1)) - one_quarter;
    int32_t result = tp_fp_exp_on_interval_between_negative_one_quarter_and_0_excl(
        tp_fp_mul_pow2_sat(a_mod_quarter_minus_one_quarter, integer_bits));
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int32_t k = 0; k < 7; ++k) {
        const int32_t exponent = k - 2;
        if (integer_bits > exponent &&
            (remainder & ((int32_t)1 << (fractional_bits + exponent))) != 0) {
            result = tp_doubling_high_mult(result, multipliers[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/** gemmlowp one_over_one_plus_x_for_x_in_0_1: 1 / (1 + a), Q0.31 in and out (Newton-Raphson). */
static inline int32_t tp_fp_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    const int32_t half_denominator = tp_fp_rounding_half_sum(a, INT32_MAX);
    int32_t x = 1515870810 + tp_doubling_high_mult(half_denominator, -1010580540);  /* Q2.29 */
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t one_minus_half_denominator_times_x =
            (1 << 29) - tp_doubling_high_mult(half_denominator, x);
        x += tp_fp_mul_pow2_sat(tp_doubling_high_mult(x, one_minus_half_denominator_times_x), 2);
    }
    return tp_fp_mul_pow2_sat(x, 1);
}

/** gemmlowp logistic for a Q4.27 input, result in Q0.31. */
static inline int32_t tp_fp_logistic_q4(int32_t a)
{
    if (a == 0) {
        return 1 << 30;
    }
    const int32_t abs_a = a > 0 ? a : -a;
    const int32_t positive =
        tp_fp_one_over_one_plus_x_for_x_in_0_1(tp_fp_exp_on_negative_values(-abs_a, 4));
    return a > 0 ? positive : INT32_MAX - positive;
}

/* ---- pointwise activations: HARD_SWISH, RELU, RELU6, LEAKY_RELU, TANH ----------------------
 *
 * Bit-exact with the TFLite Micro reference kernels:
 *   HARD_SWISH  reference_ops::HardSwish<int8_t> (16-bit fixed point, TFLM HardSwishPrepare)
 *   RELU        tflite::ReluQuantized (requantized to the output, clamped at its zero)
 *   RELU6       tflite::Relu6Quantized (a clamp in the input's quantized domain)
 *   LEAKY_RELU  reference_ops::QuantizeLeakyRelu
 *   TANH        reference_integer_ops::Tanh (Q4.27 input, gemmlowp tanh, output scale 1/128,
 *               zero point 0)
 * Every parameter is computed at generation time by tinyprune/kernels/pointwise.py. They work
 * in place (output == input) and need no scratch memory. Each returns TP_OK, or TP_ERR_ARG for
 * a negative size.
 */

/** Parameters of HARD_SWISH (TFLM HardSwishPrepare, int8). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t reluish_multiplier;   /**< int16 fixed-point multiplier of input_scale / 128 / (3 / 32768) */
    int32_t reluish_exponent;     /**< its exponent (either sign) */
    int32_t output_multiplier;    /**< int16 fixed-point multiplier of input_scale / 128 / output_scale */
    int32_t output_exponent;      /**< its exponent, <= 0 */
} tp_hard_swish_params;

/** HARD_SWISH: x * relu6(x + 3) / 6 on `size` int8 values. */
tp_status tp_hard_swish_s8(const tp_hard_swish_params *params,
                           int32_t size,
                           const int8_t *input,
                           int8_t *output);

/**
 * Any int8 -> int8 function of one value, by table: out = table[in + 128]. The handler computes the
 * 256 entries at generation time with the op's integer arithmetic (tinyprune/kernels/pointwise.py
 * hard_swish_table mirrors tp_hard_swish_s8 step for step; a test checks the two agree on every
 * value); HARD_SWISH runs this way, about 15x fewer cycles per value than tp_hard_swish_s8.
 */
tp_status tp_lut_s8(const int8_t *table, int32_t size, const int8_t *input, int8_t *output);

/** Parameters of RELU (TFLM CalculateReluOpData<int8_t>). */
typedef struct {
    int32_t input_zero_point;   /**< subtracted from the input */
    int32_t output_zero_point;  /**< added to the requantized value */
    int32_t multiplier;         /**< input_scale / output_scale */
    int32_t shift;              /**< its exponent (either sign) */
    tp_activation activation;   /**< [max(-128, output zero point), 127] */
} tp_relu_params;

/** RELU: out = clamp(output_zp + requantize(in - input_zp)) on `size` values. */
tp_status tp_relu_s8(const tp_relu_params *params, int32_t size, const int8_t *input, int8_t *output);

/** RELU6: out = clamp(in, range.min, range.max), range = [input zero point, quantized 6.0]. */
tp_status tp_relu6_s8(const tp_activation *range, int32_t size, const int8_t *input, int8_t *output);

/** Parameters of LEAKY_RELU (TFLM CalculateOpDataLeakyRelu, int8). */
typedef struct {
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t identity_multiplier;  /**< input_scale / output_scale, for inputs >= zero point */
    int32_t identity_shift;
    int32_t alpha_multiplier;     /**< input_scale * alpha / output_scale (negative for alpha < 0) */
    int32_t alpha_shift;
} tp_leaky_relu_params;

/** LEAKY_RELU: identity above the input zero point, alpha * x below. */
tp_status tp_leaky_relu_s8(const tp_leaky_relu_params *params,
                           int32_t size,
                           const int8_t *input,
                           int8_t *output);

/** Parameters of TANH: the fields of tp_logistic_params (TFLM tanh CalculateArithmeticOpData). */
typedef tp_logistic_params tp_tanh_params;

/** TANH, int8 -> int8 (output scale 1/128, zero point 0) on `size` values. */
tp_status tp_tanh_s8(const tp_tanh_params *params, int32_t size, const int8_t *input, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_ACTIVATION_H */
