/*
 * tinyprune runtime: int8 DEPTHWISE_CONV_2D, bit-exact with TFLM
 * reference_integer_ops::DepthwiseConvPerChannel (depth multiplier, dilation).
 *
 * Both paths first clip the window of each output pixel to the taps inside the image, so the
 * inner loops carry no bounds checks. DSP path (depth multiplier 1): four channels per step,
 * one input and one filter word per tap, two SXTB16 each, input offset added with SADD16, and
 * one SMLABB/SMLATT per channel. Other depth multipliers take the portable loop.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* First and one-past-last filter index whose tap origin + k * dil lies in [0, size). */
static void tap_range(int32_t origin, int32_t size, int32_t taps, int32_t dil, int32_t *lo, int32_t *hi)
{
    const int32_t first = origin < 0 ? (-origin + dil - 1) / dil : 0;
    const int32_t last = size - 1 - origin < 0 ? 0 : (size - 1 - origin) / dil + 1;
    *lo = first;
    *hi = TP_MIN(taps, last);
}

/* The clipped window of one output pixel: first valid tap and the steps between taps. */
typedef struct {
    const int8_t *x;     /* input at the first valid tap, channel 0 */
    const int8_t *w;     /* filter at the first valid tap, channel 0 */
    int32_t rows, cols;  /* valid taps: rows x cols (either may be 0) */
    int32_t x_col, x_row; /* input step to the next tap in a row / to the next row's first tap */
    int32_t w_col, w_row; /* the same for the filter */
} dw_window;

static inline int8_t dw_out(int32_t acc, const tp_per_channel_quant *q, int32_t o,
                            const tp_dw_conv_params *p)
{
    acc = tp_wrap_add(tp_requantize_pos(acc, q->multiplier[o], q->shift[o]), p->output_offset);
    return (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
}

/* Output channels [o_begin, C_OUT) of one pixel, any depth multiplier. */
static void dw_pixel_any(const tp_dw_conv_params *p, const tp_per_channel_quant *q,
                         const int32_t *bias, const dw_window *win, int32_t o_begin,
                         int32_t c_out, int8_t *out)
{
    for (int32_t o = o_begin; o < c_out; ++o) {
        const int8_t *x = win->x + o / p->ch_mult;
        const int8_t *w = win->w + o;
        int32_t acc = bias ? bias[o] : 0;
        for (int32_t r = win->rows; r > 0; --r) {
            for (int32_t k = 0; k < win->cols; ++k) {
                acc = tp_wrap_mac(acc, w[k * win->w_col], x[k * win->x_col] + p->input_offset);
            }
            x += win->x_row;
            w += win->w_row;
        }
        out[o] = dw_out(acc, q, o, p);
    }
}

#if TP_USE_DSP

/* One tap of four channels: a[i] += w[c + i] * (x[c + i] + offset). */
static inline void dw_tap4(const int8_t *x, const int8_t *w, int32_t offset2, int32_t a[4])
{
    const int32_t xv = tp_read_s8x4(x), wv = tp_read_s8x4(w);
    const int32_t xe = tp_sadd16(tp_sxtb16(xv), offset2);
    const int32_t xo = tp_sadd16(tp_sxtb16_ror8(xv), offset2);
    const int32_t we = tp_sxtb16(wv), wo = tp_sxtb16_ror8(wv);
    a[0] = tp_smlabb(xe, we, a[0]);
    a[2] = tp_smlatt(xe, we, a[2]);
    a[1] = tp_smlabb(xo, wo, a[1]);
    a[3] = tp_smlatt(xo, wo, a[3]);
}

/* Four channels over the window; rows of three taps (3x3 filters) are unrolled. */
static void dw_window4(const dw_window *win, const int8_t *x, const int8_t *w, int32_t offset2,
                       int32_t a[4])
{
    const int32_t xc = win->x_col, wc = win->w_col;
    if (win->cols == 3) {
        for (int32_t r = win->rows; r > 0; --r) {
            dw_tap4(x, w, offset2, a);
            dw_tap4(x + xc, w + wc, offset2, a);
            dw_tap4(x + 2 * xc, w + 2 * wc, offset2, a);
            x += win->x_row;
            w += win->w_row;
        }
        return;
    }
    for (int32_t r = win->rows; r > 0; --r) {
        for (int32_t k = 0; k < win->cols; ++k) {
            dw_tap4(x + k * xc, w + k * wc, offset2, a);
        }
        x += win->x_row;
        w += win->w_row;
    }
}

/* Channels [0, C & ~3) of one pixel, depth multiplier 1; returns the first channel not done. */
static int32_t dw_pixel_mult1(const tp_dw_conv_params *p, const tp_per_channel_quant *q,
                              const int32_t *bias, const dw_window *win, int32_t c_n, int8_t *out)
{
    const int32_t offset2 = tp_pack16(p->input_offset, p->input_offset);
    int32_t c = 0;
    for (; c + 4 <= c_n; c += 4) {
        int32_t a[4] = {0, 0, 0, 0};
        if (bias) {
            a[0] = bias[c], a[1] = bias[c + 1], a[2] = bias[c + 2], a[3] = bias[c + 3];
        }
        dw_window4(win, win->x + c, win->w + c, offset2, a);
        out[c] = dw_out(a[0], q, c, p);
        out[c + 1] = dw_out(a[1], q, c + 1, p);
        out[c + 2] = dw_out(a[2], q, c + 2, p);
        out[c + 3] = dw_out(a[3], q, c + 3, p);
    }
    return c;
}

#endif /* TP_USE_DSP */

static void dw_pixel(const tp_dw_conv_params *p, const tp_per_channel_quant *q,
                     const tp_dims *in_d, const int32_t *bias, const dw_window *win,
                     int32_t c_out, int8_t *out)
{
    int32_t done = 0;
#if TP_USE_DSP
    if (p->ch_mult == 1) {
        done = dw_pixel_mult1(p, q, bias, win, in_d->c, out);
    }
#else
    (void)in_d;
#endif
    dw_pixel_any(p, q, bias, win, done, c_out, out);
}

int32_t tp_depthwise_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
    (void)filter_dims;
    return 0;
}

