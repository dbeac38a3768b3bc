/*
 * tinyprune runtime: int8 CONV_2D for any filter, with interleaved filter row pairs.
 *
 * The code generator folds the input offset into the bias and lays the filter out as a stream
 * of output channel pairs (see tp_nn_conv.h): the two rows (padded with 0 to n4 = KH * KW * C_IN
 * rounded up to a multiple of 4) interleaved a word at a time, then the pair's bias, multiplier,
 * shift and rounding words, so one pointer walks the whole layer. The window of each output
 * pixel is gathered as raw int8 (padding as the input zero point, which the folded bias
 * cancels; a 1x1 window with C_IN % 4 == 0 is read in place), then DSP path: widened to int16
 * into one of two interleaved columns, and every channel pair x both columns runs
 * tp_dot_s8s16_2x2 (three LDRD, four SXTB16, eight SMLAD per 16 MACs) and requantizes its four
 * results with tp_requantize_fast when the layer allows it (SSAT when the activation range is
 * the whole int8 range). Portable path: the same data, one output at a time, with
 * tp_requantize_pos.
 *
 * tp_conv_interleaved_add_s8 is the same kernel with a residual ADD as its epilogue: each int8
 * result, rounded and clamped exactly as above, is combined at once with the residual value at
 * its position as tp_add_table_s8 does (two table terms, tp_requantize_fast, clamp) and the sum
 * overwrites the residual, which is read only there.
 */
#include "tp_nn_conv.h"
#include "tp_nn_support.h"
#include "tp_dsp.h"

/* The words after the two filter rows of a pair in the stream. */
typedef struct {
    int32_t bias[2];
    int32_t mult[2];
    int32_t shift[2];
    int32_t round[2];
} pair_params;

/* A fused residual ADD: the tables biased to index by the signed value (conv, residual). */
typedef struct {
    const int32_t *t_conv;
    const int32_t *t_res;
    int32_t mult, shift, rounding, lo, hi;
} residual_add;

/* Output offset and clamp of the layer, whether the rounding words are valid, and the fused
 * residual ADD (NULL for none). */
typedef struct {
    int32_t offset, lo, hi, fast;
    const residual_add *add;
} requant;

/* tp_add_table_s8's element: the conv result v (int8) plus the residual value res. */
static inline int8_t add_residual(const residual_add *a, int32_t v, int32_t res)
{
    const int32_t s = tp_requantize_fast(a->t_conv[v] + a->t_res[res], a->mult, a->shift,
                                         a->rounding);
    return (int8_t)tp_clamp(s, a->lo, a->hi);
}

/* Bytes of one pair in the stream. */
static inline int32_t pair_bytes(int32_t n4)
{
    return 2 * n4 + (int32_t)sizeof(pair_params);
}

static int32_t depth4(const tp_dims *f_d)
{
    return (f_d->h * f_d->w * f_d->c + 3) & ~3;
}

static void fill_s8(int8_t *dst, int8_t v, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = v;
    }
}

