import DLGraph
import DLKernels
import DLTensor
import Foundation

extension Rules {
    static let elementwise: [(String, GradientRule)] = [
        ("Add", binary { _, _, g in (g, g) }),
        ("Sub", binary { _, _, g in (g, -g) }),
        ("Mul", binary { a, b, g in (g * b, g * a) }),
        ("Div", binary { a, b, g in (g / b, -g * a / (b * b)) }),
        ("Pow", binary { a, b, g in
            (g * b * Float(pow(Double(a), Double(b - 1))), a > 0 ? g * Float(pow(Double(a), Double(b)) * log(Double(a))) : 0)
        }),
        ("Identity", unaryFromInput { _, g in g }),
        ("Neg", unaryFromInput { _, g in -g }),
        ("Relu", relu),
        ("Abs", unaryFromInput { x, g in x > 0 ? g : (x < 0 ? -g : 0) }),
        ("Sigmoid", unaryFromOutput { y, g in g * y * (1 - y) }),
        ("Tanh", unaryFromOutput { y, g in g * (1 - y * y) }),
        ("Exp", unaryFromOutput { y, g in g * y }),
        ("Sqrt", unaryFromOutput { y, g in g / (2 * y) }),
        ("Reciprocal", unaryFromOutput { y, g in -g * y * y }),
        ("Log", unaryFromInput { x, g in g / x }),
        ("Erf", unaryFromInput { x, g in g * Float(2 / Double.pi.squareRoot()) * Foundation.exp(-x * x) }),
        ("Softplus", unaryFromInput { x, g in g / (1 + Foundation.exp(-x)) }),
        ("LeakyRelu", leakyRelu), ("Elu", elu), ("Gelu", gelu), ("Clip", clip), ("Where", whereRule),
        ("Softmax", softmax(log: false)), ("LogSoftmax", softmax(log: true)),
    ]

    /// A broadcasting binary op given d/da and d/db of one element.
    static func binary(_ f: @escaping @Sendable (Float, Float, Float) -> (Float, Float)) -> GradientRule {
        { c throws(AutogradError) in
            let a = try c.input(0), b = try c.input(1)
            guard let y = c.outputs.first else { throw c.fail("no output recorded") }
            let shape = y.shape
            let av = Ops.broadcast(Ops.floats(a), from: a.shape, to: shape)
            let bv = Ops.broadcast(Ops.floats(b), from: b.shape, to: shape)
            let g = c.grad()
            var ga = [Float](repeating: 0, count: g.count), gb = ga
            for i in 0..<g.count {
                let (da, db) = f(av[i], bv[i], g[i])
                ga[i] = da
                gb[i] = db
            }
            return [c.need(0) ? Ops.tensor(a.shape, Ops.reduce(ga, from: shape, to: a.shape)) : nil,
                    c.need(1) ? Ops.tensor(b.shape, Ops.reduce(gb, from: shape, to: b.shape)) : nil]
        }
    }

    static func unaryFromInput(_ f: @escaping @Sendable (Float, Float) -> Float) -> GradientRule {
        { c throws(AutogradError) in try unary(c, source: Ops.float32(try c.input(0)), f) }
    }

    static func unaryFromOutput(_ f: @escaping @Sendable (Float, Float) -> Float) -> GradientRule {
        { c throws(AutogradError) in
            let x = try c.input(0)
            guard let y = c.outputs.first else { throw c.fail("no output recorded") }
            return try unary(c, source: Ops.float32(y).reshapedOrSelf(x.shape), f)
        }
    }

    /// Relu: the gradient where the input is positive, else 0 (one plain loop, no closure call).
    static let relu: GradientRule = { c throws(AutogradError) in
        let source = Ops.float32(try c.input(0))
        var out = Tensor(zeros: .float32, shape: source.shape)
        guard let g = c.outputGrads.first.flatMap({ $0 }).map(Ops.float32), g.elementCount == source.elementCount else { return [out] }
        source.withUnsafeBufferPointer(as: Float.self) { sb in
            g.withUnsafeBufferPointer(as: Float.self) { gb in
                out.withUnsafeMutableBufferPointer(as: Float.self) { ob in
                    guard let s0 = sb.baseAddress, let g0 = gb.baseAddress, let o0 = ob.baseAddress else { return }
                    TrainingBackward.reluGradient(x: s0, gradient: g0, into: o0, count: ob.count)
                }
            }
        }
        return [out]
    }

