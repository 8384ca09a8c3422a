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
    vnni_state = dlk_avx512_available() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                 __builtin_cpu_supports("avx512vnni");
}

int dlk_avx512_vnni_available(void) {
    pthread_once(&vnni_once, detect_vnni);
    return vnni_state;
}

#define DLK_I8_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define DLK_REQ_TARGET __attribute__((target("avx512f,avx512vl")))

// Four bytes of a row as one int32 lane value (unaligned, no aliasing).
static inline int32_t dlk_four_bytes(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// NP panels (16·NP columns) of four rows of A: each step broadcasts four bytes of each row and
// adds the four products of each column (vpdpbusd), then the offsets go on at the store. The
// bytes are broadcast from memory and flipped in the vector (a scalar xor first made each a move
// from a general register); ROWTERM (a constant) says whether zero[q]·row_sums goes on too (one
// 32-bit multiply per sixteen sums, most of the epilogue when there are no weight zero points).
#define DLK_GEMM_ROWS(R, NP, ROWTERM)                                                                     \
    do {                                                                                                  \
        __m512i acc[R][NP];                                                                               \
        for (int r = 0; r < R; r++)                                                                       \
            for (int q = 0; q < NP; q++) acc[r][q] = _mm512_setzero_si512();                              \
        for (int g = 0; g < k4; g++) {                                                                    \
            __m512i b[NP];                                                                                \
            for (int q = 0; q < NP; q++) b[q] = _mm512_loadu_si512(bp + (size_t)q * k4 * 64 + (size_t)g * 64); \
            for (int r = 0; r < R; r++) {                                                                 \
                __m512i av = _mm512_xor_si512(_mm512_set1_epi32(dlk_four_bytes(a + (size_t)(i + r) * lda + 4 * g)), vflip); \
                for (int q = 0; q < NP; q++) acc[r][q] = _mm512_dpbusd_epi32(acc[r][q], av, b[q]);        \
            }                                                                                             \
        }                                                                                                 \
        for (int r = 0; r < R; r++) {                                                                     \
            __m512i rs = _mm512_set1_epi32(ROWTERM ? row_sums[i + r] : 0);                                \
            for (int q = 0; q < NP; q++) {                                                                \
                __m512i v = _mm512_add_epi32(acc[r][q], add[q]);                                          \
                if (ROWTERM) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(zero[q], rs));                    \
                _mm512_mask_storeu_epi32(c + (size_t)(i + r) * ldc + (p + q) * DLK_I8_PANEL, mask[q], v); \
            }                                                                                             \
        }                                                                                                 \
    } while (0)

// Columns [16p, 16(p + NP)) for every row of A, four rows at a time.
#define DLK_GEMM_PANELS(NP)                                                                               \
    do {                                                                                                  \
        const int8_t *bp = packed_b + (size_t)p * k4 * 64;                                                \
        __m512i add[NP], zero[NP];                                                                        \
        __mmask16 mask[NP];                                                                               \
        for (int q = 0; q < NP; q++) {                                                                    \
            int first = (p + q) * DLK_I8_PANEL, cols = n - first < DLK_I8_PANEL ? n - first : DLK_I8_PANEL; \
            mask[q] = cols == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);                     \
            add[q] = col_add ? _mm512_maskz_loadu_epi32(mask[q], col_add + first) : _mm512_setzero_si512(); \
            zero[q] = col_zero ? _mm512_maskz_loadu_epi32(mask[q], col_zero + first) : _mm512_setzero_si512(); \
        }                                                                                                 \
        int i = 0;                                                                                        \
        if (row_sums) {                                                                                   \
            for (; i + 4 <= m; i += 4) DLK_GEMM_ROWS(4, NP, 1);                                           \
            for (; i < m; i++) DLK_GEMM_ROWS(1, NP, 1);                                                   \
        } else {                                                                                          \
            for (; i + 4 <= m; i += 4) DLK_GEMM_ROWS(4, NP, 0);                                           \
            for (; i < m; i++) DLK_GEMM_ROWS(1, NP, 0);                                                   \
        }                                                                                                 \
    } while (0)

DLK_I8_TARGET void dlk_gemm_u8s8_offset(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4,
                                        int32_t *c, long ldc, const int32_t *col_add, const int32_t *col_zero,
                                        const int32_t *row_sums, uint8_t a_flip) {
    const __m512i vflip = _mm512_set1_epi8((char)a_flip);
    int panels = (n + DLK_I8_PANEL - 1) / DLK_I8_PANEL, p = 0;
    for (; p + 4 <= panels; p += 4) DLK_GEMM_PANELS(4);
    if (panels - p == 3) DLK_GEMM_PANELS(3);
    else if (panels - p == 2) DLK_GEMM_PANELS(2);
    else if (panels - p == 1) DLK_GEMM_PANELS(1);
}

DLK_I8_TARGET void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc) {
    dlk_gemm_u8s8_offset(a, lda, packed_b, m, n, k4, c, ldc, NULL, NULL, NULL, 0);
}

// Sixteen channels of x at `p` as int32 (int8 or uint8 bytes; `mask` the channels present).
DLK_I8_TARGET static inline __m512i dlk_bytes16(const uint8_t *p, int is_signed, __mmask16 mask) {
    __m128i v = _mm_maskz_loadu_epi8(mask, p);
    return is_signed ? _mm512_cvtepi8_epi32(v) : _mm512_cvtepu8_epi32(v);
}

