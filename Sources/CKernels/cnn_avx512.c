// 2×2 max pooling on AVX-512, alone and fused into the stride-1 convolution (ckernels_cnn.h).
//
// The fused form computes two full-resolution output rows of every channel with
// `dlk_conv2d_direct` into a small per-thread buffer (≤ a few tens of KB: it stays in L1/L2), then
// pools them into one output row. A CNN's Conv → Relu → MaxPool then never writes (nor reads
// back) its full-resolution activation: at batch 32 that tensor was 16 MB per layer.
#include "ckernels_cnn.h"
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#include "vecmath_avx512.h"
#define DLK_CNN_X86 1
#else
#define DLK_CNN_X86 0
#endif

// The fused kernel's two rows and the Winograd buffers come from the per-thread scratch
// (internal.h), in a slot of their own: the direct kernel they call uses the GEMM slot.
static float *rows_scratch(size_t bytes) { return dlk_scratch(DLK_SCRATCH_CONV, bytes); }

#if DLK_CNN_X86

#define DLK_CNN_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#define DLK_CNN_INLINE static inline __attribute__((always_inline))

/// max(a, b) lane by lane, NaN when either is NaN (vmaxps alone would return b).
DLK_CNN_INLINE DLK_CNN_TARGET __m512 nan_max(__m512 a, __m512 b) {
    __m512 m = _mm512_max_ps(a, b);
    __mmask16 u = _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
    return _mm512_mask_add_ps(m, u, a, b);
}

/// out[j] = max(r0[2j], r0[2j+1], r1[2j], r1[2j+1]) for j in [0, pw). `nan_free`: the rows
/// hold no NaN (after the kernels' ReLU, max(v, 0), which maps NaN to 0), so plain vmaxps will do.
DLK_CNN_INLINE DLK_CNN_TARGET __m512 pool_max(__m512 a, __m512 b, int nan_free) {
    return nan_free ? _mm512_max_ps(a, b) : nan_max(a, b);
}

DLK_CNN_INLINE DLK_CNN_TARGET void pool_row_any(const float *r0, const float *r1, int pw, float *out, const int nan_free) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int j = 0; j < pw; j += 16) {
        const int n = pw - j < 16 ? pw - j : 16;          // outputs this step
        const __mmask16 m0 = dlk_lanes16(2 * n), m1 = dlk_lanes16(2 * n - 16);
        const float *a = r0 + 2 * j, *b = r1 + 2 * j;
        __m512 lo = pool_max(_mm512_maskz_loadu_ps(m0, a), _mm512_maskz_loadu_ps(m0, b), nan_free);
        __m512 hi = pool_max(_mm512_maskz_loadu_ps(m1, a + 16), _mm512_maskz_loadu_ps(m1, b + 16), nan_free);
        __m512 v = pool_max(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi), nan_free);
        _mm512_mask_storeu_ps(out + j, dlk_lanes16(n), v);
    }
}

DLK_CNN_INLINE DLK_CNN_TARGET void pool_row(const float *r0, const float *r1, int pw, float *out) {
    pool_row_any(r0, r1, pw, out, 0);
}

DLK_CNN_TARGET int dlk_maxpool2x2(const float *x, long planes, int h, int w, float *y) {
    const int ph = h / 2, pw = w / 2;
    if (ph <= 0 || pw <= 0) return 0;
    for (long c = 0; c < planes; c++) {
        const float *src = x + (size_t)c * h * w;
        float *dst = y + (size_t)c * ph * pw;
        for (int r = 0; r < ph; r++) pool_row(src + (size_t)2 * r * w, src + (size_t)(2 * r + 1) * w, pw, dst + (size_t)r * pw);
    }
    return 0;
}

DLK_CNN_TARGET int dlk_conv2d_s1_maxpool2(const float *x, int cin, int hp, int wp, int kh, int kw, int dh, int dw,
                                          int hout, int wout, int py0, int py1,
                                          const float *w_packed, int m, float *y, long y_stride,
                                          const dlk_epilogue *e) {
    const int ph = hout / 2, pw = wout / 2;
    if (e->accumulate) return -1;
    if (py0 < 0 || py1 > ph) return -1;
    if (m <= 0 || pw <= 0 || py1 <= py0) return 0;
    float *buf = rows_scratch((size_t)m * 2 * wout * sizeof(float));
    if (!buf) return -1;
    for (int pr = py0; pr < py1; pr++) {
        // Output rows 2pr and 2pr + 1 of every channel: buf[c][0..1][wout].
        if (dlk_conv2d_direct(x + (size_t)2 * pr * wp, cin, hp, wp, kh, kw, 1, 1, dh, dw, 2, wout, 0, 2,
                              w_packed, m, 0, 1, buf, 2L * wout, e) != 0) return -1;
        if (e->activation == DLK_ACT_RELU) {
            for (int c = 0; c < m; c++) {
                const float *r0 = buf + (size_t)c * 2 * wout;
                pool_row_any(r0, r0 + wout, pw, y + (size_t)c * y_stride + (size_t)pr * pw, 1);
            }
        } else {
            for (int c = 0; c < m; c++) {
                const float *r0 = buf + (size_t)c * 2 * wout;
                pool_row(r0, r0 + wout, pw, y + (size_t)c * y_stride + (size_t)pr * pw);
            }
        }
    }
    return 0;
}

/// Rows [0, MR) of A against rows [0, NB) of W: MR·NB accumulators of 16 lanes, one pass over k.
DLK_CNN_INLINE DLK_CNN_TARGET void narrow_block(const int MR, const int NB, int k, const float *a, long lda,
                                                const float *w, long ldw, float *c, long ldc,
                                                const dlk_epilogue *e, int col0) {
    const float *ar[4], *wr[8];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) ar[i] = a + (size_t)i * lda;
    _Pragma("clang loop unroll(full)")
    for (int j = 0; j < NB; j++) wr[j] = w + (size_t)j * ldw;
    __m512 acc[4][8];
    dlk_dot_lanes(MR, NB, k, ar, wr, acc);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < NB; j++) {
            float v = e->alpha * _mm512_reduce_add_ps(acc[i][j]);
            if (e->col_bias) v += e->col_bias[col0 + j];
            c[(size_t)i * ldc + j] = e->activation == DLK_ACT_NONE ? v
                : _mm512_cvtss_f32(dlk_epilogue_activate16(_mm512_set1_ps(v), e, i, col0 + j, 1));
        }
    }
}

