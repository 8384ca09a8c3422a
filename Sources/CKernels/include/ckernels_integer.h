// Integer GEMM on AVX-512 VNNI (see ckernels.h for how the C kernels are chosen).
#ifndef DLKIT_CKERNELS_INTEGER_H
#define DLKIT_CKERNELS_INTEGER_H

#include <stdint.h>

/// Columns per panel of a B matrix packed for `dlk_gemm_u8s8`.
#define DLK_I8_PANEL 16

/// 1 when `dlk_gemm_u8s8` may run: AVX-512 may run (`dlk_avx512_available`) and the CPU has
/// AVX-512 BW and VNNI. Read once.
int dlk_avx512_vnni_available(void);

/// c[i·ldc + j] = Σ_k a[i·lda + k] · b[k][j] for i < m, j < n, exactly in int32: a unsigned
/// bytes, rows of k4·4 (zero past the real depth), b signed bytes packed in panels of
/// DLK_I8_PANEL columns: panel p holds, for each group g of four k, the four bytes of each of its
/// 16 columns in turn (b[4g + r][16p + col] at p·k4·64 + g·64 + col·4 + r; zero past n and the
/// depth). Sums of four u8·s8 products never saturate. Requires `dlk_avx512_vnni_available`.
void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc);

/// ai.dlkit.Requantize over int32 sums on AVX-512 (F and VL; requires `dlk_avx512_available`):
/// for each of `rows` rows of `width` elements, with left/multiplier/right the `width` constants
/// of the row's positions, u = round_half_away(floor((x·left)·multiplier + 0.5)·right) in
/// double, real = clamp((float)u · real_scale, lo, hi) in float, and out = saturate(
/// round_half_even((double)(real / y_scale)) + zero) to int8 (`is_signed`) or uint8, NaN to 0:
/// every step rounded as the IR ops it replaces round (no contraction into fused multiply-adds).
void dlk_requantize_i32(const int32_t *x, long rows, long width, const double *left, const double *multiplier,
                        const double *right, float real_scale, float lo, float hi, float y_scale, double zero,
                        int is_signed, void *out);

#endif
