import DLTensor

/// Folds scaled dot-product attention as torch.onnx exports it into one `ai.dlkit.FusedAttention`:
///
///     MatMul(Q, Kᵀ) -> [Mul or Div by a scale] -> [Add mask] -> Softmax(last axis)
///         -> [Where(IsNaN(·), 0, ·)] -> MatMul(·, V)
///
/// becomes `FusedAttention(Q, Kᵀ, V, scale, mask)` (scale and mask left out when absent), with
/// attribute `scale_op` = "Mul", "Div" or "", and `nan_to_zero` = 1 for the guard. The kernel
/// computes one block of score rows at a time, so the `[..., S, T]` scores are never
/// materialised whole. Anything around the block
/// (the projections, the Mul of Q and Kᵀ by a scale before the MatMul, head Reshape/Transpose)
/// stays as it is.
///
/// Only when every intermediate value has that one reader and is not a graph output, and the
/// Softmax normalises the last axis (`axis = -1`, or the last axis of a known rank).
package enum FuseAttention: GraphPass {
    public static let name = "fuse-attention"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        let types = graph.valueTypes()
        /// The default-domain node of `opType` producing `name`, when `name` has one reader.
        func single(_ name: String, _ opTypes: Set<String>) -> Int? {
            guard !name.isEmpty, readers[name] == 1, let p = producer[name] else { return nil }
            let n = graph.nodes[p]
            guard OpSet.isDefaultDomain(n), opTypes.contains(n.opType), n.outputs.count == 1 else { return nil }
            return p
        }
        /// torch's guard after the Softmax, `Where(IsNaN(p), 0, p)` (a fully masked row's NaNs
        /// as zeros): its Where and IsNaN and the Softmax, when `name` is the Where's output and
        /// p has no other reader. The fused kernel gives such a row zeros itself.
        func nanGuarded(_ name: String) -> (softmax: Int, guard: [Int])? {
            guard let w = single(name, ["Where"]) else { return nil }
            let select = graph.nodes[w]
            guard select.inputs.count == 3, let zero = graph.constantInitializer(select.inputs[1]), zero.elementCount == 1,
                  zero.doubles().first == 0, let isNaN = single(select.inputs[0], ["IsNaN"]),
                  graph.nodes[isNaN].inputs == [select.inputs[2]], readers[select.inputs[2]] == 2,
                  let p = producer[select.inputs[2]], OpSet.isDefaultDomain(graph.nodes[p]), graph.nodes[p].opType == "Softmax" else { return nil }
            return (p, [w, isNaN])
        }
        var remove = Set<Int>()
        var changed = false
        for (i, out) in graph.nodes.enumerated() where OpSet.isDefaultDomain(out) {
            guard out.opType == "MatMul", out.inputs.count == 2, out.outputs.count == 1, !remove.contains(i) else { continue }
            let sm: Int, guardNodes: [Int]
            if let s = single(out.inputs[0], ["Softmax"]) {
                (sm, guardNodes) = (s, [])
            } else if let g = nanGuarded(out.inputs[0]) {
                (sm, guardNodes) = g
            } else { continue }
            guard !remove.contains(sm) else { continue }
            let softmax = graph.nodes[sm]
            guard let axis = try? softmax.int("axis", default: -1), softmax.inputs.count == 1 else { continue }
            if axis != -1 {
                guard let rank = types[softmax.inputs[0]]?.dims?.count, axis == rank - 1 else { continue }
            }
            var used = [sm] + guardNodes
            var current = softmax.inputs[0]
            var mask = ""
            if let add = single(current, ["Add"]) {
                let n = graph.nodes[add]
                guard n.inputs.count == 2 else { continue }
                // The scores are the side computed by a MatMul (possibly scaled); the other is the mask.
                let first = n.inputs[0], second = n.inputs[1]
                if single(first, ["MatMul", "Mul", "Div"]) != nil {
                    current = first
                    mask = second
                } else if single(second, ["MatMul", "Mul", "Div"]) != nil {
                    current = second
                    mask = first
                } else { continue }
                used.append(add)
            }
            var scale = "", scaleOp = ""
            if let sc = single(current, ["Mul", "Div"]) {
                let n = graph.nodes[sc]
                guard n.inputs.count == 2 else { continue }
                if n.opType == "Div" {
                    guard single(n.inputs[0], ["MatMul"]) != nil else { continue }
                    current = n.inputs[0]
                    scale = n.inputs[1]
                } else if single(n.inputs[0], ["MatMul"]) != nil {
                    current = n.inputs[0]
                    scale = n.inputs[1]
                } else if single(n.inputs[1], ["MatMul"]) != nil {
                    current = n.inputs[1]
                    scale = n.inputs[0]
                } else { continue }
                // The scale must be one number; when its shape is unknown the kernel checks.
                if let dims = types[scale]?.dims, dims.reduce(1, { $0 * ($1.value ?? 2) }) != 1 { continue }
                scaleOp = n.opType
                used.append(sc)
            }
            guard let qk = single(current, ["MatMul"]), graph.nodes[qk].inputs.count == 2 else { continue }
            used.append(qk)
            guard used.allSatisfy({ !remove.contains($0) }) else { continue }
            let q = graph.nodes[qk].inputs[0], k = graph.nodes[qk].inputs[1], v = out.inputs[1]
            var inputs = [q, k, v, scale, mask]
            while inputs.last?.isEmpty == true { inputs.removeLast() }
            graph.nodes[i] = Node(name: out.name, opType: "FusedAttention", domain: FusedOps.domain,
                                  inputs: inputs, outputs: out.outputs,
                                  attributes: [Attribute(name: "scale_op", value: .string(scaleOp))]
                                      + (guardNodes.isEmpty ? [] : [Attribute(name: "nan_to_zero", value: .int(1))]),
                                  docString: out.docString)
            remove.formUnion(used)
            changed = true
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }
}

extension FusedOps {
    /// `FusedAttention(Q, Kᵀ, V, [scale], [mask])`: `Softmax(MatMul(Q, Kᵀ) (op) scale + mask) · V`
    /// over the last axis; typed as the two MatMuls it replaces.
    static var fusedAttention: OpSchema {
        OpSchema("FusedAttention", inputs: 3...5) { ctx throws(GraphError) in
            let op = try ctx.node.string("scale_op", default: "")
            guard ["", "Mul", "Div"].contains(op) else {
                throw .attributeType(node: ctx.node.displayName, attribute: "scale_op", expected: "Mul, Div or empty", actual: op)
            }
            guard let matmul = OpSet.schemas["MatMul"] else { return [nil] }
            let q = try ctx.type(0), k = try ctx.type(1), v = try ctx.type(2)
            let scoreNode = Node(name: ctx.node.name, opType: "MatMul", inputs: ["q", "k"], outputs: ["s"])
            guard let scores = try matmul.infer(InferenceContext(node: scoreNode, inputTypes: [q, k], inputValues: [nil, nil])).first ?? nil else {
                return [nil]
            }
            let outNode = Node(name: ctx.node.name, opType: "MatMul", inputs: ["s", "v"], outputs: ["y"])
            return try matmul.infer(InferenceContext(node: outNode, inputTypes: [scores, v], inputValues: [nil, nil]))
        }
    }
}

extension Graph {
    /// The declared types of values (graph inputs, outputs, value infos, initializers) by name.
    func valueTypes() -> [String: TensorType] {
        var t: [String: TensorType] = [:]
        for (name, v) in initializers { t[name] = TensorType(dtype: v.dtype, shape: v.shape) }
        for v in inputs { if let ty = v.type { t[v.name] = ty } }
        return t
    }
}
