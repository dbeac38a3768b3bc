/*
 * tinyprune runtime: int8 CONV_2D for any filter, as an int8 im2col plus the 1x1 kernel.
 *
 * The input offset is folded into the bias by the code generator (see tp_nn_conv.h), so the
 * im2col copies raw input bytes (whole rows of taps at once), fills the padding with the input
 * zero point (which the folded bias turns into a zero contribution) and pads each column with 0
 * to n4 = KH * KW * C_IN rounded up to a multiple of 4; the filter rows come padded the same way.
 * TP_CONV_PACKED_COLS columns are gathered at a time and multiplied by tp_conv_1x1_s8 as a 1 x
 * cols image with n4 channels; both of its paths (portable and DSP) apply.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* Copies n bytes, a word at a time while it can (unaligned words are fine from Cortex-M3 up). */
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

static void fill_s8(int8_t *dst, int8_t v, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = v;
    }
}

/* Column of the window at (y0, x0): n4 bytes at col. */
static void im2col_s8(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                      const tp_dims *f_d, int32_t y0, int32_t x0, int8_t *col, int32_t n4)
{
    const int32_t c = in_d->c, row = f_d->w * c;
    const int8_t zp = (int8_t)-p->input_offset;
    const int row_inside = p->dilation.w == 1 && x0 >= 0 && x0 + f_d->w <= in_d->w;
    int8_t *dst = col;
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
}

static int32_t packed_depth(const tp_dims *filter_dims)
{
    return (filter_dims->h * filter_dims->w * filter_dims->c + 3) & ~3;
}

int32_t tp_conv_packed_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
    return TP_CONV_PACKED_COLS * packed_depth(filter_dims);
}

/* Multiplies the first cols columns of the buffer into cols output pixels. */
static tp_status flush(const tp_conv_params *p, const tp_per_channel_quant *q, const int8_t *col,
                       int32_t cols, int32_t n4, const int8_t *filter, const int32_t *bias,
                       int32_t c_out, int8_t *out)
{
    tp_conv_params p1 = *p;
    p1.stride.w = p1.stride.h = 1;
    p1.padding.w = p1.padding.h = 0;
    const tp_dims in_d = {1, 1, cols, n4}, f_d = {c_out, 1, 1, n4}, out_d = {1, 1, cols, c_out};
    return tp_conv_1x1_s8(NULL, &p1, q, &in_d, col, &f_d, filter, NULL, bias, &out_d, out);
}

tp_status tp_conv_packed_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                            const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                            const int8_t *input, const tp_dims *filter_dims, const int8_t *filter,
                            const tp_dims *bias_dims, const int32_t *bias,
                            const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const tp_conv_params *p = conv_params;
    const tp_dims *in_d = input_dims, *f_d = filter_dims, *out_d = output_dims;
    const int32_t n4 = packed_depth(f_d), c_out = out_d->c;
    if (f_d->c != in_d->c || f_d->n != c_out || in_d->n != out_d->n || ctx == NULL ||
        ctx->buf == NULL || ctx->size < tp_conv_packed_s8_get_buffer_size(in_d, f_d)) {
        return TP_ERR_ARG;
    }
    int8_t *col = (int8_t *)ctx->buf;
    int32_t cols = 0;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = input + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                im2col_s8(p, in_d, in_b, f_d, y0, ox * p->stride.w - p->padding.w,
                          col + cols * n4, n4);
                if (++cols == TP_CONV_PACKED_COLS) {
                    (void)flush(p, quant_params, col, cols, n4, filter, bias, c_out, output);
                    output += cols * c_out;
                    cols = 0;
                }
            }
        }
    }
    if (cols > 0) {
        (void)flush(p, quant_params, col, cols, n4, filter, bias, c_out, output);
    }
    return TP_OK;
}
