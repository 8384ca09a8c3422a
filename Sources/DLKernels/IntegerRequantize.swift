import CKernels

/// TFLite's requantization of int32 sums as DLTFLite's float64 IR ops compute it (the runtime's
/// `ai.dlkit.Requantize`): per element, with the constants of its position on the last axis,
/// u = round_half_away(floor((x·left)·multiplier + 0.5)·right) in Double, then
/// clamp(Float(u)·realScale, lo, hi), divided by yScale, rounded half to even, plus the zero
/// point, saturated to int8 or uint8. On AVX-512 eight lanes at a time, each step rounded as
/// the scalar ops round; elsewhere the caller's own loop runs (`run` returns false).
public enum IntegerRequantize {
    public struct Scales {
        public var real: Float, lo: Float, hi: Float, y: Float, zero: Double

        public init(real: Float, lo: Float, hi: Float, y: Float, zero: Double) {
            (self.real, self.lo, self.hi, self.y, self.zero) = (real, lo, hi, y, zero)
        }
    }

    /// x holds rows × width int32 sums; left, multiplier and right `width` values each; out
    /// rows × width bytes. False (nothing written) when AVX-512 may not run.
    public static func run(_ x: UnsafePointer<Int32>, rows: Int, width: Int, left: [Double], multiplier: [Double], right: [Double],
                           _ s: Scales, signed: Bool, into out: UnsafeMutableRawPointer) -> Bool {
        precondition(left.count == width && multiplier.count == width && right.count == width, "IntegerRequantize.run: constants do not match the width")
        guard CPUFeatures.avx512, rows > 0, width > 0 else { return false }
        dlk_requantize_i32(x, rows, width, left, multiplier, right, s.real, s.lo, s.hi, s.y, s.zero, signed ? 1 : 0, out)
        return true
    }
}