#define DLK_NARROW_NB(MR)                                                                          \
    switch (nb) {                                                                                  \
    case 1: narrow_block(MR, 1, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    case 2: narrow_block(MR, 2, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    case 3: narrow_block(MR, 3, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    case 4: narrow_block(MR, 4, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    case 5: narrow_block(MR, 5, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    case 6: narrow_block(MR, 6, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    case 7: narrow_block(MR, 7, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                      \
    default: narrow_block(MR, 8, k, ai, lda, wj, ldw, cij, ldc, e, j0); break;                     \
    }

DLK_CNN_TARGET int dlk_sgemm_nt_narrow(int m, int n, int k, const float *a, long lda, const float *w, long ldw,
                                       float *c, long ldc, const dlk_epilogue *e) {
    if (e->accumulate || e->row_bias || n <= 0 || m < 0 || k <= 0) return -1;
    for (int i0 = 0; i0 < m; ) {
        const int mr = m - i0 >= 4 ? 4 : m - i0;
        // Column groups of at most 24 / mr (≤ 8) rows of W, as even as possible.
        const int nbMax = mr == 1 ? 8 : 24 / mr > 8 ? 8 : 24 / mr;
        const int groups = (n + nbMax - 1) / nbMax;
        for (int g = 0; g < groups; g++) {
            const int j0 = g * n / groups, j1 = (g + 1) * n / groups, nb = j1 - j0;
            const float *ai = a + (size_t)i0 * lda, *wj = w + (size_t)j0 * ldw;
            float *cij = c + (size_t)i0 * ldc + j0;
            switch (mr) {
            case 1: DLK_NARROW_NB(1) break;
            case 2: DLK_NARROW_NB(2) break;
            case 3: DLK_NARROW_NB(3) break;
            default: DLK_NARROW_NB(4) break;
            }
        }
        i0 += mr;
    }
    return 0;
}


/// Transformed inputs of one segment (up to 16 tiles of tile row ty from tile tx0) for every
/// channel: v + ξ·cin·32 + c·32 + col0 + lane (the packed-panel layout, k = cin), `width`
/// columns written (zeros past `count`).
DLK_CNN_INLINE DLK_CNN_TARGET void wino_input(const float *x, int cin, long plane, int wp, int ty, int tx0, int count,
                                              float *v, int cin32, int col0, int width) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __mmask16 m0 = dlk_lanes16(2 * count), m1 = dlk_lanes16(2 * count - 16);
    for (int c = 0; c < cin; c++) {
        __m512 t[4][4];
        _Pragma("clang loop unroll(full)")
        for (int a = 0; a < 4; a++) {
            const float *row = x + (size_t)c * plane + (size_t)(2 * ty + a) * wp + 2 * tx0;
            __m512 p0 = _mm512_maskz_loadu_ps(m0, row), p1 = _mm512_maskz_loadu_ps(m1, row + 16);
            __m512 q0 = _mm512_maskz_loadu_ps(m0, row + 2), q1 = _mm512_maskz_loadu_ps(m1, row + 18);
            __m512 d0 = _mm512_permutex2var_ps(p0, even, p1), d1 = _mm512_permutex2var_ps(p0, odd, p1);
            __m512 d2 = _mm512_permutex2var_ps(q0, even, q1), d3 = _mm512_permutex2var_ps(q0, odd, q1);
            t[a][0] = _mm512_sub_ps(d0, d2);
            t[a][1] = _mm512_add_ps(d1, d2);
            t[a][2] = _mm512_sub_ps(d2, d1);
            t[a][3] = _mm512_sub_ps(d1, d3);
        }
        float *vc = v + (size_t)c * 32 + col0;
        const __mmask16 mc = dlk_lanes16(width);  // the segment's columns (zeros past count)
        _Pragma("clang loop unroll(full)")
        for (int b = 0; b < 4; b++) {
            _mm512_mask_storeu_ps(vc + (size_t)(0 * 4 + b) * cin32, mc, _mm512_sub_ps(t[0][b], t[2][b]));
            _mm512_mask_storeu_ps(vc + (size_t)(1 * 4 + b) * cin32, mc, _mm512_add_ps(t[1][b], t[2][b]));
            _mm512_mask_storeu_ps(vc + (size_t)(2 * 4 + b) * cin32, mc, _mm512_sub_ps(t[2][b], t[1][b]));
            _mm512_mask_storeu_ps(vc + (size_t)(3 * 4 + b) * cin32, mc, _mm512_sub_ps(t[1][b], t[3][b]));
        }
    }
}

/// First half of the output transform for one output channel: for each of the 4 rows of the
/// 4×4 tile (M at src + (4i + j)·m32), the two output columns (m0 + m1 + m2, m1 - m2 - m3).
DLK_CNN_INLINE DLK_CNN_TARGET void wino_columns(const float *src, long m32, __mmask16 mk, __m512 s[4][2]) {
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 4; i++) {
        __m512 a0 = _mm512_maskz_loadu_ps(mk, src + (size_t)(4 * i + 0) * m32);
        __m512 a1 = _mm512_maskz_loadu_ps(mk, src + (size_t)(4 * i + 1) * m32);
        __m512 a2 = _mm512_maskz_loadu_ps(mk, src + (size_t)(4 * i + 2) * m32);
        __m512 a3 = _mm512_maskz_loadu_ps(mk, src + (size_t)(4 * i + 3) * m32);
        s[i][0] = _mm512_add_ps(_mm512_add_ps(a0, a1), a2);
        s[i][1] = _mm512_sub_ps(_mm512_sub_ps(a1, a2), a3);
    }
}

/// Output transform of one segment: M at mb + ξ·m·32 + o·32 + col0 → 2×2 tile, bias,
/// activation, max → y[o][ty][tx0 + lane].
DLK_CNN_INLINE DLK_CNN_TARGET void wino_output(const float *mb, int m, int col0, int count, float *y, long y_stride,
                                               long row_off, const dlk_epilogue *e) {
    const __mmask16 mk = dlk_lanes16(count);
    const long m32 = (long)m * 32;
    for (int o = 0; o < m; o++) {
        const float *src = mb + (size_t)o * 32 + col0;
        __m512 s[4][2];
        wino_columns(src, m32, mk, s);
        const __m512 bias = e->row_bias ? _mm512_set1_ps(e->row_bias[o]) : _mm512_setzero_ps();
        __m512 r[4];
        _Pragma("clang loop unroll(full)")
        for (int b = 0; b < 2; b++) {
            r[b] = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0][b], s[1][b]), s[2][b]), bias);
            r[2 + b] = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[1][b], s[2][b]), s[3][b]), bias);
        }
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < 4; i++) r[i] = dlk_epilogue_activate16(r[i], e, o, 0, mk);
        __m512 v = e->activation == DLK_ACT_RELU ? _mm512_max_ps(_mm512_max_ps(r[0], r[1]), _mm512_max_ps(r[2], r[3]))
                                                 : nan_max(nan_max(r[0], r[1]), nan_max(r[2], r[3]));
        _mm512_mask_storeu_ps(y + (size_t)o * y_stride + row_off, mk, v);
    }
}

