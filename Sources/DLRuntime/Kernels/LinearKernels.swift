import DLGraph
import DLKernels
import DLTensor

/// Gemm and MatMul through OpenBLAS sgemm.
enum LinearKernels {
    /// Fast variants (see ``KernelRegistry``) in front of `LinearAlgebraKernels`' general kernels.
    static var fast: [FastEntry] {
        [.init("Gemm", "float32 A, B and C", { ctx throws(RuntimeError) in
            let a = try ctx.input(0), b = try ctx.input(1)
            guard a.dtype == .float32, b.dtype == .float32, (ctx.optionalInput(2)?.dtype ?? .float32) == .float32 else { return nil }
            return try gemm(ctx)
         }),
         .init("MatMul", "float32 A and B", { ctx throws(RuntimeError) in
            guard try ctx.input(0).dtype == .float32, try ctx.input(1).dtype == .float32 else { return nil }
            return try matmul(ctx)
         })]
    }

    /// Y = alpha·op(A)·op(B) + beta·C, with C broadcast to [M, N].
    static let gemm: Kernel = { ctx throws(RuntimeError) in try gemm(ctx, activation: .none) }

    /// The B of a product on the packed AVX-512 kernel: the node's packed weight panels (see
    /// `WeightPacks`), or the weight read where it is
    /// (``PackedGEMM/multiplyUnpacked(m:a:lda:transA:b:k:n:ldb:transposedB:c:ldc:epilogue:)``):
    /// one mapped from a file that the plan left unpacked (no second copy, the packed path's
    /// bits), or any transposed weight of a one- or two-row product (dot products of rows).
    enum PanelOperand {
        case packed(PackedMatrix)
        /// Input 1, `k × n` (with `transposed`, `n × k`).
        case inPlace(Tensor, transposed: Bool)

        /// `PackedGEMM.multiply`'s contract, B this operand.
        func multiply(m: Int, a: UnsafePointer<Float>, lda: Int, transA: Bool, c: UnsafeMutablePointer<Float>, ldc: Int,
                      epilogue: GEMMEpilogue) -> Bool {
            switch self {
            case .packed(let p):
                return PackedGEMM.multiply(m: m, a: a, lda: lda, transA: transA, b: p, c: c, ldc: ldc, epilogue: epilogue)
            case .inPlace(let w, let transposed):
                let k = transposed ? w.shape[1] : w.shape[0], n = transposed ? w.shape[0] : w.shape[1]
                return w.withUnsafeBufferPointer(as: Float.self) { pw in
                    guard let b = pw.baseAddress else { return false }
                    return PackedGEMM.multiplyUnpacked(m: m, a: a, lda: lda, transA: transA, b: b, k: k, n: n, ldb: w.shape[1],
                                                        transposedB: transposed, c: c, ldc: ldc, epilogue: epilogue)
                }
            }
        }
    }

    /// The B operand of an `m`-row product on the packed kernel when it should take it: the node's
    /// packed panels holding a `k × n` B, or else (no panels, on purpose: `WeightPacks`) input 1,
    /// a float32 weight mapped from a file (`k × n`, or with `transposed` `n × k`), read in place
    /// with the packed panels' bits. A transposed weight of a product of one or two rows is read
    /// in place whether it is packed or mapped (dot products of rows), so that mapped and owned
    /// weights keep giving the same bits: for an owned weight at batch 1 the panels ran 5%
    /// faster (mlp: 0.040 against 0.042 ms), the price of that. A run without packs
    /// (packing off, no plan) takes neither, so a mapped weight gives the bits an owned one gives
    /// there too.
    static func panels(_ ctx: KernelContext, m: Int, k: Int, n: Int, transposed: Bool = false) -> PanelOperand? {
        guard PackedGEMM.prefers(rows: m), let packs = ctx.packed else { return nil }
        let w = ctx.optionalInput(1)
        func inPlace(_ w: Tensor?) -> PanelOperand? {
            guard PackedMatrix.isSupported, let w, w.dtype == .float32, w.shape == (transposed ? [n, k] : [k, n]) else { return nil }
            return .inPlace(w, transposed: transposed)
        }
        if transposed, m <= 2, let dot = inPlace(w) { return dot }
        if let p = packs.first {
            return p.arrangement == .panels && p.rows == k && p.columns == n ? .packed(p) : nil
        }
        return w?.isMapped == true ? inPlace(w) : nil
    }

