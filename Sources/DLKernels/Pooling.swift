/// Max and average pooling over NCHW float32 buffers, and global pooling over any spatial rank.
public enum Pooling {
    /// ONNX `MaxPool` (without the `Indices` output): the maximum over each dilated window, pads
    /// ignored; NaN propagates. A window that covers only padding yields `-infinity`.
    ///
    /// - Parameters:
    ///   - input: `[batch, channels, inH, inW]`.
    ///   - output: `[batch, channels, outH, outW]`; must not overlap `input`.
    /// - Precondition: `p` validated by the caller (see ``Pool2DParams``).
    public static func maxPool2D(_ p: Pool2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        if p.strideH == 1, p.strideW == 1, p.dilationH == 1, p.dilationW == 1, p.kernelH * p.kernelW > 4 {
            maxPool2DUnitStride(p, input: input, output: output)
            return
        }
        if maxPool2DInside(p, input: input, output: output) { return }
        let dH = p.dilationH, dW = p.dilationW, inW = p.inW
        forEachWindow(p, input: input, output: output) { plane, h, w in
            var m = -Float.infinity
            var nan = false
            var ih = h.lo
            while ih < h.hi {
                let row = plane + ih * inW
                var iw = w.lo
                while iw < w.hi {
                    let v = row[iw]
                    m = v > m ? v : m
                    nan = nan || v != v
                    iw += dW
                }
                ih += dH
            }
            return nan ? .nan : m
        }
    }

    /// ``maxPool2D(_:input:output:)`` where every window lies inside the input (no padding,
    /// dilation 1, no ceil-mode overhang): the window read straight from its top-left tap, the
    /// same taps in the same order, planes split over the workers. openWakeWord's 1 × 2 pools
    /// at stride (1, 2) took 5 ns an output through the general walk's per-window bounds.
    /// - Returns: false (nothing written) for any other pool.
    static func maxPool2DInside(_ p: Pool2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) -> Bool {
        let inH = p.inH, inW = p.inW, outH = p.outH, outW = p.outW, kH = p.kernelH, kW = p.kernelW, sH = p.strideH, sW = p.strideW
        guard p.padTop == 0, p.padLeft == 0, p.padBottom == 0, p.padRight == 0, p.dilationH == 1, p.dilationW == 1,
              outH >= 1, outW >= 1, kH >= 1, kW >= 1, (outH - 1) * sH + kH <= inH, (outW - 1) * sW + kW <= inW else { return false }
        ParallelFor.run(p.batch * p.channels, cost: outH * outW * kH * kW) { lo, hi in
            for plane in lo..<hi {
                let base = input + plane * inH * inW, out = output + plane * outH * outW
                for oh in 0..<outH {
                    let top = base + oh * sH * inW, dst = out + oh * outW
                    if kH == 1, kW == 2, sW == 2 {
                        // Pairs along the row (CRNN and audio models' 1 × 2 pools): a loop the
                        // compiler vectorizes, with the general loop's result per pair.
                        for ow in 0..<outW {
                            let a = top[2 * ow], b = top[2 * ow + 1]
                            dst[ow] = a != a || b != b ? .nan : (b > a ? b : a)
                        }
                        continue
                    }
                    for ow in 0..<outW {
                        var m = -Float.infinity
                        var nan = false
                        let corner = top + ow * sW
                        for kh in 0..<kH {
                            let row = corner + kh * inW
                            for kw in 0..<kW {
                                let v = row[kw]
                                m = v > m ? v : m
                                nan = nan || v != v
                            }
                        }
                        dst[ow] = nan ? .nan : m
                    }
                }
            }
        }
        return true
    }

