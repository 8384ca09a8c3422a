import DLGraph
import DLTensor

/// TFLite's 8-bit LOGISTIC, TANH, HARD_SWISH and SOFTMAX as its reference kernels compute them,
/// in IR ops (int64 for the fixed-point parts, where every product of two int32 fits):
///
/// - LOGISTIC and TANH: TFLite fills a 256-entry table, for each 8-bit value v,
///   f(input_scale * (v - input_zero)) * (1 / output_scale) in float32, rounded half away from
///   zero, plus the output zero point, clamped. The same float32 steps run here on each element
///   (the function in float64 rounded to float32, where the C library's float functions are
///   within an ulp).
/// - HARD_SWISH: int16 fixed point. The input on a 128x finer scale; a "relu-ish" factor in
///   [0, 1] (the input rescaled so that 3 is 2^15, saturated, mapped from [-1, 1] to [0, 1]) times
///   the input rescaled to the output scale (a doubling high multiply that truncates), then
///   divided by the output multiplier's power of two, rounding half away from zero.
/// - SOFTMAX (output scale 1/256 and the type's lowest zero point): gemmlowp's fixed point. The
///   row maximum subtracted; differences scaled by beta * input_scale as a Q5.26 multiplier;
///   exp on negative values (a Taylor polynomial around -1/8 on [-1/4, 0) and a barrel shifter of
///   exp(-2^k) constants); the sum in Q12.19; its reciprocal by three Newton-Raphson steps; each
///   exp times the reciprocal, divided by a power of two. Differences below TFLite's input
///   radius give the lowest value. A difference takes one of 256 values, so the exps and their
///   Q12 terms are tables computed here (`FixedPoint`) and gathered; the rest is per row.
extension TFLiteGraphBuilder {
    /// The integer translation of an 8-bit TANH, LOGISTIC, HARD_SWISH or SOFTMAX; nil when the
    /// operator is not 8-bit per-tensor quantized on both sides (it then computes in float).
    mutating func integerActivation(_ op: TFLiteOp) throws(TFLiteError) -> String? {
        guard let (xi, qx) = try quantized8(op, input: true), let (yi, qy) = try quantized8(op, input: false) else { return nil }
        let xScale = qx.scale[0], xZero = qx.zeroPoint.first ?? 0
        let yScale = qy.scale[0], yZero = qy.zeroPoint.first ?? 0
        switch op.name {
        case "LOGISTIC", "TANH":
            return try lookupActivation(op, xScale: xScale, xZero: xZero, yScale: yScale, logistic: op.name == "LOGISTIC")
        case "HARD_SWISH":
            return try integerHardSwish(op, xScale: xScale, xZero: xZero, yScale: yScale)
        case "SOFTMAX":
            let lowest: Int64 = sub.tensors[yi].type == 9 ? -128 : 0
            let depth = shape(xi).last ?? 0
            let beta = try options(op) { t throws(FlatBufferError) in try t.float(0, 1) } ?? 1
            // TFLite's kernel requires this output quantization; its Q12 sum holds 4096 ones.
            guard yScale == 1 / 256, yZero == lowest, depth > 0, depth <= 4096, beta > 0,
                  (sub.tensors[xi].shapeSignature?.last ?? 1) > 0 else { return nil }
            return try integerSoftmax(op, xScale: xScale, beta: beta)
        default:
            return nil
        }
    }

    /// The tensor index and quantization of input 0 (or output 0) when 8-bit per-tensor quantized.
    func quantized8(_ op: TFLiteOp, input: Bool) throws(TFLiteError) -> (Int, TFLiteModel.Quantization)? {
        let i = input ? try tensor(op, 0) : try output(op, 0)
        guard let q = quantization(i), [3, 9].contains(sub.tensors[i].type), q.scale.count == 1, q.scale[0] > 0 else { return nil }
        return (i, q)
    }

    // MARK: LOGISTIC, TANH

