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
 * SMLAD make 16 MACs. The usual format (R = 1, uint8 indices) with a full-range activation
 * requantizes each row's four results at once (pass_r1_fused, hand-scheduled on Arm).
 * Portable path: one pixel at a time, one value at a time, same format.
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
 * its blocks (an odd one first, then two per trip) and are requantized and stored at once,
 * out[p * C_OUT + o] for the pass's pixels p. On an Arm core with the DSP extension this is the
 * hand-scheduled pass_r1_fused_arm below (gcc 12 spills the row's pointers around the block
 * loop: ~15 cycles a row); the C is its reference (host tests of the DSP path).
 */
#if TP_DSP_NATIVE && defined(__GNUC__)

void tp_conv_bsr_s8_pass_r1(const uint8_t *ip, const int8_t *w, const chan_r1 *c, int32_t c_out,
                            const int8_t *col, int8_t *out);

/* One block: index byte (r10), weight word (r11) -> r6, r7 = SXTB16 halves; the four columns'
 * words at col (r9) + 32 * index, two per LDRD, into the accumulators r0..r3. */
#define TP_BSR_ASM_BLOCK                                                                        \
    "    ldrb   r8, [r10], #1\n"                                                                \
    "    ldr    r7, [r11], #4\n"                                                                \
    "    add    r8, r9, r8, lsl #5\n"                                                           \
    "    sxtb16 r6, r7\n"                                                                       \
    "    sxtb16 r7, r7, ror #8\n"                                                               \
    "    ldrd   r4, r5, [r8]\n"                                                                 \
    "    smlad  r0, r6, r4, r0\n"                                                               \
    "    smlad  r0, r7, r5, r0\n"                                                               \
    "    ldrd   r4, r5, [r8, #8]\n"                                                             \
    "    smlad  r1, r6, r4, r1\n"                                                               \
    "    smlad  r1, r7, r5, r1\n"                                                               \
    "    ldrd   r4, r5, [r8, #16]\n"                                                            \
    "    smlad  r2, r6, r4, r2\n"                                                               \
    "    smlad  r2, r7, r5, r2\n"                                                               \
    "    ldrd   r4, r5, [r8, #24]\n"                                                            \
    "    smlad  r3, r6, r4, r3\n"                                                               \
    "    smlad  r3, r7, r5, r3\n"

/* One output: accumulator ACC (doubled in place) with mult r4, e r5, add r6 -> r8 (tp_sq_fast_out). */
#define TP_BSR_ASM_OUT(acc)                                                                     \
    "    lsl    " acc ", " acc ", #1\n"                                                         \
    "    smmlar r8, " acc ", r4, r6\n"                                                          \
    "    add    r8, r8, " acc ", asr #31\n"                                                     \
    "    asr    r8, r8, r5\n"                                                                   \
    "    ssat   r8, #8, r8\n"

/* Registers: r0-r3 accumulators, r4 r5 column words (then mult, e), r6 r7 weight halves (then
 * add), r8 address / output, r9 col, r10 block columns, r11 weights, r12 end of the row's
 * columns (then step), lr the channel (chan_r1, 20 bytes); on the stack out, step, end of c. */
__asm__(
    "    .text\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .p2align 2\n"
    "    .global tp_conv_bsr_s8_pass_r1\n"
    "    .type tp_conv_bsr_s8_pass_r1, %function\n"
    "    .thumb_func\n"
    "tp_conv_bsr_s8_pass_r1:\n"
    "    push   {r4-r11, lr}\n"
    "    sub    sp, sp, #12\n"
    "    ldr    r9, [sp, #48]\n"          /* col */
    "    ldr    r4, [sp, #52]\n"          /* out */
    "    strd   r4, r3, [sp]\n"           /* out, step = c_out */
    "    add    r4, r3, r3, lsl #2\n"
    "    add    r4, r2, r4, lsl #2\n"     /* c + 20 c_out */
    "    str    r4, [sp, #8]\n"
    "    mov    r10, r0\n"
    "    mov    r11, r1\n"
    "    mov    lr, r2\n"
    "1:\n"                                /* a row */
    "    ldrd   r8, r0, [lr]\n"           /* n, bias */
    "    mov    r1, r0\n"
    "    mov    r2, r0\n"
    "    mov    r3, r0\n"
    "    add    r12, r10, r8\n"
    "    tst    r8, #1\n"
    "    beq    2f\n"
    TP_BSR_ASM_BLOCK
    "2:\n"
    "    cmp    r10, r12\n"
    "    beq    4f\n"
    "3:\n"                                /* two blocks a trip */
    TP_BSR_ASM_BLOCK
    TP_BSR_ASM_BLOCK
    "    cmp    r10, r12\n"
    "    bne    3b\n"
    "4:\n"                                /* requantize and store the row's four results */
    "    ldrd   r4, r5, [lr, #8]\n"       /* mult, e */
    "    ldr    r6, [lr, #16]\n"          /* add */
    "    add    lr, lr, #20\n"
    "    ldrd   r7, r12, [sp]\n"          /* out, step */
    TP_BSR_ASM_OUT("r0")
    "    strb   r8, [r7]\n"
    TP_BSR_ASM_OUT("r1")
    "    strb   r8, [r7, r12]\n"
    "    add    r0, r7, r12, lsl #1\n"
    TP_BSR_ASM_OUT("r2")
    "    strb   r8, [r0]\n"
    TP_BSR_ASM_OUT("r3")
    "    strb   r8, [r0, r12]\n"
    "    add    r7, r7, #1\n"
    "    str    r7, [sp]\n"
    "    ldr    r8, [sp, #8]\n"
    "    cmp    lr, r8\n"
    "    bne    1b\n"
    "    add    sp, sp, #12\n"
    "    pop    {r4-r11, pc}\n"
    "    .size tp_conv_bsr_s8_pass_r1, . - tp_conv_bsr_s8_pass_r1\n");

#define pass_r1_fused tp_conv_bsr_s8_pass_r1

#else

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

#endif

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
    if (pixels < PIXELS) { /* columns no pixel writes before the (only, partial) pass */
        memset(col, 0, (size_t)(8 * k4)); /* their results are dropped; later partial passes
                                           * reuse the previous pass's columns */
    }
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
