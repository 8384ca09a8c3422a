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

#endif
