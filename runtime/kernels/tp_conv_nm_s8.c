/*
 * tinyprune runtime: N:M sparse int8 CONV_2D (at most N = 2 or 1 non-zeros in every group of 4
 * filter values along KH * KW * C_IN), any filter size, stride, padding, dilation; bit-exact
 * with TFLM reference_integer_ops::ConvPerChannel on the dense weights. Format: tp_nn_sparse.h.
 *
 * DSP path: four output pixels per pass. For each unit of the window (a group of four values
 * for 2:4, two groups for 1:4) every pair of values a code can name is built once per pass as
 * int16 words (offset added), [unit][code][pixel]: a unit's two kept weights (one SXTB16 of
 * the values word of two units) then meet their two inputs in each pixel with one SMLAD, the
 * code giving the address of the four pixels' words (two LDRD). Portable path: one pixel at a
 * time, the kept values decoded from the codes.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_conv.h"

#define PIXELS TP_SP_PIXELS

static inline int32_t unit_values(int32_t n)
{
    return n == 2 ? 4 : 8;
}

static inline int32_t codes_per_unit(int32_t n)
{
    return n == 2 ? 6 : 16;
}

/* Units per filter row: K / unit values rounded up, then to an even count. */
static int32_t units_of(const tp_dims *f_d, int32_t n)
{
    const int32_t u = (f_d->h * f_d->w * f_d->c + unit_values(n) - 1) / unit_values(n);
    return (u + 1) & ~1;
}

int32_t tp_conv_nm_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims,
                                      int32_t n)
{
    (void)input_dims;
    const int32_t units = units_of(filter_dims, n), k = units * unit_values(n);
#if TP_USE_DSP
    /* the pair table of a pass, its accumulators, the channels' splits, the int8 window */
    return units * codes_per_unit(n) * PIXELS * 4 +
           (PIXELS * 4 + (int32_t)sizeof(tp_sq_channel)) * filter_dims->n + k;
#else
    return k;
#endif
}

#if TP_USE_DSP

/* One unit against the four pixels: acc[p] += kept weights (lanes wl) . table words at a. */
#define TP_NM_UNIT4(a, wl)                                                                        \
    do {                                                                                        \
        int32_t x0_, x1_;                                                                       \
        TP_LOAD_2X32_AT(a, 0, x0_, x1_);                                                        \
        a0 = tp_smlad(wl, x0_, a0);                                                             \
        a1 = tp_smlad(wl, x1_, a1);                                                             \
        TP_LOAD_2X32_AT(a, 8, x0_, x1_);                                                        \
        a2 = tp_smlad(wl, x0_, a2);                                                             \
        a3 = tp_smlad(wl, x1_, a3);                                                             \
    } while (0)

/* The accumulators acc[o][0..3] of every output channel over the pass's table. */
TP_SP_HOT static void pass(const tp_nm_filter *f, const int32_t *bias, int32_t c_out,
                           int32_t units, const int8_t *table, int32_t *acc)
{
    const int32_t unit_bytes = codes_per_unit(f->n) * PIXELS * 4;
    const int8_t *values = f->values;
    const uint8_t *codes = f->codes;
    for (int32_t o = 0; o < c_out; ++o, acc += 4) {
        const int32_t b = bias ? bias[o] : 0;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b;
        const int8_t *t = table;
        for (int32_t j = 0; j < units; j += 2, values += 4, t += 2 * unit_bytes) {
            const int32_t w = tp_sp_read32(values);
            const uint32_t c = *codes++;
            const int32_t w0 = tp_sxtb16(w), w1 = tp_sxtb16_ror8(w);
            const int8_t *u0 = t + ((c & 0x0FU) << 4), *u1 = t + unit_bytes + ((c >> 4) << 4);
            TP_NM_UNIT4(u0, w0);
            TP_NM_UNIT4(u1, w1);
        }
        acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
    }
}