/// U[ξ][q] = (G g_q Gᵀ)[ξ] for the `count` 3×3 kernels g_q = w + 9q (q = o·cin + c), 16 at a
/// time (gathered at stride 9); U[ξ] starts at u + ξ·u_stride.
DLK_CNN_INLINE DLK_CNN_TARGET void wino_weights(const float *w, int count, float *u, long u_stride) {
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32(9));
    const __m512 half = _mm512_set1_ps(0.5f);
    for (int q = 0; q < count; q += 16) {
        const __mmask16 mk = dlk_lanes16(count - q);
        const float *base = w + (size_t)q * 9;
        __m512 g[9];
        _Pragma("clang loop unroll(full)")
        for (int k = 0; k < 9; k++) g[k] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk, idx, base + k, 4);
        __m512 t[4][3];
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < 3; j++) {
            t[0][j] = g[j];
            t[1][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g[j], g[3 + j]), g[6 + j]));
            t[2][j] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g[j], g[3 + j]), g[6 + j]));
            t[3][j] = g[6 + j];
        }
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < 4; i++) {
            __m512 r[4];
            r[0] = t[i][0];
            r[1] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(t[i][0], t[i][1]), t[i][2]));
            r[2] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(t[i][0], t[i][1]), t[i][2]));
            r[3] = t[i][2];
            _Pragma("clang loop unroll(full)")
            for (int j = 0; j < 4; j++) _mm512_mask_storeu_ps(u + (size_t)(4 * i + j) * u_stride + q, mk, r[j]);
        }
    }
}

/// C rows [0, MR) (row stride 32) = A rows (row stride k, read in place: one U[ξ] is a few KB)
/// times B, one k × 32 packed panel.
DLK_CNN_INLINE DLK_CNN_TARGET void wino_block(const int MR, int k, const float *a, const float *b, float *c) {
    __m512 x0[8], x1[8];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) { x0[i] = _mm512_setzero_ps(); x1[i] = _mm512_setzero_ps(); }
    for (int p = 0; p < k; p++) {
        const __m512 b0 = _mm512_loadu_ps(b + (size_t)p * 32), b1 = _mm512_loadu_ps(b + (size_t)p * 32 + 16);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) {
            const __m512 av = _mm512_set1_ps(a[(size_t)i * k + p]);
            x0[i] = _mm512_fmadd_ps(av, b0, x0[i]);
            x1[i] = _mm512_fmadd_ps(av, b1, x1[i]);
        }
    }
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
        _mm512_storeu_ps(c + (size_t)i * 32, x0[i]);
        _mm512_storeu_ps(c + (size_t)i * 32 + 16, x1[i]);
    }
}

/// M (m × 32) = U (m × k) · V (k × 32 panel).
static DLK_CNN_TARGET void wino_gemm(int m, int k, const float *u, const float *v, float *mb) {
    int o = 0;
    for (; o + 8 <= m; o += 8) wino_block(8, k, u + (size_t)o * k, v, mb + (size_t)o * 32);
    const float *a = u + (size_t)o * k;
    float *c = mb + (size_t)o * 32;
    switch (m - o) {
    case 1: wino_block(1, k, a, v, c); break;
    case 2: wino_block(2, k, a, v, c); break;
    case 3: wino_block(3, k, a, v, c); break;
    case 4: wino_block(4, k, a, v, c); break;
    case 5: wino_block(5, k, a, v, c); break;
    case 6: wino_block(6, k, a, v, c); break;
    case 7: wino_block(7, k, a, v, c); break;
    default: break;
    }
}

DLK_CNN_TARGET void dlk_wino_weights(const float *w, int m, int cin, float *u) {
    if (m > 0 && cin > 0) wino_weights(w, m * cin, u, (long)m * cin);
}

/// Output transform of one segment without pooling: the 2×2 tiles interleaved back into rows
/// 2ty and 2ty + 1 of y[o] (hout rows of wout: the last tiles' second row or column is dropped
/// when a size is odd), plus c_scale times what y held (accumulate), the bias and the activation.
DLK_CNN_INLINE DLK_CNN_TARGET void wino_output_full(const float *mb, int m, int col0, int count, float *y, long y_stride,
                                                    int ty, int tx0, int hout, int wout, const dlk_epilogue *e) {
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const int width = wout - 2 * tx0 < 2 * count ? wout - 2 * tx0 : 2 * count;
    const int rows = 2 * ty + 1 < hout ? 2 : 1;
    const __mmask16 m0 = dlk_lanes16(width), m1 = dlk_lanes16(width - 16), mk = dlk_lanes16(count);
    const long m32 = (long)m * 32;
    const __m512 cs = _mm512_set1_ps(e->c_scale);
    for (int o = 0; o < m; o++) {
        const float *src = mb + (size_t)o * 32 + col0;
        __m512 s[4][2];
        wino_columns(src, m32, mk, s);
        const __m512 bias = e->row_bias ? _mm512_set1_ps(e->row_bias[o]) : _mm512_setzero_ps();
        __m512 r[2][2];
        _Pragma("clang loop unroll(full)")
        for (int b = 0; b < 2; b++) {
            r[0][b] = _mm512_add_ps(_mm512_add_ps(s[0][b], s[1][b]), s[2][b]);
            r[1][b] = _mm512_sub_ps(_mm512_sub_ps(s[1][b], s[2][b]), s[3][b]);
        }
        _Pragma("clang loop unroll(full)")
        for (int a = 0; a < 2; a++) {
            if (a >= rows) break;
            float *row = y + (size_t)o * y_stride + (size_t)(2 * ty + a) * wout + 2 * tx0;
            __m512 v0 = _mm512_add_ps(_mm512_permutex2var_ps(r[a][0], lo, r[a][1]), bias);
            __m512 v1 = _mm512_add_ps(_mm512_permutex2var_ps(r[a][0], hi, r[a][1]), bias);
            if (e->accumulate) {
                v0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, row), cs, v0);
                v1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, row + 16), cs, v1);
            }
            _mm512_mask_storeu_ps(row, m0, dlk_epilogue_activate16(v0, e, o, 0, m0));
            _mm512_mask_storeu_ps(row + 16, m1, dlk_epilogue_activate16(v1, e, o, 0, m1));
        }
    }
}

