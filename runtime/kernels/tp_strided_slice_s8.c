/*
 * tinyprune: STRIDED_SLICE, int8, static begin / end / strides. Bit-exact with TFLM
 * reference_ops::StridedSlice: a copy of the selected elements; the start and step per axis come
 * from generation time (TFLM's StridedSliceStartForAxis / EndForAxis), the counts are the output
 * dims.
 */
#include <string.h>

#include "tp_nn_transform.h"

static int axis_ok(int32_t start, int32_t step, int32_t count, int32_t size)
{
    if (count < 0 || step == 0) {
        return 0;
    }
    if (count == 0) {
        return 1;
    }
    const int64_t last = (int64_t)start + (int64_t)step * (count - 1);
    return start >= 0 && start < size && last >= 0 && last < size;
}

tp_status tp_strided_slice_s8(const tp_strided_slice_params *params,
                              const tp_dims *input_dims,
                              const int8_t *input,
                              const tp_dims *output_dims,
                              int8_t *output)
{
    const tp_dims *s = &params->start;
    const tp_dims *k = &params->step;
    const tp_dims *o = output_dims;
    const tp_dims *in = input_dims;
    if (!axis_ok(s->n, k->n, o->n, in->n) || !axis_ok(s->h, k->h, o->h, in->h) ||
        !axis_ok(s->w, k->w, o->w, in->w) || !axis_ok(s->c, k->c, o->c, in->c)) {
        return TP_ERR_ARG;
    }
    for (int32_t n = 0; n < o->n; ++n) {
        const int32_t in_n = s->n + n * k->n;
        for (int32_t h = 0; h < o->h; ++h) {
            const int32_t in_h = s->h + h * k->h;
            for (int32_t w = 0; w < o->w; ++w) {
                const int32_t in_w = s->w + w * k->w;
                const int8_t *row = input + ((in_n * in->h + in_h) * in->w + in_w) * in->c;
                if (k->c == 1) {
                    memcpy(output, row + s->c, (size_t)o->c);
                    output += o->c;
                } else {
                    for (int32_t c = 0; c < o->c; ++c) {
                        *output++ = row[s->c + c * k->c];
                    }
                }
            }
        }
    }
    return TP_OK;
}
