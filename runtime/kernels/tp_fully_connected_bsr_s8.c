/*
 * tinyprune runtime: block-sparse int8 FULLY_CONNECTED (R x 4 blocks, R = 1, 2 or 4), bit-exact
 * with TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel on the dense weights
 * the blocks come from (zeros everywhere else). Format and arguments: tp_nn_sparse.h.
 *
 * DSP path: the input row is widened once into the scratch (int16, offset added, 8 bytes per
 * group of four: tp_sp_widen); a row group then walks its blocks, each step byte moving the input
 * pointer with one UXTAB to the block's two words (one LDRD), each block row giving two SXTB16
 * and two SMLAD. Four blocks per loop trip for R = 1 (their steps read as one word).
 * Portable path: the same walk over the format, one value at a time.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_sparse_dsp.h"

/* Requantization of the layer: mult/shift arrays and 1 (per channel) or 0 (per tensor). */
typedef struct {
    const int32_t *mult;
    const int32_t *shift;
    int32_t step;
} fc_quant;


int32_t tp_fully_connected_bsr_s8_get_buffer_size(const tp_dims *filter_dims)
{
#if TP_USE_DSP
    return 2 * ((filter_dims->c + 3) & ~3); /* the widened input row: 8 bytes per group of 4 */
#else
    (void)filter_dims;
    return 0;
#endif
}

#if TP_USE_DSP

/* One block row: acc + w . (the two widened words at x). */
#define TP_BSR_ROW(acc, w, xe, xo)                                                                \
    acc = tp_smlad(tp_sxtb16(w), xe, acc);                                                      \
    acc = tp_smlad(tp_sxtb16_ror8(w), xo, acc)

/* Four blocks of R = 1 whose steps are the bytes of `steps`: acc += block . input. */
#define TP_BSR_QUAD(x, steps, b, acc)                                                             \
    do {                                                                                        \
        int32_t w0_, w1_, xe_, xo_;                                                             \
        tp_sp_load_2x32_inc(&(b), &w0_, &w1_);                                                  \
        (x) = TP_SP_UXTAB(x, steps, 0);                                                         \
        tp_load_2x32(x, &xe_, &xo_);                                                            \
        TP_BSR_ROW(acc, w0_, xe_, xo_);                                                         \
        (x) = TP_SP_UXTAB(x, steps, 8);                                                         \
        tp_load_2x32(x, &xe_, &xo_);                                                            \
        TP_BSR_ROW(acc, w1_, xe_, xo_);                                                         \
        tp_sp_load_2x32_inc(&(b), &w0_, &w1_);                                                  \
        (x) = TP_SP_UXTAB(x, steps, 16);                                                        \
        tp_load_2x32(x, &xe_, &xo_);                                                            \
        TP_BSR_ROW(acc, w0_, xe_, xo_);                                                         \
        (x) = TP_SP_UXTAB(x, steps, 24);                                                        \
        tp_load_2x32(x, &xe_, &xo_);                                                            \
        TP_BSR_ROW(acc, w1_, xe_, xo_);                                                         \
    } while (0)

/* The layer as the DSP row loops read it (one pointer: fields are reloaded once per row). */
typedef struct {
    const uint8_t *steps;
    const int8_t *blocks;
    const void *counts;
    int32_t wide_counts;
    const int32_t *bias;
    const int32_t *mult;
    const int32_t *shift;
    int32_t per_channel;
    int32_t n_out;
    int32_t offset, lo, hi;
} fc_layer;

static inline int32_t layer_count(const fc_layer *l, int32_t g)
{
    return l->wide_counts ? ((const uint16_t *)l->counts)[g] : ((const uint8_t *)l->counts)[g];
}

/* R = 1: n blocks (steps *sp, words *bp) against the widened input at x; eight blocks per
 * trip, their steps read as two words. */
