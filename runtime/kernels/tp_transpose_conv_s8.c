/*
 * tinyprune: TRANSPOSE_CONV, int8, per-channel requantization. Bit-exact with TFLM
 * reference_integer_ops::TransposeConv, computed as a gather (tp_nn_transpose_conv.h): each
 * output value sums, over the filter taps that reach it from inside the input, the dot product
 * of the input pixel (plus the input offset) with the tap's filter row.
 */
#include "tp_dsp.h"
#include "tp_nn_support.h"
#include "tp_nn_transpose_conv.h"

int32_t tp_transpose_conv_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
    (void)filter_dims;
    return 0;
}

/* sum of (x[i] + offset) * w[i] over n values. */
static int32_t dot_offset(const int8_t *x, const int8_t *w, int32_t n, int32_t offset)
{
    int32_t acc = 0;
    int32_t i = 0;
#if TP_USE_DSP
    const int32_t offset2 = (int32_t)(((uint32_t)offset & 0xFFFFU) | ((uint32_t)offset << 16));
    for (; i + 4 <= n; i += 4) {
        const int32_t xw = tp_read_s8x4(x + i);
        const int32_t ww = tp_read_s8x4(w + i);
        acc = tp_smlad(tp_sadd16(tp_sxtb16(xw), offset2), tp_sxtb16(ww), acc);
        acc = tp_smlad(tp_sadd16(tp_sxtb16_ror8(xw), offset2), tp_sxtb16_ror8(ww), acc);
    }
#endif
    for (; i < n; ++i) {
        acc += ((int32_t)x[i] + offset) * (int32_t)w[i];
    }
    return acc;
}


/* The taps (ky, kx) reaching output (y, x) are those with y + pad_h - ky a multiple of the
 * stride inside the input: ky steps by the stride from (y + pad_h) % stride_h. */
static int32_t sum_taps(const tp_transpose_conv_params *p, const tp_dims *in, const int8_t *image,
                        const tp_dims *f, const int8_t *filter_o, int32_t y, int32_t x)
{
    const int32_t sh = p->stride.h;
    const int32_t sw = p->stride.w;
    const int32_t oy = y + p->padding.h;
    const int32_t ox = x + p->padding.w;
    int32_t acc = 0;
    for (int32_t ky = oy % sh; ky < f->h && ky <= oy; ky += sh) {
        const int32_t iy = (oy - ky) / sh;
        if (iy >= in->h) {
            continue;
        }
        const int8_t *row = image + iy * in->w * in->c;
        const int8_t *taps = filter_o + ky * f->w * f->c;
        for (int32_t kx = ox % sw; kx < f->w && kx <= ox; kx += sw) {
            const int32_t ix = (ox - kx) / sw;
            if (ix < in->w) {
                acc += dot_offset(row + ix * in->c, taps + kx * f->c, f->c, p->input_offset);
            }
        }
    }
    return acc;
}

tp_status tp_transpose_conv_s8(const tp_context *ctx,
                               const tp_transpose_conv_params *conv_params,
                               const tp_per_channel_quant *quant_params,
                               const tp_dims *input_dims,
                               const int8_t *input,
                               const tp_dims *filter_dims,
                               const int8_t *filter,
                               const tp_dims *bias_dims,
                               const int32_t *bias,
                               const tp_dims *output_dims,
                               int8_t *output)
{
    (void)ctx;
    (void)bias_dims;
    const tp_transpose_conv_params *p = conv_params;
    const tp_dims *in = input_dims;
    const tp_dims *f = filter_dims;
    const tp_dims *o = output_dims;
    if (in->n != o->n || in->c != f->c || f->n != o->c || p->stride.w < 1 || p->stride.h < 1 ||
        p->padding.w < 0 || p->padding.h < 0) {
        return TP_ERR_ARG;
    }
    const int32_t filter_row = f->h * f->w * f->c;
    for (int32_t n = 0; n < o->n; ++n) {
        const int8_t *image = input + n * in->h * in->w * in->c;
        for (int32_t y = 0; y < o->h; ++y) {
            for (int32_t x = 0; x < o->w; ++x) {
                for (int32_t oc = 0; oc < o->c; ++oc) {
                    int32_t acc = sum_taps(p, in, image, f, filter + oc * filter_row, y, x);
                    if (bias != NULL) {
                        acc += bias[oc];
                    }
                    acc = tp_requantize(acc, quant_params->multiplier[oc], quant_params->shift[oc]) +
                          p->output_offset;
                    *output++ = (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
                }
            }
        }
    }
    return TP_OK;
}
