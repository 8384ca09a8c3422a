import DLGraph
import DLTensor

/// Decodes TFLite's sparse storage (schema.fbs `SparsityParameters`, a variant of the TACO format)
/// into the dense tensor, exactly: the stored values land at their coordinates, zeros elsewhere.
///
/// An n-dimensional tensor with a k-dimensional block is traversed over n + k levels:
/// `traversal_order[l]` names the dimension of level l (n + b is block dimension b, which splits
/// original dimension `block_map[b]`). A dense level has `dense_size` positions, child position
/// `pos * dense_size + i`; a sparse (CSR) level lists, for parent position `pos`, the entries
/// `array_segments[pos] ..< array_segments[pos + 1]` of `array_indices`, child position the entry.
/// The position after the last level indexes the stored values.
enum SparseTensor {
    static func densify(_ sp: TFLiteModel.Sparsity, shape: [Int], dtype: DType, values: UnsafeRawBufferPointer,
                        fail: (String) -> TFLiteError) throws(TFLiteError) -> Tensor {
        let n = shape.count, levels = sp.traversalOrder.count, k = sp.blockMap.count
        guard levels == n + k, sp.dimensions.count == levels, Set(sp.traversalOrder) == Set(0..<levels),
              sp.blockMap.allSatisfy({ $0 >= 0 && $0 < n }) else {
            throw fail("sparsity has \(levels) traversal levels, \(sp.dimensions.count) dimension metadata and \(k) block dims for rank \(n)")
        }
        let width = dtype.byteWidth
        guard width > 0, let total = ShapeMath.elementCount(shape), !total.multipliedReportingOverflow(by: width).overflow,
              values.count % width == 0 else {
            throw fail("sparse \(dtype) tensor of shape \(shape) cannot be densified")
        }
        let stored = values.count / width
        // Size of each expanded dimension: block dims from their level's dense size; original dims divided by their block.
        var size = [Int](repeating: 0, count: levels)
        for (l, d) in sp.traversalOrder.enumerated() where d >= n {
            let meta = sp.dimensions[l]
            guard !meta.isSparse, meta.denseSize >= 1 else { throw fail("block dimension \(d - n) must be dense with a size") }
            size[d] = meta.denseSize
        }
        for d in 0..<n {
            let block = sp.blockMap.enumerated().filter { $0.element == d }.reduce(1) { $0 * size[n + $1.offset] }
            guard block >= 1, shape[d] % block == 0 else { throw fail("dimension \(d) of size \(shape[d]) is not a multiple of its block \(block)") }
            size[d] = shape[d] / block
        }
        var strides = [Int](repeating: 1, count: n)
        for d in stride(from: n - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        // One zeroed allocation filled in place (the importer checked its size against the budget).
        var dense = Tensor(zeros: dtype, shape: shape)
        var coord = [Int](repeating: 0, count: levels)
        // Depth-first over the levels with an explicit stack: (level, position, next child, end).
        var stack: [(level: Int, pos: Int, next: Int, end: Int)] = []
        func children(_ l: Int, _ pos: Int) throws(TFLiteError) -> (Int, Int) {
            let meta = sp.dimensions[l]
            if !meta.isSparse {
                guard meta.denseSize == size[sp.traversalOrder[l]] else {
                    throw fail("dense level \(l) has size \(meta.denseSize), expected \(size[sp.traversalOrder[l]])")
                }
                return (0, meta.denseSize)
            }
            guard pos + 1 < meta.segments.count, meta.segments[pos] >= 0, meta.segments[pos] <= meta.segments[pos + 1],
                  meta.segments[pos + 1] <= meta.indices.count else {
                throw fail("sparse level \(l): segment \(pos) is outside its \(meta.segments.count) segments or \(meta.indices.count) indices")
            }
            return (meta.segments[pos], meta.segments[pos + 1])
        }
        let (b0, e0) = try children(0, 0)
        stack.append((0, 0, b0, e0))
        while let top = stack.last {
            if top.next >= top.end { stack.removeLast(); continue }
            stack[stack.count - 1].next += 1
            let l = top.level, meta = sp.dimensions[l]
            let i = top.next
            let (index, pos): (Int, Int)
            if meta.isSparse {
                index = meta.indices[i]
                pos = i
            } else {
                index = i
                let (p, o) = top.pos.multipliedReportingOverflow(by: meta.denseSize)
                guard !o, p <= Int.max - i else { throw fail("sparse positions overflow") }
                pos = p + i
            }
            guard index >= 0, index < size[sp.traversalOrder[l]] else {
                throw fail("index \(index) at level \(l) is outside dimension size \(size[sp.traversalOrder[l]])")
            }
            coord[sp.traversalOrder[l]] = index
            if l + 1 < levels {
                let (b, e) = try children(l + 1, pos)
                stack.append((l + 1, pos, b, e))
                continue
            }
            guard pos < stored else { throw fail("value position \(pos) is past the \(stored) stored values") }
            var offset = 0
            for d in 0..<n {
                var c = coord[d]
                for (b, m) in sp.blockMap.enumerated() where m == d { c = c * size[n + b] + coord[n + b] }
                offset += c * strides[d]
            }
            dense.withUnsafeMutableBytes { out in
                for byte in 0..<width { out[offset * width + byte] = values[pos * width + byte] }
            }
        }
        return dense
    }
}