/// Four neighbouring output pixels of dlk_dwconv_nhwc whose taps all lie inside the image: `src`
/// the first one's first tap, pixels `sw` apart; Σ x·w′ plus the bias less x_zero·Σ w′ into
/// `out` (four pixels, `c` sums each, one after the other).
static DLK_I8_TARGET void dw_nhwc_interior4(const uint8_t *src, int x_signed, size_t row, int c, const int32_t *weights,
                                           const int32_t *interior_bias, int kh, int kw, int sw, int dh, int dw,
                                           int32_t *out) {
    const size_t step = (size_t)sw * c;
    for (int ch = 0; ch < c; ch += 16) {
        const int count = c - ch < 16 ? c - ch : 16;
        const __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
        const __m512i b = _mm512_maskz_loadu_epi32(mask, interior_bias + ch);
        __m512i a0 = b, a1 = b, a2 = b, a3 = b;
        for (int ky = 0; ky < kh; ky++) {
            const uint8_t *line = src + (size_t)ky * dh * row + ch;
            const int32_t *wr = weights + (size_t)ky * kw * c + ch;
            for (int kx = 0; kx < kw; kx++) {
                const __m512i wv = _mm512_maskz_loadu_epi32(mask, wr + (size_t)kx * c);
                const uint8_t *at = line + (size_t)kx * dw * c;
                a0 = _mm512_add_epi32(a0, _mm512_mullo_epi32(dlk_bytes16(at, x_signed, mask), wv));
                a1 = _mm512_add_epi32(a1, _mm512_mullo_epi32(dlk_bytes16(at + step, x_signed, mask), wv));
                a2 = _mm512_add_epi32(a2, _mm512_mullo_epi32(dlk_bytes16(at + 2 * step, x_signed, mask), wv));
                a3 = _mm512_add_epi32(a3, _mm512_mullo_epi32(dlk_bytes16(at + 3 * step, x_signed, mask), wv));
            }
        }
        _mm512_mask_storeu_epi32(out + ch, mask, a0);
        _mm512_mask_storeu_epi32(out + c + ch, mask, a1);
        _mm512_mask_storeu_epi32(out + 2 * (size_t)c + ch, mask, a2);
        _mm512_mask_storeu_epi32(out + 3 * (size_t)c + ch, mask, a3);
    }
}

DLK_I8_TARGET void dlk_dwconv_nhwc(const uint8_t *x, int x_signed, int32_t x_zero, int h, int w, int c,
                                   const int32_t *weights, const int32_t *bias, const int32_t *interior_bias,
                                   int kh, int kw, int sh, int sw, int dh, int dw, int pt, int pl, int oh, int ow,
                                   int32_t *y) {
    const __m512i xz = _mm512_set1_epi32(x_zero);
    const size_t row = (size_t)w * c;
    for (int oy = 0; oy < oh; oy++) {
        int iy0 = oy * sh - pt;
        int inside_y = iy0 >= 0 && iy0 + (kh - 1) * dh < h;
        for (int ox = 0; ox < ow; ox++) {
            int ix0 = ox * sw - pl;
            int inside = inside_y && ix0 >= 0 && ix0 + (kw - 1) * dw < w;
            if (inside && ox + 4 <= ow && (ox + 3) * sw - pl + (kw - 1) * dw < w) {
                // Four pixels inside: four independent sums, each tap's weights loaded once for
                // them (one sum at a time waited on every multiply's latency: 20% of int8
                // MobileNetV2).
                dw_nhwc_interior4(x + (size_t)iy0 * row + (size_t)ix0 * c, x_signed, row, c, weights, interior_bias,
                                  kh, kw, sw, dh, dw, y + ((size_t)oy * ow + ox) * c);
                ox += 3;
                continue;
            }
            int32_t *out = y + ((size_t)oy * ow + ox) * c;
            for (int ch = 0; ch < c; ch += 16) {
                int count = c - ch < 16 ? c - ch : 16;
                __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
                __m512i acc;
                if (inside) {
                    // Every tap inside: Σ x·w′ plus the bias less x_zero·Σ w′.
                    acc = _mm512_maskz_loadu_epi32(mask, interior_bias + ch);
                    const uint8_t *src = x + (size_t)iy0 * row + (size_t)ix0 * c + ch;
                    for (int ky = 0; ky < kh; ky++) {
                        const uint8_t *line = src + (size_t)ky * dh * row;
                        const int32_t *wr = weights + (size_t)ky * kw * c + ch;
                        for (int kx = 0; kx < kw; kx++) {
                            __m512i xv = dlk_bytes16(line + (size_t)kx * dw * c, x_signed, mask);
                            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(xv, _mm512_maskz_loadu_epi32(mask, wr + (size_t)kx * c)));
                        }
                    }
                } else {
                    // At the border: the taps inside, centred (padding holds the zero point).
                    acc = _mm512_maskz_loadu_epi32(mask, bias + ch);
                    for (int ky = 0; ky < kh; ky++) {
                        int iy = iy0 + ky * dh;
                        if (iy < 0 || iy >= h) continue;
                        for (int kx = 0; kx < kw; kx++) {
                            int ix = ix0 + kx * dw;
                            if (ix < 0 || ix >= w) continue;
                            __m512i xv = _mm512_sub_epi32(dlk_bytes16(x + (size_t)iy * row + (size_t)ix * c + ch, x_signed, mask), xz);
                            __m512i wv = _mm512_maskz_loadu_epi32(mask, weights + ((size_t)ky * kw + kx) * c + ch);
                            acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(xv, wv));
                        }
                    }
                }
                _mm512_mask_storeu_epi32(out + ch, mask, acc);
            }
        }
    }
}

