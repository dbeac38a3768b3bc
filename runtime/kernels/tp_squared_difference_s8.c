/*
 * tinyprune: SQUARED_DIFFERENCE, int8, with broadcasting. Bit-exact with TFLM
 * squared_difference.cc: each input scaled to 2^7 * 2 * max scale, subtracted, squared in int32,
 * requantized to the output.
 */
#include "tp_nn_elementwise.h"
#include "tp_nn_support.h"

static inline int8_t squared_difference_one(const tp_squared_difference_params *p, int32_t x,
                                            int32_t y)
{
    const int32_t a = (int32_t)((uint32_t)(x + p->input1_offset) << p->left_shift);
    const int32_t b = (int32_t)((uint32_t)(y + p->input2_offset) << p->left_shift);
    const int32_t diff = tp_requantize(a, p->input1_multiplier, p->input1_shift) -
                         tp_requantize(b, p->input2_multiplier, p->input2_shift);
    const int32_t square = (int32_t)((uint32_t)diff * (uint32_t)diff);
    const int32_t out = tp_requantize(square, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)TP_CLAMP(out, p->activation.min, p->activation.max);
}

tp_status tp_squared_difference_s8(const tp_squared_difference_params *params,
                                   const tp_dims *input1_dims,
                                   const int8_t *input1,
                                   const tp_dims *input2_dims,
                                   const int8_t *input2,
                                   const tp_dims *output_dims,
                                   int8_t *output)
{
    int32_t s1[4];
    int32_t s2[4];
    if (!tp_broadcast_strides(input1_dims, output_dims, s1) ||
        !tp_broadcast_strides(input2_dims, output_dims, s2) ||
        params->left_shift < 0 || params->left_shift > 15) {
        return TP_ERR_ARG;
    }
    const tp_dims *o = output_dims;
    for (int32_t n = 0; n < o->n; ++n) {
        for (int32_t h = 0; h < o->h; ++h) {
            for (int32_t w = 0; w < o->w; ++w) {
                const int8_t *a = input1 + n * s1[0] + h * s1[1] + w * s1[2];
                const int8_t *b = input2 + n * s2[0] + h * s2[1] + w * s2[2];
                for (int32_t c = 0; c < o->c; ++c) {
                    *output++ = squared_difference_one(params, a[c * s1[3]], b[c * s2[3]]);
                }
            }
        }
    }
    return TP_OK;
}
