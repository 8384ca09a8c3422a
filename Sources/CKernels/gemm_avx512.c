// Packed-panel GEMM and stride-1 convolution on AVX-512 (see include/ckernels.h).
//
// One micro-kernel serves both: it keeps an mr × 32 block of C in registers (mr ≤ 12 rows, two
// 16-float vectors each: 24 of the 32 vector registers), and for every step p of the sum
// broadcasts mr values of a packed A block and multiplies them with one 32-float row of B.
// - GEMM: B's rows are the rows of a packed panel, 32 floats apart; the panels are packed once
//   per weight matrix (the plan keeps them), so a run never repacks weights.
// - Convolution: A is the weights, B's row p is 32 neighbouring input pixels of one row of
//   the padded input at the offset of tap p (channel, kernel row, kernel column), so the input
//   is read in place: no im2col matrix is built.
#include "ckernels.h"
#include "internal.h"
#include "ckernels_transformer.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#include "vecmath_avx512.h"
#define DLK_X86 1
#else
#define DLK_X86 0
#endif

#define DLK_MR 12
#define DLK_KC 512
#define DLK_MC 132

static int avx512_state = -1;
static pthread_once_t avx512_once = PTHREAD_ONCE_INIT;

static void detect_avx512(void) {
    int ok = 0;
#if DLK_X86
    __builtin_cpu_init();
    ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl");
#endif
    const char *env = getenv("DLKIT_AVX512");
    if (env && strcmp(env, "0") == 0) ok = 0;
    avx512_state = ok;
}

int dlk_cpu_vector_level(void) {
#if DLK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int dlk_avx512_available(void) {
    pthread_once(&avx512_once, detect_avx512);
    return avx512_state;
}

// Per-thread scratch (packed A chunks, offset tables, attention scores): see internal.h.
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
typedef struct { void *p; size_t bytes; } scratch_t;

static void scratch_free(void *v) {
    scratch_t *s = v;
    for (int i = 0; i < DLK_SCRATCH_SLOTS; i++) free(s[i].p);
    free(s);
}

static void scratch_init(void) { pthread_key_create(&scratch_key, scratch_free); }

void *dlk_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= DLK_SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, scratch_init);
    scratch_t *slots = pthread_getspecific(scratch_key);
    if (!slots) {
        slots = calloc(DLK_SCRATCH_SLOTS, sizeof *slots);
        if (!slots) return NULL;
        if (pthread_setspecific(scratch_key, slots) != 0) { free(slots); return NULL; }
    }
    scratch_t *s = &slots[slot];
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

size_t dlk_packed_b_count(int k, int n) {
    return (size_t)((n + DLK_PANEL - 1) / DLK_PANEL) * DLK_PANEL * (size_t)k;
}

void dlk_pack_b(int k, int n, const float *b, long ldb, int trans_b, float *out) {
    int panels = (n + DLK_PANEL - 1) / DLK_PANEL;
    for (int p = 0; p < panels; p++) {
        float *dst = out + (size_t)p * DLK_PANEL * k;
        int j0 = p * DLK_PANEL;
        int w = n - j0 < DLK_PANEL ? n - j0 : DLK_PANEL;
        for (int r = 0; r < k; r++) {
            float *row = dst + (size_t)r * DLK_PANEL;
            if (trans_b) {
                for (int j = 0; j < w; j++) row[j] = b[(size_t)(j0 + j) * ldb + r];
            } else {
                memcpy(row, b + (size_t)r * ldb + j0, (size_t)w * sizeof(float));
            }
            for (int j = w; j < DLK_PANEL; j++) row[j] = 0;
        }
    }
}

/// Row blocks of at most DLK_MR rows, as even as possible: block `i` of `count(m)`.
static inline int block_count(int m) { return (m + DLK_MR - 1) / DLK_MR; }
static inline void block_range(int m, int i, int *r0, int *mr) {
    int nb = block_count(m), base = m / nb, extra = m % nb;
    *r0 = i * base + (i < extra ? i : extra);
    *mr = base + (i < extra ? 1 : 0);
}

/// Part `part` of `parts` of m rows' packing blocks: blocks [*b0, *b1).
static void part_blocks(int m, int part, int parts, int *b0, int *b1) {
    const long long nb = block_count(m);
    *b0 = (int)(nb * part / parts);
    *b1 = (int)(nb * (part + 1) / parts);
}

void dlk_conv2d_part_channels(int m, int part, int parts, int *c0, int *c1) {
    *c0 = *c1 = 0;
    if (m <= 0 || parts < 1 || part < 0 || part >= parts) return;
    int b0, b1, r, mr;
    part_blocks(m, part, parts, &b0, &b1);
    if (b1 <= b0) return;
    block_range(m, b0, c0, &mr);
    block_range(m, b1 - 1, &r, &mr);
    *c1 = r + mr;
}

size_t dlk_packed_a_count(int m, int k) { return (size_t)m * (size_t)k; }

/// Packs rows [0, m) and sum steps [k0, k0 + kc) of A: block b (rows r0..r0+mr) lands at
/// out + r0·kc as kc groups of mr values.
static void pack_a_chunk(int m, int k0, int kc, const float *a, long lda, int trans_a, float *out) {
    int nb = block_count(m);
    for (int bi = 0; bi < nb; bi++) {
        int r0, mr;
        block_range(m, bi, &r0, &mr);
        float *dst = out + (size_t)r0 * kc;
        if (trans_a) {
            for (int p = 0; p < kc; p++) {
                const float *src = a + (size_t)(k0 + p) * lda + r0;
                for (int i = 0; i < mr; i++) dst[p * mr + i] = src[i];
            }
        } else {
            // Plain loops: this runs once per weight (convolution weights at plan time) and for
            // the transposed-A case; row-major A at run time goes through pack_a_chunk_avx512.
            for (int i = 0; i < mr; i++) {
                const float *src = a + (size_t)(r0 + i) * lda + k0;
                for (int p = 0; p < kc; p++) dst[p * mr + i] = src[p];
            }
        }
    }
}

void dlk_pack_a(int m, int k, const float *a, float *out) { pack_a_chunk(m, 0, k, a, k, 0, out); }

