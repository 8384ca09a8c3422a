/// Walks the elements of `shape` in row-major order and keeps `offset` = the start offset +
/// sum(index[d] * strides[d]): the position of the current element in a buffer laid out with
/// `strides` (a transposition, a box of a larger array). The one odometer of the package
/// (broadcasting is `BroadcastPlan` in DLKernels).
package struct StridedCursor {
    @usableFromInline let shape: [Int]
    @usableFromInline let strides: [Int]
    @usableFromInline var index: [Int]
    /// The current element's position.
    package var offset: Int

    @inlinable package init(shape: [Int], strides: [Int], offset: Int = 0) {
        self.shape = shape
        self.strides = strides
        self.offset = offset
        index = [Int](repeating: 0, count: shape.count)
    }

    /// Moves to the next element (past the last one, back to the first).
    @inlinable package mutating func advance() {
        var d = shape.count - 1
        while d >= 0 {
            index[d] += 1
            offset += strides[d]
            if index[d] < shape[d] { return }
            offset -= strides[d] * index[d]
            index[d] = 0
            d -= 1
        }
    }
}
