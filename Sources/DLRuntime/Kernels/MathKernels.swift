#if canImport(Glibc)
import Glibc
#endif
import DLGraph
import DLTensor

/// The elementwise math, comparison, logic and bitwise ops over every numeric dtype, with numpy
/// broadcasting. Floats compute in Double and round once on store; integers in Int64 (wrapping,
/// unsigned 64-bit by bit pattern where it matters).
enum MathKernels {
    static var all: [KernelEntry] {
        var k: [KernelEntry] = []
        // Float functions of one argument; attributes read once per run.
        let floatUnary: [(String, @Sendable (KernelContext) throws(RuntimeError) -> (Double) -> Double)] = [
            ("Sqrt", { _ in { $0.squareRoot() } }), ("Exp", { _ in { exp($0) } }), ("Log", { _ in { log($0) } }),
            ("Sin", { _ in { sin($0) } }), ("Cos", { _ in { cos($0) } }), ("Tan", { _ in { tan($0) } }),
            ("Asin", { _ in { asin($0) } }), ("Acos", { _ in { acos($0) } }), ("Atan", { _ in { atan($0) } }),
            ("Sinh", { _ in { sinh($0) } }), ("Cosh", { _ in { cosh($0) } }), ("Asinh", { _ in { asinh($0) } }),
            ("Acosh", { _ in { acosh($0) } }), ("Atanh", { _ in { atanh($0) } }),
            ("Ceil", { _ in { $0.rounded(.up) } }), ("Floor", { _ in { $0.rounded(.down) } }),
            ("Round", { _ in { $0.rounded(.toNearestOrEven) } }), ("Reciprocal", { _ in { 1 / $0 } }),
            ("Erf", { _ in { erf($0) } }),
            ("Sigmoid", { _ in { sigmoid($0) } }), ("Tanh", { _ in { tanh($0) } }),
            ("Softplus", { _ in { x in x > 30 ? x : log1p(exp(x)) } }),
            ("Softsign", { _ in { $0 / (1 + abs($0)) } }),
            ("HardSwish", { _ in { x in x * max(0, min(1, x / 6 + 0.5)) } }),
            ("Mish", { _ in { x in x * tanh(x > 30 ? x : log1p(exp(x))) } }),
            ("Elu", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 1)); return { $0 < 0 ? a * (exp($0) - 1) : $0 } }),
            ("Selu", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 1.67326319217681884765625))
                let g = Double(try ctx.float("gamma", 1.05070102214813232421875))
                return { $0 <= 0 ? g * (a * exp($0) - a) : g * $0 } }),
            ("Celu", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 1)); return { max(0, $0) + min(0, a * (exp($0 / a) - 1)) } }),
            ("LeakyRelu", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 0.01)); return { $0 < 0 ? a * $0 : $0 } }),
            ("HardSigmoid", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 0.2)), b = Double(try ctx.float("beta", 0.5))
                return { x in let v = a * x + b; return v.isNaN ? v : max(0, min(1, v)) } }),
            ("ThresholdedRelu", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 1)); return { $0 > a ? $0 : 0 } }),
            ("Swish", { ctx throws(RuntimeError) in
                let a = Double(try ctx.float("alpha", 1)); return { $0 * sigmoid(a * $0) } }),
            ("Gelu", { ctx throws(RuntimeError) in
                if try ctx.string("approximate", "none") == "tanh" {
                    let c = (2 / Double.pi).squareRoot()
                    return { x in 0.5 * x * (1 + tanh(c * (x + 0.044715 * x * x * x))) }
                }
                return { x in 0.5 * x * (1 + erf(x / 2.0.squareRoot())) } }),
        ]
        for (name, make) in floatUnary {
            k.append(.init(name, { ctx throws(RuntimeError) in
                let x = try ctx.input(0)
                guard x.dtype.isFloatingPoint else { throw ctx.fail("\(name) needs a floating-point input, got \(x.dtype)") }
                let f = try make(ctx)
                if x.dtype == .float32 { return [mapFloat32(ctx, x, f)] }
                return [Tensor.fromDoubles(x.doubles().map(f), dtype: x.dtype, shape: x.shape)]
            }))
        }
        // Numeric functions defined on integers too.
        let numericUnary: [(String, @Sendable (KernelContext) throws(RuntimeError) -> ((Double) -> Double, (Int64) -> Int64))] = [
            ("Abs", { _ in ({ abs($0) }, { $0 == .min ? $0 : abs($0) }) }),
            ("Neg", { _ in ({ -$0 }, { 0 &- $0 }) }),
            ("Sign", { _ in ({ $0 > 0 ? 1 : $0 < 0 ? -1 : $0 }, { $0 > 0 ? 1 : $0 < 0 ? -1 : 0 }) }),
            ("Relu", { _ in ({ $0.isNaN ? $0 : max(0, $0) }, { max(0, $0) }) }),
            ("Shrink", { ctx throws(RuntimeError) in
                let bias = Double(try ctx.float("bias", 0)), l = Double(try ctx.float("lambd", 0.5))
                return ({ $0 < -l ? $0 + bias : $0 > l ? $0 - bias : 0 },
                        { x in Double(x) < -l ? x + Int64(bias) : Double(x) > l ? x - Int64(bias) : 0 }) }),
        ]
        for (name, make) in numericUnary {
            k.append(.init(name, { ctx throws(RuntimeError) in
                let x = try ctx.input(0)
                let (f, g) = try make(ctx)
                if x.dtype == .float32 { return [mapFloat32(ctx, x, f)] }
                if x.dtype.isFloatingPoint { return [Tensor.fromDoubles(x.doubles().map(f), dtype: x.dtype, shape: x.shape)] }
                guard x.dtype.isInteger else { throw ctx.fail("\(name) is not defined on \(x.dtype)") }
                if x.dtype.isUnsigned && (name == "Abs" || name == "Relu") { return [x] }
                return [Tensor.fromInt64s(x.int64s().map(g), dtype: x.dtype, shape: x.shape)]
            }))
        }
        k.append(.init("IsNaN", { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            return [Tensor.fromBools(x.doubles().map(\.isNaN), shape: x.shape)]
        }))
        k.append(.init("IsInf", { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            let neg = try ctx.int("detect_negative", 1) != 0, pos = try ctx.int("detect_positive", 1) != 0
            return [Tensor.fromBools(x.doubles().map { $0.isInfinite && ($0 > 0 ? pos : neg) }, shape: x.shape)]
        }))
        k.append(.init("Not", { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            return [Tensor.fromBools(x.bools().map { !$0 }, shape: x.shape)]
        }))
        k.append(.init("BitwiseNot", { ctx throws(RuntimeError) in
            let x = try ctx.input(0)
            guard x.dtype.isInteger else { throw ctx.fail("BitwiseNot needs an integer input, got \(x.dtype)") }
            return [Tensor.fromInt64s(x.int64s().map { ~$0 }, dtype: x.dtype, shape: x.shape)]
        }))
        k.append(.init("Clip", clip))
        for (name, op) in binaryOps { k.append(.init(name, binaryKernel(name, op))) }
        for name in ["Max", "Min", "Sum", "Mean"] { k.append(.init(name, variadic(name))) }
        k.append(.init("Where", whereKernel))
        k.append(.init("SwiGLU", { ctx throws(RuntimeError) in
            let a = try ctx.input(0), b = try ctx.input(1)
            guard a.shape == b.shape, a.dtype == b.dtype, a.dtype.isFloatingPoint else {
                throw ctx.fail("A and B must be floats of one type and shape, got \(a.dtype)\(a.shape) and \(b.dtype)\(b.shape)")
            }
            let alpha = Double(try ctx.float("alpha", 1))
            let x = a.doubles(), y = b.doubles()
            return [Tensor.fromDoubles((0..<x.count).map { x[$0] * sigmoid(alpha * x[$0]) * y[$0] }, dtype: a.dtype, shape: a.shape)]
        }))
        k.append(.init("Det", determinant))
        return k
    }

    /// Determinants of the trailing square matrices, by LU decomposition with partial pivoting.
    static let determinant: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        guard x.dtype.isFloatingPoint, x.rank >= 2, x.shape[x.rank - 1] == x.shape[x.rank - 2] else {
            throw ctx.fail("Det needs float square matrices in the last two dims, got \(x.dtype)\(x.shape)")
        }
        let n = x.shape[x.rank - 1], count = x.shape.dropLast(2).reduce(1, *)
        let v = x.doubles()
        var out: [Double] = []
        for m in 0..<count {
            var a = Array(v[(m * n * n)..<((m + 1) * n * n)])
            var det = 1.0
            for c in 0..<n {
                var p = c
                for r in (c + 1)..<max(n, c + 1) where abs(a[r * n + c]) > abs(a[p * n + c]) { p = r }
                if a[p * n + c] == 0 { det = 0; break }
                if p != c {
                    for k in 0..<n { a.swapAt(p * n + k, c * n + k) }
                    det = -det
                }
                det *= a[c * n + c]
                for r in (c + 1)..<max(n, c + 1) {
                    let f = a[r * n + c] / a[c * n + c]
                    for k in c..<n { a[r * n + k] -= f * a[c * n + k] }
                }
            }
            out.append(det)
        }
        return [Tensor.fromDoubles(out, dtype: x.dtype, shape: Array(x.shape.dropLast(2)))]
    }

    static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

    /// One binary op: its Double form, its Int64 form (nil when not defined on integers), and
    /// whether it yields bool.
    struct BinaryOp: Sendable {
        var float: (@Sendable (Double, Double) -> Double)?
        var int: (@Sendable (Int64, Int64, Bool) -> Int64)?   // third argument: unsigned
        var compare: (@Sendable (Double, Double) -> Bool)? = nil
        var intCompare: (@Sendable (Int64, Int64, Bool) -> Bool)? = nil
        var logical: (@Sendable (Bool, Bool) -> Bool)? = nil
    }

    static let binaryOps: [(String, BinaryOp)] = [
        ("Add", BinaryOp(float: { $0 + $1 }, int: { a, b, _ in a &+ b })),
        ("Sub", BinaryOp(float: { $0 - $1 }, int: { a, b, _ in a &- b })),
        ("Mul", BinaryOp(float: { $0 * $1 }, int: { a, b, _ in a &* b })),
        ("Div", BinaryOp(float: { $0 / $1 }, int: { a, b, u in
            b == 0 ? 0 : u ? Int64(bitPattern: UInt64(bitPattern: a) / UInt64(bitPattern: b)) : (a == .min && b == -1 ? a : a / b) })),
        ("Pow", BinaryOp(float: { pow($0, $1) }, int: { a, b, _ in
            b < 0 ? (a == 1 ? 1 : a == -1 ? (b % 2 == 0 ? 1 : -1) : 0) : intPow(a, b) })),
        ("Equal", BinaryOp(float: nil, int: nil, compare: { $0 == $1 }, intCompare: { a, b, _ in a == b })),
        ("Greater", BinaryOp(float: nil, int: nil, compare: { $0 > $1 }, intCompare: { a, b, u in u ? UInt64(bitPattern: a) > UInt64(bitPattern: b) : a > b })),
        ("Less", BinaryOp(float: nil, int: nil, compare: { $0 < $1 }, intCompare: { a, b, u in u ? UInt64(bitPattern: a) < UInt64(bitPattern: b) : a < b })),
        ("GreaterOrEqual", BinaryOp(float: nil, int: nil, compare: { $0 >= $1 }, intCompare: { a, b, u in u ? UInt64(bitPattern: a) >= UInt64(bitPattern: b) : a >= b })),
        ("LessOrEqual", BinaryOp(float: nil, int: nil, compare: { $0 <= $1 }, intCompare: { a, b, u in u ? UInt64(bitPattern: a) <= UInt64(bitPattern: b) : a <= b })),
        ("And", BinaryOp(float: nil, int: nil, logical: { $0 && $1 })),
        ("Or", BinaryOp(float: nil, int: nil, logical: { $0 || $1 })),
        ("Xor", BinaryOp(float: nil, int: nil, logical: { $0 != $1 })),
        ("BitwiseAnd", BinaryOp(float: nil, int: { a, b, _ in a & b })),
        ("BitwiseOr", BinaryOp(float: nil, int: { a, b, _ in a | b })),
        ("BitwiseXor", BinaryOp(float: nil, int: { a, b, _ in a ^ b })),
        ("PRelu", BinaryOp(float: { $0 < 0 ? $0 * $1 : $0 }, int: { a, b, _ in a < 0 ? a &* b : a })),
    ]

    /// `f` of every element of a float32 tensor, computed in Double and rounded once, as the
    /// Double path below does, read and written in place of its two Double arrays (a
    /// [1, 96, 96, 16] Exp: 1.69 ms that way).
    static func mapFloat32(_ ctx: KernelContext, _ x: Tensor, _ f: (Double) -> Double) -> Tensor {
        let out = ctx.inPlaceOutput(.float32, shape: x.shape) ?? ctx.makeOutput(.float32, shape: x.shape)
        x.withUnsafeBufferPointer(as: Float.self) { src in
            out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { dst in
                for i in 0..<min(src.count, dst.count) { dst[i] = Float(f(Double(src[i]))) }
            }
        }
        return out
    }

    static func intPow(_ a: Int64, _ b: Int64) -> Int64 {
        var result: Int64 = 1, base = a, e = b
        while e > 0 {
            if e & 1 == 1 { result = result &* base }
            base = base &* base
            e >>= 1
        }
        return result
    }

    /// Shape and per-input element maps of a broadcasting op.
    static func broadcast(_ ctx: KernelContext, _ tensors: [Tensor]) throws(RuntimeError) -> ([Int], [[Int]]) {
        try ctx.broadcastMaps(tensors.map(\.shape))
    }

    static func binaryKernel(_ name: String, _ op: BinaryOp) -> Kernel {
        // The typed loops over the types they take; the general path below for the rest.
        let typed: Kernel?
        switch name {
        case "Add": typed = ElementwiseKernels.binary(.add)
        case "Sub": typed = ElementwiseKernels.binary(.sub)
        case "Mul": typed = ElementwiseKernels.binary(.mul)
        case "Div": typed = ElementwiseKernels.binary(.div)
        case "Pow": typed = ElementwiseKernels.pow
        case "PRelu": typed = ElementwiseKernels.binary(.prelu)
        default: typed = nil
        }
        let fastTypes: [DType] = name == "Pow" ? [.float32] : [.float32, .int32, .int64]
        return { ctx throws(RuntimeError) in
            let a = try ctx.input(0), b = try ctx.input(1)
            // The typed loops work the output shape out when the plan has none (ops typed at run
            // time, PRelu among them), so they take every same-typed pair.
            if let typed, a.dtype == b.dtype, fastTypes.contains(a.dtype) {
                return try typed(ctx)
            }
            let (shape, maps) = try broadcast(ctx, [a, b])
            let ma = maps[0], mb = maps[1]
            let n = shape.reduce(1, *)
            if let logical = op.logical {
                let x = a.bools(), y = b.bools()
                return [Tensor.fromBools((0..<n).map { logical(x[ma[$0]], y[mb[$0]]) }, shape: shape)]
            }
            if a.dtype == .string || b.dtype == .string {
                guard name == "Equal", a.dtype == b.dtype else { throw ctx.fail("\(name) is not defined on strings") }
                return [Tensor.fromBools((0..<n).map { a.strings[ma[$0]] == b.strings[mb[$0]] }, shape: shape)]
            }
            let useInt = a.dtype.isInteger || a.dtype == .bool
            if let cmp = op.compare {
                if useInt && b.dtype.isInteger || a.dtype == .bool, let icmp = op.intCompare {
                    let x = a.int64s(), y = b.int64s(), u = a.dtype.isUnsigned
                    return [Tensor.fromBools((0..<n).map { icmp(x[ma[$0]], y[mb[$0]], u) }, shape: shape)]
                }
                let x = a.doubles(), y = b.doubles()
                return [Tensor.fromBools((0..<n).map { cmp(x[ma[$0]], y[mb[$0]]) }, shape: shape)]
            }
            if useInt {
                if name == "Pow" && b.dtype.isFloatingPoint {
                    let x = a.doubles(), y = b.doubles()
                    return [Tensor.fromDoubles((0..<n).map { pow(x[ma[$0]], y[mb[$0]]) }, dtype: a.dtype, shape: shape)]
                }
                guard let f = op.int else { throw ctx.fail("\(name) is not defined on \(a.dtype)") }
                let x = a.int64s(), y = b.int64s(), u = a.dtype.isUnsigned
                return [Tensor.fromInt64s((0..<n).map { f(x[ma[$0]], y[mb[$0]], u) }, dtype: a.dtype, shape: shape)]
            }
            guard a.dtype.isFloatingPoint, let f = op.float else { throw ctx.fail("\(name) is not defined on \(a.dtype)") }
            let x = a.doubles(), y = b.doubles()
            return [Tensor.fromDoubles((0..<n).map { f(x[ma[$0]], y[mb[$0]]) }, dtype: a.dtype, shape: shape)]
        }
    }

    static func variadic(_ name: String) -> Kernel {
        // Two operands of one type go through the typed broadcast loops: Sum of any of the three
        // types, Max and Min of integers (float Max and Min have their fast kernels in front).
        let typed: Kernel? = switch name {
        case "Max": ElementwiseKernels.binary(.max)
        case "Min": ElementwiseKernels.binary(.min)
        case "Sum": ElementwiseKernels.binary(.add)
        default: nil
        }
        return { ctx throws(RuntimeError) in
            let ts = ctx.inputs.compactMap { $0 }
            if let typed, ctx.inputs.count == 2, ts.count == 2, ts[0].dtype == ts[1].dtype,
               [.float32, .int32, .int64].contains(ts[0].dtype) {
                return try typed(ctx)
            }
            guard let first = ts.first else { throw ctx.fail("\(name) needs at least one input") }
            let (shape, maps) = try broadcast(ctx, ts)
            let n = shape.reduce(1, *)
            if first.dtype.isInteger {
                let vals = ts.map { $0.int64s() }
                let u = first.dtype.isUnsigned
                var out = (0..<n).map { vals[0][maps[0][$0]] }
                for j in 1..<ts.count {
                    for i in 0..<n {
                        let v = vals[j][maps[j][i]]
                        switch name {
                        case "Max": out[i] = u ? (UInt64(bitPattern: v) > UInt64(bitPattern: out[i]) ? v : out[i]) : max(out[i], v)
                        case "Min": out[i] = u ? (UInt64(bitPattern: v) < UInt64(bitPattern: out[i]) ? v : out[i]) : min(out[i], v)
                        default: out[i] = out[i] &+ v
                        }
                    }
                }
                if name == "Mean" { out = out.map { $0 / Int64(ts.count) } }
                return [Tensor.fromInt64s(out, dtype: first.dtype, shape: shape)]
            }
            let vals = ts.map { $0.doubles() }
            var out = (0..<n).map { vals[0][maps[0][$0]] }
            for j in 1..<ts.count {
                for i in 0..<n {
                    let v = vals[j][maps[j][i]]
                    switch name {
                    case "Max": out[i] = v.isNaN || out[i].isNaN ? .nan : max(out[i], v)
                    case "Min": out[i] = v.isNaN || out[i].isNaN ? .nan : min(out[i], v)
                    default: out[i] += v
                    }
                }
            }
            if name == "Mean" { out = out.map { $0 / Double(ts.count) } }
            return [Tensor.fromDoubles(out, dtype: first.dtype, shape: shape)]
        }
    }

    static let whereKernel: Kernel = { ctx throws(RuntimeError) in
        let c = try ctx.input(0), a = try ctx.input(1), b = try ctx.input(2)
        guard a.dtype == b.dtype else { throw ctx.fail("Where needs X and Y of one type, got \(a.dtype) and \(b.dtype)") }
        let (shape, maps) = try broadcast(ctx, [c, a, b])
        let cond = c.bools()
        let n = shape.reduce(1, *)
        // Pick from a or b: gather from the concatenation of both.
        let both = concatFlat(a, b)
        let offset = a.elementCount
        let idx = (0..<n).map { cond[maps[0][$0]] ? maps[1][$0] : offset + maps[2][$0] }
        return [both.gathered(idx, shape: shape)]
    }

    /// Both tensors' elements, a's first, as one flat tensor.
    static func concatFlat(_ a: Tensor, _ b: Tensor) -> Tensor {
        if a.dtype == .string { return Tensor(shape: [a.elementCount + b.elementCount], strings: a.strings + b.strings) }
        var out = Tensor(zeros: a.dtype, shape: [a.elementCount + b.elementCount])
        out.withUnsafeMutableBytes { dst in
            a.withUnsafeBytes { sa in
                b.withUnsafeBytes { sb in
                    guard let d = dst.baseAddress else { return }
                    if let p = sa.baseAddress { d.copyMemory(from: p, byteCount: sa.count) }
                    if let p = sb.baseAddress { (d + sa.count).copyMemory(from: p, byteCount: sb.count) }
                }
            }
        }
        return out
    }

    static let clip: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0)
        let lo = ctx.optionalInput(1), hi = ctx.optionalInput(2)
        if x.dtype.isInteger {
            let l = lo?.int64s().first ?? .min, h = hi?.int64s().first ?? .max
            return [Tensor.fromInt64s(x.int64s().map { min(max($0, l), h) }, dtype: x.dtype, shape: x.shape)]
        }
        let l = lo?.doubles().first ?? -.infinity
        let h = hi?.doubles().first ?? .infinity
        return [Tensor.fromDoubles(x.doubles().map { $0.isNaN ? $0 : min(max($0, l), h) }, dtype: x.dtype, shape: x.shape)]
    }
}

extension DType {
    var isUnsigned: Bool { [.uint8, .uint16, .uint32, .uint64].contains(self) }
}
