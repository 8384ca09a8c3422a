import CKernels
import DLTensor

/// Data movement for any fixed-width element type: transpose, concat, split. Elements are copied
/// as opaque values of `elementWidth` bytes (1, 2, 4 or 8: every `DType` but `string`).
/// Buffers are contiguous row-major; outputs must not overlap inputs.
public enum Layout {
    /// Tile edge of the blocked 2-D transpose: a 32 × 32 tile of 8-byte elements is 8 KiB, so the
    /// source and destination tiles stay in L1.
    static let tile = 32

    /// ONNX `Transpose`: `output` has shape `shape[permutation[i]]`, and
    /// `output[i₀, …, iᵣ₋₁] = input[j]` where `j[permutation[d]] = i[d]`. Builds the
    /// ``TransposePlan`` (a few small arrays) and runs it.
    /// - Precondition: `permutation` is a permutation of `0..<shape.count`; `elementWidth` is 1,
    ///   2, 4 or 8.
    public static func transpose(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer,
        shape: [Int], permutation: [Int], elementWidth: Int
    ) {
        transpose(input, output, plan: TransposePlan(shape: shape, permutation: permutation),
                  elementWidth: elementWidth)
    }

    /// Runs a prepared transpose: rows are copied whole when the innermost dimension stays
    /// innermost, otherwise the last two dimensions are copied in 32 × 32 tiles.
    /// - Precondition: `elementWidth` is 1, 2, 4 or 8.
    public static func transpose(
        _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, plan: TransposePlan, elementWidth: Int
    ) {
        switch elementWidth {
        case 1: transpose(UInt8.self, input, output, plan)
        case 2: transpose(UInt16.self, input, output, plan)
        case 4: transpose(UInt32.self, input, output, plan)
        case 8: transpose(UInt64.self, input, output, plan)
        default: preconditionFailure("unsupported element width \(elementWidth)")
        }
    }

    /// ONNX `Concat` along `axis`: `inputs[k]` has shape `shapes[k]`; all shapes agree except at
    /// `axis`, and `output` has their common shape with the axis sizes summed.
    /// - Precondition: `inputs.count == shapes.count ≥ 1`, `0 ≤ axis < rank` (the caller normalises
    ///   a negative ONNX axis and validates the shapes).
    public static func concat(
        _ inputs: [UnsafeRawPointer], shapes: [[Int]], axis: Int,
        into output: UnsafeMutableRawPointer, elementWidth: Int
    ) {
        precondition(!inputs.isEmpty && inputs.count == shapes.count, "one shape per input")
        let (outer, inner) = outerInner(shapes[0], axis)
        let rowBytes = inner * elementWidth
        var total = 0
        for s in shapes { total += s[axis] }
        var offset = 0
        for k in inputs.indices {
            let bytes = shapes[k][axis] * rowBytes
            copyBlocks(from: inputs[k], sourceStride: bytes, to: output + offset, destinationStride: total * rowBytes,
                       blockBytes: bytes, count: outer)
            offset += bytes
        }
    }

    /// `concat` with the shapes already reduced: each input is `[outer, axisSizes[k], inner]`
    /// and the output `[outer, Σ axisSizes, inner]`.
    public static func concat(
        _ inputs: [UnsafeRawPointer], axisSizes: [Int], outer: Int, inner: Int,
        into output: UnsafeMutableRawPointer, elementWidth: Int
    ) {
        precondition(inputs.count == axisSizes.count, "one axis size per input")
        let rowBytes = inner * elementWidth
        var total = 0
        for s in axisSizes { total += s }
        var offset = 0
        for k in inputs.indices {
            let bytes = axisSizes[k] * rowBytes
            copyBlocks(from: inputs[k], sourceStride: bytes, to: output + offset, destinationStride: total * rowBytes,
                       blockBytes: bytes, count: outer)
            offset += bytes
        }
    }

    /// ONNX `Split` along `axis`, the inverse of ``concat(_:shapes:axis:into:elementWidth:)``:
    /// `outputs[k]` receives the slab of `sizes[k]` indices along the axis, in order.
    /// - Precondition: `sizes` sum to `shape[axis]`; one output per size; `0 ≤ axis < rank`.
    public static func split(
        _ input: UnsafeRawPointer, shape: [Int], axis: Int, sizes: [Int],
        into outputs: [UnsafeMutableRawPointer], elementWidth: Int
    ) {
        precondition(outputs.count == sizes.count, "one output per size")
        let (outer, inner) = outerInner(shape, axis)
        let rowBytes = inner * elementWidth
        let total = shape[axis]
        var offset = 0
        for k in outputs.indices {
            let bytes = sizes[k] * rowBytes
            copyBlocks(from: input + offset, sourceStride: total * rowBytes, to: outputs[k], destinationStride: bytes,
                       blockBytes: bytes, count: outer)
            offset += bytes
        }
    }

