import Foundation
import DLGraph
import DLKernels
import DLTensor

/// `ai.dlkit.Requantize(x, left, multiplier, right, real_scale, y_scale, y_zero_point)` (see
/// `FuseRequantize`): per element, with the float64 constants taken at the element's position on
/// the last axis when they hold one value per position,
///
///     h = (Double(x) * left) * multiplier;  t = floor(h + 0.5);  d = t * right
///     u = floor(|d| + 0.5) * sign(d);  r = Float(u) * real_scale;  r = act(r)
///     y = saturate(round_half_even(Double(r / y_scale)) + y_zero_point)
///
/// the same operations in the same order as the chain of IR ops it replaces (Cast, Mul, Add,
/// Floor, Abs, Sign, Cast, Mul, Relu or Clip, QuantizeLinear), so the same bits, in one pass
/// over typed buffers. `ai.dlkit.FixedPointMultiply(x, left, multiplier, right, x_offset,
/// x_scale)` is its first half, u in float64, of (x − x_offset)·x_scale (both optional float64
/// scalars: the centring and shift of an 8-bit ADD's inputs).
enum RequantizeKernel {
    /// x, and the fixed-point constants (left, multiplier, right: one value or one per element
    /// of x's last axis) of a Requantize or FixedPointMultiply node.
    struct FixedPoint {
        let x: Tensor
        let left, multiplier, right: [Double]
        /// x is taken as (x − offset)·scale (FixedPointMultiply's inputs 4 and 5; 0 and 1 otherwise).
        let offset, scale: Double
        let channels: Int
        var perChannel: Bool { left.count > 1 || multiplier.count > 1 || right.count > 1 }

        /// x (input 0, or `x`) and the constants from inputs base + 1 ... base + 3 (a node that
        /// carries Requantize's inputs after its own has them at an offset).
        init(_ ctx: KernelContext, x given: Tensor? = nil, base: Int = 0, prefix: Bool = false) throws(RuntimeError) {
            let x: Tensor
            if let given { x = given } else { x = try ctx.input(0) }
            guard x.dtype.isInteger || x.dtype.isFloatingPoint else { throw ctx.fail("x must be numeric, got \(x.dtype)") }
            let channels = x.rank == 0 ? 1 : x.shape[x.rank - 1]
            func constant(_ i: Int, _ label: String) throws(RuntimeError) -> [Double] {
                guard let t = i == 1 ? ctx.optionalInput(base + 1) : try ctx.input(base + i) else { return [1] }
                guard t.dtype == .float64, t.rank <= 1, t.elementCount == 1 || t.elementCount == channels else {
                    throw ctx.fail("\(label) must be float64, one value or one per element of x's last axis (\(channels)), got \(t.dtype) \(t.shape)")
                }
                return t.scalars(as: Double.self)
            }
            (self.x, self.channels) = (x, channels)
            (left, multiplier, right) = (try constant(1, "left"), try constant(2, "multiplier"), try constant(3, "right"))
            func scalar(_ i: Int, _ label: String, _ absent: Double) throws(RuntimeError) -> Double {
                guard prefix, let t = ctx.optionalInput(i) else { return absent }
                guard t.dtype == .float64, t.elementCount == 1, let v = t.scalars(as: Double.self).first else {
                    throw ctx.fail("\(label) must be one float64 value, got \(t.dtype) \(t.shape)")
                }
                return v
            }
            (offset, scale) = (try scalar(4, "x_offset", 0), try scalar(5, "x_scale", 1))
        }

        /// x's element type for the vector kernels, when they take it.
        var values: IntegerRequantize.Values? {
            switch x.dtype {
            case .int32: return .int32
            case .float64: return .float64
            case .int8: return .int8
            case .uint8: return .uint8
            default: return nil
            }
        }

        /// u for x value `xi` by constants l, m, r: (xi · l) · m rounded half up, times r,
        /// rounded half away from zero.
        @inline(__always) static func quanta(_ xi: Double, _ l: Double, _ m: Double, _ r: Double) -> Double {
            let d = floor((xi * l) * m + 0.5) * r
            return floor(Swift.abs(d) + 0.5) * (d > 0 ? 1 : d < 0 ? -1 : 0)
        }

