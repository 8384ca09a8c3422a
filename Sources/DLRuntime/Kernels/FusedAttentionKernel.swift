import DLGraph
import DLKernels
import DLTensor

/// `ai.dlkit.FusedAttention(Q, Kᵀ, V, [scale], [mask])` (see `FuseAttention`): for each batch
/// entry (head), blocks of score rows `Q[rows] · Kᵀ` are computed into a small scratch buffer,
/// scaled, masked and normalised there, and multiplied by V straight into the output, so the
/// whole `[..., S, T]` score tensor never exists. Heads are split over the runtime's workers.
///
/// The fast path takes float32 Q `[..., S, D]`, Kᵀ `[..., D, T]`, V `[..., T, Dv]` with equal
/// batch dims, a one-element scale, and a mask that broadcasts to the scores as
/// `AttentionCore.MaskLayout` reads it; anything else runs the ops it replaced one after the other
/// through their general kernels.
enum FusedAttentionKernel {
    /// Score rows per block: about 16k floats of scratch, at least one row.
    static func rowBlock(rows: Int, columns: Int) -> Int { max(1, min(rows, 16_384 / max(columns, 1))) }

    static let kernel: Kernel = { ctx throws(RuntimeError) in
        let q = try ctx.input(0), k = try ctx.input(1), v = try ctx.input(2)
        let scaleTensor = ctx.optionalInput(3)
        var mask = ctx.optionalInput(4)
        let op = try ctx.string("scale_op", "")
        let nanToZero = try ctx.int("nan_to_zero", 0) != 0
        let r = q.rank
        guard q.dtype == .float32, k.dtype == .float32, v.dtype == .float32, r >= 2, k.rank == r, v.rank == r,
              q.shape.dropLast(2) == k.shape.dropLast(2), q.shape.dropLast(2) == v.shape.dropLast(2),
              q.shape[r - 1] == k.shape[r - 2], k.shape[r - 1] == v.shape[r - 2],
              scaleTensor.map({ $0.dtype == .float32 && $0.elementCount == 1 }) ?? true,
              op.isEmpty || scaleTensor != nil else {
            return try unfused(ctx)
        }
        let s = q.shape[r - 2], d = q.shape[r - 1], t = k.shape[r - 1], dv = v.shape[r - 1]
        let heads = q.shape.dropLast(2).reduce(1, *)
        // The mask as it is broadcast to the scores (BERT's [B, 1, 1, T], a causal [1, 1, S, T], a
        // mask per head): read where it is.
        var layout = AttentionCore.MaskLayout(headStride: 0, rowStride: 0)
        if let m = mask, m.dtype == .float32, let wide = widenedAcrossColumns(m, rank: r, t: t) { mask = wide }
        if let mask {
            guard mask.dtype == .float32,
                  let l = AttentionCore.MaskLayout(maskShape: mask.shape, batch: Array(q.shape.dropLast(2)), s: s, t: t) else {
                return try unfused(ctx)
            }
            layout = l
        }
        let outShape = Array(q.shape.dropLast(2)) + [s, dv]
        let out = ctx.makeOutput(.float32, shape: outShape)
        guard out.elementCount > 0 else { return [out] }
        if d == 0 || t == 0 { return try unfused(ctx) }
        let scale: Float = scaleTensor.map { $0.withUnsafeBufferPointer(as: Float.self) { $0[0] } } ?? 1
        let block = rowBlock(rows: s, columns: t)
        q.withUnsafeBufferPointer(as: Float.self) { pq in
            k.withUnsafeBufferPointer(as: Float.self) { pk in
                v.withUnsafeBufferPointer(as: Float.self) { pv in
                    out.withUnsafeMutableBufferPointerInPlace(as: Float.self) { po in
                        func run(_ pm: UnsafePointer<Float>?) {
                            guard let qp = pq.baseAddress, let kp = pk.baseAddress, let vp = pv.baseAddress,
                                  let op0 = po.baseAddress else { return }
                            // Heads split only when there is real work (batch 1 of a small layer runs inline).
                            ParallelFor.run(heads, cost: s * t * (d + dv) / 64) { lo, hi in
                                // The AVX-512 core when the CPU has it (its scores live in a
                                // per-thread scratch); the OpenBLAS loop below otherwise.
                                let scaleOp: AttentionCore.ScaleOp = op == "Mul" ? .multiply : op == "Div" ? .divide : .none
                                if AttentionCore.run(heads: lo..<hi, s: s, t: t, d: d, dv: dv,
                                                     q: qp, qHead: s * d, qRow: d, kt: kp, kHead: d * t, kRow: t,
                                                     v: vp, vHead: t * dv, vRow: dv,
                                                     mask: pm, maskLayout: layout,
                                                     scaleOp: scaleOp, scale: scale, nanToZero: nanToZero,
                                                     out: op0, outHead: s * dv, outRow: dv) {
                                    return
                                }
                                let scores = UnsafeMutablePointer<Float>.allocate(capacity: block * t)
                                defer { scores.deallocate() }
                                for h in lo..<hi {
                                    let qh = qp + h * s * d, kh = kp + h * d * t, vh = vp + h * t * dv
                                    let oh = op0 + h * s * dv
                                    let mh = pm.map { $0 + layout.offset(head: h) }
                                    var r0 = 0
                                    while r0 < s {
                                        let rows = min(block, s - r0)
                                        // A Mul scale folds into alpha (the same rounding as multiplying
                                        // the product afterwards); a Div is applied as a division.
                                        GEMM.sgemm(transA: false, transB: false, m: rows, n: t, k: d,
                                                   alpha: op == "Mul" ? scale : 1, a: qh + r0 * d, lda: d,
                                                   b: kh, ldb: t, beta: 0, c: scores, ldc: t)
                                        if op == "Div" {
                                            for i in 0..<(rows * t) { scores[i] /= scale }
                                        }
                                        if let mh {
                                            for i in 0..<rows {
                                                let m = mh + (r0 + i) * layout.rowStride, row = scores + i * t
                                                for j in 0..<t { row[j] += m[j] }
                                            }
                                        }
                                        Softmax.softmax(scores, scores, outer: rows, axisSize: t, inner: 1)
                                        if nanToZero {
                                            for i in 0..<(rows * t) where scores[i].isNaN { scores[i] = 0 }
                                        }
                                        GEMM.sgemm(transA: false, transB: false, m: rows, n: dv, k: t,
                                                   alpha: 1, a: scores, lda: t, b: vh, ldb: dv,
                                                   beta: 0, c: oh + r0 * dv, ldc: dv)
                                        r0 += rows
                                    }
                                }
                            }
                        }
                        if let mask { mask.withUnsafeBufferPointer(as: Float.self) { run($0.baseAddress) } } else { run(nil) }
                    }
                }
            }
        }
        return [out]
    }

