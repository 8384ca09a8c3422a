import DLTensor

/// Slicing and joining along one axis, for every dtype (strings included).
extension Tensor {
    /// Elements `start..<start+length` along `axis` (in range: callers check).
    func slice(axis: Int, start: Int, length: Int) -> Tensor {
        let (outer, size, inner) = IndexMath.around(shape, axis: axis)
        var idx: [Int] = []
        idx.reserveCapacity(outer * length * inner)
        for o in 0..<outer {
            let base = o * size * inner + start * inner
            for j in 0..<(length * inner) { idx.append(base + j) }
        }
        var s = shape
        s[axis] = length
        return gathered(idx, shape: s)
    }

    /// The tensors joined along `axis`; all share dtype and every other dim (callers check).
    static func concatenate(_ parts: [Tensor], axis: Int) -> Tensor? {
        guard let first = parts.first else { return nil }
        var shape = first.shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        let outer = shape[..<axis].reduce(1, *), inner = shape[(axis + 1)...].reduce(1, *)
        if first.dtype == .string {
            var out: [String] = []
            out.reserveCapacity(shape.reduce(1, *))
            for o in 0..<outer {
                for p in parts {
                    let n = p.shape[axis] * inner
                    out.append(contentsOf: p.strings[(o * n)..<((o + 1) * n)])
                }
            }
            return Tensor(shape: shape, strings: out)
        }
        var result = Tensor(zeros: first.dtype, shape: shape)
        let w = first.dtype.byteWidth
        let rowBytes = shape[axis] * inner * w
        result.withUnsafeMutableBytes { dst in
            guard let d = dst.baseAddress else { return }
            var offset = 0
            for p in parts {
                let n = p.shape[axis] * inner * w
                p.withUnsafeBytes { src in
                    guard let s = src.baseAddress, n > 0 else { return }
                    for o in 0..<outer { (d + o * rowBytes + offset).copyMemory(from: s + o * n, byteCount: n) }
                }
                offset += n
            }
        }
        return result
    }

    /// The tensors stacked along a new `axis` (same dtype and shape: callers check).
    static func stack(_ parts: [Tensor], axis: Int) -> Tensor? {
        guard let first = parts.first else { return nil }
        var unit = first.shape
        unit.insert(1, at: axis)
        let reshaped = parts.compactMap { try? $0.reshaped(to: unit) }
        guard reshaped.count == parts.count else { return nil }
        return concatenate(reshaped, axis: axis)
    }
}
