import DLTensor

/// Recognises a one-hot encoding multiplied by a weight matrix, `MatMul(Cast(Equal(X, R)), W)`
/// with R the constant 0, 1, ..., N-1 along its last axis (`[1, ..., 1, N]`) and W a constant
/// float32 `[N, C]` (tf2onnx's and jax2tf's `one_hot` before a dense layer, as in magika), and
/// replaces the three nodes by `ai.dlkit.OneHotMatMul(X, R, W)`: each output row is the row of W
/// that X's value names (zeros when it names none), instead of N comparisons, N casts and an
/// N-deep product per row.
///
/// Only when W's values are all finite (a zero times an infinity would make the product NaN
/// where the row copy would not), the Cast is to float32, and the intermediate results have no
/// other reader and are not graph outputs.
package enum FoldOneHotMatMul: GraphPass {
    public static let name = "fold-one-hot-matmul"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let outputs = Set(graph.outputs.map(\.name))
        let producer = graph.producers()
        /// The node producing `v` when it is a default-domain `op` read only here.
        func single(_ v: String, _ op: String) -> Int? {
            guard readers[v] == 1, !outputs.contains(v), let p = producer[v], OpSet.isDefaultDomain(graph.nodes[p]),
                  graph.nodes[p].opType == op, graph.nodes[p].outputs.count == 1 else { return nil }
            return p
        }
        var remove = Set<Int>()
        var changed = false
        for (i, mm) in graph.nodes.enumerated() where OpSet.isDefaultDomain(mm) && mm.opType == "MatMul" {
            guard mm.inputs.count == 2, mm.outputs.count == 1, let c = single(mm.inputs[0], "Cast"),
                  (try? graph.nodes[c].int("to", default: 0)) == Int(DType.float32.onnxCode),
                  let e = single(graph.nodes[c].inputs[0], "Equal"), graph.nodes[e].inputs.count == 2,
                  let w = graph.constantInitializer(mm.inputs[1], dtype: .float32), w.rank == 2,
                  w.scalars(as: Float.self).allSatisfy(\.isFinite) else { continue }
            let equal = graph.nodes[e]
            for side in 0..<2 {
                let r = equal.inputs[side], x = equal.inputs[1 - side]
                guard !x.isEmpty, let range = graph.initializers[r], !graph.overridableInitializers.contains(r),
                      OneHotRange.isIota(range, count: w.shape[0]) else { continue }
                graph.nodes[i] = Node(name: mm.name, opType: "OneHotMatMul", domain: FusedOps.domain,
                                      inputs: [x, r, mm.inputs[1]], outputs: mm.outputs, docString: mm.docString)
                remove.formUnion([c, e])
                changed = true
                break
            }
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }

    /// `OneHotMatMul(X, R, W)`: typed as `MatMul(Cast(Equal(X, R)), W)`.
    static var schema: OpSchema {
        OpSchema("OneHotMatMul", inputs: 3...3) { ctx throws(GraphError) in
            let x = try ctx.type(0), r = try ctx.type(1), w = try ctx.type(2)
            guard let dx = x.dims, let dr = r.dims, let dw = w.dims else { return [TensorType(dtype: w.dtype, dims: nil)] }
            let hot: [Dim]
            do { hot = try Broadcast.dims(dx, dr) } catch {
                throw .shapeMismatch(node: ctx.node.displayName, reason: "X \(x) and the range \(r) do not broadcast")
            }
            guard dw.count == 2, let last = hot.last else {
                throw .shapeMismatch(node: ctx.node.displayName, reason: "OneHotMatMul needs a 2-D W and a range of rank 1 or more, got \(w) and \(r)")
            }
            if let n = last.value, let k = dw[0].value, n != k {
                throw .shapeMismatch(node: ctx.node.displayName, reason: "the one-hot width \(n) is not W's \(k) rows")
            }
            return [TensorType(dtype: w.dtype, dims: hot.dropLast() + [dw[1]])]
        }
    }
}

/// The constant a one-hot encoding compares against.
package enum OneHotRange {
    /// True when `t` holds 0, 1, ..., count-1 along its last axis, every other axis 1.
    package static func isIota(_ t: Tensor, count: Int) -> Bool {
        guard t.rank >= 1, t.shape.last == count, t.shape.dropLast().allSatisfy({ $0 == 1 }),
              t.dtype != .string, t.dtype != .bool else { return false }
        return t.doubles().enumerated().allSatisfy { Double($0.offset) == $0.element }
    }
}