// Eight values of x from element `at` as doubles (`count` of them; zeros past it).
DLK_REQ_TARGET static inline __m512d dlk_load8_pd(const void *x, int kind, long at, long count) {
    if (count == 8) {
        int64_t bytes;
        switch (kind) {
        case DLK_VALUES_INT32: return _mm512_cvtepi32_pd(_mm256_loadu_si256((const __m256i *)((const int32_t *)x + at)));
        case DLK_VALUES_FLOAT64: return _mm512_loadu_pd((const double *)x + at);
        case DLK_VALUES_INT8:
            memcpy(&bytes, (const int8_t *)x + at, 8);
            return _mm512_cvtepi32_pd(_mm256_cvtepi8_epi32(_mm_cvtsi64_si128(bytes)));
        default:
            memcpy(&bytes, (const uint8_t *)x + at, 8);
            return _mm512_cvtepi32_pd(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes)));
        }
    }
    double t[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long i = 0; i < count; i++) {
        switch (kind) {
        case DLK_VALUES_INT32: t[i] = ((const int32_t *)x)[at + i]; break;
        case DLK_VALUES_FLOAT64: t[i] = ((const double *)x)[at + i]; break;
        case DLK_VALUES_INT8: t[i] = ((const int8_t *)x)[at + i]; break;
        default: t[i] = ((const uint8_t *)x)[at + i]; break;
        }
    }
    return _mm512_loadu_pd(t);
}

// u of eight lanes: (x·left)·multiplier rounded half up, times right, rounded half away from zero.
DLK_REQ_TARGET static inline __m512d dlk_quanta8(__m512d w, __m512d l, __m512d m, __m512d r) {
    const __m512d half = _mm512_set1_pd(0.5);
    __m512d h = _mm512_mul_pd(_mm512_mul_pd(w, l), m);
    __m512d d = _mm512_mul_pd(_mm512_roundscale_pd(_mm512_add_pd(h, half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), r);
    __m512d magnitude = _mm512_roundscale_pd(_mm512_add_pd(_mm512_abs_pd(d), half), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __mmask8 negative = _mm512_cmp_pd_mask(d, _mm512_setzero_pd(), _CMP_LT_OQ);
    return _mm512_mask_sub_pd(magnitude, negative, _mm512_setzero_pd(), magnitude);
}

DLK_REQ_TARGET void dlk_requantize(const void *x, int kind, long rows, long width, const double *left, const double *multiplier,
                                   const double *right, float real_scale, float lo, float hi, float y_scale, double zero,
                                   int is_signed, void *out) {
    const __m256 rs = _mm256_set1_ps(real_scale), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), ys = _mm256_set1_ps(y_scale);
    const __m512d z = _mm512_set1_pd(zero), qmin = _mm512_set1_pd(is_signed ? -128.0 : 0.0), qmax = _mm512_set1_pd(is_signed ? 127.0 : 255.0);
    for (long row = 0; row < rows; row++) {
        long base = row * width;
        for (long j = 0; j < width; j += 8) {
            long count = width - j < 8 ? width - j : 8;
            __mmask8 mask = (__mmask8)((1u << count) - 1);
            __m512d w = dlk_load8_pd(x, kind, base + j, count);
            __m512d l = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, left + j);
            __m512d m = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, multiplier + j);
            __m512d r = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, right + j);
            __m256 real = _mm256_mul_ps(_mm512_cvtpd_ps(dlk_quanta8(w, l, m, r)), rs);
            real = _mm256_min_ps(_mm256_max_ps(real, vlo), vhi);
            __m512d q = _mm512_cvtps_pd(_mm256_div_ps(real, ys));
            q = _mm512_add_pd(_mm512_roundscale_pd(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
            __mmask8 nan = _mm512_cmp_pd_mask(q, q, _CMP_UNORD_Q);
            q = _mm512_mask_mov_pd(_mm512_min_pd(_mm512_max_pd(q, qmin), qmax), nan, _mm512_setzero_pd());
            // In range already: the low byte is the value, int8 or uint8.
            _mm256_mask_cvtepi32_storeu_epi8((uint8_t *)out + base + j, mask, _mm512_cvtpd_epi32(q));
        }
    }
}

