/*
 * tinyprune runtime: slicing, splitting and resampling kernels (int8).
 *
 * Bit-exact with the TFLite Micro reference kernels:
 *   STRIDED_SLICE            reference_ops::StridedSlice (static begin / end / strides, no
 *                            ellipsis or new-axis masks; the per-axis start, step and count are
 *                            computed at generation time as TFLM's StridedSliceStartForAxis /
 *                            EndForAxis do)
 *   SPLIT, SPLIT_V           reference_ops::Split (copies; every output quantized as the input)
 *   RESIZE_NEAREST_NEIGHBOR  reference_ops::ResizeNearestNeighbor (the source row and column of
 *                            every output row and column computed at generation time, in float as
 *                            TFLM's GetNearestNeighbor)
 *   RESIZE_BILINEAR          reference_ops::ResizeBilinearInteger (10-bit fixed-point weights)
 *
 * Layout [N, H, W, C]. Output and input share one quantization (values are copied or
 * interpolated, never requantized). No scratch memory; the output must not overlap the input.
 * Parameters are computed by tinyprune/kernels/transform.py.
 */
#ifndef TP_NN_TRANSFORM_H
#define TP_NN_TRANSFORM_H

#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Parameters of STRIDED_SLICE: where each axis starts and how far it steps. */
typedef struct {
    tp_dims start;  /**< first input index per axis, in [0, dim - 1] */
    tp_dims step;   /**< stride per axis, non-zero (negative walks backwards) */
} tp_strided_slice_params;

/**
 * STRIDED_SLICE: output[n, h, w, c] = input[start + n * step, ...] per axis; output_dims are the
 * counts per axis (a shrunk axis has count 1).
 * Returns TP_OK, or TP_ERR_ARG when an index would leave the input or a step is 0.
 */
tp_status tp_strided_slice_s8(const tp_strided_slice_params *params,
                              const tp_dims *input_dims,
                              const int8_t *input,
                              const tp_dims *output_dims,
                              int8_t *output);

/** One output of a split: its data and its elements per outer index. */
typedef struct {
    int8_t *data;  /**< output data */
    int32_t row;   /**< output axis extent * inner size */
} tp_split_output;

/** Parameters of SPLIT / SPLIT_V on a tensor viewed as [outer, axis * inner]. */
typedef struct {
    int32_t outer;      /**< product of the dimensions before the axis */
    int32_t input_row;  /**< input axis extent * inner size; the sum of the outputs' rows */
} tp_split_params;

/**
 * SPLIT / SPLIT_V along any axis: for every outer index, consecutive runs of the input row go to
 * the outputs in order (the inverse of tp_concat_s8).
 * Returns TP_OK, or TP_ERR_ARG when the output rows do not add up to input_row.
 */
tp_status tp_split_s8(const tp_split_params *params,
                      const int8_t *input,
                      const tp_split_output *outputs,
                      int32_t num_outputs);

/** Parameters of RESIZE_NEAREST_NEIGHBOR: the source row / column of each output row / column. */
typedef struct {
    const int32_t *rows;  /**< output_dims->h entries, each in [0, input H - 1] */
    const int32_t *cols;  /**< output_dims->w entries, each in [0, input W - 1] */
} tp_resize_nearest_params;

/**
 * RESIZE_NEAREST_NEIGHBOR: output[n, y, x, :] = input[n, rows[y], cols[x], :].
 * Returns TP_OK, or TP_ERR_ARG when batches or channels differ or an index is out of range.
 */
tp_status tp_resize_nearest_s8(const tp_resize_nearest_params *params,
                               const tp_dims *input_dims,
                               const int8_t *input,
                               const tp_dims *output_dims,
                               int8_t *output);

/** Parameters of RESIZE_BILINEAR (TFLM ResizeBilinearInteger). */
typedef struct {
    int32_t height_scale;        /**< input / output height in 1/1024 steps, rounded (align_corners:
                                      (input - 1) / (output - 1)) */
    int32_t width_scale;         /**< the same for the width */
    int32_t half_pixel_centers;  /**< 1: sample at pixel centers (TF2 default) */
} tp_resize_bilinear_params;

/**
 * RESIZE_BILINEAR: each output value interpolates the four nearest input values with 10-bit
 * weights per axis, rounded half away from zero.
 * Returns TP_OK, or TP_ERR_ARG when batches or channels differ.
 */
tp_status tp_resize_bilinear_s8(const tp_resize_bilinear_params *params,
                                const tp_dims *input_dims,
                                const int8_t *input,
                                const tp_dims *output_dims,
                                int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_TRANSFORM_H */
