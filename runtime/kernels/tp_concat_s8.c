/*
 * tinyprune: CONCATENATION, int8, along any axis. Bit-exact with TFLM
 * reference_ops::Concatenation (a copy) for inputs quantized like the output; other inputs are
 * requantized as tp_requantize_s8 does.
 */
#include "tp_nn_tensor.h"

tp_status tp_concat_s8(const tp_concat_params *params,
                       const tp_concat_input *inputs,
                       int32_t num_inputs,
                       int8_t *output)
{
    int32_t total = 0;
    for (int32_t i = 0; i < num_inputs; ++i) {
        if (inputs[i].row < 0) {
            return TP_ERR_ARG;
        }
        total += inputs[i].row;
    }
    if (num_inputs < 1 || params->outer < 0 || total != params->output_row) {
        return TP_ERR_ARG;
    }
    int32_t offset = 0;
    for (int32_t i = 0; i < num_inputs; ++i) {
        const tp_concat_input *in = &inputs[i];
        for (int32_t o = 0; o < params->outer; ++o) {
            int8_t *dst = output + (size_t)o * params->output_row + offset;
            const int8_t *src = in->data + (size_t)o * in->row;
            const tp_status status = tp_requantize_s8(&in->quant, in->row, src, dst);
            if (status != TP_OK) {
                return status;
            }
        }
        offset += in->row;
    }
    return TP_OK;
}
