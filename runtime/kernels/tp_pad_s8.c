/*
 * tinyprune: PAD / PADV2 (constant), int8. Bit-exact with TFLM reference_ops::Pad: every output
 * element is the input element it maps to, or the pad value.
 */
#include <string.h>

#include "tp_nn_support.h"
#include "tp_nn_tensor.h"

static int pad_args_ok(const tp_pad_params *p, const tp_dims *in, const tp_dims *out)
{
    const tp_dims *b = &p->before;
    const tp_dims *a = &p->after;
    return b->n >= 0 && b->h >= 0 && b->w >= 0 && b->c >= 0 && a->n >= 0 && a->h >= 0 &&
           a->w >= 0 && a->c >= 0 && in->n >= 0 && in->h >= 0 && in->w >= 0 && in->c >= 0 &&
           out->n == in->n + b->n + a->n && out->h == in->h + b->h + a->h &&
           out->w == in->w + b->w + a->w && out->c == in->c + b->c + a->c &&
           p->pad_value >= INT8_MIN && p->pad_value <= INT8_MAX;
}

tp_status tp_pad_s8(const tp_pad_params *params,
                    const tp_dims *input_dims,
                    const int8_t *input,
                    const tp_dims *output_dims,
                    int8_t *output)
{
    if (!pad_args_ok(params, input_dims, output_dims)) {
        return TP_ERR_ARG;
    }
    const tp_dims *b = &params->before;
    const int value = params->pad_value;
    const size_t out_c = (size_t)output_dims->c;
    for (int32_t n = 0; n < output_dims->n; ++n) {
        const int32_t in_n = n - b->n;
        for (int32_t h = 0; h < output_dims->h; ++h) {
            const int32_t in_h = h - b->h;
            for (int32_t w = 0; w < output_dims->w; ++w) {
                const int32_t in_w = w - b->w;
                if (in_n < 0 || in_n >= input_dims->n || in_h < 0 || in_h >= input_dims->h ||
                    in_w < 0 || in_w >= input_dims->w) {
                    memset(output, value, out_c);
                } else {
                    const size_t pixel = ((size_t)in_n * input_dims->h + (size_t)in_h) * input_dims->w + (size_t)in_w;
                    memset(output, value, (size_t)b->c);
                    memcpy(output + b->c, input + pixel * input_dims->c, (size_t)input_dims->c);
                    memset(output + b->c + input_dims->c, value, (size_t)params->after.c);
                }
                output += out_c;
            }
        }
    }
    return TP_OK;
}