    /// Gemm followed by `activation` (in the packed kernel's epilogue when the weights are packed).
    static func gemm(_ ctx: KernelContext, activation: Activation) throws(RuntimeError) -> [Tensor] {
        let a = try ctx.input(0), b = try ctx.input(1)
        let c = ctx.optionalInput(2)
        try ctx.requireFloat32(a, b)
        if let c { try ctx.requireFloat32(c) }
        let node = ctx.node
        let (transA, transB, alpha, beta) = try ctx.attribute { () throws(GraphError) in
            (try node.int("transA", default: 0) != 0, try node.int("transB", default: 0) != 0,
             try node.float("alpha", default: 1), try node.float("beta", default: 1))
        }
        let shape = try ctx.outputShape(0)
        let m = shape[0], n = shape[1]
        let k = transA ? a.shape[0] : a.shape[1]
        // Every element is written below (C copied in, or sgemm with beta 0); k = 0 scales
        // what is there, so that case starts from zeros.
        var out = k == 0 ? Tensor(zeros: .float32, shape: shape) : ctx.makeOutput(.float32, shape: shape)
        if k > 0, m > 0, !transA, transB, b.shape == [n, k], a.shape == [m, k], NarrowGEMM.applies(n: n, k: k),
           gemmNarrow(a: a, w: b, c: c, alpha: alpha, beta: beta, m: m, n: n, k: k, out: &out, activation: activation) {
            return [out]
        }
        if k > 0, m > 0, let packed = panels(ctx, m: m, k: k, n: n, transposed: transB),
           try gemmPacked(a: a, transA: transA, c: c, alpha: alpha, beta: beta, packed: packed, m: m, n: n, out: &out, activation: activation) {
            return [out]
        }
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            guard let y = po.baseAddress else { return }
            defer { activation.apply(y, count: m * n) }
            var betaForGemm: Float = 0
            if let c, beta != 0 {
                // Fill Y with C broadcast to [M, N]; sgemm then adds alpha·A·B to beta·Y.
                c.withUnsafeBufferPointer(as: Float.self) { pc in
                    let cs = c.shape
                    let rows = cs.count == 2 ? cs[0] : 1
                    let cols = cs.count >= 1 ? cs[cs.count - 1] : 1
                    for i in 0..<m {
                        let ci = rows == 1 ? 0 : i
                        for j in 0..<n { y[i * n + j] = pc[ci * cols + (cols == 1 ? 0 : j)] }
                    }
                }
                betaForGemm = beta
            }
            guard m > 0, n > 0 else { return }
            if k == 0 {
                for i in 0..<(m * n) { y[i] *= betaForGemm }
                return
            }
            a.withUnsafeBufferPointer(as: Float.self) { pa in
                b.withUnsafeBufferPointer(as: Float.self) { pb in
                    guard let ap = pa.baseAddress, let bp = pb.baseAddress else { return }
                    GEMM.sgemmSplittingColumns(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                               a: ap, lda: a.shape[1], b: bp, ldb: b.shape[1],
                               beta: betaForGemm, c: y, ldc: n)
                }
            }
        }
        return [out]
    }

    /// Gemm on packed weights: a C of shape [N] or [1, N] with beta 1 becomes the epilogue's
    /// column bias, any other C is copied into the output (broadcast) and accumulated with beta.
    /// Returns false when the kernel could not run (the caller then takes the OpenBLAS path,
    /// which rewrites every element).
    static func gemmPacked(a: Tensor, transA: Bool, c: Tensor?, alpha: Float, beta: Float, packed: PanelOperand,
                           m: Int, n: Int, out: inout Tensor, activation: Activation) throws(RuntimeError) -> Bool {
        var ran = false
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            a.withUnsafeBufferPointer(as: Float.self) { pa in
                guard let y = po.baseAddress, let ap = pa.baseAddress else { return }
                let lda = a.shape[1]
                guard let c, beta != 0 else {
                    ran = packed.multiply(m: m, a: ap, lda: lda, transA: transA, c: y, ldc: n,
                                              epilogue: GEMMEpilogue(alpha: alpha, activation: activation))
                    return
                }
                c.withUnsafeBufferPointer(as: Float.self) { pc in
                    guard let cp = pc.baseAddress else { return }
                    let cs = c.shape
                    if beta == 1, cs.last == n, cs.dropLast().allSatisfy({ $0 == 1 }), n > 0 {
                        ran = packed.multiply(m: m, a: ap, lda: lda, transA: transA, c: y, ldc: n,
                                                  epilogue: GEMMEpilogue(alpha: alpha, columnBias: cp, activation: activation))
                        return
                    }
                    let rows = cs.count == 2 ? cs[0] : 1
                    let cols = cs.count >= 1 ? cs[cs.count - 1] : 1
                    for i in 0..<m {
                        let ci = rows == 1 ? 0 : i
                        for j in 0..<n { y[i * n + j] = cp[ci * cols + (cols == 1 ? 0 : j)] }
                    }
                    ran = packed.multiply(m: m, a: ap, lda: lda, transA: transA, c: y, ldc: n,
                                              epilogue: GEMMEpilogue(alpha: alpha, accumulate: true, cScale: beta, activation: activation))
                }
            }
        }
        return ran
    }

    /// Numpy matmul: 1-D operands promoted, batch dims broadcast, one sgemm per batch entry.
    static let matmul: Kernel = { ctx throws(RuntimeError) in
        let a = try ctx.input(0), b = try ctx.input(1)
        try ctx.requireFloat32(a, b)
        let outShape = try ctx.outputShape(0)
        let a2 = a.rank == 1 ? [1] + a.shape : a.shape
        let b2 = b.rank == 1 ? b.shape + [1] : b.shape
        let m = a2[a2.count - 2], k = a2[a2.count - 1], n = b2[b2.count - 1]
        let aBatch = Array(a2.dropLast(2)), bBatch = Array(b2.dropLast(2))
        // Element offsets of each batch entry in A and B (broadcast dims repeat).
        let (batch, maps) = try ctx.broadcastMaps([aBatch, bBatch])
        let batchCount = batch.reduce(1, *)
        let aOff = maps[0].map { $0 * m * k }, bOff = maps[1].map { $0 * k * n }
        guard m > 0, n > 0, k > 0 else { return [Tensor(zeros: .float32, shape: outShape)] }
        var out = ctx.makeOutput(.float32, shape: outShape)
        out.withUnsafeMutableBufferPointer(as: Float.self) { po in
            a.withUnsafeBufferPointer(as: Float.self) { pa in
                b.withUnsafeBufferPointer(as: Float.self) { pb in
                    guard let y = po.baseAddress, let ap = pa.baseAddress, let bp = pb.baseAddress else { return }
                    if b.rank == 2, let packed = panels(ctx, m: batchCount * m, k: k, n: n),
                       packed.multiply(m: batchCount * m, a: ap, lda: k, transA: false, c: y, ldc: n, epilogue: GEMMEpilogue()) {
                        return
                    }
                    if b.rank == 2, a.rank >= 2 {
                        // One B for every batch entry (a linear layer on [batch, seq, features]):
                        // A's entries are consecutive rows, so one GEMM of batchCount·m rows
                        // packs B once instead of once per entry.
                        GEMM.sgemmSplittingColumns(transA: false, transB: false, m: batchCount * m, n: n, k: k, alpha: 1,
                                   a: ap, lda: k, b: bp, ldb: n, beta: 0, c: y, ldc: n)
                        return
                    }
                    // Batch entries (attention heads) split over the workers, each GEMM whole.
                    ParallelFor.run(batchCount, cost: m * n * k / 64) { lo, hi in
                        for e in lo..<hi {
                            GEMM.sgemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1,
                                       a: ap + aOff[e], lda: k, b: bp + bOff[e], ldb: n,
                                       beta: 0, c: y + e * m * n, ldc: n)
                        }
                    }
                }
            }
        }
        return [out]
    }
}
