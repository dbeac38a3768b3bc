/*
 * tinyprune runtime: int8 FULLY_CONNECTED with interleaved groups of four weight rows,
 * bit-exact with TFLM reference_integer_ops::FullyConnected / FullyConnectedPerChannel.
 *
 * The code generator folds the input offset into the bias and lays the layer out as a stream
 * (tp_nn_fc.h): a header, then per group of four output rows their four folded biases, their
 * weights interleaved a word at a time (rows padded with 0 to IN4 = IN rounded up to a multiple
 * of 4, OUT to a multiple of 4 with zero rows) and, per channel, each row's multiplier, shift and
 * rounding word. One pointer walks the whole layer.
 *
 * DSP path: each input row is widened once into the scratch as raw int16 pairs (no offset: it
 * is in the bias). On an Arm core with the DSP extension, the layers whose requantization takes
 * tp_requantize_fast with a full int8 range (every official MLPerf Tiny FC) run the group loop
 * written in assembly below (tp_fc_interleaved_groups): per group the biases in one LDM, per
 * four inputs one LDRD of the widened input, one LDM of the four rows' words, eight SXTB16 and
 * eight SMLAD for 16 MACs (eight such steps per loop trip), then tp_requantize_fast and SSAT with
 * the parameters in registers. Other layers (and the DSP path built for the host, which the
 * tests run) take the C group loop: the same arithmetic in C, general or fast requantization.
 * Portable path: the same stream, one output at a time, with tp_requantize_pos.
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

/* Row j's requantization words: per channel (pc) the triple after the weights of the group
 * (q points at it), else the per-tensor ones of the header. */
