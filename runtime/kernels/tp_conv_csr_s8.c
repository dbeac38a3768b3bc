/*
 * tinyprune runtime: unstructured sparse int8 CONV_2D (CSR: each filter row's non-zero values
 * with their positions along KH * KW * C_IN), any filter size, stride, padding, dilation;
 * bit-exact with TFLM reference_integer_ops::ConvPerChannel on the dense weights. Format:
 * tp_nn_sparse.h.
 *
 * DSP path: four output pixels per pass, their windows widened to int16 (offset added) value by
 * value as [k][pixel] (8 bytes per position k: one LDRD gives pixels 0, 1 and 2, 3). Each
 * non-zero weight then takes its position's LDRD and four SMLAxy (the weight in one half of a
 * SXTB16 word of four weights). Portable path: one pixel at a time.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_conv.h"

#define PIXELS TP_SP_PIXELS

static int32_t depth_of(const tp_dims *f_d)
{
    return f_d->h * f_d->w * f_d->c;
}

int32_t tp_conv_csr_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
    const int32_t k4 = (depth_of(filter_dims) + 3) & ~3;
#if TP_USE_DSP
    /* the [k][pixel] int16 values, the pass's accumulators, the channels' splits, the window */
    return 2 * PIXELS * k4 + (PIXELS * 4 + (int32_t)sizeof(tp_sq_channel)) * filter_dims->n + k4;
#else
    return k4;
#endif
}

static inline int32_t count_of(const tp_csr_filter *f, int32_t o)
{
    return f->count_bytes == 1 ? ((const uint8_t *)f->counts)[o] : ((const uint16_t *)f->counts)[o];
}

#if TP_USE_DSP

/* One non-zero weight (the bottom or, with top, the top half of w) against the four pixels'
 * values at a. Each argument is evaluated once. */
#define TP_CSR_VALUE(a, w, top)                                                                   \
    do {                                                                                        \
        const int32_t w_ = (w);                                                                 \
        int32_t x0_, x1_;                                                                       \
        tp_load_2x32(a, &x0_, &x1_);                                                            \
        if (top) {                                                                              \
            a0 = tp_sp_smlabt(x0_, w_, a0), a1 = tp_smlatt(x0_, w_, a1);                         \
            a2 = tp_sp_smlabt(x1_, w_, a2), a3 = tp_smlatt(x1_, w_, a3);                         \
        } else {                                                                                \
            a0 = tp_smlabb(x0_, w_, a0), a1 = tp_sp_smlatb(x0_, w_, a1);                         \
            a2 = tp_smlabb(x1_, w_, a2), a3 = tp_sp_smlatb(x1_, w_, a3);                         \
        }                                                                                       \
    } while (0)

/*
 * One filter row: acc[p] = bias + row . pixel p over its n values (weights at *vp, positions at
 * *ip, uint8 or uint16 as `wide`; both advanced). Four values per trip (their weights read as
 * one word, uint8 positions as one word).
 */
