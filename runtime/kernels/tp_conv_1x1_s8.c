/*
 * tinyprune runtime: int8 CONV_2D with a 1x1 filter and no padding, as a matrix multiply.
 *
 * The input offset is folded into the bias by the code generator (see tp_nn_conv.h), so the
 * inner loops multiply raw int8 values: output pixel i is the dot product of its C_IN input
 * bytes (contiguous, NHWC) with each filter row. DSP path: two pixels x two output channels per
 * step (tp_dot_s8_2x2: 16 MACs per four word loads), one requantization per output.
 * Portable path: the same loops one output at a time.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

static inline int8_t out_s8(int32_t acc, const tp_per_channel_quant *q, int32_t o,
                            const tp_conv_params *p)
{
    acc = tp_requantize_pos(acc, q->multiplier[o], q->shift[o]) + p->output_offset;
    return (int8_t)tp_clamp(acc, p->activation.min, p->activation.max);
}

/* The raw dot products w[k] * x[k] for k in [from, n) of rows w0, w1 and columns x0, x1. */
static inline void dot_tail(const int8_t *w0, const int8_t *w1, const int8_t *x0,
                            const int8_t *x1, int32_t from, int32_t n, int32_t acc[4])
{
    for (int32_t k = from; k < n; ++k) {
        acc[0] += w0[k] * x0[k], acc[1] += w0[k] * x1[k];
        acc[2] += w1[k] * x0[k], acc[3] += w1[k] * x1[k];
    }
}

/*
 * All output channels of the pixels x0 and x1 (out1 == NULL: only x0; x1 may equal x0).
 * An odd last channel runs as the pair (o, o) with the second result dropped.
 */
static void pixels2(const tp_conv_params *p, const tp_per_channel_quant *q, const int8_t *filter,
                    const int32_t *bias, int32_t n, int32_t c_out, const int8_t *x0,
                    const int8_t *x1, int8_t *out0, int8_t *out1)
{
    for (int32_t o = 0; o < c_out; o += 2) {
        const int32_t o1 = o + 1 < c_out ? o + 1 : o;
        const int8_t *w0 = filter + o * n, *w1 = filter + o1 * n;
        const int32_t b0 = bias ? bias[o] : 0, b1 = bias ? bias[o1] : 0;
        int32_t acc[4] = {b0, b0, b1, b1};
#if TP_USE_DSP
        tp_dot_s8_2x2(w0, (int32_t)(w1 - w0), x0, (int32_t)(x1 - x0), n >> 2, acc);
        dot_tail(w0, w1, x0, x1, n & ~3, n, acc);
#else
        dot_tail(w0, w1, x0, x1, 0, n, acc);
#endif
        out0[o] = out_s8(acc[0], q, o, p);
        if (out1 != NULL) {
            out1[o] = out_s8(acc[1], q, o, p);
        }
        if (o1 != o) {
            out0[o1] = out_s8(acc[2], q, o1, p);
            if (out1 != NULL) {
                out1[o1] = out_s8(acc[3], q, o1, p);
            }
        }
    }
}

int32_t tp_conv_1x1_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
    (void)filter_dims;
    return 0;
}

static int shapes_ok(const tp_conv_params *p, const tp_dims *in_d, const tp_dims *f_d,
                     const tp_dims *out_d)
{
    return f_d->h == 1 && f_d->w == 1 && f_d->c == in_d->c && f_d->n == out_d->c &&
           in_d->n == out_d->n && p->padding.w == 0 && p->padding.h == 0 && p->stride.w >= 1 &&
           p->stride.h >= 1 && (out_d->h - 1) * p->stride.h < in_d->h &&
           (out_d->w - 1) * p->stride.w < in_d->w;
}

tp_status tp_conv_1x1_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                         const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                         const int8_t *input, const tp_dims *filter_dims, const int8_t *filter,
                         const tp_dims *bias_dims, const int32_t *bias,
                         const tp_dims *output_dims, int8_t *output)
{
    (void)ctx;
    (void)bias_dims;
    const tp_conv_params *p = conv_params;
    const tp_dims *in_d = input_dims, *out_d = output_dims;
    if (!shapes_ok(p, in_d, filter_dims, out_d)) {
        return TP_ERR_ARG;
    }
    const int32_t n = in_d->c, c_out = out_d->c;
    const int8_t *pending = NULL; /* a pixel waiting for its partner */
    int8_t *pending_out = NULL;
    for (int32_t b = 0; b < out_d->n; ++b) {
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int8_t *x = input + (b * in_d->h + oy * p->stride.h) * in_d->w * n;
            for (int32_t ox = 0; ox < out_d->w; ++ox, x += p->stride.w * n, output += c_out) {
                if (pending == NULL) {
                    pending = x, pending_out = output;
                } else {
                    pixels2(p, quant_params, filter, bias, n, c_out, pending, x, pending_out, output);
                    pending = NULL;
                }
            }
        }
    }
    if (pending != NULL) {
        pixels2(p, quant_params, filter, bias, n, c_out, pending, pending, pending_out, NULL);
    }
    return TP_OK;
}
