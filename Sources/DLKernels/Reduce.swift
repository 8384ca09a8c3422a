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
    }}
