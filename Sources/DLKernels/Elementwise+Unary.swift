import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Unary float32 functions over `count` contiguous elements. `output` may be `input` (in place)
/// but must not otherwise overlap it.
extension Elementwise {
    /// `max(x, 0)`; NaN stays NaN.
    public static func relu(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        map(Relu(), input, output, count)
    }

    /// `x < 0 ? alpha * x : x` (ONNX `LeakyRelu`, default alpha 0.01).
    public static func leakyRelu(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int, alpha: Float
    ) {
        map(LeakyRelu(alpha: alpha), input, output, count)
    }

    /// `min(max(x, lower), upper)` (ONNX `Clip`; ReLU6 is `lower: 0, upper: 6`). NaN stays NaN.
    /// - Precondition: `lower <= upper` (ONNX leaves the other case undefined; the caller decides).
    public static func clip(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int,
        lower: Float, upper: Float
    ) {
        map(Clip(lower: lower, upper: upper), input, output, count)
    }

    /// `-x`.
    public static func neg(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        map(Negate(), input, output, count)
    }

    /// `|x|`.
    public static func abs(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        map(Absolute(), input, output, count)
    }

    /// `√x` (NaN for negative x).
    public static func sqrt(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        map(SquareRoot(), input, output, count)
    }

    /// `eˣ`, within 2 ulp over the normal range (a vectorised polynomial rather than libm, about
    /// 2.5 times faster: see `VectorMath.exp`).
    public static func exp(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        map(Exponential(), input, output, count)
    }

    /// Natural logarithm (`-infinity` at 0, NaN below), by libm.
    public static func log(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { output[i] = logf(input[i]) }
    }

    /// Hyperbolic tangent, within a few ulp (a vectorised polynomial: see `VectorMath.tanh`).
    public static func tanh(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        if CPUFeatures.avx512, dlk_tanh(input, output, count) == 0 { return }
        map(HyperbolicTangent(), input, output, count)
    }

    /// The error function in float32: GELU's exact form (`0.5·x·(1 + erf(x/√2))`, BERT's
    /// activation) runs it over every FFN activation. On AVX-512 a vectorised polynomial within
    /// 2 ulp (`dlk_erf`; ONNX Runtime's is an approximation too), else the C library's `erff`.
    public static func erf(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        if CPUFeatures.avx512, dlk_erf(input, output, count) == 0 { return }
        for i in 0..<count { output[i] = erff(input[i]) }
    }

    /// `1 / (1 + e⁻ˣ)`, computed as `eˣ / (1 + eˣ)` for negative x so that no intermediate
    /// overflows: 0 and 1 in the far tails, never NaN for non-NaN input.
    public static func sigmoid(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, count: Int) {
        map(Sigmoid(), input, output, count)
    }

    /// Applies `f` eight lanes at a time, then to the tail; generic so that each function is
    /// specialised and inlined into its own loop.
    @inline(__always)
    static func map<F: UnaryFunctor>(
        _ f: F, _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ count: Int
    ) {
        var i = 0
        while i + 8 <= count {
            f.vector(.load(input + i)).store(output + i)
            i += 8
        }
        while i < count {
            output[i] = f.scalar(input[i])
            i += 1
        }
    }
}

/// One float32 function as a scalar and as an eight-lane vector.
protocol UnaryFunctor {
    func scalar(_ x: Float) -> Float
    func vector(_ x: SIMD8<Float>) -> SIMD8<Float>
}

struct Relu: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { x < 0 ? 0 : x }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x.replacing(with: 0, where: x .< 0) }
}

struct LeakyRelu: UnaryFunctor {
    let alpha: Float
    @inline(__always) func scalar(_ x: Float) -> Float { x < 0 ? alpha * x : x }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x.replacing(with: x * alpha, where: x .< 0) }
}

struct Clip: UnaryFunctor {
    let lower: Float, upper: Float
    @inline(__always) func scalar(_ x: Float) -> Float { x < lower ? lower : (x > upper ? upper : x) }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> {
        x.replacing(with: lower, where: x .< lower).replacing(with: upper, where: x .> upper)
    }
}

struct Negate: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { -x }
    /// By -1: SIMD's prefix minus is `0 - x`, which gives +0 for +0 (the scalar form, -0).
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x * -1 }
}

struct Absolute: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { Swift.abs(x) }
    /// -0 becomes +0 as in the scalar form (the lanes of a vector kept it negative).
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x.replacing(with: -x, where: x .< 0).replacing(with: 0, where: x .== 0) }
}

struct SquareRoot: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { x.squareRoot() }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { x.squareRoot() }
}

struct Exponential: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { VectorMath.exp(x) }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.exp(x) }
}

struct Sigmoid: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { VectorMath.sigmoid(SIMD8(repeating: x))[0] }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.sigmoid(x) }
}

struct HyperbolicTangent: UnaryFunctor {
    @inline(__always) func scalar(_ x: Float) -> Float { VectorMath.tanh(SIMD8(repeating: x))[0] }
    @inline(__always) func vector(_ x: SIMD8<Float>) -> SIMD8<Float> { VectorMath.tanh(x) }
}

extension Elementwise {
    /// ONNX QuantizeLinear then DequantizeLinear with one scale and zero point, in float:
    /// `y = (clamp(round_half_even(x / scale) + zero, qmin, qmax) - zero) · scale`, NaN quantising
    /// to the integer 0. `y` may be `x`.
    public static func quantizeDequantize(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                          scale: Float, zero: Float, qmin: Float, qmax: Float) {
        if CPUFeatures.avx512, dlk_quantize_dequantize(x, y, count, scale, zero, qmin, qmax) == 0 { return }
        for i in 0..<count {
            var v = (x[i] / scale).rounded(.toNearestOrEven) + zero
            v = v.isNaN ? 0 : min(max(v, qmin), qmax)
            y[i] = (v - zero) * scale
        }
    }
}