/* Copies n bytes, a word at a time while it can. */
static void copy_s8(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        const int32_t v = tp_read_s8x4(src);
        memcpy(dst, &v, sizeof(v));
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

/* The window at (y0, x0) as n4 raw bytes: a pointer into the input, or gathered into stage.
 * Inlined into the wide unfused loop (as before the narrow path existed: a call per pixel cost
 * the 1x1 layers of KWS and VWW ~1%); the other loops call window_s8_call, which keeps the
 * fused entry's stack frame (the stack peak of ResNet-8) small. */
static TP_ALWAYS_INLINE const int8_t *window_s8(const tp_conv_params *p, const tp_dims *in_d, const int8_t *in,
                               const tp_dims *f_d, int32_t y0, int32_t x0, int8_t *stage,
                               int32_t n4)
{
    const int32_t c = in_d->c, row = f_d->w * c;
    const int8_t zp = (int8_t)-p->input_offset;
    if (n4 == c && f_d->h == 1 && y0 >= 0 && y0 < in_d->h && x0 >= 0 && x0 < in_d->w) {
        return in + (y0 * in_d->w + x0) * c; /* 1x1 window, C_IN % 4 == 0 */
    }
    const int row_inside = p->dilation.w == 1 && x0 >= 0 && x0 + f_d->w <= in_d->w;
    int8_t *dst = stage;
    for (int32_t ky = 0; ky < f_d->h; ++ky, dst += row) {
        const int32_t iy = y0 + ky * p->dilation.h;
        if (iy < 0 || iy >= in_d->h) {
            fill_s8(dst, zp, row);
        } else if (row_inside) {
            copy_s8(dst, in + (iy * in_d->w + x0) * c, row);
        } else {
            for (int32_t kx = 0; kx < f_d->w; ++kx) {
                const int32_t ix = x0 + kx * p->dilation.w;
                if (ix < 0 || ix >= in_d->w) {
                    fill_s8(dst + kx * c, zp, c);
                } else {
                    copy_s8(dst + kx * c, in + (iy * in_d->w + ix) * c, c);
                }
            }
        }
    }
    fill_s8(dst, 0, n4 - f_d->h * row);
    return stage;
}

/*
 * In place (output == input): a 1x1 filter, stride 1, no padding, the same pixels and
 * C_OUT <= C_IN, so pixel p's outputs land at or before its input, which is read (DSP: widened
 * into a column; portable: copied into the scratch) before they are stored.
 */
static int in_place_allowed(const tp_conv_params *p, const tp_dims *in_d, const tp_dims *f_d,
                            const tp_dims *out_d)
{
    return f_d->h == 1 && f_d->w == 1 && p->stride.h == 1 && p->stride.w == 1 &&
           p->padding.h == 0 && p->padding.w == 0 && out_d->h == in_d->h &&
           out_d->w == in_d->w && out_d->c <= in_d->c;
}

/* Bytes at the start of the scratch for a pass's results when an ADD is fused (DSP path). */
static int32_t pass_bytes(const tp_dims *out_d)
{
    return (2 * out_d->c + 3) & ~3;
}

int32_t tp_conv_interleaved_add_s8_get_buffer_size(const tp_dims *input_dims,
                                                   const tp_dims *filter_dims,
                                                   const tp_dims *output_dims)
{
    const int32_t conv = tp_conv_interleaved_s8_get_buffer_size(input_dims, filter_dims);
    return TP_USE_DSP ? pass_bytes(output_dims) + conv : conv;
}

int32_t tp_conv_interleaved_add_narrow_s8_get_buffer_size(const tp_dims *input_dims,
                                                          const tp_dims *filter_dims,
                                                          const tp_dims *output_dims)
{
    const int32_t conv = tp_conv_interleaved_narrow_s8_get_buffer_size(input_dims, filter_dims);
    return TP_USE_DSP ? pass_bytes(output_dims) + conv : conv;
}

int32_t tp_conv_interleaved_narrow_s8_get_buffer_size(const tp_dims *input_dims,
                                                   const tp_dims *filter_dims)
{
    (void)input_dims;
#if TP_USE_DSP
    return 2 * depth4(filter_dims); /* the narrow path: two int8 windows */
#else
    return depth4(filter_dims);
#endif
}

int32_t tp_conv_interleaved_s8_get_buffer_size(const tp_dims *input_dims, const tp_dims *filter_dims)
{
    (void)input_dims;
#if TP_USE_DSP
    return 5 * depth4(filter_dims); /* two int16 columns (4 * n4 bytes) + the int8 window */
#else
    return depth4(filter_dims);
#endif
}

#if TP_USE_DSP

/* Widens n4 raw values into column j of the interleaved int16 pair (tp_dot_s8s16_2x2). */
static void widen_col(const int8_t *src, int32_t n4, int32_t *col, int32_t j)
{
    int32_t *d = col + j;
    for (int32_t g = n4 >> 2; g > 0; --g, src += 4, d += 4) {
        const int32_t v = tp_read_s8x4(src);
        d[0] = tp_sxtb16(v);
        d[2] = tp_sxtb16_ror8(v);
    }
}

/*
 * The narrow path's dot product (scratch 2 * n4): the two windows stay int8 and are widened
 * here like the filter words: per 16 MACs one LDRD (the pair's filter words), one LDR per
 * window, eight SXTB16 and eight SMLAD; acc as tp_dot_s8s16_2x2 (channel-major, column minor).
 */
/* One group (four values of each row and window) of dot_s8s8_2x2. */
static TP_ALWAYS_INLINE void dot_s8s8_group(const void **wp, const int8_t *xa, int32_t off,
                                            int32_t s[4])
{
    int32_t wa, wb;
    tp_load_2x32_inc(wp, &wa, &wb);
    const int32_t a = tp_read_s8x4(xa), b = tp_read_s8x4_off(xa, off);
    int32_t t = tp_sxtb16(wa), u = tp_sxtb16(wb), x = tp_sxtb16(a);
    s[0] = tp_smlad(t, x, s[0]), s[2] = tp_smlad(u, x, s[2]);
    x = tp_sxtb16(b);
    s[1] = tp_smlad(t, x, s[1]), s[3] = tp_smlad(u, x, s[3]);
    t = tp_sxtb16_ror8(wa), u = tp_sxtb16_ror8(wb), x = tp_sxtb16_ror8(a);
    s[0] = tp_smlad(t, x, s[0]), s[2] = tp_smlad(u, x, s[2]);
    x = tp_sxtb16_ror8(b);
    s[1] = tp_smlad(t, x, s[1]), s[3] = tp_smlad(u, x, s[3]);
}

static TP_ALWAYS_INLINE void dot_s8s8_2x2(const int8_t *w, const int8_t *xa, const int8_t *xb,
                                          int32_t groups, int32_t acc[4])
{
    int32_t s[4] = {acc[0], acc[1], acc[2], acc[3]};
    const void *wp = w;
    const int32_t off = (int32_t)(xb - xa); /* window b at a register offset: no pointer more */
    for (const int8_t *end = xa + 4 * (groups & ~1); xa != end; xa += 8) {
        dot_s8s8_group(&wp, xa, off, s);
        dot_s8s8_group(&wp, xa + 4, off, s);
    }
    if (groups & 1) {
        dot_s8s8_group(&wp, xa, off, s);
    }
    acc[0] = s[0], acc[1] = s[1], acc[2] = s[2], acc[3] = s[3];
}

/* Two windows read in place from the input: `rows` rows of `groups` words each, `stride` bytes
 * apart (the filter stream runs on unbroken: C_IN % 4 == 0, so n4 = rows * 4 * groups). */
typedef struct {
    int32_t rows, groups, stride;
} win_rows;

/* dot_s8s8_2x2 over the rows of two in-place windows (window b at the same offset from window a
 * in every row). */
static TP_ALWAYS_INLINE void dot_s8s8_2x2_rows(const int8_t *w, const int8_t *xa,
                                               const int8_t *xb, const win_rows *wr,
                                               int32_t acc[4])
{
    int32_t s[4] = {acc[0], acc[1], acc[2], acc[3]};
    const void *wp = w;
    const int32_t off = (int32_t)(xb - xa), groups = wr->groups, stride = wr->stride;
    for (int32_t rows = wr->rows; rows > 0; --rows, xa += stride) {
        const int8_t *x = xa;
        for (const int8_t *end = x + 4 * (groups & ~1); x != end; x += 8) {
            dot_s8s8_group(&wp, x, off, s);
            dot_s8s8_group(&wp, x + 4, off, s);
        }
        if (groups & 1) {
            dot_s8s8_group(&wp, x, off, s);
        }
    }
    acc[0] = s[0], acc[1] = s[1], acc[2] = s[2], acc[3] = s[3];
}

/* Paths of the dot product: widened columns, two staged int8 windows, two in-place windows. */
enum { DOT_WIDE, DOT_NARROW, DOT_ROWS };

/* The pair's dot product over the two columns: widened int16 (col, the wide path) or raw int8
 * windows (xa, xb, the narrow path; their rows in place in the input with wr). */
static TP_ALWAYS_INLINE void dot_pair(const int8_t *stream, const int32_t *col, const int8_t *xa,
                                      const int8_t *xb, const win_rows *wr, int32_t n4,
                                      int32_t acc[4], const int narrow)
{
    if (narrow == DOT_ROWS) {
        dot_s8s8_2x2_rows(stream, xa, xb, wr, acc);
    } else if (narrow == DOT_NARROW) {
        dot_s8s8_2x2(stream, xa, xb, n4 >> 2, acc);
    } else {
        tp_dot_s8s16_2x2(stream, col, n4 >> 2, acc);
    }
}

/* Requantization modes of a layer (constants in each instance of matmul2_body). */
enum { RQ_GENERAL, RQ_FAST, RQ_FAST_SAT };

static TP_ALWAYS_INLINE int32_t requant_one(const requant *r, int32_t acc, int32_t m, int32_t s, int32_t k,
                                  const int mode)
{
    if (mode == RQ_GENERAL) {
        return tp_clamp(tp_wrap_add(tp_requantize_pos(acc, m, s), r->offset), r->lo, r->hi);
    }
    const int32_t v = tp_requantize_fast(acc, m, s, k);
    return mode == RQ_FAST_SAT ? tp_ssat8(v) : tp_clamp(v, r->lo, r->hi);
}

/* The four results of pair pp: v[0], v[1] of its first channel (columns 0, 1), v[2], v[3]. */
static TP_ALWAYS_INLINE void requant_pair(const requant *r, const pair_params *pp, const int32_t acc[4],
                                int32_t v[4], const int mode)
{
    v[0] = requant_one(r, acc[0], pp->mult[0], pp->shift[0], pp->round[0], mode);
    v[1] = requant_one(r, acc[1], pp->mult[0], pp->shift[0], pp->round[0], mode);
    v[2] = requant_one(r, acc[2], pp->mult[1], pp->shift[1], pp->round[1], mode);
    v[3] = requant_one(r, acc[3], pp->mult[1], pp->shift[1], pp->round[1], mode);
}

/*
 * All output channels of the two columns into out0 and out1. For one column pass out1 == out0:
 * column 1's results are stored first and overwritten. An odd last channel is the first of a
 * pair whose second row and parameters are zero; only its first channel is stored.
 */
static TP_ALWAYS_INLINE void matmul2_body(const requant *r, const int8_t *stream, int32_t c_out, int32_t n4,
                                const int32_t *col, const int8_t *xa, const int8_t *xb,
                                const win_rows *wr,
                                int8_t *out0, int8_t *out1, const int mode, const int narrow)
{
    for (int32_t pairs = c_out >> 1; pairs > 0; --pairs, out0 += 2, out1 += 2) {
        const pair_params *pp = (const pair_params *)(const void *)(stream + 2 * n4);
        int32_t acc[4] = {pp->bias[0], pp->bias[0], pp->bias[1], pp->bias[1]};
        int32_t v[4];
        dot_pair(stream, col, xa, xb, wr, n4, acc, narrow);
        requant_pair(r, pp, acc, v, mode);
        out1[1] = (int8_t)v[3], out1[0] = (int8_t)v[1];
        out0[1] = (int8_t)v[2], out0[0] = (int8_t)v[0];
        stream += pair_bytes(n4);
    }
    if (c_out & 1) {
        const pair_params *pp = (const pair_params *)(const void *)(stream + 2 * n4);
        int32_t acc[4] = {pp->bias[0], pp->bias[0], 0, 0};
        int32_t v[4];
        dot_pair(stream, col, xa, xb, wr, n4, acc, narrow);
        requant_pair(r, pp, acc, v, mode);
        out1[0] = (int8_t)v[1];
        out0[0] = (int8_t)v[0];
    }
}

/* The instances of matmul2_body for one path (narrow a constant), one per mode. */
static TP_ALWAYS_INLINE void matmul2_modes(const requant *r, const int8_t *stream, int32_t c_out,
                                           int32_t n4, const int32_t *col, const int8_t *xa,
                                           const int8_t *xb, const win_rows *wr, int8_t *out0,
                                           int8_t *out1,
                                           const int narrow)
{
    if (!r->fast) {
        matmul2_body(r, stream, c_out, n4, col, xa, xb, wr, out0, out1, RQ_GENERAL, narrow);
    } else if (r->lo == -128 && r->hi == 127) {
        matmul2_body(r, stream, c_out, n4, col, xa, xb, wr, out0, out1, RQ_FAST_SAT, narrow);
    } else {
        matmul2_body(r, stream, c_out, n4, col, xa, xb, wr, out0, out1, RQ_FAST, narrow);
    }
}

/*
 * The fused ADD over the n results of a pass (in conv, as matmul2 stored them) into the
 * residual values res, four per trip while it can; the parameters are copied to locals once.
 */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline))
