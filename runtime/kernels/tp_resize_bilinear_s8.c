/*
 * tinyprune: RESIZE_BILINEAR, int8. Bit-exact with TFLM reference_ops::ResizeBilinearInteger:
 * source coordinates in 1/1024 steps, the four neighbours weighted in int64 and rounded half
 * away from zero by 2^20.
 */
#include "tp_nn_transform.h"

/* TFLM ComputeInterpolationValuesInteger (C99 division truncates like C++). */
static void interpolation(int32_t value, int32_t scale, int32_t half_pixel_centers, int32_t size,
                          int32_t *scaled, int32_t *lower, int32_t *upper)
{
    *scaled = half_pixel_centers ? value * scale + scale / 2 - (1 << 9) : value * scale;
    const int32_t lo = *scaled / (1 << 10);
    const int32_t hi = (*scaled + (1 << 10) - 1) / (1 << 10);
    *lower = lo > 0 ? lo : 0;
    *upper = hi < size - 1 ? hi : size - 1;
}

tp_status tp_resize_bilinear_s8(const tp_resize_bilinear_params *params,
                                const tp_dims *input_dims,
                                const int8_t *input,
                                const tp_dims *output_dims,
                                int8_t *output)
{
    const tp_dims *in = input_dims;
    const tp_dims *o = output_dims;
    if (in->n != o->n || in->c != o->c) {
        return TP_ERR_ARG;
    }
    const int32_t depth = o->c;
    const int32_t one = 1 << 10;
    for (int32_t n = 0; n < o->n; ++n) {
        const int8_t *image = input + n * in->h * in->w * depth;
        for (int32_t y = 0; y < o->h; ++y) {
            int32_t iy, y0, y1;
            interpolation(y, params->height_scale, params->half_pixel_centers, in->h, &iy, &y0, &y1);
            const int64_t dy = iy - one * y0;
            for (int32_t x = 0; x < o->w; ++x) {
                int32_t ix, x0, x1;
                interpolation(x, params->width_scale, params->half_pixel_centers, in->w, &ix, &x0, &x1);
                const int64_t dx = ix - one * x0;
                const int8_t *p00 = image + (y0 * in->w + x0) * depth;
                const int8_t *p10 = image + (y1 * in->w + x0) * depth;
                const int8_t *p01 = image + (y0 * in->w + x1) * depth;
                const int8_t *p11 = image + (y1 * in->w + x1) * depth;
                for (int32_t c = 0; c < depth; ++c) {
                    const int64_t sum = (int64_t)p00[c] * (one - dy) * (one - dx) +
                                        (int64_t)p10[c] * dy * (one - dx) +
                                        (int64_t)p01[c] * (one - dy) * dx +
                                        (int64_t)p11[c] * dy * dx;
                    const int64_t round = sum > 0 ? (1 << 19) : -(1 << 19);
                    *output++ = (int8_t)((sum + round) / (1 << 20));
                }
            }
        }
    }
    return TP_OK;
}
