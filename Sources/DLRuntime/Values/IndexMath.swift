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
        if n == 0 { return out }
        let r = shape.count
        var idx = [Int](repeating: 0, count: r)
        var cur = offset
        for i in 0..<n {
            out[i] = cur
            var k = r - 1
            while k >= 0 {
                idx[k] += 1
                cur += st[k]
                if idx[k] < shape[k] { break }
                cur -= st[k] * idx[k]
                idx[k] = 0
                k -= 1
            }
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