        /// floor(v) without a call into libm (the baseline x86-64 target has no SSE4.1 round):
        /// through Int64 while |v| < 2^62, where that is exact.
        @inline(__always) static func floor(_ v: Double) -> Double {
            guard Swift.abs(v) < 4.6e18 else { return v.rounded(.down) }
            let t = Double(Int64(v))
            return t > v ? t - 1 : t
        }

        /// left, multiplier and right with `width` values each (one value repeated).
        func constants(width: Int) -> (left: [Double], multiplier: [Double], right: [Double]) {
            func expanded(_ v: [Double]) -> [Double] { v.count == width ? v : [Double](repeating: v[0], count: width) }
            return (expanded(left), expanded(multiplier), expanded(right))
        }

        /// `body(start, u)` for consecutive chunks of u, in order.
        func forEachChunk(_ body: (Int, UnsafeBufferPointer<Double>) -> Void) {
            let n = x.elementCount, width = perChannel ? channels : 1
            guard n > 0, width > 0 else { return }
            let (l, m, r) = constants(width: width)
            let wide: [Double] = x.dtype == .int32 ? [] : x.doubles()
            let chunk = Swift.min(n, 4096)
            var buffer = [Double](repeating: 0, count: chunk)
            buffer.withUnsafeMutableBufferPointer { u in
                l.withUnsafeBufferPointer { l in
                    m.withUnsafeBufferPointer { m in
                        r.withUnsafeBufferPointer { r in
                            var start = 0, c = 0
                            while start < n {
                                let count = Swift.min(chunk, n - start)
                                if x.dtype == .int32 {
                                    x.withUnsafeBufferPointer(as: Int32.self) { src in
                                        for j in 0..<count { u[j] = Double(src[start + j]) }
                                    }
                                } else {
                                    for j in 0..<count { u[j] = wide[start + j] }
                                }
                                for j in 0..<count {
                                    u[j] = Self.quanta((u[j] - offset) * scale, l[c], m[c], r[c])
                                    c += 1
                                    if c == width { c = 0 }
                                }
                                body(start, UnsafeBufferPointer(rebasing: u[0..<count]))
                                start += count
                            }
                        }
                    }
                }
            }
        }
    }

    /// round(v) half to even without a call into libm: 2^52 added and taken away leaves v
    /// rounded to an integer by the default rounding (exact while |v| < 2^52).
    @inline(__always) static func roundHalfEven(_ v: Double) -> Double {
        let big = 4_503_599_627_370_496.0
        guard Swift.abs(v) < big else { return v.rounded(.toNearestOrEven) }
        let m = (Swift.abs(v) + big) - big
        return v < 0 ? -m : m
    }

