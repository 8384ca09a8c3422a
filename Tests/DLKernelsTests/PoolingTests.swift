import DLKernels
import Testing

struct PoolCase: Sendable, CustomTestStringConvertible {
    var name: String
    var params: Pool2DParams
    var testDescription: String { name }
}

/// Visits every tap of window (oh, ow): whether it lies in the input, in the explicit padding, or
/// beyond (the ceil-mode overhang).
func referencePool(
    _ p: Pool2DParams, _ x: [Float], _ reduce: (_ values: [Float], _ paddedCount: Int) -> Float
) -> [Float] {
    var y: [Float] = []
    for plane in 0..<(p.batch * p.channels) {
        for oh in 0..<p.outH {
            for ow in 0..<p.outW {
                var values: [Float] = []
                var padded = 0
                for kh in 0..<p.kernelH {
                    for kw in 0..<p.kernelW {
                        let ih = oh * p.strideH - p.padTop + kh * p.dilationH
                        let iw = ow * p.strideW - p.padLeft + kw * p.dilationW
                        if ih >= -p.padTop && ih < p.inH + p.padBottom && iw >= -p.padLeft && iw < p.inW + p.padRight {
                            padded += 1
                        }
                        if ih >= 0 && ih < p.inH && iw >= 0 && iw < p.inW {
                            values.append(x[(plane * p.inH + ih) * p.inW + iw])
                        }
                    }
                }
                y.append(reduce(values, padded))
            }
        }
    }
    return y
}

