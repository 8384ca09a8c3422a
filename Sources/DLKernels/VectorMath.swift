/// Eight-lane float32 transcendental functions for the elementwise, softmax and sigmoid loops,
/// where calling libm once per element costs more than the memory traffic.
enum VectorMath {
    /// `eˣ` lane by lane, within 2 ulp of the exact value over the normal range (Cephes `expf`:
    /// `x = n·ln2 + r`, a degree-6 polynomial for `eʳ` on `|r| ≤ ln2/2`, then a multiplication by
    /// `2ⁿ` built in the exponent bits, in two halves so that both stay normal numbers).
    ///
    /// Overflows to `+infinity` above `x ≈ 88.72`, underflows through subnormals to 0 below
    /// `x ≈ -103.97`, keeps NaN.
    @inline(__always)
    static func exp(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let upper: Float = 88.722_839_05, lower: Float = -103.972_084
        let xc = x.replacing(with: lower, where: x .< lower).replacing(with: upper, where: x .> upper)
        // n = round(x / ln2) in -150...128, by adding 1.5·2²³: the sum's low mantissa bits are n.
        // (The stdlib's lane-wise rounding and conversions are not vectorised; this is.)
        let magic: Float = 12_582_912
        let t = xc * 1.442_695_040_888_963_4 + magic
        let n = t - magic
        let ni = unsafeBitCast(t, to: SIMD8<Int32>.self) &- 0x4B40_0000
        // r = x - n·ln2, with ln2 split in two so that n·C1 is exact.
        var r = xc - n * 0.693_359_375
        r = r - n * -2.121_944_400_546_905_8e-4
        var p = SIMD8<Float>(repeating: 1.987_569_150_0e-4)
        p = p * r + 1.398_199_950_7e-3
        p = p * r + 8.333_451_907_3e-3
        p = p * r + 4.166_579_589_4e-2
        p = p * r + 1.666_666_545_9e-1
        p = p * r + 5.000_000_120_1e-1
        p = p * (r * r) + r + 1
        // 2ⁿ = 2^n1 · 2^n2 with n1, n2 in -75...64: each a normal float.
        let n1 = ni &>> 1
        let n2 = ni &- n1
        let s1 = unsafeBitCast((n1 &+ 127) &<< 23, to: SIMD8<Float>.self)
        let s2 = unsafeBitCast((n2 &+ 127) &<< 23, to: SIMD8<Float>.self)
        var y = (p * s1) * s2
        y.replace(with: .infinity, where: x .> upper)
        y.replace(with: 0, where: x .< lower)
        y.replace(with: x, where: x .!= x)
        return y
    }

    /// `eˣ` for one value, by the same method (tails of vector loops stay consistent with them).
    @inline(__always)
    static func exp(_ x: Float) -> Float { exp(SIMD8(repeating: x))[0] }

    /// `1 / (1 + e⁻ˣ)` lane by lane, from `e^-|x|` so that nothing overflows: `eˣ / (1 + eˣ)` for
    /// negative x.
    @inline(__always)
    static func sigmoid(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let negativeAbs = x.replacing(with: -x, where: x .> 0)
        let e = exp(negativeAbs)
        let q = 1 / (1 + e)
        return q.replacing(with: e * q, where: x .< 0)
    }

    /// `tanh x` lane by lane, within a few ulp (Cephes `tanhf`): an odd polynomial for
    /// `|x| < 0.625`, else `1 - 2 / (e^{2|x|} + 1)` written with `e^{-2|x|}` so that it cannot
    /// overflow; the sign is restored last. NaN stays NaN.
    @inline(__always)
    static func tanh(_ x: SIMD8<Float>) -> SIMD8<Float> {
        let a = x.replacing(with: -x, where: x .< 0)
        let z = x * x
        var p = SIMD8<Float>(repeating: -5.704_988_727_45e-3)
        p = p * z + 2.063_908_879_54e-2
        p = p * z - 5.373_971_555_31e-2
        p = p * z + 1.333_144_220_36e-1
        p = p * z - 3.333_328_194_22e-1
        let small = p * z * x + x
        let e = exp(-2 * a)
        var large = 1 - 2 * e / (1 + e)
        large.replace(with: -large, where: x .< 0)
        return small.replacing(with: large, where: a .>= 0.625)
    }

    /// `tanh x` lane by lane as one rational function, for the LSTM cell: x·P(x²)/Q(x²), P and Q
    /// of degree 4 (`scripts/fit_tanh.py`), |x| clamped to 9 and the result to [-1, 1]; within 4e-7
    /// of tanh. The formula of the AVX-512 `dlk_tanh_rational16`, which fuses the multiply-adds
    /// (here unfused: SSE has no FMA): the two agree to an ulp or two. NaN stays NaN.
    @inline(__always)
    static func tanhRational(_ x: SIMD8<Float>) -> SIMD8<Float> {
        // A NaN lane fails both comparisons and keeps its value.
        let xc = x.replacing(with: 9, where: x .> 9).replacing(with: -9, where: x .< -9)
        let s = xc * xc
        var p = SIMD8<Float>(repeating: 1.335_506_214e-08)
        p = p * s + 2.060_937_042e-05
        p = p * s + 3.495_605_579e-03
        p = p * s + 1.338_104_031e-01
        p = p * s + 9.999_999_794e-01
        var q = SIMD8<Float>(repeating: 7.776_721_984e-07)
        q = q * s + 3.285_663_401e-04
        q = q * s + 2.587_704_852e-02
        q = q * s + 4.671_435_590e-01
        q = q * s + 1
        let r = xc * p / q
        return r.replacing(with: 1, where: r .> 1).replacing(with: -1, where: r .< -1)
    }

    /// `1 / (1 + e⁻ˣ)` lane by lane as ½ + ½·tanh(x/2) with `tanhRational`: within 2.5e-7 in
    /// absolute terms (as `dlk_sigmoid_rational16`).
    @inline(__always)
    static func sigmoidRational(_ x: SIMD8<Float>) -> SIMD8<Float> {
        0.5 * tanhRational(0.5 * x) + 0.5
    }
}
