import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Softmax and log-softmax along one axis of a contiguous float32 tensor (ONNX opset ≥ 13).
///
/// The tensor is viewed as `[outer, axisSize, inner]`: for shape `s` and axis `k`,
/// `outer = s[0] * … * s[k-1]`, `axisSize = s[k]`, `inner = s[k+1] * … * s[r-1]`. The opset < 13
/// semantics (flatten to 2-D at `axis` and normalise each row) is `inner = 1`,
/// `axisSize = s[k] * … * s[r-1]`. Each slice is shifted by its maximum before `exp`, so large
/// inputs do not overflow. `output` may be `input` (in place) but must not otherwise overlap it.
public enum Softmax {
    /// Inner positions handled together when `inner > 1`: keeps the per-position maxima and sums
    /// in a small buffer, and the loops over them contiguous.
    static let tile = 256

    /// `y = exp(x - max) / Σ exp(x - max)` along the axis.
    public static func softmax(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
        outer: Int, axisSize: Int, inner: Int
    ) {
        if axisSize == 0 { return }
        if inner == 1 {
            // AVX-512 rows (16 floats a step against 4 here) when the CPU has it.
            if CPUFeatures.avx512, outer <= Int(Int32.max), axisSize <= Int(Int32.max),
               dlk_softmax_rows(input, axisSize, output, axisSize, Int32(outer), Int32(axisSize)) == 0 {
                return
            }
            softmaxRowsPortable(input, output, outer: outer, axisSize: axisSize)
            return
        }
        if CPUFeatures.avx512, axisSize <= Int(Int32.max) {
            // Sixteen columns at a time on AVX-512, blocks of columns split over the workers (each
            // column is a softmax of its own: the same bits however they are split). YOLOv8's
            // distribution head, 16 bins over 4 x 2100 positions: 0.30 ms in the Swift tiles.
            let blocks = (inner + 15) / 16
            ParallelFor.run(outer * blocks, cost: axisSize * 16 * 8) { lo, hi in
                var i = lo
                while i < hi {
                    let o = i / blocks, b0 = i % blocks, b1 = min(blocks, b0 + (hi - i))
                    let at = o * axisSize * inner
                    _ = dlk_softmax_columns(input + at, output + at, Int32(axisSize), inner, b0 * 16, min(inner, b1 * 16))
                    i += b1 - b0
                }
            }
            return
        }
        forEachTile(input, outer: outer, axisSize: axisSize, inner: inner) { base, width, maxima, sums in
            for a in 0..<axisSize {
                expShifted(input + base + a * inner, by: maxima, into: output + base + a * inner,
                           accumulating: sums, width)
            }
            for i in 0..<width { sums[i] = 1 / sums[i] }
            for a in 0..<axisSize {
                let y = output + base + a * inner
                BinaryLoops.vectorVector(FloatMul<Float>.self, y, sums, y, width)
            }
        }
    }

    /// Softmax of `outer` contiguous rows of `axisSize` floats without the AVX-512 kernel (the
    /// fallback, and the tests' reference for it).
    static func softmaxRowsPortable(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
                                    outer: Int, axisSize: Int) {
        guard axisSize > 0 else { return }
        for o in 0..<outer {
            let x = input + o * axisSize, y = output + o * axisSize
            let m = Reduce.max(x, count: axisSize)
            let sum = expShifted(x, by: m, into: y, axisSize)
            scale(y, by: 1 / sum, axisSize)
        }
    }

