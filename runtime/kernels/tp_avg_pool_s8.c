/*
 * tinyprune: AVERAGE_POOL_2D, int8. Bit-exact with TFLM reference_integer_ops::AveragePool:
 * padding is excluded from the count and the mean is rounded half away from zero.
 */
#include "tp_nn_pool.h"
#include "tp_nn_support.h"

/* Rounded mean of one channel over the clamped window [y_start, y_end) x [x_start, x_end). */
static int32_t window_mean(const int8_t *corner, int32_t row_stride, int32_t ch,
                           int32_t rows, int32_t cols)
{
    int32_t acc = 0;
    for (int32_t y = 0; y < rows; ++y) {
        const int8_t *p = corner + (size_t)y * row_stride;
        for (int32_t x = 0; x < cols; ++x) {
            acc += p[(size_t)x * ch];
        }
    }
    const int32_t count = rows * cols;
    return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

tp_status tp_avg_pool_s8(const tp_pool_params *params,
                         const tp_dims *input_dims,
                         const int8_t *input,
                         const tp_dims *filter_dims,
                         const tp_dims *output_dims,
                         int8_t *output)
{
    if (!tp_pool_args_ok(params, input_dims, filter_dims, output_dims)) {
        return TP_ERR_ARG;
    }
    const int32_t ch = input_dims->c;
    const int32_t row_stride = input_dims->w * ch;
    for (int32_t b = 0; b < output_dims->n; ++b) {
        const int8_t *in_batch = input + (size_t)b * input_dims->h * row_stride;
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            const int32_t fy_start = TP_MAX(0, -y0);
            const int32_t fy_end = TP_MIN(filter_dims->h, input_dims->h - y0);
            for (int32_t ox = 0; ox < output_dims->w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                const int32_t fx_start = TP_MAX(0, -x0);
                const int32_t fx_end = TP_MIN(filter_dims->w, input_dims->w - x0);
                if (fy_end <= fy_start || fx_end <= fx_start) {
                    return TP_ERR_ARG; /* empty window: TFLM fails the invocation */
                }
                const int8_t *corner = in_batch + (size_t)(y0 + fy_start) * row_stride +
                                       (size_t)(x0 + fx_start) * ch;
                for (int32_t c = 0; c < ch; ++c) {
                    const int32_t mean = window_mean(corner + c, row_stride, ch, fy_end - fy_start,
                                                     fx_end - fx_start);
                    *output++ = (int8_t)TP_CLAMP(mean, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return TP_OK;
}
