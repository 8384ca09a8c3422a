// Softmax, layer normalisation and per-head attention on AVX-512 (see
// include/ckernels_transformer.h). The Swift versions of these loops build for baseline x86-64
// and run 4 floats at a time; here they run 16.
#include "ckernels.h"
#include "ckernels_transformer.h"
#include "internal.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#include "vecmath_avx512.h"
#define TF_X86 1
#else
#define TF_X86 0
#endif

#if TF_X86

#define TF_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#define TF_INLINE static inline __attribute__((always_inline))


/// Softmax of one row of n floats, x → y (may alias).
TF_INLINE TF_TARGET void tf_softmax_row(const float *x, float *y, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 16 <= n; j += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + j));
    if (j < n) mx = _mm512_mask_max_ps(mx, dlk_lanes16(n - j), mx, _mm512_maskz_loadu_ps(dlk_lanes16(n - j), x + j));
    const __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 acc = _mm512_setzero_ps();
    for (j = 0; j + 16 <= n; j += 16) {
        __m512 e = dlk_exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), vm));
        _mm512_storeu_ps(y + j, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (j < n) {
        __mmask16 k = dlk_lanes16(n - j);
        __m512 e = dlk_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + j), vm));
        _mm512_mask_storeu_ps(y + j, k, e);
        acc = _mm512_mask_add_ps(acc, k, acc, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(acc));
    for (j = 0; j + 16 <= n; j += 16) _mm512_storeu_ps(y + j, _mm512_mul_ps(_mm512_loadu_ps(y + j), inv));
    if (j < n) {
        __mmask16 k = dlk_lanes16(n - j);
        _mm512_mask_storeu_ps(y + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, y + j), inv));
    }
}

TF_TARGET int dlk_softmax_rows(const float *x, long ldx, float *y, long ldy, int rows, int n) {
    if (n <= 0) return 0;
    for (int r = 0; r < rows; r++) tf_softmax_row(x + (size_t)r * ldx, y + (size_t)r * ldy, n);
    return 0;
}

TF_TARGET int dlk_softmax_columns(const float *x, float *y, int axis, long inner, long c0, long c1) {
    for (long c = c0; c < c1; c += 16) {
        const __mmask16 k = dlk_lanes16((int)(c1 - c < 16 ? c1 - c : 16));
        __m512 mx = _mm512_set1_ps(-INFINITY);
        for (int a = 0; a < axis; a++) mx = _mm512_max_ps(mx, _mm512_maskz_loadu_ps(k, x + (size_t)a * inner + c));
        __m512 acc = _mm512_setzero_ps();
        for (int a = 0; a < axis; a++) {
            __m512 e = dlk_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + (size_t)a * inner + c), mx));
            _mm512_mask_storeu_ps(y + (size_t)a * inner + c, k, e);
            acc = _mm512_add_ps(acc, e);
        }
        const __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), acc);
        for (int a = 0; a < axis; a++) {
            float *row = y + (size_t)a * inner + c;
            _mm512_mask_storeu_ps(row, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row), inv));
        }
    }
    return 0;
}

