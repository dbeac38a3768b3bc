/*
 * tinyprune: MINIMUM, int8, with broadcasting. Bit-exact with TFLM
 * reference_ops::MaximumMinimumBroadcastSlow: the smaller raw value (inputs and output share one
 * quantization, which the TFLite converter guarantees and tinyprune checks).
 */
#include "tp_nn_elementwise.h"

tp_status tp_minimum_s8(const tp_dims *input1_dims,
                        const int8_t *input1,
                        const tp_dims *input2_dims,
                        const int8_t *input2,
                        const tp_dims *output_dims,
                        int8_t *output)
{
    int32_t s1[4];
    int32_t s2[4];
    if (!tp_broadcast_strides(input1_dims, output_dims, s1) ||
        !tp_broadcast_strides(input2_dims, output_dims, s2)) {
        return TP_ERR_ARG;
    }
    const tp_dims *o = output_dims;
    for (int32_t n = 0; n < o->n; ++n) {
        for (int32_t h = 0; h < o->h; ++h) {
            for (int32_t w = 0; w < o->w; ++w) {
                const int8_t *a = input1 + n * s1[0] + h * s1[1] + w * s1[2];
                const int8_t *b = input2 + n * s2[0] + h * s2[1] + w * s2[2];
                for (int32_t c = 0; c < o->c; ++c) {
                    const int8_t x = a[c * s1[3]];
                    const int8_t y = b[c * s2[3]];
                    *output++ = x < y ? x : y;
                }
            }
        }
    }
    return TP_OK;
}
