/*
 * tinyprune runtime: int8 CONV_2D, bit-exact with TFLM reference_integer_ops::ConvPerChannel.
 *
 * Portable path: direct loops over the taps inside the image.
 * DSP path: im2col of two output pixels at a time into int16 (input offset added, padding 0,
 * groups of four reordered, see tp_widen_s8_reordered), then a 2-channel x 2-pixel matrix kernel
 * where each filter word gives two SXTB16 and four SMLAD: 16 MACs per 2 filter + 4 input loads.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

static inline int8_t conv_out(int32_t acc, int32_t mult, int32_t shift, const tp_conv_params *p)
{
    acc = tp_wrap_add(tp_requantize_pos(acc, mult, shift), p->output_offset);
    return (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
}

#if TP_USE_DSP

/*
 * The im2col buffer holds two columns (pixels) of n = KH * KW * C_IN values as int32 words. For
 * group g of four values, words 4g + 2j and 4g + 2j + 1 are column j's [x0, x2] and [x1, x3]
 * (tp_widen_s8x4_pairs); the last n % 4 values t sit in word 4 * (n / 4) + t, column 0 in the
 * bottom half, column 1 in the top half. 4 * n bytes in all.
 */

static void col_set(int32_t *col, int32_t n, int32_t j, int32_t k, int32_t v)
{
    const int32_t full = n & ~3;
    const int32_t word = k < full ? 4 * (k >> 2) + 2 * j + (k & 1) : k;
    const int32_t top = k < full ? (k >> 1) & 1 : j;
    const uint32_t old = (uint32_t)col[word];
    col[word] = top ? (int32_t)((old & 0xFFFFU) | ((uint32_t)v << 16))
                    : (int32_t)((old & 0xFFFF0000U) | ((uint32_t)v & 0xFFFFU));
}

/* Column j of the window at (y0, x0) when C_IN % 4 == 0: whole words per tap. */
static void im2col_aligned(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                           const tp_dims *f_d, int32_t y0, int32_t x0, int32_t *col)
{
    const int32_t c = in_d->c;
    const int32_t row_inside = p->dilation.w == 1 && x0 >= 0 && x0 + f_d->w <= in_d->w;
    for (int32_t ky = 0; ky < f_d->h; ++ky) {
        const int32_t iy = y0 + ky * p->dilation.h;
        if (iy >= 0 && iy < in_d->h && row_inside) {
            col = tp_widen_s8x4_pairs(in + (iy * in_d->w + x0) * c, f_d->w * c, p->input_offset, col, 4);
            continue;
        }
        for (int32_t kx = 0; kx < f_d->w; ++kx) {
            const int32_t ix = x0 + kx * p->dilation.w;
            if (iy < 0 || iy >= in_d->h || ix < 0 || ix >= in_d->w) {
                for (int32_t g = c >> 2; g > 0; --g, col += 4) {
                    col[0] = 0, col[1] = 0;
                }
            } else {
                col = tp_widen_s8x4_pairs(in + (iy * in_d->w + ix) * c, c, p->input_offset, col, 4);
            }
        }
    }
}

/* Column j of the window at (y0, x0), any C_IN: bytes are gathered four at a time (padding as
 * the input zero point, which the offset turns into 0), then widened as one word. */
static void im2col_any(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                       const tp_dims *f_d, int32_t y0, int32_t x0, int32_t *col, int32_t j)
{
    const int32_t c = in_d->c;
    const int32_t n = f_d->h * f_d->w * c;
    const int8_t pad = (int8_t)-p->input_offset;
    int8_t quad[4];
    int32_t k = 0, fill = 0;
    int32_t *dst = col + 2 * j;
    for (int32_t ky = 0; ky < f_d->h; ++ky) {
        const int32_t iy = y0 + ky * p->dilation.h;
        for (int32_t kx = 0; kx < f_d->w; ++kx) {
            const int32_t ix = x0 + kx * p->dilation.w;
            const int inside = iy >= 0 && iy < in_d->h && ix >= 0 && ix < in_d->w;
            const int8_t *src = inside ? in + (iy * in_d->w + ix) * c : NULL;
            for (int32_t ci = 0; ci < c; ++ci, ++k) {
                quad[fill] = src ? src[ci] : pad;
                if (++fill == 4) {
                    dst = tp_widen_s8x4_pairs(quad, 4, p->input_offset, dst, 4);
                    fill = 0;
                }
            }
        }
    }
    for (int32_t t = 0; t < fill; ++t) {
        col_set(col, n, j, k - fill + t, quad[t] + p->input_offset);
    }
}

