/*
 * tinyprune: UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations, int8 weights, int16 cell state.
 * Bit-exact with TFLite Micro's tflite::EvalLstm<int8_t, int8_t, int16_t, int32_t>
 * (kernels/lstm_eval.h, lstm_eval.cc): the gate FCs of reference_integer_ops::FullyConnected
 * into int16, saturating int16 adds, reference_integer_ops::Logistic / Tanh on int16 and
 * MulElementwise; TP_LSTM_* gate order as TFLM computes them (forget, input, cell, update the
 * cell, output, update the hidden state). The DSP path (TP_USE_DSP) computes the gate FCs with
 * SMLAD on the input and hidden rows widened once per step; both paths give the same bytes.
 */
#include <string.h>

#include "tp_dsp.h"
#include "tp_nn_recurrent.h"

/*
 * sigmoid(i / 24) in 0.16 fixed point, 256 entries: TFLM's sigmoid_table_uint16
 * (tensorflow/lite/kernels/internal/common.h), the values as TFLM ships them (rounding the
 * formula in double differs from them in 44 entries, so the table is kept as data).
 */
static const uint16_t sigmoid_table[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535,
};

static int16_t sat16(int32_t x)
{
    return (int16_t)TP_CLAMP(x, -32768, 32767);
}

/* reference_integer_ops::Logistic, int16, input_multiplier 0 and left shift 0 (Q3.12 input). */
static int16_t sigmoid_q3_12(int16_t x)
{
    const int32_t input = (int32_t)x * 3;
    const uint32_t abs_input = (uint32_t)(input < 0 ? -input : input);
    const uint32_t uh = abs_input >> 9;
    uint32_t result;
    if (uh >= 255) {
        result = 0x7FFFu << 10;
    } else {
        const uint32_t ua = sigmoid_table[uh];
        const uint32_t ub = sigmoid_table[uh + 1];
        result = (ua << 9) + (abs_input & 0x1FFu) * (ub - ua);
    }
    result = input >= 0 ? result + (1u << 9) : (1u << 25) - result + (1u << 9) - 1u;
    return (int16_t)(result >> 10);
}

/* reference_integer_ops::Tanh, int16, with its input multiplier and right shift resolved. */
static int16_t tanh_int16(int16_t x, int32_t multiplier, int32_t shift)
{
    const int32_t round = shift > 0 ? (1 << (shift - 1)) : 0;
    const int32_t input = ((int32_t)x * multiplier + round) >> shift;
    const uint32_t abs_input = (uint32_t)(input < 0 ? -input : input);
    const uint32_t uh = abs_input >> 8;
    int32_t result;
    if (uh >= 255) {
        result = 0xFFFF << 8;
    } else {
        const uint32_t ua = sigmoid_table[uh];
        const uint32_t ub = sigmoid_table[uh + 1];
        result = (int32_t)((ua << 8) + (abs_input & 0xFFu) * (ub - ua));
    }
    result = input >= 0 ? result - (1 << 23) + (1 << 7) : -result + (1 << 23) + (1 << 7) - 1;
    return (int16_t)(result >> 8);
}

/*
 * One FC output before requantization: weight row w (n values) times the input row plus offset.
 * Portable: the plain sum. DSP: two SMLAD per four weights on the row widened once per step
 * (xw, tp_widen_s8x4_pairs: offset added, int16 pairs), the last n % 4 from in. Every sum is
 * modulo 2^32 (tp_wrap_mac; SMLAD wraps too), so the order of the terms does not matter.
 */
static int32_t dot_row(const int8_t *w, const int8_t *in, const int32_t *xw, int32_t n, int32_t offset)
{
    int32_t acc = 0;
    int32_t k = 0;
#if TP_USE_DSP
    for (; k < (n & ~3); k += 4) {
        const int32_t wa = tp_read_s8x4(w + k);
        acc = tp_smlad(tp_sxtb16(wa), xw[0], acc);
        acc = tp_smlad(tp_sxtb16_ror8(wa), xw[1], acc);
        xw += 2;
    }
#else
    (void)xw;
#endif
    for (; k < n; ++k) {
        acc = tp_wrap_mac(acc, w[k], (int32_t)in[k] + offset);
    }
    return acc;
}

/* Words tp_widen_s8x4_pairs writes for n values (0 on the portable path). */
static int32_t widened_words(int32_t n)
{
#if TP_USE_DSP
    return 2 * (n >> 2);
#else
    (void)n;
    return 0;
#endif
}