// The integer steps of dlk_requantize_q31 for sixteen sums `xv` at positions [j, j + 16) of a
// row (`mask` the lanes present): u = round_half_away(((x << l)·m + 2^30) >> 31, r), before the
// zero point and the clamp. The caller has checked every lane against its limit.
DLK_REQ_TARGET static inline __m512i dlk_q31_sixteen(__m512i xv, long j, __mmask16 mask, int any_left, const int32_t *restrict shift_left,
                                                    const int32_t *restrict multiplier, const int32_t *restrict swapped,
                                                    const int32_t *restrict round_up, const int32_t *restrict round_down,
                                                    const int32_t *restrict shift_right) {
    const __m512i nudge = _mm512_set1_epi64((int64_t)1 << 30);
    __m512i xs = any_left ? _mm512_sllv_epi32(xv, _mm512_maskz_loadu_epi32(mask, shift_left + j)) : xv;
    // The rounding doubling high multiply, even and odd lanes as 64-bit products (|x·m| < 2^52).
    __m512i even = _mm512_mul_epi32(xs, _mm512_maskz_loadu_epi32(mask, multiplier + j));
    __m512i odd = _mm512_mul_epi32(_mm512_srli_epi64(xs, 32), _mm512_maskz_loadu_epi32(mask, swapped + j));
    even = _mm512_srai_epi64(_mm512_add_epi64(even, nudge), 31);
    odd = _mm512_srai_epi64(_mm512_add_epi64(odd, nudge), 31);
    __m512i t = _mm512_mask_shuffle_epi32(even, (__mmask16)0xAAAA, odd, _MM_PERM_CDAB);
    // Division by 2^shift_right rounding half away from zero: (t + 2^(r−1) − [t < 0]) >> r.
    __m512i round = _mm512_mask_blend_epi32(_mm512_cmplt_epi32_mask(t, _mm512_setzero_si512()), _mm512_maskz_loadu_epi32(mask, round_up + j),
                                            _mm512_maskz_loadu_epi32(mask, round_down + j));
    return _mm512_srav_epi32(_mm512_add_epi32(t, round), _mm512_maskz_loadu_epi32(mask, shift_right + j));
}

// Sixteen sums (`count` of them) at position j of a row, `base` their index in x and out: the
// integer steps when every |x| is under its limit, else `dlk_requantize` with the float64 constants.
DLK_REQ_TARGET static inline void dlk_q31_piece(const int32_t *x, long base, long j, long count, const dlk_q31 *q, int any_left,
                                               __m512i vzero, __m512i vfloor, __m512i vceiling, const double *left,
                                               const double *multiplier, const double *right, float real_scale, float lo, float hi,
                                               float y_scale, double zero, int is_signed, void *out) {
    __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
    __m512i xv = _mm512_maskz_loadu_epi32(mask, x + base);
    // |x| as unsigned, so INT32_MIN counts as 2^31.
    __m512i limit = any_left ? _mm512_maskz_loadu_epi32(mask, q->limit + j) : _mm512_set1_epi32(1 << 21);
    if (_mm512_mask_cmpge_epu32_mask(mask, _mm512_abs_epi32(xv), limit)) {
        dlk_requantize(x + base, DLK_VALUES_INT32, 1, count, left + j, multiplier + j, right + j, real_scale, lo, hi,
                       y_scale, zero, is_signed, (uint8_t *)out + base);
        return;
    }
    __m512i u = dlk_q31_sixteen(xv, j, mask, any_left, q->shift_left, q->multiplier, q->multiplier_swapped, q->round_up,
                                q->round_down, q->shift_right);
    // The activation's clamp, the zero point and the type's range in one clamp.
    u = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(u, vzero), vfloor), vceiling);
    // Narrowed in a register and stored whole (the masked narrowing store is several times
    // slower on some cores: a quarter of MobileNetV2 int8's time on an AMD EPYC).
    __m128i bytes = _mm512_cvtepi32_epi8(u);
    if (count == 16) {
        _mm_storeu_si128((__m128i *)((uint8_t *)out + base), bytes);
    } else {
        uint8_t t16[16];
        _mm_storeu_si128((__m128i *)t16, bytes);
        memcpy((uint8_t *)out + base, t16, (size_t)count);
    }
}

// dlk_requantize_q31's loop; `any_left` is a constant in each of its two instances.
DLK_REQ_TARGET static inline void dlk_requantize_q31_rows(const int32_t *x, long rows, long width, const dlk_q31 *q, int any_left,
                                                         int32_t floor, int32_t ceiling, const double *left, const double *multiplier,
                                                         const double *right, float real_scale, float lo, float hi, float y_scale,
                                                         double zero, int is_signed, void *out) {
    // The struct's fields read once here: stores of bytes may alias anything, so the compiler
    // would read them again after every store.
    dlk_q31 c = *q;
    const __m512i vzero = _mm512_set1_epi32(c.zero), vfloor = _mm512_set1_epi32(floor), vceiling = _mm512_set1_epi32(ceiling);
    for (long row = 0; row < rows; row++) {
        for (long j = 0; j < width; j += 16) {
            dlk_q31_piece(x, row * width + j, j, width - j < 16 ? width - j : 16, &c, any_left, vzero, vfloor, vceiling, left,
                          multiplier, right, real_scale, lo, hi, y_scale, zero, is_signed, out);
        }
    }
}

#define DLK_REQ_BW_TARGET __attribute__((target("avx512f,avx512vl,avx512bw")))