    /// A float32 mask broadcast along the score columns (its last dim 1, or a single value: an
    /// OpenVINO SDPA's zero mask) as the same values repeated `t` times along them, so that it
    /// reads as `AttentionCore.MaskLayout` needs; nil when the mask has its columns already, or
    /// more dims than the scores (the sum would gain dims: the unfused path handles that).
    static func widenedAcrossColumns(_ mask: Tensor, rank r: Int, t: Int) -> Tensor? {
        guard t > 1, mask.rank <= r, mask.elementCount > 0 else { return nil }
        let padded = [Int](repeating: 1, count: r - mask.rank) + mask.shape
        guard padded[r - 1] == 1 else { return nil }
        let shape = Array(padded.dropLast()) + [t]
        let values = mask.scalars(as: Float.self)
        var wide = [Float](repeating: 0, count: values.count * t)
        for (i, v) in values.enumerated() {
            for j in 0..<t { wide[i * t + j] = v }
        }
        return Tensor(shape: shape, scalars: wide)
    }

    /// The replaced ops through their general kernels: MatMul, the scale op, Add, Softmax, the NaN
    /// guard, MatMul.
    static func unfused(_ ctx: KernelContext) throws(RuntimeError) -> [Tensor] {
        func run(_ op: String, _ inputs: [Tensor], attrs: [Attribute] = []) throws(RuntimeError) -> Tensor {
            guard let k = OpKernels.table[op]?.run else { throw ctx.unsupported("no kernel for \(op)") }
            let node = Node(name: ctx.node.name, opType: op, inputs: inputs.indices.map { "x\($0)" },
                            outputs: ["y"], attributes: attrs)
            var types: [String: TensorType] = [:]
            for (i, t) in inputs.enumerated() { types["x\(i)"] = TensorType(dtype: t.dtype, shape: t.shape) }
            let outTypes: [TensorType?]
            do { outTypes = try Graph.inferNode(node, types: types, values: [:]) } catch { throw .node(ctx.node.displayName, error) }
            var c = KernelContext(node: node, inputs: inputs, outputTypes: outTypes)
            c.values = inputs.map { .tensor($0) }
            c.opset = ctx.opset
            guard let y = try k(c).first else { throw ctx.fail("\(op) gave no output") }
            return y
        }
        var scores = try run("MatMul", [try ctx.input(0), try ctx.input(1)])
        let op = try ctx.string("scale_op", "")
        if !op.isEmpty, let scale = ctx.optionalInput(3) { scores = try run(op, [scores, scale]) }
        if let mask = ctx.optionalInput(4) { scores = try run("Add", [scores, mask]) }
        var p = try run("Softmax", [scores], attrs: [Attribute(name: "axis", value: .int(-1))])
        if try ctx.int("nan_to_zero", 0) != 0 {
            p = try run("Where", [try run("IsNaN", [p]), Tensor(zeros: p.dtype, shape: []), p])
        }
        return [try run("MatMul", [p, try ctx.input(2)])]
    }
}
