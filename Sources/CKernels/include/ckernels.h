// CPU micro-kernels written in C so that they can use AVX-512 where the CPU has it: Swift has no
// per-function target attributes, and the package builds for baseline x86-64 (SSE2), so Swift
// SIMD code cannot use wider vectors. Everything here is chosen at run time
// (`dlk_avx512_available`); callers fall back to their portable path when it returns 0.
//
// Private plumbing of DLKernels: nothing else imports this module.
#ifndef DLKIT_CKERNELS_H
#define DLKIT_CKERNELS_H

#include <stddef.h>
#include <stdint.h>

/// 1 when the AVX-512 kernels may run: the CPU and the OS support AVX-512F/DQ/VL, and the
/// environment does not say `DLKIT_AVX512=0`. Read once.
int dlk_avx512_available(void);
/// What the CPU itself offers, whatever DLKIT_AVX512 says: 2 for AVX-512 (F, CD, BW, DQ, VL: the
/// SkylakeX level), 1 for AVX2 with FMA, 0 for less or another architecture.
int dlk_cpu_vector_level(void);

/// Keeps freed heap memory for reuse where the C library allows it (glibc's mallopt): blocks under
/// `mmap_min` bytes come from the heap, and up to `trim_min` free bytes at its top stay mapped.
/// Returns 1 when both settings took, 0 otherwise (another C library: nothing changes).
int dlk_heap_keep_freed(long mmap_min, long trim_min);

/// Columns per panel of a packed B matrix.
#define DLK_PANEL 32

/// What happens to each result element after the product: `v = alpha * (A·B)`, then
/// `v += c_scale * C` when `accumulate` (C is what the output held before), then
/// `v += row_bias[i] + col_bias[j]` (each when not NULL), then the activation.
typedef struct {
    float alpha;
    float c_scale;
    int accumulate;
    const float *row_bias;
    const float *col_bias;
    /// DLK_ACT_*; `act_a`/`act_b` are LeakyRelu's slope, Clip's min and max, HardSigmoid's
    /// alpha and beta.
    int activation;
    float act_a, act_b;
    /// DLK_ACT_PRELU's slopes, indexed as the biases: per row (`row_slope[i]`, output channels
    /// as rows) or per column (`col_slope[j]`); one of them is set.
    const float *row_slope;
    const float *col_slope;
    /// When set (dlk_conv2d_direct only), `accumulate` reads its C term here instead of in the
    /// output: a residual input laid out as the call's output (same offsets from `y`), so it is
    /// not copied into the output first. Other kernels ignore it: their callers copy.
    const float *c_source;
} dlk_epilogue;

/// Activations of fused kernels and of `dlk_activate`:
/// relu max(x, 0); leaky max(x < 0 ? a·x : x, b) (b −∞ for plain LeakyRelu); clip min(max(x, a), b); sigmoid 1/(1 + e⁻ˣ);
/// silu x·sigmoid(x); hard sigmoid max(0, min(1, a·x + b)); hard swish x·max(0, min(1, x/6 + 1/2));
/// prelu x < 0 ? s·x : x with a slope s per channel (the epilogue's row_slope or col_slope: fused
/// kernels with an epilogue only, never `dlk_activate` or the depthwise kernels).
/// NaN stays NaN in every one.
enum {
    DLK_ACT_NONE = 0, DLK_ACT_RELU = 1, DLK_ACT_LEAKY_RELU = 2, DLK_ACT_CLIP = 3, DLK_ACT_SIGMOID = 4,
    DLK_ACT_SILU = 5, DLK_ACT_HARD_SIGMOID = 6, DLK_ACT_HARD_SWISH = 7, DLK_ACT_GELU = 8, DLK_ACT_PRELU = 9
};

/// `y[i] = activation(x[i] + bias)` for `n` floats (`y` may be `x`); `a`, `b` as in
/// `dlk_epilogue`. Returns 0, or -1 without AVX-512 (nothing written).
int dlk_activate(int activation, float a, float b, float bias, const float *x, float *y, long n);

/// `y[i] = (clamp(round_half_even(x[i] / scale) + zero, qmin, qmax) - zero) * scale` for `n` floats
/// (`y` may be `x`): ONNX QuantizeLinear then DequantizeLinear, per tensor. NaN gives `-zero·scale`
/// (NaN quantises to 0). Returns 0, or -1 without AVX-512 (nothing written).
/// `y[i] = tanh(x[i])` for `n` floats (`y` may be `x`), as the attention and LSTM kernels compute
/// it. Returns 0, or -1 without AVX-512 (nothing written).
int dlk_tanh(const float *x, float *y, long n);
/// The error function (within 2 ulp), same contract as dlk_tanh.
int dlk_erf(const float *x, float *y, long n);

