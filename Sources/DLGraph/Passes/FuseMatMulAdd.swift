import DLTensor

/// Folds a bias `Add` into the `MatMul` that feeds it when the MatMul multiplies by a constant
/// 2-D float32 weight `[K, N]` and the added constant is a float32 `[N]` vector: `Add(MatMul(x, W), b)`
/// becomes one `ai.dlkit.FusedMatMul(x, W, b)`. The activation may have any rank (a linear layer on
/// `[batch, seq, K]`); the kernel treats its leading dims as rows of one GEMM whose output starts
/// as the bias, so the separate pass over the result for the Add goes away.
///
/// Only when the MatMul output has that one reader and is not a graph output, and neither
/// constant is also a graph input (a fed value would not be constant). `FuseActivation` may then
/// fold a following Relu into the fused node.
package enum FuseMatMulAdd: GraphPass {
    public static let name = "fuse-matmul-add"

    public static func run(_ graph: inout Graph) -> Bool {
        let readers = graph.readerCounts()
        let fed = Set(graph.inputs.map(\.name))
        var producer: [String: Int] = [:]
        for (i, n) in graph.nodes.enumerated() {
            for o in n.outputs where !o.isEmpty { producer[o] = i }
        }
        /// A float32 initializer that no caller can replace.
        func constant(_ name: String) -> Tensor? {
            guard !fed.contains(name), let t = graph.initializers[name], t.dtype == .float32 else { return nil }
            return t
        }
        var remove = Set<Int>()
        var changed = false
        for (i, add) in graph.nodes.enumerated() where OpSet.isDefaultDomain(add) {
            guard add.opType == "Add", add.inputs.count == 2, add.outputs.count == 1, !remove.contains(i) else { continue }
            for side in 0..<2 {
                let x = add.inputs[side], biasName = add.inputs[1 - side]
                guard !x.isEmpty, readers[x] == 1, let p = producer[x], !remove.contains(p) else { continue }
                let mm = graph.nodes[p]
                guard OpSet.isDefaultDomain(mm), mm.opType == "MatMul", mm.inputs.count == 2,
                      mm.outputs.count == 1, let w = constant(mm.inputs[1]), w.rank == 2,
                      let bias = constant(biasName), bias.shape == [w.shape[1]] else { continue }
                graph.nodes[p] = Node(name: mm.name, opType: "FusedMatMul", domain: FusedOps.domain,
                                      inputs: [mm.inputs[0], mm.inputs[1], biasName], outputs: add.outputs,
                                      attributes: [], docString: mm.docString)
                remove.insert(i)
                changed = true
                break
            }
        }
        if changed { graph.rewrite(removing: remove) }
        return changed
    }
}
