/*
 * tinyprune runtime: int8 CONV_2D 1x1 with few input channels (C_IN 4, 8, 12 or 16).
 *
 * The layers pruning leaves thin: per output pixel the general interleaved kernel pays a window
 * gather, an int16 widening into scratch, a call over channel pairs and parameter reloads that 8
 * or 16 MACs per output cannot amortize. Here the filter stream (tp_nn_conv.h) holds each output
 * channel's row already widened to int16 pairs in SXTB16 order, then its folded bias,
 * multiplier, right shift minus 1 and tp_requantize_fast rounding word, so one pointer walks the
 * layer. DSP path: a pass widens the C_IN values of P pixels into registers (P = 4 for C_IN 4,
 * 2 for 8 and 16, 1 for 12; 16 spills the second pixel, still faster than one), then every
 * output channel loads its row once (LDRD) and runs C_IN / 2 SMLAD per pixel, requantizes each
 * result with tp_requantize_fast (SSAT when the activation range is all of int8, else a clamp)
 * and stores it. The last pixels that do not fill
 * a pass run one at a time. No scratch; in place when the output pixel stays within the input
 * pixel (stride 1, C_OUT <= C_IN): a pass reads all its inputs before it stores. Portable path:
 * the same stream, one output at a time.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* The words after an output channel's widened row. */
typedef struct {
    int32_t bias;
    int32_t mult;
    int32_t e; /* -shift - 1 (= ~shift) */
    int32_t round;
} thin_params;

/* tp_requantize_fast with the shift stored as e = ~shift. */
static TP_ALWAYS_INLINE int32_t rq_fast(int32_t x, int32_t m, int32_t e, int32_t k)
{
    const uint32_t lo = ((uint32_t)x & 0x80000000U) | 0x40000000U;
    const uint32_t hi = (uint32_t)k + (uint32_t)(x >> 31);
    const int64_t q = (int64_t)(((uint64_t)hi << 32) | lo) + (int64_t)x * m;
    return (int32_t)(q >> 32) >> e;
}

/* Bytes of one output channel in the stream: C_IN / 2 words of row, four parameter words. */
static inline int32_t chan_bytes(int32_t c_in)
{
    return 2 * c_in + (int32_t)sizeof(thin_params);
}

int32_t tp_conv_1x1_thin_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims, (void)filter_dims;
    return 0;
}

/* The shapes the kernel takes (tp_nn_conv.h). */
static int thin_ok(const tp_conv_params *p, const tp_dims *in_d, const tp_dims *f_d,
                   const tp_dims *out_d)
{
    const int32_t c = in_d->c;
    const int32_t oh = (in_d->h - 1) / p->stride.h + 1, ow = (in_d->w - 1) / p->stride.w + 1;
    return f_d->h == 1 && f_d->w == 1 && f_d->c == c && f_d->n == out_d->c && c >= 4 &&
           c <= 16 && (c & 3) == 0 && p->padding.h == 0 && p->padding.w == 0 &&
           p->stride.h >= 1 && p->stride.w >= 1 && out_d->n == in_d->n && out_d->h == oh &&
           out_d->w == ow && out_d->c >= 1;
}

/* Output == input: each pass reads its pixels before it stores, and pixel i's outputs end at or
 * before its input's end when the pixels stay in place and C_OUT <= C_IN. */
static int thin_in_place_ok(const tp_conv_params *p, const tp_dims *in_d, const tp_dims *out_d)
{
    return p->stride.h == 1 && p->stride.w == 1 && out_d->c <= in_d->c;
}

/* The input pixels in output order: the current one, and the walk to the next. */
typedef struct {
    const int8_t *px;
    int32_t ox, ow, step, row_skip;
} pixel_walk;

static TP_ALWAYS_INLINE const int8_t *walk_next(pixel_walk *w)
{
    const int8_t *cur = w->px;
    w->px += w->step;
    if (++w->ox == w->ow) {
        w->ox = 0;
        w->px += w->row_skip;
    }
    return cur;
}

static pixel_walk walk_start(const tp_conv_params *p, const tp_dims *in_d, const tp_dims *out_d,
                             const int8_t *in)
{
    const int32_t c = in_d->c;
    pixel_walk w;
    w.px = in;
    w.ox = 0;
    w.ow = out_d->w;
    w.step = p->stride.w * c;
    /* from one past the last pixel of a row to the first of the next output row */
    w.row_skip = (p->stride.h * in_d->w - out_d->w * p->stride.w) * c;
    return w;
}

