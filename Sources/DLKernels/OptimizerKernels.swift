import CKernels

/// Optimizer steps over a parameter's buffers, vectorised where the CPU allows it, with the
/// bits of the scalar loops in `DLTraining.Optimizer` (each operation rounded on its own, in
/// PyTorch's order).
public enum OptimizerKernels {
    /// One Adam/AdamW step in place (see `dlk_adam_update` for the formulas): `p` times `decay`,
    /// then the moments `m`, `v` (and the amsgrad maximum `vmax`) and `p` updated from `g`.
    /// - Returns: false when it did not run (no AVX-512, or AVX-512 off): nothing was written.
    public static func adam(
        count n: Int, param p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>,
        expAvg m: UnsafeMutablePointer<Float>, expAvgSq v: UnsafeMutablePointer<Float>, maxExpAvgSq vmax: UnsafeMutablePointer<Float>?,
        decay: Float, w1: Float, b2: Float, w2: Float, bc2Sqrt: Float, eps: Float, a: Float
    ) -> Bool {
        guard CPUFeatures.avx512 else { return false }
        return dlk_adam_update(n, p, g, m, v, vmax, decay, w1, b2, w2, bc2Sqrt, eps, a) == 0
    }
}
