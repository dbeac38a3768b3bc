/*
 * tinyprune: RESIZE_NEAREST_NEIGHBOR, int8. Bit-exact with TFLM
 * reference_ops::ResizeNearestNeighbor: every output pixel copies the input pixel of its row and
 * column tables (computed at generation time as TFLM's GetNearestNeighbor computes them).
 */
#include <string.h>

#include "tp_nn_transform.h"

tp_status tp_resize_nearest_s8(const tp_resize_nearest_params *params,
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
    for (int32_t y = 0; y < o->h; ++y) {
        if (params->rows[y] < 0 || params->rows[y] >= in->h) {
            return TP_ERR_ARG;
        }
    }
    for (int32_t x = 0; x < o->w; ++x) {
        if (params->cols[x] < 0 || params->cols[x] >= in->w) {
            return TP_ERR_ARG;
        }
    }
    const size_t depth = (size_t)o->c;
    for (int32_t n = 0; n < o->n; ++n) {
        const int8_t *image = input + n * in->h * in->w * in->c;
        for (int32_t y = 0; y < o->h; ++y) {
            const int8_t *row = image + params->rows[y] * in->w * in->c;
            for (int32_t x = 0; x < o->w; ++x) {
                memcpy(output, row + params->cols[x] * in->c, depth);
                output += depth;
            }
        }
    }
    return TP_OK;
}
