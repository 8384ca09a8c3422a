// Integer GEMM on AVX-512 VNNI (see ckernels.h for how the C kernels are chosen).
#ifndef DLKIT_CKERNELS_INTEGER_H
#define DLKIT_CKERNELS_INTEGER_H

#include <stdint.h>

/// Columns per panel of a B matrix packed for `dlk_gemm_u8s8`.
#define DLK_I8_PANEL 16

/// 1 when `dlk_gemm_u8s8` may run: AVX-512 may run (`dlk_avx512_available`) and the CPU has
/// AVX-512 BW, VL and VNNI. Read once.
int dlk_avx512_vnni_available(void);

/// c[i·ldc + j] = Σ_k a[i·lda + k] · b[k][j] for i < m, j < n, exactly in int32: a unsigned
/// bytes, rows of k4·4 (zero past the real depth), b signed bytes packed in panels of
/// DLK_I8_PANEL columns: panel p holds, for each group g of four k, the four bytes of each of its
/// 16 columns in turn (b[4g + r][16p + col] at p·k4·64 + g·64 + col·4 + r; zero past n and the
/// depth). Sums of four u8·s8 products never saturate. Requires `dlk_avx512_vnni_available`.
void dlk_gemm_u8s8(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc);

/// `dlk_gemm_u8s8` with offsets added at the store: c[i·ldc + j] = Σ_k a·b + col_add[j] −
/// col_zero[j]·row_sums[i], in wrapping int32 (each of the three may be NULL, meaning zeros),
/// every byte of a read xor `a_flip` (0x80: int8 rows taken as unsigned, a + 128, in place).
void dlk_gemm_u8s8_offset(const uint8_t *a, long lda, const int8_t *packed_b, int m, int n, int k4, int32_t *c, long ldc,
                          const int32_t *col_add, const int32_t *col_zero, const int32_t *row_sums, uint8_t a_flip);

/// Depthwise convolution of one NHWC image x (h × w × c bytes, int8 when `x_signed`, else
/// uint8) into y (oh × ow × c int32): y[oy][ox][ch] = bias[ch] + Σ over the taps inside the
/// image of (x − x_zero)·weights[(ky·kw + kx)·c + ch], the input position oy·sh − pt + ky·dh,
/// ox·sw − pl + kx·dw. `weights` are already centred (w − w_zero) and `interior_bias[ch]` is
/// bias[ch] − x_zero·Σ_taps weights, used where every tap is inside. Wrapping int32 sums.
/// Requires `dlk_avx512_vnni_available`.
void dlk_dwconv_nhwc(const uint8_t *x, int x_signed, int32_t x_zero, int h, int w, int c, const int32_t *weights,
                     const int32_t *bias, const int32_t *interior_bias, int kh, int kw, int sh, int sw, int dh, int dw,
                     int pt, int pl, int oh, int ow, int32_t *y);

/// Portable C. Rows `first` ..< `first + rows` of the patch matrix of one NHWC image x (h × w × c
/// bytes) for the `cg` channels from `c0`: row r (output pixel first + r, row-major over an
/// output ow wide) holds, for each tap (ky, kx) in turn, the cg bytes at input position
/// (oy·sh − pt + ky·dh, ox·sw − pl + kx·dw) xor `flip`, or `pad` cg times where the tap falls
/// outside; bytes from kh·kw·cg to `lda` are zero. `row_sums` (may be NULL) gets each row's
/// byte sum over its kh·kw·cg bytes.
void dlk_im2col_nhwc_u8(const uint8_t *x, int h, int w, int c, int c0, int cg, uint8_t flip, uint8_t pad, int kh, int kw,
                        int sh, int sw, int dh, int dw, int pt, int pl, int ow, long first, long rows, uint8_t *a, long lda,
                        int32_t *row_sums);

/// Element types of `x` for `dlk_requantize` and `dlk_fixed_point_multiply`.
enum { DLK_VALUES_INT32 = 0, DLK_VALUES_FLOAT64 = 1, DLK_VALUES_INT8 = 2, DLK_VALUES_UINT8 = 3 };