// dlk_requantize_q31 for rows whose width is a multiple of 16, sixty-four sums at a time through
// the rows as one run (each group of sixteen within one row): the zero point, the clamp and the
// narrowing on packed 16-bit lanes, a quarter of the steps of sixteen at a time in 32-bit lanes
// (the narrowing alone, vpmovdb, was a fifth of the loop on an AMD EPYC). The 16-bit steps give
// the same bytes: packing saturates at ±32767 and adding the zero point (|z| ≤ 255) saturates,
// both far past the clamp's bounds (within [−128, 255]), so a saturated lane clamps to the same
// bound as its 32-bit value would.
DLK_REQ_BW_TARGET static void dlk_requantize_q31_packed(const int32_t *x, long rows, long width, const dlk_q31 *q, int any_left,
                                                       int32_t floor, int32_t ceiling, const double *left, const double *multiplier,
                                                       const double *right, float real_scale, float lo, float hi, float y_scale,
                                                       double zero, int is_signed, void *out) {
    const long n = rows * width;
    dlk_q31 c = *q;  // read once (see dlk_requantize_q31_rows)
    q = &c;
    const __m512i vzero = _mm512_set1_epi32(c.zero), vfloor = _mm512_set1_epi32(floor), vceiling = _mm512_set1_epi32(ceiling);
    const __m512i z16 = _mm512_set1_epi16((short)q->zero), floor16 = _mm512_set1_epi16((short)floor);
    const __m512i ceiling16 = _mm512_set1_epi16((short)ceiling), limit21 = _mm512_set1_epi32(1 << 21);
    // After two packs, dword 4L + k holds sums 4L..4L+3 of vector k: back into order.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    long f = 0, j = 0;
    for (; f + 64 <= n; f += 64) {
        long at[4];
        __m512i xv[4];
        __mmask16 big = 0;
        for (int k = 0; k < 4; k++) {
            at[k] = j;
            xv[k] = _mm512_loadu_si512(x + f + 16 * k);
            __m512i limit = any_left ? _mm512_loadu_si512(q->limit + j) : limit21;
            big |= _mm512_cmpge_epu32_mask(_mm512_abs_epi32(xv[k]), limit);
            j += 16;
            if (j == width) j = 0;
        }
        if (big) {
            for (int k = 0; k < 4; k++)
                dlk_q31_piece(x, f + 16 * k, at[k], 16, q, any_left, vzero, vfloor, vceiling, left, multiplier, right, real_scale, lo,
                              hi, y_scale, zero, is_signed, out);
            continue;
        }
        __m512i u[4];
        for (int k = 0; k < 4; k++)
            u[k] = dlk_q31_sixteen(xv[k], at[k], (__mmask16)0xFFFF, any_left, q->shift_left, q->multiplier, q->multiplier_swapped,
                                   q->round_up, q->round_down, q->shift_right);
        __m512i a = _mm512_adds_epi16(_mm512_packs_epi32(u[0], u[1]), z16);
        __m512i b = _mm512_adds_epi16(_mm512_packs_epi32(u[2], u[3]), z16);
        a = _mm512_min_epi16(_mm512_max_epi16(a, floor16), ceiling16);
        b = _mm512_min_epi16(_mm512_max_epi16(b, floor16), ceiling16);
        // In range already: either pack keeps the values.
        __m512i bytes = is_signed ? _mm512_packs_epi16(a, b) : _mm512_packus_epi16(a, b);
        _mm512_storeu_si512((uint8_t *)out + f, _mm512_permutexvar_epi32(order, bytes));
    }
    for (; f < n; f += 16) {
        dlk_q31_piece(x, f, f % width, 16, q, any_left, vzero, vfloor, vceiling, left, multiplier, right, real_scale, lo, hi, y_scale,
                      zero, is_signed, out);
    }
}

DLK_REQ_TARGET void dlk_requantize_q31(const int32_t *x, long rows, long width, const dlk_q31 *q, const double *left,
                                       const double *multiplier, const double *right, float real_scale, float lo, float hi,
                                       float y_scale, double zero, int is_signed, void *out) {
    // clamp(clamp(u, lo, hi) + zero, qmin, qmax) as one clamp of u + zero (|u| < 2^21: no
    // overflow); where the two ranges miss each other, the bound of the type's range they fall past.
    int64_t qmin = is_signed ? -128 : 0, qmax = is_signed ? 127 : 255;
    int64_t low = (int64_t)q->lo + q->zero, high = (int64_t)q->hi + q->zero;
    int64_t floor = low > qmin ? low : qmin, ceiling = high < qmax ? high : qmax;
    if (floor > ceiling) floor = ceiling = high < qmin ? qmin : qmax;
    // AVX-512 allowed, with BW (vector level 2: BW, VL, DQ and CD besides F).
    if (width % 16 == 0 && dlk_avx512_available() && dlk_cpu_vector_level() == 2) {
        if (q->any_left) {
            dlk_requantize_q31_packed(x, rows, width, q, 1, (int32_t)floor, (int32_t)ceiling, left, multiplier, right, real_scale, lo,
                                      hi, y_scale, zero, is_signed, out);
        } else {
            dlk_requantize_q31_packed(x, rows, width, q, 0, (int32_t)floor, (int32_t)ceiling, left, multiplier, right, real_scale, lo,
                                      hi, y_scale, zero, is_signed, out);
        }
    } else if (q->any_left) {
        dlk_requantize_q31_rows(x, rows, width, q, 1, (int32_t)floor, (int32_t)ceiling, left, multiplier, right, real_scale, lo, hi,
                                y_scale, zero, is_signed, out);
    } else {
        dlk_requantize_q31_rows(x, rows, width, q, 0, (int32_t)floor, (int32_t)ceiling, left, multiplier, right, real_scale, lo, hi,
                                y_scale, zero, is_signed, out);
    }
}