    mutating func lookupActivation(_ op: TFLiteOp, xScale: Float, xZero: Int64, yScale: Float, logistic: Bool) throws(TFLiteError) -> String {
        let n = base(op) + "/lut"
        let v = emit("Mul", [emit("Sub", [try bytesAsFloat(op, base: n), scalar(Float(xZero), base: n + "/zero_point")], base: n + "/centred"),
                             scalar(xScale, base: n + "/scale")], base: n + "/real")
        let f: String
        if logistic {
            // 1 / (1 + exp(-v)), each step in float32.
            let e = cast(emit("Exp", [emit("Neg", [cast(v, .float64, n + "/wide")], base: n + "/neg")], base: n + "/exp64"), .float32, n + "/exp")
            f = emit("Reciprocal", [emit("Add", [scalar(1, base: n + "/one"), e], base: n + "/denominator")], base: n + "/sigmoid")
        } else {
            f = cast(emit("Tanh", [cast(v, .float64, n + "/wide")], base: n + "/tanh64"), .float32, n + "/tanh")
        }
        let u = roundHalfAway(emit("Mul", [f, scalar(1 / yScale, base: n + "/inverse_scale")], base: n + "/scaled"), .float32, base: n + "/quanta")
        return try quantaAsReal(op, u, base: n)
    }

    // MARK: HARD_SWISH

    mutating func integerHardSwish(_ op: TFLiteOp, xScale: Float, xZero: Int64, yScale: Float) throws(TFLiteError) -> String? {
        let n = base(op) + "/hard_swish"
        let hires = (1 / Float(128)) * xScale
        let (outMultiplier, outExponent) = try int16Multiplier(op, Double(hires / yScale))
        let (reluMultiplier, reluExponent) = try int16Multiplier(op, Double(hires / (3 / Float(32768))))
        // TFLite refuses an output multiplier above one (input scale / 128 > output scale).
        guard outExponent <= 0 else { return nil }
        // The input on the finer scale: (x - zero point) * 2^7 (within int16 for 8-bit inputs).
        let x = emit("Mul", [emit("Sub", [cast(try bytesAsFloat(op, base: n), .int64, n + "/wide"), int64(xZero, n + "/zero_point")], base: n + "/centred"),
                             int64(128, n + "/hires")], base: n + "/hires_input")
        let preshift = highMul(x, int64(Int64(outMultiplier), n + "/out_multiplier"), bits: 16, rounding: true, base: n + "/preshift")
        var r = x
        if reluExponent > 0 { r = saturate16(emit("Mul", [r, int64(1 << Int64(reluExponent - 1), n + "/relu_shift")], base: n + "/relu_shifted"), base: n + "/relu_saturated") }
        r = highMul(r, int64(Int64(reluMultiplier), n + "/relu_multiplier"), bits: 16, rounding: true, base: n + "/reluish_scaled")
        if reluExponent > 0 { r = saturate16(emit("Mul", [r, int64(2, n + "/two")], base: n + "/relu_last_shift"), base: n + "/relu_last_saturated") }
        if reluExponent < 0 { r = roundingDivide(r, by: 1 << Int64(-reluExponent), base: n + "/relu_divided") }
        // From [-1, 1] to [0, 1]: (r + 2^15) >> 1 (non-negative, so a division).
        r = emit("Div", [emit("Add", [r, int64(32768, n + "/half_range")], base: n + "/relu_offset"), int64(2, n + "/halve")], base: n + "/reluish")
        let product = highMul(r, preshift, bits: 16, rounding: false, base: n + "/product")
        let u = roundingDivide(product, by: 1 << Int64(-outExponent), base: n + "/quanta")
        return try quantaAsReal(op, cast(u, .float32, n + "/quanta_float"), base: n)
    }

    /// The 8-bit input 0 as exact float32 values: a DequantizeLinear of scale 1 and zero point 0
    /// rather than a Cast, so that `FuseQuantizedLookup` sees the activation as what it is, a
    /// function of one byte, and runs it as a table.
    mutating func bytesAsFloat(_ op: TFLiteOp, base n: String) throws(TFLiteError) -> String {
        let zero = sub.tensors[try tensor(op, 0)].type == 9 ? Tensor(shape: [], scalars: [Int8(0)]) : Tensor(shape: [], scalars: [UInt8(0)])
        return emit("DequantizeLinear", [try raw(op, 0), scalar(1, base: n + "/unit_scale"), addConstant(zero, base: n + "/no_zero")],
                    base: n + "/float")
    }

