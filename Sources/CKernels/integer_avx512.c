// Integer GEMM on AVX-512 VNNI (see include/ckernels_integer.h).
#include "ckernels.h"
#include "ckernels_integer.h"

#include <pthread.h>
#include <stddef.h>
#include <string.h>

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

#else
int dlk_avx512_vnni_available(void) { return 0; }
void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc) {
    (void)a; (void)lda; (void)packed_b; (void)m; (void)n; (void)k4; (void)c; (void)ldc;
}
#endif