DLK_REQ_TARGET void dlk_requantize_scaled(const int32_t *x, long rows, long width, const float *scales, int32_t zero,
                                          int is_signed, void *out) {
    // Clamped in float first (as ONNX Runtime does), so sums far out of range saturate.
    const __m512 lo = _mm512_set1_ps((float)((is_signed ? -128 : 0) - zero)), hi = _mm512_set1_ps((float)((is_signed ? 127 : 255) - zero));
    const __m512i z = _mm512_set1_epi32(zero);
    for (long row = 0; row < rows; row++) {
        long base = row * width;
        for (long j = 0; j < width; j += 16) {
            long count = width - j < 16 ? width - j : 16;
            __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
            __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(mask, x + base + j)),
                                     _mm512_maskz_loadu_ps(mask, scales + j));
            v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
            __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
            _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)out + base + j, mask, q);
        }
    }
}

DLK_REQ_TARGET void dlk_quantize_f32(const float *x, long n, float scale, int32_t zero, int is_signed, void *out) {
    const __m512 s = _mm512_set1_ps(scale);
    const __m512 lo = _mm512_set1_ps((float)((is_signed ? -128 : 0) - zero)), hi = _mm512_set1_ps((float)((is_signed ? 127 : 255) - zero));
    const __m512i z = _mm512_set1_epi32(zero);
    for (long i = 0; i < n; i += 16) {
        long count = n - i < 16 ? n - i : 16;
        __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
        __m512 v = _mm512_div_ps(_mm512_maskz_loadu_ps(mask, x + i), s);
        __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
        __m512i q = _mm512_add_epi32(_mm512_cvt_roundps_epi32(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), z);
        q = _mm512_mask_mov_epi32(q, nan, _mm512_setzero_si512());
        _mm512_mask_cvtepi32_storeu_epi8((uint8_t *)out + i, mask, q);
    }
}

DLK_REQ_TARGET void dlk_dequantize_8(const void *x, long n, int is_signed, int32_t zero, float scale, float *out) {
    const __m512 s = _mm512_set1_ps(scale);
    const __m512i z = _mm512_set1_epi32(zero);
    for (long i = 0; i < n; i += 16) {
        long count = n - i < 16 ? n - i : 16;
        __mmask16 mask = count == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
        __m128i bytes;
        if (count == 16) {
            bytes = _mm_loadu_si128((const __m128i *)((const uint8_t *)x + i));
        } else {
            uint8_t t[16] = {0};
            memcpy(t, (const uint8_t *)x + i, (size_t)count);
            bytes = _mm_loadu_si128((const __m128i *)t);
        }
        __m512i v = is_signed ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
        _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(v, z)), s));
    }
}

DLK_REQ_TARGET void dlk_fixed_point_multiply(const void *x, int kind, long rows, long width, double offset, double scale,
                                             const double *left, const double *multiplier, const double *right, double *out) {
    const __m512d vo = _mm512_set1_pd(offset), vs = _mm512_set1_pd(scale);
    for (long row = 0; row < rows; row++) {
        long base = row * width;
        for (long j = 0; j < width; j += 8) {
            long count = width - j < 8 ? width - j : 8;
            __mmask8 mask = (__mmask8)((1u << count) - 1);
            __m512d w = _mm512_mul_pd(_mm512_sub_pd(dlk_load8_pd(x, kind, base + j, count), vo), vs);
            __m512d l = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, left + j);
            __m512d m = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, multiplier + j);
            __m512d r = _mm512_mask_loadu_pd(_mm512_set1_pd(1), mask, right + j);
            _mm512_mask_storeu_pd(out + base + j, mask, dlk_quanta8(w, l, m, r));
        }
    }
}

#else
int dlk_avx512_vnni_available(void) { return 0; }
void dlk_quantize_f32(const float *x, long n, float scale, int32_t zero, int is_signed, void *out) {
    (void)x; (void)n; (void)scale; (void)zero; (void)is_signed; (void)out;
}
void dlk_dequantize_8(const void *x, long n, int is_signed, int32_t zero, float scale, float *out) {
    (void)x; (void)n; (void)is_signed; (void)zero; (void)scale; (void)out;
}
void dlk_requantize_scaled(const int32_t *x, long rows, long width, const float *scales, int32_t zero, int is_signed, void *out) {
    (void)x; (void)rows; (void)width; (void)scales; (void)zero; (void)is_signed; (void)out;
}
void dlk_fixed_point_multiply(const void *x, int kind, long rows, long width, double offset, double scale,
                              const double *left, const double *multiplier, const double *right, double *out) {
    (void)x; (void)kind; (void)rows; (void)width; (void)offset; (void)scale; (void)left; (void)multiplier; (void)right; (void)out;
}
void dlk_requantize(const void *x, int kind, long rows, long width, const double *left, const double *multiplier,
                    const double *right, float real_scale, float lo, float hi, float y_scale, double zero,
                    int is_signed, void *out) {
    (void)x; (void)kind; (void)rows; (void)width; (void)left; (void)multiplier; (void)right; (void)real_scale; (void)lo; (void)hi;
    (void)y_scale; (void)zero; (void)is_signed; (void)out;
}
void dlk_requantize_q31(const int32_t *x, long rows, long width, const dlk_q31 *q, const double *left, const double *multiplier,
                        const double *right, float real_scale, float lo, float hi, float y_scale, double zero, int is_signed, void *out) {
    (void)x; (void)rows; (void)width; (void)q; (void)left; (void)multiplier; (void)right; (void)real_scale; (void)lo; (void)hi;
    (void)y_scale; (void)zero; (void)is_signed; (void)out;
}
void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc) {
    (void)a; (void)lda; (void)packed_b; (void)m; (void)n; (void)k4; (void)c; (void)ldc;
}
void dlk_gemm_u8s8_offset(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc,
                          const int32_t *col_add, const int32_t *col_zero, const int32_t *row_sums, uint8_t a_flip) {
    (void)a; (void)lda; (void)packed_b; (void)m; (void)n; (void)k4; (void)c; (void)ldc; (void)col_add; (void)col_zero; (void)row_sums;
    (void)a_flip;
}
void dlk_dwconv_nhwc(const uint8_t *x, int x_signed, int32_t x_zero, int h, int w, int c, const int32_t *weights,
                     const int32_t *bias, const int32_t *interior_bias, int kh, int kw, int sh, int sw, int dh, int dw,
                     int pt, int pl, int oh, int ow, int32_t *y) {
    (void)x; (void)x_signed; (void)x_zero; (void)h; (void)w; (void)c; (void)weights; (void)bias; (void)interior_bias;
    (void)kh; (void)kw; (void)sh; (void)sw; (void)dh; (void)dw; (void)pt; (void)pl; (void)oh; (void)ow; (void)y;
}
#endif