/* The rows of x (n values each) widened for dot_row, into dst (widened_words(n) per row). */
static void widen_rows(const int8_t *x, int32_t rows, int32_t n, int32_t offset, int32_t *dst)
{
#if TP_USE_DSP
    for (int32_t r = 0; r < rows; ++r) {
        tp_widen_s8x4_pairs(x + r * n, n, offset, dst + r * widened_words(n), 2);
    }
#else
    (void)x, (void)rows, (void)n, (void)offset, (void)dst;
#endif
}

#if TP_USE_DSP
/* dot_row of two weight rows at once (one load of each input word for both). */
static void dot_rows2(const int8_t *w0, const int8_t *w1, const int8_t *in, const int32_t *xw,
                      int32_t n, int32_t offset, int32_t acc[2])
{
    int32_t a0 = 0, a1 = 0;
    int32_t k = 0;
    for (; k < (n & ~3); k += 4) {
        const int32_t wa = tp_read_s8x4(w0 + k), wb = tp_read_s8x4(w1 + k);
        const int32_t xe = xw[0], xo = xw[1];
        a0 = tp_smlad(tp_sxtb16(wa), xe, a0);
        a1 = tp_smlad(tp_sxtb16(wb), xe, a1);
        a0 = tp_smlad(tp_sxtb16_ror8(wa), xo, a0);
        a1 = tp_smlad(tp_sxtb16_ror8(wb), xo, a1);
        xw += 2;
    }
    for (; k < n; ++k) {
        a0 = tp_wrap_mac(a0, w0[k], (int32_t)in[k] + offset);
        a1 = tp_wrap_mac(a1, w1[k], (int32_t)in[k] + offset);
    }
    acc[0] = a0, acc[1] = a1;
}
#endif

/* acc (the raw dot product of row s) plus the bias, requantized to int16. */
static int16_t fc_out(int32_t acc, const int32_t *bias, int32_t s, tp_per_tensor_quant q)
{
    if (bias != NULL) {
        acc = tp_wrap_add(acc, bias[s]);
    }
    return sat16(tp_requantize(acc, q.multiplier, q.shift));
}

/* reference_integer_ops::FullyConnected, int8 x int8 -> int16 (output offset 0, no bias when
 * bias is NULL), rows x n inputs to rows x units outputs. */
static void fc_s16(const int8_t *x, const int32_t *xw, int32_t rows, int32_t n, int32_t offset,
                   const int8_t *w, const int32_t *bias, int32_t units, tp_per_tensor_quant q,
                   int16_t *out)
{
    for (int32_t r = 0; r < rows; ++r) {
        const int8_t *row = x + r * n;
        const int32_t *row_w = xw + r * widened_words(n);
        int16_t *o = out + r * units;
        int32_t s = 0;
#if TP_USE_DSP
        for (; s + 1 < units; s += 2) {
            int32_t acc[2];
            dot_rows2(w + s * n, w + (s + 1) * n, row, row_w, n, offset, acc);
            o[s] = fc_out(acc[0], bias, s, q);
            o[s + 1] = fc_out(acc[1], bias, s + 1, q);
        }
#endif
        for (; s < units; ++s) {
            o[s] = fc_out(dot_row(w + s * n, row, row_w, n, offset), bias, s, q);
        }
    }
}

/* The step's inputs: x and h, and their widened rows (DSP path). */
typedef struct {
    const int8_t *x;
    const int8_t *h;
    const int32_t *xw;
    const int32_t *hw;
    int32_t rows;
} step_inputs;

/* One gate: both FCs, their saturating sum, the activation (CalculateLstmGate). */
static void gate(const tp_lstm_params *p, const tp_lstm_weights *w, int32_t g, const tp_lstm_dims *d,
                 const step_inputs *in, int32_t activation_tanh, int16_t *out, int16_t *buffer)
{
    const int32_t n = in->rows * d->units;
    fc_s16(in->x, in->xw, in->rows, d->input_size, p->input_offset, w->input_weights[g],
           w->bias[g], d->units, p->input_fc[g], out);
    fc_s16(in->h, in->hw, in->rows, d->units, p->hidden_offset, w->recurrent_weights[g], NULL,
           d->units, p->recurrent_fc[g], buffer);
    for (int32_t i = 0; i < n; ++i) {
        const int16_t sum = sat16((int32_t)out[i] + (int32_t)buffer[i]);
        out[i] = activation_tanh ? tanh_int16(sum, 3, 0) : sigmoid_q3_12(sum);
    }
}