@Suite struct PoolingTests {
    static let cases: [PoolCase] = [
        PoolCase(name: "2x2 stride 2", params: Pool2DParams(
            batch: 1, channels: 2, inH: 4, inW: 6, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2)),
        PoolCase(name: "one window over the plane (a global average)", params: Pool2DParams(
            batch: 2, channels: 40, inH: 16, inW: 12, kernelH: 16, kernelW: 12, strideH: 2, strideW: 2)),
        PoolCase(name: "3x3 stride 2 pad 1 odd input", params: Pool2DParams(
            batch: 2, channels: 3, inH: 7, inW: 9, kernelH: 3, kernelW: 3, strideH: 2, strideW: 2,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        PoolCase(name: "ceil mode, no pads", params: Pool2DParams(
            batch: 1, channels: 2, inH: 5, inW: 7, kernelH: 2, kernelW: 3, strideH: 2, strideW: 2,
            ceilMode: true)),
        PoolCase(name: "ceil mode with pads, last window dropped", params: Pool2DParams(
            batch: 1, channels: 1, inH: 8, inW: 8, kernelH: 2, kernelW: 2, strideH: 3, strideW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, ceilMode: true)),
        PoolCase(name: "ceil mode, asymmetric pads", params: Pool2DParams(
            batch: 1, channels: 2, inH: 6, inW: 5, kernelH: 3, kernelW: 2, strideH: 2, strideW: 2,
            padTop: 0, padLeft: 1, padBottom: 2, padRight: 0, ceilMode: true)),
        PoolCase(name: "dilation 2", params: Pool2DParams(
            batch: 1, channels: 2, inH: 9, inW: 8, kernelH: 3, kernelW: 2, strideH: 1, strideW: 2,
            padTop: 1, padLeft: 0, padBottom: 1, padRight: 1, dilationH: 2, dilationW: 3)),
        PoolCase(name: "dilation with ceil mode", params: Pool2DParams(
            batch: 1, channels: 1, inH: 10, inW: 7, kernelH: 2, kernelW: 3, strideH: 3, strideW: 2,
            padTop: 1, padLeft: 1, padBottom: 0, padRight: 1, dilationH: 2, dilationW: 2, ceilMode: true)),
        PoolCase(name: "1-D as height 1", params: Pool2DParams(
            batch: 2, channels: 3, inH: 1, inW: 11, kernelH: 1, kernelW: 4, strideH: 1, strideW: 3,
            padLeft: 2, padRight: 1, ceilMode: true)),
        PoolCase(name: "kernel covers whole input", params: Pool2DParams(
            batch: 1, channels: 3, inH: 3, inW: 4, kernelH: 3, kernelW: 4)),
        // Stride 1 (rows, then columns): YOLO's SPPF 5 × 5, asymmetric pads, a window past the input.
        PoolCase(name: "5x5 stride 1 pad 2", params: Pool2DParams(
            batch: 2, channels: 3, inH: 7, inW: 9, kernelH: 5, kernelW: 5, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2)),
        PoolCase(name: "3x2 stride 1 asymmetric pads", params: Pool2DParams(
            batch: 1, channels: 2, inH: 6, inW: 5, kernelH: 3, kernelW: 2, padTop: 0, padLeft: 1, padBottom: 2, padRight: 0)),
        PoolCase(name: "stride 1, kernel wider than the input", params: Pool2DParams(
            batch: 1, channels: 1, inH: 2, inW: 3, kernelH: 3, kernelW: 5, padTop: 1, padLeft: 2, padBottom: 1, padRight: 2)),
        // Windows inside the input: the direct walk, and its pairs along a row (an odd width
        // leaves the last column out).
        PoolCase(name: "1x2 stride (1, 2) pairs", params: Pool2DParams(
            batch: 2, channels: 3, inH: 4, inW: 11, kernelH: 1, kernelW: 2, strideH: 1, strideW: 2)),
        PoolCase(name: "2x3 stride (2, 2) inside", params: Pool2DParams(
            batch: 1, channels: 2, inH: 7, inW: 9, kernelH: 2, kernelW: 3, strideH: 2, strideW: 2)),
    ]

    /// The pairs of a 1 × 2 pool at stride (1, 2) follow the general loop: NaN wins, -infinity
    /// is a value, and of two zeros the first is kept.
    @Test func maxPoolPairsKeepNaNInfinityAndTheFirstZero() {
        let p = Pool2DParams(batch: 1, channels: 1, inH: 1, inW: 12, kernelH: 1, kernelW: 2, strideH: 1, strideW: 2)
        let x: [Float] = [.nan, 1, 2, .nan, -.infinity, -.infinity, 0, -0.0, -0.0, 0, -5, -.infinity]
        var y = [Float](repeating: 7, count: p.outputCount)
        y.withUnsafeMutableBufferPointer { Pooling.maxPool2D(p, input: x, output: $0.baseAddress!) }
        #expect(y[0].isNaN && y[1].isNaN)
        #expect(y[2] == -.infinity && y[5] == -5)
        #expect(y[3] == 0 && y[3].sign == .plus && y[4] == 0 && y[4].sign == .minus)
    }

    @Test(arguments: cases)
    func maxPoolMatchesDirectLoops(_ c: PoolCase) {
        let p = c.params
        let x = randomFloats(p.inputCount, seed: 20, in: -3...3)
        let expected = referencePool(p, x) { values, _ in values.max() ?? -.infinity }
        var y = [Float](repeating: .nan, count: p.outputCount)
        y.withUnsafeMutableBufferPointer { Pooling.maxPool2D(p, input: x, output: $0.baseAddress!) }
        #expect(y == expected)
    }

    @Test(arguments: cases, [false, true])
    func averagePoolMatchesDirectLoops(_ c: PoolCase, countIncludePad: Bool) {
        let p = c.params
        let x = randomFloats(p.inputCount, seed: 21, in: -3...3)
        let expected = referencePool(p, x) { values, padded in
            let divisor = countIncludePad ? padded : values.count
            return divisor == 0 ? 0 : values.reduce(0, +) / Float(divisor)
        }
        var y = [Float](repeating: .nan, count: p.outputCount)
        y.withUnsafeMutableBufferPointer {
            Pooling.averagePool2D(p, countIncludePad: countIncludePad, input: x, output: $0.baseAddress!)
        }
        expectClose(y, expected)
    }

    @Test(arguments: [
        // (input, kernel, stride, padBegin, padEnd, dilation, ceilMode, expected): values PyTorch
        // and ONNX Runtime give.
        (5, 2, 2, 0, 0, 1, false, 2), (5, 2, 2, 0, 0, 1, true, 3),
        (8, 2, 3, 1, 1, 1, true, 3), (8, 2, 3, 1, 1, 1, false, 3),
        (6, 3, 2, 1, 1, 1, true, 4), (6, 3, 2, 1, 1, 1, false, 3),
        (4, 2, 4, 0, 0, 1, true, 1), (7, 3, 2, 0, 0, 2, true, 2),
        (4, 2, 2, 1, 1, 1, true, 3),
    ])
    func poolOutputSizeDropsWindowsStartingInTheEndPadding(_ c: (Int, Int, Int, Int, Int, Int, Bool, Int)) {
        #expect(Pool2DParams.outputSize(input: c.0, kernel: c.1, stride: c.2, padBegin: c.3, padEnd: c.4,
                                        dilation: c.5, ceilMode: c.6) == c.7)
    }