#endif
static void add_block(const residual_add *add, const int8_t *conv, int8_t *res, int32_t n)
{
    const residual_add a = *add;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const uint32_t wc = (uint32_t)tp_read_s8x4(conv + i), wr = (uint32_t)tp_read_s8x4(res + i);
        res[i] = add_residual(&a, (int8_t)wc, (int8_t)wr);
        res[i + 1] = add_residual(&a, (int8_t)(wc >> 8), (int8_t)(wr >> 8));
        res[i + 2] = add_residual(&a, (int8_t)(wc >> 16), (int8_t)(wr >> 16));
        res[i + 3] = add_residual(&a, (int8_t)(wc >> 24), (int8_t)(wr >> 24));
    }
    for (; i < n; ++i) {
        res[i] = add_residual(&a, conv[i], res[i]);
    }
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void matmul2(const requant *r, const int8_t *stream, int32_t c_out, int32_t n4,
                    const int32_t *col, int8_t *out0, int8_t *out1)
{
    matmul2_modes(r, stream, c_out, n4, col, NULL, NULL, NULL, out0, out1, DOT_WIDE);
}

#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void matmul2_narrow(const requant *r, const int8_t *stream, int32_t c_out, int32_t n4,
                           const int8_t *xa, const int8_t *xb, int8_t *out0, int8_t *out1)
{
    matmul2_modes(r, stream, c_out, n4, NULL, xa, xb, NULL, out0, out1, DOT_NARROW);
}

