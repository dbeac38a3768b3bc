/*
 * tinyprune runtime: N:M sparse int8 FULLY_CONNECTED (at most N = 2 or 1 non-zeros in every
 * group of 4 weights along IN), bit-exact with TFLM reference_integer_ops::FullyConnected /
 * FullyConnectedPerChannel on the dense weights. Format: tp_nn_sparse.h.
 *
 * DSP path: for each unit of the input row (a group of four values for 2:4, two groups for 1:4)
 * every pair of values a code can name is built once as an int16 word (offset added); a row then
 * takes per unit the word its code names (one LDR with a register offset) and one SMLAD with
 * the unit's two kept weights (one SXTB16 serves two units). Portable path: the kept values
 * decoded from the codes, one at a time.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_dsp.h"

typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t step;
} fc_quant;

static inline int32_t unit_values(int32_t n)
{
    return n == 2 ? 4 : 8;
}

static inline int32_t codes_per_unit(int32_t n)
{
    return n == 2 ? 6 : 16;
}

static int32_t units_of(int32_t in_features, int32_t n)
{
    const int32_t u = (in_features + unit_values(n) - 1) / unit_values(n);
    return (u + 1) & ~1;
}

int32_t tp_fully_connected_nm_s8_get_buffer_size(const tp_dims *filter_dims, int32_t n)
{
#if TP_USE_DSP
    return units_of(filter_dims->c, n) * codes_per_unit(n) * 4; /* the pair words */
#else
    (void)filter_dims, (void)n;
    return 0;
#endif
}

#if TP_USE_DSP

TP_SP_HOT static void rows(const tp_fc_params *p, const fc_quant *q, const tp_nm_filter *f,
                           const int32_t *bias, int32_t units, int32_t n_out,
                           const uint32_t *table, int8_t *out)
{
    const int32_t cpu = codes_per_unit(f->n);
    const int8_t *values = f->values;
    const uint8_t *codes = f->codes;
    const int32_t *mult = q->mult, *shift = q->shift;
    for (int32_t o = 0; o < n_out; ++o, mult += q->step, shift += q->step) {
        int32_t acc = bias ? bias[o] : 0;
        const uint32_t *t = table;
        for (int32_t j = 0; j < units; j += 2, values += 4, t += 2 * cpu) {
            const int32_t w = tp_sp_read32(values);
            const uint32_t c = *codes++;
            acc = tp_smlad(tp_sxtb16(w), (int32_t)t[c & 0x0FU], acc);
            acc = tp_smlad(tp_sxtb16_ror8(w), (int32_t)t[cpu + (c >> 4)], acc);
        }
        out[o] = tp_sq_out_ms(acc, *mult, *shift, p->output_offset, p->activation.min,
                              p->activation.max);
    }
}

static void fc_row(const tp_fc_params *p, const fc_quant *q, const tp_nm_filter *f,
                   const int8_t *in, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, void *buf)
{
    const int32_t units = units_of(n_in, f->n);
    tp_sp_nm_pairs(in, n_in, f->n, units, p->input_offset, (uint32_t *)buf, 1);
    rows(p, q, f, bias, units, n_out, (const uint32_t *)buf, out);
}

#else /* portable C */

static int32_t position_of(int32_t n, uint32_t code, int32_t v)
{
    static const uint8_t pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
    if (n == 2) {
        return pairs[code][v];
    }
    return v == 0 ? (int32_t)(code & 3U) : 4 + (int32_t)(code >> 2);
}

static void fc_row(const tp_fc_params *p, const fc_quant *q, const tp_nm_filter *f,
                   const int8_t *in, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, void *buf)
{
    (void)buf;
    const int32_t units = units_of(n_in, f->n), uv = unit_values(f->n);
    for (int32_t o = 0; o < n_out; ++o) {
        const int8_t *values = f->values + o * units * 2;
        const uint8_t *codes = f->codes + o * units / 2;
        int32_t acc = bias ? bias[o] : 0;
        for (int32_t u = 0; u < units; ++u) {
            const uint32_t code = (codes[u / 2] >> (4 * (u & 1))) & 0x0FU;
            const int8_t *vw = values + 4 * (u / 2) + (u & 1);
            for (int32_t v = 0; v < 2; ++v) {
                const int32_t k = u * uv + position_of(f->n, code, v);
                if (k < n_in) {
                    acc += vw[2 * v] * (in[k] + p->input_offset);
                }
            }
        }
        const int32_t i = o * q->step;
        acc = tp_requantize(acc, q->mult[i], q->shift[i]) + p->output_offset;
        out[o] = (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
    }
}

#endif /* TP_USE_DSP */

static tp_status fc_run(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                        const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                        const tp_nm_filter *f, const int32_t *bias, const tp_dims *out_d,
                        int8_t *out)
{
    const int32_t n_in = f_d->c, n_out = f_d->n;
    const int32_t rows_n = in_d->n * in_d->h * in_d->w;
    if (in_d->c != n_in || out_d->c != n_out || out_d->n * out_d->h * out_d->w != rows_n ||
        (f->n != 1 && f->n != 2)) {
        return TP_ERR_ARG;
    }
    const int32_t size = tp_fully_connected_nm_s8_get_buffer_size(f_d, f->n);
    if (size > 0 && (ctx == NULL || ctx->buf == NULL || ctx->size < size)) {
        return TP_ERR_ARG;
    }
    for (int32_t r = 0; r < rows_n; ++r) {
        fc_row(p, q, f, in + r * n_in, bias, n_in, n_out, out + r * n_out,
               size > 0 ? ctx->buf : NULL);
    }
    return TP_OK;
}

tp_status tp_fully_connected_nm_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                   const tp_per_tensor_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const tp_nm_filter *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {&quant_params->multiplier, &quant_params->shift, 0};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}

tp_status tp_fully_connected_nm_per_channel_s8(const tp_context *ctx,
                                               const tp_fc_params *fc_params,
                                               const tp_per_channel_quant *quant_params,
                                               const tp_dims *input_dims, const int8_t *input,
                                               const tp_dims *filter_dims,
                                               const tp_nm_filter *filter,
                                               const tp_dims *bias_dims, const int32_t *bias,
                                               const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {quant_params->multiplier, quant_params->shift, 1};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}
