/*
 * tinyprune runtime: block-sparse int8 CONV_2D (R x 4 blocks along the KH * KW * C_IN axis of
 * each filter row, R = 1, 2 or 4), any filter size (1x1 and kxk), stride, padding, dilation;
 * bit-exact with TFLM reference_integer_ops::ConvPerChannel on the dense weights the blocks
 * come from. Format and arguments: tp_nn_sparse.h.
 *
 * The input offset is folded into the bias by the generator (as for tp_conv_interleaved_s8).
 * DSP path: four output pixels at a time. Each pixel's window (padding as the input zero point,
 * rows inside the image read in place) is widened as raw int16 into one of four interleaved
 * columns: 32 bytes per group of four values ([x0 x2][x1 x3] of
 * pixel 0, then of pixels 1, 2, 3). Each filter row then walks its row group's blocks: the
 * block column gives the group's 32 bytes (four LDRD), the weight word two SXTB16, and eight
 * SMLAD make 16 MACs. Portable path: one pixel at a time, one value at a time, same format.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_conv.h"

#define PIXELS TP_SP_PIXELS

static int32_t depth4(const tp_dims *f_d)
{
    return (f_d->h * f_d->w * f_d->c + 3) & ~3;
}

int32_t tp_conv_bsr_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
#if TP_USE_DSP
    /* four int16 columns, the accumulators of a pass, the channels' requantization, the int8
     * window */
    return (2 * PIXELS + 1) * depth4(filter_dims) +
           (PIXELS * 4 + (int32_t)sizeof(tp_sq_channel)) * filter_dims->n;
#else
    return depth4(filter_dims);
#endif
}

static int32_t count_of(const tp_bsr_filter *f, int32_t g)
{
    return f->count_bytes == 1 ? ((const uint8_t *)f->counts)[g] : ((const uint16_t *)f->counts)[g];
}

#if TP_USE_DSP

/* One block of one filter row against the four columns: acc[p] += w . column p's group. */
#define TP_BSR_BLOCK4(a, w, acc)                                                                  \
    do {                                                                                        \
        const int8_t *a_ = (a);                                                                 \
        const int32_t w_ = (w), we_ = tp_sxtb16(w_), wo_ = tp_sxtb16_ror8(w_);                   \
        int32_t x0_, x1_;                                                                       \
        TP_LOAD_2X32_AT(a_, 0, x0_, x1_);                                                       \
        acc##0 = tp_smlad(we_, x0_, acc##0);                                                    \
        acc##0 = tp_smlad(wo_, x1_, acc##0);                                                    \
        TP_LOAD_2X32_AT(a_, 8, x0_, x1_);                                                        \
        acc##1 = tp_smlad(we_, x0_, acc##1);                                                    \
        acc##1 = tp_smlad(wo_, x1_, acc##1);                                                    \
        TP_LOAD_2X32_AT(a_, 16, x0_, x1_);                                                       \
        acc##2 = tp_smlad(we_, x0_, acc##2);                                                    \
        acc##2 = tp_smlad(wo_, x1_, acc##2);                                                    \
        TP_LOAD_2X32_AT(a_, 24, x0_, x1_);                                                       \
        acc##3 = tp_smlad(we_, x0_, acc##3);                                                    \
        acc##3 = tp_smlad(wo_, x1_, acc##3);                                                    \
    } while (0)

/*
 * One filter row against the four columns at col: acc[p] = bias + row . column p, over n
 * blocks: block columns at ip0 (uint8 or uint16 as `wide`), weight words contiguous at *wp
 * (advanced). Four blocks per trip for
 * uint8, their columns read as one word and their weights as two LDRD.
 */