TF_TARGET int dlk_layernorm_rows(const float *x, float *y, int rows, int size, const float *scale,
                                 const float *bias, float eps, float *mean_out, float *inv_out) {
    if (size <= 0) return 0;
    const int full = size & ~15;
    const __mmask16 tail = dlk_lanes16(size - full);
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * size;
        float *yr = y + (size_t)r * size;
        __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
        int j = 0;
        for (; j + 32 <= full; j += 32) {
            s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + j));
            s1 = _mm512_add_ps(s1, _mm512_loadu_ps(xr + j + 16));
        }
        for (; j < full; j += 16) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(xr + j));
        if (tail) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(tail, xr + full));
        const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / (float)size;
        const __m512 vm = _mm512_set1_ps(mean);
        __m512 q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
        for (j = 0; j + 32 <= full; j += 32) {
            __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(xr + j), vm);
            __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(xr + j + 16), vm);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        for (; j < full; j += 16) {
            __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(xr + j), vm);
            q0 = _mm512_fmadd_ps(d0, d0, q0);
        }
        if (tail) {
            __m512 d1 = _mm512_maskz_sub_ps(tail, _mm512_maskz_loadu_ps(tail, xr + full), vm);
            q1 = _mm512_fmadd_ps(d1, d1, q1);
        }
        const float var = _mm512_reduce_add_ps(_mm512_add_ps(q0, q1)) / (float)size;
        const float inv = 1.0f / sqrtf(var + eps);
        if (mean_out) mean_out[r] = mean;
        if (inv_out) inv_out[r] = inv;
        const __m512 vi = _mm512_set1_ps(inv);
        for (j = 0; j < size; j += 16) {
            __mmask16 k = dlk_lanes16(size - j);
            __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, xr + j), vm), vi);
            __m512 sc = _mm512_maskz_loadu_ps(k, scale + j);
            v = bias ? _mm512_fmadd_ps(v, sc, _mm512_maskz_loadu_ps(k, bias + j)) : _mm512_mul_ps(v, sc);
            _mm512_mask_storeu_ps(yr + j, k, v);
        }
    }
    return 0;
}

/// C (R × valid, at most 16·NV columns) = alpha · A (R × k, row stride lda) · B (k × valid, row
/// stride ldb). R and NV are constants at every call site, so the accumulators stay in registers.
TF_INLINE TF_TARGET void tf_tile(const int R, const int NV, int k, const float *restrict a, long lda,
                                 const float *restrict b, long ldb, float *c, long ldc, int valid, float alpha) {
    __m512 acc[12][4];
    __mmask16 mk[4];
    _Pragma("clang loop unroll(full)")
    for (int v = 0; v < NV; v++) mk[v] = dlk_lanes16(valid - 16 * v);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < R; i++) {
        _Pragma("clang loop unroll(full)")
        for (int v = 0; v < NV; v++) acc[i][v] = _mm512_setzero_ps();
    }
    for (int p = 0; p < k; p++) {
        __m512 bv[4];
        const float *bp = b + (size_t)p * ldb;
        _Pragma("clang loop unroll(full)")
        for (int v = 0; v < NV; v++) bv[v] = _mm512_maskz_loadu_ps(mk[v], bp + 16 * v);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < R; i++) {
            __m512 av = _mm512_set1_ps(a[(size_t)i * lda + p]);
            _Pragma("clang loop unroll(full)")
            for (int v = 0; v < NV; v++) acc[i][v] = _mm512_fmadd_ps(av, bv[v], acc[i][v]);
        }
    }
    const __m512 al = _mm512_set1_ps(alpha);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < R; i++) {
        _Pragma("clang loop unroll(full)")
        for (int v = 0; v < NV; v++) {
            __m512 r = alpha != 1.0f ? _mm512_mul_ps(acc[i][v], al) : acc[i][v];
            _mm512_mask_storeu_ps(c + (size_t)i * ldc + 16 * v, mk[v], r);
        }
    }
}

#define TF_T(R, NV) tf_tile(R, NV, k, a, lda, b, ldb, c, ldc, valid, alpha)
#define TF_ROWS12(NV) switch (r) { \
    case 1: TF_T(1, NV); break; case 2: TF_T(2, NV); break; case 3: TF_T(3, NV); break; \
    case 4: TF_T(4, NV); break; case 5: TF_T(5, NV); break; case 6: TF_T(6, NV); break; \
    case 7: TF_T(7, NV); break; case 8: TF_T(8, NV); break; case 9: TF_T(9, NV); break; \
    case 10: TF_T(10, NV); break; case 11: TF_T(11, NV); break; default: TF_T(12, NV); break; }
#define TF_ROWS6(NV) switch (r) { \
    case 1: TF_T(1, NV); break; case 2: TF_T(2, NV); break; case 3: TF_T(3, NV); break; \
    case 4: TF_T(4, NV); break; case 5: TF_T(5, NV); break; default: TF_T(6, NV); break; }

