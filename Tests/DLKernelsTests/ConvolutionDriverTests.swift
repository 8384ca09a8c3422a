import DLKernels
import Testing

/// The runtime's convolution driver (row bands split over workers, residual + activation epilogue)
/// against the direct loops, at one and two workers.
@Suite struct ConvolutionDriverTests {
    static let cases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1, batch 1 (rows split)", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 17, inW: 19, outChannels: 8, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "3x3 stride 2, batch 3 (odd split)", params: Conv2DParams(
            batch: 3, inChannels: 4, inH: 15, inW: 12, outChannels: 6, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "pointwise batch 2", params: Conv2DParams(
            batch: 2, inChannels: 8, inH: 9, inW: 7, outChannels: 5, kernelH: 1, kernelW: 1)),
        ConvCase(name: "pointwise batch 1 (column bands)", params: Conv2DParams(
            batch: 1, inChannels: 16, inH: 21, inW: 11, outChannels: 4, kernelH: 1, kernelW: 1), bias: false),
        ConvCase(name: "1x1 stride 2", params: Conv2DParams(
            batch: 2, inChannels: 6, inH: 10, inW: 10, outChannels: 4, kernelH: 1, kernelW: 1, strideH: 2, strideW: 2)),
        ConvCase(name: "grouped dilated", params: Conv2DParams(
            batch: 1, inChannels: 6, inH: 13, inW: 13, outChannels: 9, kernelH: 3, kernelW: 2,
            padTop: 2, padLeft: 1, padBottom: 0, padRight: 1, dilationH: 2, groups: 3)),
    ]

    @Test(arguments: cases, [1, 2])
    func driverMatchesDirectLoopsWithResidualAndRelu(_ c: ConvCase, workers: Int) {
        let p = c.params
        let x = dyadicFloats(p.inputCount, seed: 20)
        let w = dyadicFloats(p.weightCount, seed: 21)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 22) : nil
        let r = dyadicFloats(p.outputCount, seed: 23)
        let conv = referenceConv2D(p, x, w, bias)
        let expected = zip(conv, r).map { max(0, $0 + $1) }

        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        var y = [Float](repeating: .nan, count: p.outputCount)
        y.withUnsafeMutableBufferPointer { yb in
            Convolution.conv2D(p, input: x, weight: w, bias: bias, residual: r, output: yb.baseAddress!, activation: .relu)
        }
        expectClose(y, expected)

        // No residual, no activation: the plain convolution.
        var z = [Float](repeating: .nan, count: p.outputCount)
        z.withUnsafeMutableBufferPointer { zb in
            Convolution.conv2D(p, input: x, weight: w, bias: bias, residual: nil, output: zb.baseAddress!, activation: .none)
        }
        expectClose(z, conv)
    }

    @Test func residualKeepsNaNThroughRelu() {
        let p = Conv2DParams(batch: 1, inChannels: 1, inH: 3, inW: 3, outChannels: 1, kernelH: 1, kernelW: 1)
        let x: [Float] = [1, -2, 3, -4, 5, -6, 7, -8, 9]
        let r: [Float] = [0, 0, .nan, 0, 0, 0, 0, 10, 0]
        var y = [Float](repeating: 0, count: 9)
        y.withUnsafeMutableBufferPointer { yb in
            Convolution.conv2D(p, input: x, weight: [1], bias: nil, residual: r, output: yb.baseAddress!, activation: .relu)
        }
        #expect(y[2].isNaN)
        #expect(y[0] == 1 && y[1] == 0 && y[7] == 2 && y[8] == 9)
    }

    @Test func scratchPoolReusesBuffers() {
        let pool = ConvolutionScratch.shared
        let a = pool.take(1000)
        #expect(a.capacity >= 1000)
        pool.give(a)
        let b = pool.take(500)
        #expect(b.capacity >= 500)
        let c = pool.take(500)
        #expect(c.pointer != b.pointer)
        pool.give(b)
        pool.give(c)
    }

    @Test func vectorMaxPool2x2MatchesTheGeneralPoolIncludingNaN() {
        let p = Pool2DParams(batch: 2, channels: 3, inH: 9, inW: 37, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2)
        #expect(Pooling.isPlain2x2(p))
        var x = dyadicFloats(p.batch * p.channels * p.inH * p.inW, seed: 30)
        for i in stride(from: 5, to: x.count, by: 41) { x[i] = .nan }
        let count = p.batch * p.channels * p.outH * p.outW
        var fast = [Float](repeating: 0, count: count), general = fast
        fast.withUnsafeMutableBufferPointer { Pooling.maxPool2x2(p, input: x, output: $0.baseAddress!) }
        general.withUnsafeMutableBufferPointer { Pooling.maxPool2D(p, input: x, output: $0.baseAddress!) }
        #expect(fast.indices.allSatisfy { fast[$0] == general[$0] || (fast[$0].isNaN && general[$0].isNaN) })
        #expect(fast.contains { $0.isNaN })
    }
}
