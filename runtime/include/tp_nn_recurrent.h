/*
 * tinyprune: recurrent kernels.
 *
 *   UNIDIRECTIONAL_SEQUENCE_LSTM  (tp_lstm_s8: portable path, and SMLAD gate FCs behind
 *       TP_USE_DSP) tflite::EvalLstm<int8_t, int8_t, int16_t, int32_t> of TFLite
 *       Micro (lstm_eval.h, the "8x8_16" integer LSTM the converter emits for a rolled tf_keras
 *       LSTM): int8 input and hidden state, int8 weights (per tensor, zero point 0), int32
 *       biases, int16 cell state with a power-of-two scale, no peephole, projection, layer norm
 *       or CIFG (the handler refuses those).
 *
 * Layout: input [B, T, I] (batch major) or [T, B, I] (time_major), output the same with S
 * units in place of I; hidden state [B, S] int8, cell state [B, S] int16; weights [S, I]
 * (input) and [S, S] (recurrent) per gate, row major.
 *
 * Each step, per gate g of (forget, input, cell, output), in TFLM's order:
 *   pre_g  = sat16(rq(W_g (x + in_off) + b_g)) + sat16(rq(R_g (h + h_off)))  (sat16 again)
 *   gate_g = sigmoid(pre_g), the cell gate its activation (tanh or sigmoid), on Q3.12 -> Q0.15
 *            (reference_integer_ops::Logistic / Tanh, int16, TFLM's sigmoid table)
 *   c = sat16(rq(f * c)) + sat16(rq(i * g)), saturated, clipped to +-cell_clip when enabled
 *   h = sat8(rq(tanh(c) * o) + h_zp); the step's output is h.
 * The state starts at zero (hidden = its zero point, cell = 0) in every call: each call is one
 * whole sequence, as TFLM runs it after MicroInterpreter::Reset(). Every parameter is computed
 * at generation time by tinyprune/kernels/recurrent.py (TFLM's PrepareGateParametersInteger).
 */
#ifndef TP_NN_RECURRENT_H
#define TP_NN_RECURRENT_H

#include "tp_nn_support.h"
#include "tp_nn_types.h"

#ifdef __cplusplus
extern "C" {
#endif

/** The four LSTM gates, in the order of tp_lstm_params and tp_lstm_weights. */
enum { TP_LSTM_FORGET = 0, TP_LSTM_INPUT = 1, TP_LSTM_CELL = 2, TP_LSTM_OUTPUT = 3, TP_LSTM_GATES = 4 };

/** Sizes of an LSTM: batch B, time steps T, input features I, units (state size) S. */
typedef struct {
    int32_t batch;
    int32_t time_steps;
    int32_t input_size;
    int32_t units;
    int32_t time_major;  /**< 1: input [T, B, I]; 0: [B, T, I] */
} tp_lstm_dims;

/** Quantization of an integer LSTM (TFLM OpDataLSTM, integer case). */
typedef struct {
    int32_t input_offset;                         /**< -input zero point */
    int32_t hidden_offset;                        /**< -hidden state zero point */
    int32_t hidden_zero_point;                    /**< output offset of the hidden state update */
    tp_per_tensor_quant input_fc[TP_LSTM_GATES];  /**< input scale * weight scale / 2^-12 */
    tp_per_tensor_quant recurrent_fc[TP_LSTM_GATES]; /**< hidden scale * weight scale / 2^-12 */
    tp_per_tensor_quant forget_mul;               /**< 2^-15 * cell scale / cell scale */
    tp_per_tensor_quant input_mul;                /**< 2^-15 * 2^-15 / cell scale */
    tp_per_tensor_quant output_mul;               /**< 2^-15 * 2^-15 / hidden scale */
    int32_t cell_gate_tanh;                       /**< 1: the cell gate is tanh; 0: sigmoid */
    int32_t cell_clip_enabled;                    /**< TFLM clips when cell_clip > 0 */
    int32_t quantized_cell_clip;                  /**< the clip in cell state steps */
    int32_t cell_tanh_multiplier;                 /**< tanh(cell) input scaling (TFLM lstm_internal::Tanh) */
    int32_t cell_tanh_shift;                      /**< its right shift */
} tp_lstm_params;

/** Constant data of an LSTM, per gate in TP_LSTM_* order. */
typedef struct {
    const int8_t *input_weights[TP_LSTM_GATES];      /**< [S, I] each */
    const int8_t *recurrent_weights[TP_LSTM_GATES];  /**< [S, S] each */
    const int32_t *bias[TP_LSTM_GATES];              /**< [S] each */
} tp_lstm_weights;

/**
 * UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations, int16 cell state.
 *
 * ctx->buf (4-byte aligned) holds the gate buffers (tp_lstm_s8_get_buffer_size); hidden_state and
 * cell_state are the op's state tensors, reset at the start of the call. Returns TP_OK, or
 * TP_ERR_ARG for non-positive sizes or a scratch buffer that is too small.
 */
tp_status tp_lstm_s8(const tp_context *ctx,
                     const tp_lstm_params *params,
                     const tp_lstm_dims *dims,
                     const int8_t *input,
                     const tp_lstm_weights *weights,
                     int8_t *hidden_state,
                     int16_t *cell_state,
                     int8_t *output);

/**
 * Scratch bytes tp_lstm_s8 needs: four gate buffers of B * S int16 values, and on the DSP path
 * the step's input and hidden rows widened to int16 pairs (4 bytes per two values of each
 * complete group of four; B rows when time major, else one).
 */
int32_t tp_lstm_s8_get_buffer_size(const tp_lstm_dims *dims);

#ifdef __cplusplus
}
#endif

#endif /* TP_NN_RECURRENT_H */
