import DLGraph
import DLKernels
import DLTensor

extension Rules {
    static let linear: [(String, GradientRule)] = [
        ("Gemm", gemm), ("MatMul", matmul), ("Conv", conv),
    ]

    /// Y = alpha op(A) op(B) + beta C. The products run on the tensors' buffers (no copies).
    static let gemm: GradientRule = { c throws(AutogradError) in
        let a = Ops.float32(try c.input(0)), b = Ops.float32(try c.input(1))
        let transA = try c.int("transA", 0) != 0, transB = try c.int("transB", 0) != 0
        let alpha = try c.float("alpha", 1), beta = try c.float("beta", 1)
        guard a.rank == 2, b.rank == 2 else { throw c.fail("Gemm inputs must be matrices") }
        let m = transA ? a.shape[1] : a.shape[0], k = transA ? a.shape[0] : a.shape[1]
        let n = transB ? b.shape[0] : b.shape[1]
        let gy = c.outputGrads.first.flatMap { $0 }.map(Ops.float32) ?? Tensor(zeros: .float32, shape: [m, n])
        var out: [Tensor?] = [nil, nil, nil]
        gy.withUnsafeBufferPointer(as: Float.self) { g in
            a.withUnsafeBufferPointer(as: Float.self) { ap in
                b.withUnsafeBufferPointer(as: Float.self) { bp in
                    guard let gp = g.baseAddress, let aa = ap.baseAddress, let bb = bp.baseAddress else { return }
                    if c.need(0) {
                        var ga = Tensor(zeros: .float32, shape: a.shape)
                        ga.withUnsafeMutableBufferPointer(as: Float.self) { o in
                            guard let op = o.baseAddress else { return }
                            if transA {
                                GEMM.sgemm(transA: transB, transB: true, m: k, n: m, k: n, alpha: alpha, a: bb, lda: transB ? k : n,
                                           b: gp, ldb: n, beta: 0, c: op, ldc: m)
                            } else {
                                GEMM.sgemm(transA: false, transB: !transB, m: m, n: k, k: n, alpha: alpha, a: gp, lda: n,
                                           b: bb, ldb: transB ? k : n, beta: 0, c: op, ldc: k)
                            }
                        }
                        out[0] = ga
                    }
                    if c.need(1) {
                        var gb = Tensor(zeros: .float32, shape: b.shape)
                        gb.withUnsafeMutableBufferPointer(as: Float.self) { o in
                            guard let op = o.baseAddress else { return }
                            if transB {
                                GEMM.sgemm(transA: true, transB: transA, m: n, n: k, k: m, alpha: alpha, a: gp, lda: n,
                                           b: aa, ldb: transA ? m : k, beta: 0, c: op, ldc: k)
                            } else {
                                GEMM.sgemm(transA: !transA, transB: false, m: k, n: n, k: m, alpha: alpha, a: aa, lda: transA ? m : k,
                                           b: gp, ldb: n, beta: 0, c: op, ldc: n)
                            }
                        }
                        out[1] = gb
                    }
                }
            }
        }
        if c.need(2), let cc = c.inputs.count > 2 ? c.inputs[2] : nil {
            var gc: [Float]
            if cc.shape == [n] || cc.shape == [1, n] {
                // Column sums, the common bias case.
                gc = [Float](repeating: 0, count: n)
                gy.withUnsafeBufferPointer(as: Float.self) { g in
                    for i in 0..<m { for j in 0..<n { gc[j] += g[i * n + j] } }
                }
            } else {
                gc = Ops.reduce(Ops.floats(gy), from: [m, n], to: cc.shape)
            }
            if beta != 1 { gc = gc.map { $0 * beta } }
            out[2] = Ops.tensor(cc.shape, gc)
        }
        return out
    }