int dlk_quantize_dequantize(const float *x, float *y, long n, float scale, float zero, float qmin, float qmax);

/// Floats `dlk_pack_b` writes for a k × n matrix: ceil(n / 32) panels of k × 32.
size_t dlk_packed_b_count(int k, int n);

/// Packs B (k × n) into panels of 32 columns: panel p holds columns [32p, 32p + 32) as k rows of
/// 32 floats, missing columns zero. With `trans_b`, `b` holds Bᵀ (n × k, row stride ldb).
void dlk_pack_b(int k, int n, const float *b, long ldb, int trans_b, float *out);

/// C (m × n, row stride ldc) = epilogue(A·B), B packed by `dlk_pack_b` (`b_packed` points at the
/// panel holding column 0 of this call, so a caller can split the panels between threads). A is
/// m × k with row stride lda, or with `trans_a` k × m. Requires AVX-512 (see above).
/// Returns 0, or -1 when its scratch memory could not be had (C untouched; use another path).
int dlk_sgemm_packed(int m, int n, int k, const float *a, long lda, int trans_a,
                     const float *b_packed, float *c, long ldc, const dlk_epilogue *e);

/// `dlk_sgemm_packed` with B not packed: k × n row-major, row stride ldb (≥ n), read where it
/// is (a weight mapped from a file is never copied), each element getting the bits the packed
/// kernel gives. Returns 0, or -1 (C untouched) when its scratch could not be had, a size is 0
/// or a sum chunk's row offsets (up to 1024 · ldb) leave int32.
int dlk_sgemm_b_rows(int m, int n, int k, const float *a, long lda, int trans_a,
                     const float *b, long ldb, float *c, long ldc, const dlk_epilogue *e);

/// `dlk_sgemm_packed` with B given as Bᵀ (n × k row-major, row stride ldb ≥ k: a fully connected
/// layer's weights) and not packed, so the weight is never copied whole. One or two rows of A:
/// each output is a dot product of A's row and a row of Bᵀ read in order, in its own documented
/// order of sums (at the definition; not the packed kernel's). More rows: each 16 × 16 block of
/// Bᵀ is transposed in registers as it is needed, and every element gets the bits of the packed
/// kernel. Returns 0, or -1 (C untouched) when its scratch could not be had or a size is 0.
int dlk_sgemm_bt_rows(int m, int n, int k, const float *a, long lda, int trans_a,
                      const float *bt, long ldb, float *c, long ldc, const dlk_epilogue *e);

/// Floats `dlk_pack_a` writes for an m × k matrix (m · k: the rows regrouped, nothing added).
size_t dlk_packed_a_count(int m, int k);

/// Packs A (m × k, row stride k: convolution weights [cout][cin·kh·kw]) in the row blocks the
/// convolution kernel walks.
void dlk_pack_a(int m, int k, const float *a, float *out);

/// A convolution of one image and group, written for output rows [y0, y1).
/// - x: the input, already padded: [cin][hp][wp]. Output pixel (r, q) reads padded column
///   q·sw + j·dw of row r·sh + i·dh for kernel tap (i, j). With a stride above 1 the padded
///   image is split into phase planes, as `dlk_pad2d_phases` writes them.
/// - w_packed: the m × (cin·kh·kw) weights packed by `dlk_pack_a`.
/// - y: the output, [m][hout][wout] with channel stride `y_stride` floats; the epilogue's
///   row_bias is per output channel. Requires AVX-512.
/// - Tiles are 32 pixels of a row, or, where that leaves many lanes idle, 32 positions of the
///   rows laid end to end (the columns between rows computed and dropped).
/// - part, parts: only the output channels of part `part` of `parts` (0 ≤ part < parts) are
///   written: a run of whole packing blocks, those `dlk_conv2d_part_channels` names. (Images of
///   one or two output rows, as a 1 × 1 convolution's flattened plane, split over workers so.)
/// - Returns 0, or -1 when an offset would not fit in 32 bits or scratch memory could not be had
///   (nothing written; the caller then uses its other path).
int dlk_conv2d_direct(const float *x, int cin, int hp, int wp, int kh, int kw, int sh, int sw, int dh, int dw,
                      int hout, int wout, int y0, int y1,
                      const float *w_packed, int m, int part, int parts, float *y, long y_stride, const dlk_epilogue *e);

/// The output channels [*c0, *c1) that part `part` of `parts` of `dlk_conv2d_direct` writes for m
/// channels (empty when there are fewer packing blocks than parts).
void dlk_conv2d_part_channels(int m, int part, int parts, int *c0, int *c1);

#endif
