/*
 * tinyprune runtime: the Armv7E-M DSP instructions the kernels use, as inline functions.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP) they map to the real instructions through
 * arm_acle.h; everywhere else they are bit-exact C emulations, so the DSP path of every kernel
 * (compiled with TP_USE_DSP=1) also builds and is tested on the host. Lanes follow the Arm
 * convention: "bottom" is bits [15:0], "top" bits [31:16]; byte 0 is the lowest address.
 *
 * The unaligned readers use memcpy, which gcc turns into one LDR on cores that allow unaligned
 * word access (Cortex-M3 and up) and which keeps strict aliasing rules intact.
 */
#ifndef TP_DSP_H
#define TP_DSP_H

#include <stdint.h>
#include <string.h>

#include "tp_nn_support.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP == 1
#include <arm_acle.h>
#define TP_DSP_NATIVE 1
#else
#define TP_DSP_NATIVE 0
#endif

#ifndef TP_USE_DSP
#define TP_USE_DSP TP_DSP_NATIVE
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Inlined even where gcc would rather call: the kernels' inner loops keep their accumulators in
 * registers only when the loop is part of the caller's body. */
#if defined(__GNUC__)
#define TP_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TP_ALWAYS_INLINE inline
#endif

/** Rotate right by n (1..31); one ROR (or a rotated operand) on Arm. gcc 12 has no __ror. */
static inline uint32_t tp_ror(uint32_t x, uint32_t n)
{
    return (x >> n) | (x << ((32U - n) & 31U));
}

/** Reads 4 int8 (any alignment) as one word: byte 0 in bits [7:0]. */
static inline int32_t tp_read_s8x4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/**
 * Reads 4 int8 at p + off and at p + 2 * off (any alignment), as tp_read_s8x4: on Arm one LDR
 * with a register offset (shifted for 2 * off). gcc 12 otherwise turns every p + off of a loop
 * into one more pointer of its own and keeps them on the stack. The asm tells gcc it reads the
 * byte at p only (enough to keep it after stores that may alias p), so use it for data that
 * does not change while it is read, such as a kernel's input.
 */
static inline int32_t tp_read_s8x4_off(const int8_t *p, int32_t off)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    int32_t v;
    __asm__("ldr %0, [%1, %2]" : "=r"(v) : "r"(p), "r"(off), "m"(*p));
    return v;
#else
    return tp_read_s8x4(p + off);
#endif
}

static inline int32_t tp_read_s8x4_off2(const int8_t *p, int32_t off)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    int32_t v;
    __asm__("ldr %0, [%1, %2, lsl #1]" : "=r"(v) : "r"(p), "r"(off), "m"(*p));
    return v;
#else
    return tp_read_s8x4(p + 2 * off);
#endif
}

static inline int32_t tp_lo16(int32_t x) { return (int32_t)(int16_t)(uint16_t)((uint32_t)x & 0xFFFFU); }
static inline int32_t tp_hi16(int32_t x) { return (int32_t)(int16_t)(uint16_t)((uint32_t)x >> 16); }
static inline int32_t tp_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)hi << 16) | ((uint32_t)lo & 0xFFFFU));
}

#if TP_DSP_NATIVE

/** SXTB16: sign-extends bytes 0 and 2 into the bottom and top halves. */
static inline int32_t tp_sxtb16(int32_t x) { return __sxtb16(x); }
/** SXTB16 with ROR #8: sign-extends bytes 1 and 3 into the bottom and top halves. */
static inline int32_t tp_sxtb16_ror8(int32_t x)
{
#if defined(__GNUC__)
    int32_t r; /* gcc 12 does not fold the rotation into SXTB16's operand by itself */
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
#else
    return __sxtb16((int32_t)tp_ror((uint32_t)x, 8));
#endif
}
/** SMLAD: acc + bottom(a)*bottom(b) + top(a)*top(b) (wraps modulo 2^32). */
static inline int32_t tp_smlad(int32_t a, int32_t b, int32_t acc) { return __smlad(a, b, acc); }
/** SMLABB: acc + bottom(a)*bottom(b). */
static inline int32_t tp_smlabb(int32_t a, int32_t b, int32_t acc) { return __smlabb(a, b, acc); }
/** SMLATT: acc + top(a)*top(b). */
static inline int32_t tp_smlatt(int32_t a, int32_t b, int32_t acc) { return __smlatt(a, b, acc); }
/** SADD16: lane-wise 16-bit add (wraps). */
static inline int32_t tp_sadd16(int32_t a, int32_t b) { return __sadd16(a, b); }

#else

