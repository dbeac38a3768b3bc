/*
 * tinyprune: MINIMUM, int8, with broadcasting. Bit-exact with TFLM
 * reference_ops::MaximumMinimumBroadcastSlow: the smaller raw value (inputs and output share one
 * quantization, which the TFLite converter guarantees and tinyprune checks).
 */
#include "tp_broadcast.h"

/* The raw values compare as the real ones: one quantization for both inputs and the output. */
static inline int8_t min_one(const void *unused, int32_t x, int32_t y)
{
    (void)unused;
    return (int8_t)(x < y ? x : y);
}

tp_status tp_minimum_s8(const tp_dims *input1_dims,
                        const int8_t *input1,
                        const tp_dims *input2_dims,
                        const int8_t *input2,
                        const tp_dims *output_dims,
                        int8_t *output)
{
    int32_t s1[4];
    int32_t s2[4];
    if (!tp_broadcast_pair(input1_dims, input2_dims, output_dims, s1, s2)) {
        return TP_ERR_ARG;
    }
    TP_BROADCAST_BINARY_S8(min_one, NULL, output_dims, input1, s1, input2, s2, output);
    return TP_OK;
}