static inline __attribute__((always_inline)) int32_t blocks_r1(const int8_t *x,
                                                               const uint8_t **sp,
                                                               const int8_t **bp, int32_t n,
                                                               int32_t acc)
{
    const uint8_t *s = *sp;
    const int8_t *b = *bp;
    const uint8_t *end = s + (n & ~7);
    while (s != end) {
        const uint32_t lo = (uint32_t)tp_sp_read32(s), hi = (uint32_t)tp_sp_read32(s + 4);
        TP_BSR_QUAD(x, lo, b, acc);
        TP_BSR_QUAD(x, hi, b, acc);
        s += 8;
    }
    if (n & 4) {
        const uint32_t steps = (uint32_t)tp_sp_read32(s);
        TP_BSR_QUAD(x, steps, b, acc);
        s += 4;
    }
    for (n &= 3; n > 0; --n, b += 4) {
        int32_t xe, xo;
        x += *s++;
        tp_load_2x32(x, &xe, &xo);
        TP_BSR_ROW(acc, tp_sp_read32(b), xe, xo);
    }
    *sp = s, *bp = b;
    return acc;
}

/*
 * One output with the channel's (mult, shift) when shift is in [-TP_FC_FAST_MAX_E, -1] and the
 * activation range is all of int8 (`full`): tp_sq_apply with left = 0 and the output offset
 * folded into the nudge (exact: (x + (off << e)) >> e = (x >> e) + off; |h| <= 2^30 and
 * 2^(e - 1) + |off << e| < 2^30 for e <= 22), one SSAT; else tp_sq_out_ms.
 */
#define TP_FC_FAST_MAX_E 22

static inline __attribute__((always_inline)) int8_t out_of(int32_t acc, int32_t mult,
                                                           int32_t shift, int32_t off,
                                                           int32_t lo, int32_t hi, int full)
{
    const int32_t e = -shift;
    if (full && (uint32_t)(e - 1) < (uint32_t)TP_FC_FAST_MAX_E) {
        const int32_t add = (int32_t)(1U << (e - 1)) + (int32_t)((uint32_t)off << e);
        const int32_t acc2 = (int32_t)((uint32_t)acc << 1); /* as tp_sq_fast_out */
        return (int8_t)tp_ssat8((tp_smmlar(acc2, mult, add) + (acc2 >> 31)) >> e);
    }
    return tp_sq_out_ms(acc, mult, shift, off, lo, hi);
}

/* The R = 1 rows with uint8 (wide = 0) or uint16 counts; the layer's fields read once. */
static inline __attribute__((always_inline)) void rows_r1(const fc_layer *l, const int8_t *x,
                                                          int8_t *out, int wide)
{
    static const int32_t no_bias = 0;
    const uint8_t *s = l->steps;
    const int8_t *b = l->blocks;
    const uint8_t *c8 = (const uint8_t *)l->counts;
    const uint16_t *c16 = (const uint16_t *)l->counts;
    const int32_t *bias = l->bias != NULL ? l->bias : &no_bias;
    const int32_t bstep = l->bias != NULL ? 1 : 0;
    const int32_t *mult = l->mult, *shift = l->shift;
    const int32_t step = l->per_channel, off = l->offset, lo = l->lo, hi = l->hi;
    const int full = lo == -128 && hi == 127;
    const int8_t *const end = out + l->n_out;
    while (out != end) {
        const int32_t n = wide ? *c16++ : *c8++;
        const int32_t acc = blocks_r1(x, &s, &b, n, *bias);
        bias += bstep;
        *out++ = out_of(acc, *mult, *shift, off, lo, hi, full);
        mult += step, shift += step;
    }
}

#if TP_DSP_NATIVE && defined(__GNUC__)

/*
 * The R = 1 rows hand-scheduled on Arm (gcc 12 spills the row's pointers around the block
 * loops: ~30 cycles a row), for uint8 counts, per-channel requantization and a
 * full-range activation; tp_fully_connected_bsr_rows_r1 below. The per-row arrays are reached
 * from the counts pointer o (r14): rows_asm holds each array's base minus the counts pointer it
 * pairs with, so one register walks them all.
 */