    @Test func averagePoolCountsExplicitPadsButNotTheCeilModeOverhang() {
        // 1-D: [1, 2, 3, 4, 5], kernel 2, stride 2, pad end 0, ceil mode: windows [1,2], [3,4], [5, overhang].
        let p = Pool2DParams(batch: 1, channels: 1, inH: 1, inW: 5, kernelH: 1, kernelW: 2, strideW: 2, ceilMode: true)
        let x: [Float] = [1, 2, 3, 4, 5]
        var y = [Float](repeating: 0, count: 3)
        y.withUnsafeMutableBufferPointer { Pooling.averagePool2D(p, countIncludePad: true, input: x, output: $0.baseAddress!) }
        #expect(y == [1.5, 3.5, 5])
        // With one explicit pad at each end: windows [pad,1], [2,3], [4,5]; the pad counts.
        let q = Pool2DParams(batch: 1, channels: 1, inH: 1, inW: 5, kernelH: 1, kernelW: 2, strideW: 2,
                             padLeft: 1, padRight: 1, ceilMode: true)
        y.withUnsafeMutableBufferPointer { Pooling.averagePool2D(q, countIncludePad: true, input: x, output: $0.baseAddress!) }
        #expect(y == [0.5, 2.5, 4.5])
        y.withUnsafeMutableBufferPointer { Pooling.averagePool2D(q, countIncludePad: false, input: x, output: $0.baseAddress!) }
        #expect(y == [1, 2.5, 4.5])
    }

    /// At stride 1 too: a NaN anywhere in a window, and the first of +0 / -0 in row-major order.
    @Test func unitStrideMaxPoolPropagatesNaNAndKeepsTheFirstZero() {
        let p = Pool2DParams(batch: 1, channels: 1, inH: 3, inW: 3, kernelH: 2, kernelW: 3, padLeft: 1, padRight: 1)
        let x: [Float] = [-1, -2, -3,
                          -5, .nan, -4,
                          -0.0, 0, -7]
        var y = [Float](repeating: 1, count: p.outputCount)
        y.withUnsafeMutableBufferPointer { Pooling.maxPool2D(p, input: x, output: $0.baseAddress!) }
        #expect(y[0...2].allSatisfy(\.isNaN) && y[3...5].allSatisfy(\.isNaN))
        let q = Pool2DParams(batch: 1, channels: 1, inH: 2, inW: 3, kernelH: 2, kernelW: 3, padLeft: 1, padBottom: 1, padRight: 1)
        var z = [Float](repeating: 1, count: q.outputCount)
        z.withUnsafeMutableBufferPointer { Pooling.maxPool2D(q, input: [-0.0, 0, -0.0, 0, -0.0, 0], output: $0.baseAddress!) }
        #expect(z.map(\.sign) == [.minus, .minus, .plus, .plus, .plus, .minus])
    }

    @Test func maxPoolPropagatesNaN() {
        let p = Pool2DParams(batch: 1, channels: 1, inH: 1, inW: 4, kernelH: 1, kernelW: 2, strideW: 2)
        let x: [Float] = [.nan, 1, 2, .nan]
        var y = [Float](repeating: 0, count: 2)
        y.withUnsafeMutableBufferPointer { Pooling.maxPool2D(p, input: x, output: $0.baseAddress!) }
        #expect(y[0].isNaN && y[1].isNaN)
    }

    @Test(arguments: [(1, 1), (6, 1), (2, 7), (3, 49), (4, 1000)])
    func globalPoolingReducesEachChannel(outer: Int, spatial: Int) {
        let x = randomFloats(outer * spatial, seed: 22, in: -2...2)
        var mean = [Float](repeating: .nan, count: outer)
        var maximum = [Float](repeating: .nan, count: outer)
        mean.withUnsafeMutableBufferPointer { Pooling.globalAveragePool(input: x, output: $0.baseAddress!, outer: outer, spatial: spatial) }
        maximum.withUnsafeMutableBufferPointer { Pooling.globalMaxPool(input: x, output: $0.baseAddress!, outer: outer, spatial: spatial) }
        let expectedMean = (0..<outer).map { i in
            x[(i * spatial)..<((i + 1) * spatial)].reduce(0.0) { $0 + Double($1) } / Double(spatial)
        }
        let expectedMax = (0..<outer).map { i in x[(i * spatial)..<((i + 1) * spatial)].max()! }
        expectClose(mean, expectedMean)
        #expect(maximum == expectedMax)
    }
}
