/*
 * tinyprune runtime: the public API of the int8 kernels.
 *
 * One kernel per file under runtime/kernels/, named tp_<op>_<type>.c. Every kernel takes its
 * arguments in one order (context, op params, quant params, then dims + data of input, filter,
 * bias, output), returns a tp_status, never allocates and never prints. Kernels that need
 * scratch memory have a tp_<op>_<type>_get_buffer_size() companion. Each category header below
 * documents its kernels; the DSP (SMLAD/SXTB16) and portable paths of a kernel agree bit for bit,
 * and both are bit-exact with the TensorFlow Lite Micro reference kernels.
 */
#ifndef TP_NN_H
#define TP_NN_H

#include "tp_nn_types.h"
#include "tp_nn_conv.h"
#include "tp_nn_fc.h"
#include "tp_nn_pool.h"
#include "tp_nn_elementwise.h"
#include "tp_nn_activation.h"
#include "tp_nn_tensor.h"
#include "tp_nn_transform.h"
#include "tp_nn_transpose_conv.h"
#include "tp_nn_sparse.h"
#include "tp_nn_recurrent.h"

#endif /* TP_NN_H */
