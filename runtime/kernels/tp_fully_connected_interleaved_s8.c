/*
 * tinyprune runtime: int8 FULLY_CONNECTED with interleaved groups of four weight rows,
 * bit-exact with TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel.
 *
 * The code generator folds the input offset into the bias and lays the layer out as a stream
 * (tp_nn_fc.h): a header, then per group of four output rows their weights interleaved a word at
 * a time (rows padded with 0 to IN4 = IN rounded up to a multiple of 4, OUT to a multiple of 4
 * with zero rows) followed by the group's bias words and, per channel, multiplier, shift and
 * rounding words. One pointer walks the whole layer.
 *
 * DSP path: each input row is widened once into the scratch as raw int16 pairs (no offset: it
 * is in the bias); per group and four inputs, one LDRD of the widened input, two LDRD of the four
 * rows' words, eight SXTB16 and eight SMLAD for 16 MACs, then tp_requantize_fast (SSAT when the
 * activation range is the whole int8 range) when the layer allows it. Portable path: the same
 * stream, one output at a time, with tp_requantize_pos.
 */
#include "tp_nn_fc.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* Stream header: the flags and, per tensor, the requantization of every row. */
typedef struct {
    int32_t fast;        /* the rounding words are valid (tp_requantize_fast) */
    int32_t per_channel; /* 1: each group carries multiplier, shift and rounding words */
    int32_t mult, shift, round; /* per tensor */
} fc_head;

/* The layer as the row functions need it. */
typedef struct {
    const fc_head *head;
    const int8_t *groups; /* the first group of the stream */
    int32_t in4, group_bytes, offset, lo, hi;
} fc_layer;

static inline int32_t in4_of(const tp_dims *filter_dims)
{
    return (filter_dims->c + 3) & ~3;
}

/* Requantization words of row j of the group whose bias words start at p. */
static inline void row_quant(const fc_layer *l, const int32_t *p, int32_t j, int32_t *m,
                             int32_t *s, int32_t *k)
{
    if (l->head->per_channel) {
        *m = p[4 + j], *s = p[8 + j], *k = p[12 + j];
    } else {
        *m = l->head->mult, *s = l->head->shift, *k = l->head->round;
    }
}

int32_t tp_fully_connected_interleaved_s8_get_buffer_size(const tp_dims *filter_dims)
{
#if TP_USE_DSP
    return 2 * in4_of(filter_dims); /* one input row as int16 pairs */
#else
    (void)filter_dims;
    return 0;
#endif
}

#if TP_USE_DSP

enum { RQ_GENERAL, RQ_FAST, RQ_FAST_SAT };

/* Row j's requantization words: per channel (pc, a constant of each instance) from the group,
 * else the per-tensor ones the caller read once (t). */
static TP_ALWAYS_INLINE int32_t requant_one(const fc_layer *l, const int32_t *p, int32_t j,
                                            int32_t acc, const int mode, const int pc,
                                            const int32_t t[3])
{
    const int32_t m = pc ? p[4 + j] : t[0], s = pc ? p[8 + j] : t[1], k = pc ? p[12 + j] : t[2];
    if (mode == RQ_GENERAL) {
        return tp_clamp(tp_wrap_add(tp_requantize_pos(acc, m, s), l->offset), l->lo, l->hi);
    }
    const int32_t v = tp_requantize_fast(acc, m, s, k);
    return mode == RQ_FAST_SAT ? tp_ssat8(v) : tp_clamp(v, l->lo, l->hi);
}

/* Widens the row's IN values into in4 / 2 words: per group [x0, x2], [x1, x3], zero padded. */
static void widen_row(const int8_t *in, int32_t n, int32_t *x)
{
    int32_t k = 0;
    for (; k + 4 <= n; k += 4, x += 2) {
        const int32_t v = tp_read_s8x4(in + k);
        x[0] = tp_sxtb16(v), x[1] = tp_sxtb16_ror8(v);
    }
    if (k < n) {
        uint8_t last[4] = {0, 0, 0, 0};
        for (int32_t i = 0; k + i < n; ++i) {
            last[i] = (uint8_t)in[k + i];
        }
        int32_t v;
        memcpy(&v, last, sizeof(v));
        x[0] = tp_sxtb16(v), x[1] = tp_sxtb16_ror8(v);
    }
}

/* One group of four inputs of dot4. */
static TP_ALWAYS_INLINE void dot4_group(const void **wp, const void **xp, int32_t *a0,
                                        int32_t *a1, int32_t *a2, int32_t *a3)
{
    int32_t xe, xo, wa, wb;
    tp_load_2x32_inc(xp, &xe, &xo);
    tp_load_2x32_inc(wp, &wa, &wb);
    *a0 = tp_smlad(tp_sxtb16(wa), xe, *a0);
    *a0 = tp_smlad(tp_sxtb16_ror8(wa), xo, *a0);
    *a1 = tp_smlad(tp_sxtb16(wb), xe, *a1);
    *a1 = tp_smlad(tp_sxtb16_ror8(wb), xo, *a1);
    tp_load_2x32_inc(wp, &wa, &wb);
    *a2 = tp_smlad(tp_sxtb16(wa), xe, *a2);
    *a2 = tp_smlad(tp_sxtb16_ror8(wa), xo, *a2);
    *a3 = tp_smlad(tp_sxtb16(wb), xe, *a3);
    *a3 = tp_smlad(tp_sxtb16_ror8(wb), xo, *a3);
}

