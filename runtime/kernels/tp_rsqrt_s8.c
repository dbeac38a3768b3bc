/*
 * tinyprune: RSQRT, int8 -> int8. Bit-exact with TFLM elementwise.cc RsqrtEvalQuantized: the
 * inverse square root of the input minus its zero point by TFLM's
 * GetInvSqrtQuantizedMultiplierExp (a Newton-Raphson iteration in Q3.28), scaled by 2^20,
 * requantized with 1 / (sqrt(input scale) * output scale).
 */
#include "tp_nn_elementwise.h"
#include "tp_nn_activation.h"

static int32_t count_leading_zeros(uint32_t x)
{
    int32_t n = 0;
    if (x == 0U) {
        return 32;
    }
    while ((x & 0x80000000U) == 0U) {
        x <<= 1;
        ++n;
    }
    return n;
}

static int32_t wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* TFLM GetInvSqrtQuantizedMultiplierExp with reverse_shift = -1, for input > 1. */
static void inv_sqrt(int32_t input, int32_t *multiplier, int32_t *shift)
{
    int32_t out_shift = 11;
    while (input >= (1 << 29)) {
        input /= 4;
        ++out_shift;
    }
    const int32_t pairs = (count_leading_zeros((uint32_t)input) - 1) / 2 - 1;
    out_shift -= pairs;
    input = (int32_t)((uint32_t)input << (2 * pairs));
    const int32_t value = input >> 1;                          /* Q3.28 */
    const int32_t half_value = tp_divide_by_power_of_two(value, 1);
    const int32_t half_three = (1 << 28) + (1 << 27);          /* 1.5 in Q3.28 */
    int32_t x = 1 << 28;                                       /* 1.0 */
    for (int32_t i = 0; i < 5; ++i) {
        const int32_t x3 = tp_fp_mul_pow2_sat(
            tp_doubling_high_mult(tp_doubling_high_mult(x, x), x), 6);  /* Q9 -> Q3 */
        x = tp_fp_mul_pow2_sat(wrap_sub(tp_doubling_high_mult(half_three, x),
                                        tp_doubling_high_mult(half_value, x3)), 3);  /* Q6 -> Q3 */
    }
    x = tp_doubling_high_mult(x, 1518500250);  /* * sqrt(2) / 2 */
    if (out_shift < 0) {
        x = (int32_t)((uint32_t)x << -out_shift);
        out_shift = 0;
    }
    *multiplier = x;
    *shift = -out_shift;
}

tp_status tp_rsqrt_s8(const tp_rsqrt_params *params, int32_t size, const int8_t *input, int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    const int32_t k_shift = 20;
    for (int32_t i = 0; i < size; ++i) {
        const int32_t value = (int32_t)input[i] - params->input_zero_point;
        if (value < 0) {
            return TP_ERR_ARG;
        }
        if (value == 0) {
            output[i] = INT8_MAX;
            continue;
        }
        int32_t m = INT32_MAX;
        int32_t s = 0;
        if (value > 1) {
            inv_sqrt(value, &m, &s);
        }
        const int32_t data = tp_requantize(1, m, s + k_shift);
        const int32_t out = tp_requantize(data, params->multiplier, params->shift - k_shift) +
                            params->output_zero_point;
        output[i] = (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
    }
    return TP_OK;
}