typedef struct {
    uint32_t bias;  /* bias - 4 counts: bias[o] at bias + 4 * (counts + o); 0: no bias */
    uint32_t mult;  /* mult - 4 (counts + 1): read after the count's post-increment */
    uint32_t shift; /* shift - 4 (counts + 1) */
    uint32_t out;   /* out - (counts + 1) */
    int32_t offset; /* the output offset */
    uint32_t end;   /* counts + OUT */
} rows_asm;

void tp_fully_connected_bsr_rows_r1(const uint8_t *steps, const int8_t *blocks,
                                    const uint8_t *counts, const int8_t *x0, const rows_asm *a);

/* One block: its step at byte ROT of r10 moves x (r1); the weight word W gives r9 and W (SXTB16
 * halves); two SMLAD into r0. */
#define TP_FC_ASM_BLOCK(w, rot)                                                                 \
    "    uxtab  r1, r1, r10, ror #" #rot "\n"                                                  \
    "    ldrd   r4, r5, [r1]\n"                                                                 \
    "    sxtb16 r9, " w ", ror #8\n"                                                           \
    "    sxtb16 " w ", " w "\n"                                                                \
    "    smlad  r0, " w ", r4, r0\n"                                                           \
    "    smlad  r0, r9, r5, r0\n"

/* Registers: r0 accumulator, r1 input (x0 + steps), r2 steps, r3 blocks, r4 r5 input words,
 * r6 r7 weight words, r8 r9 r10 r11 temporaries (r10 the steps of four blocks, r11 the blocks
 * left), r12 x0, r14 the counts; rows_asm copied to the stack. */