/// The Winograd driver: tile rows [t0, t1) of output channels [o0, o1) of m (U holds all m:
/// each U[ξ] is m × cin), pooled (one value a tile) or not.
static DLK_CNN_TARGET int wino_run(const float *x, int cin, int hp, int wp, int hout, int wout, int t0, int t1,
                                   const float *u, int m, int o0, int o1, float *y, long y_stride, const dlk_epilogue *whole,
                                   int pool) {
    if (whole->col_bias || whole->alpha != 1.0f || (pool && whole->accumulate)) return -1;
    if (o0 < 0 || o1 > m || o1 < o0) return -1;
    // The slice's channels as a product of their own: its rows of each U[ξ], its bias, its planes.
    dlk_epilogue slice = *whole;
    if (slice.row_bias) slice.row_bias += o0;
    const dlk_epilogue *e = &slice;
    y += (size_t)o0 * y_stride;
    const float *uo = u + (size_t)o0 * cin;
    const int mo = o1 - o0;
    // Tiles of 2 × 2 outputs: an odd size's last tile reads one more row or column of x.
    const int th = (hout + 1) / 2, tw = (wout + 1) / 2;
    if ((pool && ((hout & 1) || (wout & 1))) || hp < 2 * th + 2 || wp < 2 * tw + 2 || cin <= 0 || m <= 0) return -1;
    if (t0 < 0 || t1 > th) return -1;
    if (t1 <= t0 || tw <= 0 || mo == 0) return 0;
    const long plane = (long)hp * wp;
    const size_t vCount = (size_t)16 * cin * 32, mCount = (size_t)16 * mo * 32;
    float *v = rows_scratch((vCount + mCount) * sizeof(float));
    if (!v) return -1;
    float *mb = v + vCount;
    const int cin32 = cin * 32;
    // Segments of sw ≤ 16 tiles of one tile row, in order (tile row, then tx0), packed side by
    // side into blocks of 32 columns (a row of 8 tiles: four rows a block, no empty columns).
    const int sw = tw < 16 ? tw : 16;
    const int segsPerRow = (tw + sw - 1) / sw, perBlock = 32 / sw;
    const int segCount = (t1 - t0) * segsPerRow;
    for (int s0 = 0; s0 < segCount; s0 += perBlock) {
        const int ns = segCount - s0 < perBlock ? segCount - s0 : perBlock;
        for (int h = 0; h < ns; h++) {
            const int sg = s0 + h, ty = t0 + sg / segsPerRow, tx0 = (sg % segsPerRow) * sw;
            const int count = tw - tx0 < sw ? tw - tx0 : sw;
            wino_input(x, cin, plane, wp, ty, tx0, count, v, cin32, sw * h, sw);
        }
        const int used = ns * sw;
        if (used < 32) {
            // Columns no segment wrote: zeros, so the GEMM never sees stale values.
            const __mmask16 z0 = (__mmask16)~dlk_lanes16(used), z1 = (__mmask16)~dlk_lanes16(used - 16);
            for (int xi = 0; xi < 16; xi++)
                for (int c = 0; c < cin; c++) {
                    float *row = v + (size_t)xi * cin32 + (size_t)c * 32;
                    _mm512_mask_storeu_ps(row, z0, _mm512_setzero_ps());
                    _mm512_mask_storeu_ps(row + 16, z1, _mm512_setzero_ps());
                }
        }
        for (int xi = 0; xi < 16; xi++)
            wino_gemm(mo, cin, uo + (size_t)xi * m * cin, v + (size_t)xi * cin32, mb + (size_t)xi * mo * 32);
        for (int h = 0; h < ns; h++) {
            const int sg = s0 + h, ty = t0 + sg / segsPerRow, tx0 = (sg % segsPerRow) * sw;
            const int count = tw - tx0 < sw ? tw - tx0 : sw;
            if (pool) wino_output(mb, mo, sw * h, count, y, y_stride, (long)ty * tw + tx0, e);
            else wino_output_full(mb, mo, sw * h, count, y, y_stride, ty, tx0, hout, wout, e);
        }
    }
    return 0;
}

DLK_CNN_TARGET int dlk_conv3x3_wino_maxpool2(const float *x, int cin, int hp, int wp, int hout, int wout, int py0, int py1,
                                             const float *u, int m, float *y, long y_stride, const dlk_epilogue *e) {
    return wino_run(x, cin, hp, wp, hout, wout, py0, py1, u, m, 0, m, y, y_stride, e, 1);
}

DLK_CNN_TARGET int dlk_conv3x3_wino(const float *x, int cin, int hp, int wp, int hout, int wout, int t0, int t1,
                                    const float *u, int m, int o0, int o1, float *y, long y_stride, const dlk_epilogue *e) {
    return wino_run(x, cin, hp, wp, hout, wout, t0, t1, u, m, o0, o1, y, y_stride, e, 0);
}

DLK_CNN_TARGET int dlk_pad2d(const float *x, int channels, int h, int w, int top, int left, int bottom, int right,
                             int r0, int r1, float *y) {
    if (channels <= 0 || h < 0 || w < 0 || top < 0 || left < 0 || bottom < 0 || right < 0) return -1;
    const int wp = w + left + right, hp = h + top + bottom;
    if (r0 < 0) r0 = 0;
    if (r1 > hp) r1 = hp;
    const __m512 zero = _mm512_setzero_ps();
    for (int c = 0; c < channels; c++) {
        float *d = y + (size_t)c * hp * wp;
        const float *src = x + (size_t)c * h * w;
        for (int pr = r0; pr < r1; pr++) {
            float *row = d + (size_t)pr * wp;
            const int r = pr - top;
            if (r < 0 || r >= h) {
                for (int j = 0; j < wp; j += 16) _mm512_mask_storeu_ps(row + j, dlk_lanes16(wp - j), zero);
                continue;
            }
            for (int j = 0; j < left; j += 16) _mm512_mask_storeu_ps(row + j, dlk_lanes16(left - j), zero);
            const float *s = src + (size_t)r * w;
            for (int j = 0; j < w; j += 16) {
                const __mmask16 mk = dlk_lanes16(w - j);
                _mm512_mask_storeu_ps(row + left + j, mk, _mm512_maskz_loadu_ps(mk, s + j));
            }
            for (int j = 0; j < right; j += 16) _mm512_mask_storeu_ps(row + left + w + j, dlk_lanes16(right - j), zero);
        }
    }
    return 0;
}


