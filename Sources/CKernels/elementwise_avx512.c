// Elementwise activations on AVX-512 (see include/ckernels.h): the same dlk_activate16 the GEMM
// and convolution epilogues apply, over a whole buffer, for activations that run as ops of
// their own (nothing to fuse them into).
#include "ckernels.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#include "vecmath_avx512.h"

#define DLK_EW_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))

/// The loop for one activation; `activation` is a constant at each call site, so the switch in
/// dlk_activate16 folds away.
static inline __attribute__((always_inline)) DLK_EW_TARGET
void activate_loop(int activation, float a, float b, float bias, const float *x, float *y, long n) {
    const __m512 vb = _mm512_set1_ps(bias);
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_add_ps(_mm512_loadu_ps(x + i), vb), v1 = _mm512_add_ps(_mm512_loadu_ps(x + i + 16), vb);
        _mm512_storeu_ps(y + i, dlk_activate16(v0, activation, a, b));
        _mm512_storeu_ps(y + i + 16, dlk_activate16(v1, activation, a, b));
    }
    for (; i < n; i += 16) {
        __mmask16 mk = dlk_lanes16((int)(n - i < 16 ? n - i : 16));
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(mk, x + i), vb);
        _mm512_mask_storeu_ps(y + i, mk, dlk_activate16(v, activation, a, b));
    }
}

DLK_EW_TARGET int dlk_activate(int activation, float a, float b, float bias, const float *x, float *y, long n) {
    if (!dlk_avx512_available()) return -1;
    switch (activation) {
    case DLK_ACT_NONE: activate_loop(DLK_ACT_NONE, a, b, bias, x, y, n); return 0;
    case DLK_ACT_RELU: activate_loop(DLK_ACT_RELU, a, b, bias, x, y, n); return 0;
    case DLK_ACT_LEAKY_RELU: activate_loop(DLK_ACT_LEAKY_RELU, a, b, bias, x, y, n); return 0;
    case DLK_ACT_CLIP: activate_loop(DLK_ACT_CLIP, a, b, bias, x, y, n); return 0;
    case DLK_ACT_SIGMOID: activate_loop(DLK_ACT_SIGMOID, a, b, bias, x, y, n); return 0;
    case DLK_ACT_SILU: activate_loop(DLK_ACT_SILU, a, b, bias, x, y, n); return 0;
    case DLK_ACT_HARD_SIGMOID: activate_loop(DLK_ACT_HARD_SIGMOID, a, b, bias, x, y, n); return 0;
    case DLK_ACT_HARD_SWISH: activate_loop(DLK_ACT_HARD_SWISH, a, b, bias, x, y, n); return 0;
    case DLK_ACT_GELU: activate_loop(DLK_ACT_GELU, a, b, bias, x, y, n); return 0;
    default: return -1;
    }
}

DLK_EW_TARGET int dlk_tanh(const float *x, float *y, long n) {
    if (!dlk_avx512_available()) return -1;
    for (long i = 0; i < n; i += 16) {
        __mmask16 mk = dlk_lanes16((int)(n - i < 16 ? n - i : 16));
        _mm512_mask_storeu_ps(y + i, mk, dlk_tanh16(_mm512_maskz_loadu_ps(mk, x + i)));
    }
    return 0;
}

DLK_EW_TARGET int dlk_erf(const float *x, float *y, long n) {
    if (!dlk_avx512_available()) return -1;
    for (long i = 0; i < n; i += 16) {
        __mmask16 mk = dlk_lanes16((int)(n - i < 16 ? n - i : 16));
        _mm512_mask_storeu_ps(y + i, mk, dlk_erf16(_mm512_maskz_loadu_ps(mk, x + i)));
    }
    return 0;
}

DLK_EW_TARGET int dlk_quantize_dequantize(const float *x, float *y, long n, float scale, float zero, float qmin, float qmax) {
    if (!dlk_avx512_available()) return -1;
    const __m512 vs = _mm512_set1_ps(scale), vz = _mm512_set1_ps(zero);
    const __m512 lo = _mm512_set1_ps(qmin), hi = _mm512_set1_ps(qmax);
    for (long i = 0; i < n; i += 16) {
        __mmask16 mk = dlk_lanes16((int)(n - i < 16 ? n - i : 16));
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(mk, x + i), vs);
        v = _mm512_roundscale_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_add_ps(v, vz);
        // NaN quantises to the integer 0, as the general QuantizeLinear kernel has it.
        v = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v, _mm512_setzero_ps());
        v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
        _mm512_mask_storeu_ps(y + i, mk, _mm512_mul_ps(_mm512_sub_ps(v, vz), vs));
    }
    return 0;
}

#else

int dlk_tanh(const float *x, float *y, long n) {
    (void)x; (void)y; (void)n;
    return -1;
}

int dlk_erf(const float *x, float *y, long n) {
    (void)x; (void)y; (void)n;
    return -1;
}

int dlk_quantize_dequantize(const float *x, float *y, long n, float scale, float zero, float qmin, float qmax) {
    (void)x; (void)y; (void)n; (void)scale; (void)zero; (void)qmin; (void)qmax;
    return -1;
}

int dlk_activate(int activation, float a, float b, float bias, const float *x, float *y, long n) {
    (void)activation; (void)a; (void)b; (void)bias; (void)x; (void)y; (void)n;
    return -1;
}

#endif
