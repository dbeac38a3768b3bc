/*
 * tinyprune runtime: int8 DEPTHWISE_CONV_2D, 3x3 filter, depth multiplier 1 (any stride,
 * padding, dilation).
 *
 * The input offset is folded into the bias and the filter is regrouped by the code generator
 * (see tp_nn_conv.h), so every output pixel runs the same unrolled nine taps over raw int8
 * values: a tap in the padding points at a row of input zero points (in the scratch), which the
 * folded bias turns into a zero contribution; no tap is ever skipped. DSP path: four channels per
 * step, one input and one filter word per tap, two SXTB16 each and one SMLABB/SMLATT per
 * channel; interior pixels read their taps through three row pointers and a column step held
 * in registers, border pixels through nine tap addresses. Portable path and the last C % 4
 * channels: one channel at a time over the nine tap addresses (fixed offsets inside).
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

#define TAPS 9

/* Requantization of the layer, read once per call (int8 stores would make gcc reload it). */
typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    const int32_t *bias;
    int32_t offset, lo, hi;
} requant;

/* The layer as output_row needs it. */
typedef struct {
    requant r;
    const tp_dw_conv_params *p;
    const tp_dims *in_d;
    const int8_t *in_b; /* the current batch's input */
    const int8_t *pad;  /* C input zero points (the scratch) */
    const int8_t *filter;
} layer;

static inline int8_t out_s8(const requant *r, int32_t acc, int32_t c)
{
    acc = tp_wrap_add(tp_requantize_pos(acc, r->mult[c], r->shift[c]), r->offset);
    return (int8_t)tp_clamp(acc, r->lo, r->hi);
}

#if TP_USE_DSP

/* The four accumulators of channels [c, c + 4) start from the (folded) bias. */
#define BIAS4(r, c)                                                                \
    do {                                                                           \
        a0 = 0, a1 = 0, a2 = 0, a3 = 0;                                            \
        if ((r)->bias != NULL) {                                                   \
            const int32_t *b_ = (r)->bias + (c);                                   \
            a0 = b_[0], a1 = b_[1], a2 = b_[2], a3 = b_[3];                        \
        }                                                                          \
    } while (0)

/* One tap of four channels: a[i] += w[i] * x[i], x the input word, w read as a word. */
#define TAP4(xv_expr, wp)                                                          \
    do {                                                                           \
        const int32_t xv = (xv_expr), wv = tp_read_s8x4(wp);                       \
        const int32_t xe = tp_sxtb16(xv), we = tp_sxtb16(wv);                      \
        a0 = tp_smlabb(xe, we, a0);                                                \
        a2 = tp_smlatt(xe, we, a2);                                                \
        const int32_t xo = tp_sxtb16_ror8(xv), wo = tp_sxtb16_ror8(wv);            \
        a1 = tp_smlabb(xo, wo, a1);                                                \
        a3 = tp_smlatt(xo, wo, a3);                                                \
    } while (0)

/* Requantizes the four accumulators of channels [c, c + 4), then stores them to out[c..]. */
static inline void store4(const requant *r, int32_t c, int32_t a0, int32_t a1, int32_t a2,
                          int32_t a3, int8_t *out)
{
    const int32_t off = r->offset, lo = r->lo, hi = r->hi;
    const int32_t *m = r->mult + c, *s = r->shift + c;
    const int32_t v0 = tp_clamp(tp_wrap_add(tp_requantize_pos(a0, m[0], s[0]), off), lo, hi);
    const int32_t v1 = tp_clamp(tp_wrap_add(tp_requantize_pos(a1, m[1], s[1]), off), lo, hi);
    const int32_t v2 = tp_clamp(tp_wrap_add(tp_requantize_pos(a2, m[2], s[2]), off), lo, hi);
    const int32_t v3 = tp_clamp(tp_wrap_add(tp_requantize_pos(a3, m[3], s[3]), off), lo, hi);
    out[c] = (int8_t)v0, out[c + 1] = (int8_t)v1, out[c + 2] = (int8_t)v2, out[c + 3] = (int8_t)v3;
}

