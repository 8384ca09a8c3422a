import DLTensor

/// Row-major index arithmetic shared by the breadth kernels (movement, reduction); broadcasting is
/// `KernelContext.broadcast` over `DLKernels.BroadcastPlan`.
enum IndexMath {
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// For each element of `shape` in row-major order, `offset + sum(index[k] * strides[k])`.
    static func strided(_ shape: [Int], strides st: [Int], offset: Int) -> [Int] {
        let n = shape.reduce(1, *)
        var out = [Int](repeating: 0, count: n)
        var cursor = StridedCursor(shape: shape, strides: st, offset: offset)
        for i in 0..<n {
            out[i] = cursor.offset
            cursor.advance()
        }
        return out
    }

    /// The multi-index of flat index `i` in `shape`.
    static func unravel(_ i: Int, _ shape: [Int]) -> [Int] {
        var rest = i
        var out = [Int](repeating: 0, count: shape.count)
        for k in stride(from: shape.count - 1, through: 0, by: -1) where shape[k] > 0 {
            out[k] = rest % shape[k]
            rest /= shape[k]
        }
        return out
    }

    /// Splits `shape` around `axis` into (outer, axisSize, inner) element counts.
    static func around(_ shape: [Int], axis: Int) -> (outer: Int, size: Int, inner: Int) {
        (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
    }
}