/* matmul2_narrow on two windows read in place (rows as wr). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline, optimize("no-schedule-insns")))
#endif
static void matmul2_rows(const requant *r, const int8_t *stream, int32_t c_out, int32_t n4,
                         const int8_t *xa, const int8_t *xb, const win_rows *wr, int8_t *out0,
                         int8_t *out1)
{
    matmul2_modes(r, stream, c_out, n4, NULL, xa, xb, wr, out0, out1, DOT_ROWS);
}

/* Where a pass's results go: the output, or the scratch when an ADD is fused (a constant in
 * each instance of the conv loops, so the unfused loops are the same as without fusion). */
static TP_ALWAYS_INLINE int8_t *dst(const int fused, int8_t *out, int8_t *tmp)
{
    return fused ? tmp : out;
}

/* The fused ADD of a pass (nothing without one). */
static TP_ALWAYS_INLINE void fuse(const int fused, const requant *r, const int8_t *tmp,
                                  int8_t *out, int32_t n)
{
    if (fused) {
        add_block(r->add, tmp, out, n);
    }
}

/* window_s8 out of line: the narrow loops' copy. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((noinline))
#endif
static const int8_t *window_s8_call(const tp_conv_params *p, const tp_dims *in_d,
                                    const int8_t *in, const tp_dims *f_d, int32_t y0, int32_t x0,
                                    int8_t *stage, int32_t n4)
{
    return window_s8(p, in_d, in, f_d, y0, x0, stage, n4);
}

/* The layer's window rows as read in place from the input (C_IN % 4 == 0, dilation.w 1, not
 * 1x1: window_s8 reads a 1x1 window in place already), else rows = 0. */
