/*
 * tinyprune: ADD, int8, with broadcasting, through per-input tables. Bit-exact with tp_add_s8 and
 * TFLM reference_integer_ops::AddFunc: TFLM scales each input value v to the common domain,
 * tp_requantize((v + offset) << 20, multiplier, shift), a function of the int8 value alone, so the
 * code generator tabulates it (256 int32 per input); per element the kernel adds two table
 * entries and requantizes the sum once (tp_requantize_fast, output offset folded in), then
 * clamps. Same-shape operands run four elements per loop trip from one word load per input.
 * No DSP instruction is involved: the portable and the DSP build run the same code.
 */
#include "tp_nn_elementwise.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* The layer with the table pointers biased to index by the signed value. */
typedef struct {
    const int32_t *t1;
    const int32_t *t2;
    int32_t mult, shift, rounding, lo, hi;
} add_layer;

static inline int8_t add_one(const add_layer *l, int32_t x, int32_t y)
{
    const int32_t v = tp_requantize_fast(l->t1[x] + l->t2[y], l->mult, l->shift, l->rounding);
    return (int8_t)tp_clamp(v, l->lo, l->hi);
}

/*
 * n same-shape elements, n a multiple of 4, four per trip: one word of each input, four table
 * pairs, four byte stores. The loop index runs from -n up to 0 (one register for the count) and
 * gcc's first scheduling pass is off: it interleaved the four elements and spilled the input
 * pointers (gcc only; noinline so that the attribute holds, as in tp_fully_connected_s8.c).
 */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void add_words(const add_layer l, const int8_t *a, const int8_t *b, int8_t *out, int32_t n)
{
    a += n, b += n, out += n;
    for (int32_t i = -n; i != 0; i += 4) {
        const uint32_t wa = (uint32_t)tp_read_s8x4(a + i), wb = (uint32_t)tp_read_s8x4(b + i);
        int8_t *o = out + i;
        o[0] = add_one(&l, (int8_t)wa, (int8_t)wb);
        o[1] = add_one(&l, (int8_t)(wa >> 8), (int8_t)(wb >> 8));
        o[2] = add_one(&l, (int8_t)(wa >> 16), (int8_t)(wb >> 16));
        o[3] = add_one(&l, (int8_t)(wa >> 24), (int8_t)(wb >> 24));
    }
}

tp_status tp_add_table_s8(const tp_add_table_params *params,
                          const tp_dims *input1_dims,
                          const int8_t *input1,
                          const tp_dims *input2_dims,
                          const int8_t *input2,
                          const tp_dims *output_dims,
                          int8_t *output)
{
    int32_t s1[4];
    int32_t s2[4];
    if (!tp_broadcast_strides(input1_dims, output_dims, s1) ||
        !tp_broadcast_strides(input2_dims, output_dims, s2) || params->output_shift > -2) {
        return TP_ERR_ARG;
    }
    const add_layer l = {params->input1_table + 128, params->input2_table + 128,
                         params->output_multiplier, params->output_shift, params->output_rounding,
                         params->activation.min, params->activation.max};
    const tp_dims *o = output_dims;
    const int unit = s1[3] == 1 && s2[3] == 1;
    for (int32_t n = 0; n < o->n; ++n) {
        for (int32_t h = 0; h < o->h; ++h) {
            for (int32_t w = 0; w < o->w; ++w) {
                const int8_t *a = input1 + n * s1[0] + h * s1[1] + w * s1[2];
                const int8_t *b = input2 + n * s2[0] + h * s2[1] + w * s2[2];
                int32_t c = 0;
                if (unit) {
                    c = o->c & ~3;
                    add_words(l, a, b, output, c);
                }
                for (; c < o->c; ++c) {
                    output[c] = add_one(&l, a[c * s1[3]], b[c * s2[3]]);
                }
                output += o->c;
            }
        }
    }
    return TP_OK;
}
