/*
 * tinyprune runtime: int8 DEPTHWISE_CONV_2D, 3x3 filter, depth multiplier 1 (any stride,
 * padding, dilation).
 *
 * The code generator folds the input offset into the bias and lays the layer out as a stream of
 * channel groups (see tp_nn_conv.h): per group of four channels, its nine tap words and its
 * bias, multiplier, shift and rounding words, so one pointer walks filter and parameters
 * together. Every output pixel runs the same unrolled nine taps over raw int8 values: a tap in
 * the padding points at a row of input zero points (in the scratch), which the folded bias turns
 * into a zero contribution; no tap is ever skipped.
 *
 * DSP path: four channels per step, one input and one filter word per tap, two SXTB16 each and
 * one SMLABB/SMLATT per channel, then tp_requantize_fast (SSAT when the activation range is the
 * whole int8 range) and one word store. Interior pixels read their taps through three row
 * pointers and a column step in registers, border pixels through nine tap addresses. The last
 * C % 4 channels (a zero-padded group in the stream) and the portable path: one channel at a
 * time over the nine tap addresses, with tp_requantize_pos.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

#define TAPS 9

/* One group of the stream: 4-byte aligned, 25 words. */
typedef struct {
    int32_t tap[TAPS]; /* int8 x 4: the group's four channels at tap t = 3 * ky + kx */
    int32_t bias[4];
    int32_t mult[4];
    int32_t shift[4];
    int32_t round[4];
} group;

/* The layer as the pixel functions need it. */
typedef struct {
    const tp_dw_conv_params *p;
    const tp_dims *in_d;
    const int8_t *in_b; /* the current batch's input */
    const int8_t *pad;  /* C input zero points (the scratch) */
    const group *g;     /* the stream's groups */
    int32_t offset, lo, hi, fast;
} layer;

/* Channel c of the stream: filter byte of tap t, and requantization (tp_requantize_pos). */
static inline int32_t tap_weight(const group *g, int32_t c, int32_t t)
{
    return ((const int8_t *)(const void *)g[c >> 2].tap)[4 * t + (c & 3)];
}

static inline int8_t out_s8(const layer *l, int32_t acc, int32_t c)
{
    const group *g = l->g + (c >> 2);
    acc = tp_wrap_add(tp_requantize_pos(acc, g->mult[c & 3], g->shift[c & 3]), l->offset);
    return (int8_t)tp_clamp(acc, l->lo, l->hi);
}

/*
 * Channels [c_begin, C) one at a time from the nine tap addresses (the portable path, and the
 * last C % 4 channels of the DSP path).
 */
static void pixel_channels(const layer *l, const int8_t *const tap[TAPS], int32_t c_begin,
                           int32_t c_n, int8_t *out)
{
    for (int32_t c = c_begin; c < c_n; ++c) {
        int32_t acc = l->g[c >> 2].bias[c & 3];
        for (int32_t t = 0; t < TAPS; ++t) {
            acc = tp_wrap_mac(acc, tap_weight(l->g, c, t), tap[t][c]);
        }
        out[c] = out_s8(l, acc, c);
    }
}

#if TP_USE_DSP

/* Requantization modes of a layer (constants in each instance of the group loops). */
enum { RQ_GENERAL, RQ_FAST, RQ_FAST_SAT };

static TP_ALWAYS_INLINE int32_t requant_one(const layer *l, const group *g, int32_t acc,
                                            int32_t j, const int mode)
{
    if (mode == RQ_GENERAL) {
        acc = tp_wrap_add(tp_requantize_pos(acc, g->mult[j], g->shift[j]), l->offset);
        return tp_clamp(acc, l->lo, l->hi);
    }
    const int32_t v = tp_requantize_fast(acc, g->mult[j], g->shift[j], g->round[j]);
    return mode == RQ_FAST_SAT ? tp_ssat8(v) : tp_clamp(v, l->lo, l->hi);
}

/* Requantizes the group's four accumulators and stores them to out[0..3]. */
static TP_ALWAYS_INLINE void store4(const layer *l, const group *g, const int32_t a[4],
                                    int8_t *out, const int mode)
{
    out[0] = (int8_t)requant_one(l, g, a[0], 0, mode);
    out[1] = (int8_t)requant_one(l, g, a[1], 1, mode);
    out[2] = (int8_t)requant_one(l, g, a[2], 2, mode);
    out[3] = (int8_t)requant_one(l, g, a[3], 3, mode);
}

