/// Numpy broadcasting, the one rule for every layer (shape inference, passes, kernels, gradients):
/// shapes are right-aligned (a shorter shape gains leading 1s), and along each axis the sizes agree
/// or one of them is 1, which stretches to the other. `[3, 1]` against `[2, 3, 4]` gives `[2, 3, 4]`.
///
/// The rule is `dim(_:_:)`; everything else applies it. How a kernel walks a broadcast is
/// `DLKernels.BroadcastPlan`, built from the shapes this gives.
package enum Broadcast {
    /// Shapes that do not broadcast: the shapes as given and the first axis of the result (from
    /// the left) where two sizes clash. Callers add the node or tensor name.
    package struct Mismatch: Error, Hashable, Sendable, CustomStringConvertible {
        package let shapes: [[Dim]]
        package let axis: Int

        package init(shapes: [[Dim]], axis: Int) {
            self.shapes = shapes
            self.axis = axis
        }

        package var description: String {
            let list = shapes.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" }
            let rank = shapes.map(\.count).max() ?? 0
            let sizes = shapes.compactMap { s -> String? in
                let k = axis - (rank - s.count)
                return k >= 0 ? s[k].description : nil
            }
            return "shapes \(list.joined(separator: " and ")) do not broadcast (sizes \(sizes.joined(separator: " and ")) at axis \(axis))"
        }
    }

    /// The size two sizes broadcast to; nil when they clash (two fixed sizes, neither 1).
    ///
    /// A size of 1 yields to the other size. A symbol against a fixed size other than 1 becomes
    /// that size (the run checks the symbol is it or 1); two different symbols give `.unknown`.
    package static func dim(_ a: Dim, _ b: Dim) -> Dim? {
        switch (a, b) {
        case (.fixed(let x), .fixed(let y)):
            if x == y || y == 1 { return a }
            return x == 1 ? b : nil
        case (.fixed(1), _): return b
        case (_, .fixed(1)): return a
        case (.fixed, _): return a
        case (_, .fixed): return b
        default: return a == b ? a : .unknown
        }
    }

    /// The broadcast of any number of shapes whose sizes may be symbolic.
    package static func dims(_ shapes: [[Dim]]) throws(Mismatch) -> [Dim] {
        let r = shapes.map(\.count).max() ?? 0
        var out = [Dim](repeating: .fixed(1), count: r)
        for s in shapes {
            for (k, d) in s.enumerated() {
                let i = r - s.count + k
                guard let m = dim(out[i], d) else { throw Mismatch(shapes: shapes, axis: i) }
                out[i] = m
            }
        }
        return out
    }

    package static func dims(_ a: [Dim], _ b: [Dim]) throws(Mismatch) -> [Dim] { try dims([a, b]) }

    /// The broadcast of any number of concrete shapes.
    package static func shape(_ shapes: [[Int]]) throws(Mismatch) -> [Int] {
        let r = shapes.map(\.count).max() ?? 0
        var out = [Int](repeating: 1, count: r)
        for s in shapes {
            for (k, d) in s.enumerated() {
                let i = r - s.count + k
                guard let m = dim(.fixed(out[i]), .fixed(d))?.value else {
                    throw Mismatch(shapes: shapes.map { [Dim]($0) }, axis: i)
                }
                out[i] = m
            }
        }
        return out
    }

    package static func shape(_ a: [Int], _ b: [Int]) throws(Mismatch) -> [Int] { try shape([a, b]) }

    /// The element strides of a row-major tensor of `shape` read along `outShape`: 0 on every axis
    /// it is stretched along (including the leading axes it lacks).
    /// - Throws: when `shape` does not broadcast *to* `outShape` (a size that is neither the
    ///   output's nor 1, or a higher rank).
    package static func strides(of shape: [Int], along outShape: [Int]) throws(Mismatch) -> [Int] {
        let r = outShape.count
        guard shape.count <= r else { throw Mismatch(shapes: [[Dim](shape), [Dim](outShape)], axis: 0) }
        var out = [Int](repeating: 0, count: r)
        var acc = 1
        for i in stride(from: r - 1, through: 0, by: -1) {
            let k = i - (r - shape.count)
            let d = k >= 0 ? shape[k] : 1
            guard d == outShape[i] || d == 1 else { throw Mismatch(shapes: [[Dim](shape), [Dim](outShape)], axis: i) }
            out[i] = d == 1 ? 0 : acc
            acc &*= d
        }
        return out
    }
}
