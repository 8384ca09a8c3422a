#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One binary operation on one element type, as a scalar and as an eight-lane vector, so the loops
/// below are specialised per operation with no call or branch per element.
protocol BinaryFunctor {
    associatedtype Scalar: SIMDScalar
    static func scalar(_ a: Scalar, _ b: Scalar) -> Scalar
    static func vector(_ a: SIMD8<Scalar>, _ b: SIMD8<Scalar>) -> SIMD8<Scalar>
}

/// Contiguous loops: eight lanes at a time, then a scalar tail. `o` may be the same address as a
/// vector operand (in place) but must not otherwise overlap it.
enum BinaryLoops {
    @inline(__always)
    static func vectorVector<F: BinaryFunctor>(
        _: F.Type, _ a: UnsafePointer<F.Scalar>, _ b: UnsafePointer<F.Scalar>,
        _ o: UnsafeMutablePointer<F.Scalar>, _ n: Int
    ) {
        var i = 0
        while i + 8 <= n {
            F.vector(.load(a + i), .load(b + i)).store(o + i)
            i += 8
        }
        while i < n {
            o[i] = F.scalar(a[i], b[i])
            i += 1
        }
    }

    @inline(__always)
    static func vectorScalar<F: BinaryFunctor>(
        _: F.Type, _ a: UnsafePointer<F.Scalar>, _ b: F.Scalar,
        _ o: UnsafeMutablePointer<F.Scalar>, _ n: Int
    ) {
        let vb = SIMD8<F.Scalar>(repeating: b)
        var i = 0
        while i + 8 <= n {
            F.vector(.load(a + i), vb).store(o + i)
            i += 8
        }
        while i < n {
            o[i] = F.scalar(a[i], b)
            i += 1
        }
    }

    @inline(__always)
    static func scalarVector<F: BinaryFunctor>(
        _: F.Type, _ a: F.Scalar, _ b: UnsafePointer<F.Scalar>,
        _ o: UnsafeMutablePointer<F.Scalar>, _ n: Int
    ) {
        let va = SIMD8<F.Scalar>(repeating: a)
        var i = 0
        while i + 8 <= n {
            F.vector(va, .load(b + i)).store(o + i)
            i += 8
        }
        while i < n {
            o[i] = F.scalar(a, b[i])
            i += 1
        }
    }
}

// MARK: Floating point (IEEE: division by zero gives ±infinity or NaN).

enum FloatAdd<T: BinaryFloatingPoint & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a + b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a + b }
}
enum FloatSub<T: BinaryFloatingPoint & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a - b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a - b }
}
enum FloatMul<T: BinaryFloatingPoint & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a * b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a * b }
}
enum FloatDiv<T: BinaryFloatingPoint & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a / b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a / b }
}

/// `aᵇ` in float32 through the double-precision `pow` (the result rounded once, as ONNX's Pow on
/// float tensors computed it before this kernel existed); `a·a` for eight lanes of exponent 2
/// (the same number: a float's square is exact in double).
enum FloatPow: BinaryFunctor {
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { Float(pow(Double(a), Double(b))) }
    @inline(__always) static func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        if b == SIMD8(repeating: 2) { return a * a }
        var r = SIMD8<Float>()
        for i in 0..<8 { r[i] = scalar(a[i], b[i]) }
        return r
    }
}
// Max, Min and PRelu select by a comparison: written over Float itself, since over a generic
// scalar the compiler built each comparison mask a lane at a time through memory (Max of a
// [1, 96, 96, 16] tensor and a [1, 1, 16] one took 1.93 ms against Add's 0.033).
enum FloatMaximum: BinaryFunctor {
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { b > a || b != b ? b : a }
    @inline(__always) static func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        // b where it is larger or NaN; a (NaN included) elsewhere. Two selects: or-ing the
        // masks first makes the compiler leave the vector form.
        a.replacing(with: b, where: b .> a).replacing(with: b, where: b .!= b)
    }
}
enum FloatMinimum: BinaryFunctor {
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { b < a || b != b ? b : a }
    @inline(__always) static func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: b, where: b .< a).replacing(with: b, where: b .!= b)
    }
}
/// ONNX PRelu: `a·b` where `a` is below zero.
enum FloatPRelu: BinaryFunctor {
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { a < 0 ? a * b : a }
    @inline(__always) static func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: a * b, where: a .< SIMD8<Float>.zero)
    }
}

// MARK: Integers (two's complement wrap-around; see `Elementwise` for division).

enum IntAdd<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a &+ b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a &+ b }
}
enum IntSub<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a &- b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a &- b }
}
enum IntMul<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a &* b }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a &* b }
}
enum IntDiv<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    /// Truncates toward zero; `x / 0 == 0`; `T.min / -1 == T.min` (wraps). Never traps.
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T {
        if b == 0 { return 0 }
        return a.dividedReportingOverflow(by: b).partialValue
    }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> {
        var r = SIMD8<T>()
        for i in 0..<8 { r[i] = scalar(a[i], b[i]) }
        return r
    }
}
enum IntMax<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { Swift.max(a, b) }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a.replacing(with: b, where: b .> a) }
}
enum IntMin<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { Swift.min(a, b) }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a.replacing(with: b, where: b .< a) }
}
enum IntPRelu<T: FixedWidthInteger & SIMDScalar>: BinaryFunctor {
    @inline(__always) static func scalar(_ a: T, _ b: T) -> T { a < 0 ? a &* b : a }
    @inline(__always) static func vector(_ a: SIMD8<T>, _ b: SIMD8<T>) -> SIMD8<T> { a.replacing(with: a &* b, where: a .< SIMD8<T>.zero) }
}
