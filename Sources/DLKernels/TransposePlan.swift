/// A transpose reduced to the fewest loop dimensions, built once per shape and permutation (the
/// runtime can build it when it plans); ``Layout/transpose(_:_:plan:elementWidth:)`` then
/// allocates nothing.
///
/// Output dimensions of size 1 are dropped, and output dimensions that are also adjacent and in
/// order in the input are merged: a permutation that moves only size-1 axes becomes one copy,
/// `[B, M, N] → [B, N, M]` becomes `B` 2-D transposes, and a permutation that keeps the last axis
/// copies whole rows.
public struct TransposePlan: Hashable, Sendable {
    /// Elements in the tensor.
    public let count: Int
    /// Loop sizes in output order (outermost first) after merging.
    public let dims: [Int]
    /// The input stride, in elements, of each of `dims`.
    public let inputStrides: [Int]

    /// - Precondition: `permutation` is a permutation of `0..<shape.count` (the caller validates
    ///   user attributes). The output shape is `permutation.map { shape[$0] }`, and
    ///   `output[i₀, …, iᵣ₋₁] = input[j]` where `j[permutation[d]] = i[d]`.
    public init(shape: [Int], permutation: [Int]) {
        let r = shape.count
        precondition(permutation.count == r, "permutation rank differs from shape rank")
        var seen = [Bool](repeating: false, count: r)
        for p in permutation {
            precondition(p >= 0 && p < r && !seen[p], "not a permutation: \(permutation)")
            seen[p] = true
        }
        var inStride = [Int](repeating: 1, count: r)
        var acc = 1
        for d in stride(from: r - 1, through: 0, by: -1) {
            inStride[d] = acc
            acc *= shape[d]
        }
        count = acc
        var sizes: [Int] = [], strides: [Int] = []
        for d in 0..<r {
            let n = shape[permutation[d]]
            if n == 1 { continue }
            let s = inStride[permutation[d]]
            if let last = strides.last, last == s * n {
                sizes[sizes.count - 1] *= n
                strides[strides.count - 1] = s
            } else {
                sizes.append(n)
                strides.append(s)
            }
        }
        dims = sizes
        inputStrides = strides
    }

    /// True when the transpose is a plain copy.
    public var isCopy: Bool { dims.count <= 1 }
}
