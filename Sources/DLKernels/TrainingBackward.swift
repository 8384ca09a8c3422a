/// Loops the gradient rules of DLAutograd spend their time in, written over raw float32 buffers
/// with the bounds worked out once per row so the inner loops are plain (vectorisable) runs.
/// Each one adds in the same order as the straightforward loop it replaces, so results are
/// bit-identical to it.
public enum TrainingBackward {
    /// Adds a `channels * kernelH * kernelW` × `outH * outW` columns matrix back onto the image
    /// `[channels, inH, inW]` (the adjoint of ``Convolution`` im2col; padding taps are dropped).
    public static func col2imAdd(
        _ p: Conv2DParams, columns: UnsafePointer<Float>, channels: Int, outH: Int, outW: Int,
        into image: UnsafeMutablePointer<Float>
    ) {
        var row = columns
        let plane = outH * outW
        for ch in 0..<channels {
            let dst = image + ch * p.inH * p.inW
            for kh in 0..<p.kernelH {
                for kw in 0..<p.kernelW {
                    let shift = kw * p.dilationW - p.padLeft
                    let (lo, hi) = validRange(count: outW, stride: p.strideW, shift: shift, limit: p.inW)
                    if lo < hi {
                        for oh in 0..<outH {
                            let ih = oh * p.strideH + kh * p.dilationH - p.padTop
                            if ih < 0 || ih >= p.inH { continue }
                            let src = row + oh * outW
                            let line = dst + ih * p.inW + shift
                            if p.strideW == 1 {
                                for ow in lo..<hi { line[ow] += src[ow] }
                            } else {
                                let s = p.strideW
                                for ow in lo..<hi { line[ow * s] += src[ow] }
                            }
                        }
                    }
                    row += plane
                }
            }
        }
    }

    /// The outputs `o` in `0..<count` with `0 <= o * stride + shift < limit`, as a half-open range.
    @inline(__always)
    static func validRange(count: Int, stride: Int, shift: Int, limit: Int) -> (Int, Int) {
        if stride <= 0 {
            // Every o lands on `shift` (stride 0); negative strides do not occur in valid geometry.
            return stride == 0 && shift >= 0 && shift < limit ? (0, count) : (0, 0)
        }
        // o * stride >= -shift  →  o >= ceil(-shift / stride)
        var lo = 0
        if shift < 0 { lo = (-shift + stride - 1) / stride }
        // o * stride + shift <= limit - 1  →  o <= floor((limit - 1 - shift) / stride)
        let top = limit - 1 - shift
        let hi = top < 0 ? 0 : min(count, top / stride + 1)
        return (min(lo, hi), hi)
    }

    /// `out[i] = x[i] > 0 ? g[i] : 0` (Relu's gradient).
    public static func reluGradient(x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>,
                                    into out: UnsafeMutablePointer<Float>, count: Int) {
        // Eight lanes at a time (the scalar select did not vectorise: a third of a small CNN's
        // step), split over the workers.
        ParallelFor.runInVectors(count, cost: 3) { r in
            var i = r.lowerBound
            let end = r.upperBound
            while i + 8 <= end {
                let xv = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
                let gv = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(out + i).storeBytes(of: gv.replacing(with: 0, where: .!(xv .> 0)), as: SIMD8<Float>.self)
                i += 8
            }
            while i < end {
                out[i] = x[i] > 0 ? g[i] : 0
                i += 1
            }
        }
    }

    /// Max-pooling backward over `planes` planes of `inH × inW` (NCHW flattened): each output
    /// gradient goes to the first maximum of its window (a NaN wins and stops the search), added
    /// into `gx`, which the caller zeroes. Windows with no tap inside the image send nothing.
    public static func maxPool2DBackward(
        x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into gx: UnsafeMutablePointer<Float>,
        planes: Int, inH: Int, inW: Int, outH: Int, outW: Int,
        kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padTop: Int, padLeft: Int,
        dilationH: Int, dilationW: Int
    ) {
        if kernelH == 2, kernelW == 2, strideH == 2, strideW == 2, padTop == 0, padLeft == 0, dilationH == 1, dilationW == 1,
           2 * outH <= inH, 2 * outW <= inW {
            maxPool2x2Backward(x: x, gradient: g, into: gx, planes: planes, inH: inH, inW: inW, outH: outH, outW: outW)
            return
        }
        maxPool2DBackwardWindows(x: x, gradient: g, into: gx, planes: planes, inH: inH, inW: inW, outH: outH, outW: outW,
                                 kernelH: kernelH, kernelW: kernelW, strideH: strideH, strideW: strideW, padTop: padTop,
                                 padLeft: padLeft, dilationH: dilationH, dilationW: dilationW)
    }

