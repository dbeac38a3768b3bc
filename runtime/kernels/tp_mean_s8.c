/*
 * tinyprune: MEAN over [N, H, W, C] -> [N, C], int8. Bit-exact with TFLM
 * reference_ops::QuantizedMeanOrSum (compute_sum = false): (sum - zp * count) requantized with
 * the 1/count-adjusted multiplier, plus the output zero point.
 * Channels are summed in blocks of four so the int32 sums live in registers (no scratch).
 */
#include "tp_nn_pool.h"
#include "tp_nn_support.h"

#define TP_MEAN_BLOCK 4

static int8_t mean_out(const tp_mean_params *p, int32_t sum, int32_t count)
{
    /* TFLM: static_cast<int32_t>(temp_sum - input_zero_point * (int64_t)count) */
    const int32_t shifted = (int32_t)(uint32_t)((int64_t)sum + (int64_t)p->input_offset * count);
    const int32_t out = tp_wrap_add(tp_requantize(shifted, p->multiplier, p->shift), p->output_offset);
    return (int8_t)TP_CLAMP(out, INT8_MIN, INT8_MAX);
}

/* Sums `block` (<= TP_MEAN_BLOCK) adjacent channels over `count` pixels `ch` apart. */
static void sum_block(const int8_t *in, int32_t count, int32_t ch, int32_t block, int32_t *sums)
{
    for (int32_t k = 0; k < TP_MEAN_BLOCK; ++k) {
        sums[k] = 0;
    }
    if (block == TP_MEAN_BLOCK) {
        for (int32_t i = 0; i < count; ++i, in += ch) {
            sums[0] += in[0];
            sums[1] += in[1];
            sums[2] += in[2];
            sums[3] += in[3];
        }
        return;
    }
    for (int32_t i = 0; i < count; ++i, in += ch) {
        for (int32_t k = 0; k < block; ++k) {
            sums[k] += in[k];
        }
    }
}

tp_status tp_mean_s8(const tp_mean_params *params,
                     const tp_dims *input_dims,
                     const int8_t *input,
                     int8_t *output)
{
    const tp_dims *d = input_dims;
    if (d->n < 0 || d->h <= 0 || d->w <= 0 || d->c <= 0 || (int64_t)d->h * d->w > (1 << 23)) {
        return TP_ERR_ARG;
    }
    const int32_t count = d->h * d->w;
    const int32_t ch = d->c;
    for (int32_t b = 0; b < d->n; ++b) {
        const int8_t *in_batch = input + (size_t)b * count * ch;
        for (int32_t c = 0; c < ch; c += TP_MEAN_BLOCK) {
            const int32_t block = TP_MIN(TP_MEAN_BLOCK, ch - c);
            int32_t sums[TP_MEAN_BLOCK];
            sum_block(in_batch + c, count, ch, block, sums);
            for (int32_t k = 0; k < block; ++k) {
                *output++ = mean_out(params, sums[k], count);
            }
        }
    }
    return TP_OK;
}