    /// The products of the sizes before and after `axis`.
    static func outerInner(_ shape: [Int], _ axis: Int) -> (Int, Int) {
        precondition(axis >= 0 && axis < shape.count, "axis out of range")
        var outer = 1, inner = 1
        for d in 0..<axis { outer *= shape[d] }
        for d in (axis + 1)..<shape.count { inner *= shape[d] }
        return (outer, inner)
    }

    /// `count` blocks of `blockBytes`, block `i` from `source + i * sourceStride` to
    /// `destination + i * destinationStride`. Pointers are only formed for non-empty blocks.
    @inline(__always)
    static func copyBlocks(
        from source: UnsafeRawPointer, sourceStride: Int, to destination: UnsafeMutableRawPointer,
        destinationStride: Int, blockBytes: Int, count: Int
    ) {
        guard blockBytes > 0 else { return }
        for i in 0..<count {
            (destination + i * destinationStride).copyMemory(from: source + i * sourceStride, byteCount: blockBytes)
        }
    }

    static func transpose<T>(_: T.Type, _ input: UnsafeRawPointer, _ output: UnsafeMutableRawPointer, _ plan: TransposePlan) {
        let src = input.assumingMemoryBound(to: T.self)
        let dst = output.assumingMemoryBound(to: T.self)
        if plan.count == 0 { return }
        if plan.isCopy {
            dst.update(from: src, count: plan.count)
            return
        }
        transposeWalk(plan, 0, src, dst)
    }

    /// Walks output dimensions `d...` recursively (depth at most the rank): the last dimension
    /// as whole rows when its input stride is 1, else the last two as a tiled 2-D copy.
    static func transposeWalk<T>(_ plan: TransposePlan, _ d: Int, _ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>) {
        let k = plan.dims.count
        if d == k - 1 {
            // Only reached when the innermost input stride is 1 (else d == k - 2 stops first).
            dst.update(from: src, count: plan.dims[d])
            return
        }
        if d == k - 2 && plan.inputStrides[k - 1] != 1 {
            // A plain 2-D transpose of 4-byte elements (attention's Kᵀ): AVX-512 16 × 16 blocks.
            if MemoryLayout<T>.size == 4, plan.inputStrides[d] == 1, CPUFeatures.avx512,
               plan.dims[d] <= Int(Int32.max), plan.dims[k - 1] <= Int(Int32.max),
               dlk_transpose_32(src, plan.inputStrides[k - 1], dst, plan.dims[k - 1],
                                Int32(plan.dims[k - 1]), Int32(plan.dims[d])) == 0 {
                return
            }
            copy2D(src, dst, rows: plan.dims[d], columns: plan.dims[k - 1],
                   rowStride: plan.inputStrides[d], columnStride: plan.inputStrides[k - 1])
            return
        }
        var block = 1
        for i in (d + 1)..<k { block *= plan.dims[i] }
        let s = plan.inputStrides[d]
        if d == 0 {
            // The outermost output dimension split over the runtime's workers (large tensors
            // only: ParallelFor runs small ones inline). Each chunk writes its own output rows.
            ParallelFor.run(plan.dims[0], cost: block) { lo, hi in
                for i in lo..<hi { transposeWalk(plan, 1, src + i * s, dst + i * block) }
            }
            return
        }
        for i in 0..<plan.dims[d] {
            transposeWalk(plan, d + 1, src + i * s, dst + i * block)
        }
    }

    /// `dst[i * columns + j] = src[i * rowStride + j * columnStride]`, in square tiles so that both
    /// the strided reads and the contiguous writes stay in cache.
    @inline(__always)
    static func copy2D<T>(
        _ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>,
        rows: Int, columns: Int, rowStride: Int, columnStride: Int
    ) {
        var i0 = 0
        while i0 < rows {
            let i1 = min(rows, i0 + tile)
            var j0 = 0
            while j0 < columns {
                let j1 = min(columns, j0 + tile)
                for i in i0..<i1 {
                    let s = src + i * rowStride
                    let d = dst + i * columns
                    for j in j0..<j1 { d[j] = s[j * columnStride] }
                }
                j0 = j1
            }
            i0 = i1
        }
    }
}