    /// out[i] = f(source[i], gradient[i]) over the buffers, shaped like the input.
    static func unary(_ c: RuleContext, source: Tensor, _ f: (Float, Float) -> Float) throws(AutogradError) -> [Tensor?] {
        var out = Tensor(zeros: .float32, shape: source.shape)
        guard let g = c.outputGrads.first.flatMap({ $0 }).map(Ops.float32), g.elementCount == source.elementCount else { return [out] }
        source.withUnsafeBufferPointer(as: Float.self) { sb in
            g.withUnsafeBufferPointer(as: Float.self) { gb in
                out.withUnsafeMutableBufferPointer(as: Float.self) { ob in
                    for i in 0..<ob.count { ob[i] = f(sb[i], gb[i]) }
                }
            }
        }
        return [out]
    }

    static let leakyRelu: GradientRule = { c throws(AutogradError) in
        let alpha = try c.float("alpha", 0.01)
        return try unaryFromInput { x, g in x > 0 ? g : alpha * g }(c)
    }

    static let elu: GradientRule = { c throws(AutogradError) in
        let alpha = try c.float("alpha", 1)
        return try unaryFromInput { x, g in x > 0 ? g : g * alpha * Foundation.exp(x) }(c)
    }

    static let gelu: GradientRule = { c throws(AutogradError) in
        if try c.string("approximate", "none") == "tanh" {
            return try unaryFromInput { x, g in
                let k = Float((2 / Double.pi).squareRoot())
                let u = k * (x + 0.044715 * x * x * x)
                let t = Foundation.tanh(u)
                let du = k * (1 + 3 * 0.044715 * x * x)
                return g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du)
            }(c)
        }
        return try unaryFromInput { x, g in
            let cdf = 0.5 * (1 + Foundation.erf(x / Float(2.0.squareRoot())))
            let pdf = Foundation.exp(-0.5 * x * x) / Float((2 * Double.pi).squareRoot())
            return g * (cdf + x * pdf)
        }(c)
    }

    /// Clip passes the gradient where the input is inside [min, max].
    static let clip: GradientRule = { c throws(AutogradError) in
        var lo = -Float.infinity, hi = Float.infinity
        if c.inputs.count > 1, let t = c.inputs[1] { lo = Ops.floats(t).first ?? lo }
        if c.inputs.count > 2, let t = c.inputs[2] { hi = Ops.floats(t).first ?? hi }
        let (low, high) = (lo, hi)
        return try unaryFromInput { x, g in x >= low && x <= high ? g : 0 }(c)
    }

    static let whereRule: GradientRule = { c throws(AutogradError) in
        let cond = try c.input(0), a = try c.input(1), b = try c.input(2)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let shape = y.shape
        let mask = Ops.broadcast(cond.doubles().map { Float($0) }, from: cond.shape, to: shape)
        let g = c.grad()
        let ga = zip(mask, g).map { $0 != 0 ? $1 : 0 }
        let gb = zip(mask, g).map { $0 != 0 ? 0 : $1 }
        return [nil, c.need(1) ? Ops.tensor(a.shape, Ops.reduce(ga, from: shape, to: a.shape)) : nil,
                c.need(2) ? Ops.tensor(b.shape, Ops.reduce(gb, from: shape, to: b.shape)) : nil]
    }

    /// Softmax: dx = y (g - Σ g y); LogSoftmax: dx = g - exp(y) Σ g, over the axis (opset 13+)
    /// or over all axes from `axis` on (older opsets).
    static func softmax(log: Bool) -> GradientRule {
        { c throws(AutogradError) in
            let x = try c.input(0)
            guard let y = c.outputs.first else { throw c.fail("no output recorded") }
            let legacy = (c.opset ?? 13) < 13
            let axis = try c.axis(try c.int("axis", legacy ? 1 : -1), rank: x.rank)
            let outer: Int, size: Int, inner: Int
            if legacy {
                (outer, size, inner) = (x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *), 1)
            } else {
                (outer, size, inner) = Ops.split(x.shape, axis: axis)
            }
            let yv = Ops.floats(y), g = c.grad()
            var out = [Float](repeating: 0, count: yv.count)
            for o in 0..<outer {
                for i in 0..<inner {
                    let base = o * size * inner + i
                    var s: Float = 0
                    for k in 0..<size {
                        let idx = base + k * inner
                        s += log ? g[idx] : g[idx] * yv[idx]
                    }
                    for k in 0..<size {
                        let idx = base + k * inner
                        out[idx] = log ? g[idx] - Foundation.exp(yv[idx]) * s : yv[idx] * (g[idx] - s)
                    }
                }
            }
            return [Ops.tensor(x.shape, out)]
        }
    }
}
