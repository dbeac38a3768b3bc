/*
 * tinyprune: QUANTIZE float32 -> int8. Bit-exact with TFLM reference_ops::AffineQuantize:
 * round(x / scale) (single precision, true division, half away from zero) + zero point, clamped.
 */
#include <math.h>

#include "tp_nn_support.h"
#include "tp_nn_tensor.h"

tp_status tp_quantize_f32_s8(const tp_affine_params *params,
                             int32_t size,
                             const float *input,
                             int8_t *output)
{
    if (size < 0 || !(params->scale > 0.0f)) {
        return TP_ERR_ARG;
    }
    const float scale = params->scale;
    for (int32_t i = 0; i < size; ++i) {
        float q = roundf(input[i] / scale);
        q = q > 2147483520.0f ? 2147483520.0f : q;  /* largest float below 2^31 */
        q = q < -2147483648.0f ? -2147483648.0f : q;
        const int64_t out = (int64_t)(int32_t)q + params->zero_point;
        output[i] = (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
    }
    return TP_OK;
}