    /// ``maxPool2DBackward(x:gradient:into:planes:inH:inW:outH:outW:kernelH:kernelW:strideH:strideW:padTop:padLeft:dilationH:dilationW:)``
    /// for the plain 2 × 2 pool of stride 2 whose windows lie inside the image: the same taps in
    /// the same order (row by row), without the per-window bounds (the general loop was 29% of a
    /// small CNN's training step).
    static func maxPool2x2Backward(x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into gx: UnsafeMutablePointer<Float>,
                                   planes: Int, inH: Int, inW: Int, outH: Int, outW: Int) {
        let inPlane = inH * inW, outPlane = outH * outW
        ParallelFor.run(planes, cost: inPlane + outPlane) { lo, hi in
        for p in lo..<hi {
            let xp = x + p * inPlane, gp = g + p * outPlane, dp = gx + p * inPlane
            for oh in 0..<outH {
                for ow in 0..<outW {
                    // Each tap taken if it beats the best so far; a NaN ends the search. Without
                    // a NaN (the usual window) as selections, not branches: which tap wins is
                    // data, and mispredicted branches made a window cost 10-20 ns.
                    let i0 = 2 * oh * inW + 2 * ow
                    let a = xp[i0], b = xp[i0 + 1], c = xp[i0 + inW], d = xp[i0 + inW + 1]
                    var best = i0
                    if !(a.isNaN || b.isNaN || c.isNaN || d.isNaN) {
                        var bestValue = a
                        let takeB = b > bestValue
                        best = takeB ? i0 + 1 : best
                        bestValue = takeB ? b : bestValue
                        let takeC = c > bestValue
                        best = takeC ? i0 + inW : best
                        bestValue = takeC ? c : bestValue
                        best = d > bestValue ? i0 + inW + 1 : best
                    } else {
                        // The first NaN in row-major order.
                        best = a.isNaN ? i0 : b.isNaN ? i0 + 1 : c.isNaN ? i0 + inW : i0 + inW + 1
                    }
                    dp[best] += gp[oh * outW + ow]
                }
            }
        }
        }
    }

    /// Any window geometry (see the entry point above).
    static func maxPool2DBackwardWindows(
        x: UnsafePointer<Float>, gradient g: UnsafePointer<Float>, into gx: UnsafeMutablePointer<Float>,
        planes: Int, inH: Int, inW: Int, outH: Int, outW: Int,
        kernelH: Int, kernelW: Int, strideH: Int, strideW: Int, padTop: Int, padLeft: Int,
        dilationH: Int, dilationW: Int
    ) {
        let inPlane = inH * inW, outPlane = outH * outW
        ParallelFor.run(planes, cost: inPlane + outPlane * kernelH * kernelW) { lo, hi in
        for p in lo..<hi {
            let xp = x + p * inPlane, gp = g + p * outPlane, dp = gx + p * inPlane
            for oh in 0..<outH {
                let h0 = oh * strideH - padTop
                let (khLo, khHi) = validRange(count: kernelH, stride: dilationH, shift: h0, limit: inH)
                for ow in 0..<outW {
                    let w0 = ow * strideW - padLeft
                    let (kwLo, kwHi) = validRange(count: kernelW, stride: dilationW, shift: w0, limit: inW)
                    var best = -1
                    var bestValue = -Float.infinity
                    search: for kh in khLo..<khHi {
                        let rowBase = (h0 + kh * dilationH) * inW + w0
                        for kw in kwLo..<kwHi {
                            let idx = rowBase + kw * dilationW
                            let v = xp[idx]
                            if best < 0 || v > bestValue || v.isNaN { best = idx; bestValue = v }
                            if v.isNaN { break search }
                        }
                    }
                    if best >= 0 { dp[best] += gp[oh * outW + ow] }
                }
            }
        }
        }
    }

    /// `sums[c] += Σ values[b, c, 0..<plane]` over `batch` images of `channels` planes (a
    /// convolution's bias gradient). Eight running lanes per plane, added pairwise at the end.
    public static func addPlaneSums(_ values: UnsafePointer<Float>, batch: Int, channels: Int, plane: Int,
                                    into sums: UnsafeMutablePointer<Float>) {
        for b in 0..<batch {
            for ch in 0..<channels {
                let src = values + (b * channels + ch) * plane
                var acc = SIMD8<Float>(repeating: 0)
                var i = 0
                while i + 8 <= plane {
                    acc += UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self)
                    i += 8
                }
                var s = acc.sum()
                while i < plane {
                    s += src[i]
                    i += 1
                }
                sums[ch] += s
            }
        }
    }
}
