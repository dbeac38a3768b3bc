/*
 * tinyprune runtime: fixed-point helpers, bit-exact with the TFLite Micro reference
 * (tensorflow/lite/kernels/internal/common.h, double-rounding variant, the TFLM default).
 */
#ifndef TP_NN_SUPPORT_H
#define TP_NN_SUPPORT_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_MAX(a, b) ((a) > (b) ? (a) : (b))
#define TP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TP_CLAMP(x, lo, hi) TP_MAX((lo), TP_MIN((x), (hi)))

/** gemmlowp SaturatingRoundingDoublingHighMul. */
static inline int32_t tp_doubling_high_mult(int32_t a, int32_t b)
{
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / (1LL << 31));
}

/** gemmlowp RoundingDivideByPOT (round half away from zero). */
static inline int32_t tp_divide_by_power_of_two(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((1LL << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/** TFLM MultiplyByQuantizedMultiplier: x * multiplier * 2^shift, rounded as the reference. */
static inline int32_t tp_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return tp_divide_by_power_of_two(tp_doubling_high_mult((int32_t)((uint32_t)x << left), multiplier), right);
}

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_SUPPORT_H */