static TP_ALWAYS_INLINE void bias4(const group *g, int32_t a[4])
{
    a[0] = g->bias[0], a[1] = g->bias[1], a[2] = g->bias[2], a[3] = g->bias[3];
}

/* Groups [0, groups) of one pixel from its nine tap addresses (border pixels). */
static TP_ALWAYS_INLINE void border_body(const layer *l, const int8_t *const tap[TAPS],
                                         int32_t groups, int8_t *out, const int mode)
{
    const group *g = l->g;
    for (int32_t c = 0; groups > 0; --groups, c += 4, ++g) {
        int32_t a[4];
        bias4(g, a);
        for (int32_t t = 0; t < TAPS; ++t) {
            tp_mac_s8x4(tp_read_s8x4(tap[t] + c), g->tap[t], a);
        }
        store4(l, g, a, out + c, mode);
    }
}

/*
 * Groups [0, groups) of an interior pixel whose top-left tap is at x: three row pointers (x,
 * x + dy, x + 2 * dy) advance four channels per group, and the taps of a row sit at +0, +dx and
 * +2 * dx of its pointer (register offsets, no tap address in memory).
 */
static TP_ALWAYS_INLINE void interior_body(const layer *l, const int8_t *x, int32_t dx,
                                           int32_t dy, int32_t groups, int8_t *out,
                                           const int mode)
{
    const int8_t *x0 = x, *x1 = x + dy, *x2 = x + 2 * dy;
    const group *g = l->g, *end = g + groups;
    for (; g != end; ++g, x0 += 4, x1 += 4, x2 += 4, out += 4) {
        int32_t a[4];
        bias4(g, a);
        tp_mac_s8x4(tp_read_s8x4(x0), g->tap[0], a);
        tp_mac_s8x4(tp_read_s8x4_off(x0, dx), g->tap[1], a);
        tp_mac_s8x4(tp_read_s8x4_off2(x0, dx), g->tap[2], a);
        tp_mac_s8x4(tp_read_s8x4(x1), g->tap[3], a);
        tp_mac_s8x4(tp_read_s8x4_off(x1, dx), g->tap[4], a);
        tp_mac_s8x4(tp_read_s8x4_off2(x1, dx), g->tap[5], a);
        tp_mac_s8x4(tp_read_s8x4(x2), g->tap[6], a);
        tp_mac_s8x4(tp_read_s8x4_off(x2, dx), g->tap[7], a);
        tp_mac_s8x4(tp_read_s8x4_off2(x2, dx), g->tap[8], a);
        store4(l, g, a, out, mode);
    }
}

/*
 * The full groups of a pixel, interior (tap == NULL: x, dx, dy) or border (nine tap addresses),
 * with the layer's requantization mode. Out of line with gcc's first scheduling pass off: it
 * hoisted loads of the next taps and spilled the stream pointer (as in tp_fully_connected_s8.c).
 */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void pixel_groups(const layer *l, const int8_t *const tap[TAPS], const int8_t *x,
                         int32_t dx, int32_t dy, int8_t *out)
{
    const int32_t groups = l->in_d->c >> 2;
    const int mode = !l->fast ? RQ_GENERAL : (l->lo == -128 && l->hi == 127) ? RQ_FAST_SAT
                                                                              : RQ_FAST;
    if (tap == NULL) {
        if (mode == RQ_FAST_SAT) {
            interior_body(l, x, dx, dy, groups, out, RQ_FAST_SAT);
        } else if (mode == RQ_FAST) {
            interior_body(l, x, dx, dy, groups, out, RQ_FAST);
        } else {
            interior_body(l, x, dx, dy, groups, out, RQ_GENERAL);
        }
    } else if (mode == RQ_FAST_SAT) {
        border_body(l, tap, groups, out, RQ_FAST_SAT);
    } else if (mode == RQ_FAST) {
        border_body(l, tap, groups, out, RQ_FAST);
    } else {
        border_body(l, tap, groups, out, RQ_GENERAL);
    }
}

#endif /* TP_USE_DSP */

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