/* acc[j] += row j of the group . widened input, in4 / 4 groups of four inputs, two per trip. */
static TP_ALWAYS_INLINE void dot4(const int8_t *w, const int32_t *x, int32_t in4, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const void *wp = w, *xp = x;
    const void *end = x + (in4 >> 1) - 2 * ((in4 >> 2) & 1);
    while (xp != end) {
        dot4_group(&wp, &xp, &a0, &a1, &a2, &a3);
        dot4_group(&wp, &xp, &a0, &a1, &a2, &a3);
    }
    if ((in4 >> 2) & 1) {
        dot4_group(&wp, &xp, &a0, &a1, &a2, &a3);
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

/* All output rows of one input row (widened in x); the last group stores n_out % 4 (or 4).
 * mode and pc (per-channel requantization) are constants of each instance, so neither is
 * tested per output (the per-group overhead is what small layers pay). */
static TP_ALWAYS_INLINE void rows_body(const fc_layer *l, const int32_t *x, int32_t n_out,
                                       int8_t *out, const int mode, const int pc)
{
    const int8_t *g = l->groups;
    const int32_t t[3] = {l->head->mult, l->head->shift, l->head->round};
    for (int32_t o = 0; o < n_out; o += 4, g += l->group_bytes) {
        const int32_t *p = (const int32_t *)(const void *)(g + 4 * l->in4);
        int32_t acc[4] = {p[0], p[1], p[2], p[3]};
        dot4(g, x, l->in4, acc);
        const int32_t left = n_out - o;
        out[o] = (int8_t)requant_one(l, p, 0, acc[0], mode, pc, t);
        if (left >= 4) {
            out[o + 1] = (int8_t)requant_one(l, p, 1, acc[1], mode, pc, t);
            out[o + 2] = (int8_t)requant_one(l, p, 2, acc[2], mode, pc, t);
            out[o + 3] = (int8_t)requant_one(l, p, 3, acc[3], mode, pc, t);
            continue;
        }
        for (int32_t j = 1; j < left; ++j) {
            out[o + j] = (int8_t)requant_one(l, p, j, acc[j], RQ_GENERAL, pc, t);
        }
    }
}

static TP_ALWAYS_INLINE void rows_modes(const fc_layer *l, const int32_t *x, int32_t n_out,
                                        int8_t *out, int pc)
{
    if (!l->head->fast) {
        rows_body(l, x, n_out, out, RQ_GENERAL, pc);
    } else if (l->lo == -128 && l->hi == 127) {
        rows_body(l, x, n_out, out, RQ_FAST_SAT, pc);
    } else {
        rows_body(l, x, n_out, out, RQ_FAST, pc);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void fc_rows(const fc_layer *l, const int32_t *x, int32_t n_out, int8_t *out)
{
    rows_modes(l, x, n_out, out, l->head->per_channel);
}

static void fc_row(const tp_context *ctx, const fc_layer *l, const int8_t *in, int32_t n,
                   int32_t n_out, int8_t *out)
{
    int32_t *x = (int32_t *)ctx->buf;
    widen_row(in, n, x);
    fc_rows(l, x, n_out, out);
}

#else /* portable C */

static void fc_row(const tp_context *ctx, const fc_layer *l, const int8_t *in, int32_t n,
                   int32_t n_out, int8_t *out)
{
    (void)ctx;
    for (int32_t o = 0; o < n_out; ++o) {
        const int8_t *g = l->groups + (o >> 2) * l->group_bytes;
        const int32_t *p = (const int32_t *)(const void *)(g + 4 * l->in4);
        const int32_t j = o & 3;
        int32_t acc = p[j];
        for (int32_t k = 0; k < n; ++k) {
            /* row j's word k / 4 of the group at 16 * (k / 4) + 4 * j */
            acc = tp_wrap_mac(acc, g[16 * (k >> 2) + 4 * j + (k & 3)], in[k]);
        }
        int32_t m, s, r;
        row_quant(l, p, j, &m, &s, &r);
        acc = tp_wrap_add(tp_requantize_pos(acc, m, s), l->offset);
        out[o] = (int8_t)tp_clamp(acc, l->lo, l->hi);
    }
}

#endif /* TP_USE_DSP */

tp_status tp_fully_connected_interleaved_s8(const tp_context *ctx, const tp_fc_params *fc_params,
                                            const tp_per_tensor_quant *quant_params,
                                            const tp_dims *input_dims, const int8_t *input,
                                            const tp_dims *filter_dims, const int8_t *filter,
                                            const tp_dims *bias_dims, const int32_t *bias,
                                            const tp_dims *output_dims, int8_t *output)
{
    (void)quant_params, (void)bias_dims, (void)bias;
    const int32_t n = filter_dims->c, n_out = filter_dims->n;
    const int32_t rows = input_dims->n * input_dims->h * input_dims->w;
    const int32_t size = tp_fully_connected_interleaved_s8_get_buffer_size(filter_dims);
    if (input_dims->c != n || output_dims->c != n_out ||
        output_dims->n * output_dims->h * output_dims->w != rows ||
        (size > 0 && (ctx == NULL || ctx->buf == NULL || ctx->size < size))) {
        return TP_ERR_ARG;
    }
    const fc_head *head = (const fc_head *)(const void *)filter;
    const int32_t in4 = in4_of(filter_dims);
    const fc_layer l = {head, filter + sizeof(fc_head), in4,
                        4 * in4 + (head->per_channel ? 64 : 16), fc_params->output_offset,
                        fc_params->activation.min, fc_params->activation.max};
    for (int32_t r = 0; r < rows; ++r) {
        fc_row(ctx, &l, input + r * n, n, n_out, output + r * n_out);
    }
    return TP_OK;
}
