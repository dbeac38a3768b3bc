/*
 * tinyprune runtime: inline building blocks of the sparse kernels (tp_nn_sparse.h).
 *
 * Like tp_dsp.h, every helper maps to the real instruction on a core with the DSP extension and
 * is a bit-exact C emulation elsewhere, so the DSP paths build and are tested on the host.
 * Internal to the kernels: not part of the public API.
 */
#ifndef TP_SPARSE_DSP_H
#define TP_SPARSE_DSP_H

#include <stdint.h>
#include <string.h>

#include "tp_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Keeps a hot loop in a function of its own (inlined, gcc 12 spills the caller's values). */
#if defined(__GNUC__)
#define TP_SP_NOINLINE __attribute__((noinline))
#else
#define TP_SP_NOINLINE
#endif

/** TP_SP_NOINLINE for a helper of a shared header (no warning in a kernel that does not use it). */
#if defined(__GNUC__)
#define TP_SP_SHARED __attribute__((noinline, unused))
#else
#define TP_SP_SHARED
#endif

/** As TP_SP_NOINLINE, and without gcc's first scheduling pass, which hoists the loads of an
 * unrolled loop and spills the values (the trick of tp_fully_connected_s8.c). */
#if defined(__GNUC__) && !defined(__clang__)
#define TP_SP_HOT __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define TP_SP_HOT TP_SP_NOINLINE
#endif

/** SMMULR: (a * b + 2^31) >> 32, the rounded high word of the 64-bit product. */
static inline int32_t tp_smmulr(int32_t a, int32_t b)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32);
#endif
}

/** SMMLAR: acc + ((a * b + 2^31) >> 32), i.e. (acc * 2^32 + a * b + 2^31) >> 32 (exact: acc
 * 2^32 is a multiple of 2^32), the rounded high word plus acc in one instruction. */
static inline int32_t tp_smmlar(int32_t a, int32_t b, int32_t acc)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return (int32_t)(((int64_t)acc * 4294967296LL + (int64_t)a * b + 0x80000000LL) >> 32);
#endif
}

/** Two words, for the memory operand of the LDRD asm (tells gcc which bytes are read). */
typedef struct {
    int32_t w[2];
} tp_sp_pair;

/** Loads the two words at p (4-byte aligned) into lo and hi: one LDRD on Arm. */
static inline void tp_load_2x32(const void *p, int32_t *lo, int32_t *hi)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    __asm__("ldrd %0, %1, [%2]" : "=r"(*lo), "=r"(*hi) : "r"(p), "m"(*(const tp_sp_pair *)p));
#else
    memcpy(lo, p, sizeof(*lo));
    memcpy(hi, (const int8_t *)p + 4, sizeof(*hi));
#endif
}

/** Loads the two words at p + off (off a multiple of 4, at most 1020): one LDRD on Arm. */
#if TP_DSP_NATIVE && defined(__GNUC__)
#define TP_LOAD_2X32_AT(p, off, lo, hi)                                                           \
    __asm__("ldrd %0, %1, [%2, %3]"                                                            \
            : "=r"(lo), "=r"(hi)                                                               \
            : "r"(p), "i"(off), "m"(*(const tp_sp_pair *)((const int8_t *)(p) + (off))))
#else
#define TP_LOAD_2X32_AT(p, off, lo, hi) tp_load_2x32((const int8_t *)(p) + (off), &(lo), &(hi))
#endif

/** Loads the two words at *p (4-byte aligned) and advances *p by 8: one LDRD on Arm. */
static inline void tp_sp_load_2x32_inc(const int8_t **p, int32_t *lo, int32_t *hi)
{
#if TP_DSP_NATIVE && defined(__GNUC__)
    const int8_t *q = *p;
    __asm__("ldrd %0, %1, [%2], #8" : "=r"(*lo), "=r"(*hi), "+r"(q) : "m"(*(const tp_sp_pair *)q));
    *p = q;
#else
    memcpy(lo, *p, sizeof(*lo));
    memcpy(hi, *p + 4, sizeof(*hi));
    *p += 8;
#endif
}

/**
 * p + byte ROT / 8 of w (ROT = 0, 8, 16 or 24): one UXTAB on Arm (gcc 12 makes UBFX + ADD of
 * the rotated bytes).
 */
