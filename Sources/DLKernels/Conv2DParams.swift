/// The geometry of a 2-D convolution over NCHW float32 tensors (ONNX `Conv`, PyTorch `Conv2d`).
///
/// Layouts: input `[batch, inChannels, inH, inW]`, weight `[outChannels, inChannels / groups,
/// kernelH, kernelW]` (ONNX and PyTorch order), optional bias `[outChannels]`, output
/// `[batch, outChannels, outH, outW]`; all row-major and contiguous.
///
/// A 1-D convolution (`[N, C, L]`, weight `[outC, C / groups, K]`) is this with `inH = 1`,
/// `kernelH = 1`, `strideH = 1`, `dilationH = 1` and no vertical padding: the buffers are already in
/// that layout, so no copy is needed. ``conv1D(batch:inChannels:length:outChannels:kernel:stride:padBegin:padEnd:dilation:groups:)``
/// builds those parameters.
///
/// The caller validates before running: every size ≥ 1 (pads ≥ 0), `inChannels` and `outChannels`
/// divisible by `groups`, `outH ≥ 1` and `outW ≥ 1`, and buffer sizes.
public struct Conv2DParams: Hashable, Sendable {
    public var batch: Int
    public var inChannels: Int
    public var inH: Int
    public var inW: Int
    public var outChannels: Int
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
    public var groups: Int

    /// Strides, dilations and groups default to 1 and pads to 0, as in ONNX.
    public init(
        batch: Int, inChannels: Int, inH: Int, inW: Int, outChannels: Int,
        kernelH: Int, kernelW: Int, strideH: Int = 1, strideW: Int = 1,
        padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0,
        dilationH: Int = 1, dilationW: Int = 1, groups: Int = 1
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.inH = inH
        self.inW = inW
        self.outChannels = outChannels
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
        self.groups = groups
    }

    /// Parameters for a 1-D convolution over `[batch, inChannels, length]`, run as a 2-D one of
    /// height 1. The output is `[batch, outChannels, outW]`.
    public static func conv1D(
        batch: Int, inChannels: Int, length: Int, outChannels: Int, kernel: Int,
        stride: Int = 1, padBegin: Int = 0, padEnd: Int = 0, dilation: Int = 1, groups: Int = 1
    ) -> Conv2DParams {
        Conv2DParams(
            batch: batch, inChannels: inChannels, inH: 1, inW: length, outChannels: outChannels,
            kernelH: 1, kernelW: kernel, strideH: 1, strideW: stride,
            padLeft: padBegin, padRight: padEnd, dilationW: dilation, groups: groups)
    }

    /// `floor((input + padBegin + padEnd - dilation * (kernel - 1) - 1) / stride) + 1`: the output
    /// length of one spatial axis (ONNX `Conv`, and pooling without `ceil_mode`). It is ≤ 0 when
    /// the dilated kernel does not fit in the padded input, which the caller must reject.
    public static func outputSize(
        input: Int, kernel: Int, stride: Int, padBegin: Int, padEnd: Int, dilation: Int
    ) -> Int {
        floorDivide(input + padBegin + padEnd - dilation * (kernel - 1) - 1, stride) + 1
    }

    public var outH: Int {
        Self.outputSize(input: inH, kernel: kernelH, stride: strideH, padBegin: padTop, padEnd: padBottom, dilation: dilationH)
    }

    public var outW: Int {
        Self.outputSize(input: inW, kernel: kernelW, stride: strideW, padBegin: padLeft, padEnd: padRight, dilation: dilationW)
    }

    public var inChannelsPerGroup: Int { inChannels / groups }
    public var outChannelsPerGroup: Int { outChannels / groups }

    /// Element counts of the four buffers, for the caller's size checks.
    public var inputCount: Int { batch * inChannels * inH * inW }
    public var weightCount: Int { outChannels * inChannelsPerGroup * kernelH * kernelW }
    public var outputCount: Int { batch * outChannels * outH * outW }

    /// The same convolution laid out as one long row where the bytes allow it, so the kernels'
    /// 32-pixel rows fill up: a pointwise (1×1, stride 1, unpadded) convolution sees each plane
    /// as one row of H·W pixels, so does a k×1 kernel at stride 1, and one running down a one-column image (a `[N, C, L, 1]` input
    /// with a `[k, 1]` kernel, as tf2onnx writes Conv1D) runs along W. Inputs, weights and outputs
    /// are the same bytes either way. Otherwise `self`.
    public var alongRows: Conv2DParams {
        if isPointwise, inH > 1, dilationH == 1, dilationW == 1 {
            // With under 32 output channels a group (too few for the workers to share them out),
            // cut into up to 8 rows of whole 32-pixel tiles where the plane divides so: the same
            // full tiles as one row, and rows the workers can share (MobileNetV2's 1 × 1
            // convolutions onto 16 and 24 channels on 112 × 112 and 56 × 56 ran on one thread of
            // two). More channels keep one row: sharing out the channels measured 2% faster
            // than rows on YOLOv8n's 1 × 1 layers at 2 threads.
            let plane = inH * inW, tiles = plane / 32
            let rows = plane % 32 == 0 && outChannels / groups < 32 ? (2...8).reversed().first { tiles % $0 == 0 } ?? 1 : 1
            return Conv2DParams(batch: batch, inChannels: inChannels, inH: rows, inW: plane / rows, outChannels: outChannels,
                                kernelH: 1, kernelW: 1, groups: groups)
        }
        // A k×1 kernel at stride 1 never crosses a row boundary of the flattened plane: it is a 1-D
        // convolution over H·W pixels with its taps W apart (dilation dh·W, pads scaled alike).
        if kernelW == 1, strideW == 1, strideH == 1, dilationW == 1, padLeft == 0, padRight == 0, inH > 1, inW > 1 {
            return Conv2DParams(batch: batch, inChannels: inChannels, inH: 1, inW: inH * inW, outChannels: outChannels,
                                kernelH: 1, kernelW: kernelH, strideH: 1, strideW: 1,
                                padTop: 0, padLeft: padTop * inW, padBottom: 0, padRight: padBottom * inW,
                                dilationH: 1, dilationW: dilationH * inW, groups: groups)
        }
        guard inW == 1, inH > 1, kernelW == 1, strideW == 1, dilationW == 1, padLeft == 0, padRight == 0 else { return self }
        return Conv2DParams(batch: batch, inChannels: inChannels, inH: 1, inW: inH, outChannels: outChannels,
                            kernelH: 1, kernelW: kernelH, strideH: 1, strideW: strideH,
                            padTop: 0, padLeft: padTop, padBottom: 0, padRight: padBottom,
                            dilationH: 1, dilationW: dilationH, groups: groups)
    }

    /// True when the input already is the im2col matrix: a 1×1 kernel, stride 1, no padding.
    public var isPointwise: Bool {
        kernelH == 1 && kernelW == 1 && strideH == 1 && strideW == 1
            && padTop == 0 && padLeft == 0 && padBottom == 0 && padRight == 0
    }
}

/// `floor(a / b)` for `b > 0`, also for negative `a` (Swift's `/` truncates toward zero).
@inline(__always)
func floorDivide(_ a: Int, _ b: Int) -> Int {
    let q = a / b
    return (a % b != 0 && a < 0) ? q - 1 : q
}

/// `ceil(a / b)` for `b > 0`, also for negative `a`.
@inline(__always)
func ceilDivide(_ a: Int, _ b: Int) -> Int {
    -floorDivide(-a, b)
}