static win_rows rows_of(const tp_conv_params *p, const tp_dims *in_d, const tp_dims *f_d)
{
    win_rows w = {0, 0, 0};
    if ((in_d->c & 3) == 0 && p->dilation.w == 1 && !(f_d->h == 1 && f_d->w == 1)) {
        w.rows = f_d->h;
        w.groups = f_d->w * in_d->c / 4;
        w.stride = p->dilation.h * in_d->w * in_d->c;
    }
    return w;
}

/* The window at (y0, x0) in place in the input (its rows as wr: no copy), or NULL when the layer
 * has no such rows or the window crosses a border (then window_s8 gathers it). */
static TP_ALWAYS_INLINE const int8_t *window_in_place(const tp_conv_params *p,
                                                      const tp_dims *in_d, const int8_t *in,
                                                      const tp_dims *f_d, const win_rows *wr,
                                                      int32_t y0, int32_t x0)
{
    if (wr->rows == 0 || y0 < 0 || y0 + (f_d->h - 1) * p->dilation.h >= in_d->h || x0 < 0 ||
        x0 + f_d->w > in_d->w) {
        return NULL;
    }
    return in + (y0 * in_d->w + x0) * in_d->c;
}

/* Widens the rows of an in-place window into column j (as widen_col on the gathered window). */
static void widen_rows(const int8_t *src, const win_rows *wr, int32_t *col, int32_t j)
{
    const int32_t n = 4 * wr->groups;
    for (int32_t ky = 0; ky < wr->rows; ++ky, src += wr->stride, col += n) {
        widen_col(src, n, col, j);
    }
}

/* The narrow path: two int8 windows in 2 * n4 bytes of scratch (not in place); two windows
 * inside the input are read there (matmul2_rows), no copy. */
static TP_ALWAYS_INLINE void conv_run_narrow_rows(const tp_conv_params *p, const requant *r,
                                                  const tp_dims *in_d, const int8_t *in,
                                                  const tp_dims *f_d, const int8_t *stream,
                                                  const tp_dims *out_d, int8_t *out, void *buf,
                                                  int8_t *tmp, const win_rows *wrp,
                                                  const int fused, const int use_rows)
{
    const int32_t n4 = depth4(f_d), c_out = out_d->c;
    int8_t *stage = (int8_t *)buf;
    const win_rows wr = *wrp;
    const int8_t *x[2] = {stage, stage};
    const int8_t *base[2] = {in, in}; /* a window's batch input and origin (to gather it later) */
    int32_t org[2][2] = {{0, 0}, {0, 0}};
    int direct[2] = {0, 0};
    int32_t filled = 0;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                const int32_t x0 = ox * p->stride.w - p->padding.w;
                const int8_t *d =
                    use_rows ? window_in_place(p, in_d, in_b, f_d, &wr, y0, x0) : NULL;
                direct[filled] = d != NULL;
                base[filled] = in_b, org[filled][0] = y0, org[filled][1] = x0;
                x[filled] = d != NULL ? d
                                      : window_s8_call(p, in_d, in_b, f_d, y0, x0,
                                                       stage + filled * n4, n4);
                if (++filled == 2) {
                    if (use_rows && direct[0] && direct[1]) {
                        matmul2_rows(r, stream, c_out, n4, x[0], x[1], &wr, dst(fused, out, tmp),
                                     dst(fused, out, tmp) + c_out);
                    } else {
                        for (int k = 0; use_rows && k < 2; ++k) { /* one of each: gather both */
                            if (direct[k]) {
                                x[k] = window_s8_call(p, in_d, base[k], f_d, org[k][0],
                                                      org[k][1], stage + k * n4, n4);
                            }
                        }
                        matmul2_narrow(r, stream, c_out, n4, x[0], x[1], dst(fused, out, tmp),
                                       dst(fused, out, tmp) + c_out);
                    }
                    fuse(fused, r, tmp, out, 2 * c_out);
                    out += 2 * c_out;
                    filled = 0;
                }
            }
        }
    }
    if (filled == 1) {
        if (use_rows && direct[0]) {
            matmul2_rows(r, stream, c_out, n4, x[0], x[0], &wr, dst(fused, out, tmp),
                         dst(fused, out, tmp));
        } else {
            matmul2_narrow(r, stream, c_out, n4, x[0], x[0], dst(fused, out, tmp),
                           dst(fused, out, tmp));
        }
        fuse(fused, r, tmp, out, c_out);
    }
}