/* Channels [0, C & ~3) of one pixel from its nine tap addresses (border pixels). */
static void pixel_groups(const requant *r, const int8_t *const tap[TAPS], const int8_t *w,
                         int32_t groups, int8_t *out)
{
    for (int32_t c = 0; groups > 0; --groups, c += 4, w += 4 * TAPS) {
        int32_t a0, a1, a2, a3;
        BIAS4(r, c);
        TAP4(tp_read_s8x4(tap[0] + c), w);
        TAP4(tp_read_s8x4(tap[1] + c), w + 4);
        TAP4(tp_read_s8x4(tap[2] + c), w + 8);
        TAP4(tp_read_s8x4(tap[3] + c), w + 12);
        TAP4(tp_read_s8x4(tap[4] + c), w + 16);
        TAP4(tp_read_s8x4(tap[5] + c), w + 20);
        TAP4(tp_read_s8x4(tap[6] + c), w + 24);
        TAP4(tp_read_s8x4(tap[7] + c), w + 28);
        TAP4(tp_read_s8x4(tap[8] + c), w + 32);
        store4(r, c, a0, a1, a2, a3, out);
    }
}

/*
 * Channels [0, C & ~3) of an interior pixel whose top-left tap is at x: three row pointers (x,
 * x + dy, x + 2 * dy) advance four channels per group, and the taps of a row sit at
 * +0, +dx and +2 * dx of its pointer (register offsets, no tap address in memory). Kept out
 * of line: inlined into output_row, gcc 12 -O2 spills more of the loop (3-4% slower measured).
 */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline))
#endif
static void interior_groups(const requant *r, const int8_t *x, int32_t dx, int32_t dy,
                            const int8_t *w, int32_t groups, int8_t *out)
{
    const int8_t *x0 = x, *x1 = x + dy, *x2 = x + 2 * dy;
    for (int32_t c = 0; groups > 0; --groups, c += 4, w += 4 * TAPS) {
        int32_t a0, a1, a2, a3;
        BIAS4(r, c);
        TAP4(tp_read_s8x4(x0), w);
        TAP4(tp_read_s8x4_off(x0, dx), w + 4);
        TAP4(tp_read_s8x4_off2(x0, dx), w + 8);
        TAP4(tp_read_s8x4(x1), w + 12);
        TAP4(tp_read_s8x4_off(x1, dx), w + 16);
        TAP4(tp_read_s8x4_off2(x1, dx), w + 20);
        TAP4(tp_read_s8x4(x2), w + 24);
        TAP4(tp_read_s8x4_off(x2, dx), w + 28);
        TAP4(tp_read_s8x4_off2(x2, dx), w + 32);
        x0 += 4, x1 += 4, x2 += 4;
        store4(r, c, a0, a1, a2, a3, out);
    }
}

#undef TAP4
#undef BIAS4

#endif /* TP_USE_DSP */

/*
 * Channels [c_begin, C) one at a time. Channel c of group g = c / 4 reads the filter at
 * (g * 9 + t) * 4 + c % 4; the last C % 4 channels (the tail, r of them) at G * 36 + t * r + j.
 */
static void pixel_channels(const requant *r, const int8_t *const tap[TAPS], const int8_t *w,
                           int32_t c_begin, int32_t c_n, int8_t *out)
{
    const int32_t full = c_n & ~3, tail = c_n & 3;
    for (int32_t c = c_begin; c < c_n; ++c) {
        const int32_t in_tail = c >= full;
        const int8_t *wc = in_tail ? w + full * TAPS + (c - full) : w + (c >> 2) * 4 * TAPS + (c & 3);
        const int32_t step = in_tail ? tail : 4;
        int32_t acc = r->bias != NULL ? r->bias[c] : 0;
        for (int32_t t = 0; t < TAPS; ++t) {
            acc = tp_wrap_mac(acc, wc[t * step], tap[t][c]);
        }
        out[c] = out_s8(r, acc, c);
    }
}