static void im2col(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                   const tp_dims *f_d, int32_t y0, int32_t x0, int32_t *col, int32_t j)
{
    if ((in_d->c & 3) == 0) {
        im2col_aligned(p, in_d, in, f_d, y0, x0, col + 2 * j);
    } else {
        im2col_any(p, in_d, in, f_d, y0, x0, col, j);
    }
}

/* Filter rows w0 and w0 + n x both columns: acc = (row0,col0) (row0,col1) (row1,col0) (row1,col1). */
static void dot_2x2(const int8_t *w0, int32_t n, const int32_t *col, int32_t acc[4])
{
    const int8_t *w1 = w0 + n;
    const int32_t *end = col + 4 * (n >> 2);
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    while (col != end) {
        const int32_t wa = tp_read_s8x4(w0), wb = tp_read_s8x4(w1);
        int32_t we = tp_sxtb16(wa);
        a00 = tp_smlad(we, col[0], a00);
        a01 = tp_smlad(we, col[2], a01);
        we = tp_sxtb16(wb);
        a10 = tp_smlad(we, col[0], a10);
        a11 = tp_smlad(we, col[2], a11);
        we = tp_sxtb16_ror8(wa);
        a00 = tp_smlad(we, col[1], a00);
        a01 = tp_smlad(we, col[3], a01);
        we = tp_sxtb16_ror8(wb);
        a10 = tp_smlad(we, col[1], a10);
        a11 = tp_smlad(we, col[3], a11);
        w0 += 4, w1 += 4, col += 4;
    }
    for (int32_t t = 0; t < (n & 3); ++t) {
        const int32_t x = col[t];
        a00 = tp_wrap_mac(a00, w0[t], tp_lo16(x)), a01 = tp_wrap_mac(a01, w0[t], tp_hi16(x));
        a10 = tp_wrap_mac(a10, w1[t], tp_lo16(x)), a11 = tp_wrap_mac(a11, w1[t], tp_hi16(x));
    }
    acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

/* One filter row x both columns. */
static void dot_1x2(const int8_t *w, int32_t n, const int32_t *col, int32_t acc[2])
{
    const int32_t *end = col + 4 * (n >> 2);
    int32_t a0 = acc[0], a1 = acc[1];
    while (col != end) {
        const int32_t wa = tp_read_s8x4(w);
        const int32_t we = tp_sxtb16(wa), wo = tp_sxtb16_ror8(wa);
        a0 = tp_smlad(we, col[0], a0);
        a1 = tp_smlad(we, col[2], a1);
        a0 = tp_smlad(wo, col[1], a0);
        a1 = tp_smlad(wo, col[3], a1);
        w += 4, col += 4;
    }
    for (int32_t t = 0; t < (n & 3); ++t) {
        a0 = tp_wrap_mac(a0, w[t], tp_lo16(col[t])), a1 = tp_wrap_mac(a1, w[t], tp_hi16(col[t]));
    }
    acc[0] = a0, acc[1] = a1;
}

/* All output channels of the two columns (out1 == NULL: column 1 is padding, not stored). */
static void matmul_cols(const tp_conv_params *p, const tp_per_channel_quant *q, int32_t c_out,
                        const int8_t *filter, const int32_t *bias, const int32_t *col, int32_t n,
                        int8_t *out0, int8_t *out1)
{
    int32_t o = 0;
    for (; o + 2 <= c_out; o += 2) {
        const int32_t b0 = bias ? bias[o] : 0, b1 = bias ? bias[o + 1] : 0;
        int32_t acc[4] = {b0, b0, b1, b1};
        dot_2x2(filter + o * n, n, col, acc);
        out0[o] = conv_out(acc[0], q->multiplier[o], q->shift[o], p);
        out0[o + 1] = conv_out(acc[2], q->multiplier[o + 1], q->shift[o + 1], p);
        if (out1 != NULL) {
            out1[o] = conv_out(acc[1], q->multiplier[o], q->shift[o], p);
            out1[o + 1] = conv_out(acc[3], q->multiplier[o + 1], q->shift[o + 1], p);
        }
    }
    if (o < c_out) {
        const int32_t b = bias ? bias[o] : 0;
        int32_t acc[2] = {b, b};
        dot_1x2(filter + o * n, n, col, acc);
        out0[o] = conv_out(acc[0], q->multiplier[o], q->shift[o], p);
        if (out1 != NULL) {
            out1[o] = conv_out(acc[1], q->multiplier[o], q->shift[o], p);
        }
    }
}

static void conv_dsp(const tp_context *ctx, const tp_conv_params *p, const tp_per_channel_quant *q,
                     const tp_dims *in_d, const int8_t *in, const tp_dims *f_d, const int8_t *filter,
                     const int32_t *bias, const tp_dims *out_d, int8_t *out)
{
    const int32_t n = f_d->h * f_d->w * f_d->c;
    const int32_t c_out = out_d->c;
    int32_t *col = (int32_t *)ctx->buf;
    int32_t filled = 0;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                im2col(p, in_d, in_b, f_d, y0, ox * p->stride.w - p->padding.w, col, filled);
                if (++filled == 2) {
                    matmul_cols(p, q, c_out, filter, bias, col, n, out, out + c_out);
                    out += 2 * c_out;
                    filled = 0;
                }
            }
        }
    }
    if (filled == 1) {
        /* a window entirely in the padding gives column 1 all zeros */
        im2col(p, in_d, in, f_d, -(f_d->h * p->dilation.h), 0, col, 1);
        matmul_cols(p, q, c_out, filter, bias, col, n, out, NULL);
    }
}