#if TP_USE_DSP

/* Fully unrolls a loop of constant trip count (the widened inputs then live in registers). */
#if defined(__GNUC__) && !defined(__clang__)
#define TP_UNROLL _Pragma("GCC unroll 16")
#else
#define TP_UNROLL
#endif

enum { RQ_SAT, RQ_CLAMP };

static TP_ALWAYS_INLINE int8_t requant(int32_t acc, int32_t m, int32_t e, int32_t k, int32_t lo,
                                       int32_t hi, const int mode)
{
    const int32_t v = rq_fast(acc, m, e, k);
    return (int8_t)(mode == RQ_SAT ? tp_ssat8(v) : tp_clamp(v, lo, hi));
}

/*
 * `passes` passes of np pixels from the walk x all output channels, C_IN = cin (constants in
 * each instance, so the widened inputs stay in registers and the row loop unrolls). Pixel k of
 * a pass has its outputs at out + k * c_out. Returns the output after the last pass.
 */
static TP_ALWAYS_INLINE int8_t *thin_passes(pixel_walk *w, int32_t passes, const int8_t *stream,
                                            int32_t c_out, int8_t *out, int32_t lo, int32_t hi,
                                            const int cin, const int np, const int mode)
{
    for (; passes > 0; --passes, out += np * c_out) {
        int32_t x[4][8];
        TP_UNROLL
        for (int k = 0; k < np; ++k) {
            const int8_t *px = walk_next(w);
            TP_UNROLL
            for (int g = 0; g < cin / 4; ++g) {
                const int32_t v = tp_read_s8x4(px + 4 * g);
                x[k][2 * g] = tp_sxtb16(v);
                x[k][2 * g + 1] = tp_sxtb16_ror8(v);
            }
        }
        const void *sp = stream;
        int8_t *o = out;
        for (const int8_t *const end = out + c_out; o != end; ++o) {
            /* the row two words at a time, each pair used at once (no row held in registers) */
            const int32_t bias = ((const int32_t *)sp)[cin / 2];
            int32_t acc[4];
            TP_UNROLL
            for (int k = 0; k < np; ++k) {
                acc[k] = bias;
            }
            TP_UNROLL
            for (int j = 0; j < cin / 2; j += 2) {
                int32_t w0, w1;
                tp_load_2x32_inc(&sp, &w0, &w1);
                TP_UNROLL
                for (int k = 0; k < np; ++k) {
                    acc[k] = tp_smlad(w0, x[k][j], acc[k]);
                    acc[k] = tp_smlad(w1, x[k][j + 1], acc[k]);
                }
            }
            int32_t skip, m, e, rk;
            tp_load_2x32_inc(&sp, &skip, &m);
            tp_load_2x32_inc(&sp, &e, &rk);
            (void)skip;
            TP_UNROLL
            for (int k = 0; k < np; ++k) {
                o[k * c_out] = requant(acc[k], m, e, rk, lo, hi, mode);
            }
        }
    }
    return out;
}

/* The passes of one shape and mode, out of line (one copy each). */
#define THIN_PASS_FN(name, cin, np, mode)                                                        \
    static int8_t *name(pixel_walk *w, int32_t passes, const int8_t *stream, int32_t c_out,     \
                        int8_t *out, int32_t lo, int32_t hi)                                    \
    {                                                                                           \
        return thin_passes(w, passes, stream, c_out, out, lo, hi, (cin), (np), (mode));         \
    }

THIN_PASS_FN(pass4x4_sat, 4, 4, RQ_SAT)
THIN_PASS_FN(pass4x1_sat, 4, 1, RQ_SAT)
THIN_PASS_FN(pass8x2_sat, 8, 2, RQ_SAT)
THIN_PASS_FN(pass8x1_sat, 8, 1, RQ_SAT)
THIN_PASS_FN(pass12x1_sat, 12, 1, RQ_SAT)
THIN_PASS_FN(pass16x1_sat, 16, 1, RQ_SAT)
THIN_PASS_FN(pass16x2_sat, 16, 2, RQ_SAT)
THIN_PASS_FN(pass4x4_clamp, 4, 4, RQ_CLAMP)
THIN_PASS_FN(pass4x1_clamp, 4, 1, RQ_CLAMP)
THIN_PASS_FN(pass8x2_clamp, 8, 2, RQ_CLAMP)
THIN_PASS_FN(pass8x1_clamp, 8, 1, RQ_CLAMP)
THIN_PASS_FN(pass12x1_clamp, 12, 1, RQ_CLAMP)
THIN_PASS_FN(pass16x1_clamp, 16, 1, RQ_CLAMP)
THIN_PASS_FN(pass16x2_clamp, 16, 2, RQ_CLAMP)