/* Bytes of one output row in the in-place ring (word aligned). */
static int32_t ring_row(const tp_dims *input_dims)
{
    return (input_dims->w * input_dims->c + 3) & ~3;
}

int32_t tp_depthwise_conv_3x3_s8_get_buffer_size_in_place(const tp_dims *input_dims,
                                                          const tp_dims *filter_dims)
{
    return tp_depthwise_conv_3x3_s8_get_buffer_size(input_dims, filter_dims) +
           2 * ring_row(input_dims);
}

/* Output row oy overwrites input row oy only once output row oy + 1 is done: SAME, stride 1. */
static int in_place_allowed(const tp_dw_conv_params *p, const tp_dims *in_d, const tp_dims *out_d)
{
    return p->stride.h == 1 && p->stride.w == 1 && p->dilation.h == 1 && p->dilation.w == 1 &&
           p->padding.h == 1 && p->padding.w == 1 && out_d->h == in_d->h && out_d->w == in_d->w;
}

/*
 * One output row. Interior pixels: DSP path, channel groups by row pointers; tap addresses by
 * fixed offsets for the rest. Border pixels: tap addresses by bounds checks.
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
            pixel_groups(l, NULL, x, dx, dy, out);
            if ((c_n & 3) == 0) {
                continue;
            }
#endif
            interior_taps(x, dx, dy, tap);
        } else {
            border_taps(l, y0, x0, tap);
#if TP_USE_DSP
            pixel_groups(l, tap, NULL, 0, 0, out);
#endif
        }
        pixel_channels(l, tap, TP_USE_DSP ? c_n & ~3 : 0, c_n, out);
    }
}

tp_status tp_depthwise_conv_3x3_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                                   const tp_per_channel_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const int8_t *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims, (void)quant_params, (void)bias;
    const tp_dw_conv_params *p = dw_params;
    const tp_dims *in_d = input_dims, *out_d = output_dims;
    const int32_t c_n = in_d->c;
    const int in_place = output == input;
    const int32_t need = in_place ? tp_depthwise_conv_3x3_s8_get_buffer_size_in_place(in_d, filter_dims)
                                  : tp_depthwise_conv_3x3_s8_get_buffer_size(in_d, filter_dims);
    if (p->ch_mult != 1 || filter_dims->h != 3 || filter_dims->w != 3 || filter_dims->c != c_n ||
        out_d->c != c_n || in_d->n != out_d->n || ctx == NULL || ctx->buf == NULL ||
        ctx->size < need || (in_place && !in_place_allowed(p, in_d, out_d))) {
        return TP_ERR_ARG;
    }
    int8_t *pad = (int8_t *)ctx->buf;
    for (int32_t c = 0; c < c_n; ++c) {
        pad[c] = (int8_t)-p->input_offset;
    }
    int32_t fast;
    memcpy(&fast, filter, sizeof(fast)); /* stream word 0 */
    layer l = {p, in_d, input, pad, (const group *)(const void *)(filter + 4), p->output_offset,
               p->activation.min, p->activation.max, fast};
    /* In place: row oy goes to ring slot oy % 2 and row oy - 1 to its place once row oy is done
     * (the last input row it needed); the last row after the loop. */
    const int32_t row_bytes = out_d->w * c_n;
    int8_t *ring = (int8_t *)ctx->buf + tp_depthwise_conv_3x3_s8_get_buffer_size(in_d, filter_dims);
    for (int32_t b = 0; b < in_d->n; ++b, l.in_b += in_d->h * in_d->w * c_n) {
        for (int32_t oy = 0; oy < out_d->h; ++oy, output += row_bytes) {
            int8_t *slot = ring + (oy & 1) * ring_row(in_d);
            output_row(&l, oy * p->stride.h - p->padding.h, out_d->w, in_place ? slot : output);
            if (in_place && oy > 0) {
                memcpy(output - row_bytes, ring + ((oy - 1) & 1) * ring_row(in_d),
                       (size_t)row_bytes);
            }
        }
        if (in_place && out_d->h > 0) {
            memcpy(output - row_bytes, ring + ((out_d->h - 1) & 1) * ring_row(in_d),
                   (size_t)row_bytes);
        }
    }
    return TP_OK;
}
