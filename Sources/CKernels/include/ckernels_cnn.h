// AVX-512 kernels for small CNNs: 2×2 max pooling, alone or fused into a stride-1 convolution
// (see cnn_avx512.c). Same rules as ckernels.h: call only when `dlk_avx512_available()`.
#ifndef DLKIT_CKERNELS_CNN_H
#define DLKIT_CKERNELS_CNN_H

#include "ckernels.h"

/// 2×2 stride-2 max pooling without padding of `planes` planes of h × w floats (contiguous) into
/// planes of (h/2) × (w/2) (floor: an odd last row or column is not read). NaN propagates.
/// Returns 0, or -1 when AVX-512 code is not compiled in (nothing written).
int dlk_maxpool2x2(const float *x, long planes, int h, int w, float *y);

/// `dlk_conv2d_direct` followed by a 2×2 stride-2 max pool (floor, no padding) of its output
/// (after the epilogue's bias and activation): pooled rows [py0, py1) of the pooled output
/// [m][hout/2][wout/2], channel stride `y_stride`. The full-resolution output exists only as two
/// rows at a time in a per-thread buffer. Arguments otherwise as `dlk_conv2d_direct` (the epilogue
/// must not accumulate). Returns 0, or -1 (nothing or part written; the caller then uses its
/// other path for the whole output).
int dlk_conv2d_s1_maxpool2(const float *x, int cin, int hp, int wp, int kh, int kw, int dh, int dw,
                           int hout, int wout, int py0, int py1,
                           const float *w_packed, int m, float *y, long y_stride, const dlk_epilogue *e);

/// C (m × n, row stride ldc) = epilogue(A · Wᵀ) for a narrow product: W is n × k (row stride
/// ldw, the layout of a fully connected layer's weights, used as stored), A is m × k (row
/// stride lda). Each output is a dot product of two contiguous rows, so the weights are read once
/// per 4 rows of A at their own size (a packed 32-column panel of a 10-column W is 3.2 times
/// larger, and its multiply-adds 3.2 times as many). For n ≤ 16 (NarrowGEMM), and for a few rows
/// on a wide W that must not be copied (PackedGEMM.multiplyUnpacked). The epilogue's alpha, col_bias and activation apply;
/// `accumulate` and row_bias must be 0/NULL. Returns 0, or -1 (nothing written) for a shape or
/// epilogue it does not take.
int dlk_sgemm_nt_narrow(int m, int n, int k, const float *a, long lda, const float *w, long ldw,
                        float *c, long ldc, const dlk_epilogue *e);

/// Transforms 3×3 convolution weights [m][cin][3][3] for `dlk_conv3x3_wino_maxpool2`:
/// u[ξ][o][c] = (G g Gᵀ)[ξ] for ξ in 0..<16, 16·m·cin floats. Requires AVX-512.
void dlk_wino_weights(const float *w, int m, int cin, float *u);

/// A 3×3 stride-1 convolution (no dilation, one group) followed by the 2×2 stride-2 max pool,
/// by Winograd F(2×2, 3×3): each 2×2 output tile, which is exactly one pooling window, costs 16
/// multiplies per input channel instead of 36. The 16 transformed products are GEMMs over blocks
/// of 32 tiles (transformed inputs written straight into a 32-wide panel layout); the output
/// transform adds the bias, applies the activation and takes the max.
/// - x: the padded input [cin][hp][wp] (hp ≥ hout + 2, wp ≥ wout + 2); hout, wout even.
/// - u: the weights transformed by `dlk_wino_weights`.
/// - y: the pooled output [m][hout/2][wout/2], channel stride y_stride; pooled rows [py0, py1).
/// - e: row_bias (per output channel) and activation; alpha 1, no accumulate, no col_bias.
/// Returns 0, or -1 (nothing or part written; use another path for the whole output).
int dlk_conv3x3_wino_maxpool2(const float *x, int cin, int hp, int wp, int hout, int wout, int py0, int py1,
                              const float *u, int m, float *y, long y_stride, const dlk_epilogue *e);