    /// TFLite's int16 multiplier of a real multiplier: its Q31 form (`QuantizeMultiplier`) rounded
    /// to 16 bits (the top half, rounded; 32767 when that overflows), and the exponent.
    func int16Multiplier(_ op: TFLiteOp, _ m: Double) throws(TFLiteError) -> (Int, Int) {
        let (q, e) = try quantizedMultiplier(op, m)
        if q >= Int(Int32.max) - (1 << 15) { return (Int(Int16.max), e) }
        return ((q + (1 << 15)) >> 16, e)
    }

    /// TFLite's `QuantizeMultiplier`: m = q * 2^(e - 31), q in [2^30, 2^31) rounded half away from
    /// zero (0 and 0 for m = 0 or tiny m).
    func quantizedMultiplier(_ op: TFLiteOp, _ m: Double) throws(TFLiteError) -> (Int, Int) {
        guard m.isFinite, m >= 0 else { throw fail(op, "multiplier \(m) is not a finite non-negative number") }
        guard m > 0 else { return (0, 0) }
        var e = Int(m.exponent) + 1
        var q = (m.significand / 2 * 2147483648).rounded(.toNearestOrAwayFromZero)
        if q == 2147483648 { q /= 2; e += 1 }
        if e < -31 { return (0, 0) }
        guard e <= 62 else { throw fail(op, "multiplier \(m) is out of TFLite's range") }
        return (Int(q), e)
    }

    // MARK: SOFTMAX

    mutating func integerSoftmax(_ op: TFLiteOp, xScale: Float, beta: Float) throws(TFLiteError) -> String? {
        let n = base(op) + "/softmax"
        let integerBits = 5
        let real = min(Double(beta) * Double(xScale) * Double(1 << (31 - integerBits)), Double(Int32.max))
        let (multiplier, shift) = try quantizedMultiplier(op, real)
        guard shift >= 0, shift < 31 else { return nil }
        let radius = Int64((Double((1 << integerBits) - 1) * Double(1 << (31 - integerBits)) / Double(1 << shift)).rounded(.down))
        // A difference from the row maximum of 8-bit values is one of 0, -1, ..., -255: its exp
        // and its Q12 term are two 256-entry tables, indexed by the difference's magnitude.
        // Differences below the radius give 0 in both (and so the lowest output value).
        var exps: [Int64] = [], terms: [Int64] = []
        for magnitude in Int64(0)...255 {
            let e = magnitude > radius ? 0 : FixedPoint.expOnNegative(FixedPoint.highMul(-magnitude &* (1 << Int64(shift)), Int64(multiplier)))
            exps.append(e)
            terms.append(FixedPoint.roundingDivide(e, by: 1 << 12))
        }
        let x = cast(try raw(op, 0), .int64, n + "/wide")
        let last = [Attribute(name: "keepdims", value: .int(1))]
        let axis = int64s([-1], base: n + "/axis")
        let index = emit("Sub", [emit("ReduceMax", [x, axis], last, base: n + "/row_max"), x], base: n + "/below_max")
        let gather = [Attribute(name: "axis", value: .int(0))]
        let e = emit("Gather", [addConstant(Tensor(shape: [256], scalars: exps), base: n + "/exp_table"), index], gather, base: n + "/exp")
        let sum = emit("ReduceSum", [emit("Gather", [addConstant(Tensor(shape: [256], scalars: terms), base: n + "/term_table"), index], gather,
                                          base: n + "/terms"), axis], last, base: n + "/sum")
        // The reciprocal of the Q12 sum: shifted to [1, 2) by its leading zeros (from the bit length).
        let powers = addConstant(Tensor(shape: [33], scalars: (0...32).map { Int64(1) << Int64($0) }), base: n + "/powers")
        let thresholds = addConstant(Tensor(shape: [32], scalars: (0..<32).map { Int64(1) << Int64($0) }), base: n + "/thresholds")
        let bitSet = emit("GreaterOrEqual", [sum, thresholds], base: n + "/bit_set")
        let bits = emit("ReduceSum", [cast(bitSet, .int64, n + "/bit_count"), axis], last, base: n + "/bit_length")
        let headroom = emit("Sub", [int64(32, n + "/width"), bits], base: n + "/headroom")
        let scale = emit("Gather", [powers, headroom], gather, base: n + "/headroom_scale")
        let minusOne = emit("Sub", [emit("Mul", [sum, scale], base: n + "/normalised"), int64(1 << 31, n + "/unit")], base: n + "/minus_one")
        let reciprocal = oneOverOnePlus(minusOne, base: n + "/reciprocal")
        // Divide by 2^(bits over unit + 31 - 8) = 2^(35 - headroom): powers[35 - headroom] as 2^35 / 2^headroom.
        let divisor = emit("Div", [int64(1 << 35, n + "/two_35"), scale], base: n + "/divisor")
        let u = roundingDivide(highMul(reciprocal, e, bits: 32, rounding: true, base: n + "/product"), byValue: divisor, base: n + "/quanta")
        return try quantaAsReal(op, cast(u, .float32, n + "/quanta_float"), base: n)
    }

