/*
 * tinyprune: DEQUANTIZE int8 -> float32. Bit-exact with TFLM reference_ops::Dequantize:
 * TFLM multiplies in double and rounds to float; scale * (x - zp) is exact in double (24 + 9
 * significant bits), so one correctly rounded single-precision multiply gives the same float
 * without double arithmetic on a single-precision FPU.
 */
#include "tp_nn_tensor.h"

tp_status tp_dequantize_s8_f32(const tp_affine_params *params,
                               int32_t size,
                               const int8_t *input,
                               float *output)
{
    if (size < 0) {
        return TP_ERR_ARG;
    }
    const float scale = params->scale;
    for (int32_t i = 0; i < size; ++i) {
        output[i] = scale * (float)((int32_t)input[i] - params->zero_point);
    }
    return TP_OK;
}
