/*
 * tinyprune runtime: int8 DEPTHWISE_CONV_2D, 3x3 filter, depth multiplier 1 (any stride,
 * padding, dilation).
 *
 * The input offset is folded into the bias and the filter is regrouped by the code generator
 * (see tp_nn_conv.h), so every output pixel runs the same unrolled nine taps over raw int8
 * values: a tap in the padding points at a row of input zero points (in the scratch), which the
 * folded bias turns into a zero contribution; no tap is ever skipped. Interior pixels get their
 * nine tap addresses by adding fixed offsets. DSP path: four channels per step, one input and
 * one filter word per tap, two SXTB16 each and one SMLABB/SMLATT per channel. Portable path
 * and the last C % 4 channels: one channel at a time.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

#define TAPS 9

static inline int8_t dw_out(int32_t acc, const tp_per_channel_quant *q, int32_t o,
                            const tp_dw_conv_params *p)
{
    acc = tp_requantize_pos(acc, q->multiplier[o], q->shift[o]) + p->output_offset;
    return (int8_t)tp_clamp(acc, p->activation.min, p->activation.max);
}

#if TP_USE_DSP

/* One tap of four channels: a[i] += w[i] * x[i]. */
#define TAP4(t)                                                                    \
    do {                                                                           \
        const int32_t xv = tp_read_s8x4(tap[t] + c), wv = tp_read_s8x4(w + 4 * (t)); \
        const int32_t xe = tp_sxtb16(xv), we = tp_sxtb16(wv);                      \
        a0 = tp_smlabb(xe, we, a0);                                                \
        a2 = tp_smlatt(xe, we, a2);                                                \
        const int32_t xo = tp_sxtb16_ror8(xv), wo = tp_sxtb16_ror8(wv);            \
        a1 = tp_smlabb(xo, wo, a1);                                                \
        a3 = tp_smlatt(xo, wo, a3);                                                \
    } while (0)

/* Channels [0, C & ~3) of one pixel; w points at the filter groups [C / 4][9][4]. */
static void pixel_groups(const tp_dw_conv_params *p, const tp_per_channel_quant *q,
                         const int32_t *bias, const int8_t *const tap[TAPS], const int8_t *w,
                         int32_t groups, int8_t *out)
{
    for (int32_t c = 0; groups > 0; --groups, c += 4, w += 4 * TAPS) {
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        if (bias != NULL) {
            a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
        }
        TAP4(0);
        TAP4(1);
        TAP4(2);
        TAP4(3);
        TAP4(4);
        TAP4(5);
        TAP4(6);
        TAP4(7);
        TAP4(8);
        out[c] = dw_out(a0, q, c, p);
        out[c + 1] = dw_out(a1, q, c + 1, p);
        out[c + 2] = dw_out(a2, q, c + 2, p);
        out[c + 3] = dw_out(a3, q, c + 3, p);
    }
}

#undef TAP4

#endif /* TP_USE_DSP */

/*
 * Channels [c_begin, C) one at a time. Channel c of group g = c / 4 reads the filter at
 * (g * 9 + t) * 4 + c % 4; the last C % 4 channels (the tail, r of them) at G * 36 + t * r + j.
 */
static void pixel_channels(const tp_dw_conv_params *p, const tp_per_channel_quant *q,
                           const int32_t *bias, const int8_t *const tap[TAPS], const int8_t *w,
                           int32_t c_begin, int32_t c_n, int8_t *out)
{
    const int32_t full = c_n & ~3, r = c_n & 3;
    for (int32_t c = c_begin; c < c_n; ++c) {
        const int32_t in_tail = c >= full;
        const int8_t *wc = in_tail ? w + full * TAPS + (c - full) : w + (c >> 2) * 4 * TAPS + (c & 3);
        const int32_t step = in_tail ? r : 4;
        int32_t acc = bias != NULL ? bias[c] : 0;
        for (int32_t t = 0; t < TAPS; ++t) {
            acc += wc[t * step] * tap[t][c];
        }
        out[c] = dw_out(acc, q, c, p);
    }
}

/* Tap addresses of the window at (y0, x0): padding taps point at the zero-point row. */
static void border_taps(const tp_dw_conv_params *p, const tp_dims *in_d, const int8_t *in_b,
                        const int8_t *pad, int32_t y0, int32_t x0, const int8_t *tap[TAPS])
{
    for (int32_t ky = 0; ky < 3; ++ky) {
        const int32_t iy = y0 + ky * p->dilation.h;
        for (int32_t kx = 0; kx < 3; ++kx) {
            const int32_t ix = x0 + kx * p->dilation.w;
            const int inside = iy >= 0 && iy < in_d->h && ix >= 0 && ix < in_d->w;
            tap[3 * ky + kx] = inside ? in_b + (iy * in_d->w + ix) * in_d->c : pad;
        }
    }
}

int32_t tp_depthwise_conv_3x3_s8_get_buffer_size(const tp_dims *input_dims,
                                                 const tp_dims *filter_dims)
{
    (void)filter_dims;
    return (input_dims->c + 3) & ~3;
}

/* One output row: interior pixels get their taps by offsets, border pixels by bounds checks. */
static void output_row(const tp_dw_conv_params *p, const tp_per_channel_quant *q,
                       const tp_dims *in_d, const int8_t *in_b, const int8_t *pad,
                       const int8_t *filter, const int32_t *bias, int32_t y0, int32_t out_w,
                       int8_t *out)
{
    const int32_t c_n = in_d->c;
    const int32_t dx = p->dilation.w * c_n, dy = p->dilation.h * in_d->w * c_n;
    const int rows_inside = y0 >= 0 && y0 + 2 * p->dilation.h < in_d->h;
    const int8_t *tap[TAPS];
    for (int32_t ox = 0; ox < out_w; ++ox, out += c_n) {
        const int32_t x0 = ox * p->stride.w - p->padding.w;
        if (rows_inside && x0 >= 0 && x0 + 2 * p->dilation.w < in_d->w) {
            const int8_t *x = in_b + (y0 * in_d->w + x0) * c_n;
            tap[0] = x, tap[1] = x + dx, tap[2] = x + 2 * dx;
            tap[3] = x + dy, tap[4] = x + dy + dx, tap[5] = x + dy + 2 * dx;
            tap[6] = x + 2 * dy, tap[7] = x + 2 * dy + dx, tap[8] = x + 2 * dy + 2 * dx;
        } else {
            border_taps(p, in_d, in_b, pad, y0, x0, tap);
        }
#if TP_USE_DSP
        pixel_groups(p, q, bias, tap, filter, c_n >> 2, out);
        pixel_channels(p, q, bias, tap, filter, c_n & ~3, c_n, out);
#else
        pixel_channels(p, q, bias, tap, filter, 0, c_n, out);
#endif
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
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = input + b * in_d->h * in_d->w * c_n;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            output_row(p, quant_params, in_d, in_b, pad, filter, bias,
                       oy * p->stride.h - p->padding.h, out_d->w, output);
            output += out_d->w * c_n;
        }
    }
    return TP_OK;
}
