/*
 * tinyprune: RELU6, int8 -> int8. Bit-exact with TFLM Relu6Quantized<int8_t>: a clamp in the
 * input's quantized domain, between its zero point and 6.0 quantized with its scale (the output
 * shares the input's quantization).
 */
#include "tp_nn_activation.h"

tp_status tp_relu6_s8(const tp_activation *range, int32_t size, const int8_t *input, int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    const int32_t lo = range->min;
    const int32_t hi = range->max;
    for (int32_t i = 0; i < size; ++i) {
        const int32_t x = input[i];
        output[i] = (int8_t)(x > hi ? hi : x < lo ? lo : x);
    }
    return TP_OK;
}
