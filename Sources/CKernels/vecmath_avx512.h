// Lane masks, transpose steps, exp, sigmoid and tanh on 16 floats for the AVX-512 kernels (private to CKernels: not under
// include/, so not part of the module). Same formulas as the Swift VectorMath versions, so both
// paths agree to an ulp or two: exp by range reduction to [-ln2/2, ln2/2] and a degree-6
// polynomial (+inf above 88.72, 0 below -103.97); sigmoid from e^-|x| so nothing overflows; tanh by an odd polynomial below 0.625
// and 1 - 2/(e^{2|x|} + 1) above; for the LSTM cell, tanh and sigmoid as one rational function. NaN stays NaN.
#ifndef DLKIT_VECMATH_AVX512_H
#define DLKIT_VECMATH_AVX512_H

#include <immintrin.h>
#include "ckernels.h"

#define DLK_VM_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#define DLK_VM_INLINE static inline __attribute__((always_inline))

/// Lanes [0, n) of a 16-lane mask (n may be ≤ 0 or ≥ 16).
DLK_VM_INLINE __mmask16 dlk_lanes16(int n) {
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/// unpacklo/unpackhi of 64-bit pairs, on float vectors (a step of the 16 × 16 transposes).
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_unpacklo_pd(__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_unpackhi_pd(__m512 a, __m512 b) {
    return _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(b)));
}

/// Rows [0, 16) of a block: r[i] = the `in` lanes at src + i·lds for i < h, zeros past h.
DLK_VM_INLINE DLK_VM_TARGET void dlk_load_rows16(const float *src, long lds, int h, __mmask16 in, __m512 *r) {
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 16; i++) r[i] = i < h ? _mm512_maskz_loadu_ps(in, src + (size_t)i * lds) : _mm512_setzero_ps();
}

/// The 16 × 16 transpose of r (r[i] is row i): out[q] lane i = r[i] lane q.
DLK_VM_INLINE DLK_VM_TARGET void dlk_transpose16x16(const __m512 *r, __m512 *out) {
    __m512 t[16], s[16];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 4; i++) {
        s[4 * i] = dlk_unpacklo_pd(t[4 * i], t[4 * i + 2]);
        s[4 * i + 1] = dlk_unpackhi_pd(t[4 * i], t[4 * i + 2]);
        s[4 * i + 2] = dlk_unpacklo_pd(t[4 * i + 1], t[4 * i + 3]);
        s[4 * i + 3] = dlk_unpackhi_pd(t[4 * i + 1], t[4 * i + 3]);
    }
    _Pragma("clang loop unroll(full)")
    for (int j = 0; j < 4; j++) {
        const __m512 x = _mm512_shuffle_f32x4(s[j], s[4 + j], 0x88), y = _mm512_shuffle_f32x4(s[j], s[4 + j], 0xDD);
        const __m512 u = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0x88), v = _mm512_shuffle_f32x4(s[8 + j], s[12 + j], 0xDD);
        out[j] = _mm512_shuffle_f32x4(x, u, 0x88);
        out[4 + j] = _mm512_shuffle_f32x4(y, v, 0x88);
        out[8 + j] = _mm512_shuffle_f32x4(x, u, 0xDD);
        out[12 + j] = _mm512_shuffle_f32x4(y, v, 0xDD);
    }
}

DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_exp16(__m512 x) {
    const __m512 upper = _mm512_set1_ps(88.72283905f), lower = _mm512_set1_ps(-103.972084f);
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, lower), upper);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440054690583e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    // p · 2ⁿ without overflow in the intermediate steps (denormal results come out right).
    __m512 y = _mm512_scalef_ps(p, n);
    __mmask16 big = _mm512_cmp_ps_mask(x, upper, _CMP_GT_OQ);
    y = _mm512_mask_blend_ps(big, y, _mm512_set1_ps(__builtin_inff()));
    __mmask16 tiny = _mm512_cmp_ps_mask(x, lower, _CMP_LT_OQ);
    y = _mm512_mask_blend_ps(tiny, y, _mm512_setzero_ps());
    __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    return _mm512_mask_blend_ps(nan, y, x);
}

DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_abs16(__m512 x) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7FFFFFFF)));
}

DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_sigmoid16(__m512 x) {
    __m512 e = dlk_exp16(_mm512_sub_ps(_mm512_setzero_ps(), dlk_abs16(x)));
    __m512 q = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    return _mm512_mask_mul_ps(q, neg, e, q);
}

DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_tanh16(__m512 x) {
    __m512 a = dlk_abs16(x), z = _mm512_mul_ps(x, x);
    __m512 p = _mm512_set1_ps(-5.70498872745e-3f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(2.06390887954e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-5.37397155531e-2f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(1.33314422036e-1f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-3.33332819422e-1f));
    __m512 small = _mm512_fmadd_ps(_mm512_mul_ps(p, z), x, x);
    __m512 e = dlk_exp16(_mm512_mul_ps(_mm512_set1_ps(-2.0f), a));
    __m512 large = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                                 _mm512_div_ps(_mm512_mul_ps(_mm512_set1_ps(2.0f), e), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    // Sign of x onto the large branch.
    large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(large),
                                                _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000))));
    __mmask16 useLarge = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.625f), _CMP_GE_OQ);
    return _mm512_mask_blend_ps(useLarge, small, large);
}



/// tanh of 16 floats as one rational function, for the LSTM cell (five of them per hidden unit
/// and step): x·P(x²)/Q(x²) with P and Q of degree 4, fitted for relative error on [0, 9]
/// (`scripts/fit_tanh.py`), within 3e-7 of tanh for every float (5 ulp near ±1, against the 1-2
/// of `dlk_tanh16`, at a third of its instructions: no exp, one division). |x| is clamped
/// to 9, where tanh rounds to ±1, and the result to [-1, 1]. NaN stays NaN (the clamps return
/// their second operand when it is NaN). The Swift `VectorMath.tanhRational` is the same formula.
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_tanh_rational16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 xc = _mm512_min_ps(_mm512_set1_ps(9.0f), _mm512_max_ps(_mm512_set1_ps(-9.0f), x));
    __m512 s = _mm512_mul_ps(xc, xc);
    __m512 p = _mm512_set1_ps(1.335506214e-08f);
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(2.060937042e-05f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(3.495605579e-03f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(1.338104031e-01f));
    p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(9.999999794e-01f));
    __m512 q = _mm512_set1_ps(7.776721984e-07f);
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(3.285663401e-04f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(2.587704852e-02f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(4.671435590e-01f));
    q = _mm512_fmadd_ps(q, s, one);
    __m512 r = _mm512_div_ps(_mm512_mul_ps(xc, p), q);
    return _mm512_min_ps(one, _mm512_max_ps(_mm512_set1_ps(-1.0f), r));
}

/// The logistic function of 16 floats as ½ + ½·tanh(x/2) (`dlk_tanh_rational16`): within 2e-7
/// of it in absolute terms (not in relative terms far below zero, where it is tiny).
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_sigmoid_rational16(__m512 x) {
    const __m512 half = _mm512_set1_ps(0.5f);
    return _mm512_fmadd_ps(half, dlk_tanh_rational16(_mm512_mul_ps(half, x)), half);
}

/// The error function of 16 floats, within 2 ulp of the exact value (checked over a sweep of
/// [0, 4] by ErfAccuracyTests). Below 1, erf(x) = x·P(x²) (P of degree 6, P(0) = 2/√π); from 1 to 3.92,
/// erf(x) = 1 - e^(-x²)·R(x) (R of degree 10 in x - 2.46, fitted to erfc(x)·e^(x²) for relative
/// error); above 3.92 the float result is 1. Odd in x; NaN stays NaN.
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_erf16(__m512 x) {
    __m512 a = dlk_abs16(x), z = _mm512_mul_ps(a, a);
    __m512 p = _mm512_set1_ps(7.8862561937515229e-05f);
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.00080210076899006914f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.0051897231687717867f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.026854682115836557f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.11283611768612301f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(-0.37612629360203242f));
    p = _mm512_fmadd_ps(p, z, _mm512_set1_ps(0.12837916709551256f));
    // x + x·(P(x²) - 1): the leading term exact, rounding only in the smaller correction.
    __m512 small = _mm512_fmadd_ps(p, a, a);
    __m512 t = _mm512_sub_ps(_mm512_min_ps(a, _mm512_set1_ps(3.92f)), _mm512_set1_ps(2.46f));
    __m512 r = _mm512_set1_ps(1.651996817530072e-06f);
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-6.9129890594503055e-06f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.6913984158046957e-05f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-5.9210800963834317e-05f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.00022832007338827959f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.00079097806191652552f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.0026193277610023677f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.0084065509753916325f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.02592218131359247f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.076381614658449032f));
    r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.21382068585689021f));
    __m512 large = _mm512_fnmadd_ps(dlk_exp16(_mm512_sub_ps(_mm512_setzero_ps(), z)), r, _mm512_set1_ps(1.0f));
    __m512 y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(1.0f), _CMP_GE_OQ), small, large);
    y = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(3.92f), _CMP_GE_OQ), y, _mm512_set1_ps(1.0f));
    // Sign of x back on; a NaN input went through as NaN and keeps its bits.
    y = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y),
                                            _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000))));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), y, x);
}

