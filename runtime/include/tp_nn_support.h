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

/**
 * a + b modulo 2^32. TFLM adds the output zero point to the requantized value (and the bias to
 * the accumulator) in plain int32, which the shipped interpreter computes in two's complement
 * when it leaves int32 (a left shift of a large accumulator); so do the kernels, without the
 * undefined behaviour of a signed overflow in C.
 */
static inline int32_t tp_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }

/**
 * acc + a * b modulo 2^32 (a * b itself must fit int32: int8 times an int16 value does). The
 * accumulators of conv, depthwise and FC start from the bias, so bias + dot product can leave
 * int32 (a bias near INT32_MAX): signed overflow is undefined in C, while TFLM's reference
 * kernels compute the same sum in two's complement (acc += bias wraps in the shipped
 * interpreter). Summing modulo 2^32 is defined, independent of the order of the terms (so a
 * folded bias gives TFLM's result), and the same MLA / SMLABB instruction as the plain sum.
 */
static inline int32_t tp_wrap_mac(int32_t acc, int32_t a, int32_t b)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(a * b));
}

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

/**
 * TFLM MultiplyByQuantizedMultiplier: x * multiplier * 2^shift, rounded as the reference.
 * Requires -31 <= shift <= 31 (QuantizeMultiplier never gives less than -31; the code generator
 * refuses a model whose multiplier would need a left shift of 32 or more, where TFLM's
 * 1 << shift is undefined): no shift here leaves the 32-bit range. x << shift wraps modulo 2^32
 * as TFLM's x * (1 << shift) does in the shipped interpreter.
 */
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