    /// numpy matmul with batch broadcasting; 1-D operands are promoted and the added axis dropped.
    static let matmul: GradientRule = { c throws(AutogradError) in
        let a = try c.input(0), b = try c.input(1)
        guard a.rank >= 1, b.rank >= 1 else { throw c.fail("MatMul of a scalar") }
        let aShape = a.rank == 1 ? [1, a.shape[0]] : a.shape
        let bShape = b.rank == 1 ? [b.shape[0], 1] : b.shape
        let m = aShape[aShape.count - 2], k = aShape[aShape.count - 1], n = bShape[bShape.count - 1]
        let aBatch = Array(aShape.dropLast(2)), bBatch = Array(bShape.dropLast(2))
        let r = max(aBatch.count, bBatch.count)
        let pa = [Int](repeating: 1, count: r - aBatch.count) + aBatch
        let pb = [Int](repeating: 1, count: r - bBatch.count) + bBatch
        let batch = zip(pa, pb).map { max($0, $1) }
        let count = batch.reduce(1, *)
        let aFull = Ops.broadcast(Ops.floats(a), from: aShape, to: batch + [m, k])
        let bFull = Ops.broadcast(Ops.floats(b), from: bShape, to: batch + [k, n])
        let gy = c.grad()
        var ga = [Float](repeating: 0, count: count * m * k)
        var gb = [Float](repeating: 0, count: count * k * n)
        gy.withUnsafeBufferPointer { g in
            aFull.withUnsafeBufferPointer { ap in
                bFull.withUnsafeBufferPointer { bp in
                    guard let g0 = g.baseAddress, let a0 = ap.baseAddress, let b0 = bp.baseAddress else { return }
                    for i in 0..<count {
                        if c.need(0) {
                            let part = Ops.matmul(g0 + i * m * n, transA: false, b0 + i * k * n, transB: true, m: m, n: k, k: n)
                            ga.replaceSubrange(i * m * k..<(i + 1) * m * k, with: part)
                        }
                        if c.need(1) {
                            let part = Ops.matmul(a0 + i * m * k, transA: true, g0 + i * m * n, transB: false, m: k, n: n, k: m)
                            gb.replaceSubrange(i * k * n..<(i + 1) * k * n, with: part)
                        }
                    }
                }
            }
        }
        var out: [Tensor?] = [nil, nil]
        if c.need(0) { out[0] = Ops.tensor(a.shape, Ops.reduce(ga, from: batch + [m, k], to: aShape)) }
        if c.need(1) { out[1] = Ops.tensor(b.shape, Ops.reduce(gb, from: batch + [k, n], to: bShape)) }
        return out
    }

    /// The 2-D convolution parameters of a Conv node (1-D runs as height 1).
    static func convParams(_ c: RuleContext, x: Tensor, w: Tensor, y: Tensor) throws(AutogradError) -> Conv2DParams {
        guard x.rank == 3 || x.rank == 4, w.rank == x.rank else { throw c.unsupported("only 1-D and 2-D convolutions are differentiable") }
        let oneD = x.rank == 3
        let (group, g) = try c.window { wa throws(GraphError) in
            (wa.group, try wa.geometry(input: Array(x.shape.dropFirst(2)), kernel: wa.kernel(weight: Array(w.shape.dropFirst(2))), isPooling: false))
        }
        let (strides, dilations, pads) = (g.strides, g.dilations, g.padsBegin + g.padsEnd)
        if oneD {
            return Conv2DParams(batch: x.shape[0], inChannels: x.shape[1], inH: 1, inW: x.shape[2], outChannels: w.shape[0],
                                kernelH: 1, kernelW: w.shape[2], strideH: 1, strideW: strides[0], padTop: 0, padLeft: pads[0],
                                padBottom: 0, padRight: pads[1], dilationH: 1, dilationW: dilations[0], groups: group)
        }
        return Conv2DParams(batch: x.shape[0], inChannels: x.shape[1], inH: x.shape[2], inW: x.shape[3], outChannels: w.shape[0],
                            kernelH: w.shape[2], kernelW: w.shape[3], strideH: strides[0], strideW: strides[1],
                            padTop: pads[0], padLeft: pads[1], padBottom: pads[2], padRight: pads[3],
                            dilationH: dilations[0], dilationW: dilations[1], groups: group)
    }

