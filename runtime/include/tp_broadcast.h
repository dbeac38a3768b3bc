/*
 * tinyprune runtime: the loops of the broadcasting binary int8 kernels (SUB, MUL, MAXIMUM,
 * MINIMUM, SQUARED_DIFFERENCE). Internal to the kernels; not part of the public API.
 *
 * Each kernel writes its per-element arithmetic once, as a static inline function
 * `int8_t one(const P *params, int32_t x, int32_t y)`, and lets TP_BROADCAST_BINARY_S8 walk
 * the output in N, H, W, C order, reading both inputs through the strides of
 * tp_broadcast_strides (0 along a broadcast dimension). The innermost run gets a plain loop
 * when both inputs are contiguous along C (the common, unbroadcast case).
 */
#ifndef TP_BROADCAST_H
#define TP_BROADCAST_H

#include "tp_nn_elementwise.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The strides of both inputs broadcast to `out` (tp_broadcast_strides); 0 when either does
 * not broadcast. */
static inline int tp_broadcast_pair(const tp_dims *in1, const tp_dims *in2, const tp_dims *out,
                                    int32_t s1[4], int32_t s2[4])
{
    return tp_broadcast_strides(in1, out, s1) && tp_broadcast_strides(in2, out, s2);
}

/**
 * out[n][h][w][c] = ONE(params, in1[...], in2[...]) over the whole output `o` (a tp_dims *),
 * the inputs read through the strides s1 and s2 of tp_broadcast_pair. `out` advances.
 */
#define TP_BROADCAST_BINARY_S8(ONE, params, o, in1, s1, in2, s2, out)                           \
    do {                                                                                        \
        for (int32_t n_ = 0; n_ < (o)->n; ++n_) {                                               \
            for (int32_t h_ = 0; h_ < (o)->h; ++h_) {                                           \
                for (int32_t w_ = 0; w_ < (o)->w; ++w_) {                                       \
                    const int8_t *a_ = (in1) + n_ * (s1)[0] + h_ * (s1)[1] + w_ * (s1)[2];      \
                    const int8_t *b_ = (in2) + n_ * (s2)[0] + h_ * (s2)[1] + w_ * (s2)[2];      \
                    if ((s1)[3] == 1 && (s2)[3] == 1) {                                         \
                        for (int32_t c_ = 0; c_ < (o)->c; ++c_) {                               \
                            *(out)++ = ONE((params), a_[c_], b_[c_]);                           \
                        }                                                                       \
                    } else {                                                                    \
                        for (int32_t c_ = 0; c_ < (o)->c; ++c_) {                               \
                            *(out)++ = ONE((params), a_[c_ * (s1)[3]], b_[c_ * (s2)[3]]);       \
                        }                                                                       \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* TP_BROADCAST_H */