#if TP_DSP_NATIVE && defined(__GNUC__)
#define TP_SP_UXTAB(p, w, rot)                                                                    \
    __extension__({                                                                             \
        const int8_t *r_;                                                                       \
        __asm__("uxtab %0, %1, %2, ror #" #rot : "=r"(r_) : "r"(p), "r"(w));                    \
        r_;                                                                                     \
    })
#else
#define TP_SP_UXTAB(p, w, rot) ((p) + (((uint32_t)(w) >> (rot)) & 0xFFU))
#endif

/** Byte ROT / 8 of w, zero-extended: one UXTB on Arm (gcc 12 makes LSR + AND, or UBFX). */
#if TP_DSP_NATIVE && defined(__GNUC__)
#define TP_SP_UXTB(w, rot)                                                                        \
    __extension__({                                                                             \
        uint32_t r_;                                                                            \
        __asm__("uxtb %0, %1, ror #" #rot : "=r"(r_) : "r"(w));                                 \
        r_;                                                                                     \
    })
#else
#define TP_SP_UXTB(w, rot) (((uint32_t)(w) >> (rot)) & 0xFFU)
#endif

/** Reads a word of 4 int8 from p (any alignment). */
static inline int32_t tp_sp_read32(const void *p)
{
    int32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

/* ---- requantization --------------------------------------------------------------------------
 *
 * TFLM MultiplyByQuantizedMultiplier (double rounding) with the per-channel shift split once and
 * SMMULR instead of a 64-bit product: for |acc| << (left + 1) < 2^31, which the code generator
 * proves for every layer it gives a sparse kernel (|bias| + 255 * sum |w| < 2^(30 - left)),
 *
 *     SRDHM(acc << left, m) = (2 (acc << left) m + 2^31) >> 32 = SMMULR(acc << (left + 1), m)
 *
 * and the rounding division by 2^e (half away from zero) is (h + 2^(e - 1) + (h < 0 ? -1 : 0))
 * >> e for e >= 1, h for e = 0: the sign term is masked with shift >> 31 (all ones exactly when
 * e >= 1). |h| < 2^30, so nothing overflows. About 6 instructions per output once the channel's
 * values are in registers (tp_sq_channel), against ~20 for tp_requantize_pos.
 */

/** One channel's requantization, split at run time from TFLM's (multiplier, shift). */
typedef struct {
    int32_t mult;
    int32_t left1; /* max(shift, 0) + 1 */
    int32_t e;     /* max(-shift, 0) */
    int32_t nudge; /* 2^(e - 1), 0 for e = 0 */
    int32_t emask; /* -1 when e >= 1, else 0 */
} tp_sq_channel;

static inline tp_sq_channel tp_sq_channel_of(int32_t mult, int32_t shift)
{
    const int32_t emask = shift >> 31;
    const int32_t e = (int32_t)((uint32_t)-shift & (uint32_t)emask);
    tp_sq_channel c;
    c.mult = mult;
    c.left1 = (shift & ~emask) + 1;
    c.e = e;
    c.nudge = (int32_t)((1U << e) >> 1);
    c.emask = emask;
    return c;
}

static inline int32_t tp_sq_apply(int32_t acc, const tp_sq_channel *c)
{
    int32_t h = tp_smmulr((int32_t)((uint32_t)acc << c->left1), c->mult);
    h += c->nudge + ((h >> 31) & c->emask);
    return h >> c->e;
}

/** SMLABT: acc + bottom(a) * top(b); SMLATB: acc + top(a) * bottom(b) (wrap modulo 2^32). */
static inline int32_t tp_sp_smlabt(int32_t a, int32_t b, int32_t acc)
{
#if TP_DSP_NATIVE
    return __smlabt(a, b, acc);
#else
    return tp_wrap_add(acc, tp_lo16(a) * tp_hi16(b));
#endif
}

static inline int32_t tp_sp_smlatb(int32_t a, int32_t b, int32_t acc)
{
#if TP_DSP_NATIVE
    return __smlatb(a, b, acc);
#else
    return tp_wrap_add(acc, tp_hi16(a) * tp_lo16(b));
#endif
}

/* tp_ssat8 (SSAT #8) comes from tp_dsp.h. */

/**
 * tp_sq_out for one output with the channel's (multiplier, shift) split on the fly: for a
 * channel used once (FULLY_CONNECTED), where keeping a tp_sq_channel costs spills.
 */
static inline int8_t tp_sq_out_ms(int32_t acc, int32_t mult, int32_t shift, int32_t offset,
                                  int32_t lo, int32_t hi)
{
    const tp_sq_channel c = tp_sq_channel_of(mult, shift);
    return (int8_t)tp_clamp(tp_sq_apply(acc, &c) + offset, lo, hi);
}

/** The output value: requantized, plus the output offset, clamped to the activation range. */
static inline int8_t tp_sq_out(int32_t acc, const tp_sq_channel *c, int32_t offset, int32_t lo,
                               int32_t hi)
{
    return (int8_t)tp_clamp(tp_sq_apply(acc, c) + offset, lo, hi);
}

/* ---- widening ------------------------------------------------------------------------------ */

/**
 * Widens n int8 values to int16 with offset added, four at a time: group g of four values
 * [v0, v1, v2, v3] becomes the words [v0, v2] at dst[0] and [v1, v3] at dst[1] (pairing lane for
 * lane with tp_sxtb16(w) and tp_sxtb16_ror8(w) of a weight word w), then dst advances by stride
 * words. A last group of n % 4 values is completed with zeros. Returns the number of groups.
 */
static inline int32_t tp_sp_widen(const int8_t *src, int32_t n, int32_t offset, int32_t *dst,
                                   int32_t stride)
{
    const int32_t offset2 = tp_pack16(offset, offset);
    int32_t g = 0;
    for (; 4 * g + 4 <= n; ++g, src += 4, dst += stride) {
        const int32_t v = tp_sp_read32(src);
        dst[0] = tp_sadd16(tp_sxtb16(v), offset2);
        dst[1] = tp_sadd16(tp_sxtb16_ror8(v), offset2);
    }
    if (4 * g < n) {
        int32_t lanes[4] = {0, 0, 0, 0};
        for (int32_t i = 0; 4 * g + i < n; ++i) {
            lanes[i] = src[i] + offset;
        }
        dst[0] = tp_pack16(lanes[0], lanes[2]);
        dst[1] = tp_pack16(lanes[1], lanes[3]);
        ++g;
    }
    return g;
}

/**
 * tp_sp_widen without the offset (for kernels with the input offset folded into the bias): group
 * g of four raw values becomes [v0, v2] at dst[0] and [v1, v3] at dst[1], dst advancing by
 * stride words per group; two groups per trip. A last group of n % 4 values is completed with
 * zeros.
 */
static inline void tp_sp_widen_raw(const int8_t *src, int32_t n, int32_t *dst, int32_t stride)
{
    for (; n >= 8; n -= 8, src += 8, dst += 2 * stride) {
        const int32_t v0 = tp_sp_read32(src), v1 = tp_sp_read32(src + 4);
        dst[0] = tp_sxtb16(v0), dst[1] = tp_sxtb16_ror8(v0);
        dst[stride] = tp_sxtb16(v1), dst[stride + 1] = tp_sxtb16_ror8(v1);
    }
    if (n >= 4) {
        const int32_t v = tp_sp_read32(src);
        dst[0] = tp_sxtb16(v), dst[1] = tp_sxtb16_ror8(v);
        n -= 4, src += 4, dst += stride;
    }
    if (n > 0) {
        int32_t lanes[4] = {0, 0, 0, 0};
        for (int32_t i = 0; i < n; ++i) {
            lanes[i] = src[i];
        }
        dst[0] = tp_pack16(lanes[0], lanes[2]);
        dst[1] = tp_pack16(lanes[1], lanes[3]);
    }
}

/* ---- N:M pair words ------------------------------------------------------------------------- */

/** e = [v0, v2], o = [v1, v3]: the four int8 values at x as int16 lanes, offset added. */
static inline void tp_sp_widen4(const int8_t *x, int32_t offset2, uint32_t *e, uint32_t *o)
{
    const int32_t v = tp_sp_read32(x);
    *e = (uint32_t)tp_sadd16(tp_sxtb16(v), offset2);
    *o = (uint32_t)tp_sadd16(tp_sxtb16_ror8(v), offset2);
}

/** The six words of a 2:4 unit (e, o of its group), code c = [v_a, v_b] for the c-th pair of
 * (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); word c goes to t[c * stride]. */
static inline void tp_sp_pairs_2_4(uint32_t e, uint32_t o, uint32_t *t, int32_t stride)
{
    t[0] = (e & 0xFFFFU) | (o << 16);
    t[stride] = e;
    t[2 * stride] = (e & 0xFFFFU) | (o & 0xFFFF0000U);
    t[3 * stride] = (o & 0xFFFFU) | (e & 0xFFFF0000U);
    t[4 * stride] = o;
    t[5 * stride] = (e >> 16) | (o & 0xFFFF0000U);
}

/** The 16 words of a 1:4 unit, code p + 4 q = [value p of group A, value q of group B], for
 * e, o of A and e2, o2 of B; word c goes to t[c * stride]. */
static inline void tp_sp_pairs_1_4(uint32_t e, uint32_t o, uint32_t e2, uint32_t o2, uint32_t *t,
                                   int32_t stride)
{
    const uint32_t lo0 = e & 0xFFFFU, lo1 = o & 0xFFFFU, lo2 = e >> 16, lo3 = o >> 16;
    const uint32_t hi[4] = {e2 << 16, o2 << 16, e2 & 0xFFFF0000U, o2 & 0xFFFF0000U};
    for (int32_t q = 0; q < 4; ++q, t += 4 * stride) {
        t[0] = lo0 | hi[q];
        t[stride] = lo1 | hi[q];
        t[2 * stride] = lo2 | hi[q];
        t[3 * stride] = lo3 | hi[q];
    }
}

/**
 * The pair words of the n-of-4 units of x (k values; past k the value is -offset, i.e. 0 once
 * the offset is added), unit u's words at t + u * codes * stride (codes = 6 or 16).
 */
static inline void tp_sp_nm_pairs(const int8_t *x, int32_t k, int32_t n, int32_t units,
                                  int32_t offset, uint32_t *t, int32_t stride)
{
    const int32_t offset2 = tp_pack16(offset, offset), uv = n == 2 ? 4 : 8;
    const int32_t step = (n == 2 ? 6 : 16) * stride;
    int8_t tail[8];
    for (int32_t u = 0; u < units; ++u, x += uv, t += step) {
        const int8_t *src = x;
        if ((u + 1) * uv > k) { /* the last, partial unit */
            for (int32_t i = 0; i < uv; ++i) {
                tail[i] = u * uv + i < k ? x[i] : (int8_t)-offset;
            }
            src = tail;
        }
        uint32_t e, o;
        tp_sp_widen4(src, offset2, &e, &o);
        if (n == 2) {
            tp_sp_pairs_2_4(e, o, t, stride);
        } else {
            uint32_t e2, o2;
            tp_sp_widen4(src + 4, offset2, &e2, &o2);
            tp_sp_pairs_1_4(e, o, e2, o2, t, stride);
        }
    }
}

/* ---- conv windows ---------------------------------------------------------------------------- */

/** Where a conv window starts and what fills its padding. */
typedef struct {
    int32_t in_h, in_w, c;  /* input image and channels */
    int32_t kh, kw;         /* filter size */
    int32_t dil_h, dil_w;   /* dilation */
    int8_t pad_value;       /* the input zero point: padding taps then contribute 0 */
} tp_sp_window;

/** Copies n bytes, a word at a time while it can. */
static inline void tp_sp_copy_s8(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        const int32_t v = tp_sp_read32(src);
        memcpy(dst, &v, sizeof(v));
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

static inline void tp_sp_fill_s8(int8_t *dst, int8_t v, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = v;
    }
}

/**
 * The KH * KW * C values of the window at (y0, x0) (top-left tap, may lie in the padding) as
 * raw int8 in filter order [KH][KW][C]: a pointer into the input when the window is one pixel
 * inside the image, else gathered into stage (taps in the padding read pad_value).
 */
static inline const int8_t *tp_sp_window_s8(const tp_sp_window *w, const int8_t *in, int32_t y0,
                                            int32_t x0, int8_t *stage)
{
    const int32_t c = w->c, row = w->kw * c;
    if (w->kh == 1 && w->kw == 1 && y0 >= 0 && y0 < w->in_h && x0 >= 0 && x0 < w->in_w) {
        return in + (y0 * w->in_w + x0) * c;
    }
    const int row_inside = w->dil_w == 1 && x0 >= 0 && x0 + w->kw <= w->in_w;
    int8_t *dst = stage;
    for (int32_t ky = 0; ky < w->kh; ++ky, dst += row) {
        const int32_t iy = y0 + ky * w->dil_h;
        if (iy < 0 || iy >= w->in_h) {
            tp_sp_fill_s8(dst, w->pad_value, row);
        } else if (row_inside) {
            tp_sp_copy_s8(dst, in + (iy * w->in_w + x0) * c, row);
        } else {
            for (int32_t kx = 0; kx < w->kw; ++kx) {
                const int32_t ix = x0 + kx * w->dil_w;
                if (ix < 0 || ix >= w->in_w) {
                    tp_sp_fill_s8(dst + kx * c, w->pad_value, c);
                } else {
                    tp_sp_copy_s8(dst + kx * c, in + (iy * w->in_w + ix) * c, c);
                }
            }
        }
    }
    return stage;
}

#ifdef __cplusplus
}
#endif

#endif /* TP_SPARSE_DSP_H */
