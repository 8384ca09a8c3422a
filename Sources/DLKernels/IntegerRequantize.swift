import CKernels

/// TFLite's requantization as DLTFLite's float64 IR ops compute it (the runtime's
/// `ai.dlkit.Requantize` and `FixedPointMultiply`): per element, with the constants of its
/// position on the last axis, u = round_half_away(floor((x·left)·multiplier + 0.5)·right) in
/// Double; Requantize then clamps Float(u)·realScale to [lo, hi], divides by yScale, rounds half
/// to even, adds the zero point and saturates to int8 or uint8. On AVX-512 eight lanes at a time,
/// each step rounded as the scalar ops round; elsewhere the caller's own loop runs (the functions
/// return false).
public enum IntegerRequantize {
    public struct Scales {
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
