/*
 * tinyprune: HARD_SWISH, int8 -> int8. Bit-exact with TFLM reference_ops::HardSwish<int8_t>:
 * 16-bit fixed point throughout, the input moved to a "hires" scale (x 128), a relu-ish factor
 * in [0, 1] from the input rescaled so that 3.0 is 32768, multiplied (rounding towards zero)
 * with the input on the output scale, then shifted to the output scale. The int16 wrap-arounds
 * of the reference (its int16_t variables) are kept.
 */
#include "tp_nn_activation.h"

/* gemmlowp::SaturatingRoundingDoublingHighMul<int16_t>. */
static int32_t srdhm16(int32_t a, int32_t b)
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    const int32_t ab = a * b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : (1 - (1 << 14));
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* TFLM SaturatingDoublingHighMul (int16, truncating). */
static int32_t sdhm16(int32_t a, int32_t b)
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)((a * b) / (1 << 15));
}

/* gemmlowp::RoundingDivideByPOT<int16_t>, including its int16 mask for exponents past 15. */
static int32_t rounding_divide16(int32_t x, int32_t exponent)
{
    const int16_t mask = (int16_t)(uint16_t)(uint32_t)((1LL << exponent) - 1);
    const int16_t remainder = (int16_t)(x & mask);
    const int16_t threshold = (int16_t)((mask >> 1) + (x < 0 ? 1 : 0));
    return (int16_t)((x >> exponent) + (remainder > threshold ? 1 : 0));
}

/* TFLM SaturatingLeftShift (int16). */
static int32_t saturating_left_shift16(int32_t value, int32_t amount)
{
    const int64_t result = (int64_t)value * ((int64_t)1 << amount);
    return (int32_t)(result > INT16_MAX ? INT16_MAX : result < INT16_MIN ? INT16_MIN : result);
}

static int8_t hard_swish_one(const tp_hard_swish_params *p, int32_t x)
{
    const int32_t value = (int16_t)(x - p->input_zero_point);
    const int32_t hires = (int16_t)(value * (1 << 7));
    const int32_t preshift_output = srdhm16(hires, p->output_multiplier);
    int32_t reluish = hires;
    if (p->reluish_exponent > 0) {
        reluish = saturating_left_shift16(reluish, p->reluish_exponent - 1);
    }
    reluish = srdhm16(reluish, p->reluish_multiplier);
    if (p->reluish_exponent > 0) {
        reluish = saturating_left_shift16(reluish, 1);
    }
    if (p->reluish_exponent < 0) {
        reluish = rounding_divide16(reluish, -p->reluish_exponent);
    }
    reluish = (int16_t)((reluish + (1 << 15)) >> 1);
    const int32_t preshift = sdhm16(reluish, preshift_output);
    int32_t out = rounding_divide16(preshift, -p->output_exponent);
    out = (int16_t)(out + p->output_zero_point);
    return (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
}

tp_status tp_hard_swish_s8(const tp_hard_swish_params *params,
                           int32_t size,
                           const int8_t *input,
                           int8_t *output)
{
    if (size < 0 || params->output_exponent > 0 || params->output_exponent < -31 ||
        params->reluish_exponent > 31 || params->reluish_exponent < -31) {
        return TP_ERR_ARG;
    }
    for (int32_t i = 0; i < size; ++i) {
        output[i] = hard_swish_one(params, input[i]);
    }
    return TP_OK;
}