__asm__(
    "    .text\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .p2align 2\n"
    "    .global tp_fully_connected_bsr_rows_r1\n"
    "    .type tp_fully_connected_bsr_rows_r1, %function\n"
    "    .thumb_func\n"
    "tp_fully_connected_bsr_rows_r1:\n"
    "    push   {r4-r11, lr}\n"
    "    sub    sp, sp, #24\n"
    "    ldr    r8, [sp, #60]\n"          /* a */
    "    ldm    r8, {r4-r9}\n"
    "    stm    sp, {r4-r9}\n"
    "    mov    r12, r3\n"
    "    mov    lr, r2\n"
    "    mov    r3, r1\n"
    "    mov    r2, r0\n"
    "1:\n"                                /* a row */
    "    ldr    r8, [sp]\n"
    "    movs   r0, #0\n"
    "    cmp    r8, #0\n"
    "    it     ne\n"
    "    ldrne  r0, [r8, lr, lsl #2]\n"  /* bias[o], or 0 without a bias */
    "    ldrb   r11, [lr], #1\n"          /* its blocks */
    "    mov    r1, r12\n"
    "    subs   r11, r11, #4\n"
    "    blo    3f\n"
    "2:\n"                                /* four blocks a trip */
    "    ldr    r10, [r2], #4\n"
    "    ldrd   r6, r7, [r3], #8\n"
    TP_FC_ASM_BLOCK("r6", 0)
    TP_FC_ASM_BLOCK("r7", 8)
    "    ldrd   r6, r7, [r3], #8\n"
    TP_FC_ASM_BLOCK("r6", 16)
    TP_FC_ASM_BLOCK("r7", 24)
    "    subs   r11, r11, #4\n"
    "    bhs    2b\n"
    "3:\n"                                /* r11 = blocks left - 4: its low bits are what is left */
    "    tst    r11, #2\n"
    "    beq    4f\n"
    "    ldrh   r10, [r2], #2\n"
    "    ldrd   r6, r7, [r3], #8\n"
    TP_FC_ASM_BLOCK("r6", 0)
    TP_FC_ASM_BLOCK("r7", 8)
    "4:\n"
    "    tst    r11, #1\n"
    "    beq    5f\n"
    "    ldrb   r10, [r2], #1\n"
    "    ldr    r6, [r3], #4\n"
    TP_FC_ASM_BLOCK("r6", 0)
    "5:\n"                                /* requantize: mult r4, shift r5, offset r9 */
    "    ldr    r8, [sp, #4]\n"
    "    ldr    r4, [r8, lr, lsl #2]\n"
    "    ldr    r8, [sp, #8]\n"
    "    ldr    r5, [r8, lr, lsl #2]\n"
    "    ldr    r9, [sp, #16]\n"
    "    rsb    r6, r5, #0\n"             /* e */
    "    sub    r7, r6, #1\n"
    "    cmp    r7, #21\n"
    "    bhi    6f\n"
    "    movs   r10, #1\n"                /* e in [1, 22]: out_of's fast form */
    "    lsl    r10, r10, r7\n"
    "    lsl    r11, r9, r6\n"
    "    add    r10, r10, r11\n"
    "    lsl    r0, r0, #1\n"
    "    smmlar r8, r0, r4, r10\n"
    "    add    r8, r8, r0, asr #31\n"
    "    asr    r8, r8, r6\n"
    "    ssat   r8, #8, r8\n"
    "7:\n"
    "    ldr    r9, [sp, #12]\n"
    "    strb   r8, [r9, lr]\n"
    "    ldr    r9, [sp, #20]\n"
    "    cmp    lr, r9\n"
    "    bne    1b\n"
    "    add    sp, sp, #24\n"
    "    pop    {r4-r11, pc}\n"
    "6:\n"                                /* any other shift: tp_sq_apply, offset, SSAT */
    "    asr    r7, r5, #31\n"            /* emask */
    "    rsb    r6, r5, #0\n"
    "    and    r6, r6, r7\n"             /* e */
    "    bic    r10, r5, r7\n"
    "    add    r10, r10, #1\n"           /* left + 1 */
    "    lsl    r0, r0, r10\n"
    "    smmulr r8, r0, r4\n"
    "    movs   r10, #1\n"
    "    lsl    r10, r10, r6\n"
    "    lsr    r10, r10, #1\n"           /* nudge */
    "    and    r7, r7, r8, asr #31\n"
    "    add    r8, r8, r10\n"
    "    add    r8, r8, r7\n"
    "    asr    r8, r8, r6\n"
    "    add    r8, r8, r9\n"
    "    ssat   r8, #8, r8\n"
    "    b      7b\n"
    "    .size tp_fully_connected_bsr_rows_r1, . - tp_fully_connected_bsr_rows_r1\n");

/* The assembly rows when the layer is in their form (else 0: the C rows run). */
static int rows_r1_asm(const fc_layer *l, const int8_t *x, int8_t *out)
{
    const uint32_t c = (uint32_t)(uintptr_t)l->counts;
    const uint32_t bias = l->bias != NULL ? (uint32_t)(uintptr_t)l->bias - 4U * c : 0U;
    if (l->wide_counts || !l->per_channel || l->lo != -128 || l->hi != 127 || l->n_out <= 0 ||
        (l->bias != NULL && bias == 0U)) {
        return 0;
    }
    const rows_asm a = {bias,
                        (uint32_t)(uintptr_t)l->mult - 4U * (c + 1U),
                        (uint32_t)(uintptr_t)l->shift - 4U * (c + 1U),
                        (uint32_t)(uintptr_t)out - (c + 1U), l->offset, c + (uint32_t)l->n_out};
    tp_fully_connected_bsr_rows_r1(l->steps, l->blocks, (const uint8_t *)l->counts, x, &a);
    return 1;
}

#else

static int rows_r1_asm(const fc_layer *l, const int8_t *x, int8_t *out)
{
    (void)l, (void)x, (void)out;
    return 0;
}

#endif

