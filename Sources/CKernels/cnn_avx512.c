// 2×2 max pooling on AVX-512, alone and fused into the stride-1 convolution (ckernels_cnn.h).
//
// The fused form computes two full-resolution output rows of every channel with
// `dlk_conv2d_s1` into a small per-thread buffer (≤ a few tens of KB: it stays in L1/L2), then
// pools them into one output row. A CNN's Conv → Relu → MaxPool then never writes (nor reads
// back) its full-resolution activation: at batch 32 that tensor was 16 MB per layer.
#include "ckernels_cnn.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define DLK_CNN_X86 1
#else
#define DLK_CNN_X86 0
#endif

// A per-thread buffer for the fused kernel's two rows, kept between calls (steady-state runs
// allocate nothing) and freed when the thread ends.
static pthread_key_t rows_key;
static pthread_once_t rows_once = PTHREAD_ONCE_INIT;
typedef struct { void *p; size_t bytes; } rows_buf;

static void rows_free(void *v) {
    rows_buf *s = v;
    free(s->p);
    free(s);
}

static void rows_init(void) { pthread_key_create(&rows_key, rows_free); }

static float *rows_scratch(size_t bytes) {
    pthread_once(&rows_once, rows_init);
    rows_buf *s = pthread_getspecific(rows_key);
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return NULL;
        if (pthread_setspecific(rows_key, s) != 0) { free(s); return NULL; }
    }
    if (s->bytes < bytes) {
        size_t want = (bytes + 4095) & ~(size_t)4095;
        void *p = NULL;
        if (posix_memalign(&p, 64, want) != 0) return NULL;
        free(s->p);
        s->p = p;
        s->bytes = want;
    }
    return s->p;
}

#if DLK_CNN_X86

#define DLK_CNN_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#define DLK_CNN_INLINE static inline __attribute__((always_inline))

DLK_CNN_INLINE __mmask16 cnn_lanes(int n) {
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
}

/// max(a, b) lane by lane, NaN when either is NaN (vmaxps alone would return b).
DLK_CNN_INLINE DLK_CNN_TARGET __m512 nan_max(__m512 a, __m512 b) {
    __m512 m = _mm512_max_ps(a, b);
    __mmask16 u = _mm512_cmp_ps_mask(a, b, _CMP_UNORD_Q);
    return _mm512_mask_add_ps(m, u, a, b);
}

/// out[j] = max(r0[2j], r0[2j+1], r1[2j], r1[2j+1]) for j in [0, pw).
DLK_CNN_INLINE DLK_CNN_TARGET void pool_row(const float *r0, const float *r1, int pw, float *out) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    for (int j = 0; j < pw; j += 16) {
        const int n = pw - j < 16 ? pw - j : 16;          // outputs this step
        const __mmask16 m0 = cnn_lanes(2 * n), m1 = cnn_lanes(2 * n - 16);
        const float *a = r0 + 2 * j, *b = r1 + 2 * j;
        __m512 lo = nan_max(_mm512_maskz_loadu_ps(m0, a), _mm512_maskz_loadu_ps(m0, b));
        __m512 hi = nan_max(_mm512_maskz_loadu_ps(m1, a + 16), _mm512_maskz_loadu_ps(m1, b + 16));
        __m512 v = nan_max(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
        _mm512_mask_storeu_ps(out + j, cnn_lanes(n), v);
    }
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
        if (dlk_conv2d_s1(x + (size_t)2 * pr * wp, cin, hp, wp, kh, kw, dh, dw, 2, wout, 0, 2,
                          w_packed, m, buf, 2L * wout, e) != 0) return -1;
        for (int c = 0; c < m; c++) {
            const float *r0 = buf + (size_t)c * 2 * wout;
            pool_row(r0, r0 + wout, pw, y + (size_t)c * y_stride + (size_t)pr * pw);
        }
    }
    return 0;
}

/// Rows [0, MR) of A against rows [0, NB) of W: MR·NB accumulators of 16 lanes, one pass over k.
DLK_CNN_INLINE DLK_CNN_TARGET void narrow_block(const int MR, const int NB, int k, const float *a, long lda,
                                                const float *w, long ldw, float *c, long ldc,
                                                const dlk_epilogue *e, int col0) {
    __m512 acc[4][8];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < NB; j++) acc[i][j] = _mm512_setzero_ps();
    }
    int p = 0;
    for (; p + 16 <= k; p += 16) {
        __m512 av[4];
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) av[i] = _mm512_loadu_ps(a + (size_t)i * lda + p);
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < NB; j++) {
            __m512 wv = _mm512_loadu_ps(w + (size_t)j * ldw + p);
            _Pragma("clang loop unroll(full)")
            for (int i = 0; i < MR; i++) acc[i][j] = _mm512_fmadd_ps(av[i], wv, acc[i][j]);
        }
    }
    if (p < k) {
        const __mmask16 mk = cnn_lanes(k - p);
        __m512 av[4];
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < MR; i++) av[i] = _mm512_maskz_loadu_ps(mk, a + (size_t)i * lda + p);
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < NB; j++) {
            __m512 wv = _mm512_maskz_loadu_ps(mk, w + (size_t)j * ldw + p);
            _Pragma("clang loop unroll(full)")
            for (int i = 0; i < MR; i++) acc[i][j] = _mm512_fmadd_ps(av[i], wv, acc[i][j]);
        }
    }
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < MR; i++) {
        _Pragma("clang loop unroll(full)")
        for (int j = 0; j < NB; j++) {
            float v = e->alpha * _mm512_reduce_add_ps(acc[i][j]);
            if (e->col_bias) v += e->col_bias[col0 + j];
            switch (e->activation) {
            case DLK_ACT_RELU: v = v > 0.0f ? v : 0.0f; break;
            case DLK_ACT_LEAKY_RELU: v = v < 0.0f ? v * e->act_a : v; break;
            case DLK_ACT_CLIP: v = v < e->act_a ? e->act_a : v > e->act_b ? e->act_b : v; break;
            default: break;
            }
            c[(size_t)i * ldc + j] = v;
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
    if (e->accumulate || e->row_bias || n > 16 || n <= 0 || m < 0 || k <= 0) return -1;
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

#endif
