import CKernels

/// Optimizer steps over a parameter's buffers, vectorised where the CPU allows it, with the
/// bits of the scalar loops in `DLTraining.Optimizer` (each operation rounded on its own, in
/// PyTorch's order).
public enum OptimizerKernels {
    /// One Adam/AdamW step in place (see `dlk_adam_update` for the formulas): `p` times `decay`,
    /// then the moments `m`, `v` (and the amsgrad maximum `vmax`) and `p` updated from `g`.
    /// Each element on its own, so the parameter splits over the runtime's workers (in runs of
    /// whole 16-float vectors) with the same bits.
    /// - Returns: false when it did not run (no AVX-512, or AVX-512 off): nothing was written.
    public static func adam(
        count n: Int, param p: UnsafeMutablePointer<Float>, grad g: UnsafePointer<Float>,
        expAvg m: UnsafeMutablePointer<Float>, expAvgSq v: UnsafeMutablePointer<Float>, maxExpAvgSq vmax: UnsafeMutablePointer<Float>?,
        decay: Float, w1: Float, b2: Float, w2: Float, bc2Sqrt: Float, eps: Float, a: Float
    ) -> Bool {
        guard CPUFeatures.avx512 else { return false }
        // Per element: the parameter, gradient and moments read, three of them written.
        ParallelFor.runInVectors(n, cost: vmax == nil ? 7 : 9) { r in
            let i = r.lowerBound
            _ = dlk_adam_update(r.count, p + i, g + i, m + i, v + i, vmax.map { $0 + i }, decay, w1, b2, w2, bc2Sqrt, eps, a)
        }
        return true
    }
}