static inline int32_t tp_sxtb16(int32_t x)
{
    const uint32_t u = (uint32_t)x;
    return tp_pack16((int32_t)(int8_t)(uint8_t)(u & 0xFFU), (int32_t)(int8_t)(uint8_t)((u >> 16) & 0xFFU));
}
static inline int32_t tp_sxtb16_ror8(int32_t x) { return tp_sxtb16((int32_t)tp_ror((uint32_t)x, 8)); }
static inline int32_t tp_smlad(int32_t a, int32_t b, int32_t acc)
{
    const int32_t p = tp_wrap_add(tp_lo16(a) * tp_lo16(b), tp_hi16(a) * tp_hi16(b));
    return tp_wrap_add(acc, p);
}
static inline int32_t tp_smlabb(int32_t a, int32_t b, int32_t acc) { return tp_wrap_add(acc, tp_lo16(a) * tp_lo16(b)); }
static inline int32_t tp_smlatt(int32_t a, int32_t b, int32_t acc) { return tp_wrap_add(acc, tp_hi16(a) * tp_hi16(b)); }
static inline int32_t tp_sadd16(int32_t a, int32_t b)
{
    return tp_pack16(tp_lo16(a) + tp_lo16(b), tp_hi16(a) + tp_hi16(b));
}

#endif /* TP_DSP_NATIVE */

/* ---- requantization ------------------------------------------------------------------------- */

/**
 * tp_requantize (TFLM MultiplyByQuantizedMultiplier, double rounding) for multiplier >= 0, which
 * every multiplier from QuantizeMultiplier is: the saturating case of the doubling high multiply
 * (both operands INT32_MIN) cannot occur, and (x * m + 2^30) >> 31 with an arithmetic shift
 * rounds exactly as gemmlowp's sign-dependent nudge with truncating division. The rounding
 * division by 2^right is written without branches: with rem = high & mask and threshold =
 * mask / 2 + (high < 0), (threshold - rem) >> 31 is -1 exactly when rem > threshold (both lie in
 * [0, 2^30], so the difference cannot overflow). About 17 instructions on Arm (one SMLAL), no
 * branch; used by the conv and FC kernels. Same precondition as tp_requantize: -31 <= shift
 * <= 31 (guaranteed by the code generator), multiplier in [0, 2^31).
 */
static inline int32_t tp_requantize_pos(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift & ~(shift >> 31); /* max(shift, 0) */
    const int32_t right = left - shift;          /* max(-shift, 0) */
    const int64_t prod = (int64_t)(int32_t)((uint32_t)x << left) * multiplier + (1LL << 30);
    const int32_t high = (int32_t)(prod >> 31);
    const int32_t mask = (int32_t)((1U << right) - 1U);
    const int32_t threshold = (mask >> 1) - (high >> 31);
    return (high >> right) - ((threshold - (high & mask)) >> 31);
}

/**
 * tp_requantize(x, multiplier, shift) + offset in one rounding, for shift <= -2 (r = -shift >= 2):
 * the requantization of the fast kernel paths. `rounding` = 2^(r-2) + offset * 2^(r-1), computed
 * by the code generator per channel (tinyprune/kernels/quant.py fast_rounding), with
 * |rounding| <= 2^30 - 2.
 *
 * Why it is exact: TFLM rounds twice, H = floor((x*m + 2^30) / 2^31), then half away from zero
 * by 2^r: floor((H + 2^(r-1) - [H < 0]) / 2^r). Nested floors merge, so the result plus offset is
 * floor((x*m + 2^30 + 2^(30+r) + offset * 2^(31+r) - [H < 0] * 2^31) / 2^(31+r)); [H < 0] may be
 * replaced by [x < 0] (they differ only when H = 0, where both give 0 for r >= 1), and since
 * 31 + r >= 32 the quotient is the high word of that 64-bit sum shifted right by r - 1. With
 * |x*m| < 2^62 the high word stays within int32 by the bound on `rounding`, and the result
 * before the offset is below 2^29 in magnitude, so the offset cannot wrap. On Arm: AND, ORR,
 * ADD, SMLAL, ASR (and MVN for r - 1 = ~shift): 6 instructions, against ~17 for
 * tp_requantize_pos plus the offset. Checked against tp_requantize in tests/unit.
 */
static inline int32_t tp_requantize_fast(int32_t x, int32_t multiplier, int32_t shift,
                                         int32_t rounding)
{
    const uint32_t lo = ((uint32_t)x & 0x80000000U) | 0x40000000U;
    const uint32_t hi = (uint32_t)rounding + (uint32_t)(x >> 31);
    const int64_t q = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)x * multiplier;
    return (int32_t)(q >> 32) >> ~shift;
}