/*
 * The narrow loop with in-place windows when the layer has them and gains (measured on ResNet-8
 * pruned, table model: 3x3 16->8 -7%; 16->16 even; fused 8->16 +3%: per pair and row the dot
 * restarts, which only few channel pairs amortize), else exactly as without. Never fused: the
 * fused entries' stack frame is the model's stack peak.
 */
static TP_ALWAYS_INLINE void conv_run_narrow(const tp_conv_params *p, const requant *r,
                                             const tp_dims *in_d, const int8_t *in,
                                             const tp_dims *f_d, const int8_t *stream,
                                             const tp_dims *out_d, int8_t *out, void *buf,
                                             int8_t *tmp, const int fused)
{
    const win_rows wr = rows_of(p, in_d, f_d);
    if (!fused && wr.rows != 0 && out_d->c <= 8) {
        conv_run_narrow_rows(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, &wr, fused, 1);
    } else {
        conv_run_narrow_rows(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, &wr, fused, 0);
    }
}

static TP_ALWAYS_INLINE void conv_run_wide_rows(const tp_conv_params *p, const requant *r,
                                                const tp_dims *in_d, const int8_t *in,
                                                const tp_dims *f_d, const int8_t *stream,
                                                const tp_dims *out_d, int8_t *out, void *buf,
                                                int8_t *tmp, const win_rows *wrp,
                                                const int fused, const int use_rows)
{
    const int32_t n4 = depth4(f_d), c_out = out_d->c;
    int32_t *col = (int32_t *)buf;
    int8_t *stage = (int8_t *)buf + 4 * n4;
    const win_rows wr = *wrp;
    int32_t filled = 0;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                const int32_t x0 = ox * p->stride.w - p->padding.w;
                const int8_t *d =
                    use_rows ? window_in_place(p, in_d, in_b, f_d, &wr, y0, x0) : NULL;
                if (use_rows && d != NULL) {
                    widen_rows(d, &wr, col, filled); /* no copy */
                } else {
                    /* inlined only without fusion: the fused entry's frame is the stack peak */
                    const int8_t *win =
                        fused ? window_s8_call(p, in_d, in_b, f_d, y0, x0, stage, n4)
                              : window_s8(p, in_d, in_b, f_d, y0, x0, stage, n4);
                    widen_col(win, n4, col, filled);
                }
                if (++filled == 2) {
                    matmul2(r, stream, c_out, n4, col, dst(fused, out, tmp), dst(fused, out, tmp) + c_out);
                    fuse(fused, r, tmp, out, 2 * c_out);
                    out += 2 * c_out;
                    filled = 0;
                }
            }
        }
    }
    if (filled == 1) {
        for (int32_t g = 0; g < n4; g += 4) { /* column 1 := column 0, its results dropped */
            col[g + 1] = col[g], col[g + 3] = col[g + 2];
        }
        matmul2(r, stream, c_out, n4, col, dst(fused, out, tmp), dst(fused, out, tmp));
        fuse(fused, r, tmp, out, c_out);
    }
}

/* The wide loop with in-place windows when the layer has them (not fused: the fused entries'
 * stack frame is the model's stack peak), else exactly as without. */