/// The same Winograd F(2×2, 3×3) convolution without the pool: output rows [2·t0, 2·t1) of
/// y [m][hout][wout] (channel stride y_stride; the rows past hout dropped). hout and wout may be
/// odd: x then needs hp ≥ 2·⌈hout/2⌉ + 2 and wp ≥ 2·⌈wout/2⌉ + 2 (one more zero row or column).
/// The epilogue's accumulate (c_scale times what y held: a residual copied in first), row_bias
/// and activation apply; alpha 1, no col_bias. Only output channels [o0, o1) of the m that u
/// holds are computed (0, m: all), so workers can share a small image by channels.
int dlk_conv3x3_wino(const float *x, int cin, int hp, int wp, int hout, int wout, int t0, int t1,
                     const float *u, int m, int o0, int o1, float *y, long y_stride, const dlk_epilogue *e);

/// Copies `channels` planes of h × w floats into planes of (h + top + bottom) × (w + left +
/// right) with zero borders; only the padded rows [r0, r1) of each plane (clamped to the plane)
/// are written, the planes keep their full size. Returns 0, or -1 (nothing written) for negative
/// sizes or without AVX-512 code.
int dlk_pad2d(const float *x, int channels, int h, int w, int top, int left, int bottom, int right, int r0, int r1,
              float *y);

/// `dlk_pad2d` split into phases for a convolution of strides sh × sw: padded row r, column c
/// goes to phase plane (r mod sh)·sw + (c mod sw), at row r / sh, column c / sw. Each channel
/// holds its sh·sw phase planes of ⌈hp / sh⌉ × ⌈wp / sw⌉ floats one after the other (zero where
/// a phase is one row or column short). Every tap of the convolution then reads a phase plane as
/// a stride-1 convolution reads the padded image (`dlk_conv2d_direct`). Strides 1 are `dlk_pad2d`.
int dlk_pad2d_phases(const float *x, int channels, int h, int w, int top, int left, int bottom, int right, int sh, int sw,
                     float *y);

/// Depthwise 2-D convolution of planes [p0, p1) of NCHW data (one filter per channel: plane p
/// uses filter p % channels): y_p = act(conv(x_p, w_{p % channels}) + bias[p % channels]), with
/// `x` planes h × w, filters kh × kw, outputs oh × ow; input position of output (oy, ox), tap
/// (ky, kx) is (oy·sh − pt + ky·dh, ox·sw − pl + kx·dw), zero outside. `bias` may be NULL;
/// `activation`, `a`, `b` as in dlk_epilogue. Returns 0, or -1 when it could not run (no AVX-512
/// or no scratch memory; nothing written).
int dlk_depthwise_conv2d(const float *x, int channels, int h, int w, const float *wt, int kh, int kw,
                         int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow,
                         const float *bias, int activation, float a, float b, long p0, long p1, float *y);

/// Depthwise 2-D convolution on channels-last data, flat output pixels [p0, p1) (pixel p at
/// row p / ow, column p % ow): `xp` the zero-padded input [hp][wp][cs] (`cs` ≥ channels floats a
/// pixel), so output (oy, ox) tap (ky, kx) reads pixel (oy·sh + ky·dh, ox·sw + kx·dw) with no
/// bounds to check; `wt` the filters tap-major [kh·kw][cs]; y [oh·ow][cs] = act(Σ taps + bias),
/// the taps summed in row-major order from the bias. For small planes: sixteen channels fill the
/// lanes where a row of 7 or 14 pixels leaves most of them idle. Returns 0, or -1 without
/// AVX-512 or scratch memory, or when cs < channels (nothing written).
int dlk_depthwise_cl(const float *xp, int channels, int cs, int wp, const float *wt, int kh, int kw, int sh, int sw,
                     int dh, int dw, int ow, const float *bias, int activation, float a, float b,
                     long p0, long p1, float *y);

/// dst[i·k + j] = bias + rows[j·row_stride + i] for i < n, j < k: k rows of n floats
/// interleaved, each plus `bias` (a transposed convolution whose kernel is its stride writes an
/// output row so). Any CPU; AVX-512 for k = 2 where it may run.
void dlk_interleave_rows(const float *rows, long row_stride, int k, int n, float bias, float *dst);

#endif
