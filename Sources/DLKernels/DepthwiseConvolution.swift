import CKernels
import Synchronization

extension Convolution {
    /// True when `p` is a depthwise convolution the AVX-512 depthwise kernel runs: one filter per
    /// input channel (groups = input channels = output channels), on a CPU with AVX-512.
    public static func depthwiseApplies(_ p: Conv2DParams) -> Bool {
        CPUFeatures.avx512 && p.groups == p.inChannels && p.outChannels == p.groups && p.groups > 1
            && p.inH * p.inW <= Int(Int32.max) && p.outH * p.outW <= Int(Int32.max)
    }

    /// `output = act(conv(input, weight) + bias)` for a depthwise convolution (see
    /// ``depthwiseApplies(_:)``), planes split over the runtime's workers: each output plane is
    /// its input plane swept by one k×k filter sixteen columns at a time. Square 3×3 and 5×5
    /// filters of stride 1 or 2 read the plane in place under masks that stand for the zero
    /// padding, each input row loaded once for all the output rows that read it; other filters
    /// read a zero-padded copy of the plane.
    /// - Returns: false when it did not run (another shape, no AVX-512, no scratch memory); the
    ///   output may then be partly written and the caller runs the general path.
    public static func depthwise(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation
    ) -> Bool {
        guard depthwiseApplies(p) else { return false }
        // Channels last, sixteen channels share a vector: PRelu's slope per channel stays planar.
        if depthwiseChannelsLastPays(p), !activation.isPerChannel,
           depthwiseChannelsLast(p, input: input, weight: weight, bias: bias, output: output, activation: activation) {
            return true
        }
        let planes = p.batch * p.inChannels
        let failed = Atomic<Bool>(false)
        /// Planes [lo, hi), each plane (one channel) with `act`.
        func run(_ lo: Int, _ hi: Int, _ act: Activation) {
            let c = act.cForm
            let r = dlk_depthwise_conv2d(input, Int32(p.inChannels), Int32(p.inH), Int32(p.inW), weight,
                                         Int32(p.kernelH), Int32(p.kernelW), Int32(p.strideH), Int32(p.strideW),
                                         Int32(p.padTop), Int32(p.padLeft), Int32(p.dilationH), Int32(p.dilationW),
                                         Int32(p.outH), Int32(p.outW), bias, c.code, c.a, c.b, lo, hi, output)
            if r != 0 { failed.store(true, ordering: .relaxed) }
        }
        ParallelFor.run(planes, cost: p.outH * p.outW * p.kernelH * p.kernelW) { lo, hi in
            if activation.isPerChannel {
                for plane in lo..<hi { run(plane, plane + 1, activation.forChannel(plane % p.inChannels)) }
            } else {
                run(lo, hi, activation)
            }
        }
        return !failed.load(ordering: .relaxed)
    }

    /// True where ``depthwise(_:input:weight:bias:output:activation:)`` goes channels last:
    /// output rows of at most 8 pixels (MobileNets' 7 × 7 layers), which leave over half of a
    /// plane's 16-column blocks idle, and at least 16 channels to fill the lanes instead. Alone,
    /// 1 thread: 512 channels 5 × 5 on 7 × 7 0.079 -> 0.051 ms, 256 channels 5 × 5 stride 2 onto
    /// 7 × 7 0.053 -> 0.034. Rows of 14 (14 of 16 lanes busy) ran 20% slower so.
    public static func depthwiseChannelsLastPays(_ p: Conv2DParams) -> Bool { p.outW <= 8 && p.inChannels >= 16 }

    /// The depthwise convolution channels last, image by image: the image into a zero-padded
    /// `[rows][columns][channels]` copy (a block transpose per row), `dlk_depthwise_cl` with its
    /// output pixels split over the workers, and the result transposed back. A pixel takes 16
    /// floats more than its channels (rounded up to 16): at 256 or 512 channels, pixels a power
    /// of two apart fell into a few L1 sets and ran slower than the planar kernel.
    static func depthwiseChannelsLast(
        _ p: Conv2DParams, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, activation: Activation
    ) -> Bool {
        let c = p.inChannels, cs = (c + 15) / 16 * 16 + 16
        let taps = p.kernelH * p.kernelW, planeIn = p.inH * p.inW, planeOut = p.outH * p.outW
        let hp = max(p.padTop + p.inH, (p.outH - 1) * p.strideH + (p.kernelH - 1) * p.dilationH + 1)
        let wp = max(p.padLeft + p.inW, (p.outW - 1) * p.strideW + (p.kernelW - 1) * p.dilationW + 1)
        guard hp * wp * cs <= Int(Int32.max), planeOut * cs <= Int(Int32.max) else { return false }
        let scratch = ConvolutionScratch.shared.take(hp * wp * cs + planeOut * cs + taps * cs)
        defer { ConvolutionScratch.shared.give(scratch) }
        let xp = scratch.pointer, yl = xp + hp * wp * cs, wt = yl + planeOut * cs
        guard transposeFloats(weight, rows: c, columns: taps, into: wt, destinationStride: cs) else { return false }
        let act = activation.cForm
        let failed = Atomic<Bool>(false)
        for n in 0..<p.batch {
            let x = input + n * c * planeIn
            let right = wp - p.padLeft - p.inW
            xp.update(repeating: 0, count: p.padTop * wp * cs)
            (xp + (p.padTop + p.inH) * wp * cs).update(repeating: 0, count: (hp - p.padTop - p.inH) * wp * cs)
            ParallelFor.run(p.inH, cost: p.inW * c) { lo, hi in
                for r in lo..<hi {
                    let row = xp + (p.padTop + r) * wp * cs
                    row.update(repeating: 0, count: p.padLeft * cs)
                    (row + (p.padLeft + p.inW) * cs).update(repeating: 0, count: right * cs)
                    if dlk_transpose_32(x + r * p.inW, planeIn, row + p.padLeft * cs, cs, Int32(c), Int32(p.inW)) != 0 {
                        failed.store(true, ordering: .relaxed)
                    }
                }
            }
            ParallelFor.run(planeOut, cost: c * taps) { lo, hi in
                if dlk_depthwise_cl(xp, Int32(c), Int32(cs), Int32(wp), wt, Int32(p.kernelH), Int32(p.kernelW), Int32(p.strideH),
                                    Int32(p.strideW), Int32(p.dilationH), Int32(p.dilationW), Int32(p.outW),
                                    bias, act.code, act.a, act.b, lo, hi, yl) != 0 {
                    failed.store(true, ordering: .relaxed)
                }
            }
            guard !failed.load(ordering: .relaxed),
                  transposeFloats(yl, rows: planeOut, columns: c, into: output + n * c * planeOut, sourceStride: cs) else {
                return false
            }
        }
        return true
    }
}
