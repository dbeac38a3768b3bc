/*
 * tinyprune runtime: unstructured sparse int8 FULLY_CONNECTED (CSR: each output row's non-zero
 * weights with their input positions), bit-exact with TFLM reference_integer_ops::
 * FullyConnected / FullyConnectedPerChannel on the dense weights. Format: tp_nn_sparse.h.
 *
 * DSP path: the input row is widened once to int16 (offset added); per non-zero weight one LDRSH
 * of its input (register offset) and one SMLABB / SMLABT (the weight a half of a SXTB16 word of
 * four weights). Portable path: the same walk, one value at a time.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_dsp.h"

typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t step;
} fc_quant;

static inline int32_t count_of(const tp_csr_filter *f, int32_t o)
{
    return f->count_bytes == 1 ? ((const uint8_t *)f->counts)[o] : ((const uint16_t *)f->counts)[o];
}

int32_t tp_fully_connected_csr_s8_get_buffer_size(const tp_dims *filter_dims)
{
#if TP_USE_DSP
    return 2 * filter_dims->c; /* the input row as int16 */
#else
    (void)filter_dims;
    return 0;
#endif
}

#if TP_USE_DSP

/* acc + (bottom or top half of w) * x[k]; top is a constant, so each argument is evaluated
 * once. */
#define TP_CSR_FC(acc, x, k, w, top)                                                              \
    ((top) ? tp_sp_smlabt((int32_t)(x)[k], w, acc) : tp_smlabb((int32_t)(x)[k], w, acc))

/* One row: bias + its n weights (at *vp, positions at *ip; advanced) . the widened input x. */
static inline __attribute__((always_inline)) int32_t row(const int16_t *x, const void **ip,
                                                         const int8_t **vp, int32_t n, int wide,
                                                         int32_t acc)
{
    const int8_t *v = *vp;
    if (!wide) {
        const uint8_t *q = (const uint8_t *)*ip;
        for (; n >= 4; n -= 4, q += 4, v += 4) {
            const uint32_t k4 = (uint32_t)tp_sp_read32(q);
            const int32_t w = tp_sp_read32(v), we = tp_sxtb16(w), wo = tp_sxtb16_ror8(w);
            acc = TP_CSR_FC(acc, x, TP_SP_UXTB(k4, 0), we, 0);
            acc = TP_CSR_FC(acc, x, TP_SP_UXTB(k4, 8), wo, 0);
            acc = TP_CSR_FC(acc, x, TP_SP_UXTB(k4, 16), we, 1);
            acc = TP_CSR_FC(acc, x, k4 >> 24, wo, 1);
        }
        for (; n > 0; --n) {
            acc = TP_CSR_FC(acc, x, *q++, *v++, 0);
        }
        *ip = q;
    } else {
        const uint16_t *q = (const uint16_t *)*ip;
        for (; n >= 2; n -= 2, q += 2, v += 2) {
            acc = tp_smlabb((int32_t)x[q[0]], v[0], acc);
            acc = tp_smlabb((int32_t)x[q[1]], v[1], acc);
        }
        if (n) {
            acc = tp_smlabb((int32_t)x[*q++], *v++, acc);
        }
        *ip = q;
    }
    *vp = v;
    return acc;
}

TP_SP_HOT static void rows(const tp_fc_params *p, const fc_quant *q, const tp_csr_filter *f,
                           const int32_t *bias, int32_t n_out, const int16_t *x, int8_t *out)
{
    const void *ip = f->index;
    const int8_t *v = f->values;
    const int wide = f->index_bytes == 2;
    const int32_t *mult = q->mult, *shift = q->shift;
    for (int32_t o = 0; o < n_out; ++o, mult += q->step, shift += q->step) {
        const int32_t acc = row(x, &ip, &v, count_of(f, o), wide, bias ? bias[o] : 0);
        out[o] = tp_sq_out_ms(acc, *mult, *shift, p->output_offset, p->activation.min,
                              p->activation.max);
    }
}

static void fc_row(const tp_fc_params *p, const fc_quant *q, const tp_csr_filter *f,
                   const int8_t *in, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, void *buf)
{
    int16_t *x = (int16_t *)buf;
    for (int32_t k = 0; k < n_in; ++k) {
        x[k] = (int16_t)(in[k] + p->input_offset);
    }
    rows(p, q, f, bias, n_out, x, out);
}

#else /* portable C */

static void fc_row(const tp_fc_params *p, const fc_quant *q, const tp_csr_filter *f,
                   const int8_t *in, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, void *buf)
{
    (void)buf, (void)n_in;
    int32_t j = 0;
    for (int32_t o = 0; o < n_out; ++o) {
        int32_t acc = bias ? bias[o] : 0;
        for (const int32_t end = j + count_of(f, o); j < end; ++j) {
            const int32_t k = f->index_bytes == 1 ? ((const uint8_t *)f->index)[j]
                                                   : ((const uint16_t *)f->index)[j];
            acc += f->values[j] * (in[k] + p->input_offset);
        }
        const int32_t i = o * q->step;
        acc = tp_requantize(acc, q->mult[i], q->shift[i]) + p->output_offset;
        out[o] = (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
    }
}

#endif /* TP_USE_DSP */

static tp_status fc_run(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                        const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                        const tp_csr_filter *f, const int32_t *bias, const tp_dims *out_d,
                        int8_t *out)
{
    const int32_t n_in = f_d->c, n_out = f_d->n;
    const int32_t rows_n = in_d->n * in_d->h * in_d->w;
    const int32_t size = tp_fully_connected_csr_s8_get_buffer_size(f_d);
    if (in_d->c != n_in || out_d->c != n_out || out_d->n * out_d->h * out_d->w != rows_n ||
        (f->count_bytes != 1 && f->count_bytes != 2) ||
        (f->index_bytes != 1 && f->index_bytes != 2) ||
        (size > 0 && (ctx == NULL || ctx->buf == NULL || ctx->size < size))) {
        return TP_ERR_ARG;
    }
    for (int32_t r = 0; r < rows_n; ++r) {
        fc_row(p, q, f, in + r * n_in, bias, n_in, n_out, out + r * n_out,
               size > 0 ? ctx->buf : NULL);
    }
    return TP_OK;
}

tp_status tp_fully_connected_csr_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                    const tp_per_tensor_quant *quant_params,
                                    const tp_dims *input_dims, const int8_t *input,
                                    const tp_dims *filter_dims, const tp_csr_filter *filter,
                                    const tp_dims *bias_dims, const int32_t *bias,
                                    const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {&quant_params->multiplier, &quant_params->shift, 0};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}

tp_status tp_fully_connected_csr_per_channel_s8(const tp_context *ctx,
                                                const tp_fc_params *fc_params,
                                                const tp_per_channel_quant *quant_params,
                                                const tp_dims *input_dims, const int8_t *input,
                                                const tp_dims *filter_dims,
                                                const tp_csr_filter *filter,
                                                const tp_dims *bias_dims, const int32_t *bias,
                                                const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {quant_params->multiplier, quant_params->shift, 1};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}