extension Layout {
    /// Copies the box `start ..< start + count` (per dimension) of a row-major `shape` array into
    /// `output` (row-major, shape `count`): ONNX `Slice` with unit steps. Each innermost run is
    /// one memory copy.
    /// - Precondition: the box lies inside `shape`; rank ≥ 1.
    public static func copyBox(_ input: UnsafeRawPointer, shape: [Int], start: [Int], count: [Int],
                               into output: UnsafeMutableRawPointer, elementWidth: Int) {
        boxRows(shape: shape, start: start, count: count, elementWidth: elementWidth) { k, offset, bytes in
            (output + k * bytes).copyMemory(from: input + offset, byteCount: bytes)
        }
    }

    /// Copies elements of `input` at `offset + Σ index[d]·strides[d]` (in elements; strides may be
    /// negative or larger than a row) for every index of `shape`, in row-major order, into
    /// `output`: ONNX `Slice` with steps. The innermost dimension is one strided loop.
    /// - Precondition: every position lies inside `input`; rank ≥ 1; width 1, 2, 4 or 8.
    public static func copyStrided(_ input: UnsafeRawPointer, shape: [Int], strides: [Int], offset: Int,
                                   into output: UnsafeMutableRawPointer, elementWidth: Int) {
        guard let inner = shape.last, inner > 0, shape.allSatisfy({ $0 > 0 }) else { return }
        func copy<T>(_: T.Type) {
            let src = input.assumingMemoryBound(to: T.self), dst = output.assumingMemoryBound(to: T.self)
            let step = strides[strides.count - 1]
            var rows = StridedCursor(shape: Array(shape.dropLast()), strides: Array(strides.dropLast()), offset: offset)
            var k = 0
            for _ in 0..<(shape.dropLast().reduce(1, *)) {
                var at = rows.offset
                for _ in 0..<inner {
                    dst[k] = src[at]
                    k += 1
                    at += step
                }
                rows.advance()
            }
        }
        switch elementWidth {
        case 1: copy(UInt8.self)
        case 2: copy(UInt16.self)
        case 4: copy(UInt32.self)
        case 8: copy(UInt64.self)
        default: preconditionFailure("unsupported element width \(elementWidth)")
        }
    }

    /// The inverse of ``copyBox(_:shape:start:count:into:elementWidth:)``: writes `input` (shape
    /// `count`) into the box `start ..< start + count` of the row-major `shape` array `output`,
    /// leaving the rest as it was (ONNX `Pad` after the fill).
    public static func pasteBox(_ input: UnsafeRawPointer, count: [Int], into output: UnsafeMutableRawPointer,
                                shape: [Int], start: [Int], elementWidth: Int) {
        boxRows(shape: shape, start: start, count: count, elementWidth: elementWidth) { k, offset, bytes in
            (output + offset).copyMemory(from: input + k * bytes, byteCount: bytes)
        }
    }

    /// Calls `body(k, byteOffset, rowBytes)` for each innermost row `k` of the box, in order, with
    /// the row's offset in the full array. A last dim taken whole joins the one before it first:
    /// longer rows, fewer calls.
    static func boxRows(shape: [Int], start: [Int], count: [Int], elementWidth: Int, _ body: (Int, Int, Int) -> Void) {
        guard !shape.isEmpty, count.allSatisfy({ $0 > 0 }) else { return }
        var shape = shape, start = start, count = count
        while shape.count > 1, count[shape.count - 1] == shape[shape.count - 1] {
            let last = shape.count - 1
            start[last - 1] = start[last - 1] * shape[last] + start[last]
            count[last - 1] *= shape[last]
            shape[last - 1] *= shape[last]
            shape.removeLast(); start.removeLast(); count.removeLast()
        }
        let r = shape.count
        var strides = [Int](repeating: elementWidth, count: r)
        for d in stride(from: r - 2, through: 0, by: -1) { strides[d] = strides[d + 1] * shape[d + 1] }
        var offset = 0
        for d in 0..<r { offset += start[d] * strides[d] }
        let rowBytes = count[r - 1] * elementWidth
        let rows = count.dropLast().reduce(1, *)
        var cursor = StridedCursor(shape: Array(count.dropLast()), strides: Array(strides.dropLast()), offset: offset)
        for k in 0..<rows {
            body(k, cursor.offset, rowBytes)
            cursor.advance()
        }
    }
}
