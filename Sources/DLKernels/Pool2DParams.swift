/// The geometry of 2-D pooling over NCHW float32 tensors (ONNX `MaxPool`, `AveragePool`).
///
/// Input `[batch, channels, inH, inW]`, output `[batch, channels, outH, outW]`, both contiguous.
/// A 1-D pool is this with `inH = 1`, `kernelH = 1`, `strideH = 1` and no vertical padding.
///
/// The caller validates: sizes ≥ 1, pads ≥ 0, `outH ≥ 1`, `outW ≥ 1` and buffer sizes. ONNX also
/// requires each pad to be smaller than the kernel; the kernels do not depend on it.
public struct Pool2DParams: Hashable, Sendable {
    public var batch: Int
    public var channels: Int
    public var inH: Int
    public var inW: Int
    public var kernelH: Int
    public var kernelW: Int
    public var strideH: Int
    public var strideW: Int
    public var padTop: Int
    public var padLeft: Int
    public var padBottom: Int
    public var padRight: Int
    public var dilationH: Int
    public var dilationW: Int
    /// Round the output size up instead of down (ONNX `ceil_mode`); see ``outputSize(input:kernel:stride:padBegin:padEnd:dilation:ceilMode:)``.
    public var ceilMode: Bool

    /// Strides and dilations default to 1 and pads to 0, as in ONNX.
    public init(
        batch: Int, channels: Int, inH: Int, inW: Int, kernelH: Int, kernelW: Int,
        strideH: Int = 1, strideW: Int = 1,
        padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0,
        dilationH: Int = 1, dilationW: Int = 1, ceilMode: Bool = false
    ) {
        self.batch = batch
        self.channels = channels
        self.inH = inH
        self.inW = inW
        self.kernelH = kernelH
        self.kernelW = kernelW
        self.strideH = strideH
        self.strideW = strideW
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
        self.dilationH = dilationH
        self.dilationW = dilationW
        self.ceilMode = ceilMode
    }

    /// The output length of one spatial axis, as ONNX Runtime and PyTorch compute it.
    ///
    /// With `span = input + padBegin + padEnd - (dilation * (kernel - 1) + 1)`:
    /// without `ceilMode`, `floor(span / stride) + 1`; with it, `ceil(span / stride) + 1`, minus one
    /// when the last window would start at or beyond `input + padBegin` (inside the end padding),
    /// because a window must start inside the input or its begin padding.
    public static func outputSize(
        input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int, ceilMode: Bool
    ) -> Int {
        let span = input + padBegin + padEnd - (dilation * (kernel - 1) + 1)
        guard ceilMode else { return floorDivide(span, stride) + 1 }
        var out = ceilDivide(span, stride) + 1
        if (out - 1) * stride >= input + padBegin { out -= 1 }
        return out
    }

    public var outH: Int {
        Self.outputSize(input: inH, kernel: kernelH, stride: strideH, padBegin: padTop,
                        padEnd: padBottom, dilation: dilationH, ceilMode: ceilMode)
    }

    public var outW: Int {
        Self.outputSize(input: inW, kernel: kernelW, stride: strideW, padBegin: padLeft,
                        padEnd: padRight, dilation: dilationW, ceilMode: ceilMode)
    }

    public var inputCount: Int { batch * channels * inH * inW }
    public var outputCount: Int { batch * channels * outH * outW }
}
