/*
 * tinyprune: LOGISTIC, int8 -> int8. Bit-exact with TFLM reference_integer_ops::Logistic:
 * the input (minus its zero point) is rescaled to Q4.27, gemmlowp's logistic gives Q0.31,
 * which is rounded to 1/256 steps with zero point -128; inputs beyond the range radius saturate.
 */
#include "tp_nn_activation.h"

tp_status tp_logistic_s8(const tp_logistic_params *params,
                         int32_t size,
                         const int8_t *input,
                         int8_t *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    for (int32_t i = 0; i < size; ++i) {
        const int32_t x = (int32_t)input[i] - params->input_zero_point;
        if (x <= -params->input_range_radius) {
            output[i] = INT8_MIN;
        } else if (x >= params->input_range_radius) {
            output[i] = INT8_MAX;
        } else {
            const int32_t in_q4 = tp_requantize(x, params->input_multiplier, params->input_left_shift);
            const int32_t out_q23 = tp_divide_by_power_of_two(tp_fp_logistic_q4(in_q4), 31 - 8);
            output[i] = (int8_t)TP_CLAMP(out_q23 + INT8_MIN, INT8_MIN, INT8_MAX);
        }
    }
    return TP_OK;
}