typedef int8_t *(*pass_fn)(pixel_walk *, int32_t, const int8_t *, int32_t, int8_t *, int32_t,
                           int32_t);

static void thin_run(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                     const int8_t *stream, const tp_dims *out_d, int8_t *out)
{
    static const pass_fn wide[2][4] = {
        {pass4x4_sat, pass8x2_sat, pass12x1_sat, pass16x2_sat},
        {pass4x4_clamp, pass8x2_clamp, pass12x1_clamp, pass16x2_clamp},
    };
    static const pass_fn one[2][4] = {
        {pass4x1_sat, pass8x1_sat, pass12x1_sat, pass16x1_sat},
        {pass4x1_clamp, pass8x1_clamp, pass12x1_clamp, pass16x1_clamp},
    };
    static const int8_t per_pass[4] = {4, 2, 1, 2};
    const int32_t lo = p->activation.min, hi = p->activation.max, c_out = out_d->c;
    const int mode = lo == -128 && hi == 127 ? RQ_SAT : RQ_CLAMP;
    const int32_t shape = in_d->c / 4 - 1;
    const int32_t np = per_pass[shape], pixels = out_d->h * out_d->w;
    for (int32_t b = 0; b < in_d->n; ++b) {
        pixel_walk w = walk_start(p, in_d, out_d, in + b * in_d->h * in_d->w * in_d->c);
        out = wide[mode][shape](&w, pixels / np, stream, c_out, out, lo, hi);
        out = one[mode][shape](&w, pixels % np, stream, c_out, out, lo, hi);
    }
}

#else /* portable C */

static void thin_run(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                     const int8_t *stream, const tp_dims *out_d, int8_t *out)
{
    const int32_t c = in_d->c, c_out = out_d->c, pixels = out_d->h * out_d->w;
    for (int32_t b = 0; b < in_d->n; ++b) {
        pixel_walk w = walk_start(p, in_d, out_d, in + b * in_d->h * in_d->w * c);
        for (int32_t i = 0; i < pixels; ++i) {
            int8_t x[16];
            memcpy(x, walk_next(&w), (size_t)c); /* in place: the pixel is overwritten below */
            const int8_t *s = stream;
            for (int32_t o = 0; o < c_out; ++o, s += chan_bytes(c)) {
                thin_params pp;
                memcpy(&pp, s + 2 * c, sizeof(pp));
                int32_t acc = pp.bias;
                for (int32_t k = 0; k < c; ++k) {
                    /* value k of group g = k / 4 sits in word 2g + (k & 1), half (k >> 1) & 1 */
                    int16_t wk;
                    memcpy(&wk, s + 4 * (2 * (k >> 2) + (k & 1)) + 2 * ((k >> 1) & 1),
                           sizeof(wk));
                    acc = tp_wrap_mac(acc, wk, x[k]);
                }
                const int32_t v = rq_fast(acc, pp.mult, pp.e, pp.round);
                *out++ = (int8_t)tp_clamp(v, p->activation.min, p->activation.max);
            }
        }
    }
}

#endif /* TP_USE_DSP */

tp_status tp_conv_1x1_thin_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                              const tp_per_channel_quant *quant_params,
                              const tp_dims *input_dims, const int8_t *input,
                              const tp_dims *filter_dims, const int8_t *filter,
                              const tp_dims *bias_dims, const int32_t *bias,
                              const tp_dims *output_dims, int8_t *output)
{
    (void)ctx, (void)bias_dims, (void)quant_params, (void)bias;
    if (conv_params == NULL || input == NULL || filter == NULL || output == NULL ||
        !thin_ok(conv_params, input_dims, filter_dims, output_dims) ||
        (output == input && !thin_in_place_ok(conv_params, input_dims, output_dims))) {
        return TP_ERR_ARG;
    }
    thin_run(conv_params, input_dims, input, filter, output_dims, output);
    return TP_OK;
}
