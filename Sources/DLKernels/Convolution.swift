/// 2-D (and, through height 1, 1-D) convolution over NCHW float32 buffers: im2col into a scratch
/// matrix, then one GEMM per image and group. Geometry and layouts: ``Conv2DParams``.
public enum Convolution {
    /// Floats of scratch ``conv2D(_:input:weight:bias:output:scratch:)`` needs: one group's im2col
    /// matrix, `(inChannels / groups) * kernelH * kernelW * outH * outW`; 0 for a pointwise
    /// convolution (1×1 kernel, stride 1, no padding), which multiplies the input directly.
    public static func scratchCount(_ p: Conv2DParams) -> Int {
        p.isPointwise ? 0 : p.inChannelsPerGroup * p.kernelH * p.kernelW * p.outH * p.outW
    }

    /// `output = conv(input, weight) + bias`, with the ONNX `Conv` semantics (cross-correlation,
    /// zero padding, dilation, groups).
    ///
    /// - Parameters:
    ///   - input: `[batch, inChannels, inH, inW]`.
    ///   - weight: `[outChannels, inChannels / groups, kernelH, kernelW]`.
    ///   - bias: `[outChannels]`, or nil for none.
    ///   - output: `[batch, outChannels, outH, outW]`; fully overwritten, must not overlap the inputs.
    ///   - scratch: at least ``scratchCount(_:)`` floats (nil allowed when that is 0); its contents
    ///     on return are unspecified.
    /// - Precondition: `p` validated by the caller (see ``Conv2DParams``).
    public static func conv2D(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>?
    ) {
        let outH = p.outH, outW = p.outW
        let cg = p.inChannelsPerGroup, ocg = p.outChannelsPerGroup
        let planeIn = p.inH * p.inW, planeOut = outH * outW
        let kDim = cg * p.kernelH * p.kernelW
        precondition(p.groups >= 1 && cg * p.groups == p.inChannels && ocg * p.groups == p.outChannels,
                     "channels must divide by groups")
        precondition(outH >= 1 && outW >= 1, "empty convolution output")
        precondition(p.isPointwise || scratch != nil, "convolution needs scratch")

        for n in 0..<p.batch {
            for g in 0..<p.groups {
                let src = input + (n * p.inChannels + g * cg) * planeIn
                let dst = output + (n * p.outChannels + g * ocg) * planeOut
                let columns: UnsafePointer<Float>
                if p.isPointwise {
                    columns = src
                } else {
                    im2col(p, image: src, channels: cg, outH: outH, outW: outW, into: scratch!)
                    columns = UnsafePointer(scratch!)
                }
                GEMM.sgemmSplittingColumns(
                    transA: false, transB: false, m: ocg, n: planeOut, k: kDim,
                    alpha: 1, a: weight + g * ocg * kDim, lda: kDim,
                    b: columns, ldb: planeOut,
                    beta: 0, c: dst, ldc: planeOut)
            }
            if let bias {
                GEMM.addColumnVector(bias, to: output + n * p.outChannels * planeOut,
                                     rows: p.outChannels, columns: planeOut, ldc: planeOut)
            }
        }
    }

    /// The same as ``conv2D(_:input:weight:bias:output:scratch:)``, allocating its scratch for the
    /// duration of the call. Plans that run repeatedly should pass scratch instead.
    public static func conv2D(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>
    ) {
        let count = scratchCount(p)
        if count == 0 {
            conv2D(p, input: input, weight: weight, bias: bias, output: output, scratch: nil)
            return
        }
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: count)
        defer { scratch.deallocate() }
        conv2D(p, input: input, weight: weight, bias: bias, output: output, scratch: scratch)
    }

    /// Unfolds `channels` planes of one image into the `[channels * kernelH * kernelW, outH * outW]`
    /// matrix whose row `(c, kh, kw)` holds the input value under kernel tap `(kh, kw)` for every
    /// output position (0 where the tap falls in the padding).
    ///
    /// - Parameters:
    ///   - image: `[channels, inH, inW]` (the first channel of the group).
    ///   - columns: `channels * kernelH * kernelW * outH * outW` floats.
    public static func im2col(
        _ p: Conv2DParams, image: UnsafePointer<Float>, channels: Int, outH: Int, outW: Int,
        into columns: UnsafeMutablePointer<Float>
    ) {
        // The whole image is the band of all its output rows (callers pass p.outH and p.outW).
        precondition(outH == p.outH && outW == p.outW, "im2col of a whole image takes the params' output size")
        im2col(p, image: image, channels: channels, rows: 0..<outH, into: columns)
    }
}
