/*
 * tinyprune runtime: int8 CONV_2D for any filter, with interleaved filter row pairs.
 *
 * The code generator folds the input offset into the bias and lays the filter out as pairs of
 * output channels whose rows (padded with 0 to n4 = KH * KW * C_IN rounded up to a multiple of
 * 4) are interleaved a word at a time (see tp_nn_conv.h). The window of each output pixel is
 * gathered as raw int8 (padding as the input zero point, which the folded bias cancels; a 1x1
 * window with C_IN % 4 == 0 is read in place), then DSP path: widened to int16 into one of two
 * interleaved columns, and every channel pair x both columns runs tp_dot_s8s16_2x2 (three LDRD,
 * four SXTB16, eight SMLAD per 16 MACs). Portable path: the same data, one output at a time.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* Requantization of the layer with the struct loads hoisted. */
typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t offset, lo, hi;
} requant;

static inline int8_t out_s8(int32_t acc, const requant *r, int32_t o)
{
    acc = tp_wrap_add(tp_requantize_pos(acc, r->mult[o], r->shift[o]), r->offset);
    return (int8_t)tp_clamp(acc, r->lo, r->hi);
}

static int32_t depth4(const tp_dims *f_d)
{
    return (f_d->h * f_d->w * f_d->c + 3) & ~3;
}

static void fill_s8(int8_t *dst, int8_t v, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = v;
    }
}

/* Copies n bytes, a word at a time while it can. */
static void copy_s8(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        const int32_t v = tp_read_s8x4(src);
        memcpy(dst, &v, sizeof(v));
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

/* The window at (y0, x0) as n4 raw bytes: a pointer into the input, or gathered into stage. */
static const int8_t *window_s8(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                               const tp_dims *f_d, int32_t y0, int32_t x0, int8_t *stage,
                               int32_t n4)
{
    const int32_t c = in_d->c, row = f_d->w * c;
    const int8_t zp = (int8_t)-p->input_offset;
    if (n4 == c && f_d->h == 1 && y0 >= 0 && y0 < in_d->h && x0 >= 0 && x0 < in_d->w) {
        return in + (y0 * in_d->w + x0) * c; /* 1x1 window, C_IN % 4 == 0 */
    }
    const int row_inside = p->dilation.w == 1 && x0 >= 0 && x0 + f_d->w <= in_d->w;
    int8_t *dst = stage;
    for (int32_t ky = 0; ky < f_d->h; ++ky, dst += row) {
        const int32_t iy = y0 + ky * p->dilation.h;
        if (iy < 0 || iy >= in_d->h) {
            fill_s8(dst, zp, row);
        } else if (row_inside) {
            copy_s8(dst, in + (iy * in_d->w + x0) * c, row);
        } else {
            for (int32_t kx = 0; kx < f_d->w; ++kx) {
                const int32_t ix = x0 + kx * p->dilation.w;
                if (ix < 0 || ix >= in_d->w) {
                    fill_s8(dst + kx * c, zp, c);
                } else {
                    copy_s8(dst + kx * c, in + (iy * in_d->w + ix) * c, c);
                }
            }
        }
    }
    fill_s8(dst, 0, n4 - f_d->h * row);
    return stage;
}

int32_t tp_conv_interleaved_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
#if TP_USE_DSP
    return 5 * depth4(filter_dims); /* two int16 columns (4 * n4 bytes) + the int8 window */
#else
    return depth4(filter_dims);
#endif
}

#if TP_USE_DSP

/* Widens n4 raw values into column j of the interleaved int16 pair (tp_dot_s8s16_2x2). */
static void widen_col(const int8_t *src, int32_t n4, int32_t *col, int32_t j)
{
    int32_t *d = col + j;
    for (int32_t g = n4 >> 2; g > 0; --g, src += 4, d += 4) {
        const int32_t v = tp_read_s8x4(src);
        d[0] = tp_sxtb16(v);
        d[2] = tp_sxtb16_ror8(v);
    }
}

/*
 * All output channels of the two columns into out0 and out1. For one column pass out1 == out0:
 * column 1's results are stored first and overwritten. An odd last channel runs as the pair
 * (o, o) against the zero row, and its second result is overwritten the same way.
 */