#if defined(__SSE2__)
#include <emmintrin.h>
// A 16 × 16 byte block transposed: four rounds of interleaving rows i and i + 8 byte by byte
// (each round rotates the eight bits of (row, column) left by one; four make the transpose),
// between two arrays in turn and fully unrolled, so the rows stay in registers: copying the
// array back after each round compiled to a 256-byte memcpy call, 4 per block, which took more
// time than all the integer convolutions' products together.
#define DLK_T16_ROUND(from, to)                                                 \
    _Pragma("clang loop unroll(full)")                                          \
    for (int i = 0; i < 8; i++) {                                               \
        to[2 * i] = _mm_unpacklo_epi8(from[i], from[i + 8]);                    \
        to[2 * i + 1] = _mm_unpackhi_epi8(from[i], from[i + 8]);                \
    }

__attribute__((always_inline)) static inline void dlk_transpose16(const uint8_t *src, long src_stride, uint8_t *dst,
                                                                  long dst_stride) {
    __m128i x[16], y[16];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 16; i++) x[i] = _mm_loadu_si128((const __m128i *)(src + i * src_stride));
    DLK_T16_ROUND(x, y)
    DLK_T16_ROUND(y, x)
    DLK_T16_ROUND(x, y)
    DLK_T16_ROUND(y, x)
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < 16; i++) _mm_storeu_si128((__m128i *)(dst + i * dst_stride), x[i]);
}
#endif

// A byte matrix transposed in 16 × 16 blocks (SSE2 where there is, else byte by byte).
__attribute__((always_inline)) static inline void transpose_u8_blocks(const uint8_t *src, long rows, long cols, uint8_t *dst) {
    for (long i0 = 0; i0 < rows; i0 += 16) {
        long i1 = i0 + 16 < rows ? i0 + 16 : rows;
        for (long j0 = 0; j0 < cols; j0 += 16) {
            long j1 = j0 + 16 < cols ? j0 + 16 : cols;
#if defined(__SSE2__)
            if (i1 - i0 == 16 && j1 - j0 == 16) {
                dlk_transpose16(src + i0 * cols + j0, cols, dst + j0 * rows + i0, rows);
                continue;
            }
#endif
            for (long i = i0; i < i1; i++)
                for (long j = j0; j < j1; j++) dst[j * rows + i] = src[i * cols + j];
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
// The same with AVX-512 VL's 32 vector registers: both arrays of a block fit, nothing spills.
__attribute__((target("avx512f,avx512vl,avx512bw")))
static void transpose_u8_avx512(const uint8_t *src, long rows, long cols, uint8_t *dst) {
    transpose_u8_blocks(src, rows, cols, dst);
}
#endif

// Portable entry.
void dlk_transpose_u8(const uint8_t *src, long rows, long cols, uint8_t *dst) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (dlk_avx512_available()) {
        transpose_u8_avx512(src, rows, cols, dst);
        return;
    }
#endif
    transpose_u8_blocks(src, rows, cols, dst);
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
// Each tap's cg bytes as masked 64-byte loads and stores, the row sums by sums of absolute
// differences: the byte loops (and a memset call per padded tap and per row) took longer than
// the product for an RGB image's first convolution (cg = 3: 27 bytes a row).
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void im2col_nhwc_u8_avx512(const uint8_t *x, int h, int w, int c, int c0, int cg, uint8_t flip, uint8_t pad, int kh,
                                  int kw, int sh, int sw, int dh, int dw, int pt, int pl, int ow, long first, long rows,
                                  uint8_t *a, long lda, int32_t *row_sums) {
    const long k = (long)kh * kw * cg;
    const __m512i vflip = _mm512_set1_epi8((char)flip), vpad = _mm512_set1_epi8((char)pad), zero = _mm512_setzero_si512();
#define DLK_BYTES(n) ((n) >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n)) - 1))
    for (long r = 0; r < rows; r++) {
        const long pixel = first + r;
        const int oy = (int)(pixel / ow), ox = (int)(pixel % ow);
        uint8_t *dst = a + r * lda;
        const int ix0 = ox * sw - pl;
        // A kernel row wholly inside the image, of all channels at dilation 1, is one run of
        // kw·c bytes in x: copied in 64-byte pieces, not tap by tap (an RGB image's first
        // convolution copied 3 bytes at a time).
        const int runs = dw == 1 && cg == c && ix0 >= 0 && ix0 + kw <= w;
        for (int ky = 0; ky < kh; ky++) {
            const int iy = oy * sh - pt + ky * dh;
            if (runs && iy >= 0 && iy < h) {
                const uint8_t *src = x + ((size_t)iy * w + ix0) * c;
                uint8_t *row = dst + (long)ky * kw * cg;
                const long bytes = (long)kw * cg;
                for (long i0 = 0; i0 < bytes; i0 += 64) {
                    const __mmask64 m = DLK_BYTES(bytes - i0);
                    _mm512_mask_storeu_epi8(row + i0, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + i0), vflip));
                }
                continue;
            }
            for (int kx = 0; kx < kw; kx++) {
                const int ix = ix0 + kx * dw;
                uint8_t *tap = dst + ((long)ky * kw + kx) * cg;
                const int inside = iy >= 0 && iy < h && ix >= 0 && ix < w;
                const uint8_t *src = inside ? x + ((size_t)iy * w + ix) * c + c0 : NULL;
                for (int i0 = 0; i0 < cg; i0 += 64) {
                    const __mmask64 m = DLK_BYTES(cg - i0);
                    const __m512i v = src ? _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + i0), vflip) : vpad;
                    _mm512_mask_storeu_epi8(tap + i0, m, v);
                }
            }
        }
        for (long i0 = k; i0 < lda; i0 += 64) _mm512_mask_storeu_epi8(dst + i0, DLK_BYTES(lda - i0), zero);
        if (row_sums) {
            __m512i s = zero;
            for (long i0 = 0; i0 < k; i0 += 64)
                s = _mm512_add_epi64(s, _mm512_sad_epu8(_mm512_maskz_loadu_epi8(DLK_BYTES(k - i0), dst + i0), zero));
            row_sums[r] = (int32_t)(uint32_t)_mm512_reduce_add_epi64(s);
        }
    }
