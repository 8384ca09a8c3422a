// LSTM cell on AVX-512 (see include/ckernels_recurrent.h).
#include "ckernels_recurrent.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include "vecmath_avx512.h"

DLK_VM_TARGET void dlk_lstm_cell(const float *gates, long gate_stride, float *c, float *h, float *out,
                                 long out_stride, int rows, int hidden, int units) {
    for (int b = 0; b < rows; b++) {
        const float *g = gates + (size_t)b * gate_stride;
        float *cb = c + (size_t)b * hidden, *hb = h + (size_t)b * hidden, *ob = out + (size_t)b * out_stride;
        for (int j = 0; j < units; j += 16) {
            // The last block of a row takes only its valid lanes (masked loads read nothing else).
            __mmask16 m = units - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (units - j)) - 1);
            __m512 i = dlk_sigmoid_rational16(_mm512_maskz_loadu_ps(m, g + j));
            __m512 o = dlk_sigmoid_rational16(_mm512_maskz_loadu_ps(m, g + hidden + j));
            __m512 f = dlk_sigmoid_rational16(_mm512_maskz_loadu_ps(m, g + 2 * (size_t)hidden + j));
            __m512 z = dlk_tanh_rational16(_mm512_maskz_loadu_ps(m, g + 3 * (size_t)hidden + j));
            __m512 cn = _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, cb + j), _mm512_mul_ps(i, z));
            __m512 hn = _mm512_mul_ps(o, dlk_tanh_rational16(cn));
            _mm512_mask_storeu_ps(cb + j, m, cn);
            _mm512_mask_storeu_ps(hb + j, m, hn);
            _mm512_mask_storeu_ps(ob + j, m, hn);
        }
    }
}

#else
#include <math.h>
#include <stddef.h>
// Without x86-64 the callers never ask for this kernel; the plain loop keeps it correct anyway.
static float sigmoid1(float x) { return x < 0 ? expf(x) / (1 + expf(x)) : 1 / (1 + expf(-x)); }
void dlk_lstm_cell(const float *gates, long gate_stride, float *c, float *h, float *out, long out_stride,
                   int rows, int hidden, int units) {
    for (int b = 0; b < rows; b++) {
        const float *g = gates + (size_t)b * gate_stride;
        for (int j = 0; j < units; j++) {
            float cn = sigmoid1(g[2 * hidden + j]) * c[b * hidden + j] + sigmoid1(g[j]) * tanhf(g[3 * hidden + j]);
            float hn = sigmoid1(g[hidden + j]) * tanhf(cn);
            c[b * hidden + j] = cn;
            h[b * hidden + j] = hn;
            out[(size_t)b * out_stride + j] = hn;
        }
    }
}
#endif
