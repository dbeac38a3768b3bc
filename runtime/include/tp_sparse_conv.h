/*
 * tinyprune runtime: what the sparse CONV_2D kernels share (internal to the kernels).
 *
 * The layer's geometry and requantization in one struct (tp_sp_conv, filled once per call by
 * tp_sp_conv_of), the windows of output pixels (gathered as int8, or widened straight into a
 * pixel's int16 column), and the requantization of a pass of TP_SP_PIXELS output pixels from
 * their int32 accumulators.
 */
#ifndef TP_SPARSE_CONV_H
#define TP_SPARSE_CONV_H

#include "tp_nn_conv.h"
#include "tp_sparse_dsp.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TP_SP_PIXELS 4 /* output pixels per pass of the DSP paths */

/* The conv geometry and requantization the pixel loops share. */
typedef struct {
    tp_sp_window win;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t out_h, out_w, c_out;
    int32_t in_offset, out_offset, lo, hi;
    const int32_t *mult, *shift, *bias;
} tp_sp_conv;


static inline tp_sp_conv tp_sp_conv_of(const tp_conv_params *p, const tp_per_channel_quant *q,
                                       const tp_dims *in_d, const tp_dims *f_d,
                                       const tp_dims *out_d, const int32_t *bias)
{
    const tp_sp_conv l = {
        {in_d->h, in_d->w, in_d->c, f_d->h, f_d->w, p->dilation.h, p->dilation.w,
         (int8_t)-p->input_offset},
        p->stride.h, p->stride.w, p->padding.h, p->padding.w,
        out_d->h, out_d->w, out_d->c,
        p->input_offset, p->output_offset, p->activation.min, p->activation.max,
        q->multiplier, q->shift, bias,
    };
    return l;
}

/* The int8 window of output pixel `pixel` (tp_sp_window_s8). */
static inline const int8_t *tp_sp_window_at(const tp_sp_conv *l, const int8_t *in,
                                            int32_t pixel, int8_t *stage)
{
    const int32_t oy = pixel / l->out_w, ox = pixel % l->out_w;
    return tp_sp_window_s8(&l->win, in, oy * l->stride_h - l->pad_h, ox * l->stride_w - l->pad_w,
                           stage);
}

/*
 * Widens the raw int8 window of output pixel `pixel` into a column (tp_sp_widen_raw, 8 words per
 * group; the kernel has the input offset folded into its bias, so padding taps hold the input
 * zero point). Rows of a window inside the image are widened straight from the input when a row
 * is whole groups of four (KW * C_IN % 4 == 0, no horizontal dilation); rows in the padding are
 * zero points. Other windows are gathered into stage first.
 */
static inline void tp_sp_widen_window(const tp_sp_conv *l, const int8_t *in, int32_t pixel,
                                      int32_t *col, int8_t *stage, int32_t k)
{
    const tp_sp_window *w = &l->win;
    const int32_t oy = pixel / l->out_w, ox = pixel % l->out_w;
    const int32_t y0 = oy * l->stride_h - l->pad_h, x0 = ox * l->stride_w - l->pad_w;
    const int32_t row = w->kw * w->c;
    if ((row & 3) != 0 || w->dil_w != 1 || x0 < 0 || x0 + w->kw > w->in_w) {
        tp_sp_widen_raw(tp_sp_window_s8(w, in, y0, x0, stage), k, col, 8);
        return;
    }
    const int32_t zp2 = tp_pack16(w->pad_value, w->pad_value);
    for (int32_t ky = 0; ky < w->kh; ++ky, col += 8 * (row >> 2)) {
        const int32_t iy = y0 + ky * w->dil_h;
        if (iy < 0 || iy >= w->in_h) {
            for (int32_t g = 0; g < (row >> 2); ++g) {
                col[8 * g] = zp2, col[8 * g + 1] = zp2;
            }
        } else {
            tp_sp_widen_raw(in + (iy * w->in_w + x0) * w->c, row, col, 8);
        }
    }
}

/*
 * Requantizes the pass's accumulators (acc[o][p], four per channel) into out[p * C_OUT + o] for
 * the `valid` pixels: the channel's split is made once for its four outputs; `full` says the
 * activation range is all of int8 (no activation, or a ReLU whose output zero point is -128:
 * the usual case), so one SSAT clamps.
 */
static inline __attribute__((always_inline)) int32_t tp_sp_clamp_out(int32_t v, int32_t lo,
                                                             int32_t hi, int full)
{
    return full ? tp_ssat8(v) : tp_clamp(v, lo, hi);
}

static inline __attribute__((always_inline)) void tp_sp_store_channels(const tp_sp_conv *l,
                                                                 const tp_sq_channel *chan,
                                                                 const int32_t *acc,
                                                                 int32_t valid, int8_t *out,
                                                                 int full)
{
    const int32_t off = l->out_offset, lo = l->lo, hi = l->hi, step = l->c_out;
    for (int32_t o = 0; o < step; ++o, acc += 4, ++out) {
        const tp_sq_channel c = chan[o];
        int32_t a0, a1, a2, a3;
        tp_load_2x32(acc, &a0, &a1);
        tp_load_2x32(acc + 2, &a2, &a3);
        const int32_t v0 = tp_sp_clamp_out(tp_sq_apply(a0, &c) + off, lo, hi, full);
        const int32_t v1 = tp_sp_clamp_out(tp_sq_apply(a1, &c) + off, lo, hi, full);
        const int32_t v2 = tp_sp_clamp_out(tp_sq_apply(a2, &c) + off, lo, hi, full);
        const int32_t v3 = tp_sp_clamp_out(tp_sq_apply(a3, &c) + off, lo, hi, full);
        out[0] = (int8_t)v0;
        if (valid == TP_SP_PIXELS) {
            out[step] = (int8_t)v1, out[2 * step] = (int8_t)v2, out[3 * step] = (int8_t)v3;
        } else if (valid > 1) {
            out[step] = (int8_t)v1;
            if (valid > 2) {
                out[2 * step] = (int8_t)v2;
            }
        }
    }
}

