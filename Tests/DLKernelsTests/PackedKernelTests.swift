import DLKernels
import Testing

/// The AVX-512 kernels on packed weights (`PackedGEMM`, `Convolution.conv2DDirect`) against
/// reference loops. Dyadic data keeps every sum exact, so results must match bit for bit,
/// whatever order the kernels add in. On a machine without AVX-512 nothing is packed, which the
/// last test checks instead.
@Suite(.serialized) struct PackedKernelTests {
    struct GEMMCase: Sendable, CustomTestStringConvertible {
        var m: Int, n: Int, k: Int
        var transA = false, transB = false
        var testDescription: String { "\(m)x\(n)x\(k)\(transA ? " Aᵀ" : "")\(transB ? " Bᵀ" : "")" }
    }

    static let gemmCases: [GEMMCase] = [
        GEMMCase(m: 1, n: 10, k: 5),                       // one row, one short panel
        GEMMCase(m: 2, n: 33, k: 17, transB: true),        // the two-accumulator path, odd k
        GEMMCase(m: 13, n: 64, k: 9, transA: true),        // blocks of 7 and 6 rows
        GEMMCase(m: 32, n: 200, k: 300),                   // several panels, a partial last one
        GEMMCase(m: 140, n: 40, k: 33, transB: true),      // past one 132-row group
        GEMMCase(m: 5, n: 70, k: 1100, transA: true),      // the sum in chunks (k > 1024)
        GEMMCase(m: 3, n: 600, k: 20, transB: true),       // unpacked Bᵀ transposed per panel, a partial last panel
        GEMMCase(m: 2, n: 600, k: 1100),                   // unpacked B streamed row by row: sum chunks
    ]

    /// `start` updated by the product `c` with B's packed panels (`multiply`) and with B as it is
    /// (`multiplyUnpacked`), and whether each ran.
    static func packedAndUnpacked(_ c: GEMMCase, _ a: [Float], _ b: [Float], _ packed: PackedMatrix, _ e: GEMMEpilogue,
                                  start: [Float]) -> ([Float], [Float], Bool, Bool) {
        var y = start, z = start
        let lda = c.transA ? c.m : c.k
        let ran = y.withUnsafeMutableBufferPointer { yb in
            a.withUnsafeBufferPointer { ab in
                PackedGEMM.multiply(m: c.m, a: ab.baseAddress!, lda: lda, transA: c.transA, b: packed, c: yb.baseAddress!, ldc: c.n, epilogue: e)
            }
        }
        let unpacked = z.withUnsafeMutableBufferPointer { zb in
            a.withUnsafeBufferPointer { ab in
                b.withUnsafeBufferPointer { bb in
                    PackedGEMM.multiplyUnpacked(m: c.m, a: ab.baseAddress!, lda: lda, transA: c.transA, b: bb.baseAddress!, k: c.k, n: c.n,
                                                ldb: c.transB ? c.k : c.n, transposedB: c.transB, c: zb.baseAddress!, ldc: c.n, epilogue: e)
                }
            }
        }
        return (y, z, ran, unpacked)
    }

    static func reference(_ c: GEMMCase, _ a: [Float], _ b: [Float]) -> [Float] {
        var y = [Float](repeating: 0, count: c.m * c.n)
        for i in 0..<c.m {
            for j in 0..<c.n {
                var s: Float = 0
                for p in 0..<c.k {
                    s += (c.transA ? a[p * c.m + i] : a[i * c.k + p]) * (c.transB ? b[j * c.k + p] : b[p * c.n + j])
                }
                y[i * c.n + j] = s
            }
        }
        return y
    }