    /// 1 / (1 + a) for Q0.31 a in [0, 1), as Q0.31: Newton-Raphson on the half denominator from
    /// 48/17 - 32/17 * d, three steps, in Q2.29.
    mutating func oneOverOnePlus(_ a: String, base n: String) -> String {
        // (a + 1) / 2, rounding half away from zero (non-negative here).
        let half = emit("Div", [emit("Add", [a, int64(Int64(Int32.max) + 1, n + "/one_plus_nudge")], base: n + "/sum"), int64(2, n + "/two")], base: n + "/half_denominator")
        var x = emit("Add", [int64(1515870810, n + "/c48_17"), highMul(half, int64(-1010580540, n + "/c_neg32_17"), bits: 32, rounding: true, base: n + "/linear")], base: n + "/x0")
        for step in 0..<3 {
            let s = n + "/step\(step)"
            let residual = emit("Sub", [int64(1 << 29, s + "/one"), highMul(half, x, bits: 32, rounding: true, base: s + "/dx")], base: s + "/residual")
            let correction = saturate32(emit("Mul", [highMul(x, residual, bits: 32, rounding: true, base: s + "/x_residual"), int64(4, s + "/q2")], base: s + "/rescaled"), base: s + "/saturated")
            x = emit("Add", [x, correction], base: s + "/x")
        }
        return saturate32(emit("Mul", [x, int64(2, n + "/q0")], base: n + "/doubled"), base: n)
    }

    // MARK: fixed-point helpers (int64 values holding int16/int32 quantities)

    /// The doubling high multiply of two `bits`-bit values: a * b / 2^(bits - 1), rounded to
    /// nearest with ties away from zero (`rounding`) or truncated. The one saturating case (both
    /// the lowest value) cannot arise here: one factor is always above it.
    mutating func highMul(_ a: String, _ b: String, bits: Int, rounding: Bool, base n: String) -> String {
        var p = emit("Mul", [a, b], base: n + "/wide_product")
        if rounding {
            let half = Int64(1) << Int64(bits - 2)
            let nudge = emit("Where", [emit("GreaterOrEqual", [p, int64(0, n + "/zero")], base: n + "/non_negative"), int64(half, n + "/nudge_up"), int64(1 - half, n + "/nudge_down")], base: n + "/nudge")
            p = emit("Add", [p, nudge], base: n + "/nudged")
        }
        return emit("Div", [p, int64(Int64(1) << Int64(bits - 1), n + "/unit")], base: n)
    }

    /// x / d for a power of two d, rounded to nearest, ties away from zero (TFLite's
    /// `RoundingDivideByPOT`).
    mutating func roundingDivide(_ x: String, by d: Int64, base n: String) -> String {
        roundingDivide(x, byValue: int64(d, n + "/divisor"), base: n)
    }