/// ai.dlkit.Requantize on AVX-512 (F and VL; requires `dlk_avx512_available`), x int32, float64,
/// int8 or uint8 (`kind`): for each of `rows` rows of `width` elements, with left/multiplier/right
/// the `width` constants of the row's positions, u = round_half_away(floor((x·left)·multiplier +
/// 0.5)·right) in double, real = clamp((float)u · real_scale, lo, hi) in float, and out =
/// saturate(round_half_even((double)(real / y_scale)) + zero) to int8 (`is_signed`) or uint8, NaN
/// to 0: every step rounded as the IR ops it replaces round (no contraction into fused multiply-adds).
void dlk_requantize(const void *x, int kind, long rows, long width, const double *left, const double *multiplier,
                    const double *right, float real_scale, float lo, float hi, float y_scale, double zero,
                    int is_signed, void *out);

/// TFLite's fixed-point requantization in integers, per position j of a row: the left shift,
/// the Q31 multiplier, the right shift (at most 31) and the bound under which a sum takes the
/// integer path (|x| < limit[j]: where the float64 chain of `dlk_requantize` is exact), then the
/// activation's clamp in output quanta [lo, hi] and the zero point.
typedef struct {
    const int32_t *shift_left, *multiplier, *shift_right, *limit;
    /// Per lane j: multiplier[j ^ 1] (0 past the row), so an odd lane's product forms in the even
    /// position below it; and what is added before the right shift to round half away from zero:
    /// 2^(shift_right − 1) to a non-negative value (`round_up`), one less to a negative one
    /// (`round_down`), both 0 where shift_right is 0.
    const int32_t *multiplier_swapped, *round_up, *round_down;
    int32_t lo, hi, zero;
    /// Nonzero when some limit is not 2^21 (a channel shifted left); otherwise every shift_left
    /// is 0 and neither it nor limit is read.
    int32_t any_left;
} dlk_q31;

/// `dlk_requantize` of int32 sums in integers, sixteen lanes at a time: u = round_half_away(
/// ((x << shift_left)·multiplier + 2^30) >> 31, shift_right), out = saturate(clamp(u, lo, hi) +
/// zero). A group of sixteen with a sum at or past its limit runs `dlk_requantize` with the
/// float64 constants instead. Equal to `dlk_requantize` when its real_scale equals y_scale.
/// With AVX-512 BW and a width that is a multiple of 16, sixty-four sums at a time through the
/// rows, the last steps in 16-bit lanes (the same bytes).
void dlk_requantize_q31(const int32_t *x, long rows, long width, const dlk_q31 *q, const double *left, const double *multiplier,
                        const double *right, float real_scale, float lo, float hi, float y_scale, double zero, int is_signed, void *out);

/// ONNX Runtime's requantization of int32 sums on AVX-512 (as `dlk_requantize`): for each of
/// `rows` rows of `width` sums, out = saturate(round_half_even(clamp((float)x · scales[j],
/// qmin − zero, qmax − zero)) + zero) as int8 (`is_signed`) or uint8 bytes.
void dlk_requantize_scaled(const int32_t *x, long rows, long width, const float *scales, int32_t zero, int is_signed, void *out);

/// QuantizeLinear of float32 with one scale and zero point on AVX-512 (as `dlk_requantize`):
/// saturate(round_half_even(x / scale) + zero) to int8 (`is_signed`) or uint8 bytes, NaN to 0.
void dlk_quantize_f32(const float *x, long n, float scale, int32_t zero, int is_signed, void *out);

/// DequantizeLinear of int8 (`is_signed`) or uint8 bytes with one scale and zero point on
/// AVX-512 (as `dlk_requantize`): (float)(x − zero) · scale.
void dlk_dequantize_8(const void *x, long n, int is_signed, int32_t zero, float scale, float *out);

/// Portable C: dst (cols × rows bytes) = the transpose of src (rows × cols bytes).
void dlk_transpose_u8(const uint8_t *src, long rows, long cols, uint8_t *dst);

/// ai.dlkit.FixedPointMultiply on AVX-512 (as `dlk_requantize`): u of ((x − offset)·scale) into
/// `out` as double.
void dlk_fixed_point_multiply(const void *x, int kind, long rows, long width, double offset, double scale,
                              const double *left, const double *multiplier, const double *right, double *out);

/// y[i] = table[x[i]] for i < n (`table` holds 256 bytes; x and y may be the same buffer).
/// AVX-512 VBMI when the CPU has it and AVX-512 may run, else a plain loop: any CPU.
void dlk_lookup8(const uint8_t *x, long n, const uint8_t *table, uint8_t *y);

#endif
