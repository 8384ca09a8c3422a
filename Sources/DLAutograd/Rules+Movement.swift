import DLGraph
import DLKernels
import DLTensor

extension Rules {
    static let movement: [(String, GradientRule)] = [
        ("Reshape", reshapeBack), ("Flatten", reshapeBack), ("Squeeze", reshapeBack), ("Unsqueeze", reshapeBack),
        ("Expand", expand), ("Transpose", transpose), ("Concat", concat), ("Split", split), ("Slice", slice),
        ("Gather", gather), ("ReduceSum", reduce(mean: false)), ("ReduceMean", reduce(mean: true)),
    ]

    /// Ops that only change the shape: the gradient is the output gradient with the input's shape.
    static let reshapeBack: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        // The same values in x's shape: the gradient's storage, relabelled.
        guard let g = try? c.gradTensor().reshaped(to: x.shape) else { return [Ops.tensor(x.shape, c.grad())] }
        return [g]
    }

    static let expand: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        return [Ops.tensor(x.shape, Ops.reduce(c.grad(), from: y.shape, to: x.shape))]
    }

    static let transpose: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let perm = try c.ints("perm") ?? Array((0..<x.rank).reversed())
        guard perm.count == x.rank else { throw c.fail("perm has \(perm.count) axes for rank \(x.rank)") }
        var inverse = [Int](repeating: 0, count: perm.count)
        for (i, p) in perm.enumerated() { inverse[p] = i }
        // From the gradient's buffer straight into the result's (no arrays between).
        let g = c.gradTensor()
        var gx = Tensor(zeros: .float32, shape: x.shape)
        guard gx.elementCount == g.elementCount else { throw c.fail("the gradient of \(g.shape) does not transpose to \(x.shape)") }
        g.withUnsafeBytes { src in
            gx.withUnsafeMutableBytes { dst in
                guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                Layout.transpose(s, d, shape: y.shape, permutation: inverse, elementWidth: 4)
            }
        }
        return [gx]
    }

    static let concat: GradientRule = { c throws(AutogradError) in
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let axis = try c.axis(try c.int("axis", 0), rank: y.rank)
        let g = c.gradTensor()
        var out: [Tensor?] = []
        var offset = 0
        for (i, t) in c.inputs.enumerated() {
            guard let t else { out.append(nil); continue }
            let size = t.rank > axis ? t.shape[axis] : 0
            // Each input's gradient is its box of the output's, copied a row run at a time (an
            // element walk through [Float] copies took 2% of an LSTM step, whose export
            // concatenates its weights' gate slices on every forward).
            var box = y.shape, start = [Int](repeating: 0, count: y.rank)
            box[axis] = size
            start[axis] = offset
            offset += size
            guard c.need(i) else { out.append(nil); continue }
            guard box == t.shape else { throw c.fail("input \(i) has shape \(t.shape), not a slab \(box) of the output") }
            guard t.elementCount > 0 else { out.append(Tensor(zeros: .float32, shape: box)); continue }
            var part = Tensor(dtype: .float32, shape: box, sharing: TensorStorage(uninitializedByteCount: t.elementCount * 4))
            g.withUnsafeBytes { src in
                part.withUnsafeMutableBytes { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    Layout.copyBox(s, shape: y.shape, start: start, count: box, into: d, elementWidth: 4)
                }
            }
            out.append(part)
        }
        return out
    }

    static let split: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        let axis = try c.axis(try c.int("axis", 0), rank: x.rank)
        let (outer, total, inner) = Ops.split(x.shape, axis: axis)
        var gx = [Float](repeating: 0, count: x.elementCount)
        var offset = 0
        for (k, y) in c.outputs.enumerated() {
            let size = y.shape[axis]
            let g = c.grad(k)
            for o in 0..<outer {
                let dst = (o * total + offset) * inner, src = o * size * inner
                for j in 0..<(size * inner) { gx[dst + j] = g[src + j] }
            }
            offset += size
        }
        return [Ops.tensor(x.shape, gx)]
    }

    /// Slice scatters the output gradient back to the positions it was read from.
    static let slice: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let r = x.rank
        guard let starts = c.intInput(1), c.intInput(2) != nil else { throw c.fail("no starts and ends") }
        let axes = c.intInput(3) ?? Array(0..<starts.count)
        let steps = c.intInput(4) ?? [Int](repeating: 1, count: starts.count)
        var first = [Int](repeating: 0, count: r), step = [Int](repeating: 1, count: r)
        for (i, a0) in axes.enumerated() where i < starts.count && i < steps.count {
            let a = try c.axis(a0, rank: r)
            let dim = x.shape[a], st = steps[i]
            var s = starts[i]
            if s < 0 { s += dim }
            s = st > 0 ? min(max(s, 0), dim) : min(max(s, -1), dim - 1)
            first[a] = s
            step[a] = st
        }
        if r > 0, step.allSatisfy({ $0 == 1 }), y.shape.count == r,
           zip(zip(first, y.shape), x.shape).allSatisfy({ $0.0 >= 0 && $0.0 + $0.1 <= $1 }) {
            // Unit steps: the gradient is a box of gx, pasted row by row (the element walk took
            // 3% of an LSTM step, whose export slices its weights into gates on every forward),
            // from the gradient's buffer into the result's.
            let g = c.gradTensor()
            var gx = Tensor(zeros: .float32, shape: x.shape)
            g.withUnsafeBytes { src in
                gx.withUnsafeMutableBytes { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return }
                    Layout.pasteBox(s, count: y.shape, into: d, shape: x.shape, start: first, elementWidth: 4)
                }
            }
            return [gx]
        }
        let g = c.grad()
        var gx = [Float](repeating: 0, count: x.elementCount)
        let inStrides = Ops.strides(x.shape)
        var index = [Int](repeating: 0, count: r)
        for o in 0..<y.elementCount {
            var src = 0
            for d in 0..<r { src += (first[d] + index[d] * step[d]) * inStrides[d] }
            gx[src] += g[o]
            var d = r - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < y.shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return [Ops.tensor(x.shape, gx)]
    }

    /// Gather (an embedding lookup when axis = 0): gradient rows are summed into the rows they came from.
    static let gather: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0), indices = try c.input(1)
        let axis = try c.axis(try c.int("axis", 0), rank: x.rank)
        let (outer, size, inner) = Ops.split(x.shape, axis: axis)
        let idx = Ops.ints(indices)
        let g = c.grad()
        var gx = [Float](repeating: 0, count: x.elementCount)
        let n = idx.count
        for o in 0..<outer {
            for (j, i0) in idx.enumerated() {
                let i = i0 < 0 ? i0 + size : i0
                guard i >= 0 && i < size else { throw c.fail("index \(i0) is outside axis size \(size)") }
                let src = (o * n + j) * inner, dst = (o * size + i) * inner
                for k in 0..<inner { gx[dst + k] += g[src + k] }
            }
        }
        return [Ops.tensor(x.shape, gx), nil]
    }

    /// ReduceSum / ReduceMean: the gradient broadcast back over the reduced axes (divided by the
    /// count for the mean). Axes from the second input.
    static func reduce(mean: Bool) -> GradientRule {
        { c throws(AutogradError) in
            let x = try c.input(0)
            let keep = try c.int("keepdims", 1) != 0
            var axes = c.intInput(1) ?? []
            if axes.isEmpty {
                if try c.int("noop_with_empty_axes", 0) != 0 { return [Ops.tensor(x.shape, c.grad())] }
                axes = Array(0..<x.rank)
            }
            var set = Set<Int>()
            for a in axes { set.insert(try c.axis(a, rank: x.rank)) }
            let keptShape = x.shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }
            _ = keep
            var g = Ops.broadcast(c.grad(), from: keptShape, to: x.shape)
            if mean {
                let count = Float(set.reduce(1) { $0 * x.shape[$1] })
                g = g.map { $0 / count }
            }
            return [Ops.tensor(x.shape, g)]
        }
    }
}