    /// `ai.dlkit.FixedPointMultiply(x, left, multiplier, right, x_offset, x_scale)`: u in float64.
    static let fixedPointMultiply: Kernel = { ctx throws(RuntimeError) in
        let f = try FixedPoint(ctx, prefix: true)
        let out = ctx.makeOutput(.float64, shape: f.x.shape)
        guard out.elementCount > 0 else { return [out] }
        // On AVX-512: DLKernels' vector loop (the same roundings, eight lanes at a time).
        if let values = f.values, f.channels > 0 {
            let (l, m, r) = f.constants(width: f.channels)
            let done = f.x.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointerInPlace(as: Double.self) { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return false }
                    return IntegerRequantize.fixedPoint(s, values, rows: f.x.elementCount / f.channels, width: f.channels, offset: f.offset,
                                                        scale: f.scale, left: l, multiplier: m, right: r, into: d)
                }
            }
            if done { return [out] }
        }
        out.withUnsafeMutableBufferPointerInPlace(as: Double.self) { dst in
            f.forEachChunk { start, u in for j in 0..<u.count { dst[start + j] = u[j] } }
        }
        return [out]
    }

    /// `ai.dlkit.FixedPointAdd(a, a_left, a_multiplier, a_right, a_offset, a_scale, b, ...)` (an
    /// 8-bit ADD/SUB's raw sum, see `FuseRequantize`): FixedPointMultiply of a and of b, added
    /// or subtracted (`subtract`). For 8-bit inputs of one shape with one value per constant,
    /// u takes one of 256 values per input: each side's table holds the chain's u for every
    /// byte (`FixedPoint.quanta`, the scalar kernel's own arithmetic), and the sum is the float64
    /// sum of two table entries; anything else runs the ops it replaces.
    ///
    /// With a Requantize's six inputs after the twelve (and its activation attributes), the sum
    /// requantized. The output byte then depends on the two input bytes alone: for 8-bit inputs
    /// of one shape and one value per constant, it is one entry of a 256 x 256 table made once
    /// per model (`byteTables`) by the Requantize kernel over every pair's sum, so the entries
    /// are that kernel's bytes; anything else runs the sum and then the Requantize.
    static let fixedPointAdd: Kernel = { ctx throws(RuntimeError) in
        guard ctx.inputCount > 12 else { return try fixedPointSum(ctx) }
        let a = try ctx.input(0), b = try ctx.input(6)
        guard ctx.inputCount == 18 else { throw ctx.fail("takes 12 inputs, or 18 with a Requantize's six, got \(ctx.inputCount)") }
        let sumNode = Node(name: ctx.node.name, opType: "FixedPointAdd", domain: FusedOps.domain, inputs: Array(ctx.node.inputs.prefix(12)),
                           outputs: ctx.node.outputs, attributes: ctx.node.attributes.filter { $0.name == "subtract" })
        var sumContext = KernelContext(node: sumNode, inputs: Array(ctx.inputs.prefix(12)), outputTypes: [nil])
        sumContext.opset = ctx.opset
        /// The Requantize of `x` (the pairs' sums, or the sum of this run).
        func requantized(_ x: Tensor) throws(RuntimeError) -> Tensor {
            let node = Node(name: ctx.node.name, opType: "Requantize", domain: FusedOps.domain,
                            inputs: ["x", "left", "multiplier", "right", "real_scale", "y_scale", "y_zero_point"], outputs: ctx.node.outputs,
                            attributes: ctx.node.attributes.filter { $0.name != "subtract" })
            var c = KernelContext(node: node, inputs: [x] + Array(ctx.inputs[12..<18]), outputTypes: [nil])
            c.opset = ctx.opset
            guard let y = try kernel(c).first else { throw ctx.fail("the requantization gave no output") }
            return y
        }
        if a.shape == b.shape, (a.dtype == .int8 || a.dtype == .uint8), (b.dtype == .int8 || b.dtype == .uint8),
           ctx.inputs[12...14].allSatisfy({ ($0?.elementCount ?? 1) == 1 }) {
            let sources = ctx.inputs.enumerated().filter { ![0, 6].contains($0.offset) }.map { $0.element?.sharedStorage }
            let key = ByteTableKey(subtract: try ctx.int("subtract", 0) != 0, activation: try ctx.string("activation", ""),
                                   bounds: [try ctx.float("activation_alpha", -.infinity), try ctx.float("activation_beta", .infinity)].map(\.bitPattern),
                                   a: a.dtype, b: b.dtype)
            let table = try byteTables.value(for: sources, key: key) { () throws(RuntimeError) -> Tensor? in
                guard let ta = byteTable(try FixedPoint(side(sumContext, 0), prefix: true)),
                      let tb = byteTable(try FixedPoint(side(sumContext, 6), prefix: true)) else { return nil }
                var sums = [Double](repeating: 0, count: 65536)
                for hi in 0..<256 {
                    for lo in 0..<256 { sums[hi << 8 | lo] = key.subtract ? ta[hi] - tb[lo] : ta[hi] + tb[lo] }
                }
                return try requantized(Tensor(shape: [65536], scalars: sums))
            }
            if let table {
                let out = ctx.makeOutput(table.dtype, shape: a.shape)
                a.withUnsafeBytes { pa in
                    b.withUnsafeBytes { pb in
                        table.withUnsafeBytes { t in
                            out.withUnsafeMutableBytesInPlace { y in
                                for i in 0..<y.count { y[i] = t[Int(pa[i]) << 8 | Int(pb[i])] }
                            }
                        }
                    }
                }
                return [out]
            }
        }
        guard let sum = try fixedPointSum(sumContext).first else { throw ctx.fail("the sum gave no output") }
        return [try requantized(sum)]
    }

    /// What a FixedPointAdd's byte table depends on besides its constant tensors: its attributes
    /// (the activation's bounds by their bits) and the inputs' types.
    struct ByteTableKey: Equatable {
        let subtract: Bool
        let activation: String
        let bounds: [UInt32]
        let a, b: DType
    }

    static let byteTables = StorageCache<ByteTableKey, Tensor>()

    /// A FixedPointMultiply's u for every byte, indexed by the byte's bit pattern: nil unless x
    /// is 8-bit and each constant one value.
    static func byteTable(_ f: FixedPoint) -> [Double]? {
        guard f.x.dtype == .int8 || f.x.dtype == .uint8, f.left.count == 1, f.multiplier.count == 1, f.right.count == 1 else { return nil }
        return (0..<256).map { (bits: Int) -> Double in
            let v = f.x.dtype == .int8 ? Double(Int8(truncatingIfNeeded: bits)) : Double(bits)
            return FixedPoint.quanta((v - f.offset) * f.scale, f.left[0], f.multiplier[0], f.right[0])
        }
    }

    /// The sub-context of one FixedPointMultiply of a FixedPointAdd (inputs base ..< base + 6).
    static func side(_ ctx: KernelContext, _ base: Int) -> KernelContext {
        let inputs = (base..<base + 6).map { ctx.optionalInput($0) }
        let node = Node(name: ctx.node.name, opType: "FixedPointMultiply", domain: FusedOps.domain,
                        inputs: ["x", "left", "multiplier", "right", "x_offset", "x_scale"], outputs: ctx.node.outputs)
        var c = KernelContext(node: node, inputs: inputs, outputTypes: [nil])
        c.opset = ctx.opset
        return c
    }

    /// FixedPointAdd's sum (its first twelve inputs), float64.
    static func fixedPointSum(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        let subtract = try ctx.int("subtract", 0) != 0
        let sa = side(ctx, 0), sb = side(ctx, 6)
        let fa = try FixedPoint(sa, prefix: true), fb = try FixedPoint(sb, prefix: true)
        if fa.x.shape == fb.x.shape, let ta = byteTable(fa), let tb = byteTable(fb) {
            let out = ctx.makeOutput(.float64, shape: fa.x.shape)
            fa.x.withUnsafeBytes { a in
                fb.x.withUnsafeBytes { b in
                    out.withUnsafeMutableBufferPointerInPlace(as: Double.self) { y in
                        ta.withUnsafeBufferPointer { ta in
                            tb.withUnsafeBufferPointer { tb in
                                if subtract {
                                    for i in 0..<y.count { y[i] = ta[Int(a[i])] - tb[Int(b[i])] }
                                } else {
                                    for i in 0..<y.count { y[i] = ta[Int(a[i])] + tb[Int(b[i])] }
                                }
                            }
                        }
                    }
                }
            }
            return [out]
        }
        let ua = try fixedPointMultiply(sa)[0], ub = try fixedPointMultiply(sb)[0]
        return [try ctx.runOp(subtract ? "Sub" : "Add", [ua, ub])]
    }

    /// `ai.dlkit.CentredSum(x, axes, x_offset)` (an 8-bit MEAN's sum, see `FuseRequantize`):
    /// ReduceSum(Cast<float64>(x) − x_offset, axes, keepdims). For int8 or uint8 x, an integral
    /// offset and axes that are one contiguous run, `IntegerReduce` over the bytes (the same
    /// float64 values: every partial sum is an exact integer); anything else as the ops it replaces.
    static let centredSum: Kernel = { ctx throws(RuntimeError) in
        let x = try ctx.input(0), axesTensor = try ctx.input(1), offsetTensor = try ctx.input(2)
        guard offsetTensor.dtype == .float64, offsetTensor.elementCount == 1, let offset = offsetTensor.scalars(as: Double.self).first else {
            throw ctx.fail("x_offset must be one float64 value, got \(offsetTensor.dtype) \(offsetTensor.shape)")
        }
        let keep = try ctx.int("keepdims", 1) != 0
        var axes: [Int] = []
        for a in axesTensor.int64s() {
            let k = Int(a) < 0 ? Int(a) + x.rank : Int(a)
            guard k >= 0, k < x.rank, !axes.contains(k) else { throw ctx.fail("axis \(a) is out of range or repeated for x \(x.shape)") }
            axes.append(k)
        }
        axes.sort()
        if x.dtype == .int8 || x.dtype == .uint8, let first = axes.first, let last = axes.last, last - first + 1 == axes.count,
           offset == offset.rounded(), Swift.abs(offset) <= 255 {
            let outer = x.shape[..<first].reduce(1, *), reduced = x.shape[first...last].reduce(1, *), inner = x.shape[(last + 1)...].reduce(1, *)
            var shape: [Int] = []
            for (k, d) in x.shape.enumerated() where !axes.contains(k) || keep { shape.append(axes.contains(k) ? 1 : d) }
            let out = ctx.makeOutput(.float64, shape: shape)
            x.withUnsafeBytes { xb in
                out.withUnsafeMutableBufferPointerInPlace(as: Double.self) { o in
                    IntegerReduce.centredSum(xb, signed: x.dtype == .int8, outer: outer, reduced: reduced, inner: inner, offset: Int32(offset), into: o)
                }
            }
            return [out]
        }
        let wide = try ctx.runOp("Cast", [x], [Attribute(name: "to", value: .int(Int(DType.float64.onnxCode)))])
        let centred = try ctx.runOp("Sub", [wide, offsetTensor])
        return [try ctx.runOp("ReduceSum", [centred, axesTensor], [Attribute(name: "keepdims", value: .int(keep ? 1 : 0))])]
    }

    /// The output half of a Requantize: real_scale, y_scale and y_zero_point from inputs
    /// base + 4 ... base + 6, the activation's clamp from the node's attributes.
    /// The integer form of a node's requantization (`IntegerRequantize.Fixed`, nil when the
    /// constants have not its form) and its constants `width` wide, for int32 sums of `width`
    /// channels: made once for the node's constant tensors and kept while they live. Building
    /// them took 2.3% of int8 MobileNetV2's run when every node did it on every run.
    static func integerForm(_ ctx: KernelContext, width: Int, base: Int, scales: IntegerRequantize.Scales) throws(RuntimeError) -> IntegerForm {
        let sources = [ctx.optionalInput(base + 1), try ctx.input(base + 2), try ctx.input(base + 3)].map { $0?.sharedStorage }
        let key = FormKey(width: width, scales: [scales.real, scales.lo, scales.hi, scales.y].map(\.bitPattern), zero: scales.zero.bitPattern)
        return try forms.value(for: sources, key: key) { () throws(RuntimeError) -> IntegerForm in
            let f = try FixedPoint(ctx, x: Tensor(zeros: .int32, shape: [width]), base: base)
            let (l, m, r) = f.constants(width: width)
            return IntegerForm(fixed: IntegerRequantize.Fixed(left: l, multiplier: m, right: r, scales), left: l, multiplier: m, right: r)
        }
    }

    struct IntegerForm {
        let fixed: IntegerRequantize.Fixed?
        let left, multiplier, right: [Double]
    }

    /// What an integer form depends on besides its constant tensors (the scales by their bits).
    struct FormKey: Equatable {
        let width: Int
        let scales: [UInt32]
        let zero: UInt64
    }

    static let forms = StorageCache<FormKey, IntegerForm>()

    static func outputScales(_ ctx: KernelContext, base: Int = 0) throws(RuntimeError) -> (IntegerRequantize.Scales, DType) {
        let realScale = try ctx.input(base + 4), yScale = try ctx.input(base + 5), zero = try ctx.input(base + 6)
        guard realScale.dtype == .float32, realScale.elementCount == 1, yScale.dtype == .float32, yScale.elementCount == 1,
              let rs = realScale.scalars(as: Float.self).first, let ys = yScale.scalars(as: Float.self).first else {
            throw ctx.fail("real_scale and y_scale must be float32 scalars, got \(realScale.dtype) \(realScale.shape) and \(yScale.dtype) \(yScale.shape)")
        }
        guard zero.elementCount == 1, zero.dtype == .int8 || zero.dtype == .uint8, let z = zero.doubles().first else {
            throw ctx.fail("y_zero_point must be one int8 or uint8 value, got \(zero.dtype) \(zero.shape)")
        }
        // Relu and Clip as their kernels compute them, max(x, 0) and min(max(x, lo), hi): a clamp
        // (the identity on finite values when there is no activation).
        let act = try ctx.string("activation", "")
        let lo: Float, hi: Float
        switch act {
        case "": (lo, hi) = (-.infinity, .infinity)
        case "Relu": (lo, hi) = (0, .infinity)
        case "Clip": (lo, hi) = (try ctx.float("activation_alpha", -.infinity), try ctx.float("activation_beta", .infinity))
        default: throw ctx.fail("activation \(act) is not one Requantize applies (Relu, Clip)")
        }
        return (IntegerRequantize.Scales(real: rs, lo: lo, hi: hi, y: ys, zero: z), zero.dtype)
    }

    static let kernel: Kernel = { ctx throws(RuntimeError) in
        try requantize(ctx, try FixedPoint(ctx), base: 0)
    }

    /// Requantize of `f.x` with the output scales from inputs base + 4 ... base + 6.
    static func requantize(_ ctx: KernelContext, _ f: FixedPoint, base: Int) throws(RuntimeError) -> [Tensor] {
        let (scales, outType) = try outputScales(ctx, base: base)
        let (rs, lo, hi, ys, z) = (scales.real, scales.lo, scales.hi, scales.y, scales.zero)
        let (qmin, qmax): (Double, Double) = outType == .int8 ? (-128, 127) : (0, 255)
        let out = ctx.makeOutput(outType, shape: f.x.shape)
        guard out.elementCount > 0 else { return [out] }
        @inline(__always) func quantized(_ u: Double) -> Double {
            let real = Swift.min(Swift.max(Float(u) * rs, lo), hi)
            let q = roundHalfEven(Double(real / ys)) + z
            return q.isNaN ? 0 : Swift.min(Swift.max(q, qmin), qmax)
        }
        // int32 sums with TFLite's constants: in integers (see `IntegerRequantize.Fixed`), on
        // AVX-512 sixteen lanes at a time, else one by one; sums the integers do not cover as the chain.
        if f.x.dtype == .int32, f.channels > 0 {
            let form = try integerForm(ctx, width: f.channels, base: base, scales: scales)
            let (l, m, r) = (form.left, form.multiplier, form.right)
            if let fixed = form.fixed {
                let rows = f.x.elementCount / f.channels, signed = outType == .int8
                let done = f.x.withUnsafeBufferPointer(as: Int32.self) { src in
                    out.withUnsafeMutableBytesInPlace { dst in
                        guard let s = src.baseAddress, let d = dst.baseAddress else { return false }
                        return fixed.run(s, rows: rows, signed: signed, into: d)
                    }
                }
                if done { return [out] }
                f.x.withUnsafeBufferPointer(as: Int32.self) { src in
                    out.withUnsafeMutableBytesInPlace { dst in
                        var j = 0
                        for i in 0..<src.count {
                            let y = fixed.quantized(src[i], at: j, signed: signed)
                                ?? Int32(quantized(FixedPoint.quanta(Double(src[i]), l[j], m[j], r[j])))
                            dst[i] = UInt8(truncatingIfNeeded: y)
                            j += 1
                            if j == f.channels { j = 0 }
                        }
                    }
                }
                return [out]
            }
        }
        // On AVX-512: DLKernels' vector loop (the same roundings, eight lanes at a time).
        if let values = f.values, f.channels > 0 {
            let (l, m, r) = f.constants(width: f.channels)
            let done = f.x.withUnsafeBytes { src in
                out.withUnsafeMutableBytesInPlace { dst in
                    guard let s = src.baseAddress, let d = dst.baseAddress else { return false }
                    return IntegerRequantize.run(s, values, rows: f.x.elementCount / f.channels, width: f.channels, left: l, multiplier: m, right: r,
                                                 scales, signed: outType == .int8, into: d)
                }
            }
            if done { return [out] }
        }
        if outType == .int8 {
            out.withUnsafeMutableBufferPointerInPlace(as: Int8.self) { dst in
                f.forEachChunk { start, u in for j in 0..<u.count { dst[start + j] = Int8(quantized(u[j])) } }
            }
        } else {
            out.withUnsafeMutableBufferPointerInPlace(as: UInt8.self) { dst in
                f.forEachChunk { start, u in for j in 0..<u.count { dst[start + j] = UInt8(quantized(u[j])) } }
            }
        }
        return [out]
    }
}
