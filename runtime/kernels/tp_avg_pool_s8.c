/*
 * tinyprune: AVERAGE_POOL_2D, int8. Bit-exact with TFLM reference_integer_ops::AveragePool:
 * padding is excluded from the count and the mean is rounded half away from zero.
 *
 * DSP path, windows of at most 256 values: four channels at a time, one word load per window
 * position, the four sums kept as int16 lanes of two words (SXTB16 + SADD16; |sum| <= 128 * 256
 * fits), so the window is walked once per four channels instead of once per channel. Other
 * windows, the last C % 4 channels and the portable path: one channel at a time.
 */
#include "tp_nn_pool.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

static inline int32_t rounded_mean(int32_t acc, int32_t count)
{
    return acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
}

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
    return rounded_mean(acc, rows * cols);
}

#if TP_USE_DSP
/* Channels [0, 4 * groups) of one window into out, four at a time (rows * cols <= 256). */
static void window_means4(const int8_t *corner, int32_t row_stride, int32_t ch, int32_t rows,
                          int32_t cols, int32_t groups, int32_t lo, int32_t hi, int8_t *out)
{
    const int32_t count = rows * cols;
    for (; groups > 0; --groups, corner += 4, out += 4) {
        int32_t even = 0, odd = 0; /* lanes: channels 0 and 2, channels 1 and 3 */
        for (int32_t y = 0; y < rows; ++y) {
            const int8_t *p = corner + (size_t)y * row_stride;
            for (int32_t x = 0; x < cols; ++x, p += ch) {
                const int32_t v = tp_read_s8x4(p);
                even = tp_sadd16(even, tp_sxtb16(v));
                odd = tp_sadd16(odd, tp_sxtb16_ror8(v));
            }
        }
        out[0] = (int8_t)TP_CLAMP(rounded_mean(tp_lo16(even), count), lo, hi);
        out[1] = (int8_t)TP_CLAMP(rounded_mean(tp_lo16(odd), count), lo, hi);
        out[2] = (int8_t)TP_CLAMP(rounded_mean(tp_hi16(even), count), lo, hi);
        out[3] = (int8_t)TP_CLAMP(rounded_mean(tp_hi16(odd), count), lo, hi);
    }
}
#endif

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
                const int32_t rows = fy_end - fy_start, cols = fx_end - fx_start;
                int32_t c = 0;
#if TP_USE_DSP
                if (rows * cols <= 256) {
                    c = ch & ~3;
                    window_means4(corner, row_stride, ch, rows, cols, ch >> 2,
                                  params->activation.min, params->activation.max, output);
                    output += c;
                }
#endif
                for (; c < ch; ++c) {
                    const int32_t mean = window_mean(corner + c, row_stride, ch, rows, cols);
                    *output++ = (int8_t)TP_CLAMP(mean, params->activation.min, params->activation.max);
                }
            }
        }
    }
    return TP_OK;
}
