/*
 * tinyprune runtime: types shared by every kernel.
 *
 * Tensors are int8, layout [N, H, W, C] (channels last, as TFLite). Filters of conv are
 * [C_OUT, KH, KW, C_IN]; depthwise filters [1, KH, KW, C_IN * CH_MULT]; fully connected
 * weights [OUT, IN]. Biases are int32. Kernels never allocate and never print; they return a
 * tp_status.
 */
#ifndef TP_NN_TYPES_H
#define TP_NN_TYPES_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Return value of every kernel. */
typedef enum {
    TP_OK = 0,          /**< success */
    TP_ERR_ARG = -1,    /**< an argument is out of the supported range (e.g. scratch too small) */
} tp_status;

/** Shape in [N, H, W, C] order. Unused dimensions are 1. */
typedef struct {
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} tp_dims;

/** A width/height pair (strides, padding, dilation). */
typedef struct {
    int32_t w;
    int32_t h;
} tp_tile;

/** Scratch memory handed to a kernel; size from the kernel's _get_buffer_size function. */
typedef struct {
    void *buf;
    int32_t size;
} tp_context;

/** Activation range after the fused activation, in the output's quantized domain. */
typedef struct {
    int32_t min;
    int32_t max;
} tp_activation;

/**
 * Per-channel requantization: one (multiplier, shift) pair per output channel, as TFLM's
 * QuantizeMultiplier gives them: multiplier in [2^30, 2^31) or 0, shift in -31..31 (the code
 * generator refuses a layer that would need a larger shift; the kernels do not check it).
 */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
} tp_per_channel_quant;

/** Per-tensor requantization (same ranges as tp_per_channel_quant). */
typedef struct {
    int32_t multiplier;
    int32_t shift;
} tp_per_tensor_quant;

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_TYPES_H */