tp_status tp_depthwise_conv_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                               const tp_per_channel_quant *quant_params,
                               const tp_dims *input_dims, const int8_t *input,
                               const tp_dims *filter_dims, const int8_t *filter,
                               const tp_dims *bias_dims, const int32_t *bias,
                               const tp_dims *output_dims, int8_t *output)
{
    (void)ctx;
    (void)bias_dims;
    const tp_dw_conv_params *p = dw_params;
    if (p->ch_mult < 1 || filter_dims->c != input_dims->c * p->ch_mult ||
        output_dims->c != filter_dims->c || input_dims->n != output_dims->n) {
        return TP_ERR_ARG;
    }
    const tp_dims *in_d = input_dims, *f_d = filter_dims;
    const int32_t c_in = in_d->c, c_out = f_d->c;
    dw_window win;
    win.x_col = p->dilation.w * c_in;
    win.w_col = c_out;
    win.x_row = p->dilation.h * in_d->w * c_in;
    win.w_row = f_d->w * c_out;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = input + b * in_d->h * in_d->w * c_in;
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            int32_t ky0, ky1;
            tap_range(y0, in_d->h, f_d->h, p->dilation.h, &ky0, &ky1);
            for (int32_t ox = 0; ox < output_dims->w; ++ox) {
                const int32_t x0 = ox * p->stride.w - p->padding.w;
                int32_t kx0, kx1;
                tap_range(x0, in_d->w, f_d->w, p->dilation.w, &kx0, &kx1);
                win.rows = TP_MAX(ky1 - ky0, 0);
                win.cols = TP_MAX(kx1 - kx0, 0);
                if (win.rows > 0 && win.cols > 0) {
                    win.x = in_b + ((y0 + ky0 * p->dilation.h) * in_d->w + x0 + kx0 * p->dilation.w) * c_in;
                    win.w = filter + (ky0 * f_d->w + kx0) * c_out;
                } else {
                    win.rows = 0, win.x = in_b, win.w = filter;
                }
                dw_pixel(p, quant_params, in_d, bias, &win, c_out, output);
                output += c_out;
            }
        }
    }
    return TP_OK;
}
