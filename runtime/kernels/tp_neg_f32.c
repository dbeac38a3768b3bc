/*
 * tinyprune: NEG, float32. Bit-exact with TFLM reference_ops::Negate<float> (a sign flip).
 */
#include "tp_nn_elementwise.h"

tp_status tp_neg_f32(int32_t size, const float *input, float *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    for (int32_t i = 0; i < size; ++i) {
        output[i] = -input[i];
    }
    return TP_OK;
}
