/*
 * tinyprune: SOFTMAX, int8 -> int8. Bit-exact with TFLM reference_ops::Softmax<int8_t, int8_t>:
 * differences to the row maximum in Q5.26, exp in Q0.31, sum with 12 integer bits, reciprocal by
 * Newton-Raphson, output scale 1/256 and zero point -128.
 */
#include "tp_nn_activation.h"

#define TP_SOFTMAX_DIFF_INTEGER_BITS 5
#define TP_SOFTMAX_ACCUM_INTEGER_BITS 12

static inline int32_t count_leading_zeros(uint32_t x)
{
#if defined(__GNUC__)
    return x == 0U ? 32 : __builtin_clz(x);
#else
    int32_t n = 0;
    while (n < 32 && (x & 0x80000000U) == 0U) {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* exp(beta * scale * diff) in Q0.31 for diff = x - max >= diff_min. */
static inline int32_t exp_of_diff(const tp_softmax_params *p, int32_t diff)
{
    const int32_t rescaled = tp_doubling_high_mult((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
    return tp_fp_exp_on_negative_values(rescaled, TP_SOFTMAX_DIFF_INTEGER_BITS);
}

static void softmax_row(const tp_softmax_params *p, int32_t size, const int8_t *in, int8_t *out)
{
    int32_t max = INT8_MIN;
    for (int32_t c = 0; c < size; ++c) {
        max = TP_MAX(max, (int32_t)in[c]);
    }
    int32_t sum = 0; /* Q12.19 */
    for (int32_t c = 0; c < size; ++c) {
        const int32_t diff = in[c] - max;
        if (diff >= p->diff_min) {
            sum += tp_divide_by_power_of_two(exp_of_diff(p, diff), TP_SOFTMAX_ACCUM_INTEGER_BITS);
        }
    }
    /* GetReciprocal: 1 / sum as a Q0.31 scale times 2^num_bits_over_unit. */
    const int32_t headroom = count_leading_zeros((uint32_t)sum);
    const int32_t num_bits_over_unit = TP_SOFTMAX_ACCUM_INTEGER_BITS - headroom;
    const int32_t shifted_sum_minus_one = (int32_t)(((uint32_t)sum << headroom) - (1U << 31));
    const int32_t scale = tp_fp_one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one);
    const int32_t exponent = num_bits_over_unit + 31 - 8;
    for (int32_t c = 0; c < size; ++c) {
        const int32_t diff = in[c] - max;
        if (diff >= p->diff_min) {
            const int32_t unsat = tp_divide_by_power_of_two(
                tp_doubling_high_mult(scale, exp_of_diff(p, diff)), exponent);
            out[c] = (int8_t)TP_CLAMP(unsat + INT8_MIN, INT8_MIN, INT8_MAX);
        } else {
            out[c] = INT8_MIN;
        }
    }
}

tp_status tp_softmax_s8(const tp_softmax_params *params,
                        int32_t num_rows,
                        int32_t row_size,
                        const int8_t *input,
                        int8_t *output)
{
    if (num_rows < 0 || row_size < 1 || row_size > 511 || params->input_left_shift < 0 ||
        params->input_left_shift > 31) {
        return TP_ERR_ARG;
    }
    for (int32_t r = 0; r < num_rows; ++r) {
        softmax_row(params, row_size, input, output);
        input += row_size;
        output += row_size;
    }
    return TP_OK;
}
