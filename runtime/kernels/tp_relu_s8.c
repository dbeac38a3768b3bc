/*
 * tinyprune: RELU, int8 -> int8. Bit-exact with TFLM ReluQuantized<int8_t>: the input minus its
 * zero point requantized to the output scale, plus the output zero point, clamped to
 * [max(-128, output zero point), 127].
 */
#include "tp_nn_activation.h"

tp_status tp_relu_s8(const tp_relu_params *params, int32_t size, const int8_t *input, int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    const tp_relu_params p = *params;
    for (int32_t i = 0; i < size; ++i) {
        const int32_t out = p.output_zero_point +
                            tp_requantize((int32_t)input[i] - p.input_zero_point, p.multiplier, p.shift);
        output[i] = (int8_t)TP_CLAMP(out, p.activation.min, p.activation.max);
    }
    return TP_OK;
}
