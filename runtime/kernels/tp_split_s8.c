/*
 * tinyprune: SPLIT / SPLIT_V, int8. Bit-exact with TFLM reference_ops::Split (a copy): the
 * tensor viewed as [outer, axis * inner]; for every outer index, the outputs take consecutive runs
 * of the input row.
 */
#include <string.h>

#include "tp_nn_transform.h"

tp_status tp_split_s8(const tp_split_params *params,
                      const int8_t *input,
                      const tp_split_output *outputs,
                      int32_t num_outputs)
{
    int32_t total = 0;
    for (int32_t i = 0; i < num_outputs; ++i) {
        if (outputs[i].row < 0) {
            return TP_ERR_ARG;
        }
        total += outputs[i].row;
    }
    if (num_outputs < 1 || total != params->input_row || params->outer < 0) {
        return TP_ERR_ARG;
    }
    for (int32_t o = 0; o < params->outer; ++o) {
        const int8_t *src = input + o * params->input_row;
        for (int32_t i = 0; i < num_outputs; ++i) {
            const int32_t row = outputs[i].row;
            memcpy(outputs[i].data + o * row, src, (size_t)row);
            src += row;
        }
    }
    return TP_OK;
}
