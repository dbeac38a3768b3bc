/*
 * tinyprune runtime: block-sparse int8 DEPTHWISE_CONV_2D, depth multiplier 1, any filter size
 * (up to TP_DW_BSR_MAX_TAPS taps), stride, padding and dilation; bit-exact with TFLM
 * reference_integer_ops::DepthwiseConvPerChannel on the dense weights the blocks come from.
 * Format and arguments: tp_nn_sparse.h (tp_dw_bsr_filter).
 *
 * A block is one tap of four consecutive channels: one word of the [1, KH, KW, C] filter. Per
 * group of four channels the filter stores the taps that are not all zero (their indices, the
 * narrowest type that fits) and their weight words; every group also has 16 parameter words
 * (the folded bias, multiplier, shift and rounding word of its four channels), so the input
 * offset is in the bias and a tap in the padding reads a row of input zero points (the
 * scratch), which contributes 0 as in the dense kernels (tp_depthwise_conv_3x3_s8.c).
 *
 * Per output pixel the kernel computes the address of each of the KH * KW taps (on the stack;
 * the zero-point row for taps in the padding; bounds checks only for windows that cross the
 * border), then per group walks its stored taps. DSP path: one input word and one weight word
 * per block, two SXTB16 each and one SMLABB / SMLATT per channel, then tp_requantize_fast (SSAT
 * when the activation range is all of int8; the output offset in the rounding words, or added
 * after them where the shift is too large for that). Portable path: one channel at a time with
 * tp_requantize_pos. The last C % 4 channels (a zero-padded group) run one at a time on both.
 */
#include "tp_nn_sparse.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* Words of one group's parameters: bias[4], mult[4], shift[4], round[4]. */
#define PARAM_WORDS 16

/* The layer as the pixel functions need it. */
typedef struct {
    const tp_dw_conv_params *p;
    const tp_dims *in_d, *f_d;
    const tp_dw_bsr_filter *f;
    const int8_t *in_b; /* the current batch's input */
    const int8_t *pad;  /* C4 input zero points (the scratch) */
    int32_t c_n;
} layer;

static int32_t count_of(const tp_dw_bsr_filter *f, int32_t g)
{
    return f->count_bytes == 1 ? ((const uint8_t *)f->counts)[g] : ((const uint16_t *)f->counts)[g];
}

static int32_t tap_of(const tp_dw_bsr_filter *f, int32_t j)
{
    return f->index_bytes == 1 ? ((const uint8_t *)f->index)[j] : ((const uint16_t *)f->index)[j];
}

/* Channel c's output from its accumulator (TFLM arithmetic), parameters at prm. */
static int8_t out_general(const layer *l, const int32_t *prm, int32_t j, int32_t acc)
{
    acc = tp_wrap_add(tp_requantize_pos(acc, prm[4 + j], prm[8 + j]), l->p->output_offset);
    return (int8_t)tp_clamp(acc, l->p->activation.min, l->p->activation.max);
}

/*
 * Group g's channels one at a time, from block j0 on (the portable path, and the last C % 4
 * channels of the DSP path). Channels c >= C (padding of the last group) are not computed.
 */
static void group_channels(const layer *l, const int8_t *const *tap, int32_t g, int32_t j0,
                           int8_t *out)
{
    const tp_dw_bsr_filter *f = l->f;
    const int32_t *prm = f->params + PARAM_WORDS * g;
    const int32_t n = count_of(f, g);
    for (int32_t i = 0; i < 4 && 4 * g + i < l->c_n; ++i) {
        const int32_t c = 4 * g + i;
        int32_t acc = prm[i];
        for (int32_t j = j0; j < j0 + n; ++j) {
            acc = tp_wrap_mac(acc, f->blocks[4 * j + i], tap[tap_of(f, j)][c]);
        }
        out[c] = out_general(l, prm, i, acc);
    }
}

#if TP_USE_DSP

/*
 * Requantization modes of a layer (constants in each instance of the group loop): the TFLM
 * arithmetic (`fast` 0); tp_requantize_fast with the output offset in the rounding words
 * (`fast` 1), then the clamp or SSAT (range all of int8); tp_requantize_fast with rounding words
 * without the offset, which is added after (`fast` 2: the shifts the folded words cannot take).
 */
enum { RQ_GENERAL, RQ_FAST, RQ_FAST_SAT, RQ_ADD, RQ_ADD_SAT };