    /// Conv: dW = dY · colsᵀ per group, dX = col2im(Wᵀ · dY), dB = sum of dY over batch and space.
    static let conv: GradientRule = { c throws(AutogradError) in
        let x = try c.input(0), w = try c.input(1)
        guard let y = c.outputs.first else { throw c.fail("no output recorded") }
        let p = try convParams(c, x: x, w: w, y: y)
        let oh = p.outH, ow = p.outW, plane = oh * ow
        let g = p.groups, cin = p.inChannelsPerGroup, cout = p.outChannelsPerGroup
        let kk = cin * p.kernelH * p.kernelW
        let gyT = c.outputGrads.first.flatMap { $0 }.map(Ops.float32) ?? Tensor(zeros: .float32, shape: y.shape)
        let xT = Ops.float32(x), wT = Ops.float32(w)
        var gxT = Tensor(zeros: .float32, shape: c.need(0) ? x.shape : [0])
        var gwT = Tensor(zeros: .float32, shape: w.shape)
        // The images split over the workers, each part with its own columns and (but the first)
        // its own weight-gradient sum, added in part order after: the same bits for a worker count.
        let work = p.batch * g * cout * kk * plane
        let parts = work >= 1 << 18 ? min(ParallelFor.workerCount, p.batch) : 1
        let colSize = kk * plane, gwSize = gwT.elementCount
        var scratch = [Float](repeating: 0, count: parts * colSize + (c.need(1) ? (parts - 1) * gwSize : 0))
        let needX = c.need(0), needW = c.need(1)
        xT.withUnsafeBufferPointer(as: Float.self) { xp in
        wT.withUnsafeBufferPointer(as: Float.self) { wp in
        gyT.withUnsafeBufferPointer(as: Float.self) { gp in
        scratch.withUnsafeMutableBufferPointer { sp in
        gwT.withUnsafeMutableBufferPointer(as: Float.self) { gwp in
        gxT.withUnsafeMutableBufferPointer(as: Float.self) { gxp in
            guard let x0 = xp.baseAddress, let w0 = wp.baseAddress, let g0 = gp.baseAddress,
                  let s0 = sp.baseAddress, let gw0 = gwp.baseAddress else { return }
            let gx0 = gxp.baseAddress
            ParallelFor.split(parts, parts: parts) { lo, hi in
                for part in lo..<hi {
                    let col0 = s0 + part * colSize
                    let gwPart = part == 0 ? gw0 : s0 + parts * colSize + (part - 1) * gwSize
                    for b in (part * p.batch / parts)..<((part + 1) * p.batch / parts) {
                        for gi in 0..<g {
                            let image = x0 + (b * p.inChannels + gi * cin) * p.inH * p.inW
                            let dy = g0 + (b * p.outChannels + gi * cout) * plane
                            if needW {
                                Convolution.im2col(p, image: image, channels: cin, outH: oh, outW: ow, into: col0)
                                // gw[gi] += dy (cout × plane) · colsᵀ (plane × kk)
                                GEMM.sgemm(transA: false, transB: true, m: cout, n: kk, k: plane, alpha: 1, a: dy, lda: plane,
                                           b: col0, ldb: plane, beta: 1, c: gwPart + gi * cout * kk, ldc: kk)
                            }
                            if needX, let gx0 {
                                // cols = W[gi]ᵀ (kk × cout) · dy (cout × plane), then scatter back.
                                GEMM.sgemm(transA: true, transB: false, m: kk, n: plane, k: cout, alpha: 1, a: w0 + gi * cout * kk, lda: kk,
                                           b: dy, ldb: plane, beta: 0, c: col0, ldc: plane)
                                TrainingBackward.col2imAdd(p, columns: col0, channels: cin, outH: oh, outW: ow,
                                                           into: gx0 + (b * p.inChannels + gi * cin) * p.inH * p.inW)
                            }
                        }
                    }
                }
            }
            if needW {
                for part in 1..<max(1, parts) {
                    let partial = s0 + parts * colSize + (part - 1) * gwSize
                    for i in 0..<gwSize { gw0[i] += partial[i] }
                }
            }
        }}}}}}
        var out: [Tensor?] = [nil, nil, nil]
        if c.need(0) { out[0] = gxT }
        if c.need(1) { out[1] = gwT }
        if c.need(2), let bias = c.inputs.count > 2 ? c.inputs[2] : nil {
            var gb = [Float](repeating: 0, count: p.outChannels)
            gyT.withUnsafeBufferPointer(as: Float.self) { gy in
                gb.withUnsafeMutableBufferPointer { sums in
                    guard let g0 = gy.baseAddress, let s0 = sums.baseAddress else { return }
                    TrainingBackward.addPlaneSums(g0, batch: p.batch, channels: p.outChannels, plane: plane, into: s0)
                }
            }
            out[2] = Ops.tensor(bias.shape, gb)
        }
        return out
    }
}
