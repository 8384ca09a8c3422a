import DLTensor

/// Gemm and MatMul.
enum LinearOps {
    static var schemas: [OpSchema] {
        [
            OpSchema("Gemm", inputs: 2...3) { ctx throws(GraphError) in
                let a = try ctx.type(0), b = try ctx.type(1)
                let name = ctx.node.displayName
                guard a.dtype == b.dtype, a.dtype.isFloatingPoint || a.dtype.isInteger else {
                    throw .typeMismatch(node: name, reason: "Gemm inputs A (\(a.dtype)) and B (\(b.dtype)) must be the same numeric type")
                }
                let transA = try ctx.node.int("transA", default: 0) != 0
                let transB = try ctx.node.int("transB", default: 0) != 0
                guard let da = a.dims, let db = b.dims else { return [TensorType(dtype: a.dtype, dims: nil)] }
                guard da.count == 2, db.count == 2 else {
                    throw .shapeMismatch(node: name, reason: "Gemm needs 2-D A and B, got \(a) and \(b)")
                }
                let m = transA ? da[1] : da[0], ka = transA ? da[0] : da[1]
                let kb = transB ? db[1] : db[0], n = transB ? db[0] : db[1]
                if let x = ka.value, let y = kb.value, x != y {
                    throw .shapeMismatch(node: name, reason: "Gemm inner sizes differ: A \(a) (transA=\(transA ? 1 : 0)) and B \(b) (transB=\(transB ? 1 : 0))")
                }
                let out = [m, n]
                if ctx.hasInput(2), let c = ctx.inputTypes[2], let dc = c.dims {
                    guard c.dtype == a.dtype else {
                        throw .typeMismatch(node: name, reason: "Gemm bias C is \(c.dtype), A is \(a.dtype)")
                    }
                    guard let bc = try? Broadcast.dims(out, dc), bc.count == 2, dc.count <= 2,
                          zip(bc, out).allSatisfy({ $0.value == nil || $1.value == nil || $0 == $1 }) else {
                        throw .shapeMismatch(node: name, reason: "Gemm bias C \(c) does not broadcast to [\(m),\(n)]")
                    }
                }
                return [TensorType(dtype: a.dtype, dims: out)]
            },
            OpSchema("MatMul", inputs: 2...2) { ctx throws(GraphError) in
                let a = try ctx.type(0), b = try ctx.type(1)
                let name = ctx.node.displayName
                guard a.dtype == b.dtype else {
                    throw .typeMismatch(node: name, reason: "MatMul inputs have different types \(a.dtype) and \(b.dtype)")
                }
                guard let da = a.dims, let db = b.dims else { return [TensorType(dtype: a.dtype, dims: nil)] }
                guard !da.isEmpty, !db.isEmpty else {
                    throw .shapeMismatch(node: name, reason: "MatMul inputs must have rank 1 or more, got \(a) and \(b)")
                }
                let a2 = da.count == 1 ? [.fixed(1)] + da : da
                let b2 = db.count == 1 ? db + [.fixed(1)] : db
                let k1 = a2[a2.count - 1], k2 = b2[b2.count - 2]
                if let x = k1.value, let y = k2.value, x != y {
                    throw .shapeMismatch(node: name, reason: "MatMul inner sizes differ: \(a) and \(b)")
                }
                let batch: [Dim]
                do throws(Broadcast.Mismatch) {
                    batch = try Broadcast.dims(Array(a2.dropLast(2)), Array(b2.dropLast(2)))
                } catch {
                    throw .shapeMismatch(node: name, reason: "MatMul batch dims of \(a) and \(b): \(error)")
                }
                var out = batch
                if da.count > 1 { out.append(a2[a2.count - 2]) }
                if db.count > 1 { out.append(b2[b2.count - 1]) }
                return [TensorType(dtype: a.dtype, dims: out)]
            },
        ]
    }
}