    /// ``maxPool2D(_:input:output:)`` at stride and dilation 1 (YOLO's SPPF: three 5 × 5 pools
    /// in a row): a window's maximum is the maximum over its rows of each row's maximum over the
    /// window's columns, so each plane takes a pass along the rows, then one down the columns,
    /// kh + kw taps per output instead of kh · kw; planes split over the workers. The first of
    /// equal values wins in row-major order either way (so ±0 come out as before), and a NaN
    /// anywhere in the window makes the output NaN.
    static func maxPool2DUnitStride(_ p: Pool2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let inH = p.inH, inW = p.inW, outH = p.outH, outW = p.outW
        precondition(outH >= 1 && outW >= 1, "empty pooling output")
        @inline(__always) func larger(_ m: Float, _ v: Float) -> Float { v > m || v != v ? v : m }
        ParallelFor.run(p.batch * p.channels, cost: (inH + outH) * outW * (p.kernelH + p.kernelW)) { lo, hi in
            let cols = UnsafeMutablePointer<Span>.allocate(capacity: outW)
            let rowMax = UnsafeMutablePointer<Float>.allocate(capacity: inH * outW)
            defer { cols.deallocate(); rowMax.deallocate() }
            for ow in 0..<outW {
                (cols + ow).initialize(to: Span(start: ow - p.padLeft, kernel: p.kernelW, dilation: 1, size: inW, padEnd: p.padRight))
            }
            for plane in lo..<hi {
                let base = input + plane * inH * inW
                for ih in 0..<inH {
                    let row = base + ih * inW, dst = rowMax + ih * outW
                    for ow in 0..<outW {
                        var m = -Float.infinity
                        for iw in cols[ow].lo..<cols[ow].hi { m = larger(m, row[iw]) }
                        dst[ow] = m
                    }
                }
                let out = output + plane * outH * outW
                for oh in 0..<outH {
                    let rows = Span(start: oh - p.padTop, kernel: p.kernelH, dilation: 1, size: inH, padEnd: p.padBottom)
                    let dst = out + oh * outW
                    for ow in 0..<outW { dst[ow] = -Float.infinity }
                    for ih in rows.lo..<rows.hi {
                        let src = rowMax + ih * outW
                        for ow in 0..<outW { dst[ow] = larger(dst[ow], src[ow]) }
                    }
                }
            }
        }
    }

    /// ONNX `AveragePool`: the mean over each window.
    ///
    /// The divisor is the number of window taps inside the input when `countIncludePad` is false;
    /// when true, the number of taps inside the explicitly padded input (`[-padBegin, in + padEnd)`
    /// per axis), so taps in the extra overhang `ceilMode` adds past the end padding are never
    /// counted (as ONNX Runtime and PyTorch do). A window with a zero divisor yields 0.
    ///
    /// - Parameters:
    ///   - input: `[batch, channels, inH, inW]`.
    ///   - output: `[batch, channels, outH, outW]`; must not overlap `input`.
    /// - Precondition: `p` validated by the caller (see ``Pool2DParams``).
    public static func averagePool2D(
        _ p: Pool2DParams, countIncludePad: Bool, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>
    ) {
        if p.kernelH == p.inH, p.kernelW == p.inW, p.outH == 1, p.outW == 1, p.dilationH == 1, p.dilationW == 1,
           p.padTop == 0, p.padLeft == 0, p.padBottom == 0, p.padRight == 0 {
            // One window over the whole plane (TFLite's squeeze-excite pools, Keras's
            // AveragePooling2D(pool_size=H×W)): a global average, summed a vector at a time.
            globalAveragePool(input: input, output: output, outer: p.batch * p.channels, spatial: p.inH * p.inW)
            return
        }
        let dH = p.dilationH, dW = p.dilationW, inW = p.inW
        forEachWindow(p, input: input, output: output) { plane, h, w in
            var sum: Float = 0
            var ih = h.lo
            while ih < h.hi {
                let row = plane + ih * inW
                var iw = w.lo
                while iw < w.hi {
                    sum += row[iw]
                    iw += dW
                }
                ih += dH
            }
            let count = countIncludePad ? h.paddedTaps * w.paddedTaps : h.taps * w.taps
            return count == 0 ? 0 : sum / Float(count)
        }
    }

