/// Conversion between Double and the 8-bit and smaller float formats ONNX names.
///
/// Decoding uses a 256-entry table per format built from the format's definition. Encoding picks
/// the nearest representable value, ties to the even code (round-to-nearest-even), which is
/// what the formats' reference implementations do. With `saturate`, values beyond the largest
/// finite value (infinities included) become that value; without it they become infinity where
/// the format has one, else NaN. The "fnuz" formats have no negative zero.
package enum LowPrecision {
    struct Format: Sendable {
        let exponentBits: Int
        let mantissaBits: Int
        let bias: Int
        /// E4M3FN: only S.1111.111 is NaN, no infinities. FNUZ: 0x80 is the only NaN.
        /// E5M2: IEEE-like infinities and NaNs. E2M1: no NaN or infinity.
        let kind: Kind
        enum Kind { case fn, fnuz, ieee, finiteOnly }
    }

    static func format(_ t: DType) -> Format? {
        switch t {
        case .float8e4m3fn: Format(exponentBits: 4, mantissaBits: 3, bias: 7, kind: .fn)
        case .float8e4m3fnuz: Format(exponentBits: 4, mantissaBits: 3, bias: 8, kind: .fnuz)
        case .float8e5m2: Format(exponentBits: 5, mantissaBits: 2, bias: 15, kind: .ieee)
        case .float8e5m2fnuz: Format(exponentBits: 5, mantissaBits: 2, bias: 16, kind: .fnuz)
        case .float4e2m1: Format(exponentBits: 2, mantissaBits: 1, bias: 1, kind: .finiteOnly)
        default: nil
        }
    }

    /// The value of `code` in format `f` (codes use the low 1 + e + m bits).
    static func value(_ code: Int, _ f: Format) -> Double {
        let m = code & ((1 << f.mantissaBits) - 1)
        let e = (code >> f.mantissaBits) & ((1 << f.exponentBits) - 1)
        let sign = (code >> (f.exponentBits + f.mantissaBits)) & 1
        let maxE = (1 << f.exponentBits) - 1
        switch f.kind {
        case .fnuz where sign == 1 && e == 0 && m == 0: return .nan
        case .fn where e == maxE && m == (1 << f.mantissaBits) - 1: return .nan
        case .ieee where e == maxE: return m == 0 ? (sign == 1 ? -.infinity : .infinity) : .nan
        default: break
        }
        let mag: Double = e == 0
            ? Double(m) * pow2(1 - f.bias - f.mantissaBits)
            : (1 + Double(m) / Double(1 << f.mantissaBits)) * pow2(e - f.bias)
        return sign == 1 ? -mag : mag
    }

    static func pow2(_ e: Int) -> Double { Double(sign: .plus, exponent: e, significand: 1) }

    struct Table: Sendable {
        let decode: [Double]
        /// Non-negative finite codes sorted by value, for encoding.
        let positive: [(value: Double, code: Int)]
        let signBit: Int
        let nanCode: Int
        let infCode: Int?
        let format: Format
    }

    static let tables: [DType: Table] = {
        var out: [DType: Table] = [:]
        for t in [DType.float8e4m3fn, .float8e4m3fnuz, .float8e5m2, .float8e5m2fnuz, .float4e2m1] {
            guard let f = format(t) else { continue }
            let bits = 1 + f.exponentBits + f.mantissaBits
            let signBit = 1 << (bits - 1)
            let decode = (0..<(1 << bits)).map { value($0, f) }
            let positive = (0..<signBit).map { (value: decode[$0], code: $0) }.filter { $0.value.isFinite }.sorted { $0.value < $1.value }
            let nan: Int
            switch f.kind {
            case .fn: nan = (1 << (bits - 1)) - 1
            case .fnuz: nan = signBit
            case .ieee: nan = (1 << (bits - 1)) - 1
            case .finiteOnly: nan = 0
            }
            let inf = f.kind == .ieee ? ((1 << f.exponentBits) - 1) << f.mantissaBits : nil
            out[t] = Table(decode: decode, positive: positive, signBit: signBit, nanCode: nan, infCode: inf, format: f)
        }
        return out
    }()

    /// The Double a code of `t` stands for (float8e8m0: 2^(code-127), 0xFF NaN).
    public static func decode(_ code: UInt8, _ t: DType) -> Double {
        if t == .float8e8m0 { return code == 0xFF ? .nan : pow2(Int(code) - 127) }
        guard let table = tables[t] else { return 0 }
        let c = Int(code) & ((table.signBit << 1) - 1)
        return table.decode[c]
    }

    /// The code of `t` nearest to `v` (see the type's documentation for overflow and ties).
    public static func encode(_ v: Double, _ t: DType, saturate: Bool = true) -> UInt8 {
        if t == .float8e8m0 { return encodeE8M0(v, saturate: saturate, roundUp: true) }
        guard let table = tables[t] else { return 0 }
        if v.isNaN { return UInt8(table.nanCode) }
        let negative = v.sign == .minus
        let mag = abs(v)
        let top = table.positive[table.positive.count - 1]
        var code: Int
        if mag > top.value {
            // Beyond the largest finite value: ties and anything closer than half an ulp round back.
            let below = table.positive[table.positive.count - 2].value
            let halfUlp = (top.value - below) / 2
            if saturate || table.format.kind == .finiteOnly || (mag < top.value + halfUlp || (mag == top.value + halfUlp && top.code & 1 == 0)) && mag.isFinite {
                code = top.code
            } else if let inf = table.infCode {
                code = inf
            } else {
                return UInt8(table.nanCode)
            }
        } else {
            // Binary search for the neighbours, then round to nearest, ties to the even code.
            var lo = 0, hi = table.positive.count - 1
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if table.positive[mid].value <= mag { lo = mid } else { hi = mid }
            }
            let a = table.positive[lo], b = table.positive[hi]
            if mag - a.value < b.value - mag { code = a.code }
            else if mag - a.value > b.value - mag { code = b.code }
            else { code = a.code & 1 == 0 ? a.code : b.code }
            if mag <= a.value { code = a.code }
        }
        if negative {
            if code == 0 && table.format.kind == .fnuz { return 0 }
            code |= table.signBit
        }
        return UInt8(code)
    }

    /// float8e8m0 from a float32 value: the exponent, rounded up when any fraction bit is set
    /// (or down), NaN and infinity as 0xFF, zero and subnormals as the smallest exponent.
    public static func encodeE8M0(_ v: Double, saturate: Bool, roundUp: Bool) -> UInt8 {
        let bits = Float(v).bitPattern
        let e = Int((bits >> 23) & 0xFF)
        if e == 0xFF { return 0xFF }
        var out = e
        if roundUp && bits & 0x7F_FFFF != 0 && !(saturate && e == 0xFE) { out += 1 }
        return UInt8(truncatingIfNeeded: out)
    }
}
