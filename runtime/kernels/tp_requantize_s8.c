/*
 * tinyprune: QUANTIZE int8 -> int8 (requantization). Bit-exact with TFLM
 * reference_ops::Requantize<int8_t, int8_t>. Also the arithmetic tp_concat_s8 applies to an
 * input whose quantization differs from the output's.
 */
#include <string.h>

#include "tp_nn_support.h"
#include "tp_nn_tensor.h"

tp_status tp_requantize_s8(const tp_requant_params *params,
                           int32_t size,
                           const int8_t *input,
                           int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    /* The identity (TFLM's same_scale multiplier with equal zero points) is a copy. */
    if (params->multiplier == (1 << 30) && params->shift == 1 &&
        params->input_offset + params->output_offset == 0) {
        memmove(output, input, (size_t)size);
        return TP_OK;
    }
    for (int32_t i = 0; i < size; ++i) {
        const int32_t scaled = tp_requantize((int32_t)input[i] + params->input_offset,
                                             params->multiplier, params->shift);
        const int32_t out = tp_wrap_add(scaled, params->output_offset);
        output[i] = (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
    }
    return TP_OK;
}