/// Floats [start, start + 16) of a row of w floats, zero outside it (start may be negative).
DLK_CNN_INLINE DLK_CNN_TARGET __m512 load_row16(const float *s, int w, int start) {
    if (start >= w || start <= -16) return _mm512_setzero_ps();
    if (start >= 0) return _mm512_maskz_loadu_ps(dlk_lanes16(w - start), s + start);
    // Lanes [lo, 16) hold s[0...]: loaded from s, then moved up by lo lanes.
    const int lo = -start;
    const __m512 v = _mm512_maskz_loadu_ps(dlk_lanes16(w < 16 - lo ? w : 16 - lo), s);
    const __m512i up = _mm512_and_si512(_mm512_sub_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                                         _mm512_set1_epi32(lo)), _mm512_set1_epi32(15));
    return _mm512_maskz_permutexvar_ps((__mmask16)~dlk_lanes16(lo), up, v);
}

DLK_CNN_TARGET int dlk_pad2d_phases(const float *x, int channels, int h, int w, int top, int left, int bottom,
                                    int right, int sh, int sw, float *y) {
    if (sh == 1 && sw == 1) return dlk_pad2d(x, channels, h, w, top, left, bottom, right, 0, h + top + bottom, y);
    if (channels <= 0 || h < 0 || w < 0 || top < 0 || left < 0 || bottom < 0 || right < 0 || sh < 1 || sw < 1) return -1;
    const int wp = w + left + right, hp = h + top + bottom;
    const int h2 = (hp + sh - 1) / sh, w2 = (wp + sw - 1) / sw;
    const size_t phase_plane = (size_t)h2 * w2, channel = (size_t)sh * sw * phase_plane;
    // Every float of the planes is written once: padding rows, the phases' rows past the padded
    // image and their columns past it as zeros (zeroing the planes first doubled the writes: 23%
    // of a 3 -> 16 channel stride-2 convolution on 320 x 320). Two column phases: pairs of
    // 16-float vectors of the source row (zero past its ends) split into even and odd lanes.
    // Others: one padded row at a time in `row` (its padding columns stay zero), dealt out by
    // column. (Two phases once went through `row` too: loading the vectors back just after the
    // row's copy stalled on store forwarding, 45% of this function.)
    float *row = NULL;
    if (sw != 2) {
        row = malloc(((size_t)wp + 32) * sizeof(float));
        if (!row) return -1;
        memset(row, 0, ((size_t)wp + 32) * sizeof(float));
    }
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int c = 0; c < channels; c++) {
        float *d = y + (size_t)c * channel;
        for (int pr = 0; pr < h2 * sh; pr++) {
            float *out = d + (size_t)(pr % sh) * sw * phase_plane + (size_t)(pr / sh) * w2;
            const int r = pr - top;
            if (r < 0 || r >= h) {
                for (int ph = 0; ph < sw; ph++) memset(out + (size_t)ph * phase_plane, 0, (size_t)w2 * sizeof(float));
                continue;
            }
            const float *src = x + ((size_t)c * h + r) * w;
            if (sw == 2) {
                for (int i = 0; i < w2; i += 16) {
                    // Padded column p is source column p - left.
                    const __m512 a = load_row16(src, w, 2 * i - left), b = load_row16(src, w, 2 * i + 16 - left);
                    const __mmask16 mk = dlk_lanes16(w2 - i);
                    _mm512_mask_storeu_ps(out + i, mk, _mm512_permutex2var_ps(a, even, b));
                    _mm512_mask_storeu_ps(out + phase_plane + i, mk, _mm512_permutex2var_ps(a, odd, b));
                }
            } else {
                memcpy(row + left, src, (size_t)w * sizeof(float));
                for (int ph = 0; ph < sw; ph++) {
                    float *o = out + (size_t)ph * phase_plane;
                    int at = 0;
                    for (int col = ph; col < wp; col += sw) o[at++] = row[col];
                    for (; at < w2; at++) o[at] = 0.0f;
                }
            }
        }
    }
    free(row);
    return 0;
}

#else

int dlk_maxpool2x2(const float *x, long planes, int h, int w, float *y) {
    (void)x; (void)planes; (void)h; (void)w; (void)y;
    return -1;
}

int dlk_conv2d_s1_maxpool2(const float *x, int cin, int hp, int wp, int kh, int kw, int dh, int dw,
                           int hout, int wout, int py0, int py1,
                           const float *w_packed, int m, float *y, long y_stride, const dlk_epilogue *e) {
    (void)x; (void)cin; (void)hp; (void)wp; (void)kh; (void)kw; (void)dh; (void)dw; (void)hout; (void)wout;
    (void)py0; (void)py1; (void)w_packed; (void)m; (void)y; (void)y_stride; (void)e;
    return -1;
}

int dlk_sgemm_nt_narrow(int m, int n, int k, const float *a, long lda, const float *w, long ldw,
                        float *c, long ldc, const dlk_epilogue *e) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)w; (void)ldw; (void)c; (void)ldc; (void)e;
    return -1;
}

void dlk_wino_weights(const float *w, int m, int cin, float *u) {
    (void)w; (void)m; (void)cin; (void)u;
}

int dlk_conv3x3_wino_maxpool2(const float *x, int cin, int hp, int wp, int hout, int wout, int py0, int py1,
                              const float *u, int m, float *y, long y_stride, const dlk_epilogue *e) {
    (void)x; (void)cin; (void)hp; (void)wp; (void)hout; (void)wout; (void)py0; (void)py1; (void)u; (void)m;
    (void)y; (void)y_stride; (void)e;
    return -1;
}

int dlk_pad2d(const float *x, int channels, int h, int w, int top, int left, int bottom, int right, int r0, int r1,
              float *y) {
    (void)x; (void)channels; (void)h; (void)w; (void)top; (void)left; (void)bottom; (void)right; (void)r0; (void)r1; (void)y;
    return -1;
}

int dlk_pad2d_phases(const float *x, int channels, int h, int w, int top, int left, int bottom, int right, int sh, int sw,
                     float *y) {
    (void)x; (void)channels; (void)h; (void)w; (void)top; (void)left; (void)bottom; (void)right; (void)sh; (void)sw; (void)y;
    return -1;
}

int dlk_conv3x3_wino(const float *x, int cin, int hp, int wp, int hout, int wout, int t0, int t1,
                     const float *u, int m, int o0, int o1, float *y, long y_stride, const dlk_epilogue *e) {
    (void)x; (void)cin; (void)hp; (void)wp; (void)hout; (void)wout; (void)t0; (void)t1; (void)u; (void)m;
    (void)o0; (void)o1; (void)y; (void)y_stride; (void)e;
    return -1;
}

#endif

// MARK: Depthwise convolution

#if DLK_CNN_X86