static TF_TARGET void tf_tile_dispatch(int r, int nv, int k, const float *a, long lda, const float *b, long ldb,
                                       float *c, long ldc, int valid, float alpha) {
    switch (nv) {
    case 1: TF_ROWS12(1) break;
    case 2: TF_ROWS12(2) break;
    case 3: TF_ROWS6(3) break;
    default: TF_ROWS6(4) break;
    }
}

/// C (m × n) = alpha · A (m × k) · B (k × n), all row-major with the given strides: column
/// chunks of 64, row blocks of up to 12 (≤ 32 columns) or 6, as even as possible.
static TF_TARGET void tf_gemm(int m, int n, int k, const float *a, long lda, const float *b, long ldb,
                              float *c, long ldc, float alpha) {
    for (int j0 = 0; j0 < n; j0 += 64) {
        const int valid = n - j0 < 64 ? n - j0 : 64;
        const int nv = (valid + 15) / 16;
        const int rmax = nv <= 2 ? 12 : 6;
        const int nb = (m + rmax - 1) / rmax;
        if (nb == 0) return;
        const int base = m / nb, extra = m % nb;
        int i0 = 0;
        for (int bi = 0; bi < nb; bi++) {
            const int r = base + (bi < extra ? 1 : 0);
            tf_tile_dispatch(r, nv, k, a + (size_t)i0 * lda, lda, b + j0, ldb, c + (size_t)i0 * ldc + j0, ldc,
                             valid, alpha);
            i0 += r;
        }
    }
}

TF_TARGET int dlk_attention(int h0, int h1, int s, int t, int d, int dv,
                            const float *q, long q_head, long q_row,
                            const float *kt, long k_head, long k_row,
                            const float *v, long v_head, long v_row,
                            const float *mask, long mask_head, long mask_div, long mask_mod, long mask_row,
                            int scale_op, float scale, int nan_to_zero, float *o, long o_head, long o_row) {
    if (h1 <= h0 || s <= 0 || dv <= 0) return 0;
    if (t <= 0 || d <= 0 || mask_div < 1 || mask_mod < 1) return -1;
    // Score rows per block: about 16k floats (64 KiB: L2-resident), at least one row.
    int block = 16384 / t;
    if (block < 1) block = 1;
    if (block > s) block = s;
    float *sc = dlk_scratch(DLK_SCRATCH_ATTENTION, (size_t)block * t * sizeof(float));
    if (!sc) return -1;
    const float alpha = scale_op == DLK_SCALE_MUL ? scale : 1.0f;
    const int full = t & ~15;
    const __mmask16 tail = dlk_lanes16(t - full);
    for (int h = h0; h < h1; h++) {
        const float *qh = q + (size_t)h * q_head, *kh = kt + (size_t)h * k_head, *vh = v + (size_t)h * v_head;
        const float *mh = mask ? mask + (size_t)((h / mask_div) % mask_mod) * mask_head : NULL;
        float *oh = o + (size_t)h * o_head;
        for (int r0 = 0; r0 < s; r0 += block) {
            const int rows = s - r0 < block ? s - r0 : block;
            tf_gemm(rows, t, d, qh + (size_t)r0 * q_row, q_row, kh, k_row, sc, t, alpha);
            if (scale_op == DLK_SCALE_DIV || mh) {
                const __m512 vs = _mm512_set1_ps(scale);
                for (int i = 0; i < rows; i++) {
                    float *row = sc + (size_t)i * t;
                    const float *mrow = mh ? mh + (size_t)(r0 + i) * mask_row : NULL;
                    for (int j = 0; j < t; j += 16) {
                        __mmask16 k = j < full ? (__mmask16)0xFFFF : tail;
                        __m512 x = _mm512_maskz_loadu_ps(k, row + j);
                        if (scale_op == DLK_SCALE_DIV) x = _mm512_div_ps(x, vs);
                        if (mrow) x = _mm512_add_ps(x, _mm512_maskz_loadu_ps(k, mrow + j));
                        _mm512_mask_storeu_ps(row + j, k, x);
                    }
                }
            }
            for (int i = 0; i < rows; i++) {
                float *row = sc + (size_t)i * t;
                tf_softmax_row(row, row, t);
                if (nan_to_zero) {
                    for (int j = 0; j < t; j += 16) {
                        const __mmask16 k = j < full ? (__mmask16)0xFFFF : tail;
                        const __m512 x = _mm512_maskz_loadu_ps(k, row + j);
                        _mm512_mask_storeu_ps(row + j, _mm512_mask_cmp_ps_mask(k, x, x, _CMP_UNORD_Q), _mm512_setzero_ps());
                    }
                }
            }
            tf_gemm(rows, dv, t, sc, t, vh, v_row, oh + (size_t)r0 * o_row, o_row, 1.0f);
        }
    }
    return 0;
}