#else /* portable C */

/* Accumulates one output channel over the window at (y0, x0). */
static int32_t window_dot(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                          const tp_dims *f_d, const int8_t *w, int32_t y0, int32_t x0)
{
    const int32_t c = in_d->c;
    int32_t acc = 0;
    for (int32_t ky = 0; ky < f_d->h; ++ky) {
        const int32_t iy = y0 + ky * p->dilation.h;
        for (int32_t kx = 0; kx < f_d->w; ++kx, w += c) {
            const int32_t ix = x0 + kx * p->dilation.w;
            if (iy < 0 || iy >= in_d->h || ix < 0 || ix >= in_d->w) {
                continue;
            }
            const int8_t *x = in + (iy * in_d->w + ix) * c;
            for (int32_t ci = 0; ci < c; ++ci) {
                acc = tp_wrap_mac(acc, w[ci], x[ci] + p->input_offset);
            }
        }
    }
    return acc;
}

static void conv_portable(const tp_conv_params *p, const tp_per_channel_quant *q,
                          const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                          const int8_t *filter, const int32_t *bias, const tp_dims *out_d,
                          int8_t *out)
{
    const int32_t n = f_d->h * f_d->w * f_d->c;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                const int32_t x0 = ox * p->stride.w - p->padding.w;
                for (int32_t o = 0; o < out_d->c; ++o) {
                    int32_t acc = window_dot(p, in_d, in_b, f_d, filter + o * n, y0, x0);
                    acc = tp_wrap_add(acc, bias ? bias[o] : 0);
                    *out++ = conv_out(acc, q->multiplier[o], q->shift[o], p);
                }
            }
        }
    }
}

#endif /* TP_USE_DSP */

int32_t tp_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
#if TP_USE_DSP
    (void)input_dims;
    return 2 * filter_dims->h * filter_dims->w * filter_dims->c * (int32_t)sizeof(int16_t);
#else
    (void)input_dims;
    (void)filter_dims;
    return 0;
#endif
}

tp_status tp_conv_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                     const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                     const int8_t *input, const tp_dims *filter_dims, const int8_t *filter,
                     const tp_dims *bias_dims, const int32_t *bias, const tp_dims *output_dims,
                     int8_t *output)
{
    (void)bias_dims;
    if (filter_dims->c != input_dims->c || filter_dims->n != output_dims->c ||
        input_dims->n != output_dims->n) {
        return TP_ERR_ARG;
    }
#if TP_USE_DSP
    const int32_t need = tp_conv_s8_get_buffer_size(input_dims, filter_dims);
    if (ctx == NULL || ctx->buf == NULL || ctx->size < need) {
        return TP_ERR_ARG;
    }
    conv_dsp(ctx, conv_params, quant_params, input_dims, input, filter_dims, filter, bias,
             output_dims, output);
#else
    (void)ctx;
    conv_portable(conv_params, quant_params, input_dims, input, filter_dims, filter, bias,
                  output_dims, output);
#endif
    return TP_OK;
}
