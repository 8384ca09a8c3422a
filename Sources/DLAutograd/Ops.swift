import DLKernels
import DLTensor

/// Float32 array helpers the gradient rules are written with.
enum Ops {
    static func floats(_ t: Tensor) -> [Float] {
        t.dtype == .float32 ? t.scalars(as: Float.self) : t.converted(to: .float32).scalars(as: Float.self)
    }

    static func tensor(_ shape: [Int], _ values: [Float]) -> Tensor { Tensor(shape: shape, scalars: values) }

    /// The tensor itself when float32, else converted.
    static func float32(_ t: Tensor) -> Tensor { t.dtype == .float32 ? t : t.converted(to: .float32) }

    static func add(_ a: Tensor, _ b: Tensor) -> Tensor {
        var out = a
        b.withUnsafeBufferPointer(as: Float.self) { bb in
            out.withUnsafeMutableBufferPointer(as: Float.self) { o in
                for i in 0..<min(o.count, bb.count) { o[i] += bb[i] }
            }
        }
        return out
    }

    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// Expands `values` of `shape` to `outShape` (numpy broadcasting, walked by `BroadcastPlan`).
    /// The shapes come from a forward run that broadcast them; were they not to broadcast, the
    /// values come back unchanged and the gradient's shape check reports it.
    static func broadcast(_ values: [Float], from shape: [Int], to outShape: [Int]) -> [Float] {
        if shape == outShape { return values }
        guard let plan = try? BroadcastPlan(outShape: outShape, operands: [shape]) else { return values }
        var out = [Float](repeating: 0, count: plan.outputCount)
        let n = plan.rowLength, step = plan.rowStrides[0]
        values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                plan.forEachRow { at, off in
                    let start = off[0]
                    for j in 0..<n { o[at + j] = v[start + j * step] }
                }
            }
        }
        return out
    }

    /// Sums `values` of `outShape` down to `shape` (the adjoint of `broadcast`: the gradient of a
    /// broadcast operand, reduced over the axes it was stretched along).
    static func reduce(_ values: [Float], from outShape: [Int], to shape: [Int]) -> [Float] {
        if shape == outShape { return values }
        guard let plan = try? BroadcastPlan(outShape: outShape, operands: [shape]) else { return values }
        var out = [Float](repeating: 0, count: shape.reduce(1, *))
        let n = plan.rowLength, step = plan.rowStrides[0]
        values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                plan.forEachRow { at, off in
                    let start = off[0]
                    if step == 0 {
                        // Summed in output order, as one running sum per operand element.
                        var s = o[start]
                        for j in 0..<n { s += v[at + j] }
                        o[start] = s
                    } else {
                        for j in 0..<n { o[start + j] += v[at + j] }
                    }
                }
            }
        }
        return out
    }

    /// Permutes axes: output axis i is input axis perm[i].
    static func transpose(_ values: [Float], shape: [Int], perm: [Int]) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        values.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                Layout.transpose(s, d, shape: shape, permutation: perm, elementWidth: 4)
            }
        }
        return out
    }

    /// `C[m×n] = op(A) op(B)` into a new array.
    static func matmul(_ a: UnsafePointer<Float>, transA: Bool, _ b: UnsafePointer<Float>, transB: Bool,
                       m: Int, n: Int, k: Int, alpha: Float = 1) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        c.withUnsafeMutableBufferPointer { cp in
            guard let base = cp.baseAddress else { return }
            GEMM.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: transA ? m : k,
                       b: b, ldb: transB ? k : n, beta: 0, c: base, ldc: n)
        }
        return c
    }

    /// Outer/inner extents for an axis: (product before, size, product after).
    static func split(_ shape: [Int], axis: Int) -> (outer: Int, size: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }
}

extension Ops {
    /// An integer tensor's elements as Ints.
    static func ints(_ t: Tensor) -> [Int] {
        switch t.dtype {
        case .int64: t.scalars(as: Int64.self).map { Int(truncatingIfNeeded: $0) }
        case .int32: t.scalars(as: Int32.self).map { Int($0) }
        default: t.doubles().map { $0.isFinite ? Int(max(min($0, 9e18), -9e18)) : 0 }
        }
    }
}

extension Tensor {
    /// The same elements with `shape` (equal counts), or self unchanged.
    func reshapedOrSelf(_ shape: [Int]) -> Tensor {
        guard shape != self.shape, let r = try? reshaped(to: shape) else { return self }
        return r
    }
}
