import CKernels

/// TFLite's requantization as DLTFLite's float64 IR ops compute it (the runtime's
/// `ai.dlkit.Requantize` and `FixedPointMultiply`): per element, with the constants of its
/// position on the last axis, u = round_half_away(floor((x·left)·multiplier + 0.5)·right) in
/// Double; Requantize then clamps Float(u)·realScale to [lo, hi], divides by yScale, rounds half
/// to even, adds the zero point and saturates to int8 or uint8. On AVX-512 eight lanes at a time,
/// each step rounded as the scalar ops round; elsewhere the caller's own loop runs (the functions
/// return false).
public enum IntegerRequantize {
    public struct Scales: Sendable {
        public var real: Float, lo: Float, hi: Float, y: Float, zero: Double

        public init(real: Float, lo: Float, hi: Float, y: Float, zero: Double) {
            (self.real, self.lo, self.hi, self.y, self.zero) = (real, lo, hi, y, zero)
        }
    }

    /// The element types x may have.
    public enum Values: Int32, Sendable {
        case int32 = 0, float64 = 1, int8 = 2, uint8 = 3
    }

    /// x holds rows × width values; left, multiplier and right `width` values each; out
    /// rows × width bytes. False (nothing written) when AVX-512 may not run.
    public static func run(_ x: UnsafeRawPointer, _ values: Values, rows: Int, width: Int, left: [Double], multiplier: [Double],
                           right: [Double], _ s: Scales, signed: Bool, into out: UnsafeMutableRawPointer) -> Bool {
        precondition(left.count == width && multiplier.count == width && right.count == width, "IntegerRequantize.run: constants do not match the width")
        guard CPUFeatures.avx512, rows > 0, width > 0 else { return false }
        dlk_requantize(x, values.rawValue, rows, width, left, multiplier, right, s.real, s.lo, s.hi, s.y, s.zero, signed ? 1 : 0, out)
        return true
    }

    /// TFLite's requantization of int32 sums in integers (`MultiplyByQuantizedMultiplier`: a left
    /// shift, a Q31 multiplier with the rounding doubling high multiply, a rounding right shift),
    /// for constants the float64 chain holds exactly: left = 2^l, multiplier = m / 2^31 (m an
    /// integer below 2^31), right = 2^−r, and real_scale = y_scale. Where |x · 2^l| < 2^21 every
    /// step of the float64 chain is exact (the products below 2^52), so the integers give its
    /// bits; larger sums take the float64 chain. With real_scale = y_scale, Float(u) · real_scale
    /// / y_scale rounds back to u for |u| < 2^21, so the output half is a clamp of u to the
    /// activation's bounds in quanta, the zero point and the saturation.
    public struct Fixed: Sendable {
        public let width: Int
        let left, multiplier, right: [Double]
        let scales: Scales
        /// Rows of `width` values, in `Row` order: what the portable step and the vector loop read.
        let table: [Int32]
        let lo, hi, zero: Int32
        /// Some channel's limit is not 2^21 (it shifts left).
        let anyLeft: Bool

        /// The rows of `table` (the vector loop's `dlk_q31` fields).
        enum Row: Int, CaseIterable { case shiftLeft, q31, shiftRight, limit, q31Swapped, roundUp, roundDown }

        @inline(__always) func value(_ row: Row, _ j: Int) -> Int32 { table[row.rawValue * width + j] }

        /// Nil when a constant has not that form or the scales differ (the float64 chain then).
        public init?(left: [Double], multiplier: [Double], right: [Double], _ s: Scales) {
            let width = left.count
            guard width > 0, multiplier.count == width, right.count == width, s.real == s.y, s.y.isNormal, s.y > 1e-30, s.y < 1e30,
                  s.zero == s.zero.rounded(), Swift.abs(s.zero) <= 255, !s.lo.isNaN, !s.hi.isNaN else { return nil }
            var table = [Int32](repeating: 0, count: Row.allCases.count * width)
            func set(_ row: Row, _ j: Int, _ v: Int32) { table[row.rawValue * width + j] = v }
            for j in 0..<width {
                let l = left[j], m = multiplier[j] * 2147483648, r = right[j]
                guard l >= 1, l.significand == 1, l.exponent <= 31, r > 0, r <= 1, r.significand == 1,
                      m >= 0, m < 2147483648, m == m.rounded() else { return nil }
                let up = Int32(l.exponent), down = Int32(Swift.min(-r.exponent, 31))
                set(.shiftLeft, j, up <= 21 ? up : 0)
                set(.limit, j, up <= 21 ? Int32(1 << (21 - up)) : 0)
                set(.q31, j, Int32(m))
                if j ^ 1 < width { set(.q31Swapped, j ^ 1, Int32(m)) }
                set(.shiftRight, j, down)
                set(.roundUp, j, down > 0 ? 1 << (down - 1) : 0)
                set(.roundDown, j, down > 0 ? (1 << (down - 1)) - 1 : 0)
            }
            /// The clamp's bound in quanta: the chain's round_half_even(Double(bound / y_scale)).
            func quanta(_ bound: Float) -> Int32 {
                let v = Double(bound / s.y).rounded(.toNearestOrEven)
                return v <= -2147483648 ? .min : v >= 2147483647 ? .max : Int32(v)
            }
            (self.width, self.left, self.multiplier, self.right, scales, self.table) = (width, left, multiplier, right, s, table)
            anyLeft = (0..<width).contains { table[Row.limit.rawValue * width + $0] != 1 << 21 }
            (lo, hi, zero) = (quanta(s.lo), quanta(s.hi), Int32(s.zero))
        }