#if DLK_X86

#define DLK_TARGET __attribute__((target("avx512f,avx512dq,avx512vl,fma")))
#define DLK_INLINE static inline __attribute__((always_inline))


/// The shared micro-kernel. `mr` and `gather` are constants at every call site, so each
/// instantiation keeps its accumulators in registers.
/// - gather = 0: B row p at b + 32p (a packed panel, full width, zero-padded).
/// - gather = 1: B row p at b + off[p], only the valid lanes loaded (masked loads do not touch
///   memory of masked-off lanes, so a short last panel never reads past the input).
/// - c_factor: 0 to overwrite C, else the C term is read (masked) from `cs` (C itself, or a
///   residual laid out as C: same row stride) and added times c_factor.
/// - finish: apply biases and the activation (the last chunk of the sum).
DLK_INLINE DLK_TARGET void micro(const int mr, const int gather, int kc, const float *restrict ap,
                                 const float *restrict b, const int32_t *restrict off,
                                 float *c, const float *cs, long ldc, int valid, float c_factor, int finish,
                                 const dlk_epilogue *e, int row0, int col0) {
    __m512 x0[DLK_MR], x1[DLK_MR];
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < mr; i++) {
        x0[i] = _mm512_setzero_ps();
        x1[i] = _mm512_setzero_ps();
    }
    const __mmask16 m0 = dlk_lanes16(valid), m1 = dlk_lanes16(valid - 16);
    {
        // The epilogue reads or writes this C tile, often far out of cache (an LSTM's gate rows
        // written by the input projection many steps ago): fetch it while the sum runs.
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(c + (size_t)i * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + (size_t)i * ldc + 16), _MM_HINT_T0);
        }
    }
    int p = 0;
    if (mr <= 2) {
        // Few rows (a batch-1 product): two accumulators per vector, so consecutive steps do
        // not wait on each other's multiply-add latency.
        __m512 y0[2], y1[2];
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < mr; i++) {
            y0[i] = _mm512_setzero_ps();
            y1[i] = _mm512_setzero_ps();
        }
        for (; p + 1 < kc; p += 2) {
            __m512 b0, b1, b2, b3;
            if (gather) {
                const float *bp = b + off[p], *bq = b + off[p + 1];
                b0 = _mm512_maskz_loadu_ps(m0, bp);
                b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
                b2 = _mm512_maskz_loadu_ps(m0, bq);
                b3 = _mm512_maskz_loadu_ps(m1, bq + 16);
            } else {
                const float *bp = b + (size_t)p * DLK_PANEL;
                b0 = _mm512_loadu_ps(bp);
                b1 = _mm512_loadu_ps(bp + 16);
                b2 = _mm512_loadu_ps(bp + DLK_PANEL);
                b3 = _mm512_loadu_ps(bp + DLK_PANEL + 16);
            }
            const float *a = ap + (size_t)p * mr;
            _Pragma("clang loop unroll(full)")
            for (int i = 0; i < mr; i++) {
                __m512 av = _mm512_set1_ps(a[i]), aw = _mm512_set1_ps(a[mr + i]);
                x0[i] = _mm512_fmadd_ps(av, b0, x0[i]);
                x1[i] = _mm512_fmadd_ps(av, b1, x1[i]);
                y0[i] = _mm512_fmadd_ps(aw, b2, y0[i]);
                y1[i] = _mm512_fmadd_ps(aw, b3, y1[i]);
            }
        }
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < mr; i++) {
            x0[i] = _mm512_add_ps(x0[i], y0[i]);
            x1[i] = _mm512_add_ps(x1[i], y1[i]);
        }
    }
    for (; p < kc; p++) {
        __m512 b0, b1;
        if (gather) {
            const float *bp = b + off[p];
            b0 = _mm512_maskz_loadu_ps(m0, bp);
            b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
        } else {
            b0 = _mm512_loadu_ps(b + (size_t)p * DLK_PANEL);
            b1 = _mm512_loadu_ps(b + (size_t)p * DLK_PANEL + 16);
        }
        const float *a = ap + (size_t)p * mr;
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < mr; i++) {
            __m512 av = _mm512_set1_ps(a[i]);
            x0[i] = _mm512_fmadd_ps(av, b0, x0[i]);
            x1[i] = _mm512_fmadd_ps(av, b1, x1[i]);
        }
    }
    const __m512 alpha = _mm512_set1_ps(e->alpha);
    __m512 cb0 = _mm512_setzero_ps(), cb1 = _mm512_setzero_ps();
    if (finish && e->col_bias) {
        cb0 = _mm512_maskz_loadu_ps(m0, e->col_bias + col0);
        cb1 = _mm512_maskz_loadu_ps(m1, e->col_bias + col0 + 16);
    }
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < mr; i++) {
        float *row = c + (size_t)i * ldc;
        __m512 v0 = x0[i], v1 = x1[i];
        if (e->alpha != 1.0f) {
            v0 = _mm512_mul_ps(v0, alpha);
            v1 = _mm512_mul_ps(v1, alpha);
        }
        if (c_factor != 0.0f) {
            __m512 f = _mm512_set1_ps(c_factor);
            const float *src = cs + (size_t)i * ldc;
            v0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m0, src), f, v0);
            v1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m1, src + 16), f, v1);
        }
        if (finish) {
            if (e->row_bias) {
                __m512 rb = _mm512_set1_ps(e->row_bias[row0 + i]);
                v0 = _mm512_add_ps(v0, rb);
                v1 = _mm512_add_ps(v1, rb);
            }
            v0 = _mm512_add_ps(v0, cb0);
            v1 = _mm512_add_ps(v1, cb1);
            v0 = dlk_epilogue_activate16(v0, e, row0 + i, col0, m0);
            v1 = dlk_epilogue_activate16(v1, e, row0 + i, col0 + 16, m1);
        }
        _mm512_mask_storeu_ps(row, m0, v0);
        _mm512_mask_storeu_ps(row + 16, m1, v1);
    }
}


