#ifndef CKERNELS_OPTIMIZER_H
#define CKERNELS_OPTIMIZER_H

/// One Adam/AdamW step over n parameters in place, in PyTorch's order with every operation
/// rounded on its own (no fused multiply-adds), so the bits equal the scalar loop's:
///   p = p·decay (AdamW's weight decay; 1 leaves p)
///   m = lerp(m, g, w1)  (a + w1·(g − m) when |w1| < 0.5, else g − (g − m)·(1 − w1))
///   v = v·b2;  v = v + (w2·g)·g
///   s = v, or with vmax: vmax = (v ≥ vmax ? v : vmax), s = vmax  (amsgrad)
///   p = p + a·(m / (√s / bc2_sqrt + eps))
/// - vmax: null without amsgrad.
/// - Returns 0, or -1 without AVX-512 (nothing written).
int dlk_adam_update(long n, float *p, const float *g, float *m, float *v, float *vmax, float decay, float w1,
                    float b2, float w2, float bc2_sqrt, float eps, float a);

#endif
