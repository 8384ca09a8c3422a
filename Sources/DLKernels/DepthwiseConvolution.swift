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
        let planes = p.batch * p.inChannels
        let act = activation.cForm
        let failed = Atomic<Bool>(false)
        ParallelFor.run(planes, cost: p.outH * p.outW * p.kernelH * p.kernelW) { lo, hi in
            let r = dlk_depthwise_conv2d(input, Int32(p.inChannels), Int32(p.inH), Int32(p.inW), weight,
                                         Int32(p.kernelH), Int32(p.kernelW), Int32(p.strideH), Int32(p.strideW),
                                         Int32(p.padTop), Int32(p.padLeft), Int32(p.dilationH), Int32(p.dilationW),
                                         Int32(p.outH), Int32(p.outW), bias, act.code, act.a, act.b, lo, hi, output)
            if r != 0 { failed.store(true, ordering: .relaxed) }
        }
        return !failed.load(ordering: .relaxed)
    }
}