    /// `y = x - max - log Σ exp(x - max)` along the axis.
    public static func logSoftmax(
        _ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>,
        outer: Int, axisSize: Int, inner: Int
    ) {
        if axisSize == 0 { return }
        if inner == 1 {
            for o in 0..<outer {
                let x = input + o * axisSize, y = output + o * axisSize
                let m = Reduce.max(x, count: axisSize)
                let sum = expShifted(x, by: m, into: nil, axisSize)
                BinaryLoops.vectorScalar(FloatSub<Float>.self, x, m + logf(sum), y, axisSize)
            }
            return
        }
        forEachTile(input, outer: outer, axisSize: axisSize, inner: inner) { base, width, maxima, sums in
            for a in 0..<axisSize {
                expShifted(input + base + a * inner, by: maxima, into: nil, accumulating: sums, width)
            }
            for i in 0..<width { sums[i] = maxima[i] + logf(sums[i]) }
            for a in 0..<axisSize {
                BinaryLoops.vectorVector(FloatSub<Float>.self, input + base + a * inner, sums,
                                         output + base + a * inner, width)
            }
        }
    }

    /// Σ exp(x[i] - m) over `n` elements, storing each term in `y` when given.
    @inline(__always)
    static func expShifted(
        _ x: UnsafePointer<Float>, by m: Float, into y: UnsafeMutablePointer<Float>?, _ n: Int
    ) -> Float {
        let vm = SIMD8<Float>(repeating: m)
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            let e = VectorMath.exp(SIMD8.load(x + i) - vm)
            if let y { e.store(y + i) }
            acc += e
            i += 8
        }
        var sum = acc.sum()
        while i < n {
            let e = VectorMath.exp(x[i] - m)
            y?[i] = e
            sum += e
            i += 1
        }
        return sum
    }

    /// `sums[i] += exp(x[i] - maxima[i])` over `n` positions, storing each term in `y` when given.
    @inline(__always)
    static func expShifted(
        _ x: UnsafePointer<Float>, by maxima: UnsafeMutablePointer<Float>, into y: UnsafeMutablePointer<Float>?,
        accumulating sums: UnsafeMutablePointer<Float>, _ n: Int
    ) {
        var i = 0
        while i + 8 <= n {
            let e = VectorMath.exp(SIMD8.load(x + i) - SIMD8.load(maxima + i))
            if let y { e.store(y + i) }
            (SIMD8.load(sums + i) + e).store(sums + i)
            i += 8
        }
        while i < n {
            let e = VectorMath.exp(x[i] - maxima[i])
            y?[i] = e
            sums[i] += e
            i += 1
        }
    }

    @inline(__always)
    static func scale(_ y: UnsafeMutablePointer<Float>, by s: Float, _ n: Int) {
        BinaryLoops.vectorScalar(FloatMul<Float>.self, y, s, y, n)
    }

    /// Calls `body(offset, width, maxima, sums)` for each tile of at most `tile` inner positions:
    /// `offset` is the element offset of the tile's first position at axis index 0, `maxima` holds
    /// the maximum along the axis for each position and `sums` is zeroed.
    @inline(__always)
    static func forEachTile(
        _ input: UnsafePointer<Float>, outer: Int, axisSize: Int, inner: Int,
        _ body: (Int, Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    ) {
        // One small heap allocation per call. Not withUnsafeTemporaryAllocation: in a Swift 6.3
        // release build its typed-throws check trapped after the (non-throwing) body returned.
        let maxima = UnsafeMutablePointer<Float>.allocate(capacity: 2 * tile)
        defer { maxima.deallocate() }
        let sums = maxima + tile
        for o in 0..<outer {
            var start = 0
            while start < inner {
                let width = min(tile, inner - start)
                let base = o * axisSize * inner + start
                maxima.update(from: input + base, count: width)
                for a in 1..<axisSize {
                    BinaryLoops.vectorVector(FloatMax.self, maxima, input + base + a * inner, maxima, width)
                }
                sums.update(repeating: 0, count: width)
                body(base, width, maxima, sums)
                start += width
            }
        }
    }
}

/// `max(a, b)` for the running maxima (a NaN in `b` is skipped).
enum FloatMax: BinaryFunctor {
    @inline(__always) static func scalar(_ a: Float, _ b: Float) -> Float { b > a ? b : a }
    @inline(__always) static func vector(_ a: SIMD8<Float>, _ b: SIMD8<Float>) -> SIMD8<Float> {
        a.replacing(with: b, where: b .> a)
    }
}