static void conv_run(const tp_sp_conv *l, const tp_nm_filter *f, const int8_t *in,
                     int32_t batches, int8_t *out, void *buf, int32_t k, int32_t units)
{
    const int32_t table_words = units * codes_per_unit(f->n) * PIXELS;
    uint32_t *table = (uint32_t *)buf;
    int32_t *acc = (int32_t *)(table + table_words);
    tp_sq_channel *chan = (tp_sq_channel *)(acc + PIXELS * l->c_out);
    int8_t *stage = (int8_t *)(chan + l->c_out);
    const int32_t pixels = l->out_h * l->out_w, in_size = l->win.in_h * l->win.in_w * l->win.c;
    for (int32_t o = 0; o < l->c_out; ++o) {
        chan[o] = tp_sq_channel_of(l->mult[o], l->shift[o]);
    }
    memset(table, 0, (size_t)table_words * 4); /* absent pixels' words stay 0 */
    for (int32_t b = 0; b < batches; ++b, in += in_size) {
        for (int32_t p0 = 0; p0 < pixels; p0 += PIXELS, out += PIXELS * l->c_out) {
            const int32_t valid = pixels - p0 < PIXELS ? pixels - p0 : PIXELS;
            for (int32_t p = 0; p < valid; ++p) {
                const int8_t *x = tp_sp_window_at(l, in, p0 + p, stage);
                tp_sp_nm_pairs(x, k, f->n, units, l->in_offset, table + p, PIXELS);
            }
            pass(f, l->bias, l->c_out, units, (const int8_t *)table, acc);
            tp_sp_store_pass(l, chan, acc, valid, out);
        }
    }
}

#else /* portable C */

/* Position (0 .. unit values - 1) of kept value v (0 or 1) of a unit with this code. */
static int32_t position_of(int32_t n, uint32_t code, int32_t v)
{
    static const uint8_t pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
    if (n == 2) {
        return pairs[code][v];
    }
    return v == 0 ? (int32_t)(code & 3U) : 4 + (int32_t)(code >> 2);
}

static void conv_run(const tp_sp_conv *l, const tp_nm_filter *f, const int8_t *in,
                     int32_t batches, int8_t *out, void *buf, int32_t k, int32_t units)
{
    const int32_t pixels = l->out_h * l->out_w, uv = unit_values(f->n);
    const int32_t in_size = l->win.in_h * l->win.in_w * l->win.c;
    for (int32_t b = 0; b < batches; ++b, in += in_size) {
        for (int32_t p = 0; p < pixels; ++p, out += l->c_out) {
            const int8_t *x = tp_sp_window_at(l, in, p, (int8_t *)buf);
            for (int32_t o = 0; o < l->c_out; ++o) {
                const int8_t *values = f->values + o * units * 2;
                const uint8_t *codes = f->codes + o * units / 2;
                int32_t acc = l->bias ? l->bias[o] : 0;
                for (int32_t u = 0; u < units; ++u) {
                    const uint32_t code = (codes[u / 2] >> (4 * (u & 1))) & 0x0FU;
                    /* values of units 2i and 2i + 1: [v0 of 2i, v0 of 2i + 1, v1 of 2i, ...] */
                    const int8_t *vw = values + 4 * (u / 2) + (u & 1);
                    for (int32_t v = 0; v < 2; ++v) {
                        const int32_t kk = u * uv + position_of(f->n, code, v);
                        if (kk < k) {
                            acc += vw[2 * v] * (x[kk] + l->in_offset);
                        }
                    }
                }
                acc = tp_requantize(acc, l->mult[o], l->shift[o]) + l->out_offset;
                out[o] = (int8_t)TP_CLAMP(acc, l->lo, l->hi);
            }
        }
    }
}

#endif /* TP_USE_DSP */

tp_status tp_conv_nm_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                        const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                        const int8_t *input, const tp_dims *filter_dims,
                        const tp_nm_filter *filter, const tp_dims *bias_dims,
                        const int32_t *bias, const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const tp_dims *in_d = input_dims, *f_d = filter_dims, *out_d = output_dims;
    if (f_d->c != in_d->c || f_d->n != out_d->c || in_d->n != out_d->n || ctx == NULL ||
        (filter->n != 1 && filter->n != 2) || ctx->buf == NULL ||
        ctx->size < tp_conv_nm_s8_get_buffer_size(in_d, f_d, filter->n)) {
        return TP_ERR_ARG;
    }
    const tp_sp_conv l = tp_sp_conv_of(conv_params, quant_params, in_d, f_d, out_d, bias);
    conv_run(&l, filter, input, in_d->n, output, ctx->buf, f_d->h * f_d->w * f_d->c,
             units_of(f_d, filter->n));
    return TP_OK;
}
