import DLKernels
import Testing

struct ConvCase: Sendable, CustomTestStringConvertible {
    var name: String
    var params: Conv2DParams
    var bias = true
    var testDescription: String { name }
}

/// Direct seven-loop convolution (ONNX `Conv`), zero padding.
func referenceConv2D(_ p: Conv2DParams, _ x: [Float], _ w: [Float], _ bias: [Float]?) -> [Float] {
    let outH = p.outH, outW = p.outW
    let cg = p.inChannels / p.groups, ocg = p.outChannels / p.groups
    var y = [Float](repeating: 0, count: p.batch * p.outChannels * outH * outW)
    for n in 0..<p.batch {
        for oc in 0..<p.outChannels {
            let g = oc / ocg
            for oh in 0..<outH {
                for ow in 0..<outW {
                    var s: Float = bias?[oc] ?? 0
                    for ci in 0..<cg {
                        let c = g * cg + ci
                        for kh in 0..<p.kernelH {
                            for kw in 0..<p.kernelW {
                                let ih = oh * p.strideH - p.padTop + kh * p.dilationH
                                let iw = ow * p.strideW - p.padLeft + kw * p.dilationW
                                if ih < 0 || ih >= p.inH || iw < 0 || iw >= p.inW { continue }
                                let xv = x[((n * p.inChannels + c) * p.inH + ih) * p.inW + iw]
                                let wv = w[((oc * cg + ci) * p.kernelH + kh) * p.kernelW + kw]
                                s += xv * wv
                            }
                        }
                    }
                    y[((n * p.outChannels + oc) * outH + oh) * outW + ow] = s
                }
            }
        }
    }
    return y
}

