/// Reductions over contiguous float32 runs, used by pooling, softmax and normalisation.
public enum Reduce {
    /// The sum of `count` floats, accumulated in eight lanes (closer to exact than a serial sum).
    @inline(__always)
    static func sum(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            acc += SIMD8.load(p + i)
            i += 8
        }
        var s = acc.sum()
        while i < count {
            s += p[i]
            i += 1
        }
        return s
    }

    /// The maximum of `count` floats; `-infinity` when `count` is 0.
    @inline(__always)
    static func max(_ p: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>(repeating: -.infinity)
        var i = 0
        while i + 8 <= count {
            let v = SIMD8.load(p + i)
            acc.replace(with: v, where: v .> acc)
            i += 8
        }
        var m = acc.max()
        while i < count {
            if p[i] > m { m = p[i] }
            i += 1
        }
        return m
    }
}

extension SIMD8 {
    // Inlinable: other targets (DLAutograd's LSTM loops) call these in their hottest loops, and a
    // generic body they cannot see ran unspecialised there, looking up SIMD8<Float>'s metadata
    // on every call (an LSTM training step took 3x as long).

    /// Eight elements starting at `p`, which need not be aligned.
    @inlinable @inline(__always)
    package static func load(_ p: UnsafePointer<Scalar>) -> SIMD8<Scalar> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Scalar>.self)
    }

    /// Writes the eight lanes to `p`, which need not be aligned.
    @inlinable @inline(__always)
    package func store(_ p: UnsafeMutablePointer<Scalar>) {
        UnsafeMutableRawPointer(p).storeBytes(of: self, as: SIMD8<Scalar>.self)
    }
}

extension Reduce {
    /// `y[o, i] = scale · Σ_k x[o, k, i]` over a row-major `[outer, size, inner]` array, summed in
    /// float32 along `k` (ONNX ReduceSum/ReduceMean over a run of adjacent axes). `y` is
    /// `[outer, inner]` and must not overlap `x`. Rows of `outer` split over the workers.
    public static func sum(_ x: UnsafePointer<Float>, outer: Int, size: Int, inner: Int, scale: Float,
                           into y: UnsafeMutablePointer<Float>) {
        ParallelFor.run(outer, cost: size * inner) { lo, hi in
            for o in lo..<hi {
                let src = x + o * size * inner, dst = y + o * inner
                if inner == 1 {
                    dst[0] = sum(src, count: size) * scale
                    continue
                }
                dst.update(repeating: 0, count: inner)
                for k in 0..<size {
                    let row = src + k * inner
                    for i in 0..<inner { dst[i] += row[i] }
                }
                if scale != 1 { for i in 0..<inner { dst[i] *= scale } }
            }
        }
    }

    /// ONNX `ReduceMax` (`largest`) or `ReduceMin` over the middle axis of `x` viewed as
    /// `[outer, size, inner]` (`size` ≥ 1), into `y` `[outer, inner]`; a NaN among the values
    /// gives NaN, as the general kernel does. Outer rows split over the workers.
    public static func extremum(_ x: UnsafePointer<Float>, outer: Int, size: Int, inner: Int, largest: Bool,
                                into y: UnsafeMutablePointer<Float>) {
        @inline(__always) func pick(_ a: Float, _ b: Float) -> Float {
            if a.isNaN || b.isNaN { return .nan }
            return largest ? (b > a ? b : a) : (b < a ? b : a)
        }
        @inline(__always) func pick(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
            let m = a.replacing(with: b, where: largest ? b .> a : b .< a)
            return m.replacing(with: .nan, where: (a .!= a) .| (b .!= b))
        }
        ParallelFor.run(outer, cost: size * inner) { lo, hi in
            for o in lo..<hi {
                let src = x + o * size * inner, dst = y + o * inner
                if inner == 1 {
                    // Along a row: sixteen running extrema, then across them.
                    var k = 0, v = SIMD16<Float>(repeating: src[0])
                    while k + 16 <= size {
                        v = pick(v, UnsafeRawPointer(src + k).loadUnaligned(as: SIMD16<Float>.self))
                        k += 16
                    }
                    var r = v[0]
                    for j in 1..<16 { r = pick(r, v[j]) }
                    while k < size { r = pick(r, src[k]); k += 1 }
                    dst[0] = r
                    continue
                }
                dst.update(from: src, count: inner)
                for k in 1..<Swift.max(1, size) {
                    let row = src + k * inner
                    var i = 0
                    while i + 16 <= inner {
                        let a = UnsafeRawPointer(dst + i).loadUnaligned(as: SIMD16<Float>.self)
                        let b = UnsafeRawPointer(row + i).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(dst + i).storeBytes(of: pick(a, b), as: SIMD16<Float>.self)
                        i += 16
                    }
                    while i < inner { dst[i] = pick(dst[i], row[i]); i += 1 }
                }
            }
        }
    }}
