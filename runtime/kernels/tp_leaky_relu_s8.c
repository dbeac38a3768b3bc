/*
 * tinyprune: LEAKY_RELU, int8 -> int8. Bit-exact with TFLM reference_ops::QuantizeLeakyRelu:
 * inputs at or above the zero point are requantized with the identity multiplier, the others with
 * the alpha multiplier (its sign applied after the positive multiply, as the reference does).
 */
#include "tp_nn_activation.h"

tp_status tp_leaky_relu_s8(const tp_leaky_relu_params *params,
                           int32_t size,
                           const int8_t *input,
                           int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    const tp_leaky_relu_params p = *params;
    const int32_t negative = p.alpha_multiplier < 0;
    const int32_t alpha = negative ? -p.alpha_multiplier : p.alpha_multiplier;
    for (int32_t i = 0; i < size; ++i) {
        const int32_t x = (int32_t)input[i] - p.input_zero_point;
        int32_t out = p.output_zero_point;
        if (x >= 0) {
            out += tp_requantize(x, p.identity_multiplier, p.identity_shift);
        } else {
            const int32_t scaled = tp_requantize(x, alpha, p.alpha_shift);
            out += negative ? -scaled : scaled;
        }
        output[i] = (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
    }
    return TP_OK;
}
