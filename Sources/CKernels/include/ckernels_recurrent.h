// Recurrent cell kernels on AVX-512 (see ckernels.h for how the C kernels are chosen).
#ifndef DLKIT_CKERNELS_RECURRENT_H
#define DLKIT_CKERNELS_RECURRENT_H

/// One LSTM step after the gate product, for `rows` batch rows: with the gates of row b at
/// gates + b·gate_stride in ONNX order (i, o, f, c), each `hidden` long,
/// c = σ(f)·c + σ(i)·tanh(g), h = σ(o)·tanh(c) (σ and tanh rational, within 3e-7), as
/// `Recurrent.lstmCellFloat`'s Swift loop; h is also written to out + b·out_stride.
/// `c` and `h` are rows × hidden, contiguous. Only the first `units` (≤ hidden) of each row's
/// cells are computed (a slice of the hidden units: the pointers moved to its first). Each cell's
/// bits do not depend on the slice. Requires AVX-512 (`dlk_avx512_available`).
void dlk_lstm_cell(const float *gates, long gate_stride, float *c, float *h, float *out, long out_stride,
                   int rows, int hidden, int units);

#endif