/// The taps of one filter `f` (kh × kw) added into four output vectors of 16 columns starting at
/// base[i] in the padded plane (rows wp apart). Stride `sw` 1: plain loads (the plane's slack
/// keeps a row's last vector inside it; lanes past the row are never stored); 2: the even lanes
/// of two loads; 0: any other stride, gathered under the vectors' masks.
DLK_CNN_INLINE DLK_CNN_TARGET void depthwise_taps4(const int sw, const float *const *base, const __mmask16 *mk,
                                                   const float *f, int kh, int kw, int dh, int dw, long wp,
                                                   __m512i even, __m512i gstep, __m512 *acc) {
    for (int ky = 0; ky < kh; ky++) {
        const size_t rowAt = (size_t)ky * dh * wp;
        for (int kx = 0; kx < kw; kx++) {
            const __m512 f1 = _mm512_set1_ps(f[ky * kw + kx]);
            const size_t at = rowAt + (size_t)kx * dw;
            _Pragma("clang loop unroll(full)")
            for (int i = 0; i < 4; i++) {
                const float *q = base[i] + at;
                __m512 v;
                if (sw == 1) v = _mm512_loadu_ps(q);
                else if (sw == 2) v = _mm512_permutex2var_ps(_mm512_loadu_ps(q), even, _mm512_loadu_ps(q + 16));
                else v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mk[i], gstep, q, 4);
                acc[i] = _mm512_fmadd_ps(v, f1, acc[i]);
            }
        }
    }
}

/// Output rows a call of dw_rows computes: four chains of multiply-adds, and rows of input
/// loaded once for up to four outputs.
enum { DW_ROWS = 4 };

/// Lanes [lo, hi) of a 16-lane mask, clipped to [0, 16): `dlk_lanes16` of each bound.
DLK_CNN_INLINE __mmask16 dw_lanes(long lo, long hi) {
    return (__mmask16)(dlk_lanes16(hi < 16 ? (int)(hi < 0 ? 0 : hi) : 16) & ~dlk_lanes16(lo < 16 ? (int)(lo < 0 ? 0 : lo) : 16));
}

/// `R` output rows (from `y0`) of one 16-column block of a K × K (3 or 5), undilated depthwise
/// filter (its taps broadcast in fk) of stride `S` (1 or 2) in both directions, read in place
/// from the plane `x` (h × w): output (y, ox + t) reads input row S·y − pt + ky, column
/// S·(ox + t) − pl + kx. Each input row the R outputs read is loaded once (stride 1: at its K
/// column offsets; stride 2: pairs of vectors 16 columns apart whose even and odd lanes are the
/// taps' columns) and added into every output row that reads it, so a load serves several
/// multiply-adds. The loads' masks m keep them inside the row (lanes outside load zero, as
/// padding would); rows outside the plane are skipped. Each output's sum is taken in the order
/// of the general loop (filter row by row, left to right).
DLK_CNN_INLINE DLK_CNN_TARGET void dw_rows(const int K, const int S, const int R, const float *x, long h, long w,
                                           long iy0, long ix, const __mmask16 *m, __mmask16 mk, const __m512 *fk,
                                           __m512 vb, float *out, int ow, int act, float a, float b) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    __m512 acc[DW_ROWS];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < R; i++) acc[i] = vb;
    _Pragma("clang loop unroll(full)")
    for (int ir = 0; ir < (R - 1) * S + K; ir++) {
        const long iy = iy0 + ir;
        if (iy < 0 || iy >= h) continue;
        // An integer address: the first tap's column may lie left of the row (its lane is masked).
        const float *q = (const float *)((uintptr_t)(x + iy * w) + (uintptr_t)(ix * (long)sizeof(float)));
        __m512 v[K];
        _Pragma("clang loop unroll(full)")
        for (int kx = 0; kx < K; kx++) {
            if (S == 1) v[kx] = _mm512_maskz_loadu_ps(m[kx], q + kx);
            else if (kx % 2 == 0) {
                // the pair starting at column kx: its even lanes are tap kx, its odd lanes tap kx + 1
                const __m512 lo = _mm512_maskz_loadu_ps(m[kx], q + kx), hi = _mm512_maskz_loadu_ps(m[kx + 1], q + kx + 16);
                v[kx] = _mm512_permutex2var_ps(lo, even, hi);
                if (kx + 1 < K) v[kx + 1] = _mm512_permutex2var_ps(lo, odd, hi);
            }
        }
        _Pragma("clang loop unroll(full)")
        for (int ky = 0; ky < K; ky++) {
            if (ir < ky || (ir - ky) % S != 0 || (ir - ky) / S >= R) continue;
            const int y = (ir - ky) / S;
            _Pragma("clang loop unroll(full)")
            for (int kx = 0; kx < K; kx++) acc[y] = _mm512_fmadd_ps(v[kx], fk[ky * K + kx], acc[y]);
        }
    }
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < R; i++) _mm512_mask_storeu_ps(out + (size_t)i * ow, mk, dlk_activate16(acc[i], act, a, b));
}

/// The masks of every 16-column block's loads for ``dw_plane``, K + 1 a block, the same for
/// every plane: by the column each load starts at relative to the block's first input column,
/// stride 1, tap kx's load at kx; stride 2, the pair at (kx, kx + 16) for even kx.
DLK_CNN_INLINE void dw_masks(int K, int S, long w, int pl, int ow, __mmask16 *masks) {
    for (int ox = 0; ox < ow; ox += 16) {
        const long ix = (long)ox * S - pl;
        for (int i = 0; i <= K; i++) {
            const long at = S == 1 ? i : i % 2 == 0 ? i : i - 1 + 16;
            masks[(size_t)(ox / 16) * (K + 1) + i] = dw_lanes(-(ix + at), w - (ix + at));
        }
    }
}

