extension Tensor {
    /// A transposed copy: axis i of the result is axis `perm[i]` of this tensor (any fixed-width dtype).
    /// - Throws: `TensorError.reshapeMismatch` when `perm` is not a permutation of the axes.
    public func transposed(_ perm: [Int]) throws(TensorError) -> Tensor {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw .reshapeMismatch(from: shape, to: perm)
        }
        let w = dtype.byteWidth
        let newShape = perm.map { shape[$0] }
        var strides = [Int](repeating: 1, count: rank)
        if rank > 1 { for i in stride(from: rank - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * shape[i + 1] } }
        let srcStrides = perm.map { strides[$0] }
        var out = [UInt8](repeating: 0, count: byteCount)
        let n = elementCount
        if n > 0 {
            withUnsafeBytes { src in
                var index = [Int](repeating: 0, count: rank)
                for dst in 0..<n {
                    var off = 0
                    for a in 0..<rank { off += index[a] * srcStrides[a] }
                    for k in 0..<w { out[dst * w + k] = src[off * w + k] }
                    var a = rank - 1
                    while a >= 0 {
                        index[a] += 1
                        if index[a] < newShape[a] { break }
                        index[a] = 0
                        a -= 1
                    }
                }
            }
        }
        // Array.withUnsafeBytes rethrows untyped: carry the typed error out through a Result.
        var result: Result<Tensor, TensorError> = .failure(.invalidShape(newShape))
        out.withUnsafeBytes { b in
            do throws(TensorError) { result = .success(try Tensor(dtype: dtype, shape: newShape, bytes: b)) } catch { result = .failure(error) }
        }
        return try result.get()
    }
}