/// The DLK_ACT_* activation (see ckernels.h) of 16 floats, `a` and `b` its parameters. NaN stays
/// NaN: the max/min below return their second operand, x, when it is NaN.
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_activate16(__m512 v, int activation, float a, float b) {
    switch (activation) {
    case 1: // DLK_ACT_RELU
        return _mm512_max_ps(_mm512_setzero_ps(), v);
    case 2: { // DLK_ACT_LEAKY_RELU, then the floor b (−∞ for none; NaN stays NaN)
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_max_ps(_mm512_set1_ps(b), _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(a)));
    }
    case 3: // DLK_ACT_CLIP
        return _mm512_min_ps(_mm512_set1_ps(b), _mm512_max_ps(_mm512_set1_ps(a), v));
    case 4: // DLK_ACT_SIGMOID
        return dlk_sigmoid16(v);
    case 5: // DLK_ACT_SILU
        return _mm512_mul_ps(v, dlk_sigmoid16(v));
    case 6: // DLK_ACT_HARD_SIGMOID
        return _mm512_min_ps(_mm512_set1_ps(1.0f),
                             _mm512_max_ps(_mm512_setzero_ps(), _mm512_fmadd_ps(v, _mm512_set1_ps(a), _mm512_set1_ps(b))));
    case 7: // DLK_ACT_HARD_SWISH
        return _mm512_mul_ps(v, _mm512_min_ps(_mm512_set1_ps(1.0f),
                             _mm512_max_ps(_mm512_setzero_ps(), _mm512_fmadd_ps(v, _mm512_set1_ps(1.0f / 6.0f), _mm512_set1_ps(0.5f)))));
    case 8: // DLK_ACT_GELU: (x·0.5)·(erf(x / √2) + 1), the ops' order in BERT's exported graphs
        return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(0.5f)),
                             _mm512_add_ps(dlk_erf16(_mm512_div_ps(v, _mm512_set1_ps(1.41421356f))), _mm512_set1_ps(1.0f)));
    default:
        return v;
    }
}

/// The epilogue's activation of 16 results of row `row`, columns from `col` (lanes `mk` valid):
/// DLK_ACT_PRELU takes the slope of the row (`row_slope`) or of each column (`col_slope`), the
/// others are dlk_activate16. NaN stays NaN (not below zero), as does −0.
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_epilogue_activate16(__m512 v, const dlk_epilogue *e, long row, long col, __mmask16 mk) {
    if (e->activation != DLK_ACT_PRELU) return dlk_activate16(v, e->activation, e->act_a, e->act_b);
    const __m512 s = e->row_slope ? _mm512_set1_ps(e->row_slope[row])
                   : e->col_slope ? _mm512_maskz_loadu_ps(mk, e->col_slope + col) : _mm512_setzero_ps();
    return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, s);
}

/// One 16-step of ``dlk_dot_lanes`` at p: whole (plain loads) or the lanes of `mk`.
DLK_VM_INLINE DLK_VM_TARGET void dlk_dot_step(const int MR, const int NB, const int whole, __mmask16 mk, int p,
                                              const float *const *a, const float *const *w, __m512 (*acc)[8]) {
    __m512 av[4];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) av[i] = whole ? _mm512_loadu_ps(a[i] + p) : _mm512_maskz_loadu_ps(mk, a[i] + p);
    _Pragma("clang loop unroll(full)")
    for (int j = 0; j < NB; j++) {
        const __m512 wv = whole ? _mm512_loadu_ps(w[j] + p) : _mm512_maskz_loadu_ps(mk, w[j] + p);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) acc[i][j] = _mm512_fmadd_ps(av[i], wv, acc[i][j]);
    }
}

/// acc[i][j] = Σ_p a[i][p]·w[j][p] over p < k, for i < MR (≤ 4) and j < NB (≤ 8), in 16 lanes:
/// lane l adds the products of the p ≡ l (mod 16) in order of p by fused multiply-adds from +0
/// (a last partial 16 adds 0·0 in its empty lanes). The caller adds the lanes in its own order.
DLK_VM_INLINE DLK_VM_TARGET void dlk_dot_lanes(const int MR, const int NB, int k, const float *const *a,
                                               const float *const *w, __m512 (*acc)[8]) {
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_ps();
    }
    int p = 0;
    for (; p + 16 <= k; p += 16) dlk_dot_step(MR, NB, 1, 0xFFFF, p, a, w, acc);
    if (p < k) dlk_dot_step(MR, NB, 0, dlk_lanes16(k - p), p, a, w, acc);
}

#endif