/// One output plane of a K × K (3 or 5), undilated depthwise filter of stride `S` (1 or 2) by
/// ``dw_rows`` (the loads' masks of block ox / 16 at masks[(ox / 16)·(K + 1)], by `dw_masks`):
/// DW_ROWS output rows at a time, each band's 16-column blocks left to right, so the plane is
/// read from top to bottom. (Column strips down the whole plane, the order before, read each
/// row a few lines at a time: in MobileNetV2, its image fresh from memory, the 96 × 112 × 112
/// stride-2 layer took 0.40 ms against 0.21 in cache; by bands 0.34.)
DLK_CNN_INLINE DLK_CNN_TARGET void dw_plane(const int K, const int S, const float *x, long h, long w, int pt, int pl,
                                            const __mmask16 *masks, const float *f, __m512 vb, float *dst, int oh,
                                            int ow, int act, float a, float b) {
    __m512 fk[K * K];
    for (int t = 0; t < K * K; t++) fk[t] = _mm512_set1_ps(f[t]);
    for (int y0 = 0; y0 < oh; y0 += DW_ROWS) {
        const int rows = oh - y0 < DW_ROWS ? oh - y0 : DW_ROWS;
        const long iy0 = (long)y0 * S - pt;
        for (int ox = 0; ox < ow; ox += 16) {
            const long ix = (long)ox * S - pl;
            const __mmask16 mk = dlk_lanes16(ow - ox), *m = masks + (size_t)(ox / 16) * (K + 1);
            float *out = dst + (size_t)y0 * ow + ox;
            switch (rows) {
            case 1: dw_rows(K, S, 1, x, h, w, iy0, ix, m, mk, fk, vb, out, ow, act, a, b); break;
            case 2: dw_rows(K, S, 2, x, h, w, iy0, ix, m, mk, fk, vb, out, ow, act, a, b); break;
            case 3: dw_rows(K, S, 3, x, h, w, iy0, ix, m, mk, fk, vb, out, ow, act, a, b); break;
            default: dw_rows(K, S, DW_ROWS, x, h, w, iy0, ix, m, mk, fk, vb, out, ow, act, a, b); break;
            }
        }
    }
}

DLK_CNN_TARGET int dlk_depthwise_conv2d(const float *x, int channels, int h, int w, const float *wt, int kh, int kw,
                                        int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow,
                                        const float *bias, int activation, float a, float b, long p0, long p1, float *y) {
    if (!dlk_avx512_available()) return -1;
    if (p1 <= p0 || oh <= 0 || ow <= 0) return 0;
    // Square 3 × 3 and 5 × 5 filters of stride 1 or 2, undilated (MobileNet's and EfficientNet's):
    // read in place, rows loaded once for all the outputs that read them.
    if (kh == kw && (kh == 3 || kh == 5) && sh == sw && (sw == 1 || sw == 2) && dh == 1 && dw == 1) {
        const int kind = kh * 2 + sw;
        __mmask16 *masks = dlk_scratch(DLK_SCRATCH_DEPTHWISE, (size_t)((ow + 15) / 16) * (kh + 1) * sizeof(__mmask16));
        if (!masks) return -1;
        dw_masks(kh, sw, w, pl, ow, masks);
        for (long p = p0; p < p1; p++) {
            const int c = (int)(p % channels);
            const float *plane = x + (size_t)p * h * w, *f = wt + (size_t)c * kh * kw;
            const __m512 vb = _mm512_set1_ps(bias ? bias[c] : 0.0f);
            float *dst = y + (size_t)p * oh * ow;
            switch (kind) {
            case 7: dw_plane(3, 1, plane, h, w, pt, pl, masks, f, vb, dst, oh, ow, activation, a, b); break;
            case 8: dw_plane(3, 2, plane, h, w, pt, pl, masks, f, vb, dst, oh, ow, activation, a, b); break;
            case 11: dw_plane(5, 1, plane, h, w, pt, pl, masks, f, vb, dst, oh, ow, activation, a, b); break;
            default: dw_plane(5, 2, plane, h, w, pt, pl, masks, f, vb, dst, oh, ow, activation, a, b); break;
            }
        }
        return 0;
    }
    // Any other filter: the plane zero-padded so every tap of every output reads inside it; rows
    // of stride wp, and 32 floats of slack after the last row for the stride-2 loads of a row's
    // tail.
    long hp = (long)(oh - 1) * sh + (long)(kh - 1) * dh + 1, wp = (long)(ow - 1) * sw + (long)(kw - 1) * dw + 1;
    if (hp < pt + h) hp = pt + h;
    if (wp < pl + w) wp = pl + w;
    float *pad = dlk_scratch(DLK_SCRATCH_DEPTHWISE, (size_t)(hp * wp + 64) * sizeof(float));
    if (!pad) return -1;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i lanes = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    const __m512i gstep = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(sw));
    memset(pad, 0, (size_t)(hp * wp + 64) * sizeof(float));
    for (long p = p0; p < p1; p++) {
        const int c = (int)(p % channels);
        const float *src = x + (size_t)p * h * w;
        for (int r = 0; r < h; r++) memcpy(pad + (size_t)(r + pt) * wp + pl, src + (size_t)r * w, (size_t)w * sizeof(float));
        const float *f = wt + (size_t)c * kh * kw;
        const __m512 vb = _mm512_set1_ps(bias ? bias[c] : 0.0f);
        float *dst = y + (size_t)p * oh * ow;
        // Four output vectors at a time, each its own chain of taps: one chain waited on every
        // multiply-add's latency (four cycles on Zen 4, kh·kw of them per vector). The vectors are
        // taken in (row, 16-column block) order across row ends; a short last group repeats its
        // first vector and stores only its own.
        const int blocks = (ow + 15) / 16;
        const long vectors = (long)oh * blocks;
        // The next vector's row and 16-column block, advanced without dividing (two 64-bit
        // divisions per vector had cost more than its multiply-adds).
        int ny = 0, nb = 0;
        for (long v0 = 0; v0 < vectors; v0 += 4) {
            const float *base[4];
            float *out[4];
            __mmask16 mk[4];
            const int live = vectors - v0 < 4 ? (int)(vectors - v0) : 4;
            for (int i = 0; i < live; i++) {
                const int ox = nb * 16;
                base[i] = pad + (size_t)ny * sh * wp + (size_t)ox * sw;
                out[i] = dst + (size_t)ny * ow + ox;
                mk[i] = dlk_lanes16(ow - ox);
                if (++nb == blocks) { nb = 0; ny++; }
            }
            for (int i = live; i < 4; i++) { base[i] = base[0]; out[i] = out[0]; mk[i] = mk[0]; }
            __m512 acc[4] = { vb, vb, vb, vb };
            // One copy of the tap loop per stride kind, without a branch per tap.
            if (sw == 1) depthwise_taps4(1, base, mk, f, kh, kw, dh, dw, wp, even, gstep, acc);
            else if (sw == 2) depthwise_taps4(2, base, mk, f, kh, kw, dh, dw, wp, even, gstep, acc);
            else depthwise_taps4(0, base, mk, f, kh, kw, dh, dw, wp, even, gstep, acc);
            for (int i = 0; i < live; i++) _mm512_mask_storeu_ps(out[i], mk[i], dlk_activate16(acc[i], activation, a, b));
        }
        // Only the interior was written: the padding stays zero for the next plane.
    }
    return 0;
}

