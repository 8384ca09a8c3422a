@testable import DLKernels
import Testing

/// The 2×2 max pool on AVX-512, alone (`Pooling.maxPool2x2`) and fused into the stride-1
/// convolution (`Convolution.conv2DDirectMaxPool2`), against reference loops. Dyadic data keeps
/// the convolution exact, so the pooled results must match bit for bit.
@Suite(.serialized) struct ConvPoolKernelTests {
    /// 2×2 stride-2 max pooling (floor) of [planes][h][w], NaN propagating.
    static func referencePool(_ x: [Float], planes: Int, h: Int, w: Int) -> [Float] {
        let ph = h / 2, pw = w / 2
        var y = [Float](repeating: 0, count: planes * ph * pw)
        for c in 0..<planes {
            for i in 0..<ph {
                for j in 0..<pw {
                    let v = [x[(c * h + 2 * i) * w + 2 * j], x[(c * h + 2 * i) * w + 2 * j + 1],
                             x[(c * h + 2 * i + 1) * w + 2 * j], x[(c * h + 2 * i + 1) * w + 2 * j + 1]]
                    y[(c * ph + i) * pw + j] = v.contains(where: \.isNaN) ? .nan : v.max()!
                }
            }
        }
        return y
    }

    static let convCases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1, 3 -> 32 channels, 64 wide (two panels a row)", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 20, inW: 64, outChannels: 32, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "odd output sizes, batch 3", params: Conv2DParams(
            batch: 3, inChannels: 4, inH: 11, inW: 13, outChannels: 6, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "width 70, 13 channels, no bias", params: Conv2DParams(
            batch: 2, inChannels: 3, inH: 9, inW: 70, outChannels: 13, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), bias: false),
        ConvCase(name: "grouped, no padding", params: Conv2DParams(
            batch: 1, inChannels: 6, inH: 12, inW: 10, outChannels: 9, kernelH: 3, kernelW: 2, groups: 3)),
    ]

    @Test(.enabled(if: PackedMatrix.isSupported), arguments: convCases, [1, 2])
    func fusedPoolMatchesConvolutionThenPool(_ c: ConvCase, workers: Int) throws {
        let p = c.params
        #expect(Convolution.directMaxPool2Applies(p))
        let x = dyadicFloats(p.inputCount, seed: 60), w = dyadicFloats(p.weightCount, seed: 61)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 62) : nil
        let conv = referenceConv2D(p, x, w, bias)
        let m = p.outChannels / p.groups, k = p.weightCount / p.outChannels
        let packed = try w.withUnsafeBufferPointer { wb in
            try (0..<p.groups).map { g in try #require(PackedMatrix.rowBlocks(wb.baseAddress! + g * m * k, m: m, k: k)) }
        }
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        let planes = p.batch * p.outChannels, count = planes * (p.outH / 2) * (p.outW / 2)
        for activation in [Activation.relu, .none] {
            var y = [Float](repeating: .nan, count: count)
            let ok = y.withUnsafeMutableBufferPointer { yb in
                Convolution.conv2DDirectMaxPool2(p, input: x, weights: packed, bias: bias, output: yb.baseAddress!,
                                                 activation: activation)
            }
            #expect(ok)
            let activated = activation == .relu ? conv.map { max(0, $0) } : conv
            #expect(y == Self.referencePool(activated, planes: planes, h: p.outH, w: p.outW))
        }
    }

    @Test(.enabled(if: PackedMatrix.isSupported))
    func fusedPoolRefusesStrides() {
        let strided = Conv2DParams(batch: 1, inChannels: 2, inH: 8, inW: 8, outChannels: 3, kernelH: 3, kernelW: 3,
                                   strideH: 2, strideW: 2)
        #expect(!Convolution.directMaxPool2Applies(strided))
    }

    @Test(arguments: [(4, 6, 8), (3, 7, 9), (2, 64, 64), (1, 5, 70), (2, 1, 6)])
    func maxPool2x2MatchesReferenceAndPropagatesNaN(_ size: (Int, Int, Int)) {
        let (planes, h, w) = size
        var x = dyadicFloats(planes * h * w, seed: 70)
        if x.count > 5 { x[5] = .nan }
        let p = Pool2DParams(batch: 1, channels: planes, inH: h, inW: w, kernelH: 2, kernelW: 2, strideH: 2, strideW: 2)
        #expect(Pooling.isPlain2x2(p))
        var y = [Float](repeating: 7, count: planes * (h / 2) * (w / 2))
        y.withUnsafeMutableBufferPointer { yb in
            x.withUnsafeBufferPointer { xb in Pooling.maxPool2x2(p, input: xb.baseAddress!, output: yb.baseAddress!) }
        }
        let expected = Self.referencePool(x, planes: planes, h: h, w: w)
        #expect(y.count == expected.count)
        #expect(zip(y, expected).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) })
    }

    @Test(.enabled(if: PackedMatrix.isSupported), arguments: [(1, 10, 16384), (5, 16, 1030), (32, 10, 1024), (3, 1, 2000)], [1, 2])
    func narrowProductMatchesReference(_ size: (Int, Int, Int), workers: Int) {
        let (m, n, k) = size
        #expect(NarrowGEMM.applies(n: n, k: k))
        let a = dyadicFloats(m * k, seed: 80), w = dyadicFloats(n * k, seed: 81), bias = dyadicFloats(n, seed: 82)
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        var product = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s: Float = 0
                for p in 0..<k { s += a[i * k + p] * w[j * k + p] }
                product[i * n + j] = s
            }
        }
        for (alpha, relu) in [(Float(1), false), (0.5, true)] {
            var y = [Float](repeating: .nan, count: m * n)
            let ok = y.withUnsafeMutableBufferPointer { yb in
                bias.withUnsafeBufferPointer { bb in
                    NarrowGEMM.multiply(m: m, n: n, k: k, a: a, lda: k, w: w, ldw: k, c: yb.baseAddress!, ldc: n,
                                        alpha: alpha, columnBias: bb.baseAddress, activation: relu ? .relu : .none)
                }
            }
            #expect(ok)
            let expected = (0..<(m * n)).map { i -> Float in
                let v = alpha * product[i] + bias[i % n]
                return relu ? max(0, v) : v
            }
            #expect(y == expected)
        }
        #expect(!NarrowGEMM.applies(n: 17, k: 4096))
    }

    static let winogradCases: [ConvCase] = [
        ConvCase(name: "32 -> 64 channels, 32 wide (the CNN's second layer), batch 2", params: Conv2DParams(
            batch: 2, inChannels: 32, inH: 12, inW: 32, outChannels: 64, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "18 tiles a row, odd tile rows, 20 channels, no bias", params: Conv2DParams(
            batch: 1, inChannels: 16, inH: 10, inW: 36, outChannels: 20, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), bias: false),
        ConvCase(name: "5 tiles a row, batch 3", params: Conv2DParams(
            batch: 3, inChannels: 17, inH: 6, inW: 10, outChannels: 16, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "odd output 11 x 21 (the pool drops the last row and column), batch 2", params: Conv2DParams(
            batch: 2, inChannels: 16, inH: 11, inW: 21, outChannels: 16, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
    ]

    /// The Winograd path (weights given as stored): dyadic data keeps its transforms exact too.
    @Test(.enabled(if: PackedMatrix.isSupported), arguments: winogradCases, [1, 2])
    func winogradPoolMatchesConvolutionThenPool(_ c: ConvCase, workers: Int) throws {
        let p = c.params
        #expect(Convolution.winogradApplies(p))
        let x = dyadicFloats(p.inputCount, seed: 90), w = dyadicFloats(p.weightCount, seed: 91)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 92) : nil
        let conv = referenceConv2D(p, x, w, bias)
        let k = p.weightCount / p.outChannels
        let packed = try w.withUnsafeBufferPointer { wb in [try #require(PackedMatrix.rowBlocks(wb.baseAddress!, m: p.outChannels, k: k))] }
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        let planes = p.batch * p.outChannels, count = planes * (p.outH / 2) * (p.outW / 2)
        for activation in [Activation.relu, .none] {
            var y = [Float](repeating: .nan, count: count)
            let ok = y.withUnsafeMutableBufferPointer { yb in
                w.withUnsafeBufferPointer { wb in
                    Convolution.conv2DDirectMaxPool2(p, input: x, weights: packed, bias: bias, output: yb.baseAddress!,
                                                     activation: activation, rawWeights: wb.baseAddress)
                }
            }
            #expect(ok)
            let activated = activation == .relu ? conv.map { max(0, $0) } : conv
            #expect(y == Self.referencePool(activated, planes: planes, h: p.outH, w: p.outW))
        }
    }

    static let winogradFullCases: [ConvCase] = [
        ConvCase(name: "32 channels, 32x32 (a residual block)", params: Conv2DParams(
            batch: 1, inChannels: 32, inH: 32, inW: 32, outChannels: 32, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "64 channels, 16x16, batch 2", params: Conv2DParams(
            batch: 2, inChannels: 64, inH: 16, inW: 16, outChannels: 64, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "no padding, 36 wide, 17 -> 20 channels, no bias", params: Conv2DParams(
            batch: 1, inChannels: 17, inH: 8, inW: 38, outChannels: 20, kernelH: 3, kernelW: 3), bias: false),
        ConvCase(name: "odd output 9 x 13 (last tiles cut), batch 2", params: Conv2DParams(
            batch: 2, inChannels: 16, inH: 9, inW: 13, outChannels: 18, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "odd height only, no padding, 7 x 34", params: Conv2DParams(
            batch: 1, inChannels: 20, inH: 9, inW: 36, outChannels: 16, kernelH: 3, kernelW: 3), bias: false),
        // Under two GEMM blocks of tiles a worker: two workers share out the output channels.
        ConvCase(name: "64 channels, 10x10, batch 1 (channel parts)", params: Conv2DParams(
            batch: 1, inChannels: 64, inH: 10, inW: 10, outChannels: 64, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "odd 9 x 9, 40 channels, batch 1 (uneven channel parts)", params: Conv2DParams(
            batch: 1, inChannels: 24, inH: 9, inW: 9, outChannels: 40, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
    ]

    /// conv2DDirect on the Winograd path (weights given as stored), with residual and ReLU, and plain.
    @Test(.enabled(if: PackedMatrix.isSupported), arguments: winogradFullCases, [1, 2])
    func winogradConvolutionMatchesReference(_ c: ConvCase, workers: Int) throws {
        let p = c.params
        #expect(Convolution.winogradApplies(p))
        let x = dyadicFloats(p.inputCount, seed: 93), w = dyadicFloats(p.weightCount, seed: 94)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 95) : nil
        let r = dyadicFloats(p.outputCount, seed: 96)
        let conv = referenceConv2D(p, x, w, bias)
        let k = p.weightCount / p.outChannels
        let packed = try w.withUnsafeBufferPointer { wb in [try #require(PackedMatrix.rowBlocks(wb.baseAddress!, m: p.outChannels, k: k))] }
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        var y = [Float](repeating: .nan, count: p.outputCount)
        let ok = y.withUnsafeMutableBufferPointer { yb in
            w.withUnsafeBufferPointer { wb in
                Convolution.conv2DDirect(p, input: x, weights: packed, bias: bias, residual: r, output: yb.baseAddress!,
                                         activation: .relu, rawWeights: wb.baseAddress)
            }
        }
        #expect(ok)
        #expect(y == zip(conv, r).map { max(0, $0 + $1) })
        var z = [Float](repeating: .nan, count: p.outputCount)
        let ok2 = z.withUnsafeMutableBufferPointer { zb in
            w.withUnsafeBufferPointer { wb in
                Convolution.conv2DDirect(p, input: x, weights: packed, bias: bias, residual: nil, output: zb.baseAddress!,
                                         activation: .none, rawWeights: wb.baseAddress)
            }
        }
        #expect(ok2)
        #expect(z == conv)
    }
}
