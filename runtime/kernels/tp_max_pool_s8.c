/*
 * tinyprune: MAX_POOL_2D, int8. Bit-exact with TFLM reference_integer_ops::MaxPool.
 *
 * The window is walked once per output pixel and the running maximum is kept in the output
 * row itself, so the innermost loop runs over contiguous channels (four at a time with
 * SSUB8/SEL on the DSP path). Max is associative, so the order differs from TFLM's but the
 * result does not.
 */
#include <string.h>

#include "tp_dsp.h"
#include "tp_nn_pool.h"
#include "tp_nn_support.h"

#if TP_USE_DSP
/* Lane-wise max of four int8: SSUB8 sets the GE flag of each lane where a >= b, SEL picks. */
static inline int32_t max_s8x4(int32_t a, int32_t b)
{
#if TP_DSP_NATIVE
    (void)__ssub8(a, b);
    return (int32_t)__sel((uint32_t)a, (uint32_t)b);
#else
    uint32_t result = 0;
    for (uint32_t lane = 0; lane < 32U; lane += 8U) {
        const int8_t x = (int8_t)(uint8_t)((uint32_t)a >> lane);
        const int8_t y = (int8_t)(uint8_t)((uint32_t)b >> lane);
        result |= (uint32_t)(uint8_t)(x >= y ? x : y) << lane;
    }
    return (int32_t)result;
#endif
}
#endif

/* out[c] = max(out[c], in[c]) for c < channels. */
static void max_into(int8_t *out, const int8_t *in, int32_t channels)
{
    int32_t c = 0;
#if TP_USE_DSP
    for (; c + 4 <= channels; c += 4) {
        const int32_t m = max_s8x4(tp_read_s8x4(out + c), tp_read_s8x4(in + c));
        memcpy(out + c, &m, sizeof(m));
    }
#endif
    for (; c < channels; ++c) {
        out[c] = in[c] > out[c] ? in[c] : out[c];
    }
}

static void clamp_row(int8_t *out, int32_t channels, const tp_activation *act)
{
    for (int32_t c = 0; c < channels; ++c) {
        out[c] = (int8_t)TP_CLAMP((int32_t)out[c], act->min, act->max);
    }
}

tp_status tp_max_pool_s8(const tp_pool_params *params,
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
    for (int32_t b = 0; b < output_dims->n; ++b) {
        const int8_t *in_batch = input + (size_t)b * input_dims->h * input_dims->w * ch;
        for (int32_t oy = 0; oy < output_dims->h; ++oy) {
            const int32_t y0 = oy * params->stride.h - params->padding.h;
            const int32_t fy_start = TP_MAX(0, -y0);
            const int32_t fy_end = TP_MIN(filter_dims->h, input_dims->h - y0);
            for (int32_t ox = 0; ox < output_dims->w; ++ox) {
                const int32_t x0 = ox * params->stride.w - params->padding.w;
                const int32_t fx_start = TP_MAX(0, -x0);
                const int32_t fx_end = TP_MIN(filter_dims->w, input_dims->w - x0);
                memset(output, INT8_MIN, (size_t)ch);
                for (int32_t fy = fy_start; fy < fy_end; ++fy) {
                    for (int32_t fx = fx_start; fx < fx_end; ++fx) {
                        const int8_t *px = in_batch + ((size_t)(y0 + fy) * input_dims->w + (size_t)(x0 + fx)) * ch;
                        max_into(output, px, ch);
                    }
                }
                clamp_row(output, ch, &params->activation);
                output += ch;
            }
        }
    }
    return TP_OK;
}
