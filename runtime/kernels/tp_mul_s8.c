/*
 * tinyprune: MUL, int8, with broadcasting. Bit-exact with TFLM reference_integer_ops::Mul /
 * BroadcastMul6DSlow: (x - zp1) * (y - zp2) requantized to the output.
 */
#include "tp_broadcast.h"
#include "tp_nn_support.h"

static inline int8_t mul_one(const tp_mul_params *p, int32_t x, int32_t y)
{
    const int32_t prod = (x + p->input1_offset) * (y + p->input2_offset);
    const int32_t out = tp_wrap_add(tp_requantize(prod, p->output_multiplier, p->output_shift), p->output_offset);
    return (int8_t)TP_CLAMP(out, p->activation.min, p->activation.max);
}

tp_status tp_mul_s8(const tp_mul_params *params,
                    const tp_dims *input1_dims,
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
    TP_BROADCAST_BINARY_S8(mul_one, params, output_dims, input1, s1, input2, s2, output);
    return TP_OK;
}
