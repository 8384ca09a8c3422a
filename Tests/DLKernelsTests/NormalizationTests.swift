import DLKernels
import Testing

@Suite struct NormalizationTests {
    @Test(arguments: [(1, 1, 1), (2, 3, 7), (1, 5, 17), (3, 2, 1), (2, 4, 64)])
    func batchNormMatchesTheFormulaPerChannel(batch: Int, channels: Int, spatial: Int) {
        let x = randomFloats(batch * channels * spatial, seed: 60, in: -3...3)
        let scale = randomFloats(channels, seed: 61, in: 0.5...2)
        let bias = randomFloats(channels, seed: 62)
        let mean = randomFloats(channels, seed: 63)
        let variance = randomFloats(channels, seed: 64, in: 0.1...4)
        let eps: Float = 1e-5
        var expected = [Double](repeating: 0, count: x.count)
        for n in 0..<batch {
            for c in 0..<channels {
                for s in 0..<spatial {
                    let i = (n * channels + c) * spatial + s
                    expected[i] = Double(scale[c]) * (Double(x[i]) - Double(mean[c]))
                        / (Double(variance[c]) + Double(eps)).squareRoot() + Double(bias[c])
                }
            }
        }
        var y = [Float](repeating: .nan, count: x.count)
        y.withUnsafeMutableBufferPointer {
            Normalization.batchNormInference(x, $0.baseAddress!, batch: batch, channels: channels, spatial: spatial,
                                             scale: scale, bias: bias, mean: mean, variance: variance, epsilon: eps)
        }
        expectClose(y, expected)
    }

    @Test(arguments: [(1, 1), (3, 10), (2, 37), (4, 256)], [false, true])
    func layerNormNormalisesEachRow(_ shape: (rows: Int, size: Int), withBias: Bool) {
        let (rows, size) = shape
        let x = randomFloats(rows * size, seed: 65, in: -2...5)
        let scale = randomFloats(size, seed: 66, in: 0.5...2)
        let bias = randomFloats(size, seed: 67)
        let eps: Float = 1e-5
        var expected = [Double](repeating: 0, count: x.count)
        var expectedMean = [Double](), expectedInvStd = [Double]()
        for r in 0..<rows {
            let row = x[(r * size)..<((r + 1) * size)].map(Double.init)
            let mean = row.reduce(0, +) / Double(size)
            let variance = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(size)
            let invStd = 1 / (variance + Double(eps)).squareRoot()
            expectedMean.append(mean)
            expectedInvStd.append(invStd)
            for i in 0..<size {
                expected[r * size + i] = (row[i] - mean) * invStd * Double(scale[i]) + (withBias ? Double(bias[i]) : 0)
            }
        }
        var y = [Float](repeating: .nan, count: x.count)
        var means = [Float](repeating: .nan, count: rows), invStds = means
        y.withUnsafeMutableBufferPointer { yb in
            means.withUnsafeMutableBufferPointer { mb in
                invStds.withUnsafeMutableBufferPointer { ib in
                    bias.withUnsafeBufferPointer { bb in
                        Normalization.layerNorm(x, yb.baseAddress!, rows: rows, size: size, scale: scale,
                                                bias: withBias ? bb.baseAddress! : nil, epsilon: eps,
                                                meanOutput: mb.baseAddress!, invStdOutput: ib.baseAddress!)
                    }
                }
            }
        }
        expectClose(y, expected, absolute: 1e-5)
        expectClose(means, expectedMean)
        // A one-element row has variance 0, so its invStd is 1/sqrt(eps): relative tolerance only.
        expectClose(invStds, expectedInvStd, relative: 1e-4)
    }
}