/// pack_a_chunk, with the row-major case as a transpose (dst[p·mr + i] = a[i·lda + p]) by 16 × 16
/// register blocks (`dlk_transpose_32`): the plain loop compiles to scatters, about 3x slower.
static DLK_TARGET void pack_a_chunk_avx512(int m, int k0, int kc, const float *a, long lda, int trans_a, float *out) {
    if (trans_a) {
        pack_a_chunk(m, k0, kc, a, lda, trans_a, out);
        return;
    }
    int nb = block_count(m);
    for (int bi = 0; bi < nb; bi++) {
        int r0, mr;
        block_range(m, bi, &r0, &mr);
        if (mr == 1) {
            // One row (a batch-1 product): the packed block is the row itself.
            memcpy(out + (size_t)r0 * kc, a + (size_t)r0 * lda + k0, (size_t)kc * sizeof(float));
        } else {
            dlk_transpose_32(a + (size_t)r0 * lda + k0, lda, out + (size_t)r0 * kc, mr, mr, kc);
        }
    }
}

#define DLK_MICRO_CASES(GATHER)                                                                      \
    switch (mr) {                                                                                    \
    case 1: micro(1, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 2: micro(2, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 3: micro(3, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 4: micro(4, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 5: micro(5, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 6: micro(6, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 7: micro(7, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 8: micro(8, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 9: micro(9, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break;   \
    case 10: micro(10, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break; \
    case 11: micro(11, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break; \
    default: micro(12, GATHER, kc, ap, b, off, c, cs, ldc, valid, cf, finish, e, row0, col0); break; \
    }

static DLK_TARGET void micro_panel(int mr, int kc, const float *ap, const float *b, float *c, long ldc,
                                   int valid, float cf, int finish, const dlk_epilogue *e, int row0, int col0) {
    const int32_t *off = NULL;
    const float *cs = c;
    DLK_MICRO_CASES(0)
}

/// `cs`: where the C term is read (`c`, or a residual laid out as it).
static DLK_TARGET void micro_gather(int mr, int kc, const float *ap, const float *b, const int32_t *off,
                                    float *c, const float *cs, long ldc, int valid, float cf, int finish,
                                    const dlk_epilogue *e, int row0, int col0) {
    DLK_MICRO_CASES(1)
}

/// Steps [p0, p0 + 16) of 16 rows of Bᵀ (`src`, row stride ldb; zeros past row h and step kc),
/// transposed: t[q] holds step p0 + q of the 16 rows. Meanwhile 16 lines of the block read next
/// (`next`, rows of `lines` lines each) are fetched into L2 in address order, lines
/// [line0, line0 + 16): read down 16 rows at once, Bᵀ streams poorly (each row a few KB, on a
/// page of its own, where the hardware prefetchers start over; a prefetch past its end does not
/// fault).
DLK_INLINE DLK_TARGET void load_transposed16(const float *src, long ldb, int h, int p0, int kc,
                                             const float *next, int line0, int lines, __m512 *t) {
    __m512 r[16];
    dlk_load_rows16(src + p0, ldb, h, dlk_lanes16(kc - p0), r);
    _Pragma("clang loop unroll(full)")
    for (int q = 0; q < 16; q++) {
        const int line = line0 + q;
        _mm_prefetch((const char *)(next + (size_t)(line / lines) * ldb + (line % lines) * 16), _MM_HINT_T1);
    }
    dlk_transpose16x16(r, t);
}

/// The panel chunk packed weights hold for columns [col0, col0 + valid) and sum steps
/// [k0, k0 + kc), from Bᵀ (`w` at row col0, column k0; zeros past `valid`), the next panel's
/// rows fetched meanwhile (`load_transposed16`).
static DLK_TARGET void transpose_panel(const float *w, long ldb, int valid, int kc, float *panel) {
    const int lines = (kc + 15) / 16;
    for (int half = 0; half < 2; half++) {
        for (int p0 = 0; p0 < kc; p0 += 16) {
            const int wd = kc - p0 < 16 ? kc - p0 : 16;
            __m512 t[16];
            // The next panel's 32 rows hold 2·kc lines; each half's steps fetch kc of them.
            load_transposed16(w + (size_t)16 * half * ldb, ldb, valid - 16 * half, p0, kc, w + (size_t)32 * ldb,
                              half * kc + p0, lines, t);
            float *d = panel + (size_t)p0 * DLK_PANEL + 16 * half;
            _Pragma("clang loop unroll(full)")
            for (int q = 0; q < 16; q++)
                if (q < wd) _mm512_store_ps(d + (size_t)q * DLK_PANEL, t[q]);
        }
    }
}

/// How sgemm_blocks finds B.
typedef enum {
    B_PANELS,      // packed panels: panel pi's chunk at b + pi·32·k + k0·32
    B_ROWS,        // k × n row-major, row stride ldb, read in place through the row offsets `off`
    B_TRANSPOSED,  // Bᵀ, n × k row-major, row stride ldb: each chunk of a panel transposed into scratch
} b_source;

/// The blocking every product shares: sum chunks of at most DLK_KC steps (whole when
/// k ≤ 2·DLK_KC), row groups of at most DLK_MC rows. One group's packed A (≤ 132 × 1024 floats)
/// stays in L2 while every 32-column panel of B streams past it, each panel reused from L1 by
/// all the group's row blocks. B_TRANSPOSED builds the panel chunk the packed weights would hold
/// (the same floats, zero past n), so every source gives the same bits.
static DLK_TARGET int sgemm_blocks(int m, int n, int k, const float *a, long lda, int trans_a, const float *b,
                                   long ldb, b_source src, const int32_t *off, float *c, long ldc, const dlk_epilogue *e) {
    const int kcMax = k <= 2 * DLK_KC ? k : DLK_KC;
    const int mcMax = m <= DLK_MC ? m : DLK_MC;
    float *apk = dlk_scratch(DLK_SCRATCH_GEMM, (size_t)mcMax * kcMax * sizeof(float));
    if (!apk) return -1;
    float *panel = NULL;
    if (src == B_TRANSPOSED && !(panel = dlk_scratch(DLK_SCRATCH_PANEL, (size_t)kcMax * DLK_PANEL * sizeof(float)))) return -1;
    const int panels = (n + DLK_PANEL - 1) / DLK_PANEL;
    for (int k0 = 0; k0 < k; k0 += kcMax) {
        const int kc = k - k0 < kcMax ? k - k0 : kcMax;
        const float cf = k0 > 0 ? 1.0f : (e->accumulate ? e->c_scale : 0.0f);
        const int finish = k0 + kc == k;
        for (int m0 = 0; m0 < m; m0 += mcMax) {
            const int mc = m - m0 < mcMax ? m - m0 : mcMax;
            const float *am = trans_a ? a + m0 : a + (size_t)m0 * lda;
            pack_a_chunk_avx512(mc, k0, kc, am, lda, trans_a, apk);
            const int nb = block_count(mc);
            for (int pi = 0; pi < panels; pi++) {
                const int col0 = pi * DLK_PANEL;
                const int valid = n - col0 < DLK_PANEL ? n - col0 : DLK_PANEL;
                const float *bp;
                if (src == B_ROWS) {
                    bp = b + (size_t)k0 * ldb + col0;
                } else if (src == B_TRANSPOSED) {
                    transpose_panel(b + (size_t)col0 * ldb + k0, ldb, valid, kc, panel);
                    bp = panel;
                } else {
                    bp = b + (size_t)pi * DLK_PANEL * k + (size_t)k0 * DLK_PANEL;
                }
                for (int bi = 0; bi < nb; bi++) {
                    int r0, mr;
                    block_range(mc, bi, &r0, &mr);
                    float *cp = c + (size_t)(m0 + r0) * ldc + col0;
                    if (src == B_ROWS) {
                        micro_gather(mr, kc, apk + (size_t)r0 * kc, bp, off, cp, cp, ldc, valid, cf, finish, e, m0 + r0, col0);
                    } else {
                        micro_panel(mr, kc, apk + (size_t)r0 * kc, bp, cp, ldc, valid, cf, finish, e, m0 + r0, col0);
                    }
                }
            }
        }
    }
    return 0;
}

DLK_TARGET int dlk_sgemm_packed(int m, int n, int k, const float *a, long lda, int trans_a,
                     const float *b_packed, float *c, long ldc, const dlk_epilogue *e) {
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) {
        // An empty sum: only the C term, biases and activation remain.
        for (int i = 0; i < m; i++) {
            float *row = c + (size_t)i * ldc;
            for (int j = 0; j < n; j++) {
                float v = e->accumulate ? e->c_scale * row[j] : 0.0f;
                if (e->row_bias) v += e->row_bias[i];
                if (e->col_bias) v += e->col_bias[j];
                row[j] = v;
            }
        }
        if (e->activation != DLK_ACT_NONE) {
            for (int i = 0; i < m; i++) {
                float *row = c + (size_t)i * ldc;
                for (int j = 0; j < n; j += 16) {
                    __mmask16 mk = dlk_lanes16(n - j);
                    _mm512_mask_storeu_ps(row + j, mk, dlk_epilogue_activate16(_mm512_maskz_loadu_ps(mk, row + j), e, i, j, mk));
                }
            }
        }
        return 0;
    }
    return sgemm_blocks(m, n, k, a, lda, trans_a, b_packed, 0, B_PANELS, NULL, c, ldc, e);
}

/// The packed micro-kernel's epilogue on 16 columns of one row (`x` the chunk's sum), in its order.
DLK_INLINE DLK_TARGET void epilogue16(__m512 x, float *row, __mmask16 mk, float cf, int finish, const dlk_epilogue *e,
                                      int i, int col) {
    if (e->alpha != 1.0f) x = _mm512_mul_ps(x, _mm512_set1_ps(e->alpha));
    if (cf != 0.0f) x = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, row), _mm512_set1_ps(cf), x);
    if (finish) {
        if (e->row_bias) x = _mm512_add_ps(x, _mm512_set1_ps(e->row_bias[i]));
        x = _mm512_add_ps(x, e->col_bias ? _mm512_maskz_loadu_ps(mk, e->col_bias + col) : _mm512_setzero_ps());
        x = dlk_epilogue_activate16(x, e, i, col, mk);
    }
    _mm512_mask_storeu_ps(row, mk, x);
}

/// dlk_sgemm_b_rows for one or two rows (a decoding step). The packed kernel's sums at mr ≤ 2,
/// column by column in its order (each chunk of the sum as two chains, even steps and odd, added
/// before an odd last step; chunk after chunk added into C; then the epilogue), but B is read a
/// whole row at a time, in order, instead of 32 columns down all k rows: with one row of A
/// there is nothing to reuse B for, so its one streaming read is the cost.
static DLK_TARGET int sgemm_b_rows_few(int m, int n, int k, const float *a, long lda, int trans_a,
                                       const float *b, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    enum { NB = 4096 };  // columns per pass
    float *acc = dlk_scratch(DLK_SCRATCH_PANEL, 4 * NB * sizeof(float));
    if (!acc) return -1;
    float *xs[2] = {acc, acc + 2 * NB}, *ys[2] = {acc + NB, acc + 3 * NB};
    const int kcMax = k <= 2 * DLK_KC ? k : DLK_KC;
#define A_AT(i, p) (trans_a ? a[(size_t)(p) * lda + (i)] : a[(size_t)(i) * lda + (p)])
    for (int j0 = 0; j0 < n; j0 += NB) {
        const int nb = n - j0 < NB ? n - j0 : NB;
        for (int k0 = 0; k0 < k; k0 += kcMax) {
            const int kc = k - k0 < kcMax ? k - k0 : kcMax;
            const float cf = k0 > 0 ? 1.0f : (e->accumulate ? e->c_scale : 0.0f);
            const int finish = k0 + kc == k;
            memset(acc, 0, (size_t)2 * m * NB * sizeof(float));
            // Steps p, p + 1 (and p + 2, p + 3: two steps per chain in one pass over the sums)
            // into the chains of even and odd steps.
            int p = 0;
            while (p + 1 < kc) {
                const int steps = p + 3 < kc ? 4 : 2;
                const float *r0 = b + (size_t)(k0 + p) * ldb + j0, *r1 = r0 + ldb, *r2 = r1 + ldb, *r3 = r2 + ldb;
                // Each row's few KB start a new page, where the hardware prefetchers start over:
                // fetch the rows 16 steps ahead into L2 (a prefetch past the end of B does not fault).
                const char *ahead = (const char *)(r0 + 16 * ldb);
                for (int i = 0; i < m; i++) {
                    const __m512 u0 = _mm512_set1_ps(A_AT(i, k0 + p)), w0 = _mm512_set1_ps(A_AT(i, k0 + p + 1));
                    const __m512 u1 = _mm512_set1_ps(steps == 4 ? A_AT(i, k0 + p + 2) : 0.0f);
                    const __m512 w1 = _mm512_set1_ps(steps == 4 ? A_AT(i, k0 + p + 3) : 0.0f);
                    float *x = xs[i], *y = ys[i];
                    for (int j = 0; j < nb; j += 16) {
                        const __mmask16 mk = dlk_lanes16(nb - j);
                        __m512 xv = _mm512_fmadd_ps(u0, _mm512_maskz_loadu_ps(mk, r0 + j), _mm512_load_ps(x + j));
                        __m512 yv = _mm512_fmadd_ps(w0, _mm512_maskz_loadu_ps(mk, r1 + j), _mm512_load_ps(y + j));
                        if (steps == 4) {
                            xv = _mm512_fmadd_ps(u1, _mm512_maskz_loadu_ps(mk, r2 + j), xv);
                            yv = _mm512_fmadd_ps(w1, _mm512_maskz_loadu_ps(mk, r3 + j), yv);
                        }
                        if (i == 0)
                            for (int q = 0; q < steps; q++) _mm_prefetch(ahead + (size_t)q * ldb * 4 + 4 * j, _MM_HINT_T1);
                        _mm512_store_ps(x + j, xv);
                        _mm512_store_ps(y + j, yv);
                    }
                }
                p += steps;
            }
            for (int i = 0; i < m; i++) {
                float *x = xs[i], *y = ys[i];
                for (int j = 0; j < nb; j += 16) _mm512_store_ps(x + j, _mm512_add_ps(_mm512_load_ps(x + j), _mm512_load_ps(y + j)));
                if (p < kc) {
                    const __m512 u = _mm512_set1_ps(A_AT(i, k0 + p));
                    const float *r = b + (size_t)(k0 + p) * ldb + j0;
                    for (int j = 0; j < nb; j += 16) {
                        const __mmask16 mk = dlk_lanes16(nb - j);
                        _mm512_store_ps(x + j, _mm512_fmadd_ps(u, _mm512_maskz_loadu_ps(mk, r + j), _mm512_load_ps(x + j)));
                    }
                }
                for (int j = 0; j < nb; j += 16)
                    epilogue16(_mm512_load_ps(x + j), c + (size_t)i * ldc + j0 + j, dlk_lanes16(nb - j), cf, finish, e, i, j0 + j);
            }
        }
    }
#undef A_AT
    return 0;
}

DLK_TARGET int dlk_sgemm_b_rows(int m, int n, int k, const float *a, long lda, int trans_a,
                                const float *b, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    if (m <= 0 || n <= 0 || k <= 0 || ldb < n) return -1;
    // Three rows or more read B through the micro-kernel in place (streamed row by row, 7 rows of
    // gpt2's prompt took 2.7x the packed time; gathered, 1.9x).
    if (m <= 2) return sgemm_b_rows_few(m, n, k, a, lda, trans_a, b, ldb, c, ldc, e);
    const int kcMax = k <= 2 * DLK_KC ? k : DLK_KC;
    // Row offsets of one sum chunk, relative to its first row; they must fit the int32 the
    // gathering micro-kernel takes.
    if ((long)kcMax * ldb > INT32_MAX) return -1;
    int32_t off[2 * DLK_KC];
    for (int p = 0; p < kcMax; p++) off[p] = (int32_t)(p * ldb);
    return sgemm_blocks(m, n, k, a, lda, trans_a, b, ldb, B_ROWS, off, c, ldc, e);
}

/// One sum chunk of dlk_sgemm_bt_rows for mr ≤ 12 rows of A (one row block: a decoding step, a
/// short prompt), 16 outputs at a time, with Bᵀ transposed in registers 16 × 16 at a time straight
/// into the multiply-adds in the micro-kernel's order (mr ≤ 2: even steps into one chain, odd into
/// another, added before an odd last step; else one chain per row): no panel is written and read
/// back. `av`: the chunk of A, row i at av + i·kcMax.
DLK_INLINE DLK_TARGET void bt_few_chunk(const int mr, int n, int kc, const float *av, int kcMax, const float *bt, long ldb,
                                        float *c, long ldc, float cf, int finish, const dlk_epilogue *e) {
    const int lines = (kc + 15) / 16;
    for (int j0 = 0; j0 < n; j0 += 16) {
        const int h = n - j0 < 16 ? n - j0 : 16;
        const float *w = bt + (size_t)j0 * ldb;
        __m512 x[DLK_MR], y[2], tail = _mm512_setzero_ps();
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < mr; i++) x[i] = _mm512_setzero_ps();
        y[0] = y[1] = _mm512_setzero_ps();
        for (int p0 = 0; p0 < kc; p0 += 16) {
            const int wd = kc - p0 < 16 ? kc - p0 : 16;
            __m512 t[16];
            // The next block of 16 rows holds kc lines: 16 fetched per step.
            load_transposed16(w, ldb, h, p0, kc, w + (size_t)16 * ldb, p0, lines, t);
            if (mr <= 2) {
                _Pragma("clang loop unroll(full)")
                for (int i = 0; i < mr; i++) {
                    const float *ap = av + i * kcMax + p0;
                    if (wd == 16) {
                        _Pragma("clang loop unroll(full)")
                        for (int q = 0; q < 16; q += 2) {
                            x[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[q]), t[q], x[i]);
                            y[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[q + 1]), t[q + 1], y[i]);
                        }
                    } else {
                        int q = 0;
                        for (; q + 1 < wd; q += 2) {
                            x[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[q]), t[q], x[i]);
                            y[i] = _mm512_fmadd_ps(_mm512_set1_ps(ap[q + 1]), t[q + 1], y[i]);
                        }
                        if (q < wd) tail = t[q];
                    }
                }
            } else if (wd == 16) {
                _Pragma("clang loop unroll(full)")
                for (int q = 0; q < 16; q++) {
                    _Pragma("clang loop unroll(full)")
                    for (int i = 0; i < mr; i++) x[i] = _mm512_fmadd_ps(_mm512_set1_ps(av[i * kcMax + p0 + q]), t[q], x[i]);
                }
            } else {
                for (int q = 0; q < wd; q++) {
                    _Pragma("clang loop unroll(full)")
                    for (int i = 0; i < mr; i++) x[i] = _mm512_fmadd_ps(_mm512_set1_ps(av[i * kcMax + p0 + q]), t[q], x[i]);
                }
            }
        }
        const __mmask16 mk = dlk_lanes16(h);
        _Pragma("clang loop unroll(full)")
        for (int i = 0; i < mr; i++) {
            __m512 v = x[i];
            if (mr <= 2) {
                v = _mm512_add_ps(v, y[i]);
                if (kc % 2) v = _mm512_fmadd_ps(_mm512_set1_ps(av[i * kcMax + kc - 1]), tail, v);
            }
            epilogue16(v, c + (size_t)i * ldc + j0, mk, cf, finish, e, i, j0);
        }
    }
}

/// dlk_sgemm_bt_rows for up to 12 rows of A: bt_few_chunk chunk after chunk.
static DLK_TARGET int sgemm_bt_few(int m, int n, int k, const float *a, long lda, int trans_a,
                                   const float *bt, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    const int kcMax = k <= 2 * DLK_KC ? k : DLK_KC;
    float *av = dlk_scratch(DLK_SCRATCH_PANEL, (size_t)m * kcMax * sizeof(float));
    if (!av) return -1;
    for (int k0 = 0; k0 < k; k0 += kcMax) {
        const int kc = k - k0 < kcMax ? k - k0 : kcMax;
        const float cf = k0 > 0 ? 1.0f : (e->accumulate ? e->c_scale : 0.0f);
        const int finish = k0 + kc == k;
        for (int i = 0; i < m; i++)
            for (int p = 0; p < kc; p++) av[i * kcMax + p] = trans_a ? a[(size_t)(k0 + p) * lda + i] : a[(size_t)i * lda + k0 + p];
        const float *b0 = bt + k0;
        switch (m) {
        case 1: bt_few_chunk(1, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 2: bt_few_chunk(2, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 3: bt_few_chunk(3, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 4: bt_few_chunk(4, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 5: bt_few_chunk(5, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 6: bt_few_chunk(6, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 7: bt_few_chunk(7, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 8: bt_few_chunk(8, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 9: bt_few_chunk(9, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 10: bt_few_chunk(10, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        case 11: bt_few_chunk(11, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        default: bt_few_chunk(12, n, kc, av, kcMax, b0, ldb, c, ldc, cf, finish, e); break;
        }
    }
    return 0;
}

/// The sums of the 16 lanes of each of acc[0..7], as lanes 0..7: lane l + 8 first, then + 4,
/// + 2 and + 1 (the order dlk_sgemm_bt_rows documents for one or two rows).
DLK_INLINE DLK_TARGET __m256 tree_sums8(const __m512 *acc) {
    __m256 t[8], x[4];
    _Pragma("clang loop unroll(full)")
    for (int r = 0; r < 8; r++) t[r] = _mm256_add_ps(_mm512_castps512_ps256(acc[r]), _mm512_extractf32x8_ps(acc[r], 1));
    // x[q]: the four sums l + 4 of row 2q in its low half, of row 2q + 1 in its high half.
    _Pragma("clang loop unroll(full)")
    for (int q = 0; q < 4; q++)
        x[q] = _mm256_add_ps(_mm256_permute2f128_ps(t[2 * q], t[2 * q + 1], 0x20), _mm256_permute2f128_ps(t[2 * q], t[2 * q + 1], 0x31));
    // Pairs l + 2: rows 0, 2 | 1, 3 and rows 4, 6 | 5, 7.
    const __m256 y0 = _mm256_add_ps(_mm256_shuffle_ps(x[0], x[1], _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(x[0], x[1], _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 y1 = _mm256_add_ps(_mm256_shuffle_ps(x[2], x[3], _MM_SHUFFLE(1, 0, 1, 0)), _mm256_shuffle_ps(x[2], x[3], _MM_SHUFFLE(3, 2, 3, 2)));
    // The last pair: rows 0, 2, 4, 6 | 1, 3, 5, 7, then put in order.
    const __m256 z = _mm256_add_ps(_mm256_shuffle_ps(y0, y1, _MM_SHUFFLE(2, 0, 2, 0)), _mm256_shuffle_ps(y0, y1, _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm256_permutevar8x32_ps(z, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/// Eight outputs (rows w[0..7] of Bᵀ, `h` of them real) of mr ≤ 2 rows of A (ar[i], contiguous).
DLK_INLINE DLK_TARGET void bt_dot8(const int mr, int k, const float *const *ar, const float *const *w, float *c, long ldc,
                                   int j0, int h, float cf, const dlk_epilogue *e) {
    __m512 acc[2][8];
    dlk_dot_lanes(mr, 8, k, ar, w, acc);
    _Pragma("clang loop unroll(full)")
    for (int i = 0; i < mr; i++)
        epilogue16(_mm512_zextps256_ps512(tree_sums8(acc[i])), c + (size_t)i * ldc + j0, dlk_lanes16(h), cf, 1, e, i, j0);
}

/// dlk_sgemm_bt_rows for one or two rows of A (a decoding step, a batch-1 linear layer): each
/// output is the dot product of A's row and a row of Bᵀ, both read in order, 8 outputs sharing
/// each load of A. No panel is packed and nothing is transposed: Bᵀ's one streaming read is the
/// cost. The order of the sums is documented at dlk_sgemm_bt_rows.
static DLK_TARGET int sgemm_bt_dot(int m, int n, int k, const float *a, long lda, int trans_a,
                                   const float *bt, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    const float *rows[2] = {a, a + lda};
    if (trans_a) {
        float *av = dlk_scratch(DLK_SCRATCH_PANEL, (size_t)m * k * sizeof(float));
        if (!av) return -1;
        for (int i = 0; i < m; i++) {
            for (int p = 0; p < k; p++) av[(size_t)i * k + p] = a[(size_t)p * lda + i];
            rows[i] = av + (size_t)i * k;
        }
    }
    const float cf = e->accumulate ? e->c_scale : 0.0f;
    for (int j0 = 0; j0 < n; j0 += 8) {
        const int h = n - j0 < 8 ? n - j0 : 8;
        const float *w[8];
        // Past the last row of Bᵀ, the last row again: computed, never stored.
        for (int r = 0; r < 8; r++) w[r] = bt + (size_t)(j0 + (r < h ? r : h - 1)) * ldb;
        // The first four lines of each of the next eight rows, fetched into L2 meanwhile: a
        // layer's weights are often read once a run, from memory, and these starts set the
        // hardware prefetcher going on each row. Fetching the rows whole took as many
        // instructions as the sums: a 784-512-512-10 MLP with its weights in cache went 0.042 ->
        // 0.049 ms at batch 1. The starts alone: 0.041 there, and MobileNetV3's 512 -> 1280
        // classifier (2.6 MB) 0.13-0.145 -> 0.10-0.13 ms in the model.
        if (j0 + 8 < n) {
            const int ahead = n - j0 - 8 < 8 ? n - j0 - 8 : 8;
            const long bytes = (long)k * 4 < 4 * 64 ? (long)k * 4 : 4 * 64;
            for (int r = 0; r < ahead; r++) {
                const char *next = (const char *)(bt + (size_t)(j0 + 8 + r) * ldb);
                for (long o = 0; o < bytes; o += 64) _mm_prefetch(next + o, _MM_HINT_T1);
            }
        }
        if (m == 1) bt_dot8(1, k, rows, w, c, ldc, j0, h, cf, e);
        else bt_dot8(2, k, rows, w, c, ldc, j0, h, cf, e);
    }
    return 0;
}

/// One or two rows of A: lane l (0..15) of a 16-lane sum adds a_p·b_p for the p ≡ l (mod 16) in
/// order of p, by fused multiply-adds from +0 (a last partial 16 adds 0·0 in its empty lanes),
/// and the lanes are added as a tree: l + 8, then + 4, + 2, + 1 (tree_sums8). More rows: the
/// packed micro-kernel's order (B transposed in registers, 16 × 16 at a time).
DLK_TARGET int dlk_sgemm_bt_rows(int m, int n, int k, const float *a, long lda, int trans_a,
                                 const float *bt, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    if (m <= 0 || n <= 0 || k <= 0 || ldb < k) return -1;
    if (m <= 2) return sgemm_bt_dot(m, n, k, a, lda, trans_a, bt, ldb, c, ldc, e);
    if (m <= DLK_MR) return sgemm_bt_few(m, n, k, a, lda, trans_a, bt, ldb, c, ldc, e);
    return sgemm_blocks(m, n, k, a, lda, trans_a, bt, ldb, B_TRANSPOSED, NULL, c, ldc, e);
}

/// Copies the output pixels among flat positions [t0, t0 + count) of the padded plane (row
/// t / wp, column t % wp; a pixel when the column is under wout) between rows of `tile` (32
/// floats apart, position t0 at column 0) and the output (rows y_stride apart, pixel (r, q) at
/// r·wout + q), for mr output channels. Into the tile, positions that are no pixel become 0.
static DLK_TARGET void wrapped_copy(int into_tile, float *tile, int mr, float *y, long y_stride,
                                    long long t0, int count, int wp, int wout) {
    int j = 0;
    while (j < count) {
        const long long t = t0 + j, r = t / wp;
        const int q = (int)(t - r * wp);
        const int len = wp - q < count - j ? wp - q : count - j;
        const int n = q < wout ? (wout - q < len ? wout - q : len) : 0;
        for (int i = 0; i < mr; i++) {
            float *tp = tile + (size_t)i * DLK_PANEL + j, *yp = y + (size_t)i * y_stride + r * wout + q;
            for (int c = 0; c < n; c += 16) {
                const __mmask16 mk = dlk_lanes16(n - c);
                if (into_tile) _mm512_mask_storeu_ps(tp + c, mk, _mm512_maskz_loadu_ps(mk, yp + c));
                else _mm512_mask_storeu_ps(yp + c, mk, _mm512_maskz_loadu_ps(mk, tp + c));
            }
            if (into_tile) for (int c = n; c < len; c++) tp[c] = 0.0f;
        }
        j += len;
    }
}

/// dlk_conv2d_direct for rows shorter than a tile: the 32-pixel tiles run on across the ends of the
/// padded plane's rows, so one tile covers several output rows (flat position t is output
/// pixel (t / wp, t % wp), a pixel when t % wp < wout, and the columns between are computed
/// and dropped). The last tile ends at the last pixel, so every read x[t + off[p]] stays in the
/// plane. Each tile is computed into a buffer and its pixels copied out.
static DLK_TARGET void conv2d_s1_wrapped(const float *x, int wp, int wout, int y0, int y1, int k,
                                         const int32_t *off, const float *w_packed, int m, int b0, int b1,
                                         float *y, long y_stride, const dlk_epilogue *e) {
    float tile[DLK_MR * DLK_PANEL];
    const long long end = (long long)(y1 - 1) * wp + wout;
    for (long long t0 = (long long)y0 * wp; t0 < end; t0 += DLK_PANEL) {
        const int valid = end - t0 < DLK_PANEL ? (int)(end - t0) : DLK_PANEL;
        for (int bi = b0; bi < b1; bi++) {
            int r0, mr;
            block_range(m, bi, &r0, &mr);
            float *yb = y + (size_t)r0 * y_stride;
            // The epilogue adds c_scale times the residual: in the output, or at c_source.
            if (e->accumulate) {
                wrapped_copy(1, tile, mr, e->c_source ? (float *)e->c_source + (size_t)r0 * y_stride : yb, y_stride, t0, valid, wp, wout);
            }
            micro_gather(mr, k, w_packed + (size_t)r0 * k, x + t0, off, tile, tile, DLK_PANEL, valid,
                         e->accumulate ? e->c_scale : 0.0f, 1, e, r0, 0);
            wrapped_copy(0, tile, mr, yb, y_stride, t0, valid, wp, wout);
        }
    }
}

DLK_TARGET int dlk_conv2d_direct(const float *x, int cin, int hp, int wp, int kh, int kw, int sh, int sw,
                                 int dh, int dw, int hout, int wout, int y0, int y1,
                                 const float *w_packed, int m, int part, int parts, float *y, long y_stride,
                                 const dlk_epilogue *e) {
    if (sh < 1 || sw < 1 || parts < 1 || part < 0 || part >= parts) return -1;
    // Strided, x is split into sh·sw phase planes per channel (`dlk_pad2d_phases`): tap (i, j) of
    // output pixel (r, q) is row r + (i·dh) / sh, column q + (j·dw) / sw of phase plane
    // ((i·dh) mod sh, (j·dw) mod sw). So every stride reads as stride 1 does, output pixel (r, q)
    // at r·rw + q with rows rw floats apart, each tap at a fixed offset from it.
    const int rh = (hp + sh - 1) / sh, rw = (wp + sw - 1) / sw;
    const long long phase_plane = (long long)rh * rw, plane = phase_plane * sh * sw;
    if ((long long)cin * plane > INT32_MAX) return -1;
    const int k = cin * kh * kw;
    int b0, b1;
    part_blocks(m, part, parts, &b0, &b1);
    if (m <= 0 || k <= 0 || y1 <= y0 || b1 <= b0) return 0;
    int32_t *off = dlk_scratch(DLK_SCRATCH_GEMM, (size_t)k * sizeof(int32_t));
    if (!off) return -1;
    int p = 0;
    for (int ci = 0; ci < cin; ci++)
        for (int i = 0; i < kh; i++)
            for (int j = 0; j < kw; j++) {
                const int row = i * dh, col = j * dw;
                const long long phase = (long long)(row % sh) * sw + col % sw;
                off[p++] = (int32_t)(ci * plane + phase * phase_plane + (long long)(row / sh) * rw + col / sw);
            }
    // A row's last tile is partly idle (most of it, on rows of a few pixels): wrap the tiles when
    // that takes fewer of them. Each wrapped tile is copied out, which a short sum (under 64
    // steps) does not earn back unless a fifth of the tiles go. (DNSMOS's 3 × 3 convolutions on
    // rows of 161 pixels: 6 tiles a row, 5.1 wrapped, 13% faster.) A column bias is per pixel
    // of a row: not there.
    const long long row_tiles = (long long)(y1 - y0) * ((wout + DLK_PANEL - 1) / DLK_PANEL);
    const long long flat_tiles = ((long long)(y1 - y0 - 1) * rw + wout + DLK_PANEL - 1) / DLK_PANEL;
    if (!e->col_bias && flat_tiles < row_tiles && (k >= 64 || flat_tiles * 5 <= row_tiles * 4)) {
        conv2d_s1_wrapped(x, rw, wout, y0, y1, k, off, w_packed, m, b0, b1, y, y_stride, e);
        return 0;
    }
    const float cf = e->accumulate ? e->c_scale : 0.0f;
    // A row goes in spans of 16 tiles: each block of output channels sweeps a span's tiles
    // before the next block, so a few channels' outputs are written at a time, not all of them
    // 32 pixels each, and a block's weights are reused from L1 across the span. (MobileNetV2's
    // 16 -> 96 channel 1 x 1 convolution on a 112 x 112 image, flattened to one row:
    // 0.84 -> 0.55 ms; the whole model 9.48 -> 9.11 ms.)
    const int span = 16 * DLK_PANEL;
    for (int r = y0; r < y1; r++) {
        for (int s0 = 0; s0 < wout; s0 += span) {
            const int s1 = wout - s0 < span ? wout : s0 + span;
            for (int bi = b0; bi < b1; bi++) {
                int r0, mr;
                block_range(m, bi, &r0, &mr);
                for (int q0 = s0; q0 < s1; q0 += DLK_PANEL) {
                    const int valid = wout - q0 < DLK_PANEL ? wout - q0 : DLK_PANEL;
                    const float *b = x + (size_t)r * rw + q0;
                    const size_t at = (size_t)r0 * y_stride + (size_t)r * wout + q0;
                    micro_gather(mr, k, w_packed + (size_t)r0 * k, b, off, y + at, e->c_source ? e->c_source + at : y + at,
                                 y_stride, valid, cf, 1, e, r0, 0);
                }
            }
        }
    }
    return 0;
}

#else  // not x86-64: dlk_avx512_available() is 0 and these are never called.

int dlk_sgemm_b_rows(int m, int n, int k, const float *a, long lda, int trans_a,
                     const float *b, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)trans_a; (void)b; (void)ldb; (void)c; (void)ldc; (void)e;
    return -1;
}

int dlk_sgemm_bt_rows(int m, int n, int k, const float *a, long lda, int trans_a,
                      const float *bt, long ldb, float *c, long ldc, const dlk_epilogue *e) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)trans_a; (void)bt; (void)ldb; (void)c; (void)ldc; (void)e;
    return -1;
}

int dlk_sgemm_packed(int m, int n, int k, const float *a, long lda, int trans_a,
                     const float *b_packed, float *c, long ldc, const dlk_epilogue *e) {
    (void)m; (void)n; (void)k; (void)a; (void)lda; (void)trans_a; (void)b_packed; (void)c; (void)ldc; (void)e;
    return -1;
}

int dlk_conv2d_direct(const float *x, int cin, int hp, int wp, int kh, int kw, int sh, int sw, int dh, int dw,
                      int hout, int wout, int y0, int y1,
                      const float *w_packed, int m, int part, int parts, float *y, long y_stride, const dlk_epilogue *e) {
    (void)x; (void)cin; (void)hp; (void)wp; (void)kh; (void)kw; (void)sh; (void)sw; (void)dh; (void)dw; (void)hout; (void)wout;
    (void)y0; (void)y1; (void)w_packed; (void)m; (void)part; (void)parts; (void)y; (void)y_stride; (void)e;
    return -1;
}

#endif
