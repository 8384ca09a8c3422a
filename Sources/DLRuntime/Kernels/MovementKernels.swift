import DLGraph
import DLKernels
import DLTensor

/// Selection and movement over every dtype (strings included): each kernel computes, for every
/// output element, the flat index of the input element it copies, then gathers once.
enum MovementKernels {
    static var all: [(String, Kernel)] {
        [("Squeeze", squeeze), ("Unsqueeze", unsqueeze), ("Split", split), ("Slice", slice),
         ("Gather", gather), ("GatherElements", gatherElements), ("GatherND", gatherND),
         ("ScatterElements", scatterElements), ("Scatter", scatterElements), ("ScatterND", scatterND),
         ("Expand", expand), ("Tile", tile), ("Pad", pad), ("Compress", compress),
         ("ReverseSequence", reverseSequence), ("NonZero", nonZero), ("TopK", topK), ("Unique", unique),
         ("Identity", { ctx throws(RuntimeError) in [try ctx.input(0)] }), ("TensorScatter", tensorScatter)]
    }

    /// Axes from input `i` or, for older opsets, the `axes` attribute.
    static func axes(_ ctx: KernelContext, input i: Int, rank: Int) throws(RuntimeError) -> [Int]? {
        guard let raw = try ctx.intsInputOrAttribute(i, "axes") else { return nil }
        var out: [Int] = []
        for a in raw {
            let v = try ctx.axis(a, rank: rank)
            guard !out.contains(v) else { throw ctx.fail("axis \(a) is listed twice") }
            out.append(v)
        }
        return out
    }

    static func relabel(_ ctx: KernelContext, _ x: Tensor, _ shape: [Int]) throws(RuntimeError) -> Tensor {
        do { return try x.reshaped(to: shape) } catch { throw ctx.fail("\(error)") }
    }