#undef DLK_BYTES
}
#endif

// Portable: the patch rows of an NHWC image (see ckernels_integer.h); AVX-512 BW where it may run.
void dlk_im2col_nhwc_u8(const uint8_t *x, int h, int w, int c, int c0, int cg, uint8_t flip, uint8_t pad, int kh, int kw,
                        int sh, int sw, int dh, int dw, int pt, int pl, int ow, long first, long rows, uint8_t *a, long lda,
                        int32_t *row_sums) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    if (dlk_avx512_vnni_available()) {
        im2col_nhwc_u8_avx512(x, h, w, c, c0, cg, flip, pad, kh, kw, sh, sw, dh, dw, pt, pl, ow, first, rows, a, lda, row_sums);
        return;
    }
#endif
    const long k = (long)kh * kw * cg;
    for (long r = 0; r < rows; r++) {
        long pixel = first + r;
        int oy = (int)(pixel / ow), ox = (int)(pixel % ow);
        uint8_t *dst = a + r * lda;
        for (int ky = 0; ky < kh; ky++) {
            int iy = oy * sh - pt + ky * dh;
            for (int kx = 0; kx < kw; kx++) {
                int ix = ox * sw - pl + kx * dw;
                uint8_t *tap = dst + ((long)ky * kw + kx) * cg;
                if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                    memset(tap, pad, (size_t)cg);
                } else {
                    const uint8_t *src = x + ((size_t)iy * w + ix) * c + c0;
                    for (int i = 0; i < cg; i++) tap[i] = src[i] ^ flip;
                }
            }
        }
        memset(dst + k, 0, (size_t)(lda - k));
        if (row_sums) {
            uint32_t s = 0;
            for (long i = 0; i < k; i++) s += dst[i];
            row_sums[r] = (int32_t)s;
        }
    }
}

// MARK: Byte lookup

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
static pthread_once_t vbmi_once = PTHREAD_ONCE_INIT;
static int vbmi_state = 0;

static void detect_vbmi(void) {
    __builtin_cpu_init();
    vbmi_state = dlk_avx512_available() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vbmi");
}

// 64 bytes at a time: two two-register byte permutes give the table's halves for the low seven
// bits of each index, and its top bit picks the half.
__attribute__((target("avx512f,avx512bw,avx512vbmi")))
static void lookup8_vbmi(const uint8_t *x, long n, const uint8_t *table, uint8_t *y) {
    const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
    const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
    for (long i = 0; i < n; i += 64) {
        const __mmask64 live = n - i >= 64 ? ~(__mmask64)0 : (((__mmask64)1 << (n - i)) - 1);
        const __m512i v = _mm512_maskz_loadu_epi8(live, x + i);
        const __m512i lo = _mm512_permutex2var_epi8(t0, v, t1), hi = _mm512_permutex2var_epi8(t2, v, t3);
        _mm512_mask_storeu_epi8(y + i, live, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), lo, hi));
    }
}
#endif

void dlk_lookup8(const uint8_t *x, long n, const uint8_t *table, uint8_t *y) {
#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
    pthread_once(&vbmi_once, detect_vbmi);
    if (vbmi_state) {
        lookup8_vbmi(x, n, table, y);
        return;
    }
#endif
    for (long i = 0; i < n; i++) y[i] = table[x[i]];
}