/* Tap addresses of the window at (y0, x0): padding taps point at the zero-point row. */
static void border_taps(const layer *l, int32_t y0, int32_t x0, const int8_t *tap[TAPS])
{
    const tp_dims *in_d = l->in_d;
    for (int32_t ky = 0; ky < 3; ++ky) {
        const int32_t iy = y0 + ky * l->p->dilation.h;
        for (int32_t kx = 0; kx < 3; ++kx) {
            const int32_t ix = x0 + kx * l->p->dilation.w;
            const int inside = iy >= 0 && iy < in_d->h && ix >= 0 && ix < in_d->w;
            tap[3 * ky + kx] = inside ? l->in_b + (iy * in_d->w + ix) * in_d->c : l->pad;
        }
    }
}

/* Tap addresses of an interior window whose top-left tap is at x. */
static void interior_taps(const int8_t *x, int32_t dx, int32_t dy, const int8_t *tap[TAPS])
{
    tap[0] = x, tap[1] = x + dx, tap[2] = x + 2 * dx;
    tap[3] = x + dy, tap[4] = x + dy + dx, tap[5] = x + dy + 2 * dx;
    tap[6] = x + 2 * dy, tap[7] = x + 2 * dy + dx, tap[8] = x + 2 * dy + 2 * dx;
}

int32_t tp_depthwise_conv_3x3_s8_get_buffer_size(const tp_dims *input_dims,
                                                 const tp_dims *filter_dims)
{
    (void)filter_dims;
    return (input_dims->c + 3) & ~3;
}

/*
 * One output row. Interior pixels: DSP path, channel groups by row pointers (interior_groups);
 * tap addresses by fixed offsets for the rest. Border pixels: tap addresses by bounds checks.
 */
static void output_row(const layer *l, int32_t y0, int32_t out_w, int8_t *out)
{
    const tp_dw_conv_params *p = l->p;
    const tp_dims *in_d = l->in_d;
    const int32_t c_n = in_d->c;
    const int32_t dx = p->dilation.w * c_n, dy = p->dilation.h * in_d->w * c_n;
    const int rows_inside = y0 >= 0 && y0 + 2 * p->dilation.h < in_d->h;
    const int8_t *tap[TAPS];
    for (int32_t ox = 0; ox < out_w; ++ox, out += c_n) {
        const int32_t x0 = ox * p->stride.w - p->padding.w;
        if (rows_inside && x0 >= 0 && x0 + 2 * p->dilation.w < in_d->w) {
            const int8_t *x = l->in_b + (y0 * in_d->w + x0) * c_n;
#if TP_USE_DSP
            interior_groups(&l->r, x, dx, dy, l->filter, c_n >> 2, out);
            if ((c_n & 3) == 0) {
                continue;
            }
#endif
            interior_taps(x, dx, dy, tap);
        } else {
            border_taps(l, y0, x0, tap);
#if TP_USE_DSP
            pixel_groups(&l->r, tap, l->filter, c_n >> 2, out);
#endif
        }
        pixel_channels(&l->r, tap, l->filter, TP_USE_DSP ? c_n & ~3 : 0, c_n, out);
    }
}

tp_status tp_depthwise_conv_3x3_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                                   const tp_per_channel_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const int8_t *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const tp_dw_conv_params *p = dw_params;
    const tp_dims *in_d = input_dims, *out_d = output_dims;
    const int32_t c_n = in_d->c;
    if (p->ch_mult != 1 || filter_dims->h != 3 || filter_dims->w != 3 || filter_dims->c != c_n ||
        out_d->c != c_n || in_d->n != out_d->n || ctx == NULL || ctx->buf == NULL ||
        ctx->size < tp_depthwise_conv_3x3_s8_get_buffer_size(in_d, filter_dims)) {
        return TP_ERR_ARG;
    }
    int8_t *pad = (int8_t *)ctx->buf;
    for (int32_t c = 0; c < c_n; ++c) {
        pad[c] = (int8_t)-p->input_offset;
    }
    layer l = {{quant_params->multiplier, quant_params->shift, bias, p->output_offset,
                p->activation.min, p->activation.max},
               p, in_d, input, pad, filter};
    for (int32_t b = 0; b < in_d->n; ++b, l.in_b += in_d->h * in_d->w * c_n) {
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            output_row(&l, oy * p->stride.h - p->padding.h, out_d->w, output);
            output += out_d->w * c_n;
        }
    }
    return TP_OK;
}