TF_TARGET int dlk_transpose_32(const void *src, long lds, void *dst, long ldd, int n_rows, int n_cols) {
    const float *a = src;
    float *b = dst;
    for (int r0 = 0; r0 < n_rows; r0 += 16) {
        const int h = n_rows - r0 < 16 ? n_rows - r0 : 16;
        const __mmask16 out = dlk_lanes16(h);
        for (int c0 = 0; c0 < n_cols; c0 += 16) {
            const int w = n_cols - c0 < 16 ? n_cols - c0 : 16;
            const __mmask16 in = dlk_lanes16(w);
            __m512 r[16], t[16];
            dlk_load_rows16(a + (size_t)r0 * lds + c0, lds, h, in, r);
            dlk_transpose16x16(r, t);
            float *d = b + (size_t)c0 * ldd + r0;
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < 16; q++)
                if (q < w) _mm512_mask_storeu_ps(d + (size_t)q * ldd, out, t[q]);
        }
    }
    return 0;
}

#else  // not x86-64: dlk_avx512_available() is 0 and these are never called.

int dlk_softmax_rows(const float *x, long ldx, float *y, long ldy, int rows, int n) {
    (void)x; (void)ldx; (void)y; (void)ldy; (void)rows; (void)n;
    return -1;
}

int dlk_softmax_columns(const float *x, float *y, int axis, long inner, long c0, long c1) {
    (void)x; (void)y; (void)axis; (void)inner; (void)c0; (void)c1;
    return -1;
}

int dlk_layernorm_rows(const float *x, float *y, int rows, int size, const float *scale,
                       const float *bias, float eps, float *mean_out, float *inv_out) {
    (void)x; (void)y; (void)rows; (void)size; (void)scale; (void)bias; (void)eps; (void)mean_out; (void)inv_out;
    return -1;
}

int dlk_attention(int h0, int h1, int s, int t, int d, int dv,
                  const float *q, long q_head, long q_row,
                  const float *kt, long k_head, long k_row,
                  const float *v, long v_head, long v_row,
                  const float *mask, long mask_head, long mask_div, long mask_mod, long mask_row,
                  int scale_op, float scale, int nan_to_zero, float *o, long o_head, long o_row) {
    (void)nan_to_zero; (void)h0; (void)h1; (void)s; (void)t; (void)d; (void)dv; (void)q; (void)q_head; (void)q_row;
    (void)kt; (void)k_head; (void)k_row; (void)v; (void)v_head; (void)v_row; (void)mask; (void)mask_head;
    (void)mask_div; (void)mask_mod; (void)mask_row; (void)scale_op; (void)scale; (void)o; (void)o_head; (void)o_row;
    return -1;
}

int dlk_transpose_32(const void *src, long lds, void *dst, long ldd, int n_rows, int n_cols) {
    (void)src; (void)lds; (void)dst; (void)ldd; (void)n_rows; (void)n_cols;
    return -1;
}

#endif