    @Test(.enabled(if: PackedMatrix.isSupported), arguments: gemmCases, [1, 2])
    func packedProductMatchesReferenceWithEveryEpilogueTerm(_ c: GEMMCase, workers: Int) throws {
        let a = dyadicFloats(c.m * c.k, seed: 40), b = dyadicFloats(c.k * c.n, seed: 41)
        let rowBias = dyadicFloats(c.m, seed: 42), colBias = dyadicFloats(c.n, seed: 43)
        let before = dyadicFloats(c.m * c.n, seed: 44)
        let product = Self.reference(c, a, b)
        let packed = try #require(b.withUnsafeBufferPointer {
            PackedMatrix.panels($0.baseAddress!, k: c.k, n: c.n, ldb: c.transB ? c.k : c.n, transposed: c.transB)
        })
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }

        // Each epilogue runs on the packed panels and on B unpacked (multiplyUnpacked),
        // which must give the same bits.
        func run(_ e: GEMMEpilogue, start: [Float]) -> [Float] {
            let (y, z, ok, streamed) = Self.packedAndUnpacked(c, a, b, packed, e, start: start)
            // It takes every B, either layout, with any epilogue.
            #expect(ok && streamed)
            #expect(y.withUnsafeBytes { Array($0) } == z.withUnsafeBytes { Array($0) }, "unpacked B")
            return y
        }
        // Plain product over garbage (NaN must not leak in when nothing accumulates).
        #expect(run(GEMMEpilogue(), start: [Float](repeating: .nan, count: c.m * c.n)) == product)
        // alpha, beta·C, both biases and LeakyRelu(0.25).
        let y = rowBias.withUnsafeBufferPointer { rb in
            colBias.withUnsafeBufferPointer { cb in
                run(GEMMEpilogue(alpha: 1.5, accumulate: true, cScale: 0.5, rowBias: rb.baseAddress, columnBias: cb.baseAddress,
                                 activation: .leakyRelu(alpha: 0.25)), start: before)
            }
        }
        var expected = [Float](repeating: 0, count: c.m * c.n)
        for i in 0..<c.m {
            for j in 0..<c.n {
                let v = 1.5 * product[i * c.n + j] + 0.5 * before[i * c.n + j] + rowBias[i] + colBias[j]
                expected[i * c.n + j] = v < 0 ? 0.25 * v : v
            }
        }
        #expect(y == expected)
        // ReLU with a column bias only (a fully connected layer).
        let r = colBias.withUnsafeBufferPointer { cb in
            run(GEMMEpilogue(columnBias: cb.baseAddress, activation: .relu), start: before)
        }
        #expect(r == (0..<(c.m * c.n)).map { max(0, product[$0] + colBias[$0 % c.n]) })
    }

    /// Sizes for ``unpackedBGivesThePackedBitsInAnyOrderOfSums``: one and two rows (B streamed
    /// row by row, past 1024 columns in two passes), row blocks and groups, sum chunks of odd
    /// length (k = 2051: 512 × 4 + 3), and products big enough to be split over two workers by
    /// panels and by rows. (Bᵀ with one or two rows sums in an order of its own:
    /// ``oneOrTwoRowsByBᵀSumAsDotProductsInTheirDocumentedOrder``.)
    static let bitCases: [GEMMCase] = [
        GEMMCase(m: 1, n: 1100, k: 771),
        GEMMCase(m: 2, n: 45, k: 2051, transA: true), GEMMCase(m: 3, n: 45, k: 2051, transA: true, transB: true),
        GEMMCase(m: 7, n: 300, k: 257, transB: true), GEMMCase(m: 7, n: 300, k: 257),
        GEMMCase(m: 141, n: 97, k: 1030, transB: true), GEMMCase(m: 141, n: 97, k: 1030, transA: true),
    ]

    /// Random (not dyadic) data, so another order of the sums would show in the bits: B read in
    /// place, either layout, gives exactly what its packed panels give, on one worker and two.
    @Test(.enabled(if: PackedMatrix.isSupported), arguments: bitCases, [1, 2])
    func unpackedBGivesThePackedBitsInAnyOrderOfSums(_ c: GEMMCase, workers: Int) throws {
        let a = randomFloats(c.m * c.k, seed: 50), b = randomFloats(c.k * c.n, seed: 51)
        let colBias = randomFloats(c.n, seed: 52), rowBias = randomFloats(c.m, seed: 53)
        let before = randomFloats(c.m * c.n, seed: 54)
        let ldb = c.transB ? c.k : c.n
        let packed = try #require(b.withUnsafeBufferPointer {
            PackedMatrix.panels($0.baseAddress!, k: c.k, n: c.n, ldb: ldb, transposed: c.transB)
        })
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        rowBias.withUnsafeBufferPointer { rb in
            colBias.withUnsafeBufferPointer { cb in
                for e in [GEMMEpilogue(),
                          GEMMEpilogue(columnBias: cb.baseAddress, activation: .silu),
                          GEMMEpilogue(alpha: 0.7, accumulate: true, cScale: 0.3, rowBias: rb.baseAddress, columnBias: cb.baseAddress)] {
                    let (y, z, ran, unpacked) = Self.packedAndUnpacked(c, a, b, packed, e, start: before)
                    #expect(ran && unpacked)
                    let same = zip(y, z).filter { $0.bitPattern == $1.bitPattern }.count
                    #expect(same == y.count, "\(y.count - same) of \(y.count) elements differ")
                    // Not zeros equal to zeros: the product is there.
                    #expect(y.contains { $0 != 0 && $0 != before[0] })
                }
            }
        }
    }

    /// One output of a one- or two-row product by Bᵀ as `dlk_sgemm_bt_rows` documents its sums:
    /// lane l of 16 adds x_p·w_p for p ≡ l (mod 16) by fused multiply-adds from +0 (a last
    /// partial 16 adds 0·0 in its empty lanes), then the lanes pairwise: l + 8, + 4, + 2, + 1.
    static func dotInLanes(_ x: ArraySlice<Float>, _ w: ArraySlice<Float>) -> Float {
        let k = x.count
        var lanes = [Float](repeating: 0, count: 16)
        for p in 0..<((k + 15) / 16 * 16) {
            let (xv, wv): (Float, Float) = p < k ? (x[x.startIndex + p], w[w.startIndex + p]) : (0, 0)
            lanes[p % 16] = lanes[p % 16].addingProduct(xv, wv)
        }
        var width = 16
        while width > 1 {
            width /= 2
            for l in 0..<width { lanes[l] = lanes[l] + lanes[l + width] }
        }
        return lanes[0]
    }

    /// Random data, so the order of the sums shows in the bits: one or two rows of A (either
    /// layout) by Bᵀ read in place give exactly ``dotInLanes(_:_:)``, with alpha, C, the row and
    /// column biases added as the epilogue adds them; short and long rows, a partial last 16 and
    /// a partial last group of 8 outputs, one worker and two.
    @Test(.enabled(if: PackedMatrix.isSupported), arguments: [
        GEMMCase(m: 1, n: 1100, k: 771, transB: true), GEMMCase(m: 2, n: 45, k: 2051, transA: true, transB: true),
        GEMMCase(m: 2, n: 13, k: 16, transB: true), GEMMCase(m: 1, n: 3, k: 5, transB: true),
    ], [1, 2])
    func oneOrTwoRowsByBᵀSumAsDotProductsInTheirDocumentedOrder(_ c: GEMMCase, workers: Int) throws {
        let a = randomFloats(c.m * c.k, seed: 60), b = randomFloats(c.k * c.n, seed: 61)
        let colBias = randomFloats(c.n, seed: 62), rowBias = randomFloats(c.m, seed: 63)
        let before = randomFloats(c.m * c.n, seed: 64)
        let rowsOfA = (0..<c.m).map { i in (0..<c.k).map { p in c.transA ? a[p * c.m + i] : a[i * c.k + p] } }
        var sums = [Float](repeating: 0, count: c.m * c.n)
        for i in 0..<c.m {
            for j in 0..<c.n { sums[i * c.n + j] = Self.dotInLanes(rowsOfA[i][...], b[(j * c.k)..<((j + 1) * c.k)]) }
        }
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        func unpacked(_ e: GEMMEpilogue) -> [Float] {
            var z = before
            let ran = z.withUnsafeMutableBufferPointer { zb in
                a.withUnsafeBufferPointer { ab in
                    b.withUnsafeBufferPointer { bb in
                        PackedGEMM.multiplyUnpacked(m: c.m, a: ab.baseAddress!, lda: c.transA ? c.m : c.k, transA: c.transA,
                                                    b: bb.baseAddress!, k: c.k, n: c.n, ldb: c.k, transposedB: true,
                                                    c: zb.baseAddress!, ldc: c.n, epilogue: e)
                    }
                }
            }
            #expect(ran)
            return z
        }
        func same(_ y: [Float], _ expected: [Float]) {
            let differ = zip(y, expected).filter { $0.bitPattern != $1.bitPattern }.count
            #expect(differ == 0, "\(differ) of \(y.count) elements differ")
        }
        // The product alone (the epilogue adds +0 where there is no column bias).
        same(unpacked(GEMMEpilogue()), sums.map { $0 + 0 })
        // alpha, then C by a fused multiply-add, then the row bias, then the column bias.
        let y = rowBias.withUnsafeBufferPointer { rb in
            colBias.withUnsafeBufferPointer { cb in
                unpacked(GEMMEpilogue(alpha: 0.7, accumulate: true, cScale: 0.3, rowBias: rb.baseAddress, columnBias: cb.baseAddress))
            }
        }
        same(y, (0..<(c.m * c.n)).map { at in
            (sums[at] * 0.7).addingProduct(before[at], 0.3) + rowBias[at / c.n] + colBias[at % c.n]
        })
    }

    static let convCases: [ConvCase] = [
        ConvCase(name: "3x3 pad 1, width 70 (three panels a row)", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 40, inW: 70, outChannels: 13, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "3x3 pad 1, batch 3", params: Conv2DParams(
            batch: 3, inChannels: 4, inH: 11, inW: 12, outChannels: 6, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "pointwise, no bias", params: Conv2DParams(
            batch: 2, inChannels: 8, inH: 9, inW: 7, outChannels: 5, kernelH: 1, kernelW: 1), bias: false),
        ConvCase(name: "grouped dilated, uneven pads", params: Conv2DParams(
            batch: 1, inChannels: 6, inH: 13, inW: 13, outChannels: 9, kernelH: 3, kernelW: 2,
            padTop: 2, padLeft: 1, padBottom: 0, padRight: 1, dilationH: 2, groups: 3)),
        ConvCase(name: "1x3 pad 1 on rows of 8 (tiles wrap across rows)", params: Conv2DParams(
            batch: 2, inChannels: 5, inH: 9, inW: 8, outChannels: 14, kernelH: 1, kernelW: 3,
            padTop: 0, padLeft: 1, padBottom: 0, padRight: 1)),
        ConvCase(name: "rows of 2, grouped, dilated, uneven pads (wrapped)", params: Conv2DParams(
            batch: 1, inChannels: 4, inH: 11, inW: 3, outChannels: 26, kernelH: 3, kernelW: 2,
            padTop: 2, padLeft: 0, padBottom: 1, padRight: 1, dilationH: 2, groups: 2)),
        ConvCase(name: "3x3 pad 1 on rows of 60, 72-step sums (wrapped for 3% fewer tiles)", params: Conv2DParams(
            batch: 1, inChannels: 8, inH: 5, inW: 60, outChannels: 5, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "3x3 stride 2 pad 1, odd width 71 (two phases of 36 and 35)", params: Conv2DParams(
            batch: 2, inChannels: 3, inH: 19, inW: 71, outChannels: 13, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "stride 2, grouped, dilated, uneven pads", params: Conv2DParams(
            batch: 1, inChannels: 6, inH: 23, inW: 40, outChannels: 9, kernelH: 3, kernelW: 2,
            strideH: 2, strideW: 2, padTop: 2, padLeft: 1, padBottom: 0, padRight: 0, dilationH: 2, dilationW: 3, groups: 3)),
        ConvCase(name: "1x1 stride 2, no padding (a ResNet shortcut)", params: Conv2DParams(
            batch: 1, inChannels: 8, inH: 33, inW: 34, outChannels: 20, kernelH: 1, kernelW: 1,
            strideH: 2, strideW: 2), bias: false),
        ConvCase(name: "3x3 stride 2 pad 1 onto rows of 5 from 9 x 11 (tiles wrap across phase rows)", params: Conv2DParams(
            batch: 2, inChannels: 7, inH: 9, inW: 11, outChannels: 17, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "3x3 stride 2 onto 7 x 8, 40 channels (a small image: channel parts of whole images)", params: Conv2DParams(
            batch: 1, inChannels: 5, inH: 14, inW: 15, outChannels: 40, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "3x3 stride 2 onto 15 x 15, 48 channels, one image (channel parts, each with phase planes of its own)",
                 params: Conv2DParams(batch: 1, inChannels: 16, inH: 30, inW: 30, outChannels: 48, kernelH: 3, kernelW: 3,
                                      strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "3x3 stride 2 pad 1, 16 channels of 41 x 50, one image (padding split over the workers)", params: Conv2DParams(
            batch: 1, inChannels: 16, inH: 41, inW: 50, outChannels: 12, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)),
        ConvCase(name: "stride 2 down, 1 across, rows of 6 (wrapped)", params: Conv2DParams(
            batch: 1, inChannels: 3, inH: 12, inW: 6, outChannels: 5, kernelH: 3, kernelW: 3,
            strideH: 2, strideW: 1, padTop: 0, padLeft: 1, padBottom: 2, padRight: 1)),
        ConvCase(name: "stride 2 across, 1 down", params: Conv2DParams(
            batch: 1, inChannels: 4, inH: 7, inW: 50, outChannels: 6, kernelH: 3, kernelW: 4,
            strideH: 1, strideW: 2, padTop: 1, padLeft: 2, padBottom: 1, padRight: 1)),
        ConvCase(name: "pointwise on one row of 150, 70 channels (split into channel parts)", params: Conv2DParams(
            batch: 1, inChannels: 24, inH: 1, inW: 150, outChannels: 70, kernelH: 1, kernelW: 1)),
        ConvCase(name: "3x3 pad 1 on 3 rows, 2 groups of 40 channels (channel parts of each)", params: Conv2DParams(
            batch: 1, inChannels: 6, inH: 3, inW: 45, outChannels: 80, kernelH: 3, kernelW: 3,
            padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 2)),
        ConvCase(name: "1-D, 48 channels, one image (channel parts)", params: Conv2DParams.conv1D(
            batch: 1, inChannels: 8, length: 100, outChannels: 48, kernel: 3, stride: 1, padBegin: 1, padEnd: 1,
            dilation: 1, groups: 1)),
        ConvCase(name: "1-D", params: Conv2DParams.conv1D(
            batch: 2, inChannels: 5, length: 40, outChannels: 7, kernel: 5, stride: 1, padBegin: 2, padEnd: 2,
            dilation: 1, groups: 1)),
    ]

    @Test(.enabled(if: PackedMatrix.isSupported), arguments: convCases, [1, 2])
    func directConvolutionMatchesReferenceWithResidualAndRelu(_ c: ConvCase, workers: Int) throws {
        let p = c.params
        #expect(Convolution.directApplies(p))
        let x = dyadicFloats(p.inputCount, seed: 50), w = dyadicFloats(p.weightCount, seed: 51)
        let bias = c.bias ? dyadicFloats(p.outChannels, seed: 52) : nil
        let r = dyadicFloats(p.outputCount, seed: 53)
        let conv = referenceConv2D(p, x, w, bias)
        let m = p.outChannels / p.groups, k = p.weightCount / p.outChannels
        let packed = try w.withUnsafeBufferPointer { wb in
            try (0..<p.groups).map { g in try #require(PackedMatrix.rowBlocks(wb.baseAddress! + g * m * k, m: m, k: k)) }
        }
        let saved = ParallelFor.workerCount
        ParallelFor.setWorkerCount(workers)
        defer { ParallelFor.setWorkerCount(saved) }
        var y = [Float](repeating: .nan, count: p.outputCount)
        let ok = y.withUnsafeMutableBufferPointer { yb in
            Convolution.conv2DDirect(p, input: x, weights: packed, bias: bias, residual: r, output: yb.baseAddress!, activation: .relu)
        }
        #expect(ok)
        #expect(y == zip(conv, r).map { max(0, $0 + $1) })
        var z = [Float](repeating: .nan, count: p.outputCount)
        _ = z.withUnsafeMutableBufferPointer { zb in
            Convolution.conv2DDirect(p, input: x, weights: packed, bias: bias, residual: nil, output: zb.baseAddress!, activation: .none)
        }
        #expect(z == conv)
    }

    /// Stride 2 goes direct for 2-D kernels whose tiles, wrapped across the phase planes' rows,
    /// are a third full: rows of 28, and of 14 (0.33-0.45 against 0.48 ms for im2col + GEMM,
    /// 64 → 128 channels); not 2 × 2 outputs, nor a long 1-D filter (a CQT's 1 × 256
    /// decimation, whose single-accumulator sums drifted from ORT's).
    @Test func stridedDirectConvolutionIsChosenWhereItWasMeasured() {
        let image = Conv2DParams(batch: 1, inChannels: 64, inH: 56, inW: 56, outChannels: 128, kernelH: 3, kernelW: 3,
                                 strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        #expect(image.outW == 28 && Convolution.directPays(image))
        var short = image
        short.inH = 28
        short.inW = 28
        #expect(short.outW == 14 && Convolution.directPays(short))
        var tiny = image
        tiny.inH = 4
        tiny.inW = 4
        #expect(tiny.outW == 2 && !Convolution.directPays(tiny))
        let filter = Conv2DParams(batch: 1, inChannels: 1, inH: 1, inW: 4000, outChannels: 1, kernelH: 1, kernelW: 256,
                                  strideH: 1, strideW: 2)
        #expect(filter.outW > 1000 && !Convolution.directPays(filter))
    }

    @Test(.enabled(if: PackedMatrix.isSupported))
    func directConvolutionRefusesStridesAndMismatchedWeights() throws {
        let strided = Conv2DParams(batch: 1, inChannels: 2, inH: 8, inW: 8, outChannels: 3, kernelH: 3, kernelW: 3, strideH: 3, strideW: 3)
        #expect(!Convolution.directApplies(strided))
        let p = Conv2DParams(batch: 1, inChannels: 2, inH: 8, inW: 8, outChannels: 3, kernelH: 3, kernelW: 3)
        let w = dyadicFloats(3 * 2 * 9, seed: 1)
        // Weights packed for 2 output channels do not fit a 3-channel convolution.
        let wrong = try #require(w.withUnsafeBufferPointer { PackedMatrix.rowBlocks($0.baseAddress!, m: 2, k: 27) })
        var y = [Float](repeating: 0, count: 3 * 36)
        let ran = y.withUnsafeMutableBufferPointer { yb in
            Convolution.conv2DDirect(p, input: dyadicFloats(128, seed: 2), weights: [wrong], bias: nil, residual: nil,
                                     output: yb.baseAddress!, activation: .none)
        }
        #expect(!ran)
    }

    @Test(.enabled(if: !PackedMatrix.isSupported))
    func withoutAVX512NothingIsPacked() {
        let b: [Float] = [1, 2, 3, 4]
        #expect(b.withUnsafeBufferPointer { PackedMatrix.panels($0.baseAddress!, k: 2, n: 2, ldb: 2, transposed: false) } == nil)
        #expect(b.withUnsafeBufferPointer { PackedMatrix.rowBlocks($0.baseAddress!, m: 2, k: 2) } == nil)
    }
}