static TP_ALWAYS_INLINE void conv_run_wide(const tp_conv_params *p, const requant *r,
                                           const tp_dims *in_d, const int8_t *in,
                                           const tp_dims *f_d, const int8_t *stream,
                                           const tp_dims *out_d, int8_t *out, void *buf,
                                           int8_t *tmp, const int fused)
{
    const win_rows wr = rows_of(p, in_d, f_d);
    if (!fused && wr.rows != 0) {
        conv_run_wide_rows(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, &wr, fused, 1);
    } else {
        conv_run_wide_rows(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, &wr, fused, 0);
    }
}

/* Which loops an entry links: the wide or the narrow one (so an unused path costs no flash:
 * each entry is a section of its own, gc-sections drops it). */
enum { PATH_WIDE, PATH_NARROW };

/* The wide path (scratch 5 * n4) or the narrow one (2 * n4), fused or not. */
static TP_ALWAYS_INLINE void conv_run(const tp_conv_params *p, const requant *r,
                                      const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                                      const int8_t *stream, const tp_dims *out_d, int8_t *out,
                                      void *buf, int32_t size, const int path)
{
    int8_t *tmp = (int8_t *)buf; /* a pass's results when an ADD is fused */
    if (r->add != NULL) {
        buf = tmp + pass_bytes(out_d), size -= pass_bytes(out_d);
    }
    (void)size;
    const int wide = path == PATH_WIDE;
    if (r->add == NULL && wide) {
        conv_run_wide(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, 0);
    } else if (r->add == NULL) {
        conv_run_narrow(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, 0);
    } else if (wide) {
        conv_run_wide(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, 1);
    } else {
        conv_run_narrow(p, r, in_d, in, f_d, stream, out_d, out, buf, tmp, 1);
    }
}

#else /* portable C */

enum { PATH_WIDE, PATH_NARROW }; /* one path on the portable build */

static TP_ALWAYS_INLINE void conv_run(const tp_conv_params *p, const requant *r,
                                      const tp_dims *in_d, const int8_t *in, const tp_dims *f_d,
                                      const int8_t *stream, const tp_dims *out_d, int8_t *out,
                                      void *buf, int32_t size, const int path)
{
    (void)size, (void)path;
    const int32_t n4 = depth4(f_d);
    const int in_place = (const int8_t *)out == in;
    for (int32_t b = 0; b < in_d->n; ++b) {
        const int8_t *in_b = in + b * in_d->h * in_d->w * in_d->c;
        for (int32_t oy = 0; oy < out_d->h; ++oy) {
            const int32_t y0 = oy * p->stride.h - p->padding.h;
            for (int32_t ox = 0; ox < out_d->w; ++ox) {
                const int8_t *x = window_s8(p, in_d, in_b, f_d, y0, ox * p->stride.w - p->padding.w,
                                            (int8_t *)buf, n4);
                if (in_place && x != (const int8_t *)buf) {
                    copy_s8((int8_t *)buf, x, n4); /* in place: the pixel is overwritten below */
                    x = (const int8_t *)buf;
                }
                for (int32_t o = 0; o < out_d->c; ++o) {
                    /* row o: word k / 4 of its pair at 8 * (k / 4) + 4 * (o % 2) */
                    const int8_t *w = stream + (o >> 1) * pair_bytes(n4) + (o & 1) * 4;
                    const pair_params *pp =
                        (const pair_params *)(const void *)(stream + (o >> 1) * pair_bytes(n4) + 2 * n4);
                    int32_t acc = pp->bias[o & 1];
                    for (int32_t k = 0; k < n4; ++k) {
                        acc = tp_wrap_mac(acc, w[2 * (k & ~3) + (k & 3)], x[k]);
                    }
                    acc = tp_wrap_add(tp_requantize_pos(acc, pp->mult[o & 1], pp->shift[o & 1]),
                                      r->offset);
                    acc = tp_clamp(acc, r->lo, r->hi);
                    *out = r->add != NULL ? add_residual(r->add, acc, *out) : (int8_t)acc;
                    ++out;
                }
            }
        }
    }
}

#endif /* TP_USE_DSP */

/* The shapes agree and the scratch holds `need` bytes. */
static int args_ok(const tp_context *ctx, const tp_dims *in_d, const tp_dims *f_d,
                   const tp_dims *out_d, int32_t need)
{
    return f_d->c == in_d->c && f_d->n == out_d->c && in_d->n == out_d->n && ctx != NULL &&
           ctx->buf != NULL && ctx->size >= need;
}