@Suite struct ConvolutionTests {
    static let cases: [ConvCase] = [
        ConvCase(name: "3x3 same padding", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 5, inW: 5, outChannels: 4, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "odd sizes, strides, asymmetric pads, batch 2", params: Conv2DParams(
            batch: 2, inChannels: 2, inH: 7, inW: 6, outChannels: 3, kernelH: 3, kernelW: 2,
            strideH: 2, strideW: 1, padTop: 1, padLeft: 0, padBottom: 0, padRight: 2)),
        ConvCase(name: "groups and dilation", params: Conv2DParams(
            batch: 1, inChannels: 4, inH: 9, inW: 8, outChannels: 6, kernelH: 3, kernelW: 3,
            padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, dilationH: 2, dilationW: 2, groups: 2)),
        ConvCase(name: "depthwise stride 2", params: Conv2DParams(
            batch: 2, inChannels: 3, inH: 8, inW: 7, outChannels: 3, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 3)),
        ConvCase(name: "depthwise multiplier 2, dilation 3x1, stride 3", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 11, inW: 10, outChannels: 4, kernelH: 2, kernelW: 3,
            strideH: 3, strideW: 3, padTop: 0, padLeft: 1, padBottom: 3, padRight: 0,
            dilationH: 3, dilationW: 1, groups: 2), bias: false),
        ConvCase(name: "pointwise (no im2col)", params: Conv2DParams(
            batch: 2, inChannels: 5, inH: 3, inW: 4, outChannels: 7, kernelH: 1, kernelW: 1)),
        ConvCase(name: "pointwise grouped (no im2col)", params: Conv2DParams(
            batch: 1, inChannels: 6, inH: 3, inW: 5, outChannels: 4, kernelH: 1, kernelW: 1, groups: 2),
                 bias: false),
        ConvCase(name: "1x1 stride 2", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 7, inW: 5, outChannels: 2, kernelH: 1, kernelW: 1,
            strideH: 2, strideW: 2)),
        ConvCase(name: "1x1 stride 2 onto rows of 17 and 33 (sixteen taps at a time, then one by one)", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 5, inW: 66, outChannels: 3, kernelH: 1, kernelW: 1,
            strideH: 2, strideW: 2)),
        ConvCase(name: "3x3 stride 2 pad 2 onto rows of 17 (clipped taps around the chunks)", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 6, inW: 32, outChannels: 2, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 2, padBottom: 0, padRight: 1)),
        ConvCase(name: "1x1 with padding", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 3, inW: 3, outChannels: 2, kernelH: 1, kernelW: 1,
            padTop: 1, padLeft: 0, padBottom: 0, padRight: 1)),
        ConvCase(name: "kernel larger than input, padded", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 2, inW: 3, outChannels: 3, kernelH: 3, kernelW: 4,
            padTop: 1, padLeft: 2, padBottom: 1, padRight: 2)),
        ConvCase(name: "pads larger than kernel, stride 4", params: Conv2DParams(
            batch: 1, inChannels: 1, inH: 6, inW: 9, outChannels: 2, kernelH: 2, kernelW: 2,
            strideH: 4, strideW: 4, padTop: 3, padLeft: 3, padBottom: 3, padRight: 3)),
        ConvCase(name: "conv1d stride 2 dilation 2", params: Conv2DParams.conv1D(
            batch: 2, inChannels: 3, length: 13, outChannels: 4, kernel: 3, stride: 2,
            padBegin: 1, padEnd: 2, dilation: 2)),
        ConvCase(name: "conv1d grouped", params: Conv2DParams.conv1D(
            batch: 1, inChannels: 4, length: 9, outChannels: 2, kernel: 5, padBegin: 2, padEnd: 2,
            groups: 2)),
    ]

    @Test(arguments: cases)
    func convolutionMatchesDirectLoops(_ c: ConvCase) {
        let p = c.params
        let x = dyadicFloats(p.inputCount, seed: 10)
        let w = dyadicFloats(p.weightCount, seed: 11)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 12) : nil
        let expected = referenceConv2D(p, x, w, bias)

        var y = [Float](repeating: .nan, count: p.outputCount)
        var scratch = [Float](repeating: .nan, count: Convolution.scratchCount(p))
        y.withUnsafeMutableBufferPointer { yb in
            scratch.withUnsafeMutableBufferPointer { sb in
                if let bias {
                    Convolution.conv2D(p, input: x, weight: w, bias: bias, output: yb.baseAddress!, scratch: sb.baseAddress)
                } else {
                    Convolution.conv2D(p, input: x, weight: w, bias: nil, output: yb.baseAddress!, scratch: sb.baseAddress)
                }
            }
        }
        expectClose(y, expected)

        // The overload that allocates its own scratch gives the same result.
        var y2 = [Float](repeating: .nan, count: p.outputCount)
        y2.withUnsafeMutableBufferPointer { yb in
            if let bias {
                Convolution.conv2D(p, input: x, weight: w, bias: bias, output: yb.baseAddress!)
            } else {
                Convolution.conv2D(p, input: x, weight: w, bias: nil, output: yb.baseAddress!)
            }
        }
        #expect(y2 == y)
    }

    @Test func pointwiseConvolutionNeedsNoScratch() {
        let p = Conv2DParams(batch: 1, inChannels: 8, inH: 5, inW: 5, outChannels: 4, kernelH: 1, kernelW: 1)
        #expect(p.isPointwise)
        #expect(Convolution.scratchCount(p) == 0)
        var strided = p
        strided.strideW = 2
        #expect(Convolution.scratchCount(strided) == 8 * 5 * 3)
    }

    @Test func scratchHoldsOneGroupsColumnMatrix() {
        let p = Conv2DParams(batch: 3, inChannels: 6, inH: 10, inW: 8, outChannels: 9, kernelH: 3, kernelW: 2,
                             strideH: 2, padTop: 1, padBottom: 1, groups: 3)
        #expect(p.outH == 5 && p.outW == 7)
        #expect(Convolution.scratchCount(p) == 2 * 3 * 2 * 5 * 7)
    }

    @Test(arguments: [
        // (input, kernel, stride, padBegin, padEnd, dilation, expected)
        (5, 3, 1, 0, 0, 1, 3), (5, 3, 1, 1, 1, 1, 5), (7, 3, 2, 1, 1, 1, 4), (8, 3, 2, 1, 1, 1, 4),
        (10, 3, 1, 0, 0, 2, 6), (6, 2, 3, 0, 0, 1, 2), (2, 3, 1, 1, 1, 1, 2),
    ])
    func outputSizeFollowsTheOnnxFormula(_ c: (Int, Int, Int, Int, Int, Int, Int)) {
        #expect(Conv2DParams.outputSize(input: c.0, kernel: c.1, stride: c.2, padBegin: c.3, padEnd: c.4, dilation: c.5) == c.6)
    }

    @Test func conv1DParametersDescribeAHeightOneConvolution() {
        let p = Conv2DParams.conv1D(batch: 2, inChannels: 3, length: 13, outChannels: 4, kernel: 3, stride: 2,
                                    padBegin: 1, padEnd: 2, dilation: 2)
        #expect(p.inH == 1 && p.kernelH == 1 && p.outH == 1)
        #expect(p.outW == (13 + 3 - 2 * 2 - 1) / 2 + 1)
    }

    static let depthwiseCases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1, rows of 150 (two blocks of 64, a tail of 22)", params: Conv2DParams(
            batch: 2, inChannels: 3, inH: 9, inW: 150, outChannels: 3, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 3)),
        ConvCase(name: "5x5 stride 2 pad 2, 71 wide (rows of 36)", params: Conv2DParams(
            batch: 1, inChannels: 4, inH: 13, inW: 71, outChannels: 4, kernelH: 5, kernelW: 5,
            strideH: 2, strideW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, groups: 4)),
        ConvCase(name: "3x3 stride 3, dilation 2, 200 wide, no bias", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 11, inW: 200, outChannels: 2, kernelH: 3, kernelW: 3,
            strideH: 3, strideW: 3, padTop: 1, padLeft: 2, padBottom: 0, padRight: 1, dilationH: 2, dilationW: 2, groups: 2),
                 bias: false),
        ConvCase(name: "3x3 pad 1, rows of 7", params: Conv2DParams(
            batch: 1, inChannels: 5, inH: 7, inW: 7, outChannels: 5, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 5)),
        ConvCase(name: "3x3 pads (2, 0, 0, 3): whole rows and columns of padding, 6 x 17", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 6, inW: 17, outChannels: 3, kernelH: 3, kernelW: 3,
            padTop: 2, padLeft: 0, padBottom: 0, padRight: 3, groups: 3)),
        ConvCase(name: "3x3 stride 2 pad 1, 10 x 113 (rows of 57: three blocks and a tail of 9)", params: Conv2DParams(
            batch: 2, inChannels: 3, inH: 10, inW: 113, outChannels: 3, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 3)),
        ConvCase(name: "3x3 stride 2, TensorFlow's SAME pads (0, 0, 1, 1), 8 x 40, no bias", params: Conv2DParams(
            batch: 1, inChannels: 4, inH: 8, inW: 40, outChannels: 4, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 0, padLeft: 0, padBottom: 1, padRight: 1, groups: 4), bias: false),
        ConvCase(name: "5x5 pad 2, 9 x 23", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 9, inW: 23, outChannels: 3, kernelH: 5, kernelW: 5,
            padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, groups: 3)),
        ConvCase(name: "5x5 stride 2, TensorFlow's SAME pads (1, 1, 2, 2), 12 x 35", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 12, inW: 35, outChannels: 2, kernelH: 5, kernelW: 5,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 2, padRight: 2, groups: 2)),
        ConvCase(name: "3x3 stride 2 unpadded, 3 x 5", params: Conv2DParams(
            batch: 1, inChannels: 2, inH: 3, inW: 5, outChannels: 2, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, groups: 2)),
        ConvCase(name: "5x5 pad 2 on 7 x 7, 40 channels, batch 2 (channels last: two blocks and 8)", params: Conv2DParams(
            batch: 2, inChannels: 40, inH: 7, inW: 7, outChannels: 40, kernelH: 5, kernelW: 5,
            padTop: 2, padLeft: 2, padBottom: 2, padRight: 2, groups: 40)),
        ConvCase(name: "3x3 stride 2, TensorFlow's SAME pads, 13 x 15 onto 7 x 8, 20 channels, no bias (channels last)",
                 params: Conv2DParams(batch: 1, inChannels: 20, inH: 13, inW: 15, outChannels: 20, kernelH: 3, kernelW: 3,
                                      strideH: 2, strideW: 2, padTop: 1, padLeft: 0, padBottom: 1, padRight: 1, groups: 20),
                 bias: false),
        ConvCase(name: "3x2 dilated, uneven pads, 6 x 5, 17 channels (channels last, any filter)", params: Conv2DParams(
            batch: 1, inChannels: 17, inH: 6, inW: 5, outChannels: 17, kernelH: 3, kernelW: 2,
            padTop: 2, padLeft: 1, padBottom: 0, padRight: 0, dilationH: 2, dilationW: 2, groups: 17)),
    ]

    /// The AVX-512 depthwise kernel against the reference loops, with a ReLU epilogue, on rows
    /// that take several 64-output blocks, tails and strides, and small planes of many channels
    /// (channels last), on one and two workers.
    @Test(.enabled(if: Convolution.depthwiseApplies(Conv2DParams(batch: 1, inChannels: 2, inH: 3, inW: 3, outChannels: 2,
                                                                 kernelH: 3, kernelW: 3, groups: 2))),
          arguments: depthwiseCases, [1, 2])
    func depthwiseKernelMatchesReference(_ c: ConvCase, workers: Int) {
        let p = c.params
        #expect(Convolution.depthwiseApplies(p))
        let x = dyadicFloats(p.inputCount, seed: 20), w = dyadicFloats(p.weightCount, seed: 21)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 22) : nil
        var y = [Float](repeating: .nan, count: p.outputCount)
        let ran = ParallelFor.withWorkerCount(workers) {
            y.withUnsafeMutableBufferPointer { yb in
                Convolution.depthwise(p, input: x, weight: w, bias: bias, output: yb.baseAddress!, activation: .relu)
            }
        }
        #expect(ran)
        #expect(y == referenceConv2D(p, x, w, bias).map { max(0, $0) })
    }
}