TP_SP_HOT static void layer_r1(const fc_layer *l, const int8_t *x, int8_t *out)
{
    if (rows_r1_asm(l, x, out)) {
        return;
    }
    if (l->wide_counts) {
        rows_r1(l, x, out, 1);
    } else {
        rows_r1(l, x, out, 0);
    }
}

/* R = 2 and 4: the rows of each block share its input words. */
TP_SP_HOT static void layer_r2(const fc_layer *l, const int8_t *x0, int8_t *out)
{
    const uint8_t *s = l->steps;
    const int8_t *b = l->blocks;
    tp_sq_channel c = tp_sq_channel_of(l->mult[0], l->shift[0]);
    for (int32_t o = 0; o < l->n_out; o += 2) {
        int32_t a0 = l->bias ? l->bias[o] : 0, a1 = l->bias ? l->bias[o + 1] : 0;
        const int8_t *x = x0;
        for (int32_t n = layer_count(l, o >> 1); n > 0; --n) {
            int32_t xe, xo, w0, w1;
            x += *s++;
            tp_load_2x32(x, &xe, &xo);
            tp_sp_load_2x32_inc(&b, &w0, &w1);
            TP_BSR_ROW(a0, w0, xe, xo);
            TP_BSR_ROW(a1, w1, xe, xo);
        }
        if (l->per_channel) {
            c = tp_sq_channel_of(l->mult[o], l->shift[o]);
        }
        out[o] = tp_sq_out(a0, &c, l->offset, l->lo, l->hi);
        if (l->per_channel) {
            c = tp_sq_channel_of(l->mult[o + 1], l->shift[o + 1]);
        }
        out[o + 1] = tp_sq_out(a1, &c, l->offset, l->lo, l->hi);
    }
}

TP_SP_HOT static void layer_r4(const fc_layer *l, const int8_t *x0, int8_t *out)
{
    const uint8_t *s = l->steps;
    const int8_t *b = l->blocks;
    tp_sq_channel c = tp_sq_channel_of(l->mult[0], l->shift[0]);
    for (int32_t o = 0; o < l->n_out; o += 4) {
        int32_t acc[4] = {0, 0, 0, 0};
        if (l->bias) {
            acc[0] = l->bias[o], acc[1] = l->bias[o + 1];
            acc[2] = l->bias[o + 2], acc[3] = l->bias[o + 3];
        }
        int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        const int8_t *x = x0;
        for (int32_t n = layer_count(l, o >> 2); n > 0; --n) {
            int32_t xe, xo, w0, w1;
            x += *s++;
            tp_load_2x32(x, &xe, &xo);
            tp_sp_load_2x32_inc(&b, &w0, &w1);
            TP_BSR_ROW(a0, w0, xe, xo);
            TP_BSR_ROW(a1, w1, xe, xo);
            tp_sp_load_2x32_inc(&b, &w0, &w1);
            TP_BSR_ROW(a2, w0, xe, xo);
            TP_BSR_ROW(a3, w1, xe, xo);
        }
        acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
        for (int32_t i = 0; i < 4; ++i) {
            if (l->per_channel) {
                c = tp_sq_channel_of(l->mult[o + i], l->shift[o + i]);
            }
            out[o + i] = tp_sq_out(acc[i], &c, l->offset, l->lo, l->hi);
        }
    }
}

static void fc_row(const tp_fc_params *p, const fc_quant *q, const tp_bsr_filter *f,
                   const int8_t *in, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, int32_t *x)
{
    const fc_layer l = {(const uint8_t *)f->index, f->blocks, f->counts, f->count_bytes == 2,
                        bias, q->mult, q->shift, q->step, n_out, p->output_offset,
                        p->activation.min, p->activation.max};
    tp_sp_widen(in, n_in, p->input_offset, x, 2);
    if (f->group == 1) {
        layer_r1(&l, (const int8_t *)x, out);
    } else if (f->group == 2) {
        layer_r2(&l, (const int8_t *)x, out);
    } else {
        layer_r4(&l, (const int8_t *)x, out);
    }
}