static TP_ALWAYS_INLINE void run(const tp_context *ctx, const tp_conv_params *p,
                                 const residual_add *add, const tp_dims *in_d,
                                 const int8_t *input, const tp_dims *f_d, const int8_t *filter,
                                 const tp_dims *out_d, int8_t *output, const int path)
{
    int32_t fast;
    memcpy(&fast, filter, sizeof(fast)); /* stream word 0 */
    const requant r = {p->output_offset, p->activation.min, p->activation.max, fast, add};
    conv_run(p, &r, in_d, input, f_d, filter + 4, out_d, output, ctx->buf, ctx->size, path);
}

tp_status tp_conv_interleaved_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                 const tp_per_channel_quant *quant_params,
                                 const tp_dims *input_dims, const int8_t *input,
                                 const tp_dims *filter_dims, const int8_t *filter,
                                 const tp_dims *bias_dims, const int32_t *bias,
                                 const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims, (void)quant_params, (void)bias;
    const int32_t need = tp_conv_interleaved_s8_get_buffer_size(input_dims, filter_dims);
    if (!args_ok(ctx, input_dims, filter_dims, output_dims, need) ||
        (output == input && !in_place_allowed(conv_params, input_dims, filter_dims, output_dims))) {
        return TP_ERR_ARG;
    }
    run(ctx, conv_params, NULL, input_dims, input, filter_dims, filter, output_dims, output,
        PATH_WIDE);
    return TP_OK;
}

tp_status tp_conv_interleaved_narrow_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                        const tp_per_channel_quant *quant_params,
                                        const tp_dims *input_dims, const int8_t *input,
                                        const tp_dims *filter_dims, const int8_t *filter,
                                        const tp_dims *bias_dims, const int32_t *bias,
                                        const tp_dims *output_dims, int8_t *output)
{
    (void)bias_dims, (void)quant_params, (void)bias;
    const int32_t need = tp_conv_interleaved_narrow_s8_get_buffer_size(input_dims, filter_dims);
    if (!args_ok(ctx, input_dims, filter_dims, output_dims, need) || output == input) {
        return TP_ERR_ARG;
    }
    run(ctx, conv_params, NULL, input_dims, input, filter_dims, filter, output_dims, output,
        PATH_NARROW);
    return TP_OK;
}

/* The fused ADD's parameters as the kernel's loops take them, or NULL when they are refused. */
static int residual_of(const tp_add_table_params *a, residual_add *out)
{
    if (a == NULL || a->output_shift > -2) {
        return 0;
    }
    const residual_add r = {a->input1_table + 128, a->input2_table + 128, a->output_multiplier,
                            a->output_shift, a->output_rounding, a->activation.min,
                            a->activation.max};
    *out = r;
    return 1;
}

/* The fused kernels' checks and run: `need` scratch bytes, the path the wrapper names (inlined
 * into each wrapper with its path constant, so a firmware without the narrow kernel links no
 * narrow code). */
static TP_ALWAYS_INLINE tp_status run_add(const tp_context *ctx,
                                          const tp_conv_params *conv_params,
                                          const tp_add_table_params *add_params,
                                          const tp_dims *input_dims, const int8_t *input,
                                          const tp_dims *filter_dims, const int8_t *filter,
                                          const tp_dims *output_dims, int8_t *output,
                                          int32_t need, const int path)
{
    residual_add add;
    if (!args_ok(ctx, input_dims, filter_dims, output_dims, need) || output == input ||
        !residual_of(add_params, &add)) {
        return TP_ERR_ARG;
    }
    run(ctx, conv_params, &add, input_dims, input, filter_dims, filter, output_dims, output,
        path);
    return TP_OK;
}

tp_status tp_conv_interleaved_add_s8(const tp_context *ctx, const tp_conv_params *conv_params,
                                     const tp_add_table_params *add_params,
                                     const tp_dims *input_dims, const int8_t *input,
                                     const tp_dims *filter_dims, const int8_t *filter,
                                     const tp_dims *output_dims, int8_t *output)
{
    return run_add(ctx, conv_params, add_params, input_dims, input, filter_dims, filter,
                   output_dims, output,
                   tp_conv_interleaved_add_s8_get_buffer_size(input_dims, filter_dims,
                                                              output_dims),
                   PATH_WIDE);
}

tp_status tp_conv_interleaved_add_narrow_s8(const tp_context *ctx,
                                            const tp_conv_params *conv_params,
                                            const tp_add_table_params *add_params,
                                            const tp_dims *input_dims, const int8_t *input,
                                            const tp_dims *filter_dims, const int8_t *filter,
                                            const tp_dims *output_dims, int8_t *output)
{
    return run_add(ctx, conv_params, add_params, input_dims, input, filter_dims, filter,
                   output_dims, output,
                   tp_conv_interleaved_add_narrow_s8_get_buffer_size(input_dims, filter_dims,
                                                                     output_dims),
                   PATH_NARROW);
}