static inline __attribute__((always_inline)) void row4(const int8_t *col, const void **ip,
                                                       const int8_t **vp, int32_t n, int wide,
                                                       int32_t bias, int32_t acc[4])
{
    int32_t a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    const int8_t *v = *vp;
    if (!wide) {
        const uint8_t *q = (const uint8_t *)*ip;
        for (; n >= 4; n -= 4, q += 4, v += 4) {
            const uint32_t k4 = (uint32_t)tp_sp_read32(q);
            const int32_t w = tp_sp_read32(v), we = tp_sxtb16(w), wo = tp_sxtb16_ror8(w);
            TP_CSR_VALUE(col + (TP_SP_UXTB(k4, 0) << 3), we, 0);
            TP_CSR_VALUE(col + (TP_SP_UXTB(k4, 8) << 3), wo, 0);
            TP_CSR_VALUE(col + (TP_SP_UXTB(k4, 16) << 3), we, 1);
            TP_CSR_VALUE(col + ((k4 >> 24) << 3), wo, 1);
        }
        for (; n > 0; --n) {
            TP_CSR_VALUE(col + ((uint32_t)*q++ << 3), *v++, 0);
        }
        *ip = q;
    } else {
        const uint16_t *q = (const uint16_t *)*ip;
        for (; n > 0; --n) {
            TP_CSR_VALUE(col + ((uint32_t)*q++ << 3), *v++, 0);
        }
        *ip = q;
    }
    *vp = v;
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

TP_SP_HOT static void pass(const tp_csr_filter *f, const int32_t *bias, int32_t c_out,
                           const int8_t *col, int32_t *acc)
{
    const void *ip = f->index;
    const int8_t *v = f->values;
    const int wide = f->index_bytes == 2;
    for (int32_t o = 0; o < c_out; ++o, acc += 4) {
        row4(col, &ip, &v, count_of(f, o), wide, bias ? bias[o] : 0, acc);
    }
}

/* Pixel p's window values as int16 (offset added) at col[k * PIXELS + p], k < k4. */
static void spread(const int8_t *x, int32_t k, int32_t k4, int32_t offset, int16_t *col,
                   int32_t p)
{
    int16_t *d = col + p;
    for (int32_t i = 0; i < k; ++i, d += PIXELS) {
        *d = (int16_t)(x[i] + offset);
    }
    for (int32_t i = k; i < k4; ++i, d += PIXELS) {
        *d = 0;
    }
}

static void conv_run(const tp_sp_conv *l, const tp_csr_filter *f, const int8_t *in,
                     int32_t batches, int8_t *out, void *buf, int32_t k, int32_t k4)
{
    int16_t *col = (int16_t *)buf;
    int32_t *acc = (int32_t *)(col + PIXELS * k4);
    tp_sq_channel *chan = (tp_sq_channel *)(acc + PIXELS * l->c_out);
    int8_t *stage = (int8_t *)(chan + l->c_out);
    const int32_t pixels = l->out_h * l->out_w, in_size = l->win.in_h * l->win.in_w * l->win.c;
    for (int32_t o = 0; o < l->c_out; ++o) {
        chan[o] = tp_sq_channel_of(l->mult[o], l->shift[o]);
    }
    memset(col, 0, (size_t)(2 * PIXELS * k4)); /* absent pixels' values stay 0 */
    for (int32_t b = 0; b < batches; ++b, in += in_size) {
        for (int32_t p0 = 0; p0 < pixels; p0 += PIXELS, out += PIXELS * l->c_out) {
            const int32_t valid = pixels - p0 < PIXELS ? pixels - p0 : PIXELS;
            for (int32_t p = 0; p < valid; ++p) {
                spread(tp_sp_window_at(l, in, p0 + p, stage), k, k4, l->in_offset, col, p);
            }
            pass(f, l->bias, l->c_out, (const int8_t *)col, acc);
            tp_sp_store_pass(l, chan, acc, valid, out);
        }
    }
}

#else /* portable C */

static void conv_run(const tp_sp_conv *l, const tp_csr_filter *f, const int8_t *in,
                     int32_t batches, int8_t *out, void *buf, int32_t k, int32_t k4)
{
    (void)k, (void)k4;
    const int32_t pixels = l->out_h * l->out_w;
    const int32_t in_size = l->win.in_h * l->win.in_w * l->win.c;
    for (int32_t b = 0; b < batches; ++b, in += in_size) {
        for (int32_t p = 0; p < pixels; ++p, out += l->c_out) {
            const int8_t *x = tp_sp_window_at(l, in, p, (int8_t *)buf);
            int32_t j = 0;
            for (int32_t o = 0; o < l->c_out; ++o) {
                int32_t acc = l->bias ? l->bias[o] : 0;
                for (const int32_t end = j + count_of(f, o); j < end; ++j) {
                    const int32_t kk = f->index_bytes == 1 ? ((const uint8_t *)f->index)[j]
                                                            : ((const uint16_t *)f->index)[j];
                    acc += f->values[j] * (x[kk] + l->in_offset);
                }
                acc = tp_requantize(acc, l->mult[o], l->shift[o]) + l->out_offset;
                out[o] = (int8_t)TP_CLAMP(acc, l->lo, l->hi);
            }
        }
    }
}

#endif /* TP_USE_DSP */

tp_status tp_conv_csr_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                         const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                         const int8_t *input, const tp_dims *filter_dims,
                         const tp_csr_filter *filter, const tp_dims *bias_dims,
                         const int32_t *bias, const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const tp_dims *in_d = input_dims, *f_d = filter_dims, *out_d = output_dims;
    const tp_csr_filter *f = filter;
    if (f_d->c != in_d->c || f_d->n != out_d->c || in_d->n != out_d->n || ctx == NULL ||
        ctx->buf == NULL || ctx->size < tp_conv_csr_s8_get_buffer_size(in_d, f_d) ||
        (f->count_bytes != 1 && f->count_bytes != 2) ||
        (f->index_bytes != 1 && f->index_bytes != 2)) {
        return TP_ERR_ARG;
    }
    const tp_sp_conv l = tp_sp_conv_of(conv_params, quant_params, in_d, f_d, out_d, bias);
    const int32_t k = depth_of(f_d);
    conv_run(&l, f, input, in_d->n, output, ctx->buf, k, (k + 3) & ~3);
    return TP_OK;
}