static TP_ALWAYS_INLINE int32_t requant_one(const int32_t *prm, int32_t acc, int32_t j,
                                            int32_t out_offset, int32_t lo, int32_t hi,
                                            const int mode)
{
    if (mode == RQ_GENERAL) {
        acc = tp_wrap_add(tp_requantize_pos(acc, prm[4 + j], prm[8 + j]), out_offset);
        return tp_clamp(acc, lo, hi);
    }
    int32_t v = tp_requantize_fast(acc, prm[4 + j], prm[8 + j], prm[12 + j]);
    if (mode == RQ_ADD || mode == RQ_ADD_SAT) {
        v += out_offset; /* |v| < 2^29 before (tp_dsp.h): no overflow */
    }
    return mode == RQ_FAST_SAT || mode == RQ_ADD_SAT ? tp_ssat8(v) : tp_clamp(v, lo, hi);
}

/*
 * The full groups of one pixel (tap: its KH * KW tap addresses), one requantization mode.
 * `narrow`: counts and taps are uint8 (always the case up to 255 taps), read by pointer;
 * otherwise through count_of / tap_of.
 */
static TP_ALWAYS_INLINE void groups_body(const layer *l, const int8_t *const *tap, int8_t *out,
                                         const int mode, const int narrow)
{
    const tp_dw_bsr_filter *f = l->f;
    const int32_t groups = l->c_n >> 2;
    /* locals: the int8 stores below could alias anything read through a pointer */
    const int32_t lo = l->p->activation.min, hi = l->p->activation.max;
    const int32_t out_offset = l->p->output_offset;
    const int32_t *prm = f->params;
    const int8_t *w = f->blocks;
    const uint8_t *ip = (const uint8_t *)f->index;
    const uint8_t *counts = (const uint8_t *)f->counts;
    int32_t j = 0;
    for (int32_t g = 0, c = 0; g < groups; ++g, c += 4, prm += PARAM_WORDS) {
        int32_t a[4] = {prm[0], prm[1], prm[2], prm[3]};
        int32_t n = narrow ? counts[g] : count_of(f, g);
        for (; n > 0; --n, w += 4) {
            const int32_t t = narrow ? *ip++ : tap_of(f, j++);
            tp_mac_s8x4(tp_read_s8x4(tap[t] + c), tp_read_s8x4(w), a); /* one block */
        }
        out[c] = (int8_t)requant_one(prm, a[0], 0, out_offset, lo, hi, mode);
        out[c + 1] = (int8_t)requant_one(prm, a[1], 1, out_offset, lo, hi, mode);
        out[c + 2] = (int8_t)requant_one(prm, a[2], 2, out_offset, lo, hi, mode);
        out[c + 3] = (int8_t)requant_one(prm, a[3], 3, out_offset, lo, hi, mode);
    }
}

/* groups_body with the layer's mode and index types; out of line (as in the dense kernel). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void pixel_groups(const layer *l, const int8_t *const *tap, int8_t *out)
{
    const tp_dw_bsr_filter *f = l->f;
    const int sat = l->p->activation.min == -128 && l->p->activation.max == 127;
    if (f->index_bytes != 1 || f->count_bytes != 1) {
        groups_body(l, tap, out, RQ_GENERAL, 0);
    } else if (f->fast == 1) {
        if (sat) {
            groups_body(l, tap, out, RQ_FAST_SAT, 1);
        } else {
            groups_body(l, tap, out, RQ_FAST, 1);
        }
    } else if (f->fast == 2) {
        if (sat) {
            groups_body(l, tap, out, RQ_ADD_SAT, 1);
        } else {
            groups_body(l, tap, out, RQ_ADD, 1);
        }
    } else {
        groups_body(l, tap, out, RQ_GENERAL, 1);
    }
}

#endif /* TP_USE_DSP */

/*
 * Tap addresses of the window at (y0, x0): inside the image base + off[t] (off: the taps'
 * offsets from the window's first tap, once per call); taps in the padding point at the
 * zero-point row (bounds checked only for windows that cross the border).
 */