static inline void row_quant(const fc_head *h, const int32_t *q, int32_t j, int pc, int32_t *m,
                             int32_t *s, int32_t *k)
{
    if (pc) {
        *m = q[3 * j], *s = q[3 * j + 1], *k = q[3 * j + 2];
    } else {
        *m = h->mult, *s = h->shift, *k = h->round;
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

/* One output: the general requantization, or tp_requantize_fast (fast, a constant of each
 * instance) and the clamp. */
static TP_ALWAYS_INLINE int8_t requant_one(const fc_layer *l, int32_t acc, int32_t m, int32_t s,
                                           int32_t k, const int fast)
{
    if (!fast) {
        return (int8_t)tp_clamp(tp_wrap_add(tp_requantize_pos(acc, m, s), l->offset), l->lo,
                                l->hi);
    }
    return (int8_t)tp_clamp(tp_requantize_fast(acc, m, s, k), l->lo, l->hi);
}

/* The groups of one input row (widened in x) from `first` on, n_out outputs; the last group
 * stores n_out % 4 (or 4). */
static TP_ALWAYS_INLINE void rows_body(const fc_layer *l, const int8_t *first, const int32_t *x,
                                       int32_t n_out, int8_t *out, const int fast)
{
    const int8_t *g = first;
    const int pc = l->head->per_channel;
    for (int32_t o = 0; o < n_out; o += 4, g += l->group_bytes) {
        const int32_t *b = (const int32_t *)(const void *)g;
        const int32_t *q = (const int32_t *)(const void *)(g + 16 + 4 * l->in4);
        int32_t acc[4] = {b[0], b[1], b[2], b[3]};
        dot4(g + 16, x, l->in4, acc);
        const int32_t left = n_out - o < 4 ? n_out - o : 4;
        for (int32_t j = 0; j < left; ++j) {
            int32_t m, s, k;
            row_quant(l->head, q, j, pc, &m, &s, &k);
            out[o + j] = requant_one(l, acc[j], m, s, k, fast);
        }
    }
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void rows_c(const fc_layer *l, const int8_t *first, const int32_t *x, int32_t n_out,
                   int8_t *out)
{
    if (l->head->fast) {
        rows_body(l, first, x, n_out, out, 1);
    } else {
        rows_body(l, first, x, n_out, out, 0);
    }
}

#if TP_DSP_NATIVE && defined(__GNUC__)

/*
 * The group loop in assembly (gcc 12 spills the loop's pointers and reloads the requantization
 * of every output: ~30 cycles an output in C against ~13 here). The frame is copied to the
 * stack as is; groups >= 1; x_rem - x = 8 * (IN4 / 4 % 8) bytes (the groups of four inputs
 * that the eight-step loop leaves), x_end - x = 2 * IN4 bytes.
 */
typedef struct {
    int32_t mult, rshift, round; /* per tensor: multiplier, ~shift (= -shift - 1), rounding */
    int8_t *out;
    int32_t groups;
    int32_t per_channel; /* the triples after each group's weights are its requantization */
    const int32_t *x, *x_rem, *x_end;
} fc_groups_frame;

void tp_fc_interleaved_groups(const int8_t *groups, const fc_groups_frame *frame);

/* Four inputs of the group's four rows: r11 the widened input, r12 the weights, r0-r3 the
 * accumulators, r10 the extended halves. */
#define TP_FC_STEP                                                                              \
    "    ldmia  r12!, {r6-r9}\n"                                                                \
    "    ldrd   r4, r5, [r11], #8\n"                                                            \
    "    sxtb16 r10, r6\n"                                                                      \
    "    sxtb16 r6, r6, ror #8\n"                                                               \
    "    smlad  r0, r10, r4, r0\n"                                                              \
    "    sxtb16 r10, r7\n"                                                                      \
    "    smlad  r0, r6, r5, r0\n"                                                               \
    "    sxtb16 r7, r7, ror #8\n"                                                               \
    "    smlad  r1, r10, r4, r1\n"                                                              \
    "    sxtb16 r10, r8\n"                                                                      \
    "    smlad  r1, r7, r5, r1\n"                                                               \
    "    sxtb16 r8, r8, ror #8\n"                                                               \
    "    smlad  r2, r10, r4, r2\n"                                                              \
    "    sxtb16 r10, r9\n"                                                                      \
    "    smlad  r2, r8, r5, r2\n"                                                               \
    "    sxtb16 r9, r9, ror #8\n"                                                               \
    "    smlad  r3, r10, r4, r3\n"                                                              \
    "    smlad  r3, r9, r5, r3\n"

/* tp_requantize_fast(acc, r4, ~r5, r6), SSAT, stored at r7++ (r9 r10 temporaries). */
#define TP_FC_OUT(acc)                                                                          \
    "    and    r9, " acc ", #0x80000000\n"                                                     \
    "    add    r10, r6, " acc ", asr #31\n"                                                    \
    "    orr    r9, r9, #0x40000000\n"                                                          \
    "    smlal  r9, r10, " acc ", r4\n"                                                         \
    "    asr    r10, r10, r5\n"                                                                 \
    "    ssat   r10, #8, r10\n"                                                                 \
    "    strb   r10, [r7], #1\n"

/* The same with the row's multiplier, shift and rounding read from the stream (r12). */
#define TP_FC_OUT_PC(acc)                                                                       \
    "    ldmia  r12!, {r4-r6}\n"                                                                \
    "    mvn    r5, r5\n" TP_FC_OUT(acc)

/* Frame on the stack: [0] mult, [4] rshift, [8] round, [12] out, [16] groups, [20] per_channel,
 * [24] x, [28] x_rem, [32] x_end. */
__asm__(
    "    .text\n"
    "    .syntax unified\n"
    "    .thumb\n"
    "    .p2align 2\n"
    "    .global tp_fc_interleaved_groups\n"
    "    .type tp_fc_interleaved_groups, %function\n"
    "    .thumb_func\n"
    "tp_fc_interleaved_groups:\n"
    "    push   {r4-r11, lr}\n"
    "    sub    sp, sp, #36\n"
    "    mov    r12, r0\n"
    "    ldm    r1, {r0-r8}\n"
    "    stm    sp, {r0-r8}\n"
    "1:\n"                                /* a group: its biases */
    "    ldmia  r12!, {r0-r3}\n"
    "    ldrd   r11, lr, [sp, #24]\n"     /* x, x_rem */
    "    cmp    r11, lr\n"
    "    beq    3f\n"
    "2:\n"                                /* IN4 / 4 % 8 steps */
    TP_FC_STEP
    "    cmp    r11, lr\n"
    "    bne    2b\n"
    "3:\n"
    "    ldr    lr, [sp, #32]\n"          /* x_end */
    "    cmp    r11, lr\n"
    "    beq    5f\n"
    "4:\n"                                /* eight steps a trip */
    TP_FC_STEP TP_FC_STEP TP_FC_STEP TP_FC_STEP TP_FC_STEP TP_FC_STEP TP_FC_STEP TP_FC_STEP
    "    cmp    r11, lr\n"
    "    bne    4b\n"
    "5:\n"
    "    ldm    sp, {r4-r9}\n"            /* mult rshift round out groups per_channel */
    "    cmp    r9, #0\n"
    "    bne    7f\n"
    TP_FC_OUT("r0") TP_FC_OUT("r1") TP_FC_OUT("r2") TP_FC_OUT("r3")
    "6:\n"
    "    str    r7, [sp, #12]\n"
    "    subs   r8, r8, #1\n"
    "    str    r8, [sp, #16]\n"
    "    bne    1b\n"
    "    add    sp, sp, #36\n"
    "    pop    {r4-r11, pc}\n"
    "7:\n"
    TP_FC_OUT_PC("r0") TP_FC_OUT_PC("r1") TP_FC_OUT_PC("r2") TP_FC_OUT_PC("r3")
    "    b      6b\n"
    "    .size tp_fc_interleaved_groups, . - tp_fc_interleaved_groups\n");

/* The assembly groups when the layer is in their form (fast requantization, full int8 range),
 * else 0. The last OUT % 4 outputs go through a four-byte buffer. */
static int rows_asm(const fc_layer *l, const int32_t *x, int32_t n_out, int8_t *out)
{
    const fc_head *h = l->head;
    if (!h->fast || l->lo != -128 || l->hi != 127) {
        return 0;
    }
    const int32_t steps = l->in4 >> 2;
    fc_groups_frame f = {h->mult, ~h->shift, h->round, out, n_out >> 2, h->per_channel, x,
                         x + 2 * (steps & 7), x + 2 * steps};
    if (f.groups > 0) {
        tp_fc_interleaved_groups(l->groups, &f);
    }
    if (n_out & 3) {
        int8_t last[4];
        f.out = last, f.groups = 1;
        tp_fc_interleaved_groups(l->groups + (n_out >> 2) * l->group_bytes, &f);
        memcpy(out + (n_out & ~3), last, (size_t)(n_out & 3));
    }
    return 1;
}

#else

static int rows_asm(const fc_layer *l, const int32_t *x, int32_t n_out, int8_t *out)
{
    (void)l, (void)x, (void)n_out, (void)out;
    return 0;
}

#endif

static void fc_row(const tp_context *ctx, const fc_layer *l, const int8_t *in, int32_t n,
                   int32_t n_out, int8_t *out)
{
    int32_t *x = (int32_t *)ctx->buf;
    widen_row(in, n, x);
    if (!rows_asm(l, x, n_out, out)) {
        rows_c(l, l->groups, x, n_out, out);
    }
}

#else /* portable C */

static void fc_row(const tp_context *ctx, const fc_layer *l, const int8_t *in, int32_t n,
                   int32_t n_out, int8_t *out)
{
    (void)ctx;
    for (int32_t o = 0; o < n_out; ++o) {
        const int8_t *g = l->groups + (o >> 2) * l->group_bytes;
        const int8_t *w = g + 16;
        const int32_t j = o & 3;
        int32_t acc = ((const int32_t *)(const void *)g)[j];
        for (int32_t k = 0; k < n; ++k) {
            /* row j's word k / 4 of the group at 16 * (k / 4) + 4 * j */
            acc = tp_wrap_mac(acc, w[16 * (k >> 2) + 4 * j + (k & 3)], in[k]);
        }
        int32_t m, s, r;
        row_quant(l->head, (const int32_t *)(const void *)(w + 4 * l->in4), j,
                  l->head->per_channel, &m, &s, &r);
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
                        16 + 4 * in4 + (head->per_channel ? 48 : 0), fc_params->output_offset,
                        fc_params->activation.min, fc_params->activation.max};
    for (int32_t r = 0; r < rows; ++r) {
        fc_row(ctx, &l, input + r * n, n, n_out, output + r * n_out);
    }
    return TP_OK;
}
