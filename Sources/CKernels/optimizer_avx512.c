// Optimizer updates on AVX-512 (see include/ckernels_optimizer.h).
#include "ckernels.h"
#include "ckernels_optimizer.h"

// Every step rounds as the scalar loop it replaces (PyTorch's order): no fused multiply-adds.
#ifdef __clang__
#pragma clang fp contract(off)
#endif

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

#define DLK_OPT_TARGET __attribute__((target("avx512f")))

DLK_OPT_TARGET int dlk_adam_update(long n, float *p, const float *g, float *m, float *v, float *vmax, float decay,
                                   float w1, float b2, float w2, float bc2_sqrt, float eps, float a) {
    if (!dlk_avx512_available()) return -1;
    const int near_a = (w1 < 0 ? -w1 : w1) < 0.5f;
    const __m512 vdecay = _mm512_set1_ps(decay), vw1 = _mm512_set1_ps(w1), vrest = _mm512_set1_ps(1.0f - w1);
    const __m512 vb2 = _mm512_set1_ps(b2), vw2 = _mm512_set1_ps(w2), vbc2 = _mm512_set1_ps(bc2_sqrt);
    const __m512 veps = _mm512_set1_ps(eps), va = _mm512_set1_ps(a);
    for (long i = 0; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 pv = _mm512_maskz_loadu_ps(k, p + i);
        const __m512 gv = _mm512_maskz_loadu_ps(k, g + i);
        __m512 mv = _mm512_maskz_loadu_ps(k, m + i), vv = _mm512_maskz_loadu_ps(k, v + i);
        if (decay != 1.0f) pv = _mm512_mul_ps(pv, vdecay);
        const __m512 diff = _mm512_sub_ps(gv, mv);
        mv = near_a ? _mm512_add_ps(mv, _mm512_mul_ps(vw1, diff)) : _mm512_sub_ps(gv, _mm512_mul_ps(diff, vrest));
        vv = _mm512_mul_ps(vv, vb2);
        vv = _mm512_add_ps(vv, _mm512_mul_ps(_mm512_mul_ps(vw2, gv), gv));
        __m512 second = vv;
        if (vmax) {
            const __m512 xv = _mm512_maskz_loadu_ps(k, vmax + i);
            second = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(vv, xv, _CMP_GE_OQ), xv, vv);
            _mm512_mask_storeu_ps(vmax + i, k, second);
        }
        const __m512 denom = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(second), vbc2), veps);
        pv = _mm512_add_ps(pv, _mm512_mul_ps(va, _mm512_div_ps(mv, denom)));
        _mm512_mask_storeu_ps(m + i, k, mv);
        _mm512_mask_storeu_ps(v + i, k, vv);
        _mm512_mask_storeu_ps(p + i, k, pv);
    }
    return 0;
}

#else  // not x86-64: dlk_avx512_available() is 0.

int dlk_adam_update(long n, float *p, const float *g, float *m, float *v, float *vmax, float decay, float w1,
                    float b2, float w2, float bc2_sqrt, float eps, float a) {
    (void)n; (void)p; (void)g; (void)m; (void)v; (void)vmax; (void)decay; (void)w1; (void)b2; (void)w2;
    (void)bc2_sqrt; (void)eps; (void)a;
    return -1;
}

#endif