/** Clamps x to [lo, hi] (two compares, no branch on Arm). */
static inline int32_t tp_clamp(int32_t x, int32_t lo, int32_t hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/** Saturates x to [-128, 127]: one SSAT on a core with the DSP extension. */
static inline int32_t tp_ssat8(int32_t x)
{
#if TP_DSP_NATIVE
    return __ssat(x, 8);
#else
    return tp_clamp(x, -128, 127);
#endif
}

/* ---- building blocks shared by the DSP paths of the kernels ---------------------------------- */

/**
 * Widens the first n & ~3 of n int8 values to int16 and adds offset, two per word: each group
 * [x0, x1, x2, x3] becomes the words [x0, x2] (at dst[0]) and [x1, x3] (at dst[1]), then dst
 * advances by stride words. The two words pair lane for lane with tp_sxtb16(w) = [w0, w2] and
 * tp_sxtb16_ror8(w) = [w1, w3] of a filter word w, so one SMLAD each gives the group's dot
 * product. Returns dst past the last group. The last n % 4 values are left to the caller.
 */
static inline int32_t *tp_widen_s8x4_pairs(const int8_t *src, int32_t n, int32_t offset, int32_t *dst,
                                           int32_t stride)
{
    const int32_t offset2 = tp_pack16(offset, offset);
    for (int32_t g = n >> 2; g > 0; --g) {
        const int32_t in = tp_read_s8x4(src);
        dst[0] = tp_sadd16(tp_sxtb16(in), offset2);
        dst[1] = tp_sadd16(tp_sxtb16_ror8(in), offset2);
        src += 4;
        dst += stride;
    }
    return dst;
}

/**
 * Loads the two words at *p (4-byte aligned) into lo and hi and advances *p by 8 bytes: one
 * LDRD with post-increment on Arm (gcc 12 does not pair the two loads by itself).
 */
static inline void tp_load_2x32_inc(const void **p, int32_t *lo, int32_t *hi)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    typedef struct {
        int32_t w[2];
    } pair;
    const void *q = *p;
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(*lo), "=r"(*hi), "+r"(q) : "m"(*(const pair *)q));
    *p = q;
#else
    const int8_t *b = (const int8_t *)*p;
    memcpy(lo, b, sizeof(*lo));
    memcpy(hi, b + 4, sizeof(*hi));
    *p = b + 8;
#endif
}

/**
 * Raw dot products of an interleaved pair of int8 rows with two int16 columns, `groups` groups
 * of four values: acc[0] += w0.x0, acc[1] += w0.x1, acc[2] += w1.x0, acc[3] += w1.x1.
 *
 * Layouts (both 4-byte aligned): w holds per group the word of row 0 then the word of row 1
 * (4 + 4 int8); x holds per group four words [x0e, x1e, x0o, x1o], where x0e = [v0, v2] and
 * x0o = [v1, v3] of column 0's values v0..v3 (tp_sxtb16 / tp_sxtb16_ror8 of the int8 word), the
 * same for column 1. Per group: three LDRD, four SXTB16 and eight SMLAD for 16 MACs, one
 * pointer per operand and no spill (gcc 12 -O2, Cortex-M4/M7); two groups per loop trip.
 */
/* One group of tp_dot_s8s16_2x2: s[0..3] as acc there. */
static TP_ALWAYS_INLINE void tp_dot_s8s16_2x2_group(const void **wp, const void **xp, int32_t s[4])
{
    int32_t wa, wb, x0, x1;
    tp_load_2x32_inc(wp, &wa, &wb);
    tp_load_2x32_inc(xp, &x0, &x1);
    int32_t t = tp_sxtb16(wa), u = tp_sxtb16(wb);
    s[0] = tp_smlad(t, x0, s[0]);
    s[1] = tp_smlad(t, x1, s[1]);
    s[2] = tp_smlad(u, x0, s[2]);
    s[3] = tp_smlad(u, x1, s[3]);
    tp_load_2x32_inc(xp, &x0, &x1);
    t = tp_sxtb16_ror8(wa), u = tp_sxtb16_ror8(wb);
    s[0] = tp_smlad(t, x0, s[0]);
    s[1] = tp_smlad(t, x1, s[1]);
    s[2] = tp_smlad(u, x0, s[2]);
    s[3] = tp_smlad(u, x1, s[3]);
}

static TP_ALWAYS_INLINE void tp_dot_s8s16_2x2(const int8_t *w, const int32_t *x, int32_t groups,
                                    int32_t acc[4])
{
    int32_t s[4] = {acc[0], acc[1], acc[2], acc[3]};
    const void *wp = w, *xp = x;
    const void *end = x + 4 * (groups & ~1);
    while (xp != end) {
        tp_dot_s8s16_2x2_group(&wp, &xp, s);
        tp_dot_s8s16_2x2_group(&wp, &xp, s);
    }
    if (groups & 1) {
        tp_dot_s8s16_2x2_group(&wp, &xp, s);
    }
    acc[0] = s[0], acc[1] = s[1], acc[2] = s[2], acc[3] = s[3];
}

/*
 * Four int8 lanes at once: acc[i] += w[i] * x[i] for byte i of the words xv and wv (a
 * depthwise tap or block of four channels): two SXTB16 per operand and four 16x16 MACs.
 */
static TP_ALWAYS_INLINE void tp_mac_s8x4(int32_t xv, int32_t wv, int32_t acc[4])
{
    const int32_t xe = tp_sxtb16(xv), we = tp_sxtb16(wv);
    acc[0] = tp_smlabb(xe, we, acc[0]);
    acc[2] = tp_smlatt(xe, we, acc[2]);
    const int32_t xo = tp_sxtb16_ror8(xv), wo = tp_sxtb16_ror8(wv);
    acc[1] = tp_smlabb(xo, wo, acc[1]);
    acc[3] = tp_smlatt(xo, wo, acc[3]);
}

#ifdef __cplusplus
}
#endif

#endif /* TP_DSP_H */