/* MulElementwise of two int16 vectors (offsets 0) into int16. */
static int16_t mul16(int16_t a, int16_t b, tp_per_tensor_quant q)
{
    return sat16(tp_requantize((int32_t)a * (int32_t)b, q.multiplier, q.shift));
}

/* One time step over `rows` batch rows (LstmStep). buf: the four gate buffers, then the
 * widened x and h rows (DSP path). */
static void step(const tp_lstm_params *p, const tp_lstm_weights *w, const tp_lstm_dims *d,
                 int32_t rows, const int8_t *x, int8_t *h, int16_t *c, int8_t *out, int16_t *buf)
{
    const int32_t n = rows * d->units;
    const int32_t gates = TP_LSTM_GATES * d->batch * d->units;
    int16_t *forget = buf, *input = buf + n, *cell = buf + 2 * n, *internal = buf + 3 * n;
    int32_t *xw = (int32_t *)(void *)(buf + gates);
    int32_t *hw = xw + rows * widened_words(d->input_size);
    const step_inputs in = { x, h, xw, hw, rows };
    widen_rows(x, rows, d->input_size, p->input_offset, xw);
    widen_rows(h, rows, d->units, p->hidden_offset, hw);
    gate(p, w, TP_LSTM_FORGET, d, &in, 0, forget, internal);
    gate(p, w, TP_LSTM_INPUT, d, &in, 0, input, internal);
    gate(p, w, TP_LSTM_CELL, d, &in, p->cell_gate_tanh, cell, internal);
    for (int32_t i = 0; i < n; ++i) {
        const int16_t kept = mul16(forget[i], c[i], p->forget_mul);
        const int16_t added = mul16(input[i], cell[i], p->input_mul);
        int16_t updated = sat16((int32_t)kept + (int32_t)added);
        if (p->cell_clip_enabled) {
            updated = (int16_t)TP_CLAMP((int32_t)updated, -p->quantized_cell_clip,
                                        p->quantized_cell_clip);
        }
        c[i] = updated;
    }
    int16_t *output_gate = input; /* reused, as TFLM does */
    gate(p, w, TP_LSTM_OUTPUT, d, &in, 0, output_gate, internal);
    for (int32_t i = 0; i < n; ++i) {
        const int16_t t = tanh_int16(c[i], p->cell_tanh_multiplier, p->cell_tanh_shift);
        const int32_t v = tp_requantize((int32_t)t * (int32_t)output_gate[i],
                                        p->output_mul.multiplier, p->output_mul.shift) +
                          p->hidden_zero_point;
        h[i] = (int8_t)TP_CLAMP(v, -128, 127);
    }
    memcpy(out, h, (size_t)n);
}

int32_t tp_lstm_s8_get_buffer_size(const tp_lstm_dims *dims)
{
    const int32_t rows = dims->time_major ? dims->batch : 1;
    return TP_LSTM_GATES * dims->batch * dims->units * (int32_t)sizeof(int16_t) +
           rows * (widened_words(dims->input_size) + widened_words(dims->units)) *
               (int32_t)sizeof(int32_t);
}

tp_status tp_lstm_s8(const tp_context *ctx,
                     const tp_lstm_params *params,
                     const tp_lstm_dims *dims,
                     const int8_t *input,
                     const tp_lstm_weights *weights,
                     int8_t *hidden_state,
                     int16_t *cell_state,
                     int8_t *output)
{
    if (dims->batch < 1 || dims->time_steps < 1 || dims->input_size < 1 || dims->units < 1 ||
        ctx == NULL || ctx->buf == NULL || ctx->size < tp_lstm_s8_get_buffer_size(dims)) {
        return TP_ERR_ARG;
    }
    const int32_t s = dims->units, in = dims->input_size;
    int16_t *buf = (int16_t *)ctx->buf;
    memset(hidden_state, (int8_t)params->hidden_zero_point, (size_t)(dims->batch * s));
    memset(cell_state, 0, (size_t)(dims->batch * s) * sizeof(int16_t));
    if (dims->time_major) {
        for (int32_t t = 0; t < dims->time_steps; ++t) {
            step(params, weights, dims, dims->batch, input + t * dims->batch * in, hidden_state,
                 cell_state, output + t * dims->batch * s, buf);
        }
        return TP_OK;
    }
    for (int32_t b = 0; b < dims->batch; ++b) {
        for (int32_t t = 0; t < dims->time_steps; ++t) {
            const int32_t at = b * dims->time_steps + t;
            step(params, weights, dims, 1, input + at * in, hidden_state + b * s,
                 cell_state + b * s, output + at * s, buf);
        }
    }
    return TP_OK;
}
