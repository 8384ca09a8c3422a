// Integer GEMM on AVX-512 VNNI (see include/ckernels_integer.h).
#include "ckernels.h"
#include "ckernels_integer.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

// Requantization must round after every multiply and add, as the IR ops it replaces do.
#ifdef __clang__
#pragma clang fp contract(off)
#endif

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

static pthread_once_t vnni_once = PTHREAD_ONCE_INIT;
static int vnni_state = 0;

static void detect_vnni(void) {
    __builtin_cpu_init();
    vnni_state = dlk_avx512_available() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni");
}

int dlk_avx512_vnni_available(void) {
    pthread_once(&vnni_once, detect_vnni);
    return vnni_state;
}

#define DLK_I8_TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define DLK_REQ_TARGET __attribute__((target("avx512f,avx512vl")))

// Four bytes of a row as one int32 lane value (unaligned, no aliasing).
static inline int32_t dlk_four_bytes(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// Four rows of A against one panel: each step broadcasts four bytes of a row and adds the four
// products of each column (vpdpbusd).
DLK_I8_TARGET void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4,
                                 int32_t *c, long ldc) {
    int panels = (n + DLK_I8_PANEL - 1) / DLK_I8_PANEL;
    for (int p = 0; p < panels; p++) {
        const int8_t *bp = packed_b + (size_t)p * k4 * 64;
        int cols = n - p * DLK_I8_PANEL < DLK_I8_PANEL ? n - p * DLK_I8_PANEL : DLK_I8_PANEL;
        __mmask16 mask = cols == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
        int i = 0;
        for (; i + 4 <= m; i += 4) {
            const uint8_t *a0 = a + (size_t)i * lda, *a1 = a0 + lda, *a2 = a1 + lda, *a3 = a2 + lda;
            __m512i c0 = _mm512_setzero_si512(), c1 = _mm512_setzero_si512(), c2 = _mm512_setzero_si512(), c3 = _mm512_setzero_si512();
            for (int g = 0; g < k4; g++) {
                __m512i b = _mm512_loadu_si512(bp + (size_t)g * 64);
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32(dlk_four_bytes(a0 + 4 * g)), b);
                c1 = _mm512_dpbusd_epi32(c1, _mm512_set1_epi32(dlk_four_bytes(a1 + 4 * g)), b);
                c2 = _mm512_dpbusd_epi32(c2, _mm512_set1_epi32(dlk_four_bytes(a2 + 4 * g)), b);
                c3 = _mm512_dpbusd_epi32(c3, _mm512_set1_epi32(dlk_four_bytes(a3 + 4 * g)), b);
            }
            int32_t *out = c + (size_t)i * ldc + p * DLK_I8_PANEL;
            _mm512_mask_storeu_epi32(out, mask, c0);
            _mm512_mask_storeu_epi32(out + ldc, mask, c1);
            _mm512_mask_storeu_epi32(out + 2 * ldc, mask, c2);
            _mm512_mask_storeu_epi32(out + 3 * ldc, mask, c3);
        }
        for (; i < m; i++) {
            const uint8_t *a0 = a + (size_t)i * lda;
            __m512i c0 = _mm512_setzero_si512();
            for (int g = 0; g < k4; g++) {
                c0 = _mm512_dpbusd_epi32(c0, _mm512_set1_epi32(dlk_four_bytes(a0 + 4 * g)),
                                         _mm512_loadu_si512(bp + (size_t)g * 64));
            }
            _mm512_mask_storeu_epi32(c + (size_t)i * ldc + p * DLK_I8_PANEL, mask, c0);
        }
    }
}

// Eight lanes of the requantization (see ckernels_integer.h): quanta u, then the quantized value
// as int32.
DLK_REQ_TARGET static inline __m256i dlk_requantize8(__m512d w, __m512d l, __m512d m, __m512d r, __m256 rs, __m256 lo,
                                                  __m256 hi, __m256 ys, __m512d z, __m512d qmin, __m512d qmax) {
    const __m512d half = _mm512_set1_pd(0.5);
    __m512d h = _mm512_mul_pd(_mm512_mul_pd(w, l), m);
    __m512d d = _mm512_mul_pd(_mm512_roundscale_pd(_mm512_add_pd(h, half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), r);
    __m512d magnitude = _mm512_roundscale_pd(_mm512_add_pd(_mm512_abs_pd(d), half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __mmask8 negative = _mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_LT_OQ);
    __m512d u = _mm512_mask_sub_pd(magnitude, negative, _mm512_setzero_pd(), magnitude);
    __m256 real = _mm256_mul_ps(_mm512_cvtpd_ps(u), rs);
    real = _mm256_min_ps(_mm256_max_ps(real, lo), hi);
    __m512d q = _mm512_cvtps_pd(_mm256_div_ps(real, ys));
    q = _mm512_add_pd(_mm512_roundscale_pd(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
    __mmask8 nan = _mm512_cmp_pd_mask(q, q, _CMP_UNORD_Q);
    q = _mm512_mask_mov_pd(_mm512_min_pd(_mm512_max_pd(q, qmin), qmax), nan, _mm512_setzero_pd());
    return _mm512_cvtpd_epi32(q);
}

DLK_REQ_TARGET void dlk_requantize_i32(const int32_t *x, long rows, long width, const double *left, const double *multiplier,
                                       const double *right, float real_scale, float lo, float hi, float y_scale, double zero,
                                       int is_signed, void *out) {
    const __m256 rs = _mm256_set1_ps(real_scale), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), ys = _mm256_set1_ps(y_scale);
    const __m512d z = _mm512_set1_pd(zero), qmin = _mm512_set1_pd(is_signed ? -128.0 : 0.0), qmax = _mm512_set1_pd(is_signed ? 127.0 : 255.0);
    int32_t lanes[8];
    for (long row = 0; row < rows; row++) {
        const int32_t *src = x + row * width;
        for (long j = 0; j < width; j += 8) {
            long count = width - j < 8 ? width - j : 8;
            __mmask8 mask = (__mmask8)((1u << count) - 1);
            __m512d w = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(mask, src + j));
            __m512d l = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, left + j);
            __m512d m = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, multiplier + j);
            __m512d r = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, right + j);
            _mm256_storeu_si256((__m256i *)lanes, dlk_requantize8(w, l, m, r, rs, vlo, vhi, ys, z, qmin, qmax));
            if (is_signed) {
                int8_t *dst = (int8_t *)out + row * width + j;
                for (long i = 0; i < count; i++) dst[i] = (int8_t)lanes[i];
            } else {
                uint8_t *dst = (uint8_t *)out + row * width + j;
                for (long i = 0; i < count; i++) dst[i] = (uint8_t)lanes[i];
            }
        }
    }
}

#else
int dlk_avx512_vnni_available(void) { return 0; }
void dlk_requantize_i32(const int32_t *x, long rows, long width, const double *left, const double *multiplier,
                        const double *right, float real_scale, float lo, float hi, float y_scale, double zero,
                        int is_signed, void *out) {
    (void)x; (void)rows; (void)width; (void)left; (void)multiplier; (void)right; (void)real_scale; (void)lo; (void)hi;
    (void)y_scale; (void)zero; (void)is_signed; (void)out;
}
void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc) {
    (void)a; (void)lda; (void)packed_b; (void)m; (void)n; (void)k4; (void)c; (void)ldc;
}
#endif