    mutating func roundingDivide(_ x: String, byValue d: String, base n: String) -> String {
        let halfD = emit("Div", [d, int64(2, n + "/two")], base: n + "/half")
        let magnitude = emit("Div", [emit("Add", [emit("Abs", [x], base: n + "/abs"), halfD], base: n + "/nudged"), d], base: n + "/magnitude")
        return emit("Mul", [magnitude, emit("Sign", [x], base: n + "/sign")], base: n)
    }

    mutating func saturate16(_ x: String, base n: String) -> String {
        emit("Max", [emit("Min", [x, int64(Int64(Int16.max), n + "/max")], base: n + "/upper"), int64(Int64(Int16.min), n + "/min")], base: n)
    }

    mutating func saturate32(_ x: String, base n: String) -> String {
        emit("Max", [emit("Min", [x, int64(Int64(Int32.max), n + "/max")], base: n + "/upper"), int64(Int64(Int32.min), n + "/min")], base: n)
    }

    mutating func int64(_ v: Int64, _ name: String) -> String {
        addConstant(Tensor(shape: [], scalars: [v]), base: name)
    }

    mutating func cast(_ x: String, _ to: DType, _ name: String) -> String {
        emit("Cast", [x], [Attribute(name: "to", value: .int(Int(to.onnxCode)))], base: name)
    }

    /// Output quanta `u` (float32 integers relative to the output zero point) as the real value
    /// u * output_scale, which `bind` quantizes back exactly (saturating to the type).
    mutating func quantaAsReal(_ op: TFLiteOp, _ u: String, base n: String) throws(TFLiteError) -> String {
        let yIndex = try output(op, 0)
        guard let qy = quantization(yIndex) else { throw fail(op, "the quantized output needs a scale") }
        let (yScale, _, _) = try quantParams(yIndex, qy)
        return emit("Mul", [u, yScale], base: n + "/real")
    }
}

/// gemmlowp's fixed point on Int64 holding int32 quantities, for the tables DLTFLite computes
/// when it imports (the same steps as the ops `TFLiteGraphBuilder.highMul` and
/// `roundingDivide` emit).
enum FixedPoint {
    /// The rounding doubling high multiply of two int32 values: a·b / 2^31, ties away from zero.
    static func highMul(_ a: Int64, _ b: Int64) -> Int64 {
        let p = a &* b
        return (p &+ (p >= 0 ? 1 << 30 : 1 - (1 << 30))) / (1 << 31)
    }

    /// x / d for a power of two d, rounded to nearest, ties away from zero.
    static func roundingDivide(_ x: Int64, by d: Int64) -> Int64 {
        let magnitude = (Swift.abs(x) + d / 2) / d
        return x < 0 ? -magnitude : magnitude
    }

    /// exp of a non-positive Q5.26 value, as Q0.31: a Taylor polynomial around -1/8 on the value's
    /// part in [-1/4, 0), times exp(-2^k) for each set bit k of the rest.
    static func expOnNegative(_ a: Int64) -> Int64 {
        guard a != 0 else { return Int64(Int32.max) }
        let quarter: Int64 = 1 << 24
        let modQuarter = (a & (quarter - 1)) - quarter
        var result = expOnQuarter(modQuarter * 32)
        let remainder = modQuarter - a
        // exp(-2^k) for k = -2...4 in Q0.31.
        let factors: [Int64] = [1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242]
        for (k, factor) in factors.enumerated() where remainder & (Int64(1) << Int64(24 + k)) != 0 {
            result = highMul(result, factor)
        }
        return result
    }

    /// exp(a) for Q0.31 a in [-1/4, 0): exp(-1/8) · (1 + x + x²/2 + x³/6 + x⁴/24), x = a + 1/8.
    static func expOnQuarter(_ a: Int64) -> Int64 {
        let x = a + (1 << 28)
        let x2 = highMul(x, x), x3 = highMul(x2, x), x4 = highMul(x2, x2)
        let third = highMul(roundingDivide(x4, by: 4) + x3, 715827883)
        let poly = roundingDivide(third + x2, by: 2)
        let c: Int64 = 1895147668
        return c + highMul(c, x + poly)
    }
}