#else /* portable C */

static int32_t count_of(const tp_bsr_filter *f, int32_t g)
{
    return f->count_bytes == 1 ? ((const uint8_t *)f->counts)[g] : ((const uint16_t *)f->counts)[g];
}

static void fc_row(const tp_fc_params *p, const fc_quant *q, const tp_bsr_filter *f,
                   const int8_t *in, const int32_t *bias, int32_t n_in, int32_t n_out,
                   int8_t *out, int32_t *x)
{
    (void)x;
    const int32_t r = f->group;
    const uint8_t *s = (const uint8_t *)f->index;
    const int8_t *b = f->blocks;
    for (int32_t o = 0; o < n_out; o += r) {
        const int32_t n = count_of(f, o / r);
        for (int32_t i = 0; i < r; ++i) {
            int32_t acc = bias ? bias[o + i] : 0;
            int32_t col = 0;
            for (int32_t j = 0; j < n; ++j) {
                col += s[j] / TP_BSR_STEP_BYTES;
                const int8_t *w = b + (j * r + i) * 4;
                for (int32_t t = 0; t < 4 && 4 * col + t < n_in; ++t) {
                    acc += w[t] * (in[4 * col + t] + p->input_offset);
                }
            }
            const int32_t k = (o + i) * q->step;
            acc = tp_requantize(acc, q->mult[k], q->shift[k]) + p->output_offset;
            out[o + i] = (int8_t)TP_CLAMP(acc, p->activation.min, p->activation.max);
        }
        s += n, b += 4 * r * n;
    }
}

#endif /* TP_USE_DSP */

static tp_status fc_run(const tp_context *ctx, const tp_fc_params *p, const fc_quant *q,
                        const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                        const tp_bsr_filter *f, const int32_t *bias, const tp_dims *out_d,
                        int8_t *out)
{
    const int32_t n_in = f_d->c, n_out = f_d->n;
    const int32_t rows = in_d->n * in_d->h * in_d->w;
    const int32_t size = tp_fully_connected_bsr_s8_get_buffer_size(f_d);
    if (in_d->c != n_in || out_d->c != n_out || out_d->n * out_d->h * out_d->w != rows ||
        (f->group != 1 && f->group != 2 && f->group != 4) || n_out % f->group != 0 ||
        (f->count_bytes != 1 && f->count_bytes != 2) || f->index_bytes != 1 ||
        (size > 0 && (ctx == NULL || ctx->buf == NULL || ctx->size < size))) {
        return TP_ERR_ARG;
    }
    for (int32_t row = 0; row < rows; ++row) {
        fc_row(p, q, f, in + row * n_in, bias, n_in, n_out, out + row * n_out,
               size > 0 ? (int32_t *)ctx->buf : NULL);
    }
    return TP_OK;
}

tp_status tp_fully_connected_bsr_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                    const tp_per_tensor_quant *quant_params,
                                    const tp_dims *input_dims, const int8_t *input,
                                    const tp_dims *filter_dims, const tp_bsr_filter *filter,
                                    const tp_dims *bias_dims, const int32_t *bias,
                                    const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {&quant_params->multiplier, &quant_params->shift, 0};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}

tp_status tp_fully_connected_bsr_per_channel_s8(const tp_context *ctx,
                                                const tp_fc_params *fc_params,
                                                const tp_per_channel_quant *quant_params,
                                                const tp_dims *input_dims, const int8_t *input,
                                                const tp_dims *filter_dims,
                                                const tp_bsr_filter *filter,
                                                const tp_dims *bias_dims, const int32_t *bias,
                                                const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims;
    const fc_quant q = {quant_params->multiplier, quant_params->shift, 1};
    return fc_run(ctx, fc_params, &q, input_dims, input, filter_dims, filter, bias, output_dims,
                  output);
}
