import DLGraph
import DLKernels
import DLTensor

/// Reads and writes at computed indices, over every dtype (strings included): Gather,
/// GatherElements, GatherND, Scatter/ScatterElements, ScatterND and TensorScatter (the KV-cache
/// update), Compress and NonZero. Like the movement kernels, each computes the flat index of every
/// element it copies, then gathers once.
enum IndexingKernels {
    static var all: [KernelEntry] {
        [.init("Gather", gather), .init("GatherElements", gatherElements), .init("GatherND", gatherND),
         .init("ScatterElements", scatterElements), .init("Scatter", scatterElements), .init("ScatterND", scatterND),
         .init("TensorScatter", tensorScatter), .init("Compress", compress), .init("NonZero", nonZero)]
    }

    /// Normalises an index against `size`; nil when out of range.
    static func index(_ v: Int64, _ size: Int) -> Int? {
        let w = v < 0 ? Int(v) + size : Int(v)
        return w >= 0 && w < size ? w : nil
    }

    static let gather: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), ind = try ctx.input(1)
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let (outer, size, inner) = IndexMath.around(x.shape, axis: axis)
        let idx = ind.int64s()
        var norm: [Int] = []
        norm.reserveCapacity(idx.count)
        for v in idx {
            guard let w = index(v, size) else { throw ctx.fail("index \(v) is out of range for axis \(axis) of size \(size)") }
            norm.append(w)
        }
        let shape = Array(x.shape[..<axis]) + ind.shape + Array(x.shape[(axis + 1)...])
        if x.dtype != .string, x.elementCount > 0, !norm.isEmpty {
            // Whole rows of `inner` elements: one copy per (outer, index), no element map.
            var out = ctx.makeOutput(x.dtype, shape: shape)
            let w = x.dtype.byteWidth, rowBytes = inner * w
            x.withUnsafeBytes { src in
                out.withUnsafeMutableBytes { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    var o = 0
                    for outerIndex in 0..<outer {
                        for v in norm {
                            (d + o).copyMemory(from: s + (outerIndex * size + v) * rowBytes, byteCount: rowBytes)
                            o += rowBytes
                        }
                    }
                }
            }
            return [out]
        }
        var map: [Int] = []
        map.reserveCapacity(outer * norm.count * inner)
        for o in 0..<outer {
            for w in norm {
                let base = (o * size + w) * inner
                for i in 0..<inner { map.append(base + i) }
            }
        }
        return [x.gathered(map, shape: shape)]
    }

    static let gatherElements: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), ind = try ctx.input(1)
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        guard ind.rank == x.rank else { throw ctx.fail("indices have rank \(ind.rank), data \(x.rank)") }
        let st = IndexMath.strides(x.shape)
        let idx = ind.int64s()
        var map = [Int](repeating: 0, count: idx.count)
        for i in 0..<idx.count {
            var pos = IndexMath.unravel(i, ind.shape)
            guard let w = index(idx[i], x.shape[axis]) else { throw ctx.fail("index \(idx[i]) is out of range on axis \(axis)") }
            pos[axis] = w
            for k in 0..<pos.count where k != axis && pos[k] >= x.shape[k] { throw ctx.fail("indices shape \(ind.shape) exceeds data shape \(x.shape)") }
            map[i] = zip(pos, st).reduce(0) { $0 + $1.0 * $1.1 }
        }
        return [x.gathered(map, shape: ind.shape)]
    }

    static let gatherND: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), ind = try ctx.input(1)
        let b = try ctx.int("batch_dims", 0)
        guard let q = ind.shape.last, b >= 0, b < min(x.rank, ind.rank), b + q <= x.rank else {
            throw ctx.fail("indices of shape \(ind.shape) do not fit data of shape \(x.shape) with batch_dims \(b)")
        }
        let batch = x.shape[..<b].reduce(1, *)
        let sliceShape = Array(x.shape[(b + q)...])
        let sliceSize = sliceShape.reduce(1, *)
        let shape = Array(ind.shape.dropLast()) + sliceShape
        let st = IndexMath.strides(x.shape)
        let idx = ind.int64s()
        let tuples = idx.count / max(q, 1) / max(batch, 1)
        let perBatch = x.shape[b...].reduce(1, *)
        var map: [Int] = []
        for bi in 0..<batch {
            for t in 0..<(q == 0 ? ind.shape.dropLast().reduce(1, *) / max(batch, 1) : tuples) {
                var off = bi * perBatch
                for k in 0..<q {
                    let v = idx[(bi * tuples + t) * q + k]
                    guard let w = index(v, x.shape[b + k]) else { throw ctx.fail("index \(v) is out of range on axis \(b + k)") }
                    off += w * st[b + k]
                }
                for i in 0..<sliceSize { map.append(off + i) }
            }
        }
        return [x.gathered(map, shape: shape)]
    }

    /// Combines an existing value with an update by the `reduction` attribute.
    static func reducer(_ ctx: KernelContext) throws(RuntimeError) -> ((Double, Double) -> Double)? {
        switch try ctx.string("reduction", "none") {
        case "none": return nil
        case "add": return { $0 + $1 }
        case "mul": return { $0 * $1 }
        case "max": return { max($0, $1) }
        case "min": return { min($0, $1) }
        case let r: throw ctx.fail("reduction '\(r)' is not one of none, add, mul, max, min")
        }
    }

    /// Writes updates at flat positions, combining by `reduce` (in Double/Int64) when given.
    static func scatter(_ ctx: KernelContext, _ x: Tensor, _ updates: Tensor, _ pairs: [(dst: Int, src: Int)]) throws(RuntimeError) -> Tensor {
        guard updates.dtype == x.dtype else { throw ctx.fail("updates are \(updates.dtype), data \(x.dtype)") }
        guard let f = try reducer(ctx) else {
            var out = x
            out.assign(from: updates, pairs: pairs)
            return out
        }
        if x.dtype.isInteger {
            var v = x.int64s()
            let u = updates.int64s()
            for (d, s) in pairs { v[d] = Int64(f(Double(v[d]), Double(u[s]))) }
            return Tensor.fromInt64s(v, dtype: x.dtype, shape: x.shape)
        }
        var v = x.doubles()
        let u = updates.doubles()
        for (d, s) in pairs { v[d] = f(v[d], u[s]) }
        return Tensor.fromDoubles(v, dtype: x.dtype, shape: x.shape)
    }

    static let scatterElements: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), ind = try ctx.input(1), upd = try ctx.input(2)
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        guard ind.shape == upd.shape, ind.rank == x.rank else { throw ctx.fail("indices \(ind.shape) and updates \(upd.shape) must match and have the data's rank") }
        let st = IndexMath.strides(x.shape)
        let idx = ind.int64s()
        var pairs: [(dst: Int, src: Int)] = []
        for i in 0..<idx.count {
            var pos = IndexMath.unravel(i, ind.shape)
            guard let w = index(idx[i], x.shape[axis]) else { throw ctx.fail("index \(idx[i]) is out of range on axis \(axis)") }
            pos[axis] = w
            pairs.append((zip(pos, st).reduce(0) { $0 + $1.0 * $1.1 }, i))
        }
        return [try scatter(ctx, x, upd, pairs)]
    }

    static let scatterND: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), ind = try ctx.input(1), upd = try ctx.input(2)
        guard let q = ind.shape.last, q <= x.rank else { throw ctx.fail("indices of shape \(ind.shape) do not fit data \(x.shape)") }
        let sliceSize = x.shape[q...].reduce(1, *)
        let st = IndexMath.strides(x.shape)
        let idx = ind.int64s()
        let tuples = ind.shape.dropLast().reduce(1, *)
        guard upd.elementCount == tuples * sliceSize else { throw ctx.fail("updates have \(upd.elementCount) elements, need \(tuples * sliceSize)") }
        var pairs: [(dst: Int, src: Int)] = []
        for t in 0..<tuples {
            var off = 0
            for k in 0..<q {
                let v = idx[t * q + k]
                guard let w = index(v, x.shape[k]) else { throw ctx.fail("index \(v) is out of range on axis \(k)") }
                off += w * st[k]
            }
            for i in 0..<sliceSize { pairs.append((off + i, t * sliceSize + i)) }
        }
        return [try scatter(ctx, x, upd, pairs)]
    }

    static let compress: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let cond = try ctx.input(1).bools()
        if ctx.node.attribute("axis") == nil {
            let keep = (0..<min(cond.count, x.elementCount)).filter { cond[$0] }
            return [try MovementKernels.relabel(ctx, x, [x.elementCount]).gathered(keep, shape: [keep.count])]
        }
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let keep = (0..<min(cond.count, x.shape[axis])).filter { cond[$0] }
        let (outer, size, inner) = IndexMath.around(x.shape, axis: axis)
        var map: [Int] = []
        for o in 0..<outer { for k in keep { for i in 0..<inner { map.append((o * size + k) * inner + i) } } }
        var shape = x.shape
        shape[axis] = keep.count
        return [x.gathered(map, shape: shape)]
    }

    static let nonZero: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let nz = x.dtype == .string ? x.strings.map { !$0.isEmpty } : x.bools()
        let hits = (0..<nz.count).filter { nz[$0] }
        let r = max(x.rank, 1)
        var out = [Int64](repeating: 0, count: r * hits.count)
        for (j, i) in hits.enumerated() {
            let pos = x.rank == 0 ? [0] : IndexMath.unravel(i, x.shape)
            for k in 0..<r { out[k * hits.count + j] = Int64(pos[k]) }
        }
        // A 0-dim input reads as rank 1 (as numpy.nonzero does): out holds r rows.
        return [Tensor.fromInt64s(out, dtype: .int64, shape: [r, hits.count])]
    }

    /// Writes `update` into a copy of the cache along `axis`, from each batch's write index
    /// (modulo the cache length in "circular" mode): the KV-cache update of attention models.
    static let tensorScatter: Kernel = { ctx throws(RuntimeError) in
        let past = try ctx.input(0), update = try ctx.input(1)
        let axis = try ctx.axis(try ctx.int("axis", -2), rank: past.rank)
        let circular = try ctx.string("mode", "linear") == "circular"
        guard past.dtype == update.dtype, update.rank == past.rank, past.rank >= 2, axis > 0,
              (0..<past.rank).allSatisfy({ $0 == axis ? update.shape[$0] <= past.shape[$0] : update.shape[$0] == past.shape[$0] }) else {
            throw ctx.fail("update of shape \(update.shape) does not fit the cache of shape \(past.shape) on axis \(axis)")
        }
        let writes = try ctx.intList(2) ?? Array(repeating: 0, count: past.shape[0])
        guard writes.count == past.shape[0] else { throw ctx.fail("write_indices has \(writes.count) entries for batch \(past.shape[0])") }
        let maxLen = past.shape[axis], seq = update.shape[axis]
        let (outer, _, inner) = IndexMath.around(past.shape, axis: axis)
        let perBatch = outer / max(past.shape[0], 1)
        var pairs: [(dst: Int, src: Int)] = []
        for o in 0..<outer {
            let b = o / max(perBatch, 1)
            for s in 0..<seq {
                var c = writes[b] + s
                if circular { c = ((c % maxLen) + maxLen) % maxLen }
                guard c >= 0, c < maxLen else { throw ctx.fail("write index \(writes[b]) + \(s) is outside the cache length \(maxLen)") }
                for i in 0..<inner { pairs.append(((o * maxLen + c) * inner + i, (o * seq + s) * inner + i)) }
            }
        }
        var out = past
        out.assign(from: update, pairs: pairs)
        return [out]
    }
}
