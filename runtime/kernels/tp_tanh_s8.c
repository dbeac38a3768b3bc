/*
 * tinyprune: TANH, int8 -> int8. Bit-exact with TFLM reference_integer_ops::Tanh: the input
 * (minus its zero point) rescaled to Q4.27, gemmlowp's tanh (1 - exp(-2|x|)) / (1 + exp(-2|x|))
 * in Q0.31, rounded to 1/128 steps (output zero point 0); inputs beyond the range radius saturate.
 */
#include "tp_nn_activation.h"

/* gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1: (1 - a) / (1 + a), Q0.31 in and out. */
static int32_t one_minus_x_over_one_plus_x(int32_t a)
{
    const int32_t half_denominator = tp_fp_rounding_half_sum(a, INT32_MAX);
    int32_t x = (int32_t)((uint32_t)1515870810 +
                          (uint32_t)tp_doubling_high_mult(half_denominator, -1010580540)); /* Q2.29 */
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t one_minus_half_denominator_times_x =
            (int32_t)((uint32_t)(1 << 29) - (uint32_t)tp_doubling_high_mult(half_denominator, x));
        x = (int32_t)((uint32_t)x + (uint32_t)tp_fp_mul_pow2_sat(
                                        tp_doubling_high_mult(x, one_minus_half_denominator_times_x), 2));
    }
    return tp_fp_mul_pow2_sat((int32_t)((uint32_t)x - (uint32_t)(1 << 29)), 2);
}

/* gemmlowp tanh for a Q4.27 input, result in Q0.31. */
static int32_t tanh_q4(int32_t a)
{
    if (a == 0) {
        return 0;
    }
    const int32_t negative = a < 0 ? a : -a;
    /* ExactMulByPot<1> keeps the raw value and reads it with 5 integer bits. */
    const int32_t t = one_minus_x_over_one_plus_x(tp_fp_exp_on_negative_values(negative, 5));
    return a < 0 ? -t : t;
}

tp_status tp_tanh_s8(const tp_tanh_params *params, int32_t size, const int8_t *input, int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    for (int32_t i = 0; i < size; ++i) {
        const int32_t x = (int32_t)input[i] - params->input_zero_point;
        if (x <= -params->input_range_radius) {
            output[i] = INT8_MIN;
        } else if (x >= params->input_range_radius) {
            output[i] = INT8_MAX;
        } else {
            const int32_t in_q4 = tp_requantize(x, params->input_multiplier, params->input_left_shift);
            const int32_t out = tp_divide_by_power_of_two(tanh_q4(in_q4), 31 - 7);
            output[i] = (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
        }
    }
    return TP_OK;
}
