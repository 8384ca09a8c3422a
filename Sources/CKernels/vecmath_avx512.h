// Lane masks, transpose steps, exp, sigmoid and tanh on 16 floats for the AVX-512 kernels (private to CKernels: not under
// include/, so not part of the module). Same formulas as the Swift VectorMath versions, so both
// paths agree to an ulp or two: exp by range reduction to [-ln2/2, ln2/2] and a degree-6
// polynomial (+inf above 88.72, 0 below -103.97); sigmoid from e^-|x| so nothing overflows; tanh by an odd polynomial below 0.625
// and 1 - 2/(e^{2|x|} + 1) above. NaN stays NaN.
#ifndef DLKIT_VECMATH_AVX512_H
#define DLKIT_VECMATH_AVX512_H

#include <immintrin.h>

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


/// The DLK_ACT_* activation (see ckernels.h) of 16 floats, `a` and `b` its parameters. NaN stays
/// NaN: the max/min below return their second operand, x, when it is NaN.
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_activate16(__m512 v, int activation, float a, float b) {
    switch (activation) {
    case 1: // DLK_ACT_RELU
        return _mm512_max_ps(_mm512_setzero_ps(), v);
    case 2: { // DLK_ACT_LEAKY_RELU
        __mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);
        return _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(a));
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
    default:
        return v;
    }
}

/// erf of 16 floats: its Taylor series below |x| = 2 (terms to x⁵⁵, truncation under 1e-11), above
/// it 1 − erfc(|x|) with erfc from a rational-exponential fit of fractional error below 1.2e-7
/// (Numerical Recipes' erfcc), below 3e-10 there; within about one ulp overall; NaN stays NaN.
DLK_VM_INLINE DLK_VM_TARGET __m512 dlk_erf16(__m512 x) {
    const __m512 a = dlk_abs16(x);
    // 2/√π · Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n + 1)), n = 0 … 27, in Horner form over z = x², in double
    // (the alternating terms cost float a few ulp), eight lanes at a time.
    static const double series[28] = {
        -1.669761793417372e-30, 4.6784835155184856e-29, -1.2641078988989164e-27, 3.289260349175752e-26,
        -8.230149299214221e-25, 1.977064753877905e-23, -4.5518467589282e-22, 1.0025164934907719e-20,
        -2.107855191442136e-19, 4.221407288807088e-18, -8.032735012415773e-17, 1.4483264643598138e-15,
        -2.466827010264457e-14, 3.9554295164585257e-13, -5.9477940136376354e-12, 8.35070279514724e-11,
        -1.0892221037148573e-09, 1.3122532963802806e-08, -1.4503852223150468e-07, 1.4589169000933706e-06,
        -1.3227513227513228e-05, 0.00010683760683760684, -0.0007575757575757576, 0.004629629629629629,
        -0.023809523809523808, 0.1, -0.3333333333333333, 1.0};
    __m512d half[2];
    for (int h = 0; h < 2; h++) {
        __m512d xd = _mm512_cvtps_pd(h == 0 ? _mm512_castps512_ps256(x) : _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)));
        __m512d zd = _mm512_mul_pd(xd, xd), sd = _mm512_set1_pd(series[0]);
        for (int i = 1; i < 28; i++) sd = _mm512_fmadd_pd(sd, zd, _mm512_set1_pd(series[i]));
        half[h] = _mm512_mul_pd(_mm512_mul_pd(sd, xd), _mm512_set1_pd(1.1283791670955126));
    }
    __m512 small = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(half[0])), _mm512_cvtpd_ps(half[1]), 1);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.5f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    __m512 erfc = _mm512_mul_ps(t, dlk_exp16(_mm512_sub_ps(p, _mm512_mul_ps(a, a))));
    __m512 large = _mm512_sub_ps(_mm512_set1_ps(1.0f), erfc);
    large = _mm512_min_ps(large, _mm512_set1_ps(1.0f));
    // Sign of x onto the large branch.
    large = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(large),
              _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000))));
    __mmask16 useLarge = _mm512_cmp_ps_mask(a, _mm512_set1_ps(2.0f), _CMP_GE_OQ);
    return _mm512_mask_blend_ps(useLarge, small, large);
}

#endif