    /// ONNX `GlobalAveragePool` for any spatial rank: `output[i] = mean(input[i*spatial ..< (i+1)*spatial])`
    /// for `i` in `0..<outer`, where `outer = N * C` and `spatial` is the product of the spatial sizes;
    /// planes split over the runtime's workers. `output` must not overlap `input`.
    public static func globalAveragePool(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, outer: Int, spatial: Int
    ) {
        let scale = spatial == 0 ? 0 : 1 / Float(spatial)
        ParallelFor.run(outer, cost: spatial) { lo, hi in
            for i in lo..<hi {
                output[i] = Reduce.sum(input + i * spatial, count: spatial) * scale
            }
        }
    }

    /// ONNX `GlobalMaxPool` for any spatial rank, laid out as ``globalAveragePool(input:output:outer:spatial:)``.
    /// An empty window (`spatial == 0`) yields `-infinity`.
    public static func globalMaxPool(
        input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, outer: Int, spatial: Int
    ) {
        for i in 0..<outer {
            output[i] = Reduce.max(input + i * spatial, count: spatial)
        }
    }

    /// One window's extent along one axis.
    struct Span {
        /// Input indices of the in-bounds taps: from `lo`, stepping by the dilation, below `hi`.
        var lo: Int, hi: Int
        /// The number of in-bounds taps, and of taps inside the explicitly padded axis.
        var taps = 0, paddedTaps: Int

        /// The taps `start + k * dilation` (`0 ≤ k < kernel`) of a window on an axis of length
        /// `size` with `padEnd` explicit padding after it (`start ≥ -padBegin` always holds).
        @inline(__always)
        init(start: Int, kernel: Int, dilation: Int, size: Int, padEnd: Int) {
            let kLo = max(0, ceilDivide(-start, dilation))
            let kHi = min(kernel, floorDivide(size - 1 - start, dilation) + 1)
            lo = start + kLo * dilation
            if kHi > kLo {
                hi = start + (kHi - 1) * dilation + 1
                taps = kHi - kLo
            } else {
                hi = lo
            }
            paddedTaps = min(kernel, max(0, floorDivide(size + padEnd - 1 - start, dilation) + 1))
        }
    }

    /// Calls `body(plane, rows, columns)` once per output element, in output order, with the
    /// first element of its input plane and its window's extent along each axis.
    ///
    /// The column extents are computed once per call into a buffer, the row extent once per
    /// output row: the integer divisions they need would otherwise cost more than the window.
    @inline(__always)
    static func forEachWindow(
        _ p: Pool2DParams, input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
        _ body: (UnsafePointer<Float>, Span, Span) -> Float
    ) {
        let outH = p.outH, outW = p.outW
        precondition(outH >= 1 && outW >= 1, "empty pooling output")
        // One small heap allocation per call. Not withUnsafeTemporaryAllocation: in a Swift 6.3
        // release build its typed-throws check trapped after the (non-throwing) body returned.
        let cols = UnsafeMutablePointer<Span>.allocate(capacity: outW)
        defer { cols.deallocate() }
        for ow in 0..<outW {
            (cols + ow).initialize(to: Span(
                start: ow * p.strideW - p.padLeft, kernel: p.kernelW, dilation: p.dilationW,
                size: p.inW, padEnd: p.padRight))
        }
        var out = output
        for plane in 0..<(p.batch * p.channels) {
            let base = input + plane * p.inH * p.inW
            for oh in 0..<outH {
                let rows = Span(start: oh * p.strideH - p.padTop, kernel: p.kernelH, dilation: p.dilationH,
                                size: p.inH, padEnd: p.padBottom)
                for ow in 0..<outW { out[ow] = body(base, rows, cols[ow]) }
                out += outW
            }
        }
    }
}