/*
 * The requantization of a channel for the fused passes (a row's four results requantized and
 * stored as soon as its blocks are done, no accumulator array): valid when every channel's
 * shift is in [-TP_SQ_FAST_MAX_E, -1] and the activation range is all of int8. With e = -shift,
 * left = 0, and tp_sq_apply's rounding division, the output offset folded into the nudge
 * (exact: (x + (off << e)) >> e = (x >> e) + off, and |h| <= 2^30, nudge + |off << e| < 2^30
 * for e <= 22):
 *
 *     out = SSAT8((SMMULR(acc << 1, mult) + add + (h < 0 ? -1 : 0)) >> e),
 *     add = 2^(e - 1) + (out_offset << e)
 *
 * with h = SMMULR(acc << 1, mult); computed as SSAT8((SMMLAR(acc << 1, mult, add) + (acc < 0 ?
 * -1 : 0)) >> e), four instructions and the shift (tp_sq_fast_out).
 *
 * The channel's folded bias is stored with it (one pointer walks the channels).
 */
#define TP_SQ_FAST_MAX_E 22

typedef struct {
    int32_t bias;
    int32_t mult;
    int32_t e;
    int32_t add;
} tp_sq_fast;

/* 1 when the layer can take the fused requantization: every channel's shift in
 * [-TP_SQ_FAST_MAX_E, -1] and the activation range all of int8 (else the general path). */
static inline int tp_sq_fast_ok(const tp_sp_conv *l)
{
    if (l->lo != -128 || l->hi != 127) {
        return 0;
    }
    for (int32_t o = 0; o < l->c_out; ++o) {
        if (l->shift[o] > -1 || l->shift[o] < -TP_SQ_FAST_MAX_E) {
            return 0;
        }
    }
    return 1;
}

/* Channel o's tp_sq_fast (the layer passed tp_sq_fast_ok). */
static inline tp_sq_fast tp_sq_fast_at(const tp_sp_conv *l, int32_t o)
{
    const int32_t e = -l->shift[o];
    tp_sq_fast q;
    q.bias = l->bias != NULL ? l->bias[o] : 0;
    q.mult = l->mult[o];
    q.e = e;
    q.add = (int32_t)(1U << (e - 1)) + (int32_t)((uint32_t)l->out_offset << e);
    return q;
}

/* One output of tp_sq_fast's channel (see there). */
static inline __attribute__((always_inline)) int32_t tp_sq_fast_out(int32_t acc, int32_t mult,
                                                                    int32_t e, int32_t add)
{
    /* h + add in one SMMLAR; the sign term from acc instead of h: they differ only when h = 0
     * and acc < 0, where (add - 1) >> e = add >> e = out_offset */
    const int32_t acc2 = (int32_t)((uint32_t)acc << 1);
    return tp_ssat8((tp_smmlar(acc2, mult, add) + (acc2 >> 31)) >> e);
}

/* Requantizes a row's four results with q and stores them at out[0], out[step], out[2 step],
 * out[3 step]. */
static inline __attribute__((always_inline)) void tp_sq_fast_store4(const tp_sq_fast *q,
                                                                    int32_t a0, int32_t a1,
                                                                    int32_t a2, int32_t a3,
                                                                    int8_t *out, int32_t step)
{
    const int32_t mult = q->mult, e = q->e, add = q->add;
    /* step is opaque to gcc here: one base pointer and register offsets instead of four output
     * pointers kept (and spilled) across the caller's loop */
    __asm__("" : "+r"(step));
    out[0] = (int8_t)tp_sq_fast_out(a0, mult, e, add);
    out[step] = (int8_t)tp_sq_fast_out(a1, mult, e, add);
    int8_t *const out2 = out + 2 * step;
    out2[0] = (int8_t)tp_sq_fast_out(a2, mult, e, add);
    out2[step] = (int8_t)tp_sq_fast_out(a3, mult, e, add);
}

TP_SP_SHARED static void tp_sp_store_pass(const tp_sp_conv *l, const tp_sq_channel *chan,
                                          const int32_t *acc, int32_t valid, int8_t *out)
{
    const int full = l->lo == -128 && l->hi == 127;
    if (full && valid == TP_SP_PIXELS) {
        tp_sp_store_channels(l, chan, acc, TP_SP_PIXELS, out, 1);
    } else if (full) {
        tp_sp_store_channels(l, chan, acc, valid, out, 1);
    } else if (valid == TP_SP_PIXELS) {
        tp_sp_store_channels(l, chan, acc, TP_SP_PIXELS, out, 0);
    } else {
        tp_sp_store_channels(l, chan, acc, valid, out, 0);
    }
}

#ifdef __cplusplus
}
#endif

#endif /* TP_SPARSE_CONV_H */
