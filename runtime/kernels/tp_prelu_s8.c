/*
 * tinyprune: PRELU, int8, the alpha tensor broadcast. Bit-exact with TFLM
 * reference_ops::BroadcastPrelu4DSlow: x >= 0 requantized with multiplier 1, x < 0 multiplied by
 * (alpha - alpha zero point) and requantized with multiplier 2.
 */
#include "tp_nn_elementwise.h"
#include "tp_nn_support.h"

static inline int8_t prelu_one(const tp_prelu_params *p, int32_t x, int32_t alpha)
{
    const int32_t value = p->input_offset + x;
    int32_t out;
    if (value >= 0) {
        out = tp_requantize(value, p->multiplier_1, p->shift_1);
    } else {
        out = tp_requantize(value * (p->alpha_offset + alpha), p->multiplier_2, p->shift_2);
    }
    out += p->output_offset;
    return (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
}

tp_status tp_prelu_s8(const tp_prelu_params *params,
                      const tp_dims *input_dims,
                      const int8_t *input,
                      const tp_dims *alpha_dims,
                      const int8_t *alpha,
                      const tp_dims *output_dims,
                      int8_t *output)
{
    int32_t s1[4];
    int32_t s2[4];
    if (!tp_broadcast_strides(input_dims, output_dims, s1) ||
        !tp_broadcast_strides(alpha_dims, output_dims, s2)) {
        return TP_ERR_ARG;
    }
    const tp_dims *o = output_dims;
    for (int32_t n = 0; n < o->n; ++n) {
        for (int32_t h = 0; h < o->h; ++h) {
            for (int32_t w = 0; w < o->w; ++w) {
                const int8_t *a = input + n * s1[0] + h * s1[1] + w * s1[2];
                const int8_t *b = alpha + n * s2[0] + h * s2[1] + w * s2[2];
                for (int32_t c = 0; c < o->c; ++c) {
                    *output++ = prelu_one(params, a[c * s1[3]], b[c * s2[3]]);
                }
            }
        }
    }
    return TP_OK;
}
