/// Walks a broadcast of up to three operands to an output shape row by row (a row is the last
/// output dimension): for each row, the element offset of every operand and whether the operand
/// steps along the row (stride 1) or repeats one element (stride 0). Loops with mixed element
/// types (comparisons, selects) run their inner loop over a row with these offsets; nothing is
/// allocated per element.
public struct BroadcastRows: Sendable {
    let outShape: [Int]
    /// Per operand, its element stride along each output dim (0 where it broadcasts).
    let strides: [[Int]]

    /// - Returns: nil when an operand's shape does not broadcast to `outShape`.
    public init?(outShape: [Int], operands: [[Int]]) {
        let r = outShape.count
        var strides: [[Int]] = []
        for s in operands {
            guard s.count <= r else { return nil }
            var st = [Int](repeating: 0, count: r)
            var acc = 1
            for i in stride(from: r - 1, through: 0, by: -1) {
                let k = i - (r - s.count)
                let d = k >= 0 ? s[k] : 1
                guard d == outShape[i] || d == 1 else { return nil }
                st[i] = d == 1 ? 0 : acc
                acc *= d
            }
            strides.append(st)
        }
        self.outShape = outShape
        self.strides = strides
    }

    /// The length of each row (the last output dim; 1 for a scalar output).
    public var rowLength: Int { outShape.last ?? 1 }

    /// Calls `body(outputOffset, operandOffsets, operandRowStrides)` once per row, in order.
    /// Offsets and strides are given for three operands; those past the operand count are 0.
    public func forEachRow(_ body: (Int, (Int, Int, Int), (Int, Int, Int)) -> Void) {
        let r = outShape.count
        let count = outShape.reduce(1, *)
        guard count > 0 else { return }
        func get(_ k: Int, _ d: Int) -> Int { k < strides.count && d >= 0 && d < r ? strides[k][d] : 0 }
        let inner = (get(0, r - 1), get(1, r - 1), get(2, r - 1))
        let rows = count / rowLength
        var index = [Int](repeating: 0, count: max(r - 1, 0))
        var off = (0, 0, 0)
        for row in 0..<rows {
            body(row * rowLength, off, inner)
            // Odometer over the outer dims, updating the offsets incrementally.
            var d = r - 2
            while d >= 0 {
                index[d] += 1
                off.0 += get(0, d); off.1 += get(1, d); off.2 += get(2, d)
                if index[d] < outShape[d] { break }
                off.0 -= get(0, d) * outShape[d]; off.1 -= get(1, d) * outShape[d]; off.2 -= get(2, d) * outShape[d]
                index[d] = 0
                d -= 1
            }
        }
    }
}

extension Reduce {
    /// `y[o, i] = scale · Σ_k x[o, k, i]` over a row-major `[outer, size, inner]` array, summed in
    /// float32 along `k` (ONNX ReduceSum/ReduceMean over a run of adjacent axes). `y` is
    /// `[outer, inner]` and must not overlap `x`. Rows of `outer` split over the workers.
    public static func sum(_ x: UnsafePointer<Float>, outer: Int, size: Int, inner: Int, scale: Float,
                           into y: UnsafeMutablePointer<Float>) {
        ParallelFor.run(outer, cost: size * inner) { lo, hi in
            for o in lo..<hi {
                let src = x + o * size * inner, dst = y + o * inner
                if inner == 1 {
                    dst[0] = sum(src, count: size) * scale
                    continue
                }
                dst.update(repeating: 0, count: inner)
                for k in 0..<size {
                    let row = src + k * inner
                    for i in 0..<inner { dst[i] += row[i] }
                }
                if scale != 1 { for i in 0..<inner { dst[i] *= scale } }
            }
        }
    }
}