static void window_taps(const layer *l, const int32_t *off, int32_t y0, int32_t x0,
                        const int8_t **tap)
{
    const tp_dims *in_d = l->in_d;
    const tp_dw_conv_params *p = l->p;
    const int32_t kh = l->f_d->h, kw = l->f_d->w, taps = kh * kw;
    if (y0 >= 0 && x0 >= 0 && y0 + (kh - 1) * p->dilation.h < in_d->h &&
        x0 + (kw - 1) * p->dilation.w < in_d->w) {
        const int8_t *base = l->in_b + (y0 * in_d->w + x0) * in_d->c;
        for (int32_t t = 0; t < taps; ++t) {
            tap[t] = base + off[t];
        }
        return;
    }
    for (int32_t ky = 0, t = 0; ky < kh; ++ky) {
        const int32_t iy = y0 + ky * p->dilation.h;
        for (int32_t kx = 0; kx < kw; ++kx, ++t) {
            const int32_t ix = x0 + kx * p->dilation.w;
            const int inside = iy >= 0 && iy < in_d->h && ix >= 0 && ix < in_d->w;
            tap[t] = inside ? l->in_b + (iy * in_d->w + ix) * in_d->c : l->pad;
        }
    }
}

/* One output pixel: every group of channels (j_tail: the first block of the last C % 4). */
static void pixel(const layer *l, const int8_t *const *tap, int32_t j_tail, int8_t *out)
{
    int32_t g = 0, j = 0;
#if TP_USE_DSP
    pixel_groups(l, tap, out);
    g = l->c_n >> 2, j = j_tail;
#else
    (void)j_tail;
#endif
    for (; g < ((l->c_n + 3) >> 2); ++g) {
        group_channels(l, tap, g, j, out);
        j += count_of(l->f, g);
    }
}

int32_t tp_depthwise_conv_bsr_s8_get_buffer_size(const tp_dims *input_dims,
                                                 const tp_dims *filter_dims)
{
    (void)filter_dims;
    return (input_dims->c + 3) & ~3;
}

tp_status tp_depthwise_conv_bsr_s8(const tp_context *ctx, const tp_dw_conv_params *dw_params,
                                   const tp_per_channel_quant *quant_params,
                                   const tp_dims *input_dims, const int8_t *input,
                                   const tp_dims *filter_dims, const tp_dw_bsr_filter *filter,
                                   const tp_dims *bias_dims, const int32_t *bias,
                                   const tp_dims *output_dims, int8_t *output)
{
    (void)quant_params, (void)bias_dims, (void)bias;
    const tp_dw_conv_params *p = dw_params;
    const tp_dims *in_d = input_dims, *f_d = filter_dims, *out_d = output_dims;
    const tp_dw_bsr_filter *f = filter;
    const int32_t c_n = in_d->c;
    if (p->ch_mult != 1 || f_d->c != c_n || out_d->c != c_n || in_d->n != out_d->n ||
        f_d->h * f_d->w > TP_DW_BSR_MAX_TAPS || f_d->h < 1 || f_d->w < 1 || ctx == NULL ||
        ctx->buf == NULL || ctx->size < tp_depthwise_conv_bsr_s8_get_buffer_size(in_d, f_d) ||
        (f->count_bytes != 1 && f->count_bytes != 2) ||
        (f->index_bytes != 1 && f->index_bytes != 2) || input == output) {
        return TP_ERR_ARG;
    }
    int8_t *pad = (int8_t *)ctx->buf;
    for (int32_t c = 0; c < ((c_n + 3) & ~3); ++c) {
        pad[c] = (int8_t)-p->input_offset;
    }
    layer l = {p, in_d, f_d, f, input, pad, c_n};
    const int8_t *tap[TP_DW_BSR_MAX_TAPS];
    int32_t off[TP_DW_BSR_MAX_TAPS];
    for (int32_t ky = 0, t = 0; ky < f_d->h; ++ky) {
        for (int32_t kx = 0; kx < f_d->w; ++kx, ++t) {
            off[t] = (ky * p->dilation.h * in_d->w + kx * p->dilation.w) * c_n;
        }
    }
    int32_t j_tail = 0;
    for (int32_t g = 0; g < (c_n >> 2); ++g) {
        j_tail += count_of(f, g);
    }
    for (int32_t b = 0; b < in_d->n; ++b, l.in_b += in_d->h * in_d->w * c_n) {
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox, output += c_n) {
                window_taps(&l, off, y0, ox * p->stride.w - p->padding.w, tap);
                pixel(&l, tap, j_tail, output);
            }
        }
    }
    return TP_OK;
}
