/*
 * tinyprune runtime: int8 FULLY_CONNECTED, bit-exact with TFLM reference_integer_ops::
 * FullyConnected (per-tensor) and FullyConnectedPerChannel.
 *
 * The two public kernels are thin entry points over one row loop (shared here rather than
 * exported across files); they differ only in where the multiplier of output o comes from.
 * DSP path: the input row is widened once into the scratch (int16, offset added, groups of four
 * reordered, see tp_widen_s8x4_pairs), then four filter rows at a time (two, then one, for the
 * last OUT % 4): per four inputs, one LDRD of the widened input, one word of each row, two
 * SXTB16 each and eight SMLAD for 16 MACs.
 */
#include "tp_nn_fc.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* Requantization of the layer: mult/shift arrays and 1 (per channel) or 0 (per tensor). */
typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t step;
} fc_quant;

static inline int8_t fc_out(int32_t acc, const fc_quant *q, int32_t o, const tp_fc_params *p)
{
    const int32_t i = o * q->step;
    acc = tp_wrap_add(tp_requantize_pos(acc, q->mult[i], q->shift[i]), p->output_offset);
    return (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
}

#if TP_USE_DSP

/*
 * Rows w and w + n times the input: x holds the first n & ~3 inputs as words (two per group of
 * four, tp_widen_s8x4_pairs), the last n % 4 are read from in directly.
 */
static void dot_rows2(const int8_t *w, const int32_t *x, const int8_t *in, int32_t n,
                      int32_t offset, int32_t acc[2])
{
    const int8_t *w1 = w + n;
    const int32_t *end = x + 2 * (n >> 2);
    int32_t a0 = acc[0], a1 = acc[1];
    while (x != end) {
        const int32_t wa = tp_read_s8x4(w), wb = tp_read_s8x4(w1);
        const int32_t xe = x[0], xo = x[1];
        a0 = tp_smlad(tp_sxtb16(wa), xe, a0);
        a1 = tp_smlad(tp_sxtb16(wb), xe, a1);
        a0 = tp_smlad(tp_sxtb16_ror8(wa), xo, a0);
        a1 = tp_smlad(tp_sxtb16_ror8(wb), xo, a1);
        x += 2, w += 4, w1 += 4;
    }
    for (int32_t k = n & ~3; k < n; ++k, ++w, ++w1) {
        a0 = tp_wrap_mac(a0, *w, in[k] + offset);
        a1 = tp_wrap_mac(a1, *w1, in[k] + offset);
    }
    acc[0] = a0, acc[1] = a1;
}

/* Rows w + i * n, i = 0..3, times the input (x and in as dot_rows2): acc[i] += row i . input. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void dot_rows4(const int8_t *w, const int32_t *x, const int8_t *in, int32_t n,
                      int32_t offset, int32_t acc[4])
{
    const int8_t *w1 = w + n, *w2 = w + 2 * n, *w3 = w + 3 * n;
    const void *xp = x;
    const void *end = x + 2 * (n >> 2);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    while (xp != end) {
        int32_t xe, xo;
        tp_load_2x32_inc(&xp, &xe, &xo);
        int32_t v = tp_read_s8x4(w);
        a0 = tp_smlad(tp_sxtb16(v), xe, a0);
        a0 = tp_smlad(tp_sxtb16_ror8(v), xo, a0);
        v = tp_read_s8x4(w1);
        a1 = tp_smlad(tp_sxtb16(v), xe, a1);
        a1 = tp_smlad(tp_sxtb16_ror8(v), xo, a1);
        v = tp_read_s8x4(w2);
        a2 = tp_smlad(tp_sxtb16(v), xe, a2);
        a2 = tp_smlad(tp_sxtb16_ror8(v), xo, a2);
        v = tp_read_s8x4(w3);
        a3 = tp_smlad(tp_sxtb16(v), xe, a3);
        a3 = tp_smlad(tp_sxtb16_ror8(v), xo, a3);
        w += 4, w1 += 4, w2 += 4, w3 += 4;
    }
    for (int32_t k = n & ~3; k < n; ++k) {
        const int32_t xk = in[k] + offset;
        a0 = tp_wrap_mac(a0, *w++, xk), a1 = tp_wrap_mac(a1, *w1++, xk);
        a2 = tp_wrap_mac(a2, *w2++, xk), a3 = tp_wrap_mac(a3, *w3++, xk);
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

static int32_t dot_row(const int8_t *w, const int32_t *x, const int8_t *in, int32_t n,
                       int32_t offset, int32_t acc)
{
    const int32_t *end = x + 2 * (n >> 2);
    while (x != end) {
        const int32_t wa = tp_read_s8x4(w);
        acc = tp_smlad(tp_sxtb16(wa), x[0], acc);
        acc = tp_smlad(tp_sxtb16_ror8(wa), x[1], acc);
        x += 2, w += 4;
    }
    for (int32_t k = n & ~3; k < n; ++k) {
        acc = tp_wrap_mac(acc, *w++, in[k] + offset);
    }
    return acc;
}

static void fc_row(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                   const int8_t *in, const int8_t *filter, const int32_t *bias, int32_t n,
                   int32_t n_out, int8_t *out)
{
    int32_t *x = (int32_t *)ctx->buf;
    const int32_t off = p->input_offset;
    tp_widen_s8x4_pairs(in, n, off, x, 2);
    int32_t o = 0;
    for (; o + 4 <= n_out; o += 4) {
        int32_t acc[4] = {0, 0, 0, 0};
        if (bias != NULL) {
            acc[0] = bias[o], acc[1] = bias[o + 1], acc[2] = bias[o + 2], acc[3] = bias[o + 3];
        }
        dot_rows4(filter + o * n, x, in, n, off, acc);
        for (int32_t i = 0; i < 4; ++i) {
            out[o + i] = fc_out(acc[i], q, o + i, p);
        }
    }
    for (; o + 2 <= n_out; o += 2) {
        int32_t acc[2] = {bias ? bias[o] : 0, bias ? bias[o + 1] : 0};
        dot_rows2(filter + o * n, x, in, n, off, acc);
        out[o] = fc_out(acc[0], q, o, p);
        out[o + 1] = fc_out(acc[1], q, o + 1, p);
    }
    if (o < n_out) {
        out[o] = fc_out(dot_row(filter + o * n, x, in, n, off, bias ? bias[o] : 0), q, o, p);
    }
}

#else /* portable C */

static void fc_row(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                   const int8_t *in, const int8_t *filter, const int32_t *bias, int32_t n,
                   int32_t n_out, int8_t *out)
{
    (void)ctx;
    for (int32_t o = 0; o < n_out; ++o) {
        const int8_t *w = filter + o * n;
        int32_t acc = 0;
        for (int32_t k = 0; k < n; ++k) {
            acc = tp_wrap_mac(acc, w[k], in[k] + p->input_offset);
        }
        out[o] = fc_out(tp_wrap_add(acc, bias ? bias[o] : 0), q, o, p);
    }
}

#endif /* TP_USE_DSP */

int32_t tp_fully_connected_s8_get_buffer_size(const tp_dims *filter_dims)
{
#if TP_USE_DSP
    return filter_dims->c * (int32_t)sizeof(int16_t);
#else
    (void)filter_dims;
    return 0;
#endif
}

static tp_status fc_run(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                        const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                        const int8_t *filter, const int32_t *bias, const tp_dims *out_d,
                        int8_t *out)
{
    const int32_t n = f_d->c;
    const int32_t n_out = f_d->n;
    const int32_t rows = in_d->n * in_d->h * in_d->w;
    if (in_d->c != n || out_d->c != n_out || out_d->n * out_d->h * out_d->w != rows) {
        return TP_ERR_ARG;
    }
    if (tp_fully_connected_s8_get_buffer_size(f_d) > 0 &&
        (ctx == NULL || ctx->buf == NULL || ctx->size < tp_fully_connected_s8_get_buffer_size(f_d))) {
        return TP_ERR_ARG;
    }
    for (int32_t r = 0; r < rows; ++r) {
        fc_row(ctx, p, q, in + r * n, filter, bias, n, n_out, out + r * n_out);
    }
    return TP_OK;
}

tp_status tp_fully_connected_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                const tp_per_tensor_quant *quant_params,
                                const tp_dims *input_dims, const int8_t *input,
                                const tp_dims *filter_dims, const int8_t *filter,
                                const tp_dims *bias_dims, const int32_t *bias,
                                const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {&quant_params->multiplier, &quant_params->shift, 0};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}

tp_status tp_fully_connected_per_channel_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                            const tp_per_channel_quant *quant_params,
                                            const tp_dims *input_dims, const int8_t *input,
                                            const tp_dims *filter_dims, const int8_t *filter,
                                            const tp_dims *bias_dims, const int32_t *bias,
                                            const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {quant_params->multiplier, quant_params->shift, 1};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}
