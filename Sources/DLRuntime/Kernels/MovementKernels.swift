import DLGraph
import DLKernels
import DLTensor

/// Movement over every dtype (strings included): squeezing, splitting, slicing, expanding, tiling,
/// padding, reversing sequences. Each kernel computes, for every output element, the flat index of
/// the input element it copies, then gathers once. Indexed reads and writes (Gather, Scatter, ...)
/// are `IndexingKernels`; TopK and Unique are `SortingKernels`.
enum MovementKernels {
    static var all: [KernelEntry] {
        [.init("Squeeze", squeeze), .init("Unsqueeze", unsqueeze), .init("Split", split), .init("Slice", slice),
         .init("Expand", expand), .init("Tile", tile), .init("Pad", pad), .init("ReverseSequence", reverseSequence),
         .init("Identity", { ctx throws(RuntimeError) in [try ctx.input(0)] })]
    }

    /// Axes from input `i` (older opsets' `axes` attribute is moved there on read: `NormalForm`).
    static func axes(_ ctx: KernelContext, input i: Int, rank: Int) throws(RuntimeError) -> [Int]? {
        guard let raw = try ctx.intList(i) else { return nil }
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
        guard let raw = try ctx.intList(1) else { throw ctx.fail("Unsqueeze needs axes") }
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
        if let s = try ctx.intList(1) {
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
        guard let starts = try ctx.intList(1), let ends = try ctx.intList(2) else { throw ctx.fail("Slice needs starts and ends") }
        let axesRaw = try ctx.intList(3) ?? Array(0..<starts.count)
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
        if x.dtype != .string, x.rank > 0, [1, 2, 4, 8].contains(x.dtype.byteWidth) {
            // Steps: one strided loop per innermost row, no index map.
            let out = ctx.makeOutput(x.dtype, shape: shape)
            guard out.elementCount > 0 else { return [out] }
            x.withUnsafeBytes { src in
                out.withUnsafeMutableBytesInPlace { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    Layout.copyStrided(s, shape: shape, strides: outStrides, offset: offset, into: d, elementWidth: x.dtype.byteWidth)
                }
            }
            return [out]
        }
        return [x.gathered(IndexMath.strided(shape, strides: outStrides, offset: offset), shape: shape)]
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

    /// A Pad in which every output element reads an input element (reflect, edge, wrap, or
    /// cropping), row by row, for any type of 1, 2, 4 or 8 bytes (moved as bits): `offsets[k][q]`
    /// is the input offset along axis k of output coordinate q. Nil for another width. The
    /// general path builds a gather map by one recursive call per element, then gathers
    /// (silero-vad's float16 reflect padding of 512 samples took 13 µs there).
    static func padByRows(_ ctx: KernelContext, _ x: Tensor, shape: [Int], offsets: [[Int]]) -> Tensor? {
        switch x.dtype.byteWidth {
        case 1: padByRows(ctx, x, shape: shape, offsets: offsets, as: UInt8.self)
        case 2: padByRows(ctx, x, shape: shape, offsets: offsets, as: UInt16.self)
        case 4: padByRows(ctx, x, shape: shape, offsets: offsets, as: UInt32.self)
        case 8: padByRows(ctx, x, shape: shape, offsets: offsets, as: UInt64.self)
        default: nil
        }
    }

    static func padByRows<T: FixedWidthInteger>(_ ctx: KernelContext, _ x: Tensor, shape: [Int], offsets: [[Int]], as: T.Type) -> Tensor {
        let out = ctx.makeOutput(x.dtype, shape: shape)
        let width = shape[shape.count - 1], last = offsets[shape.count - 1]
        // Each output row's input offset on the leading axes, rows in order.
        let rowBases = offsets.dropLast().reduce([0]) { bases, axis in bases.flatMap { b in axis.map { b + $0 } } }
        out.withUnsafeMutableBytesInPlace { dst in
            x.withUnsafeBytes { src in
                guard let d0 = dst.baseAddress?.assumingMemoryBound(to: T.self), let s = src.baseAddress?.assumingMemoryBound(to: T.self),
                      width > 0 else { return }
                last.withUnsafeBufferPointer { l in
                    for (row, base) in rowBases.enumerated() {
                        let d = d0 + row * width
                        for q in 0..<width { d[q] = s[base + l[q]] }
                    }
                }
            }
        }
        return out
    }

    static let pad: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let mode = try ctx.string("mode", "constant")
        guard let padsRaw = try ctx.intList(1) else { throw ctx.fail("Pad needs pads") }
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
            }
            return [padConstant(ctx, x, before: before, shape: shape, value: value)]
        }
        let st = IndexMath.strides(x.shape)
        // Per axis, each output coordinate's offset into x, or nil where it reads the fill value.
        var axisOffsets: [[Int?]] = []
        for k in 0..<x.rank {
            let d = x.shape[k]
            var offsets: [Int?] = []
            offsets.reserveCapacity(shape[k])
            for q in 0..<shape[k] {
                var p = q - before[k]
                if p < 0 || p >= d {
                    if d == 0 { offsets.append(nil); continue }
                    switch mode {
                    case "constant": offsets.append(nil); continue
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
                offsets.append(p * st[k])
            }
            axisOffsets.append(offsets)
        }
        let n = shape.reduce(1, *)
        if x.dtype != .string, x.rank > 0, n > 0, axisOffsets.allSatisfy({ $0.allSatisfy { $0 != nil } }),
           let y = padByRows(ctx, x, shape: shape, offsets: axisOffsets.map { $0.map { $0 ?? 0 } }) {
            return [y]
        }
        // The fill value sits one past the input's elements.
        var fill = Tensor(zeros: x.dtype, shape: [1])
        if let v = ctx.optionalInput(2), v.elementCount > 0 {
            fill = v.dtype == x.dtype ? MovementKernels.take(try relabel(ctx, v, [v.elementCount]), axis: 0, range: 0..<1) : fill
        }
        let src = MathKernels.concatFlat(try relabel(ctx, x, [x.elementCount]), fill)
        var map = [Int](repeating: x.elementCount, count: n)
        // Output blocks in order: an axis coordinate reading the fill leaves its whole block as is.
        let outStrides = IndexMath.strides(shape)
        func fillBlock(axis k: Int, at start: Int, from base: Int) {
            if k == x.rank {
                map[start] = base
                return
            }
            for (q, offset) in axisOffsets[k].enumerated() {
                guard let offset else { continue }
                fillBlock(axis: k + 1, at: start + q * outStrides[k], from: base + offset)
            }
        }
        if n > 0 { fillBlock(axis: 0, at: 0, from: 0) }
        return [src.gathered(map, shape: shape)]
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
}
