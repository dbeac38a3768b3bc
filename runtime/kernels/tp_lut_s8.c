/*
 * tinyprune: an int8 -> int8 function by a 256-entry table computed at generation time (HARD_SWISH;
 * the table equals tp_hard_swish_s8, the in-house reference, on every input value).
 */
#include "tp_nn_activation.h"

tp_status tp_lut_s8(const int8_t *table, int32_t size, const int8_t *input, int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    const int8_t *centre = table + 128;
    for (int32_t i = 0; i < size; ++i) {
        output[i] = centre[input[i]];
    }
    return TP_OK;
}