static inline __attribute__((always_inline)) void row4(const int8_t *col, const void *ip0,
                                                       const int8_t **wp, int32_t n, int wide,
                                                       int32_t bias, int32_t acc[4])
{
    int32_t a0 = bias, a1 = bias, a2 = bias, a3 = bias;
    const int8_t *w = *wp;
    if (!wide) {
        const uint8_t *ip = (const uint8_t *)ip0;
        for (; n >= 4; n -= 4, ip += 4) {
            const uint32_t q = (uint32_t)tp_sp_read32(ip);
            int32_t w0, w1;
            tp_sp_load_2x32_inc(&w, &w0, &w1);
            TP_BSR_BLOCK4(col + (TP_SP_UXTB(q, 0) << 5), w0, a);
            TP_BSR_BLOCK4(col + (TP_SP_UXTB(q, 8) << 5), w1, a);
            tp_sp_load_2x32_inc(&w, &w0, &w1);
            TP_BSR_BLOCK4(col + (TP_SP_UXTB(q, 16) << 5), w0, a);
            TP_BSR_BLOCK4(col + ((q >> 24) << 5), w1, a);
        }
        for (; n > 0; --n, w += 4) {
            TP_BSR_BLOCK4(col + ((uint32_t)*ip++ << 5), tp_sp_read32(w), a);
        }
    } else {
        const uint16_t *ip = (const uint16_t *)ip0;
        for (; n > 0; --n, w += 4) {
            TP_BSR_BLOCK4(col + ((uint32_t)*ip++ << 5), tp_sp_read32(w), a);
        }
    }
    *wp = w;
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* The accumulators acc[o][0..3] of every output channel for the four columns at col. */
TP_SP_HOT static void pass_any(const tp_bsr_filter *f, const int32_t *bias, int32_t c_out,
                               const int8_t *col, int32_t *acc)
{
    const int32_t r = f->group, ib = f->index_bytes;
    const int8_t *ip = (const int8_t *)f->index;
    const int8_t *w = f->blocks;
    for (int32_t g = 0, o = 0; o < c_out; ++g) {
        const int32_t n = count_of(f, g);
        for (int32_t i = 0; i < r; ++i, ++o, acc += 4) {
            row4(col, ip, &w, n, ib == 2, bias ? bias[o] : 0, acc);
        }
        ip += n * ib;
    }
}

/* pass_any for the usual format: R = 1, uint8 counts and block columns, a bias. */
TP_SP_HOT static void pass_r1_u8(const tp_bsr_filter *f, const int32_t *bias, int32_t c_out,
                                 const int8_t *col, int32_t *acc)
{
    const uint8_t *counts = (const uint8_t *)f->counts, *end = counts + c_out;
    const uint8_t *ip = (const uint8_t *)f->index;
    const int8_t *w = f->blocks;
    do {
        const int32_t n = *counts++;
        row4(col, ip, &w, n, 0, *bias++, acc);
        ip += n, acc += 4;
    } while (counts != end);
}

/* A channel of the fused pass: its block count and requantization (20 bytes, the size of the
 * tp_sq_channel it replaces in the scratch). */
typedef struct {
    int32_t n;
    tp_sq_fast q;
} chan_r1;

/* The fused channels of the usual format; 0 when the layer is not fit for them. */
static int chan_r1_of(const tp_sp_conv *l, const tp_bsr_filter *f, chan_r1 *c)
{
    if (!tp_sq_fast_ok(l)) {
        return 0;
    }
    for (int32_t o = 0; o < l->c_out; ++o) {
        c[o].n = ((const uint8_t *)f->counts)[o];
        c[o].q = tp_sq_fast_at(l, o);
    }
    return 1;
}

/*
 * A full pass of the usual format (R = 1, uint8 counts and block columns) with the
 * requantization fused (tp_sq_fast): each row's four accumulators start at its folded bias, take
 * its blocks two per trip (one LDRD of their weights; the block columns byte by byte) and are
 * requantized and stored at once, out[p * C_OUT + o] for the pass's pixels p.
 */
TP_SP_HOT static void pass_r1_fused(const uint8_t *ip, const int8_t *w, const chan_r1 *c,
                                    int32_t c_out, const int8_t *col, int8_t *out)
{
    const int8_t *const end = out + c_out;
    do {
        int32_t n = c->n;
        int32_t a0 = c->q.bias, a1 = a0, a2 = a0, a3 = a0;
        if (n & 1) {
            TP_BSR_BLOCK4(col + ((uint32_t)*ip++ << 5), tp_sp_read32(w), a);
            w += 4;
        }
        for (n >>= 1; n > 0; --n) {
            int32_t w0, w1;
            tp_sp_load_2x32_inc(&w, &w0, &w1);
            TP_BSR_BLOCK4(col + ((uint32_t)ip[0] << 5), w0, a);
            TP_BSR_BLOCK4(col + ((uint32_t)ip[1] << 5), w1, a);
            ip += 2;
        }
        tp_sq_fast_store4(&c->q, a0, a1, a2, a3, out++, c_out);
        ++c;
    } while (out != end);
}

/* The columns of four consecutive pixels of a pointwise layer (c values each, c % 4 == 0, the
 * pixels' inputs contiguous at x): group g of pixel p at col[8 g + 2 p], col[8 g + 2 p + 1]. */
TP_SP_NOINLINE static void widen_pointwise4(const int8_t *x, int32_t c, int32_t *col)
{
    const int8_t *const end = x + c;
    for (; x != end; x += 4, col += 8) {
        const int32_t v0 = tp_sp_read32(x), v1 = tp_sp_read32(x + c);
        const int32_t v2 = tp_sp_read32(x + 2 * c), v3 = tp_sp_read32(x + 3 * c);
        col[0] = tp_sxtb16(v0), col[1] = tp_sxtb16_ror8(v0);
        col[2] = tp_sxtb16(v1), col[3] = tp_sxtb16_ror8(v1);
        col[4] = tp_sxtb16(v2), col[5] = tp_sxtb16_ror8(v2);
        col[6] = tp_sxtb16(v3), col[7] = tp_sxtb16_ror8(v3);
    }
}

static void conv_run(const tp_sp_conv *l, const tp_bsr_filter *f, const int8_t *in,
                     int32_t batches, int8_t *out, void *buf, int32_t k, int32_t k4)
{
    int32_t *col = (int32_t *)buf;
    int32_t *acc = col + 2 * k4;
    tp_sq_channel *chan = (tp_sq_channel *)(acc + PIXELS * l->c_out);
    int8_t *stage = (int8_t *)(chan + l->c_out);
    const int r1_u8 = f->group == 1 && f->index_bytes == 1 && f->count_bytes == 1;
    const int fused = r1_u8 && chan_r1_of(l, f, (chan_r1 *)chan);
    for (int32_t o = 0; o < l->c_out && !fused; ++o) {
        chan[o] = tp_sq_channel_of(l->mult[o], l->shift[o]);
    }
    const int32_t pixels = l->out_h * l->out_w, in_size = l->win.in_h * l->win.in_w * l->win.c;
    /* 1x1, stride 1, no padding, whole groups: output pixel p reads input pixel p */
    const int pointwise = l->win.kh == 1 && l->win.kw == 1 && l->stride_h == 1 &&
                          l->stride_w == 1 && l->pad_h == 0 && l->pad_w == 0 &&
                          l->out_w == l->win.in_w && l->out_h == l->win.in_h && (k & 3) == 0;
    memset(col, 0, (size_t)(8 * k4)); /* columns of absent pixels stay 0 (their results dropped) */
    for (int32_t b = 0; b < batches; ++b, in += in_size) {
        for (int32_t p0 = 0; p0 < pixels; p0 += PIXELS, out += PIXELS * l->c_out) {
            const int32_t valid = pixels - p0 < PIXELS ? pixels - p0 : PIXELS;
            if (pointwise && valid == PIXELS) {
                widen_pointwise4(in + p0 * l->win.c, l->win.c, col);
            } else {
                for (int32_t p = 0; p < valid; ++p) {
                    tp_sp_widen_window(l, in, p0 + p, col + 2 * p, stage, k);
                }
            }
            if (fused) { /* a partial pass writes its four pixels to the unused accumulators */
                int8_t *dst = valid == PIXELS ? out : (int8_t *)acc;
                pass_r1_fused((const uint8_t *)f->index, f->blocks, (const chan_r1 *)chan, l->c_out,
                              (const int8_t *)col, dst);
                if (dst != out) {
                    memcpy(out, dst, (size_t)(valid * l->c_out));
                }
                continue;
            }
            if (r1_u8 && l->bias != NULL) {
                pass_r1_u8(f, l->bias, l->c_out, (const int8_t *)col, acc);
            } else {
                pass_any(f, l->bias, l->c_out, (const int8_t *)col, acc);
            }
            tp_sp_store_pass(l, chan, acc, valid, out);
        }
    }
}

#else /* portable C */

static int32_t col_of(const tp_bsr_filter *f, int32_t j)
{
    return f->index_bytes == 1 ? ((const uint8_t *)f->index)[j] : ((const uint16_t *)f->index)[j];
}

static void conv_run(const tp_sp_conv *l, const tp_bsr_filter *f, const int8_t *in,
                     int32_t batches, int8_t *out, void *buf, int32_t k, int32_t k4)
{
    (void)k4;
    const int32_t r = f->group, pixels = l->out_h * l->out_w;
    const int32_t in_size = l->win.in_h * l->win.in_w * l->win.c;
    for (int32_t b = 0; b < batches; ++b, in += in_size) {
        for (int32_t p = 0; p < pixels; ++p, out += l->c_out) {
            const int8_t *x = tp_sp_window_at(l, in, p, (int8_t *)buf);
            int32_t j0 = 0;
            for (int32_t g = 0, o = 0; o < l->c_out; ++g) {
                const int32_t n = count_of(f, g);
                for (int32_t i = 0; i < r; ++i, ++o) {
                    int32_t acc = l->bias ? l->bias[o] : 0;
                    for (int32_t j = j0; j < j0 + n; ++j) {
                        const int8_t *w = f->blocks + (j0 * r + i * n + (j - j0)) * 4;
                        const int32_t k0 = 4 * col_of(f, j);
                        for (int32_t t = 0; t < 4 && k0 + t < k; ++t) {
                            acc += w[t] * x[k0 + t]; /* the offset is in the folded bias */
                        }
                    }
                    acc = tp_requantize(acc, l->mult[o], l->shift[o]) + l->out_offset;
                    out[o] = (int8_t)TP_CLAMP(acc, l->lo, l->hi);
                }
                j0 += n;
            }
        }
    }
}

#endif /* TP_USE_DSP */

tp_status tp_conv_bsr_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                         const tp_per_channel_quant *quant_params, const tp_dims *input_dims,
                         const int8_t *input, const tp_dims *filter_dims,
                         const tp_bsr_filter *filter, const tp_dims *bias_dims,
                         const int32_t *bias, const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const tp_conv_params *p = conv_params;
    const tp_dims *in_d = input_dims, *f_d = filter_dims, *out_d = output_dims;
    const tp_bsr_filter *f = filter;
    if (f_d->c != in_d->c || f_d->n != out_d->c || in_d->n != out_d->n || ctx == NULL ||
        ctx->buf == NULL || ctx->size < tp_conv_bsr_s8_get_buffer_size(in_d, f_d) ||
        (f->group != 1 && f->group != 2 && f->group != 4) || f_d->n % f->group != 0 ||
        (f->count_bytes != 1 && f->count_bytes != 2) ||
        (f->index_bytes != 1 && f->index_bytes != 2)) {
        return TP_ERR_ARG;
    }
    const tp_sp_conv l = tp_sp_conv_of(p, quant_params, in_d, f_d, out_d, bias);
    conv_run(&l, f, input, in_d->n, output, ctx->buf, f_d->h * f_d->w * f_d->c, depth4(f_d));
    return TP_OK;
}
