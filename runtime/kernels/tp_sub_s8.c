/*
 * tinyprune: SUB, int8, with broadcasting. Bit-exact with TFLM reference_ops::Sub /
 * BroadcastQuantSubSlow (each input scaled to 2^20 * 2 * max scale, subtracted, requantized).
 */
#include "tp_broadcast.h"
#include "tp_nn_support.h"

static inline int8_t sub_one(const tp_sub_params *p, int32_t x, int32_t y)
{
    const int32_t a = (int32_t)((uint32_t)(x + p->input1_offset) << p->left_shift);
    const int32_t b = (int32_t)((uint32_t)(y + p->input2_offset) << p->left_shift);
    const int32_t diff = tp_requantize(a, p->input1_multiplier, p->input1_shift) -
                         tp_requantize(b, p->input2_multiplier, p->input2_shift);
    const int32_t out = tp_requantize(diff, p->output_multiplier, p->output_shift) + p->output_offset;
    return (int8_t)TP_CLAMP(out, p->activation.min, p->activation.max);
}

tp_status tp_sub_s8(const tp_sub_params *params,
                    const tp_dims *input1_dims,
                    const int8_t *input1,
                    const tp_dims *input2_dims,
                    const int8_t *input2,
                    const tp_dims *output_dims,
                    int8_t *output)
{
    int32_t s1[4];
    int32_t s2[4];
    if (!tp_broadcast_pair(input1_dims, input2_dims, output_dims, s1, s2) ||
        params->left_shift < 0 || params->left_shift > 30) {
        return TP_ERR_ARG;
    }
    TP_BROADCAST_BINARY_S8(sub_one, params, output_dims, input1, s1, input2, s2, output);
    return TP_OK;
}