/// Q output pixels (`base[q]`: the input pixel their first tap reads; `out[q]`: where they go),
/// every channel, of a channels-last depthwise filter of T taps (`off[t]`: tap t's offset from
/// `base`; a constant T where the caller specialises): sixteen channels at a time, Q independent
/// sums each, taps in order from the bias. Pixel-major: a channel-major sweep read the padded
/// image a channel block at a time with pixels `channels` floats apart, which fell into a few
/// L1 sets (256 channels: 1 KB apart).
DLK_CNN_INLINE DLK_CNN_TARGET void dw_cl_group(const int Q, const int T, const float *const *base, const long *off, int c, int cs,
                                               const float *wt, const float *bias, float *const *out, int act, float a,
                                               float b) {
    for (int c0 = 0; c0 < c; c0 += 16) {
        const __mmask16 mk = dlk_lanes16(c - c0);
        const __m512 vb = bias ? _mm512_maskz_loadu_ps(mk, bias + c0) : _mm512_setzero_ps();
        __m512 acc[4];
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < Q; q++) acc[q] = vb;
        for (int t = 0; t < T; t++) {
            const __m512 wv = _mm512_maskz_loadu_ps(mk, wt + (size_t)t * cs + c0);
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < Q; q++) acc[q] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, base[q] + off[t] + c0), wv, acc[q]);
        }
        _Pragma("clang loop unroll(full)")
        for (int q = 0; q < Q; q++) _mm512_mask_storeu_ps(out[q] + c0, mk, dlk_activate16(acc[q], act, a, b));
    }
}

/// Flat output pixels [p0, p1) (pixel p at row p / ow, column p % ow) four at a time, across
/// row ends (rows of 7 pixels left 3 of every 7 in a lone sum waiting on each multiply-add), T taps.
DLK_CNN_INLINE DLK_CNN_TARGET void dw_cl_pixels(const int T, const float *xp, long wp, int c, int cs, const long *off, const float *wt,
                                                int sh, int sw, int ow, const float *bias, long p0, long p1, float *y,
                                                int act, float a, float b) {
    for (long p = p0; p < p1; p += 4) {
        const int n = p1 - p < 4 ? (int)(p1 - p) : 4;
        const float *base[4];
        float *out[4];
        for (int q = 0; q < n; q++) {
            const long oy = (p + q) / ow, ox = (p + q) % ow;
            base[q] = xp + ((size_t)oy * sh * wp + (size_t)ox * sw) * cs;
            out[q] = y + (size_t)(p + q) * cs;
        }
        switch (n) {
        case 4: dw_cl_group(4, T, base, off, c, cs, wt, bias, out, act, a, b); break;
        case 3: dw_cl_group(3, T, base, off, c, cs, wt, bias, out, act, a, b); break;
        case 2: dw_cl_group(2, T, base, off, c, cs, wt, bias, out, act, a, b); break;
        default: dw_cl_group(1, T, base, off, c, cs, wt, bias, out, act, a, b); break;
        }
    }
}

DLK_CNN_TARGET int dlk_depthwise_cl(const float *xp, int channels, int cs, int wp, const float *wt, int kh, int kw, int sh, int sw,
                                    int dh, int dw, int ow, const float *bias, int activation, float a, float b,
                                    long p0, long p1, float *y) {
    if (!dlk_avx512_available()) return -1;
    if (cs < channels) return -1;
    if (p1 <= p0 || ow <= 0 || kh <= 0 || kw <= 0 || channels <= 0) return 0;
    long *off = (long *)dlk_scratch(DLK_SCRATCH_DEPTHWISE, (size_t)kh * kw * sizeof(long));
    if (!off) return -1;
    for (int i = 0; i < kh; i++)
        for (int j = 0; j < kw; j++) off[i * kw + j] = ((long)i * dh * wp + (long)j * dw) * cs;
    const int taps = kh * kw;
    if (taps == 9) dw_cl_pixels(9, xp, wp, channels, cs, off, wt, sh, sw, ow, bias, p0, p1, y, activation, a, b);
    else if (taps == 25) dw_cl_pixels(25, xp, wp, channels, cs, off, wt, sh, sw, ow, bias, p0, p1, y, activation, a, b);
    else dw_cl_pixels(taps, xp, wp, channels, cs, off, wt, sh, sw, ow, bias, p0, p1, y, activation, a, b);
    return 0;
}

#else

int dlk_depthwise_cl(const float *xp, int channels, int cs, int wp, const float *wt, int kh, int kw, int sh, int sw,
                     int dh, int dw, int ow, const float *bias, int activation, float a, float b,
                     long p0, long p1, float *y) {
    (void)xp; (void)channels; (void)cs; (void)wp; (void)wt; (void)kh; (void)kw; (void)sh; (void)sw; (void)dh; (void)dw;
    (void)ow; (void)bias; (void)activation; (void)a; (void)b; (void)p0; (void)p1; (void)y;
    return -1;
}

int dlk_depthwise_conv2d(const float *x, int channels, int h, int w, const float *wt, int kh, int kw,
                         int sh, int sw, int pt, int pl, int dh, int dw, int oh, int ow,
                         const float *bias, int activation, float a, float b, long p0, long p1, float *y) {
    (void)x; (void)channels; (void)h; (void)w; (void)wt; (void)kh; (void)kw; (void)sh; (void)sw; (void)pt; (void)pl;
    (void)dh; (void)dw; (void)oh; (void)ow; (void)bias; (void)activation; (void)a; (void)b; (void)p0; (void)p1; (void)y;
    return -1;
}

#endif

// MARK: Interleaving rows (a transposed convolution whose kernel is its stride)

#if DLK_CNN_X86
DLK_CNN_TARGET static void interleave2(const float *r0, const float *r1, int n, float bias, float *dst) {
    const __m512i lo = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i hi = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    const __m512 vb = _mm512_set1_ps(bias);
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = dlk_lanes16(n - i);
        const __m512 a = _mm512_add_ps(vb, _mm512_maskz_loadu_ps(m, r0 + i));
        const __m512 b = _mm512_add_ps(vb, _mm512_maskz_loadu_ps(m, r1 + i));
        const int left = 2 * (n - i);
        _mm512_mask_storeu_ps(dst + 2 * i, dlk_lanes16(left), _mm512_permutex2var_ps(a, lo, b));
        if (left > 16) _mm512_mask_storeu_ps(dst + 2 * i + 16, dlk_lanes16(left - 16), _mm512_permutex2var_ps(a, hi, b));
    }
}
#endif

void dlk_interleave_rows(const float *rows, long row_stride, int k, int n, float bias, float *dst) {
#if DLK_CNN_X86
    if (k == 2 && dlk_avx512_available()) {
        interleave2(rows, rows + row_stride, n, bias, dst);
        return;
    }
#endif
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) dst[(long)i * k + j] = bias + rows[j * row_stride + i];
}
