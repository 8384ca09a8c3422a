import DLGraph
import DLTensor

/// Rules for ops that pick or repeat elements: Max/Min (elementwise, variadic, broadcasting),
/// ReduceMax/ReduceMin/ReduceProd, Tile and Pad (constant, edge, reflect, wrap; negative pads).
extension Rules {
    static let selection: [(String, GradientRule)] = [
        ("Max", pick), ("Min", pick),
        ("ReduceMax", reduceExtreme), ("ReduceMin", reduceExtreme), ("ReduceProd", reduceProd),
        ("Tile", tile), ("Pad", pad),
    ]

    /// Row-major strides of `shape`.
    static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) { s[d] = acc; acc *= shape[d] }
        return s
    }

    /// Max / Min: each output element's gradient goes to the inputs that hold the chosen value,
    /// shared evenly on ties (as torch.maximum / torch.minimum do).
    static let pick: GradientRule = { c throws(AutogradError) in
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let shape = y.shape
        let yv = Ops.floats(y)
        var values: [[Float]] = []
        for i in 0..<c.inputs.count {
            let x = try c.input(i)
            values.append(Ops.broadcast(Ops.floats(x), from: x.shape, to: shape))
        }
        let g = c.grad()
        var grads = [[Float]](repeating: [Float](repeating: 0, count: g.count), count: values.count)
        for e in 0..<g.count {
            var ties = 0
            for v in values where v[e] == yv[e] { ties += 1 }
            guard ties > 0 else { continue }
            let share = g[e] / Float(ties)
            for k in 0..<values.count where values[k][e] == yv[e] { grads[k][e] = share }
        }
        var out: [Tensor?] = []
        for i in 0..<values.count {
            let x = try c.input(i)
            out.append(c.need(i) ? Ops.tensor(x.shape, Ops.reduce(grads[i], from: shape, to: x.shape)) : nil)
        }
        return out
    }

    /// The reduced axes of a Reduce* node (its second input) and
    /// the input's shape with them kept as 1; nil axes set means "no-op" (noop_with_empty_axes).
    static func reducedShape(_ c: RuleContext, _ x: Tensor) throws(AutogradError) -> [Int]? {
        var axes = c.intInput(1) ?? []
        if axes.isEmpty {
            if try c.int("noop_with_empty_axes", 0) != 0 { return nil }
            axes = Array(0..<x.rank)
        }
        var set = Set<Int>()
        for a in axes { set.insert(try c.axis(a, rank: x.rank)) }
        return x.shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }
    }

    /// For each element of `shape`, the flat index of its group in `kept` (same rank, 1 on reduced axes).
    static func groupIndex(_ shape: [Int], kept: [Int]) -> [Int] {
        let ks = strides(kept)
        let n = shape.reduce(1, *)
        var out = [Int](repeating: 0, count: n)
        var idx = [Int](repeating: 0, count: shape.count)
        for e in 0..<n {
            var k = 0
            for d in 0..<shape.count where kept[d] != 1 { k += idx[d] * ks[d] }
            out[e] = k
            var d = shape.count - 1
            while d >= 0 {
                idx[d] += 1
                if idx[d] < shape[d] { break }
                idx[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// ReduceMax / ReduceMin: the gradient goes to the elements equal to the result, shared evenly
    /// on ties (as torch.amax / torch.amin do).
    static let reduceExtreme: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        guard let kept = try reducedShape(c, x) else { return [Ops.tensor(x.shape, c.grad())] }
        let xv = Ops.floats(x), yv = Ops.floats(y), g = c.grad()
        let group = groupIndex(x.shape, kept: kept)
        var ties = [Float](repeating: 0, count: yv.count)
        for e in 0..<xv.count where xv[e] == yv[group[e]] { ties[group[e]] += 1 }
        var gx = [Float](repeating: 0, count: xv.count)
        for e in 0..<xv.count where xv[e] == yv[group[e]] { gx[e] = g[group[e]] / ties[group[e]] }
        return [Ops.tensor(x.shape, gx)]
    }

    /// ReduceProd: each element's gradient is the product of the others in its group (exact with
    /// zeros: one zero passes the product of the rest to it, two or more give zero everywhere).
    static let reduceProd: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let kept = try reducedShape(c, x) else { return [Ops.tensor(x.shape, c.grad())] }
        let xv = Ops.floats(x), g = c.grad()
        let group = groupIndex(x.shape, kept: kept)
        let groups = kept.reduce(1, *)
        var nonzero = [Float](repeating: 1, count: groups), zeros = [Int](repeating: 0, count: groups)
        for e in 0..<xv.count {
            if xv[e] == 0 { zeros[group[e]] += 1 } else { nonzero[group[e]] *= xv[e] }
        }
        var gx = [Float](repeating: 0, count: xv.count)
        for e in 0..<xv.count {
            let k = group[e]
            switch zeros[k] {
            case 0: gx[e] = g[k] * nonzero[k] / xv[e]
            case 1: gx[e] = xv[e] == 0 ? g[k] * nonzero[k] : 0
            default: gx[e] = 0
            }
        }
        return [Ops.tensor(x.shape, gx)]
    }

    /// For each output element of an op that reads input element `source(outIndex)` (or none),
    /// accumulates the output gradient into the input's.
    static func scatterBack(_ g: [Float], outShape: [Int], inShape: [Int], _ source: (_ d: Int, _ o: Int) -> Int?) -> [Float] {
        let inStrides = strides(inShape)
        var gx = [Float](repeating: 0, count: inShape.reduce(1, *))
        var idx = [Int](repeating: 0, count: outShape.count)
        for e in 0..<g.count {
            var flat = 0, inside = true
            for d in 0..<outShape.count {
                guard let i = source(d, idx[d]) else { inside = false; break }
                flat += i * inStrides[d]
            }
            if inside { gx[flat] += g[e] }
            var d = outShape.count - 1
            while d >= 0 {
                idx[d] += 1
                if idx[d] < outShape[d] { break }
                idx[d] = 0
                d -= 1
            }
        }
        return gx
    }

    /// Tile: every copy's gradient summed back into the input.
    static let tile: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        guard y.rank == x.rank else { throw c.fail("output rank \(y.rank) differs from input rank \(x.rank)") }
        let shape = x.shape
        guard !shape.contains(0) else { return [Ops.tensor(x.shape, [])] }
        return [Ops.tensor(x.shape, scatterBack(c.grad(), outShape: y.shape, inShape: shape) { d, o in o % shape[d] }), nil]
    }

    /// Pad: the output gradient read back at the input positions each output element came from
    /// (none for constant padding; the clamped, mirrored or wrapped position otherwise).
    static let pad: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let rank = x.rank
        guard let pads = c.intInput(1) else { throw c.fail("no pads") }
        var axes = Array(0..<rank)
        if let a = c.intInput(3) {
            axes = []
            for v in a { axes.append(try c.axis(v, rank: rank)) }
        }
        guard pads.count == 2 * axes.count else { throw c.fail("\(pads.count) pads for \(axes.count) axes") }
        var begin = [Int](repeating: 0, count: rank)
        for (k, a) in axes.enumerated() { begin[a] = pads[k] }
        let mode = try c.string("mode", "constant")
        let shape = x.shape
        guard !shape.contains(0) else { return [Ops.tensor(x.shape, [])] }
        let source: (Int, Int) -> Int?
        switch mode {
        case "constant":
            source = { d, o in let i = o - begin[d]; return i >= 0 && i < shape[d] ? i : nil }
        case "edge":
            source = { d, o in min(max(o - begin[d], 0), shape[d] - 1) }
        case "reflect":
            source = { d, o in
                let n = shape[d]
                guard n > 1 else { return 0 }
                let period = 2 * (n - 1)
                var i = (o - begin[d]) % period
                if i < 0 { i += period }
                return i < n ? i : period - i
            }
        case "wrap":
            source = { d, o in
                var i = (o - begin[d]) % shape[d]
                if i < 0 { i += shape[d] }
                return i
            }
        default:
            throw c.unsupported("mode '\(mode)' has no gradient rule")
        }
        return [Ops.tensor(x.shape, scatterBack(c.grad(), outShape: y.shape, inShape: shape, source))]
    }
}
