import DLKernels
import DLTensor

extension LinearKernels {
    /// Gemm with transB and few output columns (a classifier) on ``NarrowGEMM``, the weights read
    /// as stored. Takes no C, or a C of shape [N] / [1, N] with beta 1 (the column bias).
    /// Returns false when it did not run (nothing written; the caller takes its other paths).
    static func gemmNarrow(a: Tensor, w: Tensor, c: Tensor?, alpha: Float, beta: Float, m: Int, n: Int, k: Int,
                           out: inout Tensor, activation: Activation) -> Bool {
        if let c, beta != 0 {
            guard beta == 1, c.shape.last == n, c.shape.dropLast().allSatisfy({ $0 == 1 }) else { return false }
        }
        let bias = c.flatMap { beta != 0 ? $0 : nil }
        return out.withUnsafeMutableBufferPointer(as: Float.self) { po -> Bool in
            a.withUnsafeBufferPointer(as: Float.self) { pa -> Bool in
                w.withUnsafeBufferPointer(as: Float.self) { pw -> Bool in
                    guard let y = po.baseAddress, let ap = pa.baseAddress, let wp = pw.baseAddress else { return false }
                    func run(_ cb: UnsafePointer<Float>?) -> Bool {
                        NarrowGEMM.multiply(m: m, n: n, k: k, a: ap, lda: k, w: wp, ldw: k, c: y, ldc: n,
                                            alpha: alpha, columnBias: cb, activation: activation)
                    }
                    guard let bias else { return run(nil) }
                    return bias.withUnsafeBufferPointer(as: Float.self) { pb -> Bool in
                        guard let cb = pb.baseAddress else { return false }
                        return run(cb)
                    }
                }
            }
        }
    }
}
