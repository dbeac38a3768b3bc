/*
 * tinyprune runtime: int8 FULLY_CONNECTED that skips the input values equal to the input zero
 * point (exactly zero after the offset, e.g. after a ReLU): bit-exact with TFLM
 * reference_integer_ops::FullyConnected / FullyConnectedPerChannel, whatever the input. Also the
 * kernel of a 1x1, stride-1 CONV_2D (its pixels are the batch rows). Format: tp_nn_sparse.h.
 *
 * DSP path: per input row, the non-zero inputs are listed once (each as one word: the value with
 * the offset added in the top half, its byte offset in the weight rows in the bottom half); each
 * group of four output channels then walks the list: per listed input one LDR of the group's
 * four weights for it, two SXTB16 and four SMLAxT. Portable path: the same list, one MAC at a
 * time.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_dsp.h"

typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t step;
} fc_quant;

int32_t tp_fully_connected_zskip_s8_get_buffer_size(const tp_dims *filter_dims)
{
    return 4 * filter_dims->c; /* the list of non-zero inputs, one word each */
}

/* The non-zero inputs of a row as words ((in[k] + offset) << 16) | 4 k; returns their number. */
static int32_t list_nonzero(const int8_t *in, int32_t n, int32_t offset, uint32_t *list)
{
    const int8_t zp = (int8_t)-offset;
    uint32_t *l = list;
    for (int32_t k = 0; k < n; ++k) {
        if (in[k] != zp) {
            *l++ = ((uint32_t)(in[k] + offset) << 16) | (uint32_t)(4 * k);
        }
    }
    return (int32_t)(l - list);
}

static inline int8_t out_of(int32_t acc, const tp_fc_params *p, const fc_quant *q, int32_t o)
{
    const int32_t i = o * q->step;
#if TP_USE_DSP
    return tp_sq_out_ms(acc, q->mult[i], q->shift[i], p->output_offset, p->activation.min,
                        p->activation.max);
#else
    acc = tp_requantize(acc, q->mult[i], q->shift[i]) + p->output_offset;
    return (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
#endif
}

#if TP_USE_DSP

/* The group of four output channels whose weights are w ([IN][4]) over the m listed inputs. */
TP_SP_HOT static void group4(const int8_t *w, const uint32_t *list, int32_t m, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const uint32_t *end = list + (m & ~1);
#define TP_ZSKIP_INPUT(e)                                                                         \
    do {                                                                                        \
        const int32_t v_ = tp_sp_read32(w + ((e) & 0xFFFF));                                    \
        const int32_t we_ = tp_sxtb16(v_), wo_ = tp_sxtb16_ror8(v_);                             \
        a0 = tp_sp_smlabt(we_, e, a0); /* channel 0's weight x the input (top half of e) */     \
        a2 = tp_smlatt(we_, e, a2);                                                             \
        a1 = tp_sp_smlabt(wo_, e, a1);                                                          \
        a3 = tp_smlatt(wo_, e, a3);                                                             \
    } while (0)
    for (; list != end; list += 2) {
        const int32_t e0 = (int32_t)list[0], e1 = (int32_t)list[1];
        TP_ZSKIP_INPUT(e0);
        TP_ZSKIP_INPUT(e1);
    }
    if (m & 1) {
        const int32_t e = (int32_t)*list;
        TP_ZSKIP_INPUT(e);
    }
#undef TP_ZSKIP_INPUT
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

#else /* portable C */

static void group4(const int8_t *w, const uint32_t *list, int32_t m, int32_t acc[4])
{
    for (int32_t j = 0; j < m; ++j) {
        const int8_t *wk = w + (list[j] & 0xFFFFU);
        const int32_t x = (int16_t)(list[j] >> 16);
        for (int32_t i = 0; i < 4; ++i) {
            acc[i] += wk[i] * x;
        }
    }
}

#endif /* TP_USE_DSP */

static void fc_row(const tp_fc_params *p, const fc_quant *q, const int8_t *in,
                   const int8_t *filter, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, uint32_t *list)
{
    const int32_t m = list_nonzero(in, n_in, p->input_offset, list);
    for (int32_t o = 0; o < n_out; o += 4, filter += 4 * n_in) {
        int32_t acc[4];
        for (int32_t i = 0; i < 4; ++i) {
            acc[i] = bias && o + i < n_out ? bias[o + i] : 0;
        }
        group4(filter, list, m, acc);
        for (int32_t i = 0; i < 4 && o + i < n_out; ++i) {
            out[o + i] = out_of(acc[i], p, q, o + i);
        }
    }
}

static tp_status fc_run(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                        const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                        const int8_t *filter, const int32_t *bias, const tp_dims *out_d,
                        int8_t *out)
{
    const int32_t n_in = f_d->c, n_out = f_d->n;
    const int32_t rows = in_d->n * in_d->h * in_d->w;
    if (in_d->c != n_in || out_d->c != n_out || out_d->n * out_d->h * out_d->w != rows ||
        n_in > 16383 || ctx == NULL || ctx->buf == NULL ||
        ctx->size < tp_fully_connected_zskip_s8_get_buffer_size(f_d)) {
        return TP_ERR_ARG;
    }
    for (int32_t r = 0; r < rows; ++r) {
        fc_row(p, q, in + r * n_in, filter, bias, n_in, n_out, out + r * n_out,
               (uint32_t *)ctx->buf);
    }
    return TP_OK;
}

tp_status tp_fully_connected_zskip_s8(const tp_context *ctx, const tp_fc_params *fc_params,
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

tp_status tp_fully_connected_zskip_per_channel_s8(const tp_context *ctx,
                                                  const tp_fc_params *fc_params,
                                                  const tp_per_channel_quant *quant_params,
                                                  const tp_dims *input_dims, const int8_t *input,
                                                  const tp_dims *filter_dims,
                                                  const int8_t *filter, const tp_dims *bias_dims,
                                                  const int32_t *bias, const tp_dims *output_dims,
                                                  int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {quant_params->multiplier, quant_params->shift, 1};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}