    static let squeeze: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let ax = try axes(ctx, input: 1, rank: x.rank)
        var shape: [Int] = []
        for (i, d) in x.shape.enumerated() {
            if let ax {
                if ax.contains(i) {
                    guard d == 1 else { throw ctx.fail("cannot squeeze axis \(i) of size \(d)") }
                    continue
                }
            } else if d == 1 { continue }
            shape.append(d)
        }
        return [try relabel(ctx, x, shape)]
    }

    static let unsqueeze: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard let raw = try ctx.intsInputOrAttribute(1, "axes") else { throw ctx.fail("Unsqueeze needs axes") }
        let r = x.rank + raw.count
        var ax = Set<Int>()
        for a in raw {
            let v = try ctx.axis(a, rank: r)
            guard ax.insert(v).inserted else { throw ctx.fail("axis \(a) is listed twice") }
        }
        var shape: [Int] = []
        var k = 0
        for i in 0..<r {
            if ax.contains(i) { shape.append(1) } else { shape.append(x.shape[k]); k += 1 }
        }
        return [try relabel(ctx, x, shape)]
    }

    /// Elements of `x` whose index along `axis` lies in `range`.
    static func take(_ x: Tensor, axis: Int, range: Range<Int>) -> Tensor {
        var shape = x.shape
        shape[axis] = range.count
        var st = IndexMath.strides(x.shape)
        let offset = range.lowerBound * st[axis]
        st = st.enumerated().map { $0.element }
        return x.gathered(IndexMath.strided(shape, strides: st, offset: offset), shape: shape)
    }

    static let split: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let axis = try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let n = ctx.node.outputs.count
        let size = x.shape[axis]
        var parts: [Int]
        if let s = try ctx.intsInputOrAttribute(1, "split") {
            parts = s
        } else {
            let k = try ctx.int("num_outputs", n)
            guard k > 0 else { throw ctx.fail("num_outputs must be positive") }
            let chunk = (size + k - 1) / k
            parts = (0..<k).map { max(0, min(chunk, size - $0 * chunk)) }
        }
        guard parts.allSatisfy({ $0 >= 0 }), parts.reduce(0, +) == size else {
            throw ctx.fail("split sizes \(parts) do not add up to \(size)")
        }
        if x.dtype != .string {
            // Slabs of the input copied block by block into recycled buffers.
            let outs = parts.map { p -> Tensor in
                var shape = x.shape
                shape[axis] = p
                return ctx.makeOutput(x.dtype, shape: shape)
            }
            guard x.elementCount > 0 else { return outs }
            x.withUnsafeBytes { src in
                var pointers: [UnsafeMutableRawPointer] = []
                var scratch = [UInt8](repeating: 0, count: 1)
                func collect(_ i: Int) {
                    if i == outs.count {
                        if let s = src.baseAddress {
                            Layout.split(s, shape: x.shape, axis: axis, sizes: parts, into: pointers, elementWidth: x.dtype.byteWidth)
                        }
                        return
                    }
                    // An empty part takes no bytes: any address serves.
                    func next(_ b: UnsafeMutableRawBufferPointer) {
                        guard let p = b.baseAddress else { return }
                        pointers.append(p)
                        collect(i + 1)
                    }
                    if outs[i].elementCount == 0 {
                        scratch.withUnsafeMutableBytes(next)
                    } else {
                        outs[i].withUnsafeMutableBytesInPlace(next)
                    }
                }
                collect(0)
            }
            return outs
        }
        var out: [Tensor] = []
        var start = 0
        for p in parts {
            out.append(take(x, axis: axis, range: start..<start + p))
            start += p
        }
        return out
    }

    static let slice: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let starts: [Int], ends: [Int]
        if ctx.inputs.count > 1 {
            guard let s = try ctx.intList(1), let e = try ctx.intList(2) else { throw ctx.fail("Slice needs starts and ends") }
            starts = s; ends = e
        } else {
            guard let s = try ctx.ints("starts"), let e = try ctx.ints("ends") else { throw ctx.fail("Slice needs starts and ends") }
            starts = s; ends = e
        }
        let axesRaw = try ctx.intsInputOrAttribute(3, "axes") ?? Array(0..<starts.count)
        let steps = try ctx.intList(4) ?? Array(repeating: 1, count: starts.count)
        guard starts.count == ends.count, axesRaw.count == starts.count, steps.count == starts.count else {
            throw ctx.fail("starts, ends, axes and steps differ in length")
        }
        var shape = x.shape
        let st = IndexMath.strides(x.shape)
        var outStrides = st
        var offset = 0
        var seen = Set<Int>()
        var begin = [Int](repeating: 0, count: x.rank)
        for k in 0..<starts.count {
            let a = try ctx.axis(axesRaw[k], rank: x.rank)
            guard seen.insert(a).inserted else { throw ctx.fail("axis \(axesRaw[k]) is listed twice") }
            let d = x.shape[a], step = steps[k]
            guard step != 0 else { throw ctx.fail("step 0 on axis \(a)") }
            func clampIndex(_ v: Int, lo: Int, hi: Int) -> Int {
                let w = v < 0 ? v + d : v
                return min(max(w, lo), hi)
            }
            let s: Int, e: Int
            if step > 0 {
                s = clampIndex(starts[k], lo: 0, hi: d); e = clampIndex(ends[k], lo: 0, hi: d)
            } else {
                s = clampIndex(starts[k], lo: -1, hi: d - 1); e = clampIndex(ends[k], lo: -1, hi: d - 1)
            }
            let count = step > 0 ? max(0, (e - s + step - 1) / step) : max(0, (s - e + (-step) - 1) / (-step))
            shape[a] = count
            offset += count > 0 ? s * st[a] : 0
            outStrides[a] = st[a] * step
            begin[a] = s
        }
        if x.dtype != .string, x.rank > 0, steps.allSatisfy({ $0 == 1 }) {
            // A box of the input: copied row by row into a recycled buffer.
            let out = ctx.makeOutput(x.dtype, shape: shape)
            guard out.elementCount > 0 else { return [out] }
            x.withUnsafeBytes { src in
                out.withUnsafeMutableBytesInPlace { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    Layout.copyBox(s, shape: x.shape, start: begin, count: shape, into: d, elementWidth: x.dtype.byteWidth)
                }
            }
            return [out]
        }
        return [x.gathered(IndexMath.strided(shape, strides: outStrides, offset: offset), shape: shape)]
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

    static let expand: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard let target = try ctx.intList(1) else { throw ctx.fail("Expand needs a shape") }
        guard let shape = try? Broadcast.shape(x.shape, target), shape.allSatisfy({ $0 >= 0 }) else {
            throw ctx.fail("shape \(x.shape) does not broadcast to \(target)")
        }
        guard let n = ShapeMath.elementCount(shape) else { throw ctx.fail("shape \(shape) is too large") }
        try ctx.checkValueSized(elements: n, x.dtype)
        return [x.gathered(try ctx.broadcastMaps([x.shape], to: shape).maps[0], shape: shape)]
    }

    static let tile: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard let reps = try ctx.intList(1), reps.count == x.rank, reps.allSatisfy({ $0 >= 0 }) else {
            throw ctx.fail("repeats must list one non-negative count per axis of \(x.shape)")
        }
        var shape: [Int] = []
        for (d, r) in zip(x.shape, reps) {
            let (v, overflow) = d.multipliedReportingOverflow(by: r)
            guard !overflow else { throw ctx.fail("repeats \(reps) of \(x.shape) overflow") }
            shape.append(v)
        }
        guard let n = ShapeMath.elementCount(shape) else { throw ctx.fail("shape \(shape) is too large") }
        try ctx.checkValueSized(elements: n, x.dtype)
        let st = IndexMath.strides(x.shape)
        var map = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let pos = IndexMath.unravel(i, shape)
            var off = 0
            for k in 0..<pos.count { off += (pos[k] % x.shape[k]) * st[k] }
            map[i] = off
        }
        return [x.gathered(map, shape: shape)]
    }

    /// Constant padding (no cropping) of float32: the output filled with `value`, then the input
    /// pasted into its box.
    static func padConstant(_ ctx: KernelContext, _ x: Tensor, before: [Int], shape: [Int], value: Float) -> Tensor {
        let out = ctx.makeOutput(.float32, shape: shape)
        guard out.elementCount > 0 else { return out }
        out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
            dst.update(repeating: value)
            x.withUnsafeBytes { src in
                guard let s = src.baseAddress, let d = dst.baseAddress, x.elementCount > 0 else { return }
                Layout.pasteBox(s, count: x.shape, into: UnsafeMutableRawPointer(d), shape: shape, start: before, elementWidth: 4)
            }
        }
        return out
    }

    static let pad: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let mode = try ctx.string("mode", "constant")
        guard let padsRaw = try ctx.intsInputOrAttribute(1, "pads") else { throw ctx.fail("Pad needs pads") }
        let ax = try axes(ctx, input: 3, rank: x.rank) ?? Array(0..<x.rank)
        guard padsRaw.count == 2 * ax.count else { throw ctx.fail("pads has \(padsRaw.count) values for \(ax.count) axes") }
        var before = [Int](repeating: 0, count: x.rank), after = before
        for (k, a) in ax.enumerated() {
            before[a] = padsRaw[k]
            after[a] = padsRaw[k + ax.count]
        }
        let shape = (0..<x.rank).map { x.shape[$0] + before[$0] + after[$0] }
        guard shape.allSatisfy({ $0 >= 0 }), ShapeMath.elementCount(shape) != nil else { throw ctx.fail("padded shape \(shape) is invalid") }
        if mode == "constant", x.dtype == .float32, x.rank > 0, before.allSatisfy({ $0 >= 0 }), after.allSatisfy({ $0 >= 0 }) {
            var value: Float = 0
            if let v = ctx.optionalInput(2), v.elementCount > 0, v.dtype == .float32 {
                value = v.scalars(as: Float.self).first ?? 0
            } else if ctx.node.attribute("value") != nil {
                value = try ctx.float("value", 0)
            }
            return [padConstant(ctx, x, before: before, shape: shape, value: value)]
        }
        // The fill value sits one past the input's elements.
        var fill = Tensor(zeros: x.dtype, shape: [1])
        if let v = ctx.optionalInput(2), v.elementCount > 0 {
            fill = v.dtype == x.dtype ? MovementKernels.take(try relabel(ctx, v, [v.elementCount]), axis: 0, range: 0..<1) : fill
        } else if x.dtype.isFloatingPoint, ctx.node.attribute("value") != nil {
            fill = Tensor.fromDoubles([Double(try ctx.float("value", 0))], dtype: x.dtype, shape: [1])
        }
        let src = MathKernels.concatFlat(try relabel(ctx, x, [x.elementCount]), fill)
        let st = IndexMath.strides(x.shape)
        let n = shape.reduce(1, *)
        var map = [Int](repeating: x.elementCount, count: n)
        for i in 0..<n {
            let pos = IndexMath.unravel(i, shape)
            var off = 0
            var outside = false
            for k in 0..<pos.count {
                var p = pos[k] - before[k]
                let d = x.shape[k]
                if p < 0 || p >= d {
                    if d == 0 { outside = true; break }
                    switch mode {
                    case "constant": outside = true
                    case "edge": p = min(max(p, 0), d - 1)
                    case "reflect":
                        if d == 1 { p = 0 } else {
                            let period = 2 * (d - 1)
                            var m = p % period
                            if m < 0 { m += period }
                            p = m < d ? m : period - m
                        }
                    case "wrap":
                        p %= d
                        if p < 0 { p += d }
                    default: throw ctx.fail("mode '\(mode)' is not one of constant, reflect, edge, wrap")
                    }
                }
                if outside { break }
                off += p * st[k]
            }
            map[i] = outside ? x.elementCount : off
        }
        return [src.gathered(map, shape: shape)]
    }

    static let compress: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let cond = try ctx.input(1).bools()
        if ctx.node.attribute("axis") == nil {
            let keep = (0..<min(cond.count, x.elementCount)).filter { cond[$0] }
            return [try relabel(ctx, x, [x.elementCount]).gathered(keep, shape: [keep.count])]
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

    static let reverseSequence: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let lens = try ctx.input(1).int64s()
        let ba = try ctx.int("batch_axis", 1), ta = try ctx.int("time_axis", 0)
        guard x.rank >= 2, [0, 1].contains(ba), [0, 1].contains(ta), ba != ta else { throw ctx.fail("batch_axis and time_axis must be 0 and 1") }
        let st = IndexMath.strides(x.shape)
        var map = [Int](repeating: 0, count: x.elementCount)
        for i in 0..<x.elementCount {
            var pos = IndexMath.unravel(i, x.shape)
            let b = pos[ba]
            guard b < lens.count, lens[b] >= 0, lens[b] <= x.shape[ta] else { throw ctx.fail("sequence_lens[\(b)] is invalid") }
            if pos[ta] < Int(lens[b]) { pos[ta] = Int(lens[b]) - 1 - pos[ta] }
            map[i] = zip(pos, st).reduce(0) { $0 + $1.0 * $1.1 }
        }
        return [x.gathered(map, shape: x.shape)]
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

    static let topK: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let kInput = try ctx.intList(1)?.first
        let kAttr = try ctx.int("k", -1)
        let k = kInput ?? kAttr
        let axis = try ctx.axis(try ctx.int("axis", -1), rank: x.rank)
        let largest = try ctx.int("largest", 1) != 0
        guard k >= 0, k <= x.shape[axis] else { throw ctx.fail("k \(k) is outside 0...\(x.shape[axis])") }
        let (outer, size, inner) = IndexMath.around(x.shape, axis: axis)
        let v = x.doubles(), iv = x.dtype.isInteger ? x.int64s() : []
        var map: [Int] = [], indices: [Int64] = []
        var shape = x.shape
        shape[axis] = k
        var order = [Int](repeating: 0, count: k * outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let base = o * size * inner + i
                let sorted = (0..<size).sorted { a, b in
                    let (p, q) = iv.isEmpty ? (v[base + a * inner], v[base + b * inner]) : (Double(iv[base + a * inner]), Double(iv[base + b * inner]))
                    if iv.isEmpty == false && iv[base + a * inner] != iv[base + b * inner] {
                        return largest ? iv[base + a * inner] > iv[base + b * inner] : iv[base + a * inner] < iv[base + b * inner]
                    }
                    if p != q { return largest ? p > q : p < q }
                    return a < b
                }
                for j in 0..<k { order[(o * k + j) * inner + i] = sorted[j] }
            }
        }
        map.reserveCapacity(order.count)
        for o in 0..<outer { for j in 0..<k { for i in 0..<inner {
            let s = order[(o * k + j) * inner + i]
            map.append(o * size * inner + s * inner + i)
            indices.append(Int64(s))
        } } }
        return [x.gathered(map, shape: shape), Tensor.fromInt64s(indices, dtype: .int64, shape: shape)]
    }

    static let unique: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let sorted = try ctx.int("sorted", 1) != 0
        // Slices compared as keys: whole elements when there is no axis, else slices along it.
        let axis: Int? = ctx.node.attribute("axis") == nil ? nil : try ctx.axis(try ctx.int("axis", 0), rank: x.rank)
        let flat = axis == nil ? try relabel(ctx, x, [x.elementCount]) : x
        let a = axis ?? 0
        let (outer, size, inner) = IndexMath.around(flat.shape, axis: a)
        let v = x.dtype == .string ? [] : x.doubles()
        func key(_ s: Int) -> [String] {
            var k: [String] = []
            for o in 0..<outer { for i in 0..<inner {
                let j = (o * size + s) * inner + i
                k.append(x.dtype == .string ? x.strings[j] : "\(v[j])")
            } }
            return k
        }
        func keyValues(_ s: Int) -> [Double] {
            var k: [Double] = []
            for o in 0..<outer { for i in 0..<inner { k.append(v[(o * size + s) * inner + i]) } }
            return k
        }
        var firstOf: [[String]: Int] = [:]
        var uniques: [Int] = []
        var counts: [Int] = []
        var inverse: [Int] = []
        for s in 0..<size {
            let k = key(s)
            if let u = firstOf[k] { counts[u] += 1; inverse.append(u) } else {
                firstOf[k] = uniques.count
                inverse.append(uniques.count)
                uniques.append(s)
                counts.append(1)
            }
        }
        var order = Array(0..<uniques.count)
        if sorted {
            order.sort { p, q in
                if x.dtype == .string { return key(uniques[p]).lexicographicallyPrecedes(key(uniques[q])) }
                return keyValues(uniques[p]).lexicographicallyPrecedes(keyValues(uniques[q]))
            }
        }
        var rank = [Int](repeating: 0, count: order.count)
        for (r, u) in order.enumerated() { rank[u] = r }
        var map: [Int] = []
        for o in 0..<outer { for r in order { for i in 0..<inner { map.append((o * size + uniques[r]) * inner + i) } } }
        var shape = flat.shape
        shape[a] = order.count
        return [flat.gathered(map, shape: shape),
                Tensor.fromInt64s(order.map { Int64(uniques[$0]) }, dtype: .int64, shape: [order.count]),
                Tensor.fromInt64s(inverse.map { Int64(rank[$0]) }, dtype: .int64, shape: [inverse.count]),
                Tensor.fromInt64s(order.map { Int64(counts[$0]) }, dtype: .int64, shape: [order.count])]
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