        /// The output value of sum `x` at position `j` of a row, nil where |x · 2^l| ≥ 2^21 (the
        /// float64 chain then): the portable path.
        @inline(__always) public func quantized(_ x: Int32, at j: Int, signed: Bool) -> Int32? {
            guard x.magnitude < UInt32(value(.limit, j)) else { return nil }
            let product = Int64(x << value(.shiftLeft, j)) * Int64(value(.q31, j))
            let t = Int32(truncatingIfNeeded: (product + (1 << 30)) >> 31)
            let r = value(.shiftRight, j), bits = Int32(truncatingIfNeeded: (Int64(1) << Int64(r)) - 1)
            let threshold = (bits >> 1) + (t < 0 ? 1 : 0)
            let u = (t >> r) + ((t & bits) > threshold ? 1 : 0)
            let y = Swift.min(Swift.max(u, lo), hi) + zero
            return signed ? Swift.min(Swift.max(y, -128), 127) : Swift.min(Swift.max(y, 0), 255)
        }

        /// rows × width int32 sums into rows × width bytes on AVX-512 (sixteen lanes in integers,
        /// the rare group with a larger sum as `run`). False (nothing written) when AVX-512 may not run.
        public func run(_ x: UnsafePointer<Int32>, rows: Int, signed: Bool, into out: UnsafeMutableRawPointer) -> Bool {
            guard CPUFeatures.avx512, rows > 0 else { return false }
            table.withUnsafeBufferPointer { t in
                guard let base = t.baseAddress else { return }
                func row(_ r: Row) -> UnsafePointer<Int32> { base + r.rawValue * width }
                var q = dlk_q31(shift_left: row(.shiftLeft), multiplier: row(.q31), shift_right: row(.shiftRight), limit: row(.limit),
                                multiplier_swapped: row(.q31Swapped), round_up: row(.roundUp), round_down: row(.roundDown),
                                lo: lo, hi: hi, zero: zero, any_left: anyLeft ? 1 : 0)
                dlk_requantize_q31(x, rows, width, &q, left, multiplier, right, scales.real, scales.lo, scales.hi, scales.y,
                                   scales.zero, signed ? 1 : 0, out)
            }
            return true
        }
    }

    /// u of (x − offset)·scale into `out` (rows × width doubles), the constants as for `run`.
    /// False (nothing written) when AVX-512 may not run.
    public static func fixedPoint(_ x: UnsafeRawPointer, _ values: Values, rows: Int, width: Int, offset: Double, scale: Double,
                                  left: [Double], multiplier: [Double], right: [Double], into out: UnsafeMutablePointer<Double>) -> Bool {
        precondition(left.count == width && multiplier.count == width && right.count == width, "IntegerRequantize.fixedPoint: constants do not match the width")
        guard CPUFeatures.avx512, rows > 0, width > 0 else { return false }
        dlk_fixed_point_multiply(x, values.rawValue, rows, width, offset, scale, left, multiplier, right, out)
        return true
    }

    /// ONNX Runtime's requantization of int32 sums (rows × width, the scale per position on the
    /// last axis): saturate(round_half_even(Float(x) · scale) + zero) to int8 or uint8 bytes.
    /// False (nothing written) when AVX-512 may not run.
    public static func scaled(_ x: UnsafePointer<Int32>, rows: Int, width: Int, scales: [Float], zero: Int32, signed: Bool,
                              into out: UnsafeMutableRawPointer) -> Bool {
        precondition(scales.count == width, "IntegerRequantize.scaled: scales do not match the width")
        guard CPUFeatures.avx512, rows > 0, width > 0 else { return false }
        dlk_requantize_scaled(x, rows, width, scales, zero, signed ? 1 : 0, out)
        return true
    }

    /// QuantizeLinear of `count` float32 values with one scale and zero point: saturate(
    /// round_half_even(x / scale) + zero) as int8 or uint8 bytes, NaN to 0. False (nothing
    /// written) when AVX-512 may not run.
    public static func quantize(_ x: UnsafePointer<Float>, count: Int, scale: Float, zero: Int32, signed: Bool,
                                into out: UnsafeMutableRawPointer) -> Bool {
        guard CPUFeatures.avx512, count > 0 else { return false }
        dlk_quantize_f32(x, count, scale, zero, signed ? 1 : 0, out)
        return true
    }

    /// DequantizeLinear of `count` int8 or uint8 bytes with one scale and zero point:
    /// Float(x − zero) · scale. False (nothing written) when AVX-512 may not run.
    public static func dequantize(_ x: UnsafeRawPointer, count: Int, signed: Bool, zero: Int32, scale: Float,
                                  into out: UnsafeMutablePointer<Float>) -> Bool {
        guard CPUFeatures.avx512, count > 0 else { return false }
        dlk_dequantize_8(x, count, signed ? 1 : 0, zero, scale, out)
        return true
    }
}
