import DLGraph
import DLTensor

/// TFLite's integer arithmetic for full-integer (8-bit) models, in IR ops: integer sums
/// (ConvInteger, MatMulInteger, Add on int32) and TFLite's fixed-point requantization
/// (`MultiplyByQuantizedMultiplier`: a Q31 multiplier, a power-of-two exponent, two roundings)
/// computed exactly in float64. Ops without a translation here compute in float between
/// DequantizeLinear and QuantizeLinear (`input` and `bind`), within about one quantum each.
extension TFLiteGraphBuilder {
    /// Whether the operator runs on TFLite's integer path: input 0, the weights (input 1) and
    /// output 0 are 8-bit quantized, the bias (input 2), when present, int32.
    func isInteger8(_ op: TFLiteOp) throws(TFLiteError) -> Bool {
        for i in [try tensor(op, 0), try tensor(op, 1), try output(op, 0)] {
            guard quantization(i) != nil, [3, 9].contains(sub.tensors[i].type) else { return false }
        }
        guard hasInput(op, 2) else { return true }
        return sub.tensors[try tensor(op, 2)].type == 2
    }

    func quantization8(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> TFLiteModel.Quantization {
        let i = try tensor(op, k)
        guard let q = quantization(i) else { throw fail(op, "input \(k) \(tensorLabel(i)) is not quantized") }
        return q
    }

    /// The result of an integer CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED as TFLite's integer
    /// kernels compute it, from its int32 sums `acc` (channels last), as a real value that `bind`
    /// quantizes back exactly: u * output_scale, u the requantized sums in output quanta.
    ///
    /// TFLite requantizes (acc + bias) by M = x_scale * w_scale / output_scale (one per output
    /// channel when the weights are per-channel) held as a Q31 fixed-point multiplier q and a
    /// power-of-two exponent e (M = q / 2^31 * 2^e, q in [2^30, 2^31)), and rounds twice: the
    /// high half of the doubled product rounds half up, then the division by 2^-e rounds half away
    /// from zero. The IR does the same in float64 (exact at these magnitudes):
    /// t = floor((acc + bias) * 2^max(e,0) * q / 2^31 + 1/2), u = sign(t) * floor(|t| / 2^max(-e,0) + 1/2).
    mutating func requantizedSums(_ op: TFLiteOp, _ acc: String, perChannelProduct: Bool, base n: String) throws(TFLiteError) -> String {
        var sums = acc
        if hasInput(op, 2) { sums = emit("Add", [sums, try raw(op, 2)], base: n + "/bias") }
        let qx = try quantization8(op, 0), qw = try quantization8(op, 1)
        guard let qy = quantization(try output(op, 0)), let xs = qx.scale.first, let ys = qy.scale.first, ys > 0 else {
            throw fail(op, "the quantized input, weights and output need scales")
        }
        // TFLite's multiplier: conv per channel from double scales, fully-connected from the
        // float product of input and weight scales.
        let multipliers = qw.scale.map { perChannelProduct ? Double(xs) * Double($0) / Double(ys) : Double(xs * $0) / Double(ys) }
        return try requantized(op, sums, multipliers: multipliers, base: n)
    }

    /// TFLite's `MultiplyByQuantizedMultiplier` of integer `x` (any integer or float64 values) by
    /// `multipliers` (one, or one per channel, the last axis), as float64 integers (see
    /// `requantizedSums` for the rounding).
    mutating func fixedPointMultiply(_ op: TFLiteOp, _ x: String, multipliers: [Double], base n: String) throws(TFLiteError) -> String {
        guard !multipliers.isEmpty else { throw fail(op, "has no requantization multiplier") }
        var up: [Double] = [], mult: [Double] = [], down: [Double] = []
        for m in multipliers {
            guard m.isFinite, m >= 0 else { throw fail(op, "requantization multiplier \(m) is not a finite non-negative number") }
            var (fraction, e) = m == 0 ? (0.0, 0) : (m.significand / 2, Int(m.exponent) + 1)
            var q = (fraction * 2147483648).rounded(.toNearestOrAwayFromZero)
            if q == 2147483648 { q /= 2; e += 1 }
            fraction = q / 2147483648
            guard e <= 31, e >= -62 else { throw fail(op, "requantization multiplier \(m) is out of TFLite's range") }
            up.append(Double(sign: .plus, exponent: max(e, 0), significand: 1))
            mult.append(fraction)
            down.append(Double(sign: .plus, exponent: -max(-e, 0), significand: 1))
        }
        let shape = up.count > 1 ? [up.count] : []
        func constant(_ v: [Double], _ name: String) -> String { addConstant(Tensor(shape: shape, scalars: v), base: n + "/" + name) }
        let half = addConstant(Tensor(shape: [], scalars: [0.5]), base: n + "/half")
        var t = emit("Cast", [x], [Attribute(name: "to", value: .int(Int(DType.float64.onnxCode)))], base: n + "/wide")
        if up.contains(where: { $0 != 1 }) { t = emit("Mul", [t, constant(up, "left_shift")], base: n + "/shifted") }
        t = emit("Mul", [t, constant(mult, "multiplier")], base: n + "/high")
        t = emit("Floor", [emit("Add", [t, half], base: n + "/high_nudged")], base: n + "/high_rounded")
        return roundHalfAway(emit("Mul", [t, constant(down, "right_shift")], base: n + "/divided"), .float64, base: n + "/product")
    }

    /// Integer `sums` requantized by `multipliers` (`fixedPointMultiply`) to output quanta u,
    /// returned as the real value u * output_scale (which `bind` quantizes back exactly).
    mutating func requantized(_ op: TFLiteOp, _ sums: String, multipliers: [Double], base n: String) throws(TFLiteError) -> String {
        let u = try fixedPointMultiply(op, sums, multipliers: multipliers, base: n)
        return try quantaAsReal(op, cast(u, .float32, n + "/quanta"), base: n)
    }

    /// 8-bit ADD / SUB as TFLite computes them: each input's (x - zero point) * 2^20 scaled by
    /// its scale / (2 * the larger input scale), summed, then scaled by that / (2^20 * output
    /// scale); every scaling a fixed-point multiply. Nil when the operator is not 8-bit.
    mutating func integerAddSub(_ op: TFLiteOp, subtract: Bool) throws(TFLiteError) -> String? {
        guard let (x1, s1) = try centred8(op, 0), let (x2, s2) = try centred8(op, 1), let so = try outputScale8(op) else { return nil }
        let n = base(op)
        let twiceMax = Double(2 * max(s1, s2))
        let shift = addConstant(Tensor(shape: [], scalars: [Double(1 << 20)]), base: n + "/left_shift")
        let a = try fixedPointMultiply(op, emit("Mul", [x1, shift], base: n + "/shifted_a"), multipliers: [Double(s1) / twiceMax], base: n + "/a")
        let b = try fixedPointMultiply(op, emit("Mul", [x2, shift], base: n + "/shifted_b"), multipliers: [Double(s2) / twiceMax], base: n + "/b")
        let sum = emit(subtract ? "Sub" : "Add", [a, b], base: n + "/raw_sum")
        return try requantized(op, sum, multipliers: [twiceMax / Double(Float(1 << 20) * so)], base: n)
    }

    /// 8-bit MUL as TFLite computes it: (x1 - z1) * (x2 - z2) by the fixed-point multiplier
    /// s1 * s2 / output scale. Nil when the operator is not 8-bit.
    mutating func integerMul(_ op: TFLiteOp) throws(TFLiteError) -> String? {
        guard let (x1, s1) = try centred8(op, 0), let (x2, s2) = try centred8(op, 1), let so = try outputScale8(op) else { return nil }
        let n = base(op)
        return try requantized(op, emit("Mul", [x1, x2], base: n + "/product"), multipliers: [Double(s1) * Double(s2) / Double(so)], base: n)
    }

    /// 8-bit MEAN over the two spatial axes of a 4-D input (global average pooling), as TFLite's
    /// integer kernel: the sum of (x - zero point) by the fixed-point multiplier
    /// x_scale / (output_scale * count). Nil for other means (those compute in float).
    mutating func integerMean(_ op: TFLiteOp, axes: [Int], keepDims: Bool) throws(TFLiteError) -> String? {
        let xIndex = try tensor(op, 0), dims = shape(xIndex)
        guard dims.count == 4, Set(axes.map { $0 < 0 ? $0 + 4 : $0 }) == [1, 2], axes.count == 2, dims[1] * dims[2] > 0,
              sub.tensors[xIndex].shapeSignature.map({ $0.count == 4 && $0[1] > 0 && $0[2] > 0 }) ?? true,
              let (x, xs) = try centred8(op, 0), let ys = try outputScale8(op) else { return nil }
        let n = base(op)
        let sum = emit("ReduceSum", [x, int64s([1, 2], base: n + "/axes")], [Attribute(name: "keepdims", value: .int(keepDims ? 1 : 0))], base: n + "/sum")
        return try requantized(op, sum, multipliers: [Double(xs) / (Double(ys) * Double(dims[1] * dims[2]))], base: n)
    }

    /// A dynamic-range ("hybrid") operator's float input quantized as TFLite's hybrid kernels do
    /// before their integer sums (`AsymmetricQuantizeFloats`), in IR ops: rmin = min(x, 0), rmax =
    /// max(x, 0); scale = (rmax - rmin) / 255 in double, stored as float (1 when rmin = rmax);
    /// zero point = -128 - rmin / scale rounded half away from zero and clamped; q = x * (1 /
    /// scale) + zero point in float, rounded half away from zero, clamped to int8. Returns q, the
    /// scale and the zero point; nil unless input 0 is float, the weights int8 with scales, and
    /// the batch one row (TFLite quantizes each row on its own; this takes the whole tensor).
    mutating func hybridInput(_ op: TFLiteOp) throws(TFLiteError) -> (String, String, String)? {
        let xi = try tensor(op, 0), wi = try tensor(op, 1)
        guard sub.tensors[xi].type == 0, sub.tensors[wi].type == 9, quantization(wi) != nil,
              shape(xi).first == 1, (sub.tensors[xi].shapeSignature?.first ?? 1) == 1 else { return nil }
        let n = base(op) + "/input"
        let x = try input(op, 0)
        func to(_ t: DType) -> [Attribute] { [Attribute(name: "to", value: .int(Int(t.onnxCode)))] }
        func f64(_ v: Double, _ name: String) -> String { addConstant(Tensor(shape: [], scalars: [v]), base: n + "/" + name) }
        let keep0 = [Attribute(name: "keepdims", value: .int(0))]
        let zero32 = addConstant(Tensor(shape: [], scalars: [Float(0)]), base: n + "/zero")
        let rmin = emit("Cast", [emit("Min", [emit("ReduceMin", [x], keep0, base: n + "/min"), zero32], base: n + "/rmin32")], to(.float64), base: n + "/rmin")
        let rmax = emit("Cast", [emit("Max", [emit("ReduceMax", [x], keep0, base: n + "/max"), zero32], base: n + "/rmax32")], to(.float64), base: n + "/rmax")
        let spread = emit("Div", [emit("Sub", [rmax, rmin], base: n + "/range"), f64(255, "levels")], base: n + "/spread")
        let flat = emit("Equal", [rmax, rmin], base: n + "/flat")
        let scale64 = emit("Where", [flat, f64(1, "one"), spread], base: n + "/scale64")
        let scale = emit("Cast", [scale64], to(.float32), base: n + "/scale")
        let zp = roundHalfAway(emit("Sub", [f64(-128, "qmin"), emit("Div", [rmin, scale64], base: n + "/rmin_q")], base: n + "/zero_exact"), .float64, base: n + "/zero")
        let zp32 = emit("Cast", [emit("Clip", [zp, f64(-128, "lo"), f64(127, "hi")], base: n + "/zero_clipped")], to(.float32), base: n + "/zero_f32")
        let q = emit("Add", [emit("Mul", [x, emit("Reciprocal", [scale], base: n + "/inverse")], base: n + "/scaled"), zp32], base: n + "/shifted")
        let lo = addConstant(Tensor(shape: [], scalars: [Float(-128)]), base: n + "/q_lo"), hi = addConstant(Tensor(shape: [], scalars: [Float(127)]), base: n + "/q_hi")
        let q8 = emit("Cast", [emit("Clip", [roundHalfAway(q, .float32, base: n + "/q"), lo, hi], base: n + "/clipped")], to(.int8), base: n + "/quantized")
        return (q8, scale, emit("Cast", [zp32], to(.int8), base: n + "/zero_point"))
    }

    /// sign(x) * floor(|x| + 1/2): C's round, half away from zero (the IR's Round is half to
    /// even), for float32 or float64 `x`.
    mutating func roundHalfAway(_ x: String, _ dtype: DType, base n: String) -> String {
        let half = addConstant(dtype == .float64 ? Tensor(shape: [], scalars: [0.5]) : Tensor(shape: [], scalars: [Float(0.5)]), base: n + "/half")
        let magnitude = emit("Floor", [emit("Add", [emit("Abs", [x], base: n + "/magnitude"), half], base: n + "/nudged")], base: n + "/rounded")
        return emit("Mul", [magnitude, emit("Sign", [x], base: n + "/sign")], base: n)
    }

    /// The float result of a hybrid operator from its int32 sums `acc` (channels last): acc times
    /// the weight scale (one per output channel, or one) times the input's scale, plus the bias.
    mutating func hybridResult(_ op: TFLiteOp, _ acc: String, inputScale: String, base n: String) throws(TFLiteError) -> String {
        let wi = try tensor(op, 1)
        guard let q = quantization(wi) else { throw fail(op, "the weights are not quantized") }
        let (wScale, _, _) = try quantParams(wi, q)
        let sums = emit("Cast", [acc], [Attribute(name: "to", value: .int(Int(DType.float32.onnxCode)))], base: n + "/sums")
        var y = emit("Mul", [emit("Mul", [sums, wScale], base: n + "/weight_scaled"), inputScale], base: n + "/scaled")
        if hasInput(op, 2) { y = emit("Add", [y, try input(op, 2)], base: n + "/bias") }
        return y
    }

    /// Input `k`'s stored integers minus its zero point (float64), and its scale, when it is an
    /// 8-bit tensor quantized per tensor; nil otherwise.
    mutating func centred8(_ op: TFLiteOp, _ k: Int) throws(TFLiteError) -> (String, Float)? {
        let i = try tensor(op, k)
        guard let q = quantization(i), [3, 9].contains(sub.tensors[i].type), q.scale.count == 1 else { return nil }
        let n = base(op) + "/input\(k)"
        let wide = emit("Cast", [try raw(op, k)], [Attribute(name: "to", value: .int(Int(DType.float64.onnxCode)))], base: n + "/wide")
        let zero = addConstant(Tensor(shape: [], scalars: [Double(q.zeroPoint.first ?? 0)]), base: n + "/zero_point")
        return (emit("Sub", [wide, zero], base: n + "/centred"), q.scale[0])
    }

    func outputScale8(_ op: TFLiteOp) throws(TFLiteError) -> Float? {
        let o = try output(op, 0)
        guard let q = quantization(o), [3, 9].contains(sub.tensors[o].type), q.scale.count == 1, q.scale[0] > 0 else { return nil }
        return q.scale[0]
    }
}