static void matmul2(const requant *r, const int8_t *filter, const int32_t *bias, int32_t c_out,
                    int32_t n4, const int32_t *col, int8_t *out0, int8_t *out1)
{
    const int32_t off = r->offset, lo = r->lo, hi = r->hi;
    for (int32_t o = 0; o < c_out; o += 2, filter += 2 * n4) {
        const int32_t o1 = o + 1 < c_out ? o + 1 : o;
        const int32_t b0 = bias ? bias[o] : 0, b1 = bias ? bias[o1] : 0;
        int32_t acc[4] = {b0, b0, b1, b1};
        tp_dot_s8s16_2x2(filter, col, n4 >> 2, acc);
        const int32_t m0 = r->mult[o], s0 = r->shift[o], m1 = r->mult[o1], s1 = r->shift[o1];
        const int32_t v00 = tp_clamp(tp_wrap_add(tp_requantize_pos(acc[0], m0, s0), off), lo, hi);
        const int32_t v01 = tp_clamp(tp_wrap_add(tp_requantize_pos(acc[1], m0, s0), off), lo, hi);
        const int32_t v10 = tp_clamp(tp_wrap_add(tp_requantize_pos(acc[2], m1, s1), off), lo, hi);
        const int32_t v11 = tp_clamp(tp_wrap_add(tp_requantize_pos(acc[3], m1, s1), off), lo, hi);
        out1[o1] = (int8_t)v11, out1[o] = (int8_t)v01;
        out0[o1] = (int8_t)v10, out0[o] = (int8_t)v00;
    }
}

static void conv_run(const tp_conv_params *p, const requant *r, const tp_dims *in_d,
                     const int8_t *in, const tp_dims *f_d, const int8_t *filter,
                     const int32_t *bias, const tp_dims *out_d, int8_t *out, void *buf)
{
    const int32_t n4 = depth4(f_d), c_out = out_d->c;
    int32_t *col = (int32_t *)buf;
    int8_t *stage = (int8_t *)buf + 4 * n4;
    int32_t filled = 0;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                const int32_t x0 = ox * p->stride.w - p->padding.w;
                widen_col(window_s8(p, in_d, in_b, f_d, y0, x0, stage, n4), n4, col, filled);
                if (++filled == 2) {
                    matmul2(r, filter, bias, c_out, n4, col, out, out + c_out);
                    out += 2 * c_out;
                    filled = 0;
                }
            }
        }
    }
    if (filled == 1) {
        for (int32_t g = 0; g < n4; g += 4) { /* column 1 := column 0, its results dropped */
            col[g + 1] = col[g], col[g + 3] = col[g + 2];
        }
        matmul2(r, filter, bias, c_out, n4, col, out, out);
    }
}

#else /* portable C */

static void conv_run(const tp_conv_params *p, const requant *r, const tp_dims *in_d,
                     const int8_t *in, const tp_dims *f_d, const int8_t *filter,
                     const int32_t *bias, const tp_dims *out_d, int8_t *out, void *buf)
{
    const int32_t n4 = depth4(f_d);
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                const int8_t *x = window_s8(p, in_d, in_b, f_d, y0, ox * p->stride.w - p->padding.w,
                                            (int8_t *)buf, n4);
                for (int32_t o = 0; o < out_d->c; ++o) {
                    /* row o: word k / 4 of its pair at 8 * (k / 4) + 4 * (o % 2) */
                    const int8_t *w = filter + (o >> 1) * 2 * n4 + (o & 1) * 4;
                    int32_t acc = bias ? bias[o] : 0;
                    for (int32_t k = 0; k < n4; ++k) {
                        acc = tp_wrap_mac(acc, w[2 * (k & ~3) + (k & 3)], x[k]);
                    }
                    *out++ = out_s8(acc, r, o);
                }
            }
        }
    }
}

#endif /* TP_USE_DSP */

tp_status tp_conv_interleaved_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                 const tp_per_channel_quant *quant_params,
                                 const tp_dims *input_dims, const int8_t *input,
                                 const tp_dims *filter_dims, const int8_t *filter,
                                 const tp_dims *bias_dims, const int32_t *bias,
                                 const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const tp_conv_params *p = conv_params;
    const tp_dims *in_d = input_dims, *f_d = filter_dims, *out_d = output_dims;
    if (f_d->c != in_d->c || f_d->n != out_d->c || in_d->n != out_d->n || ctx == NULL ||
        ctx->buf == NULL || ctx->size < tp_conv_interleaved_s8_get_buffer_size(in_d, f_d)) {
        return TP_ERR_ARG;
    }
    const requant r = {quant_params->multiplier, quant_params->shift, p->output_offset,
                       p->activation.min, p->activation.max};
    conv_run(p, &r, in_d, input, f_d, filter, bias, out_d, output, ctx->buf);
    return TP_OK;
}
