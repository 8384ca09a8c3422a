// AVX-512 kernels for the non-GEMM work of transformer layers: row softmax, layer
// normalisation, and scaled-dot-product attention per head. Same rules as ckernels.h: call only
// when `dlk_avx512_available()` is 1; each returns 0, or -1 when it could not run (nothing
// written; the caller then uses its portable path).
#ifndef DLKIT_CKERNELS_TRANSFORMER_H
#define DLKIT_CKERNELS_TRANSFORMER_H

#include <stddef.h>

/// Row `r` of `y` (`n` floats at y + r·ldy) = softmax of row `r` of `x` (at x + r·ldx).
/// `y` may be `x`.
int dlk_softmax_rows(const float *x, long ldx, float *y, long ldy, int rows, int n);

/// Softmax down the columns of an [axis, inner] block (x → y, may alias), columns [c0, c1) only:
/// sixteen columns at a time, each shifted by its maximum. A NaN or an infinite maximum in a
/// column makes the column NaN, as in the rows.
int dlk_softmax_columns(const float *x, float *y, int axis, long inner, long c0, long c1);

/// Layer normalisation of `rows` contiguous rows of `size` floats: `y = (x - mean)·invStd·scale
/// + bias` (bias may be NULL), invStd = 1/sqrt(biased variance + eps). `mean_out`/`inv_out`
/// (`rows` floats each) may be NULL. `y` may be `x`.
int dlk_layernorm_rows(const float *x, float *y, int rows, int size, const float *scale,
                       const float *bias, float eps, float *mean_out, float *inv_out);

enum { DLK_SCALE_NONE = 0, DLK_SCALE_MUL = 1, DLK_SCALE_DIV = 2 };

/// Attention for heads [h0, h1): O_h = softmax(scale(Q_h · Kᵀ_h) + M_h) · V_h, with
/// Q_h `s × d` (element (i, c) at q + h·q_head + i·q_row + c), Kᵀ_h `d × t` (element (c, j) at
/// kt + h·k_head + c·k_row + j), V_h `t × dv` (at v + h·v_head + j·v_row + c), the mask
/// (element (i, j) of head h at mask + ((h / mask_div) % mask_mod)·mask_head + i·mask_row + j, so
/// a mask broadcast over heads, batch entries or rows is read where it is; NULL for none), O_h
/// `s × dv` (at o + h·o_head + i·o_row + c). `scale_op` DLK_SCALE_MUL multiplies the products by
/// `scale`, DLK_SCALE_DIV divides them. With `nan_to_zero`, NaN probabilities are taken as 0
/// (torch's guard: a row masked out entirely gives zeros). Scores live in a per-thread scratch
/// of a few row blocks.
/// Returns 0, or -1 (nothing written) for a bad size or no scratch.
int dlk_attention(int h0, int h1, int s, int t, int d, int dv,
                  const float *q, long q_head, long q_row,
                  const float *kt, long k_head, long k_row,
                  const float *v, long v_head, long v_row,
                  const float *mask, long mask_head, long mask_div, long mask_mod, long mask_row,
                  int scale_op, float scale, int nan_to_zero, float *o, long o_head, long o_row);

/// dst[c·ldd + r] = src[r·lds + c] for r < n_rows, c < n_cols: a transpose of 4-byte elements
/// (bits copied unchanged), by 16 × 16 register blocks. Used by Transpose and its kin.
int dlk_transpose_32(const void *src, long lds, void *dst, long ldd, int n_rows, int n_cols);

#endif
