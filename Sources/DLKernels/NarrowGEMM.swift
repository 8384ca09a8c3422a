import CKernels

/// `C = act(alpha · A · Wᵀ + bias)` for few output columns (n ≤ 16), on AVX-512: a classifier
/// layer (16384 inputs, 10 classes). W is used as stored (n × k rows, a Gemm with transB), so
/// the weights are read at their own size instead of as a 32-column packed panel (3.2 times
/// larger, with 3.2 times the multiply-adds, for n = 10). Rows of A split over the workers.
public enum NarrowGEMM {
    /// True when ``multiply(m:n:k:a:lda:w:ldw:c:ldc:alpha:columnBias:activation:)`` takes the shape.
    public static func applies(n: Int, k: Int) -> Bool {
        PackedMatrix.isSupported && n >= 1 && n <= 16 && k >= 1024 && k <= Int(Int32.max)
    }

    /// - Returns: false when it did not run (nothing written).
    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                                w: UnsafePointer<Float>, ldw: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                                alpha: Float, columnBias: UnsafePointer<Float>?, activation: Activation) -> Bool {
        guard applies(n: n, k: k), m >= 0, m <= Int(Int32.max) else { return false }
        guard m > 0 else { return true }
        let e = GEMMEpilogue(alpha: alpha, columnBias: columnBias, activation: activation).c()
        let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: m)
        failed.initialize(repeating: false)
        defer { failed.deallocate() }
        ParallelFor.run(m, cost: n * k) { lo, hi in
            var local = e
            if dlk_sgemm_nt_narrow(Int32(hi - lo), Int32(n), Int32(k), a + lo * lda, lda, w, ldw, c + lo * ldc, ldc, &local) != 0 {
                failed[lo] = true
            }
        }
        return !failed.contains(true)
    }
}
